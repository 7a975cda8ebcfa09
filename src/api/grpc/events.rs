//! `authnkeys.v1.EventService`: the audit trail and the webhooks, as thin as the other
//! authnkeys.v1 methods.
use tonic::{Request, Response, Status};

use super::{authnkeys::AuthnKeysApi, convert::timestamp as time};
use crate::{
    domain::{list::Page, principal::Permission},
    proto::authnkeys::v1::{self as pb, event_service_server::EventService},
    service::events::{EventQuery, EventView, WebhookView},
    storage::{entity::delivery, repo},
};

type Rpc<T> = Result<Response<T>, Status>;

/// The proto of an event; its JSON is [`EventView::to_json`] (a test holds them together).
pub fn event(e: &EventView, deliveries: &[delivery::Model]) -> pb::Event {
    let data =
        serde_json::from_value::<pbjson_types::Struct>(serde_json::Value::Object(e.data.clone()))
            .unwrap_or_default();
    pb::Event {
        id: e.id.clone(),
        r#type: e.kind.clone(),
        time: Some(e.time.into()),
        org_id: e.org_id.clone(),
        actor: Some(pb::Actor {
            user_id: e.actor.clone(),
        }),
        key_id: e.key_id.clone().unwrap_or_default(),
        user_id: e.user_id.clone().unwrap_or_default(),
        app: e.app.as_ref().map(|(project_id, app_id)| pb::AppRef {
            project_id: project_id.clone(),
            app_id: app_id.clone(),
        }),
        data: Some(data),
        deliveries: deliveries.iter().map(delivery_pb).collect(),
    }
}

fn delivery_pb(d: &delivery::Model) -> pb::Delivery {
    let state = match d.state.as_str() {
        repo::PENDING => pb::DeliveryState::Pending,
        repo::SENT => pb::DeliveryState::Sent,
        repo::FAILED => pb::DeliveryState::Failed,
        _ => pb::DeliveryState::Unspecified,
    };
    let utc =
        |t: &sea_orm::prelude::ChronoDateTimeWithTimeZone| t.with_timezone(&chrono::Utc).into();
    pb::Delivery {
        webhook_id: d.webhook_id.clone(),
        state: state as i32,
        attempts: u32::try_from(d.attempts).unwrap_or(0),
        last_attempt_at: d.last_attempt_at.as_ref().map(utc),
        last_status: d
            .last_status
            .and_then(|s| u32::try_from(s).ok())
            .unwrap_or(0),
        last_error: d.last_error.clone().unwrap_or_default(),
        next_attempt_at: (state == pb::DeliveryState::Pending).then(|| utc(&d.due_at)),
    }
}

fn webhook(w: &WebhookView) -> pb::Webhook {
    pb::Webhook {
        id: w.id.clone(),
        url: w.url.clone(),
        types: w.types.clone(),
        org_id: w.org_id.clone(),
        all_orgs: w.all_orgs,
        created_at: Some(w.created_at.into()),
        created_by: w.created_by.clone(),
        pending_deliveries: w.pending,
        failed_deliveries: w.failed,
    }
}

#[tonic::async_trait]
impl EventService for AuthnKeysApi {
    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Rpc<pb::ListEventsResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::EventRead]).await?;
        let page = Page::new(
            req.offset,
            req.limit,
            req.asc,
            self.svc.settings.list_limits,
        )?;
        let query = EventQuery {
            types: req.types,
            key_id: req.key_id,
            user_id: req.user_id,
            since: time("since", req.since)?,
            until: time("until", req.until)?,
            page,
        };
        let (events, total) = self.svc.list_events(&ctx, query).await?;
        Ok(Response::new(pb::ListEventsResponse {
            result: events.iter().map(|(e, d)| event(e, d)).collect(),
            total_result: total,
        }))
    }

    async fn add_webhook(
        &self,
        req: Request<pb::AddWebhookRequest>,
    ) -> Rpc<pb::AddWebhookResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::WebhookWrite]).await?;
        let (hook, secret) = self.svc.add_webhook(&ctx, &req.url, &req.types).await?;
        Ok(Response::new(pb::AddWebhookResponse {
            webhook: Some(webhook(&hook)),
            secret: secret.to_string(),
        }))
    }

    async fn list_webhooks(
        &self,
        req: Request<pb::ListWebhooksRequest>,
    ) -> Rpc<pb::ListWebhooksResponse> {
        let (ctx, _) = self.authorize(req, &[Permission::EventRead]).await?;
        let hooks = self.svc.list_webhooks(&ctx).await?;
        Ok(Response::new(pb::ListWebhooksResponse {
            total_result: hooks.len() as u64,
            result: hooks.iter().map(webhook).collect(),
        }))
    }

    async fn remove_webhook(
        &self,
        req: Request<pb::RemoveWebhookRequest>,
    ) -> Rpc<pb::RemoveWebhookResponse> {
        let (ctx, req) = self.authorize(req, &[Permission::WebhookWrite]).await?;
        self.svc.remove_webhook(&ctx, &req.webhook_id).await?;
        Ok(Response::new(pb::RemoveWebhookResponse {}))
    }
}
