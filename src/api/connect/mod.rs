//! The Connect protocol, as one generic gateway in front of every gRPC service: a Connect
//! request is turned into a gRPC request, handed in-process to the same tonic services native
//! gRPC clients reach, and the gRPC answer is turned back into Connect's — the bare message
//! (proto3 JSON or binary), or Connect's error JSON with the `zitadel.v1.ErrorDetail`.
//!
//! Nothing here is per method: `build.rs` lists every method of the descriptor set with its
//! request and response types (`connect_methods.rs`), which is all the JSON transcoding needs
//! ([`codec`]). What the protocol asks (connectrpc.com/docs/protocol, unary): `POST
//! /<pkg>.<Service>/<Method>` with `application/json` or `application/proto`;
//! `Content-Encoding` identity or gzip; `Connect-Timeout-Ms`; `Connect-Protocol-Version`
//! optional; 415 for other content types, 405 for GET, 501 for methods that are not served.
//! Streaming calls with binary messages pass through ([`stream`]); errors are [`error`]'s.
//! Which requests are Connect is [`Protocol`]'s decision, made once per request.
use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method as HttpMethod, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, Limited};
use tower::ServiceExt;

mod codec;
mod error;
pub mod stream;

pub use self::codec::Method;
pub use self::error::{error_response, status_response};
use self::{
    codec::{GZIP_MIN, Gunzip, accepts_gzip, gunzip, gzip},
    error::{http_error, plain_error},
};
pub use super::protocol::procedure;
use super::protocol::{ConnectCodec, GrpcWeb, Protocol, is_procedure};
use crate::error::Error;

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
        let methods = codec::methods().map(|m| (m.path, m)).collect();
        Connect {
            methods,
            grpc,
            max_body,
        }
    }
}

/// Answers Connect requests; gRPC-Web requests for a procedure with a codec other than
/// protobuf are refused here (tonic-web would answer a bare 400); everything else goes on.
pub async fn layer(State(connect): State<Arc<Connect>>, req: Request, next: Next) -> Response {
    match Protocol::of(&req) {
        Protocol::Connect(codec) => connect.serve(codec, req).await,
        Protocol::GrpcWeb(GrpcWeb {
            protobuf: false, ..
        }) if is_procedure(req.uri().path()) => unserved_grpc_web(&req),
        _ => next.run(req).await,
    }
}

/// A gRPC-Web request with a message codec other than protobuf (connect-web's gRPC-Web
/// transport with JSON sends `application/grpc-web+json`): say what is served instead.
fn unserved_grpc_web(req: &Request) -> Response {
    let content_type = content_type(req);
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let mut resp = http_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        tonic::Code::Unimplemented,
        format!(
            "{media_type} is not served; gRPC-Web clients send protobuf (application/grpc-web+proto or application/grpc-web-text)"
        ),
    );
    resp.headers_mut()
        .insert("grpc-status", HeaderValue::from_static("12"));
    resp
}

/// The request's content type, lowercased, for messages that quote it.
fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
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

impl Connect {
    async fn serve(&self, codec: Option<ConnectCodec>, req: Request) -> Response {
        let path = procedure(req.uri().path()).unwrap_or_default();
        if req.method() != HttpMethod::POST {
            let mut resp = http_error(
                StatusCode::METHOD_NOT_ALLOWED,
                tonic::Code::Unimplemented,
                format!(
                    "{} is not allowed on {path}: Connect unary calls are POST",
                    req.method()
                ),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        let codec = match codec {
            Some(ConnectCodec::StreamProto) => return self.stream(&path, req).await,
            Some(codec) => codec,
            None => {
                let content_type = content_type(&req);
                let mut resp = http_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    tonic::Code::Unimplemented,
                    format!(
                        "content type {content_type:?} is not served on {path}; use application/json or application/proto (Connect), or application/grpc, application/grpc-web"
                    ),
                );
                resp.headers_mut().insert(
                    "accept-post",
                    HeaderValue::from_static(
                        "application/json, application/proto, application/grpc, application/grpc-web",
                    ),
                );
                return resp;
            }
        };
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

    /// A unary call: the request body as one message (gunzipped, transcoded from JSON), the
    /// gRPC answer as Connect's.
    async fn call(&self, method: &'static Method, codec: ConnectCodec, req: Request) -> Response {
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
            match gunzip(&raw, self.max_body) {
                Ok(out) => out,
                Err(Gunzip::TooLarge) => {
                    return plain_error(
                        tonic::Code::ResourceExhausted,
                        format!(
                            "the decompressed request is larger than {} bytes",
                            self.max_body
                        ),
                    );
                }
                Err(Gunzip::Broken(e)) => {
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
            ConnectCodec::Proto | ConnectCodec::StreamProto => body,
            ConnectCodec::Json => match (method.decode_json)(&body) {
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
            ConnectCodec::Proto | ConnectCodec::StreamProto => payload.to_vec(),
            ConnectCodec::Json => match (method.encode_json)(payload) {
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
        let compressed = (out.len() >= GZIP_MIN && accepts_gzip(&parts.headers, gzipped))
            .then(|| gzip(&out))
            .flatten();
        let body = match compressed {
            Some(compressed) => {
                headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
                compressed
            }
            None => out,
        };
        let mut resp = (StatusCode::OK, body).into_response();
        for (name, value) in headers {
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}
