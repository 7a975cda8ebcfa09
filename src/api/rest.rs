//! The REST/JSON gateway, grpc-gateway style: decode proto3 JSON into the request message,
//! bind path parameters over it, copy `authorization` and `x-zitadel-orgid` into metadata, call
//! the same ManagementService method gRPC clients reach, and encode the reply as proto3 JSON.
use std::{collections::HashMap, future::Future, sync::Arc};

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{
        OriginalUri, Path, State,
        rejection::{BytesRejection, PathRejection},
    },
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use serde::{Serialize, de::DeserializeOwned};
use tonic::{Status, metadata::MetadataValue};

use super::{
    Peer,
    grpc::{
        authnkeys::AuthnKeysApi,
        edge::ORG_HEADER,
        management::ManagementApi,
        status::{ERROR_DETAIL_TYPE, error_detail},
        user_v2::UserApi,
    },
    protocol::{http_status, set_status_headers},
};
use crate::{
    error::Error,
    proto::authnkeys::v1::{
        self as own, event_service_server::EventService, key_service_server::KeyService,
        machine_user_service_server::MachineUserService, policy_service_server::PolicyService,
        trust_service_server::TrustService,
    },
    proto::zitadel::{
        management::v1::{management_service_server::ManagementService, *},
        user::v2::{self as v2, user_service_server::UserService},
    },
    service::dpop::HttpTarget,
};

type Api = Arc<ManagementApi>;

const DPOP: &str = "dpop";

/// The request's method and path, for DPoP proofs (`htm`, `htu`).
fn target(method: &Method, uri: &OriginalUri) -> HttpTarget {
    let method = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    };
    HttpTarget {
        method,
        path: uri.path().to_owned(),
    }
}
type Params = Result<Path<HashMap<String, String>>, PathRejection>;

/// `{"code": 5, "message": "...", "details": [{"@type": ..., "id", "message"}]}`.
pub fn status_response(status: &Status) -> Response {
    let details: Vec<serde_json::Value> = error_detail(status)
        .map(|d| serde_json::json!({"@type": ERROR_DETAIL_TYPE, "id": d.id, "message": d.message}))
        .into_iter()
        .collect();
    let body = serde_json::json!({"code": status.code() as i32, "message": status.message(), "details": details});
    let mut resp = (http_status(status.code()), axum::Json(body)).into_response();
    set_status_headers(resp.headers_mut(), status);
    resp
}

pub fn error_response(e: Error) -> Response {
    status_response(&e.into())
}

fn bad_request(id: &'static str, message: String) -> Response {
    error_response(Error::invalid_argument(id, message))
}

/// What a REST request says about its caller and where it went.
struct Caller {
    target: HttpTarget,
    headers: HeaderMap,
    peer: Peer,
}

/// Runs one gateway call: body → message, path → fields, headers → metadata, method, JSON.
async fn gateway<A, Req, Resp, Fut>(
    api: A,
    Caller {
        target,
        headers,
        peer,
    }: Caller,
    params: Params,
    body: Option<Result<Bytes, BytesRejection>>,
    bind: impl FnOnce(&mut Req, &mut HashMap<String, String>),
    call: impl FnOnce(A, tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let mut params = match params {
        Ok(Path(p)) => p,
        Err(PathRejection::MissingPathParams(_)) => HashMap::new(),
        Err(e) => return bad_request("REST-Path1", format!("invalid path parameter: {e}")),
    };
    let body = match body.transpose() {
        Ok(b) => b,
        Err(rejection) => return body_rejected(rejection),
    };
    let mut message: Req = match body.as_deref().map(<[u8]>::trim_ascii) {
        None | Some(b"") => Req::default(),
        Some(bytes) => match super::decode_json(bytes) {
            Ok(m) => m,
            Err(e) => {
                return bad_request(
                    "REST-Json1",
                    format!("the request body is not valid JSON for this method: {e}"),
                );
            }
        },
    };
    bind(&mut message, &mut params);
    let mut request = tonic::Request::new(message);
    if let Some(Extension(info)) = peer {
        request.extensions_mut().insert(info);
    }
    request.extensions_mut().insert(target);
    for name in [header::AUTHORIZATION.as_str(), ORG_HEADER] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok())
            && let Ok(v) = MetadataValue::try_from(value)
        {
            request.metadata_mut().insert(name, v);
        }
    }
    // Every DPoP header, so that more than one is refused rather than one picked.
    for value in headers.get_all(DPOP) {
        if let Some(v) = value
            .to_str()
            .ok()
            .and_then(|v| MetadataValue::try_from(v).ok())
        {
            request.metadata_mut().append(DPOP, v);
        }
    }
    match call(api, request).await {
        // Management answers are private (some carry key files or client secrets): no cache
        // may keep them.
        Ok(resp) => match serde_json::to_vec(resp.get_ref()) {
            Ok(json) => (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                    (header::PRAGMA, "no-cache"),
                ],
                json,
            )
                .into_response(),
            Err(e) => error_response(
                Error::internal("REST-Enc01", "cannot encode the response").with_source(e),
            ),
        },
        Err(status) => status_response(&status),
    }
}

/// A body that could not be read: too large (413) or broken.
fn body_rejected(rejection: BytesRejection) -> Response {
    let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
    let mut resp = bad_request(
        "REST-Body1",
        if too_large {
            "the request body is larger than this server accepts".to_owned()
        } else {
            format!("the request body could not be read: {rejection}")
        },
    );
    if too_large {
        *resp.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    }
    resp
}

fn take(p: &mut HashMap<String, String>, name: &str) -> String {
    p.remove(name).unwrap_or_default()
}

/// Declares one route: `route!(METHOD, Request, body?, |req, params| binding, rpc_method)`,
/// on the v1 ManagementService, or `route!(api: Type; …)` on another service.
macro_rules! route {
    ($method:ident, $req:ty, $has_body:expr, |$r:ident, $p:ident| $bind:expr, $rpc:ident) => {
        route!(api: Api; $method, $req, $has_body, |$r, $p| $bind, $rpc)
    };
    (api: $api:ty; $method:ident, $req:ty, $has_body:expr, |$r:ident, $p:ident| $bind:expr, $rpc:ident) => {
        $method(
            |State(api): State<$api>,
             method: Method,
             uri: OriginalUri,
             headers: HeaderMap,
             peer: Peer,
             params: Params,
             body: Result<Bytes, BytesRejection>| async move {
                let body = if $has_body { Some(body) } else { None };
                gateway(
                    api,
                    Caller {
                        target: target(&method, &uri),
                        headers,
                        peer,
                    },
                    params,
                    body,
                    |$r: &mut $req, $p: &mut HashMap<String, String>| {
                        let _ = &$p;
                        $bind
                    },
                    |api: $api, req| async move { api.$rpc(req).await },
                )
                .await
            },
        )
    };
}

/// The `/management/v1` routes of contract.json.
pub fn routes(api: Api) -> Router {
    let users = Router::new()
        .route(
            "/users/machine",
            route!(
                post,
                AddMachineUserRequest,
                true,
                |_r, _p| (),
                add_machine_user
            ),
        )
        .route(
            "/users/{user_id}",
            route!(
                get,
                GetUserByIdRequest,
                false,
                |r, p| r.id = take(p, "user_id"),
                get_user_by_id
            )
            .merge(route!(
                delete,
                RemoveUserRequest,
                false,
                |r, p| r.id = take(p, "user_id"),
                remove_user
            )),
        )
        .route(
            "/users/{user_id}/keys",
            route!(
                post,
                AddMachineKeyRequest,
                true,
                |r, p| r.user_id = take(p, "user_id"),
                add_machine_key
            ),
        )
        .route(
            "/users/_search",
            route!(post, ListUsersRequest, true, |_r, _p| (), list_users),
        )
        .route(
            "/projects/_search",
            route!(post, ListProjectsRequest, true, |_r, _p| (), list_projects),
        )
        .route(
            "/projects/{project_id}/apps/_search",
            route!(
                post,
                ListAppsRequest,
                true,
                |r, p| r.project_id = take(p, "project_id"),
                list_apps
            ),
        )
        .route(
            "/users/{user_id}/keys/_search",
            route!(
                post,
                ListMachineKeysRequest,
                true,
                |r, p| r.user_id = take(p, "user_id"),
                list_machine_keys
            ),
        )
        .route(
            "/users/{user_id}/keys/{key_id}",
            route!(
                get,
                GetMachineKeyByIDsRequest,
                false,
                |r, p| {
                    r.user_id = take(p, "user_id");
                    r.key_id = take(p, "key_id");
                },
                get_machine_key_by_i_ds
            )
            .merge(route!(
                delete,
                RemoveMachineKeyRequest,
                false,
                |r, p| {
                    r.user_id = take(p, "user_id");
                    r.key_id = take(p, "key_id");
                },
                remove_machine_key
            )),
        );
    let orgs = Router::new()
        .route(
            "/orgs",
            route!(post, AddOrgRequest, true, |_r, _p| (), add_org),
        )
        .route(
            "/orgs/me",
            route!(get, GetMyOrgRequest, false, |_r, _p| (), get_my_org),
        )
        .route(
            "/orgs/me/members",
            route!(post, AddOrgMemberRequest, true, |_r, _p| (), add_org_member),
        )
        .route(
            "/orgs/me/members/_search",
            route!(
                post,
                ListOrgMembersRequest,
                true,
                |_r, _p| (),
                list_org_members
            ),
        )
        .route(
            "/orgs/me/members/{user_id}",
            route!(
                delete,
                RemoveOrgMemberRequest,
                false,
                |r, p| r.user_id = take(p, "user_id"),
                remove_org_member
            ),
        );
    let projects = Router::new()
        .route(
            "/projects",
            route!(post, AddProjectRequest, true, |_r, _p| (), add_project),
        )
        .route(
            "/projects/{project_id}",
            route!(
                get,
                GetProjectByIdRequest,
                false,
                |r, p| r.id = take(p, "project_id"),
                get_project_by_id
            )
            .merge(route!(
                delete,
                RemoveProjectRequest,
                false,
                |r, p| r.id = take(p, "project_id"),
                remove_project
            )),
        )
        .route(
            "/projects/{project_id}/apps/api",
            route!(
                post,
                AddApiAppRequest,
                true,
                |r, p| r.project_id = take(p, "project_id"),
                add_api_app
            ),
        )
        .route(
            "/projects/{project_id}/apps/{app_id}",
            route!(
                get,
                GetAppByIdRequest,
                false,
                |r, p| {
                    r.project_id = take(p, "project_id");
                    r.app_id = take(p, "app_id");
                },
                get_app_by_id
            )
            .merge(route!(
                delete,
                RemoveAppRequest,
                false,
                |r, p| {
                    r.project_id = take(p, "project_id");
                    r.app_id = take(p, "app_id");
                },
                remove_app
            )),
        )
        .route(
            "/projects/{project_id}/apps/{app_id}/keys",
            route!(
                post,
                AddAppKeyRequest,
                true,
                |r, p| {
                    r.project_id = take(p, "project_id");
                    r.app_id = take(p, "app_id");
                },
                add_app_key
            ),
        )
        .route(
            "/projects/{project_id}/apps/{app_id}/keys/_search",
            route!(
                post,
                ListAppKeysRequest,
                true,
                |r, p| {
                    r.project_id = take(p, "project_id");
                    r.app_id = take(p, "app_id");
                },
                list_app_keys
            ),
        )
        .route(
            "/projects/{project_id}/apps/{app_id}/keys/{key_id}",
            route!(
                get,
                GetAppKeyRequest,
                false,
                |r, p| {
                    r.project_id = take(p, "project_id");
                    r.app_id = take(p, "app_id");
                    r.key_id = take(p, "key_id");
                },
                get_app_key
            )
            .merge(route!(
                delete,
                RemoveAppKeyRequest,
                false,
                |r, p| {
                    r.project_id = take(p, "project_id");
                    r.app_id = take(p, "app_id");
                    r.key_id = take(p, "key_id");
                },
                remove_app_key
            )),
        );
    let management = Router::new()
        .route(
            "/healthz",
            route!(get, HealthzRequest, false, |_r, _p| (), healthz),
        )
        .merge(users)
        .merge(orgs)
        .merge(projects)
        .with_state(api);
    Router::new().nest("/management/v1", management)
}

/// The REST rules of `zitadel.user.v2.UserService` (ZITADEL v4.2 and later).
pub fn user_v2_routes(api: Arc<UserApi>) -> Router {
    type V2 = Arc<UserApi>;
    Router::new()
        .route(
            "/v2/users/new",
            route!(api: V2; post, v2::CreateUserRequest, true, |_r, _p| (), create_user),
        )
        .route(
            "/v2/users/keys/search",
            route!(api: V2; post, v2::ListKeysRequest, true, |_r, _p| (), list_keys),
        )
        .route(
            "/v2/users/{user_id}",
            route!(api: V2; delete, v2::DeleteUserRequest, false, |r, p| r.user_id = take(p, "user_id"), delete_user),
        )
        .route(
            "/v2/users/{user_id}/keys",
            route!(api: V2; post, v2::AddKeyRequest, true, |r, p| r.user_id = take(p, "user_id"), add_key),
        )
        .route(
            "/v2/users/{user_id}/keys/{key_id}",
            route!(api: V2; delete, v2::RemoveKeyRequest, false, |r, p| {
                r.user_id = take(p, "user_id");
                r.key_id = take(p, "key_id");
            }, remove_key),
        )
        .with_state(api)
}

/// The REST rules of authn-keys' own `authnkeys.v1` KeyService, PolicyService, TrustService,
/// MachineUserService and EventService.
pub fn authnkeys_routes(api: Arc<AuthnKeysApi>) -> Router {
    type Own = Arc<AuthnKeysApi>;
    Router::new()
        .route(
            "/v1/keys",
            route!(api: Own; post, own::AddKeyRequest, true, |_r, _p| (), add_key),
        )
        .route(
            "/v1/keys/_search",
            route!(api: Own; post, own::ListKeysRequest, true, |_r, _p| (), list_keys),
        )
        .route(
            "/v1/keys/{key_id}",
            route!(api: Own; get, own::GetKeyRequest, false, |r, p| r.key_id = take(p, "key_id"), get_key)
                .merge(route!(api: Own; delete, own::RemoveKeyRequest, false, |r, p| r.key_id = take(p, "key_id"), remove_key)),
        )
        .route(
            "/v1/keys/{key_id}/_disable",
            route!(api: Own; post, own::DisableKeyRequest, true, |r, p| r.key_id = take(p, "key_id"), disable_key),
        )
        .route(
            "/v1/keys/{key_id}/_enable",
            route!(api: Own; post, own::EnableKeyRequest, true, |r, p| r.key_id = take(p, "key_id"), enable_key),
        )
        .route(
            "/v1/policies/keys",
            route!(api: Own; get, own::GetKeyPolicyRequest, false, |_r, _p| (), get_key_policy)
                .merge(route!(api: Own; put, own::SetKeyPolicyRequest, true, |_r, _p| (), set_key_policy))
                .merge(route!(api: Own; delete, own::ResetKeyPolicyRequest, false, |_r, _p| (), reset_key_policy)),
        )
        .route(
            "/v1/trusts",
            route!(api: Own; post, own::AddTrustRequest, true, |_r, _p| (), add_trust),
        )
        .route(
            "/v1/trusts/_search",
            route!(api: Own; post, own::ListTrustsRequest, true, |_r, _p| (), list_trusts),
        )
        .route(
            "/v1/trusts/{trust_id}",
            route!(api: Own; get, own::GetTrustRequest, false, |r, p| r.trust_id = take(p, "trust_id"), get_trust)
                .merge(route!(api: Own; delete, own::RemoveTrustRequest, false, |r, p| r.trust_id = take(p, "trust_id"), remove_trust)),
        )
        .route(
            "/v1/users/{user_id}/token_settings",
            route!(api: Own; get, own::GetTokenSettingsRequest, false, |r, p| r.user_id = take(p, "user_id"), get_token_settings)
                .merge(route!(api: Own; put, own::SetTokenSettingsRequest, true, |r, p| r.user_id = take(p, "user_id"), set_token_settings)),
        )
        .route(
            "/v1/events/_search",
            route!(api: Own; post, own::ListEventsRequest, true, |_r, _p| (), list_events),
        )
        .route(
            "/v1/webhooks",
            route!(api: Own; post, own::AddWebhookRequest, true, |_r, _p| (), add_webhook),
        )
        .route(
            "/v1/webhooks/_search",
            route!(api: Own; post, own::ListWebhooksRequest, true, |_r, _p| (), list_webhooks),
        )
        .route(
            "/v1/webhooks/{webhook_id}",
            route!(api: Own; delete, own::RemoveWebhookRequest, false, |r, p| r.webhook_id = take(p, "webhook_id"), remove_webhook),
        )
        .with_state(api)
}
