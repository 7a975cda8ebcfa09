//! The one mapping from [`Error`] to a gRPC status: code, `"<message> (<ID>)"`, and a
//! `zitadel.v1.ErrorDetail` packed in the `google.rpc.Status` of `grpc-status-details-bin`
//! (built by `proto::codec::detailed_status`), and `retry-after` when there is a delay.
use prost::Message;
use tonic::{Code, Status};

pub use crate::proto::codec::ERROR_DETAIL_TYPE;
use crate::{
    error::{Error, Kind},
    proto::{codec::detailed_status, google::rpc, zitadel::v1::ErrorDetail},
};

/// Trailer (gRPC) and header (REST, via the gateway) saying when to retry a rate-limited call.
pub const RETRY_AFTER: &str = "retry-after";

/// Trailers (gRPC) and headers (the HTTP protocols) of an unauthenticated answer: what the
/// server asks of the client (RFC 9110 §11.6.1) and DPoP's nonce (RFC 9449 §9).
pub const WWW_AUTHENTICATE: &str = "www-authenticate";
pub const DPOP_NONCE: &str = "dpop-nonce";

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

/// The status of `e` without the log line: for answers that are part of normal operation,
/// such as a stream ended at the server's time limit.
pub fn quiet_status(e: Error) -> Status {
    let mut status = detailed_status(code(e.kind), &e);
    if let Some(secs) = e.retry_after_secs {
        status
            .metadata_mut()
            .insert(RETRY_AFTER, tonic::metadata::MetadataValue::from(secs));
    }
    if let Some(challenge) = &e.challenge {
        let md = status.metadata_mut();
        if let Ok(v) = challenge.www_authenticate.parse() {
            md.insert(WWW_AUTHENTICATE, v);
        }
        if let Some(Ok(v)) = challenge.dpop_nonce.as_deref().map(str::parse) {
            md.insert(DPOP_NONCE, v);
        }
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
        let s = Status::from(Error::not_found("QUERY-Dgr3g", "machine key not found"));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "machine key not found (QUERY-Dgr3g)");
        let d = error_detail(&s).unwrap();
        assert_eq!(
            (d.id.as_str(), d.message.as_str()),
            ("QUERY-Dgr3g", "machine key not found")
        );
    }

    #[test]
    fn the_conversion_is_the_mapping() {
        let s: Status = Error::unavailable("SERVER-Busy1", "busy")
            .retry_after(3)
            .into();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.message(), "busy (SERVER-Busy1)");
        assert_eq!(s.metadata().get(RETRY_AFTER).unwrap(), "3");
        assert_eq!(error_detail(&s).unwrap().id, "SERVER-Busy1");
        // No id, no detail (protoc-gen-validate's answers carry none).
        let s = Status::from(Error::validation("value length must be at least 1 runes"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(error_detail(&s).is_none());
        assert!(s.metadata().get(RETRY_AFTER).is_none());
    }
}
