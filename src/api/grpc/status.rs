//! The one mapping from [`Error`] to a gRPC status: code, `"<message> (<ID>)"`, and a
//! `zitadel.v1.ErrorDetail` packed in the `google.rpc.Status` of `grpc-status-details-bin`.
use prost::Message;
use tonic::{Code, Status};

use crate::{
    error::{Error, Kind},
    proto::{google::rpc, zitadel::v1::ErrorDetail},
};

pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";
/// Trailer (gRPC) and header (REST, via the gateway) saying when to retry a rate-limited call.
pub const RETRY_AFTER: &str = "retry-after";

pub fn code(kind: Kind) -> Code {
    match kind {
        Kind::InvalidArgument => Code::InvalidArgument,
        Kind::NotFound => Code::NotFound,
        Kind::AlreadyExists => Code::AlreadyExists,
        Kind::FailedPrecondition => Code::FailedPrecondition,
        Kind::PermissionDenied => Code::PermissionDenied,
        Kind::Unauthenticated => Code::Unauthenticated,
        Kind::ResourceExhausted => Code::ResourceExhausted,
        Kind::Unavailable => Code::Unavailable,
        Kind::Unimplemented => Code::Unimplemented,
        Kind::Internal => Code::Internal,
    }
}

/// Logs server-side failures once, with their cause chain, and builds the status: what `?`
/// does with an [`Error`] in a handler.
impl From<Error> for Status {
    fn from(e: Error) -> Status {
        if matches!(e.kind, Kind::Internal | Kind::Unavailable) {
            tracing::error!(error_id = e.id, cause = %e.cause_chain(), "{}", e.message);
        }
        quiet_status(e)
    }
}

/// [`Status::from`] as a function, for `map_err` outside handlers.
pub fn to_status(e: Error) -> Status {
    e.into()
}

/// The status of `e` without the log line: for answers that are part of normal operation,
/// such as a stream ended at the server's time limit.
pub fn quiet_status(e: Error) -> Status {
    let code = code(e.kind);
    let message = e.client_message();
    let retry_after = e.retry_after_secs;
    let detail = ErrorDetail {
        id: e.id.to_owned(),
        message: e.message.to_string(),
    };
    let details = if detail.id.is_empty() {
        Vec::new()
    } else {
        vec![pbjson_types::Any {
            type_url: ERROR_DETAIL_TYPE.to_owned(),
            value: detail.encode_to_vec().into(),
        }]
    };
    let status = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details,
    };
    let mut status = Status::with_details(code, message, status.encode_to_vec().into());
    if let Some(secs) = retry_after {
        status
            .metadata_mut()
            .insert(RETRY_AFTER, tonic::metadata::MetadataValue::from(secs));
    }
    status
}

/// The ErrorDetail a status carries, if any (for the REST gateway and for clients).
pub fn error_detail(status: &Status) -> Option<ErrorDetail> {
    let decoded = rpc::Status::decode(status.details()).ok()?;
    decoded
        .details
        .iter()
        .find(|a| a.type_url == ERROR_DETAIL_TYPE)
        .and_then(|a| ErrorDetail::decode(a.value.as_ref()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_the_error_id() {
        let s = to_status(Error::not_found("QUERY-Dgr3g", "machine key not found"));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "machine key not found (QUERY-Dgr3g)");
        let d = error_detail(&s).unwrap();
        assert_eq!(
            (d.id.as_str(), d.message.as_str()),
            ("QUERY-Dgr3g", "machine key not found")
        );
    }
}
