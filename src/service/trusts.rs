//! authnkeys.v1 TrustService: a machine user's trusts in outside issuers. The exchange of an
//! outside token for an access token is in `tokens/trusted.rs`.
use std::{collections::BTreeMap, sync::Arc};

use serde_json::json;

use super::{Ctx, Services, issuer_keys::KeySource};
use crate::{
    domain::{
        jwks::Jwks,
        list::Page,
        principal::Permission,
        trust::{MAX_TRUSTS_PER_USER, TrustRule, issuer_hash},
        validate,
    },
    error::{Error, Result},
    storage::{entity::trust, repo},
};

/// The most an inline JWKS may weigh.
pub const MAX_INLINE_JWKS: usize = 64 * 1024;

/// What AddTrust asks for.
#[derive(Debug, Clone)]
pub struct NewTrust {
    pub user_id: String,
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub claims: BTreeMap<String, String>,
    pub jwks_uri: String,
    pub jwks: Option<serde_json::Value>,
    pub max_token_lifetime: Option<chrono::Duration>,
    pub cap_at_token_expiry: bool,
}

/// A trust as the exchange uses it: its row, its rule, and where its issuer's keys come from
/// (an inline key set parsed once).
#[derive(Debug, Clone)]
pub struct TrustEntry {
    pub model: trust::Model,
    pub rule: TrustRule,
    pub source: KeySource,
}

impl TrustEntry {
    /// `None` for a row that no longer reads (an inline key set or URL that was valid when
    /// it was added always is): such a trust matches nothing.
    pub fn of(model: trust::Model) -> Option<TrustEntry> {
        let source = match (&model.jwks, &model.jwks_uri) {
            (Some(jwks), _) => KeySource::Inline(Arc::new(Jwks::parse(jwks.as_bytes()).ok()?)),
            (None, Some(uri)) => KeySource::Uri(url::Url::parse(uri).ok()?),
            (None, None) => KeySource::Discovery {
                issuer: model.issuer.clone(),
            },
        };
        let rule = TrustRule {
            issuer: model.issuer.clone(),
            subject: model.subject.clone(),
            audience: model.audience.clone(),
            claims: serde_json::from_str(&model.claims).ok()?,
        };
        Some(TrustEntry {
            model,
            rule,
            source,
        })
    }
}

fn trust_missing(id: &str) -> Error {
    Error::not_found(
        "TRUST-NotF1",
        format!("trust {} not found", crate::domain::text::shown(id)),
    )
}

impl Services {
    /// AddTrust: like adding a key to the user (user.write in its org, inside the privilege
    /// boundary); the rule must be new.
    pub async fn add_trust(&self, ctx: &Ctx, new: NewTrust) -> Result<trust::Model> {
        ctx.require(Permission::UserWrite)?;
        validate::id("userId", &new.user_id)?;
        let rule = TrustRule {
            issuer: new.issuer.trim().to_owned(),
            subject: new.subject,
            audience: new.audience,
            claims: new.claims,
        };
        rule.validate()?;
        let jwks = match &new.jwks {
            Some(v) => {
                let text = v.to_string();
                if text.len() > MAX_INLINE_JWKS {
                    return Err(Error::invalid_argument(
                        "TRUST-Jwks1",
                        format!("jwks is larger than {} KiB", MAX_INLINE_JWKS / 1024),
                    ));
                }
                Jwks::parse(text.as_bytes())
                    .map_err(|e| Error::invalid_argument("TRUST-Jwks2", format!("jwks: {e}")))?;
                Some(text)
            }
            None => None,
        };
        let jwks_uri = if new.jwks_uri.is_empty() {
            None
        } else {
            Some(self.outbound.check_url(&new.jwks_uri)?.to_string())
        };
        if jwks.is_none() && jwks_uri.is_none() {
            // The keys come from the issuer's discovery document: it must be reachable by
            // the outbound rules.
            self.outbound.check_url(&rule.issuer).map_err(|e| {
                Error::invalid_argument(
                    "TRUST-Iss04",
                    format!(
                        "issuer: its keys would be fetched from its /.well-known/openid-configuration, and {}; or give jwks (inline) or jwksUri",
                        e.message
                    ),
                )
            })?;
        }
        let max_token_lifetime = match new.max_token_lifetime {
            Some(d) if d < chrono::Duration::seconds(1) || d > chrono::Duration::days(1) => {
                return Err(Error::invalid_argument(
                    "TRUST-Life1",
                    "maxTokenLifetime must be between 1 second and 24 hours",
                ));
            }
            other => other,
        };
        let mut w = self.begin_write(ctx).await?;
        let sequence = repo::bump_user(w.db(), &ctx.org_id, &new.user_id, w.now)
            .await?
            .ok_or_else(|| {
                Error::not_found(
                    "TRUST-User1",
                    format!(
                        "machine user {} not found in this organization",
                        new.user_id
                    ),
                )
            })?;
        self.check_boundary(w.db(), ctx, &new.user_id).await?;
        if repo::count_trusts_of_user(w.db(), &new.user_id).await? >= MAX_TRUSTS_PER_USER as u64 {
            return Err(Error::failed_precondition(
                "TRUST-Max01",
                format!(
                    "a machine user has at most {MAX_TRUSTS_PER_USER} trusts; remove one first"
                ),
            ));
        }
        let row = trust::Model {
            id: self.ids.next_id(),
            org_id: ctx.org_id.clone(),
            user_id: new.user_id.clone(),
            issuer: rule.issuer.clone(),
            issuer_hash: issuer_hash(&rule.issuer),
            subject: rule.subject.clone(),
            audience: rule.audience.clone(),
            claims: serde_json::to_string(&rule.claims).unwrap_or_else(|_| "{}".into()),
            jwks,
            jwks_uri,
            max_token_lifetime_secs: max_token_lifetime.map(|d| d.num_seconds()),
            cap_at_token_expiry: new.cap_at_token_expiry,
            fingerprint: rule.fingerprint(),
            sequence: sequence as i64,
            created_by: ctx.actor.clone(),
            created_at: w.now.fixed_offset(),
        };
        repo::insert_trust(w.db(), row.clone()).await.map_err(|e| {
            repo::on_conflict(
                e,
                "TRUST-Dup01",
                "a trust with this issuer, subject, audience and claims exists already (for this or another user): a token must name one user",
            )
        })?;
        w.record(
            "user",
            &new.user_id,
            sequence,
            "user.machine.trust.added",
            json!({
                "trustId": row.id,
                "issuer": row.issuer,
                "subject": row.subject,
                "audience": row.audience,
                "claims": rule.claims,
            }),
        );
        w.commit().await?;
        Ok(row)
    }

    pub async fn get_trust(&self, ctx: &Ctx, id: &str) -> Result<trust::Model> {
        ctx.require(Permission::UserRead)?;
        validate::id("trustId", id)?;
        repo::find_trust(&self.db, id)
            .await?
            .filter(|t| t.org_id == ctx.org_id)
            .ok_or_else(|| trust_missing(id))
    }

    pub async fn list_trusts(
        &self,
        ctx: &Ctx,
        user_id: Option<&str>,
        page: Page,
    ) -> Result<(Vec<trust::Model>, u64)> {
        ctx.require(Permission::UserRead)?;
        if let Some(u) = user_id {
            validate::id("userId", u)?;
        }
        repo::search_trusts(&self.db, &ctx.org_id, user_id, page).await
    }

    /// RemoveTrust: the tokens obtained with it end at once (here) and within the caches'
    /// bound elsewhere, as a removed key's.
    pub async fn remove_trust(&self, ctx: &Ctx, id: &str) -> Result<()> {
        ctx.require(Permission::UserWrite)?;
        validate::id("trustId", id)?;
        let found = repo::find_trust(&self.db, id)
            .await?
            .filter(|t| t.org_id == ctx.org_id)
            .ok_or_else(|| trust_missing(id))?;
        let mut w = self.begin_write(ctx).await?;
        let sequence = repo::bump_user(w.db(), &ctx.org_id, &found.user_id, w.now)
            .await?
            .ok_or_else(|| trust_missing(id))?;
        self.check_boundary(w.db(), ctx, &found.user_id).await?;
        if !repo::delete_trust(w.db(), id).await? {
            return Err(trust_missing(id));
        }
        w.record(
            "user",
            &found.user_id,
            sequence,
            "user.machine.trust.removed",
            json!({"trustId": id, "issuer": found.issuer, "subject": found.subject}),
        );
        w.commit().await
    }
}
