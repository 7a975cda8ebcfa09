//! Connect streaming with binary messages: the envelopes pass both ways unchanged (Connect's
//! envelope is gRPC's length-prefixed message) and the gRPC trailers become Connect's
//! end-of-stream envelope, which carries the error of a failed stream (HTTP 200 throughout).
use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt;

use super::Connect;
use crate::{
    api::protocol::{ConnectCodec, set_retry_after},
    error::Error,
};

/// Connect's end-of-stream envelope (flag 0x02): `{}` on success, `{"error": …}` otherwise.
fn end_of_stream(status: &tonic::Status) -> Vec<u8> {
    let json = if status.code() == tonic::Code::Ok {
        b"{}".to_vec()
    } else {
        let error = super::error::error_json(status);
        serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default()
    };
    let mut out = Vec::with_capacity(json.len() + 5);
    out.push(0x02);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// A stream that ends at once: HTTP 200 and the end-of-stream envelope alone.
fn end_only(status: &tonic::Status) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            ConnectCodec::StreamProto.content_type(),
        )],
        end_of_stream(status),
    )
        .into_response()
}

/// A streaming call refused before it started (the server's limits): the error in the
/// end-of-stream envelope, and `Retry-After` when it has a delay.
pub fn error_response(e: Error) -> Response {
    let retry = e.retry_after_secs;
    let mut resp = end_only(&e.into());
    set_retry_after(resp.headers_mut(), retry);
    resp
}

impl Connect {
    /// Runs a streaming call on the gRPC services in-process.
    pub(super) async fn stream(&self, path: &str, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let compressed = parts
            .headers
            .get("connect-content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.eq_ignore_ascii_case("identity"));
        if compressed {
            return end_only(&tonic::Status::unimplemented(
                "compressed Connect streams are not supported; send identity",
            ));
        }
        let Some(answer) = self.grpc_call(path, &parts, body).await else {
            return end_only(&tonic::Status::internal("cannot build the call"));
        };
        let (head, body) = answer.into_parts();
        if head.headers.contains_key("grpc-status") || head.status == StatusCode::NOT_FOUND {
            // Trailers only: the call ended before any message.
            let status = tonic::Status::from_header_map(&head.headers).unwrap_or_else(|| {
                tonic::Status::unimplemented(format!("{path} is not implemented"))
            });
            return end_only(&status);
        }
        let body = body.map_frame(|frame| match frame.into_trailers() {
            Ok(trailers) => {
                let status = tonic::Status::from_header_map(&trailers)
                    .unwrap_or_else(|| tonic::Status::internal("the call ended without a status"));
                hyper::body::Frame::data(end_of_stream(&status).into())
            }
            Err(frame) => frame,
        });
        let mut resp = Response::new(Body::new(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(ConnectCodec::StreamProto.content_type()),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_stream_carries_its_error() {
        assert_eq!(end_of_stream(&tonic::Status::ok("")), b"\x02\0\0\0\x02{}");
        let end = end_of_stream(&tonic::Status::unavailable("busy"));
        assert_eq!(end[0], 0x02);
        let len = u32::from_be_bytes([end[1], end[2], end[3], end[4]]) as usize;
        let json: serde_json::Value = serde_json::from_slice(&end[5..]).unwrap();
        assert_eq!(len, end.len() - 5);
        assert_eq!(json["error"]["code"], "unavailable");
        assert_eq!(json["error"]["message"], "busy");
    }
}
