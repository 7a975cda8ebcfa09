//! The one error type of the service. Every layer returns it; each protocol maps it once
//! (gRPC status in `api::grpc::status`, HTTP/JSON in `api::rest`, RFC 6749 in `api::oauth`).
use std::{borrow::Cow, fmt};

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    /// A rate limit or quota (retry later, see [`Error::retry_after_secs`]), or a message
    /// over the size limit (gRPC's RESOURCE_EXHAUSTED).
    ResourceExhausted,
    Unavailable,
    Unimplemented,
    Internal,
}

/// An error with a stable id (ZITADEL's where the contract names one, e.g. `COMMAND-bnipwm1`),
/// a message a person understands, and the cause kept for the log.
pub struct Error {
    pub kind: Kind,
    pub id: &'static str,
    pub message: Cow<'static, str>,
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// When to retry, for rate limits and load shedding (HTTP `Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// What an unauthenticated answer asks of the client (`WWW-Authenticate`, DPoP's nonce).
    pub challenge: Option<Box<Challenge>>,
}

/// What a 401 asks of the client (RFC 9110 §11.6.1): the `WWW-Authenticate` value and, when
/// the server wants its nonce in DPoP proofs, the nonce to use (`DPoP-Nonce`, RFC 9449 §9).
/// Carried as metadata of the gRPC status and as headers by the HTTP protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub www_authenticate: String,
    pub dpop_nonce: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            id,
            message: message.into(),
            source: None,
            retry_after_secs: None,
            challenge: None,
        }
    }

    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(Box::new(challenge));
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
    pub fn invalid_argument(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::InvalidArgument, id, message)
    }
    pub fn not_found(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::NotFound, id, message)
    }
    pub fn already_exists(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::AlreadyExists, id, message)
    }
    pub fn failed_precondition(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::FailedPrecondition, id, message)
    }
    pub fn permission_denied(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::PermissionDenied, id, message)
    }
    pub fn unauthenticated(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Unauthenticated, id, message)
    }
    pub fn unavailable(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Unavailable, id, message)
    }
    pub fn internal(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::Internal, id, message)
    }

    /// Keeps `source` as the cause (for the log; it never reaches the client).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The text clients see: `"<message> (<ID>)"`, as ZITADEL writes it.
    /// A request that breaks a field rule of the proto (protoc-gen-validate's wording): no
    /// error id, so no ErrorDetail, as upstream sends none for these.
    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Kind::InvalidArgument, "", message)
    }

    pub fn client_message(&self) -> String {
        if self.id.is_empty() {
            self.message.to_string()
        } else {
            format!("{} ({})", self.message, self.id)
        }
    }

    /// The cause chain, for the one log line written at the edge.
    pub fn cause_chain(&self) -> String {
        let mut out = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("message", &self.message)
            .field("source", &self.cause_chain())
            .field("retry_after_secs", &self.retry_after_secs)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.client_message())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
