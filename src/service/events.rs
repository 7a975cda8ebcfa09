//! authnkeys.v1 EventService: the audit trail as the contract names it, and each org's
//! webhooks. Delivery itself is `dispatch.rs`.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{Ctx, Services, signing::MasterKey};
use crate::{
    domain::{
        events::{NoticeWindows, WebhookSecret, contract_type, parse_types, recorded_types},
        list::Page,
        principal::{Permission, Role},
        validate,
    },
    error::{Error, Result},
    storage::{
        entity::{delivery, event, webhook},
        repo,
    },
};

/// At most this many webhooks per org: each event is fanned out to every matching one.
pub const MAX_WEBHOOKS_PER_ORG: usize = 20;

/// What the event machinery shares: the dispatcher's wake-up, the webhook secrets' key, the
/// notice windows and the delivery figures for `/metrics`.
pub struct EventHub {
    /// Woken after a write that recorded events commits, and when a send finishes.
    pub(crate) wake: tokio::sync::Notify,
    secrets: MasterKey,
    pub windows: NoticeWindows,
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) backlog: AtomicI64,
    /// Set when a write added a key: its expiry may already be inside a notice window, and
    /// the notice is then given at once rather than at the next regular look.
    pub(crate) keys_added: std::sync::atomic::AtomicBool,
    pub(crate) oldest_pending_secs: AtomicI64,
}

impl EventHub {
    pub fn new(master: &MasterKey, windows: NoticeWindows) -> EventHub {
        EventHub {
            wake: tokio::sync::Notify::new(),
            secrets: master.derived("authn-keys webhook secrets v1"),
            windows,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            backlog: AtomicI64::new(0),
            keys_added: std::sync::atomic::AtomicBool::new(false),
            oldest_pending_secs: AtomicI64::new(0),
        }
    }

    /// Deliveries answered 2xx, given up on, and attempts that failed and will be retried.
    pub fn delivery_counts(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
        )
    }

    /// Pending deliveries in the database and the age of the oldest, as last looked at.
    pub fn backlog(&self) -> (i64, i64) {
        (
            self.backlog.load(Ordering::Relaxed),
            self.oldest_pending_secs.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn seal(&self, webhook_id: &str, secret: &WebhookSecret) -> Result<Vec<u8>> {
        self.secrets.encrypt(secret.bytes(), webhook_id.as_bytes())
    }

    pub(crate) fn open(&self, w: &webhook::Model) -> Result<WebhookSecret> {
        self.secrets
            .decrypt(&w.secret_enc, w.id.as_bytes())
            .map(WebhookSecret::from_bytes)
    }
}

/// An event as the contract shows it (ListEvents, and the `data` of a delivery).
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    pub id: String,
    pub kind: String,
    pub time: DateTime<Utc>,
    pub org_id: String,
    pub actor: String,
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    /// (project id, app id)
    pub app: Option<(String, String)>,
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl EventView {
    pub fn of(e: &event::Model) -> EventView {
        let payload: serde_json::Value =
            serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
        let subject =
            crate::domain::events::Subject::of(&e.aggregate_type, &e.aggregate_id, &payload);
        EventView {
            id: e.position.to_string(),
            kind: contract_type(&e.event_type).to_owned(),
            time: e.created_at.with_timezone(&Utc),
            org_id: e.org_id.clone(),
            actor: e.actor.clone(),
            // The same derivation as the stored search columns.
            key_id: subject.key_id,
            user_id: subject.user_id,
            app: subject.app,
            data: match payload {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
        }
    }

    /// Its proto3 JSON, as REST and Connect write `authnkeys.v1.Event` (empty fields left out).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({
            "id": self.id,
            "type": self.kind,
            "time": self.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "orgId": self.org_id,
            "actor": {"userId": self.actor},
            "data": self.data,
        });
        if let Some(k) = &self.key_id {
            v["keyId"] = json!(k);
        }
        if let Some(u) = &self.user_id {
            v["userId"] = json!(u);
        }
        if let Some((project_id, app_id)) = &self.app {
            v["app"] = json!({"projectId": project_id, "appId": app_id});
        }
        v
    }

    /// The body of a webhook delivery (Standard Webhooks: `{type, timestamp, data}`).
    pub fn delivery_body(&self) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": self.kind,
            "timestamp": self.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "data": self.to_json(),
        }))
        .unwrap_or_default()
    }
}

/// ListEvents' filters.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub types: Vec<String>,
    pub key_id: String,
    pub user_id: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub page: Page,
}

/// A webhook as shown.
#[derive(Debug, Clone)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub types: Vec<String>,
    pub org_id: String,
    pub all_orgs: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub pending: u64,
    pub failed: u64,
}

fn webhook_view(w: &webhook::Model, counts: &[(String, String, i64)]) -> WebhookView {
    let count = |state: &str| {
        counts
            .iter()
            .find(|(id, s, _)| *id == w.id && s == state)
            .map_or(0, |(_, _, n)| (*n).max(0) as u64)
    };
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        types: webhook_types(w),
        org_id: w.org_id.clone(),
        all_orgs: w.all_orgs,
        created_at: w.created_at.with_timezone(&Utc),
        created_by: w.created_by.clone(),
        pending: count(repo::PENDING),
        failed: count(repo::FAILED),
    }
}

pub(crate) fn webhook_types(w: &webhook::Model) -> Vec<String> {
    serde_json::from_str(&w.types).unwrap_or_default()
}

fn is_iam(ctx: &Ctx) -> bool {
    ctx.roles.contains(&Role::IamOwner)
}

impl Services {
    /// The webhooks `ctx` may see: its org's, or every one for an IAM_OWNER.
    async fn visible_webhooks(&self, ctx: &Ctx) -> Result<Vec<webhook::Model>> {
        let org = (!is_iam(ctx)).then_some(ctx.org_id.as_str());
        repo::list_webhooks(&self.db, org).await
    }

    /// ListEvents: an org's trail for its owners, every org's for an IAM_OWNER; with each
    /// event's deliveries to the webhooks the caller may see.
    pub async fn list_events(
        &self,
        ctx: &Ctx,
        q: EventQuery,
    ) -> Result<(Vec<(EventView, Vec<delivery::Model>)>, u64)> {
        ctx.require(Permission::EventRead)?;
        let types = parse_types("types", &q.types)?;
        let optional_id = |field: &'static str, v: String| -> Result<Option<String>> {
            if v.is_empty() {
                Ok(None)
            } else {
                validate::id(field, &v)?;
                Ok(Some(v))
            }
        };
        let search = repo::EventSearch {
            org_id: (!is_iam(ctx)).then(|| ctx.org_id.clone()),
            types: if types.is_empty() {
                Vec::new()
            } else {
                recorded_types(&types)
            },
            key_id: optional_id("keyId", q.key_id)?,
            user_id: optional_id("userId", q.user_id)?,
            since: q.since,
            until: q.until,
            limit: q.page.limit,
            offset: q.page.offset,
            asc: q.page.asc,
        };
        let (rows, total) = repo::search_events(&self.db, &search).await?;
        let hooks: Vec<String> = self
            .visible_webhooks(ctx)
            .await?
            .into_iter()
            .map(|w| w.id)
            .collect();
        let positions: Vec<i64> = rows.iter().map(|e| e.position).collect();
        let deliveries = repo::deliveries_of(&self.db, &positions, &hooks).await?;
        let out = rows
            .iter()
            .map(|e| {
                let mine = deliveries
                    .iter()
                    .filter(|d| d.event_position == e.position)
                    .cloned()
                    .collect();
                (EventView::of(e), mine)
            })
            .collect();
        Ok((out, total))
    }

    /// AddWebhook: the webhook and its secret, shown this once.
    pub async fn add_webhook(
        &self,
        ctx: &Ctx,
        url: &str,
        types: &[String],
    ) -> Result<(WebhookView, zeroize::Zeroizing<String>)> {
        ctx.require(Permission::WebhookWrite)?;
        let url = self.outbound.check_url(url)?;
        let types = parse_types("types", types)?;
        let mut w = self.begin_write(ctx).await?;
        let sequence = repo::bump_org(w.db(), &ctx.org_id, w.now)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    "QUERY-iTTGJ",
                    format!("organization {} not found", ctx.org_id),
                )
            })?;
        let existing = repo::list_webhooks(w.db(), Some(&ctx.org_id)).await?;
        if existing.len() >= MAX_WEBHOOKS_PER_ORG {
            return Err(Error::failed_precondition(
                "HOOK-Max01",
                format!("an org has at most {MAX_WEBHOOKS_PER_ORG} webhooks; remove one first"),
            ));
        }
        let id = self.ids.next_id();
        let secret = WebhookSecret::generate();
        let row = webhook::Model {
            id: id.clone(),
            org_id: ctx.org_id.clone(),
            all_orgs: is_iam(ctx),
            url: url.to_string(),
            types: serde_json::to_string(&types).unwrap_or_else(|_| "[]".into()),
            secret_enc: self.events.seal(&id, &secret)?,
            created_by: ctx.actor.clone(),
            created_at: w.now.fixed_offset(),
        };
        repo::insert_webhook(w.db(), row.clone()).await?;
        let org = ctx.org_id.clone();
        w.record(
            "org",
            &org,
            sequence,
            "org.webhook.added",
            json!({"webhookId": id, "url": row.url, "types": types, "allOrgs": row.all_orgs}),
        );
        w.commit().await?;
        Ok((webhook_view(&row, &[]), secret.text()))
    }

    pub async fn list_webhooks(&self, ctx: &Ctx) -> Result<Vec<WebhookView>> {
        ctx.require(Permission::EventRead)?;
        let hooks = self.visible_webhooks(ctx).await?;
        let ids: Vec<String> = hooks.iter().map(|w| w.id.clone()).collect();
        let counts = repo::delivery_counts(&self.db, &ids).await?;
        Ok(hooks.iter().map(|w| webhook_view(w, &counts)).collect())
    }

    /// RemoveWebhook: its pending deliveries go with it. Another org's webhook is NOT_FOUND.
    pub async fn remove_webhook(&self, ctx: &Ctx, id: &str) -> Result<()> {
        ctx.require(Permission::WebhookWrite)?;
        validate::id("webhookId", id)?;
        let not_found = || Error::not_found("HOOK-NotF1", format!("webhook {id} not found"));
        let mut w = self.begin_write(ctx).await?;
        // The write first (SQLite: a transaction that read before it writes may find the
        // database moved on and fail); an invisible webhook rolls it back.
        repo::delete_deliveries_of(w.db(), id).await?;
        let hook = repo::find_webhook(w.db(), id)
            .await?
            .filter(|h| is_iam(ctx) || h.org_id == ctx.org_id)
            .ok_or_else(not_found)?;
        w.set_org(&hook.org_id);
        let sequence = repo::bump_org(w.db(), &hook.org_id, w.now)
            .await?
            .ok_or_else(not_found)?;
        if !repo::delete_webhook(w.db(), id).await? {
            return Err(not_found());
        }
        w.record(
            "org",
            &hook.org_id,
            sequence,
            "org.webhook.removed",
            json!({"webhookId": id, "url": hook.url}),
        );
        w.commit().await
    }
}
