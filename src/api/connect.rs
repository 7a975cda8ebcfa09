//! The Connect protocol (unary), as one generic gateway in front of every gRPC service: a
//! Connect request is turned into a gRPC request, handed in-process to the same tonic services
//! native gRPC clients reach, and the gRPC answer is turned back into Connect's — the bare
//! message (proto3 JSON or binary), or Connect's error JSON with the `zitadel.v1.ErrorDetail`.
//!
//! Nothing here is per method: `build.rs` lists every method of the descriptor set with its
//! request and response types (`connect_methods.rs`), which is all the JSON transcoding needs.
//! What the protocol asks (connectrpc.com/docs/protocol, unary): `POST /<pkg>.<Service>/<Method>`
//! with `application/json` or `application/proto`; `Content-Encoding` identity or gzip;
//! `Connect-Timeout-Ms`; `Connect-Protocol-Version` optional; 415 for other content types,
//! 405 for GET, 501 for methods that are not served.
use std::{collections::HashMap, io::Read, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use http_body_util::{BodyExt, Limited};
use prost::Message;
use serde::{Serialize, de::DeserializeOwned};
use tower::ServiceExt;

use super::grpc::status::{ERROR_DETAIL_TYPE, to_status};
use crate::{
    error::Error,
    proto::{google::rpc, zitadel::v1::ErrorDetail},
};

/// One unary method: its path and how its messages go between proto3 JSON and binary.
pub struct Method {
    pub path: &'static str,
    decode_json: fn(&[u8]) -> Result<Vec<u8>, String>,
    encode_json: fn(&[u8]) -> Result<Vec<u8>, String>,
}

impl Method {
    pub const fn of<Req, Resp>(path: &'static str) -> Method
    where
        Req: Message + Default + DeserializeOwned + 'static,
        Resp: Message + Default + Serialize + 'static,
    {
        Method {
            path,
            decode_json: json_to_proto::<Req>,
            encode_json: proto_to_json::<Resp>,
        }
    }
}

fn json_to_proto<T: Message + Default + DeserializeOwned>(json: &[u8]) -> Result<Vec<u8>, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err("the request body is empty; a JSON request needs at least {}".into());
    }
    let message: T = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(message.encode_to_vec())
}

fn proto_to_json<T: Message + Default + Serialize>(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let message = T::decode(bytes).map_err(|e| e.to_string())?;
    serde_json::to_vec(&message).map_err(|e| e.to_string())
}

static GENERATED: &[Method] = include!(concat!(env!("OUT_DIR"), "/connect_methods.rs"));

/// grpc.health.v1 comes with tonic-health, whose types have no proto3-JSON impls: its two
/// small messages are transcoded by hand.
static HEALTH: &[Method] = &[Method {
    path: "/grpc.health.v1.Health/Check",
    decode_json: health_request,
    encode_json: health_response,
}];

fn health_request(json: &[u8]) -> Result<Vec<u8>, String> {
    #[derive(serde::Deserialize)]
    struct Check {
        #[serde(default)]
        service: Option<String>,
    }
    let check: Check = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    Ok(tonic_health::pb::HealthCheckRequest {
        service: check.service.unwrap_or_default(),
    }
    .encode_to_vec())
}

fn health_response(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let resp = tonic_health::pb::HealthCheckResponse::decode(bytes).map_err(|e| e.to_string())?;
    let status = ServingStatus::try_from(resp.status).unwrap_or(ServingStatus::Unknown);
    Ok(match status {
        ServingStatus::Unknown => b"{}".to_vec(),
        s => format!("{{\"status\":\"{}\"}}", s.as_str_name()).into_bytes(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
    /// Connect streaming with binary messages (reflection, health watches): envelopes in,
    /// envelopes out, ended by an end-of-stream envelope.
    StreamProto,
}

impl Codec {
    fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
            Codec::StreamProto => "application/connect+proto",
        }
    }
}

/// The gateway: the methods it knows and the gRPC services it calls in-process.
pub struct Connect {
    methods: HashMap<&'static str, &'static Method>,
    grpc: axum::Router,
    max_body: usize,
}

impl Connect {
    /// `grpc`: the plain gRPC services (no gRPC-Web layer, no outer layers: this request is
    /// already being limited and observed).
    pub fn new(grpc: axum::Router, max_body: usize) -> Connect {
        let methods = GENERATED
            .iter()
            .chain(HEALTH)
            .map(|m| (m.path, m))
            .collect();
        Connect {
            methods,
            grpc,
            max_body,
        }
    }
}

/// `/<pkg>.<Service>/<Method>`: a dotted name, then an identifier. Clients whose base URL
/// ends in `/` send `//<pkg>…`; that is read as the same path, which is returned.
pub fn procedure(path: &str) -> Option<String> {
    let trimmed = path.trim_start_matches('/');
    let (service, method) = trimmed.split_once('/')?;
    let ident = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    (service.contains('.') && service.split('.').all(ident) && ident(method))
        .then(|| format!("/{trimmed}"))
}

/// Whether a request is for this gateway: a procedure path, and not gRPC or gRPC-Web (those
/// go to tonic as they are).
pub fn is_connect(req: &Request) -> bool {
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    !grpc && procedure(req.uri().path()).is_some()
}

pub async fn layer(State(connect): State<Arc<Connect>>, req: Request, next: Next) -> Response {
    if let Some(codec) = unserved_grpc_web(&req) {
        // tonic-web would answer a bare 400: say what is served instead.
        let mut resp = plain_error(
            tonic::Code::Unimplemented,
            format!(
                "{codec} is not served; gRPC-Web clients send protobuf (application/grpc-web+proto or application/grpc-web-text)"
            ),
        );
        *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        resp.headers_mut()
            .insert("grpc-status", HeaderValue::from_static("12"));
        return resp;
    }
    if !is_connect(&req) {
        return next.run(req).await;
    }
    connect.serve(req).await
}

/// A gRPC-Web request with a message codec other than protobuf (connect-web's gRPC-Web
/// transport with JSON sends `application/grpc-web+json`).
fn unserved_grpc_web(req: &Request) -> Option<String> {
    let ct = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let ct = ct.split(';').next()?.trim().to_ascii_lowercase();
    let codec = ct
        .strip_prefix("application/grpc-web-text")
        .or_else(|| ct.strip_prefix("application/grpc-web"))?;
    (!codec.is_empty() && codec != "+proto" && procedure(req.uri().path()).is_some()).then_some(ct)
}

/// Connect's name for a gRPC code.
fn code_name(code: tonic::Code) -> &'static str {
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

/// Connect's HTTP status for a code.
fn http_status(code: tonic::Code) -> StatusCode {
    use tonic::Code::*;
    let n = match code {
        Ok => 200,
        Cancelled => 499,
        Unknown | Internal | DataLoss => 500,
        InvalidArgument | FailedPrecondition | OutOfRange => 400,
        DeadlineExceeded => 504,
        NotFound => 404,
        AlreadyExists | Aborted => 409,
        PermissionDenied => 403,
        ResourceExhausted => 429,
        Unimplemented => 501,
        Unavailable => 503,
        Unauthenticated => 401,
    };
    StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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

/// Connect's error body for a gRPC status: `{"code", "message", "details": [{type, value,
/// debug}]}`; `details` left out when there are none. Always JSON, whatever the request's
/// codec, as the protocol says.
pub fn status_response(status: &tonic::Status) -> Response {
    let details = error_details(status);
    let mut body = serde_json::json!({
        "code": code_name(status.code()),
        "message": status.message(),
    });
    if !details.is_empty() {
        body["details"] = serde_json::Value::Array(details);
    }
    let mut resp = (
        http_status(status.code()),
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response();
    if let Some(v) = status.metadata().get(super::grpc::status::RETRY_AFTER)
        && let Ok(v) = HeaderValue::from_bytes(v.as_bytes())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Connect's error body for one of our errors (with its ErrorDetail).
pub fn error_response(e: Error) -> Response {
    status_response(&to_status(e))
}

/// An error without details (decode and protocol errors carry none).
fn plain_error(code: tonic::Code, message: impl Into<String>) -> Response {
    status_response(&tonic::Status::new(code, message))
}

/// Connect's end-of-stream envelope (flag 0x02): `{}` on success, `{"error": …}` otherwise.
fn end_of_stream(status: &tonic::Status) -> Vec<u8> {
    let json = if status.code() == tonic::Code::Ok {
        b"{}".to_vec()
    } else {
        let mut error =
            serde_json::json!({"code": code_name(status.code()), "message": status.message()});
        let details = error_details(status);
        if !details.is_empty() {
            error["details"] = serde_json::Value::Array(details);
        }
        serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default()
    };
    let mut out = Vec::with_capacity(json.len() + 5);
    out.push(0x02);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// A stream that ends at once: HTTP 200 and the end-of-stream envelope alone.
fn stream_end_only(status: &tonic::Status) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, Codec::StreamProto.content_type())],
        end_of_stream(status),
    )
        .into_response()
}

/// Request headers that belong to the Connect or HTTP layer, not to the call.
fn call_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    !(n.starts_with("connect-")
        || n.starts_with("grpc-")
        || matches!(
            n,
            "content-type"
                | "content-length"
                | "content-encoding"
                | "accept-encoding"
                | "accept"
                | "te"
                | "host"
                | "connection"
                | "transfer-encoding"
                | "upgrade"
        ))
}

/// `Connect-Timeout-Ms`, or a message saying why it is not one.
fn timeout(headers: &HeaderMap) -> Result<Option<Duration>, String> {
    let Some(v) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or("");
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Connect-Timeout-Ms must be 1 to 10 digits, got {text:?}"
        ));
    }
    Ok(text.parse::<u64>().ok().map(Duration::from_millis))
}

/// Whether the answer may be gzipped: `Accept-Encoding` lists gzip, or (absent) the request
/// itself was gzipped.
fn accepts_gzip(headers: &HeaderMap, request_gzipped: bool) -> bool {
    match headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None => request_gzipped,
        Some(list) => list.split(',').any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        }),
    }
}

/// Answers smaller than this are sent as they are: gzip would not pay for itself.
const GZIP_MIN: usize = 1024;

impl Connect {
    async fn serve(&self, req: Request) -> Response {
        let path = procedure(req.uri().path()).unwrap_or_default();
        if req.method() != HttpMethod::POST {
            let mut resp = plain_error(
                tonic::Code::Unimplemented,
                format!(
                    "{} is not allowed on {path}: Connect unary calls are POST",
                    req.method()
                ),
            );
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let codec = match content_type.split(';').next().unwrap_or("").trim() {
            "application/json" => Codec::Json,
            "application/proto" => Codec::Proto,
            "application/connect+proto" => Codec::StreamProto,
            _ => {
                let mut resp = plain_error(
                    tonic::Code::Unimplemented,
                    format!(
                        "content type {content_type:?} is not served on {path}; use application/json or application/proto (Connect), or application/grpc, application/grpc-web"
                    ),
                );
                *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
                resp.headers_mut().insert(
                    "accept-post",
                    HeaderValue::from_static(
                        "application/json, application/proto, application/grpc, application/grpc-web",
                    ),
                );
                return resp;
            }
        };
        if codec == Codec::StreamProto {
            return self.stream(&path, req).await;
        }
        let Some(method) = self.methods.get(path.as_str()).copied() else {
            return plain_error(
                tonic::Code::Unimplemented,
                format!("{path} is not implemented"),
            );
        };
        let deadline = match timeout(req.headers()) {
            Ok(d) => d,
            Err(message) => return plain_error(tonic::Code::InvalidArgument, message),
        };
        let call = self.call(method, codec, req);
        match deadline {
            None => call.await,
            Some(d) => match tokio::time::timeout(d, call).await {
                Ok(resp) => resp,
                Err(_) => plain_error(
                    tonic::Code::DeadlineExceeded,
                    format!(
                        "the call did not complete within Connect-Timeout-Ms ({} ms)",
                        d.as_millis()
                    ),
                ),
            },
        }
    }

    /// The same call as gRPC, with the caller's headers and address, answered in-process by
    /// the gRPC services; `None` when the request cannot be built.
    async fn grpc_call(
        &self,
        path: &str,
        parts: &axum::http::request::Parts,
        body: Body,
    ) -> Option<Response> {
        let mut grpc = axum::http::Request::builder()
            .method(HttpMethod::POST)
            .uri(path)
            .version(axum::http::Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers");
        for (name, value) in parts.headers.iter().filter(|(n, _)| call_header(n)) {
            grpc = grpc.header(name, value);
        }
        let mut grpc = grpc.body(body).ok()?;
        if let Some(peer) = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            grpc.extensions_mut().insert(*peer);
        }
        match self.grpc.clone().oneshot(grpc).await {
            Ok(resp) => Some(resp),
            Err(never) => match never {},
        }
    }

    /// A streaming call: the envelopes pass both ways unchanged (Connect's envelope is gRPC's
    /// length-prefixed message), and the gRPC trailers become Connect's end-of-stream message.
    async fn stream(&self, path: &str, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let compressed = parts
            .headers
            .get("connect-content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.eq_ignore_ascii_case("identity"));
        if compressed {
            return stream_end_only(&tonic::Status::unimplemented(
                "compressed Connect streams are not supported; send identity",
            ));
        }
        let Some(answer) = self.grpc_call(path, &parts, body).await else {
            return stream_end_only(&tonic::Status::internal("cannot build the call"));
        };
        let (head, body) = answer.into_parts();
        if head.headers.contains_key("grpc-status") || head.status == StatusCode::NOT_FOUND {
            // Trailers only: the call ended before any message.
            let status = tonic::Status::from_header_map(&head.headers).unwrap_or_else(|| {
                tonic::Status::unimplemented(format!("{path} is not implemented"))
            });
            return stream_end_only(&status);
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
            HeaderValue::from_static(Codec::StreamProto.content_type()),
        );
        resp
    }

    async fn call(&self, method: &'static Method, codec: Codec, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let encoding = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity")
            .trim()
            .to_ascii_lowercase();
        let gzipped = match encoding.as_str() {
            "identity" | "" => false,
            "gzip" => true,
            other => {
                return plain_error(
                    tonic::Code::Unimplemented,
                    format!("content encoding {other:?} is not supported; use gzip or identity"),
                );
            }
        };
        let raw = match Limited::new(body, self.max_body).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return plain_error(
                    tonic::Code::ResourceExhausted,
                    format!("the request body is larger than {} bytes", self.max_body),
                );
            }
        };
        let body = if gzipped && !raw.is_empty() {
            let mut out = Vec::new();
            let limit = self.max_body as u64 + 1;
            match flate2::read::GzDecoder::new(raw.as_ref())
                .take(limit)
                .read_to_end(&mut out)
            {
                Ok(_) if out.len() as u64 >= limit => {
                    return plain_error(
                        tonic::Code::ResourceExhausted,
                        format!(
                            "the decompressed request is larger than {} bytes",
                            self.max_body
                        ),
                    );
                }
                Ok(_) => out,
                Err(e) => {
                    return plain_error(
                        tonic::Code::InvalidArgument,
                        format!("the gzip request body does not decompress: {e}"),
                    );
                }
            }
        } else {
            raw.to_vec()
        };
        let message = match codec {
            Codec::Proto | Codec::StreamProto => body,
            Codec::Json => match (method.decode_json)(&body) {
                Ok(m) => m,
                Err(e) => {
                    return plain_error(
                        tonic::Code::InvalidArgument,
                        format!(
                            "the request body is not valid JSON for {}: {e}",
                            method.path
                        ),
                    );
                }
            },
        };

        // The same request as a gRPC one, with the caller's headers.
        let mut frame = Vec::with_capacity(message.len() + 5);
        frame.push(0);
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        let Some(answer) = self.grpc_call(method.path, &parts, Body::from(frame)).await else {
            return error_response(Error::internal("CONNECT-Req01", "cannot build the call"));
        };
        let (head, body) = answer.into_parts();
        let collected = match body.collect().await {
            Ok(c) => c,
            Err(e) => {
                return error_response(
                    Error::internal("CONNECT-Res01", "the call's answer could not be read")
                        .with_source(e),
                );
            }
        };
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let data = collected.to_bytes();
        let status_of = |h: &HeaderMap| {
            h.get("grpc-status")
                .map(|_| tonic::Status::from_header_map(h))
        };
        let status = status_of(&head.headers)
            .or_else(|| status_of(&trailers))
            .flatten();
        match status {
            Some(s) if s.code() == tonic::Code::Unimplemented && s.message().is_empty() => {
                return plain_error(
                    tonic::Code::Unimplemented,
                    format!("{} is not implemented", method.path),
                );
            }
            Some(s) if s.code() != tonic::Code::Ok => return status_response(&s),
            Some(_) => {}
            None if head.status == StatusCode::NOT_FOUND => {
                return plain_error(
                    tonic::Code::Unimplemented,
                    format!("{} is not implemented", method.path),
                );
            }
            None => {
                return error_response(Error::internal(
                    "CONNECT-Res02",
                    format!(
                        "the call answered HTTP {} without a gRPC status",
                        head.status
                    ),
                ));
            }
        }
        // One length-prefixed, uncompressed message.
        if data.len() < 5 || data[0] != 0 {
            return error_response(Error::internal(
                "CONNECT-Res03",
                "the call's answer is not one uncompressed gRPC message",
            ));
        }
        let payload = &data[5..];
        let out = match codec {
            Codec::Proto | Codec::StreamProto => payload.to_vec(),
            Codec::Json => match (method.encode_json)(payload) {
                Ok(json) => json,
                Err(e) => {
                    return error_response(Error::internal(
                        "CONNECT-Enc01",
                        format!("cannot encode the answer: {e}"),
                    ));
                }
            },
        };
        let mut headers = vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(codec.content_type()),
            ),
            // Management answers are private (some carry key files): no cache may keep them.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        let body = if out.len() >= GZIP_MIN && accepts_gzip(&parts.headers, gzipped) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            use std::io::Write;
            match gz.write_all(&out).and_then(|()| gz.finish()) {
                Ok(compressed) => {
                    headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
                    compressed
                }
                Err(_) => out,
            }
        } else {
            out
        };
        let mut resp = (StatusCode::OK, body).into_response();
        for (name, value) in headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gzip_negotiation() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(accepts_gzip(&with("gzip, deflate"), false));
        assert!(!accepts_gzip(&with("identity"), true));
        assert!(!accepts_gzip(&with("gzip;q=0"), false));
        assert!(accepts_gzip(&HeaderMap::new(), true));
        assert!(!accepts_gzip(&HeaderMap::new(), false));
    }

    #[test]
    fn codes_and_statuses() {
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "failed_precondition"
        );
        assert_eq!(
            http_status(tonic::Code::FailedPrecondition),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(http_status(tonic::Code::Cancelled).as_u16(), 499);
        assert_eq!(http_status(tonic::Code::Unimplemented).as_u16(), 501);
    }
}
