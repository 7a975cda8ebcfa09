//! Keys of both owners — a machine user's and an API app's — as one model: add (generated or
//! uploaded), get, list, remove, each one use case parameterised by the [`KeyOwner`]. The v1
//! and v2 RPCs of both owners are adapters onto these; v2's only differ in how they find the
//! org (from the target object, not from `x-zitadel-orgid`) and in the answers upstream gives.
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Ctx, Services, write::Write};
use crate::{
    domain::{
        expiry,
        jwt::Algorithm,
        key_file::{self, KeyFile},
        keypair::{KeyPair, PublicKey},
        list::{KeyFilter, KeyOrder, Page, Visible},
        model::{
            ApiAuthMethod, App, AuthnKey, Details, KeyOrigin, KeyOwner, Listed, OwnerKind, User,
        },
        principal::Permission,
        validate,
    },
    error::{Error, Result},
    storage::{self, repo},
};

/// zitadel.authn.v1.KeyType: KEY_TYPE_JSON is the only kind that can be created.
pub const KEY_TYPE_JSON: i32 = 1;

/// A key to add.
#[derive(Clone)]
pub struct NewKey {
    pub owner: KeyOwner,
    pub key_type: i32,
    pub expiration: Option<DateTime<Utc>>,
    /// PEM of a PKIX public key to register instead of generating a pair.
    pub public_key: Option<Vec<u8>>,
    /// The JWS algorithm asked for (authnkeys.v1 only; ZITADEL's APIs generate RSA keys and
    /// take an uploaded key's own).
    pub algorithm: Option<Algorithm>,
}

/// A key just added; `key_file` holds the private key (generated keys only) and is returned
/// once, never stored.
#[derive(Debug)]
pub struct AddedKey {
    pub key: AuthnKey,
    pub key_file: Option<KeyFile>,
    pub details: Details,
}

/// A page of keys across orgs (v2): the total the caller may see, and the rows.
#[derive(Debug)]
pub struct KeyPage {
    pub total: u64,
    pub limit: u64,
    pub items: Vec<AuthnKey>,
}

/// What differs between the owners: upstream's error ids and the audit trail's names.
pub(crate) struct Rules {
    pub(crate) aggregate: &'static str,
    added: &'static str,
    removed: &'static str,
    pub(crate) disabled: &'static str,
    pub(crate) enabled: &'static str,
    /// The key is not the owner's (reads).
    get_missing: &'static str,
    /// The key or its owner is not there (removal).
    remove_missing: &'static str,
    noun: &'static str,
}

pub(crate) fn rules(kind: OwnerKind) -> &'static Rules {
    match kind {
        OwnerKind::User => &Rules {
            aggregate: "user",
            added: "user.machine.key.added",
            removed: "user.machine.key.removed",
            disabled: "user.machine.key.disabled",
            enabled: "user.machine.key.enabled",
            get_missing: "QUERY-Dgr3g",
            remove_missing: "COMMAND-4m77G",
            noun: "machine key",
        },
        OwnerKind::App => &Rules {
            aggregate: "project",
            added: "project.application.key.added",
            removed: "project.application.key.removed",
            disabled: "project.application.key.disabled",
            enabled: "project.application.key.enabled",
            get_missing: "QUERY-S0fQs",
            remove_missing: "COMMAND-D8fi3",
            noun: "application key",
        },
    }
}

/// The answer for an owner that is not there when a key is added.
pub(super) fn missing_owner(owner: &KeyOwner) -> Error {
    match owner {
        KeyOwner::User { user_id } => Error::failed_precondition(
            "COMMAND-bnipwm1",
            format!("machine user {user_id} not found"),
        ),
        KeyOwner::App { project_id, app_id } => Error::failed_precondition(
            "COMMAND-sak25",
            format!("application {app_id} not found in project {project_id}"),
        ),
    }
}

pub(super) fn validate_owner(owner: &KeyOwner) -> Result<()> {
    match owner {
        KeyOwner::User { user_id } => validate::id("user_id", user_id),
        KeyOwner::App { project_id, app_id } => {
            validate::id("project_id", project_id)?;
            validate::id("app_id", app_id)
        }
    }
}

fn check_key_type(key_type: i32) -> Result<()> {
    if key_type != KEY_TYPE_JSON {
        return Err(Error::invalid_argument(
            "VALIDATION-KeyT1",
            format!("type must be KEY_TYPE_JSON (1), got {key_type}"),
        ));
    }
    Ok(())
}

/// A key request whose expiration and uploaded public key are checked: each is checked once,
/// here, whichever API asked. The expiration is final once the org's key policy is applied.
pub(super) struct CheckedKey {
    key_type: i32,
    /// As asked for (not in the past); the policy decides a missing one.
    expiration: Option<DateTime<Utc>>,
    uploaded: Option<PublicKey>,
    algorithm: Algorithm,
}

impl CheckedKey {
    fn origin(&self) -> KeyOrigin {
        if self.uploaded.is_some() {
            KeyOrigin::Uploaded
        } else {
            KeyOrigin::Generated
        }
    }
}

pub(super) fn check_key(
    key_type: i32,
    expiration: Option<DateTime<Utc>>,
    public_key: Option<&[u8]>,
    algorithm: Option<Algorithm>,
    now: DateTime<Utc>,
) -> Result<CheckedKey> {
    // Upstream's order: the key's content, then its expiration.
    let uploaded = match public_key {
        Some(pem) if !pem.is_empty() => Some(
            PublicKey::from_pkix_pem(pem)
                .map_err(|e| Error::invalid_argument("COMMAND-5F3h1", e.to_string()))?,
        ),
        _ => None,
    };
    let algorithm = match (&uploaded, algorithm) {
        (Some(public), Some(alg)) if !public.allows(alg) => {
            return Err(Error::invalid_argument(
                "KEY-Alg02",
                format!(
                    "algorithm {} does not fit the uploaded key, which verifies {} (leave algorithm empty to use the key's own)",
                    alg.as_str(),
                    public.default_algorithm().as_str()
                ),
            ));
        }
        (Some(public), None) => public.default_algorithm(),
        (_, Some(alg)) => alg,
        (None, None) => Algorithm::RS256,
    };
    let expiration = expiration.map(storage::db_time);
    if expiration.is_some() {
        expiry::key_expiration(expiration, now)?;
    }
    Ok(CheckedKey {
        key_type,
        expiration,
        uploaded,
        algorithm,
    })
}

/// The algorithm named in a request: one of the JWS names we sign assertions with.
pub fn parse_algorithm(field: &str, name: &str) -> Result<Option<Algorithm>> {
    if name.is_empty() {
        return Ok(None);
    }
    Algorithm::parse(name).map(Some).ok_or_else(|| {
        Error::invalid_argument(
            "KEY-Alg01",
            format!(
                "{field} {} is not one we take: use RS256, PS256, ES256, ES384 or EdDSA",
                crate::domain::text::shown(name)
            ),
        )
    })
}

/// The owner as read before the write (an app's key file names its client id).
pub(super) enum Owner {
    User(User),
    App(App),
}

impl Owner {
    fn key_owner(&self) -> KeyOwner {
        match self {
            Owner::User(u) => KeyOwner::user(&u.id),
            Owner::App(a) => KeyOwner::app(&a.project_id, &a.id),
        }
    }
}

impl Services {
    /// AddMachineKey, AddAppKey: in upstream's order — the owner's ids and the key type, the
    /// owner, then the expiration and the uploaded key.
    pub async fn add_key(&self, ctx: &Ctx, new: NewKey) -> Result<AddedKey> {
        validate_owner(&new.owner)?;
        check_key_type(new.key_type)?;
        let owner = self.owner_in_org(ctx, &new.owner).await?;
        let checked = check_key(
            new.key_type,
            new.expiration,
            new.public_key.as_deref(),
            new.algorithm,
            self.now(),
        )?;
        self.insert_key(ctx, owner, checked).await
    }

    /// The owner in the context's org, as adding a key needs it: a user the caller may manage
    /// (the privilege boundary), an app that authenticates with keys.
    pub(super) async fn owner_in_org(&self, ctx: &Ctx, owner: &KeyOwner) -> Result<Owner> {
        match owner {
            KeyOwner::User { user_id } => {
                // From memory: the write locks the user and checks both again.
                let user = self
                    .cached_user(user_id)
                    .await?
                    .filter(|u| u.org_id == ctx.org_id)
                    .ok_or_else(|| missing_owner(owner))?;
                self.precheck_boundary(ctx, user_id).await?;
                Ok(Owner::User(user))
            }
            KeyOwner::App { project_id, app_id } => {
                let app = repo::find_app_in_project(&self.db, &ctx.org_id, project_id, app_id)
                    .await?
                    .ok_or_else(|| missing_owner(owner))?;
                if app.auth_method != ApiAuthMethod::PrivateKeyJwt {
                    return Err(Error::failed_precondition(
                        "COMMAND-Dff54",
                        "the application's auth method is not PRIVATE_KEY_JWT, so it cannot have keys",
                    ));
                }
                Ok(Owner::App(app))
            }
        }
    }

    /// Locks the owner for a write on its keys (bumping the user's or the project's sequence)
    /// and checks it again inside the write; `missing` answers for an owner that is gone.
    pub(super) async fn lock_owner(
        &self,
        w: &Write<'_>,
        ctx: &Ctx,
        owner: &KeyOwner,
        missing: impl Fn() -> Error,
    ) -> Result<u64> {
        match owner {
            KeyOwner::User { user_id } => {
                let sequence = repo::bump_user(w.db(), &ctx.org_id, user_id, w.now)
                    .await?
                    .ok_or_else(&missing)?;
                self.check_boundary(w.db(), ctx, user_id).await?;
                Ok(sequence)
            }
            KeyOwner::App { project_id, app_id } => {
                let sequence = repo::bump_project(w.db(), &ctx.org_id, project_id, w.now)
                    .await?
                    .ok_or_else(&missing)?;
                repo::find_app_in_project(w.db(), &ctx.org_id, project_id, app_id)
                    .await?
                    .ok_or_else(&missing)?;
                Ok(sequence)
            }
        }
    }

    /// The write of an added key: the org's key policy applied, the pair generated unless a
    /// public key was uploaded, the owner locked and checked again, the owner's key count
    /// checked against the policy, the key and its event recorded.
    pub(super) async fn insert_key(
        &self,
        ctx: &Ctx,
        owner: Owner,
        checked: CheckedKey,
    ) -> Result<AddedKey> {
        let origin = checked.origin();
        let policy = self.cached_key_policy(&ctx.org_id).await?;
        policy.check_kind(origin, checked.algorithm)?;
        let expires_at = policy.expiration(checked.expiration, self.now())?;
        let key_id = self.ids.next_id();
        let (public, key_file) = match checked.uploaded {
            Some(public) => (public, None),
            None => {
                let pair = match checked.algorithm {
                    Algorithm::RS256 | Algorithm::PS256 => {
                        KeyPair::from(self.keygen.next_key().await?)
                    }
                    other => KeyPair::generate(other).map_err(|e| {
                        Error::internal("KEY-Gen02", "cannot generate the key pair").with_source(e)
                    })?,
                };
                let file = match &owner {
                    Owner::User(u) => key_file::machine_key_file(&key_id, &pair, expires_at, &u.id),
                    Owner::App(a) => key_file::app_key_file(&key_id, &pair, &a.id, &a.client_id),
                }
                .map_err(|e| {
                    Error::internal("KEY-File1", "cannot build the key file").with_source(e)
                })?;
                (pair.public_key(), Some(file))
            }
        };
        let public_key = public.to_pkix_pem().map_err(|e| {
            Error::internal("KEY-Pem01", "cannot encode the public key").with_source(e)
        })?;
        let owner = owner.key_owner();
        let rules = rules(owner.kind());
        let mut w = self.begin_write(ctx).await?;
        let sequence = self
            .lock_owner(&w, ctx, &owner, || missing_owner(&owner))
            .await?;
        if policy.max_keys_per_owner > 0 {
            // The owner is locked: the count cannot change until this commits.
            policy.check_count(
                repo::count_live_keys(w.db(), &owner, w.now).await?,
                &owner_noun(&owner),
            )?;
        }
        let key = AuthnKey {
            id: key_id.clone(),
            owner,
            org_id: ctx.org_id.clone(),
            key_type: checked.key_type,
            public_key,
            expires_at,
            sequence,
            created_at: w.now,
            algorithm: checked.algorithm,
            origin,
            thumbprint: public.thumbprint(),
            disabled: None,
            last_used: None,
        };
        repo::insert_key(w.db(), &key).await?;
        let mut payload = json!({
            "keyId": key_id,
            "type": key.key_type,
            "expirationDate": key.expires_at,
            "uploaded": origin == KeyOrigin::Uploaded,
            "algorithm": key.algorithm.as_str(),
        });
        if let KeyOwner::App { app_id, .. } = &key.owner {
            payload["appId"] = json!(app_id);
        }
        let (aggregate_id, now) = (aggregate_of(&key.owner).to_owned(), w.now);
        w.record(
            rules.aggregate,
            &aggregate_id,
            sequence,
            rules.added,
            payload,
        );
        w.commit().await?;
        Ok(AddedKey {
            key,
            key_file,
            details: Details::added(sequence, now, &ctx.org_id),
        })
    }

    /// GetMachineKeyByIDs, GetAppKey: the owner's key in the context's org.
    pub async fn get_key(&self, ctx: &Ctx, owner: &KeyOwner, key_id: &str) -> Result<AuthnKey> {
        validate_owner(owner)?;
        validate::id("key_id", key_id)?;
        let rules = rules(owner.kind());
        // Keys never change, and writes invalidate the cache: it answers as the table would.
        self.cached_key(key_id)
            .await?
            .map(|k| k.key)
            .filter(|k| k.org_id == ctx.org_id && k.owner == *owner)
            .ok_or_else(|| Error::not_found(rules.get_missing, format!("{} not found", rules.noun)))
    }

    /// ListMachineKeys, ListAppKeys: ordered, with honest totals; an owner of another org (or
    /// an app of another project) lists nothing. Paged from the owner's list in memory (kept
    /// exact by the writes' invalidation), or by the database for an owner with very many.
    pub async fn list_keys(
        &self,
        ctx: &Ctx,
        owner: &KeyOwner,
        offset: u64,
        limit: u32,
        asc: bool,
    ) -> Result<Listed<AuthnKey>> {
        validate_owner(owner)?;
        let page = Page::new(offset, limit, asc, self.settings.list_limits)?;
        let scope = Self::event_scope(ctx);
        if let Some(list) = self.owner_keys(&ctx.org_id, owner, &scope).await? {
            return Ok(Listed {
                total: list.keys.len() as u64,
                processed_sequence: list.latest_position,
                view_timestamp: self.now(),
                items: page_of(&list.keys, page, |_| true),
            });
        }
        let page = repo::list_keys(&self.db, &ctx.org_id, owner, page, &scope).await?;
        Ok(self.listed(page))
    }

    /// RemoveMachineKey, RemoveAppKey: the key stops working at once, and so does every
    /// access token obtained with it.
    pub async fn remove_key(&self, ctx: &Ctx, owner: &KeyOwner, key_id: &str) -> Result<Details> {
        validate_owner(owner)?;
        validate::id("key_id", key_id)?;
        let rules = rules(owner.kind());
        let not_found =
            || Error::not_found(rules.remove_missing, format!("{} not found", rules.noun));
        let mut w = self.begin_write(ctx).await?;
        let sequence = self.lock_owner(&w, ctx, owner, not_found).await?;
        if !repo::delete_key(w.db(), &ctx.org_id, owner, key_id).await? {
            return Err(not_found());
        }
        let mut payload = json!({"keyId": key_id});
        if let KeyOwner::App { app_id, .. } = owner {
            payload["appId"] = json!(app_id);
        }
        let now = w.now;
        w.record(
            rules.aggregate,
            aggregate_of(owner),
            sequence,
            rules.removed,
            payload,
        );
        w.commit().await?;
        Ok(Details::changed(sequence, now, &ctx.org_id))
    }

    // ---- v2: the org comes from the target object --------------------------------------------

    /// v2 AddKey: the key checks first (as upstream), then the user (a missing one, or one the
    /// caller may not read, is FAILED_PRECONDITION), then `user.write` on its org or
    /// self-service.
    pub async fn add_key_v2(
        &self,
        caller: &User,
        user_id: &str,
        expiration: DateTime<Utc>,
        public_key: Option<Vec<u8>>,
    ) -> Result<AddedKey> {
        let checked = check_key(
            KEY_TYPE_JSON,
            Some(expiration),
            public_key.as_deref(),
            None,
            self.now(),
        )?;
        let missing = || Error::failed_precondition("COMMAND-bnipwm1", "User could not be found");
        let user = self.find_user(user_id).await?.ok_or_else(missing)?;
        let ctx = self.v2_key_writer(caller, &user, missing).await?;
        self.check_boundary(&self.db, &ctx, user_id).await?;
        self.insert_key(&ctx, Owner::User(user), checked).await
    }

    /// Who may write a user's keys in v2: `user.write` on the user's org, or the user itself.
    async fn v2_key_writer(
        &self,
        caller: &User,
        user: &User,
        missing: impl Fn() -> Error,
    ) -> Result<Ctx> {
        self.v2_object_context(
            caller,
            &user.org_id,
            Permission::UserWrite,
            Permission::UserRead,
            Some(&user.id),
            missing,
        )
        .await
    }

    /// v2 RemoveKey: not idempotent. An unknown user, or one the caller may not read, is
    /// NOT_FOUND (COMMAND-4g3xq) unless the caller names itself; a key not of that user is
    /// NOT_FOUND (COMMAND-4m77G).
    pub async fn remove_key_v2(
        &self,
        caller: &User,
        user_id: &str,
        key_id: &str,
    ) -> Result<DateTime<Utc>> {
        validate::id("key_id", key_id)?;
        let key_missing = || Error::not_found("COMMAND-4m77G", "Machine key could not be found");
        let missing = || Error::not_found("COMMAND-4g3xq", "Object could not be found");
        let Some(user) = self.find_user(user_id).await? else {
            return Err(if caller.id == user_id {
                key_missing()
            } else {
                missing()
            });
        };
        let ctx = self.v2_key_writer(caller, &user, missing).await?;
        let details = self
            .remove_key(&ctx, &KeyOwner::user(user_id), key_id)
            .await
            .map_err(|e| {
                if e.id == "COMMAND-4m77G" {
                    key_missing()
                } else {
                    e
                }
            })?;
        Ok(details.changed.unwrap_or_else(|| self.now()))
    }

    /// v2 CreateApplicationKey: `project.app.write` on the project's org. A project the caller
    /// may not read answers as a missing app does.
    pub async fn add_app_key_v2(
        &self,
        caller: &User,
        project_id: &str,
        app_id: &str,
        expiration: Option<DateTime<Utc>>,
    ) -> Result<AddedKey> {
        validate::id("project_id", project_id)?;
        validate::id("application_id", app_id)?;
        let checked = check_key(KEY_TYPE_JSON, expiration, None, None, self.now())?;
        let owner = KeyOwner::app(project_id, app_id);
        let project = repo::find_project(&self.db, project_id)
            .await?
            .ok_or_else(|| missing_owner(&owner))?;
        let ctx = self
            .v2_object_context(
                caller,
                &project.org_id,
                Permission::ProjectAppWrite,
                Permission::ProjectAppRead,
                None,
                || missing_owner(&owner),
            )
            .await?;
        let app = self.owner_in_org(&ctx, &owner).await?;
        self.insert_key(&ctx, app, checked).await
    }

    /// v2 DeleteApplicationKey: not idempotent; `project.app.write` on the project's org. A
    /// key the caller may not read answers as a missing one.
    pub async fn remove_app_key_v2(
        &self,
        caller: &User,
        project_id: &str,
        app_id: &str,
        key_id: &str,
    ) -> Result<DateTime<Utc>> {
        validate::id("key_id", key_id)?;
        let not_found = || Error::not_found("COMMAND-4m77G", "Application key could not be found");
        let owner = KeyOwner::app(project_id, app_id);
        let key = repo::find_key(&self.db, key_id)
            .await?
            .filter(|k| k.owner == owner)
            .ok_or_else(not_found)?;
        let ctx = self
            .v2_object_context(
                caller,
                &key.org_id,
                Permission::ProjectAppWrite,
                Permission::ProjectAppRead,
                None,
                not_found,
            )
            .await?;
        let details = self.remove_key(&ctx, &owner, key_id).await?;
        Ok(details.changed.unwrap_or_else(|| self.now()))
    }

    /// v2 GetApplicationKey: `project.app.read` on the key's org; a key the caller may not
    /// read is NOT_FOUND, as a missing one.
    pub async fn get_app_key_v2(&self, caller: &User, key_id: &str) -> Result<AuthnKey> {
        validate::id("key_id", key_id)?;
        let missing = || Error::not_found("QUERY-Dgr3g", "Key could not be found");
        let key = repo::find_key(&self.db, key_id)
            .await?
            .filter(|k| k.owner.kind() == OwnerKind::App)
            .ok_or_else(missing)?;
        self.v2_object_context(
            caller,
            &key.org_id,
            Permission::ProjectAppRead,
            Permission::ProjectAppRead,
            None,
            missing,
        )
        .await?;
        Ok(key)
    }

    /// v2 ListKeys (users' keys: `user.read` on the owner's org, or the caller's own) and
    /// ListApplicationKeys (`project.app.read` on the app's org).
    pub async fn search_keys_v2(
        &self,
        caller: &User,
        kind: OwnerKind,
        filters: &[KeyFilter],
        order: KeyOrder,
        window: Page,
    ) -> Result<KeyPage> {
        let visible = match kind {
            OwnerKind::User => match self
                .where_permitted(&caller.id, Permission::UserRead)
                .await?
            {
                Visible::All => Visible::All,
                Visible::Some { orgs, .. } => Visible::Some {
                    orgs,
                    own_user: Some(caller.id.clone()),
                },
            },
            OwnerKind::App => {
                self.where_permitted(&caller.id, Permission::ProjectAppRead)
                    .await?
            }
        };
        let found = repo::search_keys(&self.db, kind, &visible, filters, order, window).await?;
        Ok(KeyPage {
            total: found.total,
            limit: window.limit,
            items: found.items,
        })
    }
}

/// The page `page` of the keys in `oldest_first` that `keep` keeps, newest first unless
/// `page.asc`.
pub(crate) fn page_of(
    oldest_first: &[AuthnKey],
    page: Page,
    keep: impl Fn(&AuthnKey) -> bool,
) -> Vec<AuthnKey> {
    let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
    let take = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let kept = |k: &&AuthnKey| keep(k);
    if page.asc {
        oldest_first
            .iter()
            .filter(kept)
            .skip(skip)
            .take(take)
            .cloned()
            .collect()
    } else {
        oldest_first
            .iter()
            .rev()
            .filter(kept)
            .skip(skip)
            .take(take)
            .cloned()
            .collect()
    }
}

/// "user 123" or "app 456", for messages.
pub(crate) fn owner_noun(owner: &KeyOwner) -> String {
    match owner {
        KeyOwner::User { user_id } => format!("user {user_id}"),
        KeyOwner::App { app_id, .. } => format!("app {app_id}"),
    }
}

/// The aggregate a key's events belong to: its user, or its app's project.
pub(crate) fn aggregate_of(owner: &KeyOwner) -> &str {
    match owner {
        KeyOwner::User { user_id } => user_id,
        KeyOwner::App { project_id, .. } => project_id,
    }
}
