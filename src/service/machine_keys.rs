//! Machine keys: add (generated or uploaded), get, list, remove.
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Ctx, Services, cache::Change};
use crate::{
    domain::{
        expiry,
        key_file::{self, KeyFile},
        keypair::PublicKey,
        list::Page,
        model::{AuthnKey, Details, Listed},
        validate,
    },
    error::{Error, Result},
    storage::{TransactionTrait, db_err, repo},
};

/// zitadel.authn.v1.KeyType: KEY_TYPE_JSON is the only kind that can be created.
pub const KEY_TYPE_JSON: i32 = 1;

/// AddMachineKey's input.
#[derive(Clone)]
pub struct NewMachineKey {
    pub user_id: String,
    pub key_type: i32,
    pub expiration: Option<DateTime<Utc>>,
    /// PEM of a PKIX public key to register instead of generating a pair.
    pub public_key: Option<Vec<u8>>,
}

/// A key just added; `key_file` holds the private key (generated keys only) and is returned
/// once, never stored.
#[derive(Debug)]
pub struct AddedKey {
    pub key: AuthnKey,
    pub key_file: Option<KeyFile>,
    pub details: Details,
}

pub(crate) fn check_key_type(key_type: i32) -> Result<()> {
    if key_type != KEY_TYPE_JSON {
        return Err(Error::invalid_argument(
            "VALIDATION-KeyT1",
            format!("type must be KEY_TYPE_JSON (1), got {key_type}"),
        ));
    }
    Ok(())
}

impl Services {
    pub async fn add_machine_key(&self, ctx: &Ctx, new: NewMachineKey) -> Result<AddedKey> {
        validate::id("user_id", &new.user_id)?;
        check_key_type(new.key_type)?;
        let not_machine = || {
            Error::failed_precondition(
                "COMMAND-bnipwm1",
                format!("machine user {} not found", new.user_id),
            )
        };
        repo::get_user_in_org(&self.db, &ctx.org_id, &new.user_id)
            .await?
            .ok_or_else(not_machine)?;
        // Checked before a key is generated (cheap refusals), and again in the transaction.
        self.check_boundary(&self.db, ctx, &new.user_id).await?;
        let now = self.now();
        let expires_at = expiry::key_expiration(new.expiration.map(crate::storage::db_time), now)?;
        let uploaded = match &new.public_key {
            Some(pem) if !pem.is_empty() => Some(
                PublicKey::from_pkix_pem(pem)
                    .map_err(|e| Error::invalid_argument("COMMAND-5F3h1", e.to_string()))?,
            ),
            _ => None,
        };
        let key_id = self.ids.next_id();
        let (public, key_file) = match uploaded {
            Some(public) => (public, None),
            None => {
                let private = self.keys.next_key().await?;
                let file = key_file::machine_key_file(&key_id, &private, expires_at, &new.user_id)
                    .map_err(|e| {
                        Error::internal("KEY-File1", "cannot build the key file").with_source(e)
                    })?;
                (private.public_key(), Some(file))
            }
        };
        let public_pem = public.to_pkix_pem().map_err(|e| {
            Error::internal("KEY-Pem01", "cannot encode the public key").with_source(e)
        })?;

        let tx = self.db.begin().await.map_err(db_err)?;
        let sequence = repo::bump_user(&tx, &ctx.org_id, &new.user_id, now)
            .await?
            .ok_or_else(not_machine)?;
        self.check_boundary(&tx, ctx, &new.user_id).await?;
        let key = AuthnKey {
            id: key_id.clone(),
            owner_id: new.user_id.clone(),
            org_id: ctx.org_id.clone(),
            key_type: new.key_type,
            public_key: public_pem,
            expires_at,
            sequence,
            created_at: now,
        };
        repo::insert_machine_key(&tx, &key).await?;
        repo::append_event(
            &tx,
            self.event(
                ctx,
                "user",
                &new.user_id,
                sequence,
                "user.machine.key.added",
                json!({"keyId": key_id, "type": new.key_type, "expirationDate": expires_at, "uploaded": key_file.is_none()}),
                now,
            ),
        )
        .await?;
        // A new key id may have been asked for (and remembered as absent) before.
        self.commit_changes(tx, &[Change::Key(key_id.clone())])
            .await?;
        Ok(AddedKey {
            key,
            key_file,
            details: Details::added(sequence, now, &ctx.org_id),
        })
    }

    pub async fn get_machine_key(
        &self,
        ctx: &Ctx,
        user_id: &str,
        key_id: &str,
    ) -> Result<AuthnKey> {
        validate::id("user_id", user_id)?;
        validate::id("key_id", key_id)?;
        // Keys never change, and removals invalidate the cache: it answers as the table would.
        self.cached_key(key_id, false)
            .await?
            .map(|k| k.key)
            .filter(|k| k.org_id == ctx.org_id && k.owner_id == user_id)
            .ok_or_else(|| Error::not_found("QUERY-Dgr3g", "machine key not found"))
    }

    /// ListMachineKeys: ordered, with honest totals; another org's user yields an empty list.
    pub async fn list_machine_keys(
        &self,
        ctx: &Ctx,
        user_id: &str,
        offset: u64,
        limit: u32,
        asc: bool,
    ) -> Result<Listed<AuthnKey>> {
        validate::id("user_id", user_id)?;
        let page = Page::new(offset, limit, asc, self.settings.list_limits)?;
        let page = repo::list_machine_keys(
            &self.db,
            &ctx.org_id,
            user_id,
            page,
            &Self::event_scope(ctx),
        )
        .await?;
        Ok(self.listed(page))
    }

    /// RemoveMachineKey: the key stops working at once, and so does every access token
    /// obtained with it.
    pub async fn remove_machine_key(
        &self,
        ctx: &Ctx,
        user_id: &str,
        key_id: &str,
    ) -> Result<Details> {
        validate::id("user_id", user_id)?;
        validate::id("key_id", key_id)?;
        let not_found = || Error::not_found("COMMAND-4m77G", "machine key not found");
        let now = self.now();
        let tx = self.db.begin().await.map_err(db_err)?;
        let sequence = repo::bump_user(&tx, &ctx.org_id, user_id, now)
            .await?
            .ok_or_else(not_found)?;
        self.check_boundary(&tx, ctx, user_id).await?;
        if !repo::delete_machine_key(&tx, &ctx.org_id, user_id, key_id).await? {
            return Err(not_found());
        }
        repo::append_event(
            &tx,
            self.event(
                ctx,
                "user",
                user_id,
                sequence,
                "user.machine.key.removed",
                json!({"keyId": key_id}),
                now,
            ),
        )
        .await?;
        self.commit_changes(tx, &[Change::Key(key_id.to_owned())])
            .await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }
}
