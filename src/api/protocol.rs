//! What the protocols share at the edge: the gRPC code → HTTP status table and the
//! `Retry-After` header.
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use tonic::Code;

/// The HTTP status of an answer with a gRPC code, for the REST gateway and for Connect.
///
/// grpc-gateway's `runtime.HTTPStatusFromCode` (what ZITADEL's REST gateway answers) and the
/// Connect protocol's table (connectrpc.com/docs/protocol, "Error Codes", since canceled became
/// 499, deadline_exceeded 504, failed_precondition 400 and unimplemented 501) agree code for
/// code, so one column serves both: failed_precondition is deliberately 400, not 412.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        // 499 Client Closed Request (nginx's): a valid status code, no constant.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Sets `Retry-After` in delay-seconds (RFC 9110 §10.2.3) when there is a delay: the one way
/// every protocol's answer says when to retry.
pub fn set_retry_after(headers: &mut HeaderMap, secs: Option<u64>) {
    if let Some(secs) = secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

/// The delay a gRPC status carries in its `retry-after` metadata (see
/// `grpc::status::RETRY_AFTER`), for the protocols that answer it as an HTTP header.
pub fn retry_after_of(status: &tonic::Status) -> Option<u64> {
    status
        .metadata()
        .get(super::grpc::status::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_status_table() {
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(http_status(Code::Unimplemented).as_u16(), 501);
        assert_eq!(http_status(Code::DeadlineExceeded).as_u16(), 504);
        assert_eq!(http_status(Code::ResourceExhausted).as_u16(), 429);
    }

    #[test]
    fn retry_after_goes_from_status_to_header() {
        let mut status = tonic::Status::unavailable("busy");
        assert_eq!(retry_after_of(&status), None);
        status.metadata_mut().insert(
            crate::api::grpc::status::RETRY_AFTER,
            tonic::metadata::MetadataValue::from(7u64),
        );
        let mut headers = HeaderMap::new();
        set_retry_after(&mut headers, retry_after_of(&status));
        assert_eq!(headers[header::RETRY_AFTER], "7");
        set_retry_after(&mut headers, None);
        assert_eq!(headers[header::RETRY_AFTER], "7");
    }
}
