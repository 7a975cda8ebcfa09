//! Checks the gRPC framing of a unary request before the service decodes it: a body whose
//! length-prefixed message is cut short is INVALID_ARGUMENT with our error detail (tonic
//! would answer INTERNAL). Sits inside tonic-web's layer, so it sees gRPC-Web requests
//! already translated to gRPC frames, and native gRPC ones alike.
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http_body_util::{BodyExt, Full, Limited};
use tonic::{
    body::Body,
    codegen::http::{Request, Response},
    server::NamedService,
};
use tower::Service;

use super::status::to_status;
use crate::error::Error;

/// Largest request body accepted (tonic's default decoding limit plus the frame header).
const MAX_BODY: usize = 4 * 1024 * 1024 + 5;

#[derive(Clone)]
pub struct FrameCheck<S>(pub S);

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
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let clone = self.0.clone();
        let mut inner = std::mem::replace(&mut self.0, clone);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return Ok(to_status(Error::invalid_argument(
                        "GRPC-Body1",
                        "the request body could not be read or exceeds 4 MiB",
                    ))
                    .into_http());
                }
            };
            if !frames_complete(&bytes) {
                return Ok(to_status(Error::invalid_argument(
                    "GRPC-Frm01",
                    "the request's gRPC frame is truncated: its length prefix promises more bytes than were sent",
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
    }
}
