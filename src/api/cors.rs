//! CORS for browsers calling gRPC-Web, Connect, REST and OAuth from another origin.
//!
//! Allowed request headers are named, never `*`: by the Fetch standard a wildcard does not
//! cover `Authorization`, so a browser that enforces that (Chromium does) would block every
//! authenticated call. Credentials (cookies) are never allowed: callers send bearer tokens.
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{Error, Result};

/// Which origins may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<HeaderValue>),
}

impl CorsOrigins {
    /// `*`, or a comma-separated list of `scheme://host[:port]` origins.
    pub fn parse(text: &str) -> Result<CorsOrigins> {
        let text = text.trim();
        if text == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut origins = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || {
                Error::invalid_argument(
                    "CONFIG-Cors1",
                    format!(
                        "AUTHN_KEYS_CORS_ORIGINS: {item:?} is not an origin (scheme://host[:port], no path), nor `*`"
                    ),
                )
            };
            let url = url::Url::parse(item).map_err(|_| bad())?;
            let origin = url.origin();
            if !origin.is_tuple() || item.trim_end_matches('/') != origin.ascii_serialization() {
                return Err(bad());
            }
            origins.push(HeaderValue::from_str(&origin.ascii_serialization()).map_err(|_| bad())?);
        }
        if origins.is_empty() {
            return Err(Error::invalid_argument(
                "CONFIG-Cors2",
                "AUTHN_KEYS_CORS_ORIGINS is empty: give `*` or at least one origin",
            ));
        }
        Ok(CorsOrigins::List(origins))
    }
}

/// Request headers browsers' gRPC-Web, Connect and REST clients send that are not
/// CORS-safelisted.
const ALLOWED_HEADERS: [&str; 12] = [
    "authorization",
    "dpop",
    "content-type",
    "x-zitadel-orgid",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
    "connect-content-encoding",
    "x-request-id",
];

/// Response headers a page may read.
const EXPOSED_HEADERS: [&str; 8] = [
    "dpop-nonce",
    "www-authenticate",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "retry-after",
    "content-encoding",
];

/// How long a browser may cache a preflight answer (Chromium caps it at 2 h).
const MAX_AGE: Duration = Duration::from_secs(7200);

pub fn layer(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse() {
        assert_eq!(CorsOrigins::parse(" * ").unwrap(), CorsOrigins::Any);
        assert_eq!(
            CorsOrigins::parse("https://a.example, http://127.0.0.1:5173/").unwrap(),
            CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://127.0.0.1:5173"),
            ])
        );
        for bad in [
            "",
            "a.example",
            "https://a.example/path",
            "file:///x",
            " , ",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
