//! Checks the gRPC framing of a unary request before the service decodes it: a body whose
//! length-prefixed message is cut short, a body with no message at all, and a frame whose
//! flag byte is not 0 (or 1 under a `grpc-encoding`) are INVALID_ARGUMENT with our error
//! detail (tonic would answer INTERNAL). Sits inside tonic-web's layer, so it sees gRPC-Web
//! requests already translated to gRPC frames, and native gRPC ones alike. For a service
//! built on tonic's own codec (tonic-health), it also decodes each message, so a malformed
//! one is INVALID_ARGUMENT there too, as our codec makes it for our services.
//!
//! It buffers no more than the message limit: a frame that declares more, or a body that
//! grows past one message of that size, is RESOURCE_EXHAUSTED at once (as grpc-go, and so
//! ZITADEL, answers; tonic's own check would say OUT_OF_RANGE, after reading the message).
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http_body_util::{BodyExt, Full};
use tonic::{
    body::Body,
    codegen::http::{Request, Response},
    server::NamedService,
};
use tower::Service;

use super::status::to_status;
use crate::error::{Error, Kind};

/// What a body may hold beyond its one message and that message's header: room for a
/// compressed message's overhead.
const BODY_SLACK: usize = 1024 + 5;

/// Whether a message decodes as a service's request type.
type Decodes = fn(&[u8]) -> Result<(), prost::DecodeError>;

#[derive(Clone)]
pub struct FrameCheck<S> {
    inner: S,
    /// The largest message accepted (the server's decoding limit).
    limit: usize,
    /// Whether an uncompressed message decodes as the request type, for services whose own
    /// codec would answer INTERNAL when it does not.
    decodes: Option<Decodes>,
}

impl<S> FrameCheck<S> {
    /// Checks requests for `inner`, whose messages may be up to `limit` bytes.
    pub fn new(inner: S, limit: usize) -> Self {
        FrameCheck {
            inner,
            limit,
            decodes: None,
        }
    }

    /// Also checks that each message decodes as `M`.
    pub fn decoding<M: prost::Message + Default>(inner: S, limit: usize) -> Self {
        FrameCheck {
            inner,
            limit,
            decodes: Some(|bytes| M::decode(bytes).map(drop)),
        }
    }
}

impl<S: NamedService> NamedService for FrameCheck<S> {
    const NAME: &'static str = S::NAME;
}

/// True when `body` is a sequence of complete length-prefixed messages.
pub fn frames_complete(mut body: &[u8]) -> bool {
    while !body.is_empty() {
        if body.len() < 5 {
            return false;
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if body.len() - 5 < len {
            return false;
        }
        body = &body[5 + len..];
    }
    true
}

/// The length the first frame of `body` declares, once its header is there.
fn declared_len(body: &[u8]) -> Option<usize> {
    let header = body.get(..5)?;
    Some(u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize)
}

fn too_large(limit: usize, what: String) -> Response<Body> {
    to_status(Error::new(
        Kind::ResourceExhausted,
        "GRPC-Size1",
        format!("{what}; a request message may have at most {limit} bytes"),
    ))
    .into_http()
}

/// Reads a request body, giving up as soon as it is plainly over `limit`: its first frame
/// declares more, or the body outgrows one message of that size.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, Response<Body>> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            to_status(Error::invalid_argument(
                "GRPC-Body1",
                "the request body could not be read",
            ))
            .into_http()
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        bytes.extend_from_slice(&data);
        if let Some(len) = declared_len(&bytes).filter(|len| *len > limit) {
            return Err(too_large(
                limit,
                format!("the request message has {len} bytes"),
            ));
        }
        if bytes.len() > limit.saturating_add(BODY_SLACK) {
            return Err(too_large(
                limit,
                format!("the request body exceeds {} bytes", limit + BODY_SLACK),
            ));
        }
    }
    Ok(bytes)
}

/// The first uncompressed message of a complete `body` that `decodes` refuses.
fn bad_message(mut body: &[u8], decodes: Decodes) -> Option<prost::DecodeError> {
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let message = body.get(5..5 + len)?;
        if body[0] == 0
            && let Err(e) = decodes(message)
        {
            return Some(e);
        }
        body = &body[5 + len..];
    }
    None
}

/// The first frame flag of a complete `body` that is neither 0 (plain) nor, when the request
/// names a `grpc-encoding`, 1 (compressed).
fn bad_flag(mut body: &[u8], encoded: bool) -> Option<u8> {
    while body.len() >= 5 {
        match body[0] {
            0 => {}
            1 if encoded => {}
            flag => return Some(flag),
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body = body.get(5 + len..)?;
    }
    None
}

impl<S> Service<Request<Body>> for FrameCheck<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let decodes = self.decodes;
        let limit = self.limit;
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match read_body(body, limit).await {
                Ok(bytes) => tonic::codegen::Bytes::from(bytes),
                Err(answer) => return Ok(answer),
            };
            if !frames_complete(&bytes) {
                return Ok(to_status(Error::invalid_argument(
                    "GRPC-Frm01",
                    "the request's gRPC frame is truncated: its length prefix promises more bytes than were sent",
                ))
                .into_http());
            }
            if bytes.is_empty() {
                return Ok(to_status(Error::invalid_argument(
                    "GRPC-Frm02",
                    "the request carries no gRPC message; a unary call sends exactly one",
                ))
                .into_http());
            }
            let encoded = parts
                .headers
                .get("grpc-encoding")
                .is_some_and(|v| v.as_bytes() != b"identity");
            if let Some(flag) = bad_flag(&bytes, encoded) {
                return Ok(to_status(Error::invalid_argument(
                    "GRPC-Frm03",
                    format!(
                        "a gRPC frame has flag {flag:#04x}: messages are flagged 0, or 1 (compressed) under a grpc-encoding header"
                    ),
                ))
                .into_http());
            }
            if let Some(e) = decodes.and_then(|d| bad_message(&bytes, d)) {
                return Ok(to_status(Error::invalid_argument(
                    "GRPC-Dec01",
                    format!("the request is not a valid protobuf message: {e}"),
                ))
                .into_http());
            }
            inner
                .call(Request::from_parts(parts, Body::new(Full::new(bytes))))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert!(frames_complete(&[]));
        assert!(frames_complete(&[0, 0, 0, 0, 0]));
        assert!(frames_complete(&[0, 0, 0, 0, 2, 8, 1]));
        assert!(!frames_complete(&[0, 0, 0, 0, 100, 1, 2, 3]));
        assert!(!frames_complete(&[0, 0, 0]));
        assert_eq!(bad_flag(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0], false), Some(1));
        assert_eq!(bad_flag(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0], true), None);
        assert_eq!(bad_flag(&[0x80, 0, 0, 0, 0], true), Some(0x80));
    }
}
