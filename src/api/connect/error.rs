//! Connect's error answers: the JSON body `{"code", "message", "details"}` with the
//! `zitadel.v1.ErrorDetail` of the status, the HTTP status of the shared table, and
//! `Retry-After` when the status carries a delay.
use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use prost::Message;

use crate::{
    api::{
        grpc::status::ERROR_DETAIL_TYPE,
        protocol::{http_status, set_status_headers},
    },
    error::Error,
    proto::{google::rpc, zitadel::v1::ErrorDetail},
};

/// Connect's name for a gRPC code.
pub(super) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "canceled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

/// The status's details as Connect writes them: `{type, value, debug}`.
fn error_details(status: &tonic::Status) -> Vec<serde_json::Value> {
    rpc::Status::decode(status.details())
        .map(|s| s.details)
        .unwrap_or_default()
        .into_iter()
        .map(|any| {
            let type_name = any
                .type_url
                .rsplit_once('/')
                .map_or(any.type_url.as_str(), |(_, name)| name)
                .to_owned();
            let mut detail = serde_json::json!({
                "type": type_name,
                "value": STANDARD_NO_PAD.encode(&any.value),
            });
            if any.type_url == ERROR_DETAIL_TYPE
                && let Ok(d) = ErrorDetail::decode(any.value.as_ref())
            {
                detail["debug"] = serde_json::json!({"id": d.id, "message": d.message});
            }
            detail
        })
        .collect()
}

/// Connect's error object for a gRPC status: `{"code", "message", "details": [{type, value,
/// debug}]}`; `details` left out when there are none. The unary body and the `error` of a
/// stream's end are this same object.
pub(super) fn error_json(status: &tonic::Status) -> serde_json::Value {
    let details = error_details(status);
    let mut body = serde_json::json!({
        "code": code_name(status.code()),
        "message": status.message(),
    });
    if !details.is_empty() {
        body["details"] = serde_json::Value::Array(details);
    }
    body
}

/// Connect's unary error answer for a gRPC status. Always JSON, whatever the request's codec,
/// as the protocol says.
pub fn status_response(status: &tonic::Status) -> Response {
    let mut resp = (
        http_status(status.code()),
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(error_json(status)),
    )
        .into_response();
    set_status_headers(resp.headers_mut(), status);
    resp
}

/// Connect's unary error answer for one of our errors (with its ErrorDetail).
pub fn error_response(e: Error) -> Response {
    status_response(&e.into())
}

/// An error without details (decode and protocol errors carry none).
pub(super) fn plain_error(code: tonic::Code, message: impl Into<String>) -> Response {
    status_response(&tonic::Status::new(code, message))
}

/// [`plain_error`] answered with another HTTP status than the code's, for refusals the
/// protocol answers at the HTTP level (405, 415).
pub(super) fn http_error(
    http: StatusCode,
    code: tonic::Code,
    message: impl Into<String>,
) -> Response {
    let mut resp = plain_error(code, message);
    *resp.status_mut() = http;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "failed_precondition"
        );
        let resp = error_response(
            Error::new(
                crate::error::Kind::ResourceExhausted,
                "AUTH-Rate1",
                "too many failures",
            )
            .retry_after(5),
        );
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
        let body = error_json(&Error::not_found("QUERY-Dgr3g", "machine key not found").into());
        assert_eq!(body["code"], "not_found");
        assert_eq!(body["details"][0]["type"], "zitadel.v1.ErrorDetail");
        assert_eq!(body["details"][0]["debug"]["id"], "QUERY-Dgr3g");
    }
}
