//! Observation as one layer around every request: a request id (the caller's `x-request-id`
//! when it sends a sane one, else a new one) in a tracing span and in the response, and the
//! Prometheus figures served at `/metrics` — requests and latency per RPC and transport, errors
//! by code, OAuth outcomes, and, read at scrape time, key generation, the key pool, rate-limit
//! refusals and the database pool.
//!
//! The registry belongs to one server (no global recorder), so several servers in one process
//! keep their figures apart. Method labels are bounded: gRPC paths only when they name a
//! served method, REST routes by their template, anything else `unmatched`.
use std::{collections::HashSet, sync::Arc, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use prost::Message;
use tracing::Instrument;

use super::protocol::{Protocol, procedure};
use crate::{service::Services, storage};

pub const REQUEST_ID: &str = "x-request-id";

/// Set on a response by the OAuth endpoints: how the request ended (`ok`, `active`,
/// `inactive`, or the RFC 6749 error code).
#[derive(Debug, Clone, Copy)]
pub struct OAuthOutcome(pub &'static str);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    transport: &'static str,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    transport: &'static str,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OAuthLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    oauth: Family<OAuthLabels, Counter>,
    grpc_methods: HashSet<String>,
}

impl Metrics {
    /// `descriptor_sets`: every served file descriptor set, for the list of gRPC methods.
    pub fn new(svc: Services, descriptor_sets: &[&[u8]]) -> Metrics {
        let mut registry = Registry::with_prefix("authn_keys");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests by transport, RPC or route, and result code (gRPC code name or HTTP status)",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register_with_unit(
            "request_duration",
            "Time to the response head, by transport and RPC or route",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let oauth = Family::<OAuthLabels, Counter>::default();
        registry.register(
            "oauth_requests",
            "Token grants, introspections and revocations by outcome",
            oauth.clone(),
        );
        registry.register_collector(Box::new(ServerState(svc)));
        let mut grpc_methods = HashSet::new();
        for set in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*set) else {
                continue;
            };
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        grpc_methods.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        Metrics {
            registry,
            requests,
            latency,
            oauth,
            grpc_methods,
        }
    }

    /// The OpenMetrics text of every figure.
    pub fn render(&self) -> Response {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode metrics",
            )
                .into_response();
        }
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response()
    }
}

/// Figures read from the services at scrape time.
struct ServerState(Services);

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerState")
    }
}

impl Collector for ServerState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let svc = &self.0;
        let counter = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64| {
            let c = ConstCounter::new(v);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
        };
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, v: i64| {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        };
        counter(
            &mut encoder,
            "key_generations",
            "RSA key pairs generated since start",
            svc.keygen.generated(),
        )?;
        if let Some((ready, size)) = svc.keygen.pool_level() {
            gauge(
                &mut encoder,
                "key_pool_ready",
                "Pre-generated keys ready to hand out",
                ready as i64,
            )?;
            gauge(
                &mut encoder,
                "key_pool_size",
                "How many keys the pool keeps ready",
                size as i64,
            )?;
        }
        counter(
            &mut encoder,
            "rate_limited",
            "Requests refused by the failure rate limits (token, introspection, bearer tokens)",
            svc.throttle.rejected() + svc.bearer_throttle.rejected(),
        )?;
        let (sent, failed, retried) = svc.events.delivery_counts();
        counter(
            &mut encoder,
            "webhook_deliveries_sent",
            "Webhook deliveries answered 2xx by this process since start",
            sent,
        )?;
        counter(
            &mut encoder,
            "webhook_deliveries_failed",
            "Webhook deliveries given up on by this process after retrying past the horizon",
            failed,
        )?;
        counter(
            &mut encoder,
            "webhook_delivery_retries",
            "Webhook delivery attempts of this process that failed and are retried",
            retried,
        )?;
        counter(
            &mut encoder,
            "issuer_key_fetches",
            "Fetches of trusted issuers' discovery documents and key sets",
            svc.issuer_keys.fetches(),
        )?;
        counter(
            &mut encoder,
            "issuer_key_fetch_failures",
            "Fetches of trusted issuers' keys that failed (cached keys keep working up to 24 h)",
            svc.issuer_keys.fetch_failures(),
        )?;
        let (pending, oldest) = svc.events.backlog();
        gauge(
            &mut encoder,
            "webhook_deliveries_pending",
            "Webhook deliveries not yet answered 2xx, in the whole database (read every 5 s)",
            pending,
        )?;
        gauge(
            &mut encoder,
            "webhook_oldest_pending_seconds",
            "Age of the oldest pending webhook delivery (read every 5 s)",
            oldest,
        )?;
        gauge(
            &mut encoder,
            "change_notices_confirmed",
            "1 while a recent heartbeat proves other processes' change notices arrive (cache entries live 60 s), 0 otherwise (1 s; always on SQLite and MySQL)",
            i64::from(svc.caches.listening()),
        )?;
        let (open, idle, max) = storage::pool_use(&svc.db);
        gauge(
            &mut encoder,
            "db_connections_open",
            "Open database connections",
            i64::from(open),
        )?;
        gauge(
            &mut encoder,
            "db_connections_idle",
            "Idle database connections",
            idle as i64,
        )?;
        gauge(
            &mut encoder,
            "db_connections_max",
            "The database pool's maximum",
            i64::from(max),
        )?;
        Ok(())
    }
}

/// A caller's request id is kept when it is short and plain; otherwise a new one is made.
fn request_id(req: &Request) -> String {
    let sane = |v: &&str| {
        !v.is_empty()
            && v.len() <= 128
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(sane)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let bytes: [u8; 16] = rand::random();
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        })
}

fn grpc_code_name(code: &str) -> String {
    let name = code
        .parse::<i32>()
        .ok()
        .map(tonic::Code::from_i32)
        .map(|c| format!("{c:?}"));
    match name {
        Some(n) => n,
        None => "Unknown".into(),
    }
}

pub async fn layer(State(metrics): State<Arc<Metrics>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The one classification of this request: the inner layers read it from the extensions.
    let protocol = Protocol::mark(&mut req);
    let transport = protocol.label();
    let method = if protocol.is_rpc() {
        procedure(req.uri().path())
            .filter(|p| metrics.grpc_methods.contains(p))
            .unwrap_or_else(|| "unmatched".to_owned())
    } else {
        match req.extensions().get::<MatchedPath>() {
            Some(m) => format!("{} {}", req.method(), m.as_str()),
            None => "unmatched".to_owned(),
        }
    };
    let id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %id, transport, method = %method);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();

    let code = match protocol {
        // Unary gRPC: an error is trailers-only, with the status in the head; a head without
        // one is a success whose trailers follow.
        Protocol::Grpc | Protocol::GrpcWeb(_) => match resp.headers().get("grpc-status") {
            Some(v) => grpc_code_name(v.to_str().unwrap_or("2")),
            None if resp.status().is_success() => "Ok".into(),
            None => resp.status().as_u16().to_string(),
        },
        _ => resp.status().as_u16().to_string(),
    };
    metrics
        .requests
        .get_or_create(&RequestLabels {
            transport,
            method: method.clone(),
            code: code.clone(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels {
            transport,
            method: method.clone(),
        })
        .observe(elapsed.as_secs_f64());
    // Only the token, introspection and revocation endpoints count outcomes: a refusal of discovery or
    // of the key set (the server's limits) is neither.
    let endpoint = match method.as_str() {
        "POST /oauth/v2/token" => Some("token"),
        "POST /oauth/v2/introspect" => Some("introspect"),
        "POST /oauth/v2/revoke" => Some("revoke"),
        _ => None,
    };
    if let (Some(endpoint), Some(OAuthOutcome(outcome))) =
        (endpoint, resp.extensions().get::<OAuthOutcome>().copied())
    {
        metrics
            .oauth
            .get_or_create(&OAuthLabels { endpoint, outcome })
            .inc();
    }
    span.in_scope(|| {
        tracing::debug!(
            code = %code,
            status = resp.status().as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_plain() {
        let with = |v: &str| {
            Request::builder()
                .header(REQUEST_ID, v)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(request_id(&with("abc-123_x.y:z")), "abc-123_x.y:z");
        let fresh = request_id(&with("evil\"id with spaces"));
        assert_eq!(fresh.len(), 32);
        assert_ne!(request_id(&with(&"a".repeat(200))), "a".repeat(200));
        assert_eq!(grpc_code_name("5"), "NotFound");
        assert_eq!(grpc_code_name("x"), "Unknown");
    }
}
