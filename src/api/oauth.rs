//! OAuth endpoints: discovery (OpenID Connect and RFC 8414), JWKS, the token endpoint
//! (JWT-profile grant), introspection (RFC 7662, RFC 9701) and revocation (RFC 7009). They
//! have no gRPC twin and call the token service directly. Errors are RFC 6749 JSON.
use axum::{
    Form, Json, Router,
    body::Bytes,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;

use super::{Peer, observe::OAuthOutcome, peer_ip, protocol::set_retry_after};
use crate::{
    domain::{
        dpop,
        jwt::{Algorithm, accepted_names},
    },
    service::{
        Services,
        introspect::{BasicAuth, INTROSPECTION_JWT, IntrospectRequest},
        revoke::{Revocation, RevokeRequest},
        tokens::{
            JWT_BEARER_GRANT, OAuthError, OAuthErrorCode, TOKEN_EXCHANGE_GRANT, TokenRequest,
        },
    },
};

pub const API_SCOPE: &str = crate::service::auth::API_SCOPE;

pub fn routes(svc: Services) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        // RFC 8414: the same document under the OAuth name.
        .route("/.well-known/oauth-authorization-server", get(discovery))
        .route("/oauth/v2/keys", get(jwks))
        .route("/oauth/v2/token", post(token))
        .route("/oauth/v2/introspect", post(introspect))
        .route("/oauth/v2/revoke", post(revoke))
        .with_state(svc)
}

pub fn oauth_error(e: OAuthError) -> Response {
    let status = match e.code {
        OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        OAuthErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        OAuthErrorCode::InvalidRequest
        | OAuthErrorCode::InvalidDpopProof
        | OAuthErrorCode::UseDpopNonce
        | OAuthErrorCode::InvalidGrant
        | OAuthErrorCode::UnsupportedGrantType
        | OAuthErrorCode::InvalidScope => StatusCode::BAD_REQUEST,
    };
    if let Some(source) = &e.source {
        tracing::error!(error_id = source.id, cause = %source.cause_chain(), "{}", source.message);
    } else {
        tracing::info!(error = e.code.as_str(), description = %e.description, "oauth request refused");
    }
    let mut resp = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": e.code.as_str(), "error_description": e.description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"authn-keys\""),
        );
    }
    set_retry_after(resp.headers_mut(), e.retry_after_secs);
    set_dpop_nonce(resp.headers_mut(), e.dpop_nonce);
    resp.extensions_mut().insert(OAuthOutcome(e.code.as_str()));
    resp
}

/// `DPoP-Nonce` (RFC 9449 §8): the nonce for the client's next proof.
fn set_dpop_nonce(headers: &mut HeaderMap, nonce: Option<String>) {
    if let Some(v) = nonce.and_then(|n| header::HeaderValue::from_str(&n).ok()) {
        headers.insert(header::HeaderName::from_static("dpop-nonce"), v);
    }
}

/// The values of a request's `DPoP` headers.
fn dpop_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// How long verifiers may cache the JWKS. A new key signs as soon as it is made and a key
/// dropped by `rotate-signing-key --drop-old` should stop being trusted soon, so a minute:
/// never longer than a rotation period (at least 60 s), and short enough that a verifier
/// which does not refetch on an unknown kid catches up within it.
const JWKS_CACHE_CONTROL: &str = "public, max-age=60";

/// Discovery changes with the configuration and, for a while, with a change of the signing
/// algorithm (until the old keys are no longer published): an hour at most.
const DISCOVERY_CACHE_CONTROL: &str = "public, max-age=3600";

/// The discovery document, built from memory on each request (it is small and rarely asked
/// for): the signing algorithms follow the published keys.
async fn discovery(State(svc): State<Services>) -> Response {
    let mut signing = vec![svc.signing.algorithm()];
    for alg in svc.signing.published().algorithms() {
        if !signing.contains(alg) {
            signing.push(*alg);
        }
    }
    let body = serde_json::to_vec(&discovery_document(&svc.settings.issuer, &signing))
        .unwrap_or_else(|_| unreachable!("a JSON value serializes"));
    cached_json(Bytes::from(body), DISCOVERY_CACHE_CONTROL)
}

/// The discovery document (OpenID Connect Discovery, RFC 8414): exactly what is served.
/// `signing`: the configured algorithm, then those of the other published signing keys —
/// during a change of algorithm, tokens of both are alive and verify.
fn discovery_document(issuer: &str, signing: &[Algorithm]) -> serde_json::Value {
    // Every algorithm a key (machine or app key) may sign an assertion with.
    let assertion_algs = accepted_names(&Algorithm::ALL);
    let client_auth = ["private_key_jwt", "client_secret_basic"];
    let dpop_algs = accepted_names(&dpop::ALGORITHMS);
    let signing: Vec<&str> = signing.iter().map(|a| a.as_str()).collect();
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/v2/token"),
        "introspection_endpoint": format!("{issuer}/oauth/v2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth/v2/revoke"),
        "jwks_uri": format!("{issuer}/oauth/v2/keys"),
        "grant_types_supported": [JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT],
        // No authorization endpoint: no response type is served.
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing,
        // The JWT-profile grant and token exchange authenticate no client.
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_signing_alg_values_supported": signing,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "dpop_signing_alg_values_supported": dpop_algs,
        "scopes_supported": ["openid", API_SCOPE],
        "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "auth_time", "urn:zitadel:iam:user:resourceowner:id"],
    })
}

/// Prebuilt JSON with its caching header.
fn cached_json(body: Bytes, cache_control: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

/// From memory: the signing keys keep the answer current (see `SigningKeys::keep_current`),
/// so an anonymous request costs no database read.
async fn jwks(State(svc): State<Services>) -> Response {
    let body = Bytes::from_owner(svc.signing.published().jwks_json());
    cached_json(body, JWKS_CACHE_CONTROL)
}

/// A body over the size limit is 413 (RFC 9110), still with RFC 6749's error JSON:
/// `invalid_request`, as any client expects from this endpoint.
fn oversized<T>(form: &Result<Form<T>, FormRejection>) -> Option<Response> {
    let Err(rejection) = form else {
        return None;
    };
    if rejection.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return None;
    }
    let mut resp = oauth_error(OAuthError::new(
        OAuthErrorCode::InvalidRequest,
        "the request body is larger than the server accepts",
    ));
    *resp.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    Some(resp)
}

fn form<T>(form: Result<Form<T>, FormRejection>) -> Result<T, OAuthError> {
    form.map(|Form(f)| f).map_err(|e| {
        OAuthError::new(
            OAuthErrorCode::InvalidRequest,
            format!("the body must be application/x-www-form-urlencoded: {e}"),
        )
    })
}

/// `Authorization: Basic base64(urlencode(client_id):urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_auth(headers: &HeaderMap) -> Result<Option<BasicAuth>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "malformed HTTP Basic credentials",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(invalid());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some(BasicAuth {
        client_id: unescape(id),
        secret: zeroize::Zeroizing::new(unescape(secret)),
    }))
}

/// Whether the `Accept` header asks for `media` (a listed media range, parameters ignored,
/// not refused with `q=0`). Wildcards do not count: JSON stays the default.
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let named = parts.next().is_some_and(|m| m.eq_ignore_ascii_case(media));
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            named && !refused
        })
}

async fn introspect(
    State(svc): State<Services>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Form<IntrospectRequest>, FormRejection>,
) -> Response {
    if let Some(resp) = oversized(&body) {
        return resp;
    }
    let answer = async {
        let req = form(body)?;
        let basic = basic_auth(&headers)?;
        let introspection = svc.introspect(req, basic, peer_ip(peer)).await?;
        let outcome = if introspection.answer["active"] == true {
            "active"
        } else {
            "inactive"
        };
        let mut resp = if accepts(&headers, INTROSPECTION_JWT) {
            let jwt = svc.introspection_jwt(&introspection)?;
            (
                [
                    (header::CONTENT_TYPE, INTROSPECTION_JWT),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                jwt,
            )
                .into_response()
        } else {
            (
                [(header::CACHE_CONTROL, "no-store")],
                Json(introspection.answer),
            )
                .into_response()
        };
        resp.extensions_mut().insert(OAuthOutcome(outcome));
        Ok::<_, OAuthError>(resp)
    };
    answer.await.unwrap_or_else(oauth_error)
}

/// RFC 7009: 200 with an empty body whether or not anything changed; errors only for the
/// client's authentication and a missing token.
async fn revoke(
    State(svc): State<Services>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Form<RevokeRequest>, FormRejection>,
) -> Response {
    if let Some(resp) = oversized(&body) {
        return resp;
    }
    let answer = async {
        let req = form(body)?;
        let basic = basic_auth(&headers)?;
        svc.revoke(req, basic, peer_ip(peer)).await
    };
    match answer.await {
        Ok(done) => {
            let mut resp = (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response();
            resp.extensions_mut().insert(OAuthOutcome(match done {
                Revocation::Revoked => "revoked",
                Revocation::Unchanged => "unchanged",
            }));
            resp
        }
        Err(e) => oauth_error(e),
    }
}

async fn token(
    State(svc): State<Services>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    if let Some(resp) = oversized(&body) {
        return resp;
    }
    let dpop = dpop_headers(&headers);
    let answer = async { svc.token(form(body)?, &dpop, peer_ip(peer)).await };
    match answer.await {
        Ok(resp) => {
            let mut resp = ([(header::CACHE_CONTROL, "no-store")], Json(resp)).into_response();
            if !dpop.is_empty() {
                let now = svc.clock.now().timestamp();
                set_dpop_nonce(resp.headers_mut(), svc.dpop.nonce_to_offer(true, now));
            }
            resp.extensions_mut().insert(OAuthOutcome("ok"));
            resp
        }
        Err(e) => oauth_error(e),
    }
}
