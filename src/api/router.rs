//! One router for everything on the port: gRPC services (each wrapped for gRPC-Web), REST,
//! OAuth, health and readiness, with CORS for browsers and a fallback that answers gRPC
//! clients UNIMPLEMENTED and everyone else a JSON 404.
use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use tonic::service::Routes;
use tonic_health::pb::HealthCheckRequest;
use tower::Layer;

use super::{
    client_addr::{self, TrustedProxies},
    connect::{self, Connect},
    cors::{self, CorsOrigins},
    grpc::{application_v2::ApplicationApi, authnkeys::AuthnKeysApi, user_v2::UserApi},
    grpc::{
        frames::{FrameCheck, bounded_message},
        management::ManagementApi,
    },
    limits::Limits,
    oauth,
    observe::{self, Metrics},
    protocol::Protocol,
    rest, ui,
};
use crate::{
    error::{Error, Kind, Result},
    proto::{
        FILE_DESCRIPTOR_SET,
        authnkeys::v1::{
            event_service_server::EventServiceServer, key_service_server::KeyServiceServer,
            machine_user_service_server::MachineUserServiceServer,
            policy_service_server::PolicyServiceServer, trust_service_server::TrustServiceServer,
        },
        zitadel::{
            application::v2::application_service_server::ApplicationServiceServer,
            management::v1::management_service_server::ManagementServiceServer,
            user::v2::user_service_server::UserServiceServer,
        },
    },
    service::Services,
};

/// What the router is built with besides the services.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub max_in_flight: usize,
    pub timeout: std::time::Duration,
    /// Request bodies (REST, OAuth) and gRPC messages.
    pub max_body_bytes: usize,
    pub cors_origins: CorsOrigins,
    /// The console's files from disk instead of the embedded copy.
    pub ui_dir: Option<std::path::PathBuf>,
    /// How long a streaming call (health watches, reflection) may run.
    pub max_stream: std::time::Duration,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
}

/// Builds the whole HTTP surface.
pub async fn router(svc: Services, limits: RouterSettings) -> Result<Router> {
    let api = Arc::new(ManagementApi::new(svc.clone()));
    let users_v2 = Arc::new(UserApi::new(svc.clone()));
    let apps_v2 = ApplicationApi::new(svc.clone());
    let own = Arc::new(AuthnKeysApi::new(svc.clone()));
    let metrics = Arc::new(Metrics::new(
        svc.clone(),
        &[
            FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ],
    ));
    let plain = rest::routes(api.clone())
        .merge(rest::user_v2_routes(users_v2.clone()))
        .merge(rest::authnkeys_routes(own.clone()))
        .merge(oauth::routes(svc.clone()))
        .merge(ui::routes(limits.ui_dir.clone()))
        .merge(
            Router::new()
                .route(
                    "/metrics",
                    get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
                )
                .with_state(metrics.clone()),
        )
        .merge(
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/debug/ready", get(ready))
                .with_state(svc),
        )
        .fallback(fallback);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<ManagementServiceServer<ManagementApi>>()
        .await;
    reporter.set_serving::<UserServiceServer<UserApi>>().await;
    reporter
        .set_serving::<ApplicationServiceServer<ApplicationApi>>()
        .await;
    reporter
        .set_serving::<KeyServiceServer<AuthnKeysApi>>()
        .await;
    reporter
        .set_serving::<PolicyServiceServer<AuthnKeysApi>>()
        .await;
    reporter
        .set_serving::<EventServiceServer<AuthnKeysApi>>()
        .await;
    reporter
        .set_serving::<TrustServiceServer<AuthnKeysApi>>()
        .await;
    reporter
        .set_serving::<MachineUserServiceServer<AuthnKeysApi>>()
        .await;
    let reflection = |v1: bool| {
        let b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            );
        if v1 {
            b.build_v1().map(|s| (Some(s), None))
        } else {
            b.build_v1alpha().map(|s| (None, Some(s)))
        }
    };
    let reflection_err =
        |e| Error::internal("BOOT-Refl1", "cannot build the reflection service").with_source(e);
    let (Some(reflection_v1), _) = reflection(true).map_err(reflection_err)? else {
        return Err(Error::internal("BOOT-Refl2", "reflection v1 missing"));
    };
    let (_, Some(reflection_v1alpha)) = reflection(false).map_err(reflection_err)? else {
        return Err(Error::internal("BOOT-Refl3", "reflection v1alpha missing"));
    };

    // gRPC-Web wraps each gRPC service, never the REST routes: its layer answers 400 to
    // plain HTTP/1 requests.
    let web = tonic_web::GrpcWebLayer::new();
    let management = ManagementServiceServer::from_arc(api)
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let user_service = UserServiceServer::from_arc(users_v2)
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let application_service = ApplicationServiceServer::new(apps_v2)
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let key_service = KeyServiceServer::from_arc(own.clone())
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let policy_service = PolicyServiceServer::from_arc(own.clone())
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let trust_service = TrustServiceServer::from_arc(own.clone())
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let machine_user_service = MachineUserServiceServer::from_arc(own.clone())
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    let event_service = EventServiceServer::from_arc(own)
        .max_decoding_message_size(limits.max_body_bytes)
        .max_encoding_message_size(limits.max_body_bytes.max(1 << 20));
    // The Connect gateway calls the plain gRPC services in-process.
    // Every gRPC service behind the same checks, on every protocol: the streaming ones
    // (health watches, reflection) also end at the stream bound.
    let limit = limits.max_body_bytes;
    let max_stream = limits.max_stream;
    let health = FrameCheck::decoding::<HealthCheckRequest>(health, limit).bounded(max_stream);
    let reflection_v1 = FrameCheck::incremental(reflection_v1, limit).bounded(max_stream);
    let reflection_v1alpha = FrameCheck::incremental(reflection_v1alpha, limit).bounded(max_stream);
    let management = FrameCheck::new(management, limit);
    let user_service = FrameCheck::new(user_service, limit);
    let application_service = FrameCheck::new(application_service, limit);
    let key_service = FrameCheck::new(key_service, limit);
    let policy_service = FrameCheck::new(policy_service, limit);
    let event_service = FrameCheck::new(event_service, limit);
    let trust_service = FrameCheck::new(trust_service, limit);
    let machine_user_service = FrameCheck::new(machine_user_service, limit);
    let in_process = Routes::new(management.clone())
        .add_service(user_service.clone())
        .add_service(application_service.clone())
        .add_service(key_service.clone())
        .add_service(policy_service.clone())
        .add_service(event_service.clone())
        .add_service(trust_service.clone())
        .add_service(machine_user_service.clone())
        .add_service(health.clone())
        .add_service(reflection_v1.clone())
        .add_service(reflection_v1alpha.clone())
        .prepare()
        .into_axum_router();
    let connect = Arc::new(Connect::new(in_process, limits.max_body_bytes));
    let routes = Routes::from(plain)
        .add_service(web.layer(management))
        .add_service(web.layer(user_service))
        .add_service(web.layer(application_service))
        .add_service(web.layer(key_service))
        .add_service(web.layer(policy_service))
        .add_service(web.layer(event_service))
        .add_service(web.layer(trust_service))
        .add_service(web.layer(machine_user_service))
        .add_service(web.layer(health))
        .add_service(web.layer(reflection_v1))
        .add_service(web.layer(reflection_v1alpha));
    // Outermost first: HTTP/1.1 answers that leave a body unread close their connection;
    // the client address replaces a trusted proxy's (only when proxies are configured: a
    // layer costs every request); CORS answers preflights; observation decides every other
    // request's protocol once (`protocol::Protocol`, read by the layers inside and the
    // fallback), gives it its id and counts it, shed or not; the limits layer sheds and times
    // out; Connect requests are answered by the gateway, everything else routed; extractors
    // refuse bodies over the limit.
    let proxies = (!limits.trusted_proxies.is_empty()).then(|| {
        axum::middleware::from_fn_with_state(Arc::new(limits.trusted_proxies), client_addr::layer)
    });
    Ok(routes
        .prepare()
        .into_axum_router()
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            connect,
            connect::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Limits::new(limits.max_in_flight, limits.timeout, limits.max_stream),
            super::limits::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::layer,
        ))
        .layer(cors::layer(&limits.cors_origins))
        .layer(tower::util::option_layer(proxies))
        .layer(axum::middleware::from_fn(
            super::limits::close_after_unread_body,
        )))
}

/// Ready when the database answers within two seconds: a probe must not hang on a database
/// that is gone (the pool would wait for a connection far longer).
async fn ready(State(svc): State<Services>) -> Response {
    let answer = tokio::time::timeout(std::time::Duration::from_secs(2), svc.ready()).await;
    let failure = match answer {
        Ok(Ok(())) => return "ok".into_response(),
        Ok(Err(e)) => e.cause_chain(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    tracing::warn!(cause = %failure, "readiness check failed");
    (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
}

/// No route: gRPC and gRPC-Web clients get UNIMPLEMENTED (Connect requests never get here:
/// the gateway answers them), everyone else a JSON 404.
async fn fallback(req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if let Protocol::Grpc | Protocol::GrpcWeb(_) = Protocol::of(&req) {
        // The path is the caller's: bounded like every other quoted input.
        tonic::Status::from(Error::new(
            Kind::Unimplemented,
            "GRPC-Unimp2",
            format!("unknown method {}", bounded_message(&path)),
        ))
        .into_http()
    } else {
        rest::error_response(Error::not_found(
            "REST-NoRte",
            format!("no route for {} {path}", req.method()),
        ))
    }
}
