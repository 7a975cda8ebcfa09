//! Checks the gRPC framing of requests before a service decodes them, and bounds what the
//! answers may do. Sits inside tonic-web's layer, so it sees gRPC-Web requests already
//! translated to gRPC frames, native gRPC ones alike, and the Connect gateway's in-process
//! calls; it wraps every gRPC service, reflection and health included.
//!
//! Unary requests are read whole first: a body whose length-prefixed message is cut short, a
//! body with no message at all, and a frame whose flag byte is not 0 (or 1 under a
//! `grpc-encoding`) are INVALID_ARGUMENT with our error detail (tonic would answer INTERNAL).
//! For a service built on tonic's own codec (tonic-health), it also decodes each message, so
//! a malformed one is INVALID_ARGUMENT there too, as our codec makes it for our services.
//! Bidirectional streams (reflection) are checked frame by frame as they arrive instead, and
//! a bad frame ends the call with its status.
//!
//! It buffers no more than the message limit: a frame that declares more, or a body that
//! grows past one message of that size, is RESOURCE_EXHAUSTED at once (as grpc-go, and so
//! ZITADEL, answers; tonic's own check would say OUT_OF_RANGE, after reading the message).
//!
//! Answers: a streaming one ends with UNAVAILABLE once it has run for the stream bound, and
//! every `grpc-message` is escaped and cut short, whatever request input a service (ours or
//! tonic-reflection's) quoted into it.
use std::{
    borrow::Cow,
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, SizeHint};
use tokio::sync::oneshot;
use tonic::{
    Code, Status,
    body::Body,
    codegen::{
        Bytes,
        http::{HeaderMap, Request, Response},
    },
    server::NamedService,
};
use tower::Service;

use super::status::quiet_status;
use crate::error::{Error, Kind};

/// What a body may hold beyond its one message and that message's header: room for a
/// compressed message's overhead.
const BODY_SLACK: usize = 1024 + 5;

/// Characters of a `grpc-message` kept before the error id (after escaping): enough for any
/// message of ours, short enough that quoted input cannot swell a trailer.
pub const MAX_MESSAGE_CHARS: usize = 200;

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
    /// Requests are checked frame by frame as they arrive rather than read whole first: a
    /// bidirectional stream's client sends on while it reads answers.
    incremental: bool,
    /// How long an answer may stream before it is ended.
    stream_bound: Option<Duration>,
}

impl<S> FrameCheck<S> {
    /// Checks requests for `inner`, whose messages may be up to `limit` bytes.
    pub fn new(inner: S, limit: usize) -> Self {
        FrameCheck {
            inner,
            limit,
            decodes: None,
            incremental: false,
            stream_bound: None,
        }
    }

    /// Also checks that each message decodes as `M`.
    pub fn decoding<M: prost::Message + Default>(inner: S, limit: usize) -> Self {
        FrameCheck {
            decodes: Some(|bytes| M::decode(bytes).map(drop)),
            ..Self::new(inner, limit)
        }
    }

    /// For a bidirectional stream: frames are checked as they arrive.
    pub fn incremental(inner: S, limit: usize) -> Self {
        FrameCheck {
            incremental: true,
            ..Self::new(inner, limit)
        }
    }

    /// Ends answers that stream for longer than `bound`.
    pub fn bounded(self, bound: Duration) -> Self {
        FrameCheck {
            stream_bound: Some(bound),
            ..self
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

fn too_large(limit: usize, what: String) -> Status {
    Status::from(Error::new(
        Kind::ResourceExhausted,
        "GRPC-Size1",
        format!("{what}; a request message may have at most {limit} bytes"),
    ))
}

fn truncated() -> Status {
    Status::from(Error::invalid_argument(
        "GRPC-Frm01",
        "the request's gRPC frame is truncated: its length prefix promises more bytes than were sent",
    ))
}

fn bad_flag_status(flag: u8) -> Status {
    Status::from(Error::invalid_argument(
        "GRPC-Frm03",
        format!(
            "a gRPC frame has flag {flag:#04x}: messages are flagged 0, or 1 (compressed) under a grpc-encoding header"
        ),
    ))
}

/// Reads a request body, giving up as soon as it is plainly over `limit`: its first frame
/// declares more, or the body outgrows one message of that size.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, Response<Body>> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            Status::from(Error::invalid_argument(
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
            return Err(
                too_large(limit, format!("the request message has {len} bytes")).into_http(),
            );
        }
        if bytes.len() > limit.saturating_add(BODY_SLACK) {
            return Err(too_large(
                limit,
                format!("the request body exceeds {} bytes", limit + BODY_SLACK),
            )
            .into_http());
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

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Where the call went, for the DPoP proofs of bound tokens: gRPC, gRPC-Web and Connect
        // calls are POSTs to the method path.
        let path = req.uri().path().to_owned();
        req.extensions_mut()
            .insert(crate::service::dpop::HttpTarget {
                method: "POST",
                path,
            });
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let decodes = self.decodes;
        let limit = self.limit;
        let incremental = self.incremental;
        // Only streaming methods get a timer (health's Check is unary beside its Watch).
        let deadline = self
            .stream_bound
            .filter(|_| crate::api::limits::is_stream(req.uri().path()))
            .map(|bound| (tokio::time::Instant::now() + bound, bound));
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let encoded = parts
                .headers
                .get("grpc-encoding")
                .is_some_and(|v| v.as_bytes() != b"identity");
            let (body, violation) = if incremental {
                let (tx, rx) = oneshot::channel();
                let checked = Checked {
                    inner: body,
                    limit,
                    encoded,
                    header: [0; 5],
                    have: 0,
                    remaining: 0,
                    violation: Some(tx),
                    failed: false,
                };
                (Body::new(checked), Some(rx))
            } else {
                match checked_whole(body, limit, encoded, decodes).await {
                    Ok(bytes) => (Body::new(Full::new(bytes)), None),
                    Err(answer) => return Ok(answer),
                }
            };
            let answer = inner.call(Request::from_parts(parts, body)).await?;
            Ok(guard(answer, violation, deadline))
        })
    }
}

/// Reads a unary request whole and checks its framing; the answer to give when it fails.
async fn checked_whole(
    body: Body,
    limit: usize,
    encoded: bool,
    decodes: Option<Decodes>,
) -> Result<Bytes, Response<Body>> {
    let bytes = Bytes::from(read_body(body, limit).await?);
    if !frames_complete(&bytes) {
        return Err(truncated().into_http());
    }
    if bytes.is_empty() {
        return Err(Status::from(Error::invalid_argument(
            "GRPC-Frm02",
            "the request carries no gRPC message; a unary call sends exactly one",
        ))
        .into_http());
    }
    if let Some(flag) = bad_flag(&bytes, encoded) {
        return Err(bad_flag_status(flag).into_http());
    }
    if let Some(e) = decodes.and_then(|d| bad_message(&bytes, d)) {
        return Err(Status::from(Error::invalid_argument(
            "GRPC-Dec01",
            format!("the request is not a valid protobuf message: {e}"),
        ))
        .into_http());
    }
    Ok(bytes)
}

/// A streamed request body checked frame by frame. A bad frame ends it with an error (the
/// service stops reading) and hands its status to the answer, which ends with it.
struct Checked {
    inner: Body,
    limit: usize,
    encoded: bool,
    /// The current frame's header, `have` bytes of it so far.
    header: [u8; 5],
    have: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
    violation: Option<oneshot::Sender<Status>>,
    failed: bool,
}

impl Checked {
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have == 5 {
                self.have = 0;
                let h = self.header;
                match h[0] {
                    0 => {}
                    1 if self.encoded => {}
                    flag => return Err(bad_flag_status(flag)),
                }
                let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
                if len > self.limit {
                    return Err(too_large(
                        self.limit,
                        format!("the request message has {len} bytes"),
                    ));
                }
                self.remaining = len;
            }
        }
        Ok(())
    }

    fn fail(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.failed = true;
        if let Some(tx) = self.violation.take() {
            let _ = tx.send(status.clone());
        }
        Poll::Ready(Some(Err(status)))
    }
}

impl hyper::body::Body for Checked {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref()
                    && let Err(status) = this.scan(data)
                {
                    return this.fail(status);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None if this.have > 0 || this.remaining > 0 => this.fail(truncated()),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }
}

/// Bounds a service's answer: its status message, its streaming time, and the status a bad
/// request frame calls for.
fn guard(
    answer: Response<Body>,
    violation: Option<oneshot::Receiver<Status>>,
    deadline: Option<(tokio::time::Instant, Duration)>,
) -> Response<Body> {
    let (mut parts, body) = answer.into_parts();
    // Trailers-only: the status is in the head.
    bound_grpc_message(&mut parts.headers);
    let body = Guarded {
        inner: body,
        violation,
        deadline: deadline.map(|(at, bound)| (Box::pin(tokio::time::sleep_until(at)), bound)),
        done: false,
    };
    Response::from_parts(parts, Body::new(body))
}

struct Guarded {
    inner: Body,
    violation: Option<oneshot::Receiver<Status>>,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    done: bool,
}

impl Guarded {
    fn end_with(&mut self, status: &Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.done = true;
        let mut trailers = HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            trailers.insert("grpc-status", (Code::Internal as i32).into());
        }
        bound_grpc_message(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(rx) = &mut this.violation {
            match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(status)) => return this.end_with(&status),
                Poll::Ready(Err(_)) => this.violation = None,
                Poll::Pending => {}
            }
        }
        if let Some((sleep, bound)) = &mut this.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let status = stream_ended(*bound);
            return this.end_with(&status);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => {
                this.done = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            Some(Ok(frame)) => match frame.into_trailers() {
                Ok(mut trailers) => {
                    this.done = true;
                    bound_grpc_message(&mut trailers);
                    Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

/// How a stream that reached the bound ends: clients reconnect on UNAVAILABLE.
fn stream_ended(bound: Duration) -> Status {
    quiet_status(Error::unavailable(
        "GRPC-Strm1",
        format!(
            "the stream reached the server's limit of {} s; open a new one to go on",
            bound.as_secs()
        ),
    ))
}

/// Replaces a `grpc-message` that is long or holds control characters by its bounded form.
fn bound_grpc_message(headers: &mut HeaderMap) {
    let Some(value) = headers.get("grpc-message") else {
        return;
    };
    let decoded = percent_decode(value.as_bytes());
    let text = String::from_utf8_lossy(&decoded);
    if let Cow::Owned(bounded) = bounded_message(&text) {
        let mut encoded = HeaderMap::new();
        let header = Status::new(Code::Unknown, bounded)
            .add_header(&mut encoded)
            .ok()
            .and_then(|()| encoded.remove("grpc-message"));
        match header {
            Some(h) => headers.insert("grpc-message", h),
            None => headers.remove("grpc-message"),
        };
    }
}

fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// `message` with control characters escaped (`\n`, `\u{1b}`) and cut to
/// [`MAX_MESSAGE_CHARS`], keeping a trailing error id such as ` (AUTH-Xxx01)`; borrowed when
/// it needs neither.
pub fn bounded_message(message: &str) -> Cow<'_, str> {
    let (text, id) = match message.rfind(" (") {
        Some(at)
            if message.ends_with(')')
                && message.len() - at <= 24
                && !message[at + 2..].contains([' ', '(']) =>
        {
            message.split_at(at)
        }
        _ => (message, ""),
    };
    if !text.chars().any(char::is_control) && text.chars().nth(MAX_MESSAGE_CHARS).is_none() {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(MAX_MESSAGE_CHARS + id.len() + 8);
    let mut kept = 0;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.into()
        };
        let len = piece.chars().count();
        if kept + len > MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        kept += len;
        out.push_str(&piece);
    }
    out.push_str(id);
    Cow::Owned(out)
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

    #[test]
    fn messages_are_escaped_and_bounded() {
        assert!(matches!(
            bounded_message("machine key not found (QUERY-Dgr3g)"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            bounded_message("bad name \"a\nb\" (APP-Name1)"),
            "bad name \"a\\nb\" (APP-Name1)"
        );
        let long = format!("file not found: {} (REFL-X1)", "x".repeat(100_000));
        let bounded = bounded_message(&long);
        assert!(bounded.ends_with("… (REFL-X1)"), "{bounded}");
        assert_eq!(
            bounded.chars().count(),
            MAX_MESSAGE_CHARS + 1 + " (REFL-X1)".len()
        );
        let newlines = "\n".repeat(1000);
        assert!(!bounded_message(&newlines).contains('\n'));
        assert_eq!(percent_decode(b"a%0Ab%2"), b"a\nb%2");
    }
}
