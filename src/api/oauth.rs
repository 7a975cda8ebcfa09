//! OAuth endpoints: discovery, JWKS, the token endpoint (JWT-profile grant). They have no
//! gRPC twin and call the token service directly. Errors are RFC 6749 JSON.
use axum::{
    Form, Json, Router,
    extract::{State, rejection::FormRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::json;

use crate::service::{
    Services,
    tokens::{JWT_BEARER_GRANT, OAuthError, OAuthErrorCode, TokenRequest},
};

pub const API_SCOPE: &str = crate::service::auth::API_SCOPE;

pub fn routes(svc: Services) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/v2/keys", get(jwks))
        .route("/oauth/v2/token", post(token))
        .with_state(svc)
}

pub fn oauth_error(e: OAuthError) -> Response {
    let status = match e.code {
        OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
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
    resp
}

async fn discovery(State(svc): State<Services>) -> Response {
    let issuer = &svc.settings.issuer;
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/v2/token"),
        "jwks_uri": format!("{issuer}/oauth/v2/keys"),
        "grant_types_supported": [JWT_BEARER_GRANT],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
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

async fn token(
    State(svc): State<Services>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Form(req) = match form {
        Ok(f) => f,
        Err(e) => {
            return oauth_error(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                format!("the body must be application/x-www-form-urlencoded: {e}"),
            ));
        }
    };
    match svc.token(req).await {
        Ok(resp) => ([(header::CACHE_CONTROL, "no-store")], Json(resp)).into_response(),
        Err(e) => oauth_error(e),
    }
}
