//! OAuth endpoints: discovery, JWKS, the token endpoint (JWT-profile grant). They have no
//! gRPC twin and call the token service directly. Errors are RFC 6749 JSON.
use axum::{
    Form, Json, Router,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use serde_json::json;

use super::{Peer, observe::OAuthOutcome, peer_ip};
use crate::service::{
    Services,
    introspect::{BasicAuth, IntrospectRequest},
    tokens::{JWT_BEARER_GRANT, OAuthError, OAuthErrorCode, TokenRequest},
};

pub const API_SCOPE: &str = crate::service::auth::API_SCOPE;

pub fn routes(svc: Services) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/v2/keys", get(jwks))
        .route("/oauth/v2/token", post(token))
        .route("/oauth/v2/introspect", post(introspect))
        .with_state(svc)
}

pub fn oauth_error(e: OAuthError) -> Response {
    let status = match e.code {
        OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        OAuthErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        OAuthErrorCode::InvalidRequest
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
    if let Some(secs) = e.retry_after_secs {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    resp.extensions_mut().insert(OAuthOutcome(e.code.as_str()));
    resp
}

async fn discovery(State(svc): State<Services>) -> Response {
    let issuer = &svc.settings.issuer;
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/v2/token"),
        "introspection_endpoint": format!("{issuer}/oauth/v2/introspect"),
        "jwks_uri": format!("{issuer}/oauth/v2/keys"),
        "grant_types_supported": [JWT_BEARER_GRANT],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic"],
        "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256"],
        "request_object_signing_alg_values_supported": ["RS256", "PS256"],
        "scopes_supported": ["openid", API_SCOPE],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "urn:zitadel:iam:user:resourceowner:id"],
    }))
    .into_response()
}

async fn jwks(State(svc): State<Services>) -> Response {
    match svc.signing.all_public().await {
        Ok(keys) => {
            let keys: Vec<_> = keys
                .iter()
                .map(|(kid, key)| {
                    let (n, e) = key.n_e();
                    json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                           "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
                })
                .collect();
            Json(json!({"keys": keys})).into_response()
        }
        Err(e) => oauth_error(e.into()),
    }
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
        svc.introspect(req, basic, peer_ip(peer)).await
    };
    match answer.await {
        Ok(body) => {
            let outcome = if body["active"] == true {
                "active"
            } else {
                "inactive"
            };
            let mut resp = ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
            resp.extensions_mut().insert(OAuthOutcome(outcome));
            resp
        }
        Err(e) => oauth_error(e),
    }
}

async fn token(
    State(svc): State<Services>,
    peer: Peer,
    body: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    if let Some(resp) = oversized(&body) {
        return resp;
    }
    let answer = async { svc.token(form(body)?, peer_ip(peer)).await };
    match answer.await {
        Ok(resp) => {
            let mut resp = ([(header::CACHE_CONTROL, "no-store")], Json(resp)).into_response();
            resp.extensions_mut().insert(OAuthOutcome("ok"));
            resp
        }
        Err(e) => oauth_error(e),
    }
}
