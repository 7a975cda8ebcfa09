//! Server limits as one layer: a cap on requests in flight that sheds the excess at once, and
//! a timeout per request. A streaming call's permit is held until its answer's body has ended
//! (or is dropped), so it counts for as long as it streams; the gRPC layer ends streams at the
//! stream bound, and a backstop here releases the permit shortly after in case the end cannot
//! be delivered (a client that stopped reading). A unary answer is complete when its head is
//! ready, so its permit ends then. Both limits answer in the caller's protocol — a gRPC status
//! (UNAVAILABLE) for gRPC and gRPC-Web, Connect's error JSON (a Connect stream's end-of-stream
//! envelope), RFC 6749 JSON for OAuth, the REST error body otherwise — with `Retry-After`,
//! instead of queueing without end or dropping the connection. The protocol is the one the
//! observation layer found (`protocol::Protocol`).
//!
//! tower's `ConcurrencyLimit`/`LoadShed`/`Timeout` turn these cases into opaque errors that
//! would still need a protocol-aware handler; one small middleware is clearer.
//!
//! Beside it, [`close_after_unread_body`] marks HTTP/1.1 answers that leave a request body
//! unread (any refusal of an oversized body) as closing their connection.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use tonic::Status;

use super::{
    connect, oauth,
    protocol::{ConnectCodec, Protocol},
    rest,
};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Limits {
    in_flight: Arc<Semaphore>,
    timeout: Duration,
    max_stream: Duration,
}

impl Limits {
    pub fn new(max_in_flight: usize, timeout: Duration, max_stream: Duration) -> Self {
        Limits {
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            timeout,
            max_stream,
        }
    }
}

/// Time a streaming answer is given beyond the stream bound to deliver its end.
const STREAM_GRACE: Duration = Duration::from_secs(5);

/// Liveness probes are answered even when the server sheds load: a busy server is alive. A
/// health *watch* is a stream like any other and takes a permit.
fn exempt(path: &str) -> bool {
    path == "/healthz" || path == "/grpc.health.v1.Health/Check"
}

/// The methods whose answers stream for as long as the client likes.
pub fn is_stream(path: &str) -> bool {
    matches!(
        path,
        "/grpc.health.v1.Health/Watch"
            | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
}

pub async fn layer(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let protocol = Protocol::of(&req);
    let stream = is_stream(req.uri().path());
    let Ok(permit) = limits.in_flight.clone().try_acquire_owned() else {
        return answer(
            protocol,
            Error::unavailable(
                "SERVER-Busy1",
                "the server is at its limit of concurrent requests; retry shortly",
            )
            .retry_after(1),
        );
    };
    // A panic is a defect, never an answer we mean to give; caught here it costs its own
    // request a 500 in the caller's protocol, instead of the connection it came on with every
    // other request multiplexed there. (Handlers share state only through locks that survive
    // poisoning and the database's transactions, so nothing half-done is left behind.)
    let work = std::panic::AssertUnwindSafe(next.run(req)).catch_unwind();
    match tokio::time::timeout(limits.timeout, work).await {
        // A stream works for as long as it sends: it keeps its permit until its body ends.
        // A unary answer is complete when its head is ready (its one message is encoded as
        // it is sent), so its permit ends with the work, without a timer per request.
        Ok(Ok(resp)) if stream => hold_until_sent(resp, permit, limits.max_stream + STREAM_GRACE),
        Ok(Ok(resp)) => resp,
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(error_id = "SERVER-Pnc01", panic = %what, "a request's handler panicked");
            answer(
                protocol,
                Error::internal(
                    "SERVER-Pnc01",
                    "the server failed on this request; it has been logged",
                ),
            )
        }
        Err(_) => answer(
            protocol,
            Error::unavailable(
                "SERVER-Time1",
                format!(
                    "the request did not complete within {} s",
                    limits.timeout.as_secs()
                ),
            )
            .retry_after(1),
        ),
    }
}

/// Keeps `permit` until the body of `resp` has ended or been dropped, or `bound` has passed.
fn hold_until_sent(resp: Response, permit: OwnedSemaphorePermit, bound: Duration) -> Response {
    use hyper::body::Body as _;
    if resp.body().is_end_stream() {
        return resp;
    }
    let slot = Arc::new(Mutex::new(Some(permit)));
    // A body whose client stopped reading is never polled again: only a timer of its own can
    // take its permit back.
    let backstop = tokio::spawn({
        let slot = slot.clone();
        async move {
            tokio::time::sleep(bound).await;
            release(&slot);
        }
    })
    .abort_handle();
    // However the body ends, the permit goes back and the timer stops.
    resp.map(|inner| {
        Body::new(Watched::new(inner, move |_| {
            backstop.abort();
            release(&slot);
        }))
    })
}

fn release(slot: &Mutex<Option<OwnedSemaphorePermit>>) {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// How a watched body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEnd {
    /// Its last frame was read.
    Complete,
    /// Reading it failed.
    Failed,
    /// It was dropped before either.
    Dropped,
}

/// A body that tells `on_end`, once, how it ended.
struct Watched<F: FnOnce(BodyEnd)> {
    inner: Body,
    on_end: Option<F>,
}

impl<F: FnOnce(BodyEnd)> Watched<F> {
    fn new(inner: Body, on_end: F) -> Self {
        Watched {
            inner,
            on_end: Some(on_end),
        }
    }

    fn end(&mut self, how: BodyEnd) {
        if let Some(on_end) = self.on_end.take() {
            on_end(how);
        }
    }
}

impl<F: FnOnce(BodyEnd)> Drop for Watched<F> {
    fn drop(&mut self) {
        self.end(BodyEnd::Dropped);
    }
}

impl<F: FnOnce(BodyEnd) + Unpin> hyper::body::Body for Watched<F> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Err(_))) => self.end(BodyEnd::Failed),
            Poll::Ready(None) => self.end(BodyEnd::Complete),
            _ if self.inner.is_end_stream() => self.end(BodyEnd::Complete),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The refusal of a request in its protocol: a gRPC status for gRPC and gRPC-Web, Connect's
/// error JSON (or, for a Connect stream, its end-of-stream envelope), RFC 6749 JSON for the
/// OAuth endpoints, the REST error body otherwise. Each carries the error's `Retry-After`.
fn answer(protocol: Protocol, e: Error) -> Response {
    match protocol {
        Protocol::Grpc | Protocol::GrpcWeb(_) => Status::from(e).into_http(),
        Protocol::Connect(Some(ConnectCodec::StreamProto)) => connect::stream::error_response(e),
        Protocol::Connect(_) => connect::error_response(e),
        Protocol::OAuth => oauth::oauth_error(e.into()),
        Protocol::Rest | Protocol::Console | Protocol::Http => rest::error_response(e),
    }
}

/// An HTTP/1.1 answer given before the request's body was read to its end (a body over a
/// limit, a refusal that needs no body) closes the connection, and says so. The unread rest
/// cannot be told from the next request, so hyper closes such a connection anyway; without
/// `Connection: close` a client that pooled it sends its next request into the closing
/// connection and sees it fail. HTTP/2 resets just the stream.
pub async fn close_after_unread_body(req: Request, next: Next) -> Response {
    use hyper::body::Body as _;
    if req.version() >= axum::http::Version::HTTP_2 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let read = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let req = req.map(|body| {
        let read = read.clone();
        Body::new(Watched::new(body, move |how| {
            if how == BodyEnd::Complete {
                read.store(true, std::sync::atomic::Ordering::Release);
            }
        }))
    });
    let mut resp = next.run(req).await;
    if !read.load(std::sync::atomic::Ordering::Acquire) {
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http_body_util::BodyExt;

    use super::*;

    type Ends = Arc<Mutex<Vec<BodyEnd>>>;

    /// `body`, noting each end it reports in a new list.
    fn watched(body: Body) -> (Ends, Watched<impl FnOnce(BodyEnd) + Unpin>) {
        let ends = Ends::default();
        let seen = ends.clone();
        (
            ends,
            Watched::new(body, move |how| seen.lock().unwrap().push(how)),
        )
    }

    /// A handler that panics costs its request a 500 in the caller's protocol, not the
    /// connection.
    #[tokio::test]
    async fn a_panicking_handler_is_answered_in_its_protocol() {
        use tower::Service;
        async fn defect() -> &'static str {
            panic!("a defect")
        }
        let limits = Limits::new(4, Duration::from_secs(5), Duration::from_secs(5));
        let mut app = axum::Router::new()
            .route("/management/v1/orgs/me", axum::routing::get(defect))
            .route(
                "/zitadel.management.v1.ManagementService/GetMyOrg",
                axum::routing::post(defect),
            )
            .layer(axum::middleware::from_fn_with_state(limits.clone(), layer));
        let rest = Request::get("/management/v1/orgs/me")
            .body(Body::empty())
            .unwrap();
        let resp = app.call(rest).await.unwrap();
        assert_eq!(resp.status(), 500);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["details"][0]["id"], "SERVER-Pnc01", "{body}");
        let grpc = Request::post("/zitadel.management.v1.ManagementService/GetMyOrg")
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        let resp = app.call(grpc).await.unwrap();
        assert_eq!(resp.headers()["grpc-status"], "13");
        // Its permit came back: all four are free again.
        assert_eq!(limits.in_flight.available_permits(), 4);
    }

    #[tokio::test]
    async fn a_watched_body_reports_its_end_once() {
        let (ends, body) = watched(Body::from("all of it"));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "all of it");
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Complete]);

        let (ends, body) = watched(Body::from("never read"));
        drop(body);
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Dropped]);

        let broken = Body::from_stream(tokio_stream::iter([
            Ok(axum::body::Bytes::from("part")),
            Err(std::io::Error::other("reset")),
        ]));
        let (ends, body) = watched(broken);
        assert!(body.collect().await.is_err());
        assert_eq!(*ends.lock().unwrap(), [BodyEnd::Failed]);
    }
}
