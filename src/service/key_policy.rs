//! Org key policies (authnkeys.v1 PolicyService): an org's own, else the instance default
//! from the configuration. Applied where keys are added (`authn_keys.rs`), read there from
//! memory (`cache.rs`; a change drops it everywhere, as every cached fact). A key whose add
//! began before a policy change committed may still follow the previous policy: keys that
//! exist when a policy is set are left as they are.
use serde_json::json;

use super::{Ctx, Services};
use crate::{
    domain::{key_policy::KeyPolicy, principal::Permission},
    error::{Error, Result},
    storage::repo,
};

/// The policy as the audit trail records it.
fn policy_json(p: &KeyPolicy) -> serde_json::Value {
    json!({
        "maxLifetimeSecs": p.max_lifetime.map(|d| d.num_seconds()),
        "defaultLifetimeSecs": p.default_lifetime.map(|d| d.num_seconds()),
        "maxKeysPerOwner": p.max_keys_per_owner,
        "allowedOrigins": p.allowed_origins.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "allowedAlgorithms": p.allowed_algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    })
}

impl Services {
    /// GetKeyPolicy: the policy and whether it is the instance default.
    pub async fn get_key_policy(&self, ctx: &Ctx) -> Result<(KeyPolicy, bool)> {
        ctx.require(Permission::PolicyRead)?;
        Ok(match repo::find_key_policy(&self.db, &ctx.org_id).await? {
            Some(own) => (own, false),
            None => (self.settings.key_policy.clone(), true),
        })
    }

    /// SetKeyPolicy: the org's own policy from now on; keys that exist are left as they are.
    pub async fn set_key_policy(&self, ctx: &Ctx, policy: KeyPolicy) -> Result<KeyPolicy> {
        ctx.require(Permission::PolicyWrite)?;
        policy.validate()?;
        let mut w = self.begin_write(ctx).await?;
        let sequence = repo::bump_org(w.db(), &ctx.org_id, w.now)
            .await?
            .ok_or_else(|| org_missing(&ctx.org_id))?;
        repo::upsert_key_policy(w.db(), &ctx.org_id, &policy, sequence, w.now).await?;
        let org = ctx.org_id.clone();
        w.record(
            "org",
            &org,
            sequence,
            "org.key.policy.set",
            policy_json(&policy),
        );
        w.commit().await?;
        Ok(policy)
    }

    /// ResetKeyPolicy: back to the instance default (which it answers). Resetting an org that
    /// has no policy of its own changes nothing and records nothing.
    pub async fn reset_key_policy(&self, ctx: &Ctx) -> Result<KeyPolicy> {
        ctx.require(Permission::PolicyWrite)?;
        let mut w = self.begin_write(ctx).await?;
        let sequence = repo::bump_org(w.db(), &ctx.org_id, w.now)
            .await?
            .ok_or_else(|| org_missing(&ctx.org_id))?;
        if repo::delete_key_policy(w.db(), &ctx.org_id).await? {
            let org = ctx.org_id.clone();
            w.record(
                "org",
                &org,
                sequence,
                "org.key.policy.reset",
                policy_json(&self.settings.key_policy),
            );
            w.commit().await?;
        }
        Ok(self.settings.key_policy.clone())
    }
}

fn org_missing(org_id: &str) -> Error {
    Error::not_found("QUERY-iTTGJ", format!("organization {org_id} not found"))
}
