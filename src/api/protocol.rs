//! Which protocol a request speaks, decided once, and what the protocols share at the edge:
//! the gRPC code → HTTP status table and the `Retry-After` header.
//!
//! The observation layer, the outermost of the layers that care, classifies every request
//! ([`Protocol::mark`]) and keeps the answer in the request's extensions; the limits layer,
//! the Connect gateway and the router's fallback read it from there ([`Protocol::of`]) and
//! the metrics label requests with it, so all four agree on every request.
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use tonic::Code;

/// The protocol of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: `application/grpc`, `application/grpc+proto`, … (tonic routes it by its path).
    Grpc,
    /// gRPC-Web, binary or base64 text, answered by tonic-web in front of the same services.
    GrpcWeb(GrpcWeb),
    /// Connect: any other request for a procedure path `/<pkg>.<Service>/<Method>`, answered
    /// by the Connect gateway; `None` when its content type is not one the gateway serves.
    Connect(Option<ConnectCodec>),
    /// The REST/JSON gateway: `/management/v1/…` and the v2 REST routes (`/v2/users/…`).
    Rest,
    /// The OAuth and OpenID Connect endpoints: `/oauth/v2/…` and `/.well-known/…`.
    OAuth,
    /// The console's files under `/ui`.
    Console,
    /// Everything else on plain HTTP: liveness, readiness, metrics, unknown paths.
    Http,
}

/// How a gRPC-Web request carries its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcWeb {
    /// `application/grpc-web-text`: base64 (Google's grpc-web client); binary otherwise.
    pub text: bool,
    /// Protobuf messages (no suffix or `+proto`), the only codec served; connect-web's
    /// gRPC-Web transport with JSON sends `application/grpc-web+json`.
    pub protobuf: bool,
}

/// The message codecs the Connect gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCodec {
    /// Unary, proto3 JSON.
    Json,
    /// Unary, binary protobuf.
    Proto,
    /// Streaming with binary messages (reflection, health watches): envelopes in, envelopes
    /// out, ended by an end-of-stream envelope.
    StreamProto,
}

impl ConnectCodec {
    pub fn content_type(self) -> &'static str {
        match self {
            ConnectCodec::Json => "application/json",
            ConnectCodec::Proto => "application/proto",
            ConnectCodec::StreamProto => "application/connect+proto",
        }
    }

    fn of_media_type(media: &str) -> Option<ConnectCodec> {
        [
            ConnectCodec::Json,
            ConnectCodec::Proto,
            ConnectCodec::StreamProto,
        ]
        .into_iter()
        .find(|c| media.eq_ignore_ascii_case(c.content_type()))
    }
}

/// Path prefixes of the REST gateway: v1 (`rest::routes`), v2 (`rest::user_v2_routes`) and
/// authnkeys.v1 (`rest::authnkeys_routes`).
const REST_PREFIXES: &[&str] = &["/management/", "/v2/", "/v1/"];
/// Path prefixes of the OAuth and OpenID Connect endpoints (`oauth::routes`).
const OAUTH_PREFIXES: &[&str] = &["/oauth/", "/.well-known/"];

impl Protocol {
    /// Classifies a request by its path and content type. The content type decides gRPC and
    /// gRPC-Web (media types compare case-insensitively, parameters ignored); any other
    /// request for a procedure path is Connect, whatever its method (the gateway answers a
    /// GET 405, as the protocol asks) and whether or not it sends `Connect-Protocol-Version`
    /// (optional in the protocol); the rest is told apart by its path.
    pub fn classify(path: &str, headers: &HeaderMap) -> Protocol {
        let media = media_type(headers);
        if let Some(codec) = strip_prefix_ignore_case(media, "application/grpc-web-text") {
            return Protocol::GrpcWeb(GrpcWeb {
                text: true,
                protobuf: protobuf_suffix(codec),
            });
        }
        if let Some(codec) = strip_prefix_ignore_case(media, "application/grpc-web") {
            return Protocol::GrpcWeb(GrpcWeb {
                text: false,
                protobuf: protobuf_suffix(codec),
            });
        }
        if strip_prefix_ignore_case(media, "application/grpc").is_some() {
            return Protocol::Grpc;
        }
        if is_procedure(path) {
            Protocol::Connect(ConnectCodec::of_media_type(media))
        } else if OAUTH_PREFIXES.iter().any(|p| path.starts_with(p)) {
            Protocol::OAuth
        } else if REST_PREFIXES.iter().any(|p| path.starts_with(p)) {
            Protocol::Rest
        } else if path == "/ui" || path.starts_with("/ui/") {
            Protocol::Console
        } else {
            Protocol::Http
        }
    }

    /// Classifies `req` and keeps the answer in its extensions for the inner layers.
    pub fn mark<B>(req: &mut Request<B>) -> Protocol {
        let protocol = Protocol::classify(req.uri().path(), req.headers());
        req.extensions_mut().insert(protocol);
        protocol
    }

    /// The protocol [`Protocol::mark`] found, or (for a request that did not pass the
    /// observation layer) the same classification made now.
    pub fn of<B>(req: &Request<B>) -> Protocol {
        req.extensions()
            .get::<Protocol>()
            .copied()
            .unwrap_or_else(|| Protocol::classify(req.uri().path(), req.headers()))
    }

    /// The `transport` label of the metrics and the tracing span.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb(_) => "grpc-web",
            Protocol::Connect(_) => "connect",
            Protocol::Rest => "rest",
            Protocol::OAuth => "oauth",
            Protocol::Console => "console",
            Protocol::Http => "http",
        }
    }

    /// Whether the request calls an RPC by its procedure path (gRPC, gRPC-Web, Connect).
    pub fn is_rpc(self) -> bool {
        matches!(
            self,
            Protocol::Grpc | Protocol::GrpcWeb(_) | Protocol::Connect(_)
        )
    }
}

/// The media type of the request's content type, without parameters; empty when absent.
fn media_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map_or("", str::trim)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..prefix.len())?;
    // An ASCII prefix matched, so the rest starts on a character boundary.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn protobuf_suffix(codec: &str) -> bool {
    codec.is_empty() || codec.eq_ignore_ascii_case("+proto")
}

/// Whether `path` is `/<pkg>.<Service>/<Method>`: a dotted name, then an identifier. Clients
/// whose base URL ends in `/` send `//<pkg>…`, which is the same procedure.
pub fn is_procedure(path: &str) -> bool {
    let trimmed = path.trim_start_matches('/');
    let Some((service, method)) = trimmed.split_once('/') else {
        return false;
    };
    let ident = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    service.contains('.') && service.split('.').all(ident) && ident(method)
}

/// The procedure `path` names, as `/<pkg>.<Service>/<Method>` with one leading slash.
pub fn procedure(path: &str) -> Option<String> {
    is_procedure(path).then(|| format!("/{}", path.trim_start_matches('/')))
}

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

/// The HTTP headers a gRPC status's metadata stands for: `Retry-After`, `WWW-Authenticate`
/// and `DPoP-Nonce`, for the protocols that answer them as headers (REST, Connect).
pub fn set_status_headers(headers: &mut HeaderMap, status: &tonic::Status) {
    use super::grpc::status::{DPOP_NONCE, WWW_AUTHENTICATE};
    set_retry_after(headers, retry_after_of(status));
    for name in [WWW_AUTHENTICATE, DPOP_NONCE] {
        if let Some(v) = status.metadata().get(name).and_then(|v| v.to_str().ok())
            && let Ok(v) = HeaderValue::from_str(v)
        {
            headers.insert(header::HeaderName::from_static(name), v);
        }
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

    fn classify(path: &str, content_type: Option<&str>) -> Protocol {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        Protocol::classify(path, &headers)
    }

    #[test]
    fn every_route_family_has_its_protocol() {
        let rpc = "/zitadel.user.v2.UserService/AddKey";
        let web = |text, protobuf| Protocol::GrpcWeb(GrpcWeb { text, protobuf });
        for (path, ct, want) in [
            (rpc, Some("application/grpc"), Protocol::Grpc),
            (rpc, Some("application/grpc+proto"), Protocol::Grpc),
            (rpc, Some("Application/GRPC; charset=x"), Protocol::Grpc),
            (
                "/no.such.Service/X",
                Some("application/grpc"),
                Protocol::Grpc,
            ),
            ("/healthz", Some("application/grpc"), Protocol::Grpc),
            (rpc, Some("application/grpc-web"), web(false, true)),
            (rpc, Some("application/grpc-web+proto"), web(false, true)),
            (rpc, Some("application/grpc-web+json"), web(false, false)),
            (rpc, Some("application/grpc-web-text"), web(true, true)),
            (
                rpc,
                Some("application/grpc-web-text+proto"),
                web(true, true),
            ),
            (
                rpc,
                Some("application/grpc-web-text+json"),
                web(true, false),
            ),
            (
                rpc,
                Some("application/json"),
                Protocol::Connect(Some(ConnectCodec::Json)),
            ),
            (
                rpc,
                Some("application/json; charset=utf-8"),
                Protocol::Connect(Some(ConnectCodec::Json)),
            ),
            (
                rpc,
                Some("application/proto"),
                Protocol::Connect(Some(ConnectCodec::Proto)),
            ),
            (
                "/grpc.health.v1.Health/Watch",
                Some("application/connect+proto"),
                Protocol::Connect(Some(ConnectCodec::StreamProto)),
            ),
            (
                "//zitadel.user.v2.UserService/AddKey",
                Some("application/json"),
                Protocol::Connect(Some(ConnectCodec::Json)),
            ),
            (rpc, Some("text/plain"), Protocol::Connect(None)),
            (
                rpc,
                Some("application/connect+json"),
                Protocol::Connect(None),
            ),
            (rpc, None, Protocol::Connect(None)),
            (
                "/management/v1/users/_search",
                Some("application/json"),
                Protocol::Rest,
            ),
            ("/management/v1/orgs/me", None, Protocol::Rest),
            ("/v2/users/new", Some("application/json"), Protocol::Rest),
            ("/v2/users/u1/keys/k1", None, Protocol::Rest),
            ("/oauth/v2/token", None, Protocol::OAuth),
            ("/oauth/v2/keys", None, Protocol::OAuth),
            ("/.well-known/openid-configuration", None, Protocol::OAuth),
            (
                "/.well-known/oauth-authorization-server",
                None,
                Protocol::OAuth,
            ),
            ("/oauth/v2/revoke", None, Protocol::OAuth),
            ("/ui", None, Protocol::Console),
            ("/ui/app.js", None, Protocol::Console),
            ("/uiextra", None, Protocol::Http),
            ("/healthz", None, Protocol::Http),
            ("/metrics", None, Protocol::Http),
            ("/debug/ready", None, Protocol::Http),
            ("/no/such/path", Some("application/json"), Protocol::Http),
        ] {
            assert_eq!(classify(path, ct), want, "{path} {ct:?}");
        }
    }

    #[test]
    fn the_mark_is_what_inner_layers_read() {
        let mut req = Request::builder().uri("/v2/users/new").body(()).unwrap();
        assert_eq!(Protocol::mark(&mut req), Protocol::Rest);
        // A later change of the headers does not reclassify the request.
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        assert_eq!(Protocol::of(&req), Protocol::Rest);
        assert_eq!(Protocol::Rest.label(), "rest");
    }

    #[test]
    fn procedure_paths() {
        assert_eq!(
            procedure("/zitadel.user.v2.UserService/AddKey").as_deref(),
            Some("/zitadel.user.v2.UserService/AddKey")
        );
        assert_eq!(
            procedure("//zitadel.user.v2.UserService/AddKey").as_deref(),
            Some("/zitadel.user.v2.UserService/AddKey")
        );
        for not in [
            "/.well-known/openid-configuration",
            "/management/v1/users/_search",
            "/ui/app.js",
            "/oauth/v2/token",
            "/healthz",
            "/a.b/c/d",
            "/a.b/",
        ] {
            assert_eq!(procedure(not), None, "{not}");
        }
    }

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
