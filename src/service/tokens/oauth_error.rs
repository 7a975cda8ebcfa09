//! OAuth errors (RFC 6749 §5.2): a code and a description that names the failed check.
use crate::error::{Error, Kind};

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnsupportedGrantType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    /// Too many failed attempts: HTTP 429 with `Retry-After`, body code
    /// `temporarily_unavailable`.
    RateLimited,
    /// RFC 9449 §5: the DPoP proof is missing where required, malformed or fails a check.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the server's nonce (given in `DPoP-Nonce`).
    UseDpopNonce,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::ServerError => "server_error",
            OAuthErrorCode::TemporarilyUnavailable | OAuthErrorCode::RateLimited => {
                "temporarily_unavailable"
            }
            OAuthErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            OAuthErrorCode::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// Whether the caller got something wrong (and is charged a failure for it).
    pub(crate) fn is_client_failure(self) -> bool {
        !matches!(
            self,
            OAuthErrorCode::ServerError
                | OAuthErrorCode::TemporarilyUnavailable
                | OAuthErrorCode::RateLimited
                // Not a failure: the RFC's way of handing out the nonce.
                | OAuthErrorCode::UseDpopNonce
        )
    }
}

/// An OAuth error with a description that names the failed check.
#[derive(Debug)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
    /// Seconds to wait, for [`OAuthErrorCode::RateLimited`].
    pub retry_after_secs: Option<u64>,
    /// The cause of a server error, for the log.
    pub source: Option<Box<Error>>,
    /// The nonce for the client's next DPoP proof (`DPoP-Nonce`).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            retry_after_secs: None,
            source: None,
            dpop_nonce: None,
        }
    }
    pub(crate) fn grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        let code = match e.kind {
            Kind::Unavailable => OAuthErrorCode::TemporarilyUnavailable,
            Kind::ResourceExhausted => OAuthErrorCode::RateLimited,
            _ => OAuthErrorCode::ServerError,
        };
        OAuthError {
            code,
            description: e.message.to_string(),
            retry_after_secs: e.retry_after_secs,
            // A rate limit is the caller's business, not a server fault to log with a cause.
            source: (code != OAuthErrorCode::RateLimited).then(|| Box::new(e)),
            dpop_nonce: None,
        }
    }
}

/// A token request's refused DPoP proof, as the token endpoint answers it (RFC 9449 §5, §8).
impl From<crate::service::dpop::Refusal> for OAuthError {
    fn from(r: crate::service::dpop::Refusal) -> Self {
        use crate::service::dpop::Refusal;
        match r {
            Refusal::Invalid(m) => OAuthError::new(OAuthErrorCode::InvalidDpopProof, m),
            Refusal::UseNonce(m, nonce) => OAuthError {
                dpop_nonce: Some(nonce),
                ..OAuthError::new(OAuthErrorCode::UseDpopNonce, m)
            },
            Refusal::Failed(e) => e.into(),
        }
    }
}
