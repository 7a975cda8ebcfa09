//! The key lifecycle of authnkeys.v1 KeyService: one view of the keys of both owners — add
//! (any algorithm), get, list with lifecycle filters, disable, enable, remove. Keys are the
//! same rows v1 and v2 read and write; permissions are v1's, per owner kind, in the context
//! org (`x-zitadel-orgid` or the caller's), and a key of another org is NOT_FOUND.
use serde_json::json;

use super::{
    Ctx, Services,
    authn_keys::{
        AddedKey, KEY_TYPE_JSON, NewKey, aggregate_of, check_key, page_of, rules, validate_owner,
    },
    last_use::LastUses,
};
use crate::{
    domain::{
        list::{KeyQuery, Page},
        model::{AuthnKey, Disabled, KeyOwner, OwnerKind},
        principal::Permission,
        validate,
    },
    error::{Error, Result},
    storage::repo,
};

/// The longest reason a key may be disabled with.
pub const MAX_REASON_CHARS: usize = 500;

fn read_permission(kind: OwnerKind) -> Permission {
    match kind {
        OwnerKind::User => Permission::UserRead,
        OwnerKind::App => Permission::ProjectAppRead,
    }
}

fn write_permission(kind: OwnerKind) -> Permission {
    match kind {
        OwnerKind::User => Permission::UserWrite,
        OwnerKind::App => Permission::ProjectAppWrite,
    }
}

fn key_missing(key_id: &str) -> Error {
    Error::not_found(
        "KEY-Nf001",
        format!("key {} not found", crate::domain::text::shown(key_id)),
    )
}

/// Whether `k` passes the query's filters at `now`: what `repo::search_org_keys` asks the
/// database, for an owner's list in memory.
fn matches(q: &KeyQuery, k: &AuthnKey, now: chrono::DateTime<chrono::Utc>) -> bool {
    let owner_ok = match &k.owner {
        KeyOwner::User { user_id } => {
            q.users
                && q.user_id.as_ref().is_none_or(|u| u == user_id)
                && q.project_id.is_none()
                && q.app_id.is_none()
        }
        KeyOwner::App { project_id, app_id } => {
            q.apps
                && q.user_id.is_none()
                && q.project_id.as_ref().is_none_or(|p| p == project_id)
                && q.app_id.as_ref().is_none_or(|a| a == app_id)
        }
    };
    owner_ok
        && q.state.is_none_or(|s| s == k.state(now))
        && q.origin.is_none_or(|o| o == k.origin)
        && q.unused_since
            .is_none_or(|t| k.last_used.as_ref().is_none_or(|u| u.at < t))
        && q.expires_before.is_none_or(|t| k.expires_at < t)
}

/// A page of keys and the count of all that match.
#[derive(Debug)]
pub struct KeyList {
    pub total: u64,
    pub items: Vec<AuthnKey>,
}

impl Services {
    /// The context org's key, as stored (a key of another org is NOT_FOUND, as a missing one).
    async fn org_key(&self, ctx: &Ctx, key_id: &str) -> Result<AuthnKey> {
        repo::find_key(&self.db, key_id)
            .await?
            .filter(|k| k.org_id == ctx.org_id)
            .ok_or_else(|| key_missing(key_id))
    }

    /// AddKey: a key for a user or an app of the context org, uploaded or generated for the
    /// algorithm asked for.
    pub async fn add_key_any(&self, ctx: &Ctx, new: NewKey) -> Result<AddedKey> {
        validate_owner(&new.owner)?;
        ctx.require(write_permission(new.owner.kind()))?;
        let owner = self.owner_in_org(ctx, &new.owner).await?;
        let checked = check_key(
            KEY_TYPE_JSON,
            new.expiration,
            new.public_key.as_deref(),
            new.algorithm,
            self.now(),
        )?;
        self.insert_key(ctx, owner, checked).await
    }

    /// The context org's key with its latest use, for a caller who may read that owner kind.
    pub async fn get_key_any(&self, ctx: &Ctx, key_id: &str) -> Result<AuthnKey> {
        validate::id("key_id", key_id)?;
        let pending = self.last_uses.pending(key_id);
        let mut key = self.org_key(ctx, key_id).await?;
        ctx.require(read_permission(key.owner.kind()))?;
        LastUses::overlay(&mut key, pending);
        Ok(key)
    }

    /// ListKeys: the context org's keys the caller may read (users' keys with `user.read`,
    /// apps' with `project.app.read`), filtered; the total counts only those.
    pub async fn list_keys_any(
        &self,
        ctx: &Ctx,
        mut query: KeyQuery,
        page: Page,
    ) -> Result<KeyList> {
        for (field, id) in [
            ("user_id", &query.user_id),
            ("project_id", &query.project_id),
            ("app_id", &query.app_id),
        ] {
            if let Some(id) = id {
                validate::id(field, id)?;
            }
        }
        query.users = ctx.may(Permission::UserRead);
        query.apps = ctx.may(Permission::ProjectAppRead);
        let now = self.now();
        // Whether a filter reads the keys' last use, the uses not yet written included.
        let reads_pending_uses = query.unused_since.is_some() && !self.last_uses.is_empty();
        // One owner's keys: filtered and paged from its list in memory.
        let owner = match (&query.user_id, &query.project_id, &query.app_id) {
            (Some(user), None, None) if query.users => Some(KeyOwner::user(user)),
            (None, Some(project), Some(app)) if query.apps => Some(KeyOwner::app(project, app)),
            _ => None,
        };
        if let Some(owner) = owner
            && let Some(list) = self
                .owner_keys(&ctx.org_id, &owner, &Self::event_scope(ctx))
                .await?
        {
            let keep = |k: &AuthnKey| matches(&query, k, now);
            // Every key is copied with its use only when the filter reads it; otherwise the
            // page alone is copied, and given its uses.
            let keys = if reads_pending_uses {
                let mut with_uses = list.keys.clone();
                self.last_uses.overlay_all(&mut with_uses);
                std::borrow::Cow::Owned(with_uses)
            } else {
                std::borrow::Cow::Borrowed(&list.keys[..])
            };
            let mut items = page_of(&keys, page, keep);
            self.last_uses.overlay_all(&mut items);
            return Ok(KeyList {
                total: keys.iter().filter(|k| keep(k)).count() as u64,
                items,
            });
        }
        if reads_pending_uses {
            // The filter is evaluated by the database: what this process saw must be there.
            self.flush_last_uses().await?;
        }
        let found = repo::search_org_keys(
            &self.db,
            &ctx.org_id,
            &query,
            now,
            page,
            &Self::event_scope(ctx),
        )
        .await?;
        let mut items = found.items;
        self.last_uses.overlay_all(&mut items);
        Ok(KeyList {
            total: found.total,
            items,
        })
    }

    /// DisableKey: the key signs nothing that is accepted from now on, and every access token
    /// obtained with it ends — here before this answers, elsewhere within the caches' bound.
    /// A key that is already disabled is FAILED_PRECONDITION (one state change, one event).
    pub async fn disable_key(&self, ctx: &Ctx, key_id: &str, reason: &str) -> Result<AuthnKey> {
        let reason = reason.trim();
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(Error::invalid_argument(
                "KEY-Rsn01",
                format!("reason is longer than {MAX_REASON_CHARS} characters"),
            ));
        }
        self.change_key_state(ctx, key_id, Some(reason)).await
    }

    /// EnableKey: the key is usable again; the tokens it had obtained stay ended.
    pub async fn enable_key(&self, ctx: &Ctx, key_id: &str) -> Result<AuthnKey> {
        self.change_key_state(ctx, key_id, None).await
    }

    /// Disables (`reason` given) or enables the key, in one write that holds its owner — as
    /// every key write does — so concurrent changes of one key apply one after the other.
    async fn change_key_state(
        &self,
        ctx: &Ctx,
        key_id: &str,
        reason: Option<&str>,
    ) -> Result<AuthnKey> {
        validate::id("key_id", key_id)?;
        let key = self.org_key(ctx, key_id).await?;
        ctx.require(write_permission(key.owner.kind()))?;
        let rules = rules(key.owner.kind());
        let mut w = self.begin_write(ctx).await?;
        let sequence = self
            .lock_owner(&w, ctx, &key.owner, || key_missing(key_id))
            .await?;
        let changed = match reason {
            Some(reason) => {
                let disabled = Disabled {
                    at: w.now,
                    reason: reason.to_owned(),
                };
                repo::disable_key(w.db(), &ctx.org_id, key_id, &disabled).await?
            }
            None => repo::enable_key(w.db(), &ctx.org_id, key_id).await?,
        };
        if !changed {
            // Gone meanwhile, or already in that state.
            let now = repo::find_key(w.db(), key_id)
                .await?
                .filter(|k| k.org_id == ctx.org_id)
                .ok_or_else(|| key_missing(key_id))?;
            return Err(match (reason, &now.disabled) {
                (Some(_), Some(d)) => Error::failed_precondition(
                    "KEY-Dis02",
                    format!(
                        "key {key_id} is already disabled (since {})",
                        d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                ),
                _ => {
                    Error::failed_precondition("KEY-Ena01", format!("key {key_id} is not disabled"))
                }
            });
        }
        let mut payload = json!({"keyId": key_id});
        if let Some(reason) = reason {
            payload["reason"] = json!(reason);
        }
        if let KeyOwner::App { app_id, .. } = &key.owner {
            payload["appId"] = json!(app_id);
        }
        let event = if reason.is_some() {
            rules.disabled
        } else {
            rules.enabled
        };
        w.record(
            rules.aggregate,
            aggregate_of(&key.owner),
            sequence,
            event,
            payload,
        );
        // The key as this write left it (a removal may follow at once: the answer is still
        // what this call did).
        let pending = self.last_uses.pending(key_id);
        let mut changed = repo::find_key(w.db(), key_id)
            .await?
            .ok_or_else(|| key_missing(key_id))?;
        w.commit().await?;
        LastUses::overlay(&mut changed, pending);
        Ok(changed)
    }

    /// RemoveKey: as v1's removal of the owner's key.
    pub async fn remove_key_any(&self, ctx: &Ctx, key_id: &str) -> Result<()> {
        validate::id("key_id", key_id)?;
        let key = self.org_key(ctx, key_id).await?;
        ctx.require(write_permission(key.owner.kind()))?;
        self.remove_key(ctx, &key.owner, key_id)
            .await
            .map_err(|e| {
                if e.kind == crate::error::Kind::NotFound {
                    key_missing(key_id)
                } else {
                    e
                }
            })?;
        Ok(())
    }
}
