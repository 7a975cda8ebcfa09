//! First start: the default org, an admin machine user with the instance role IAM_OWNER, and
//! the admin's JSON key file (mode 0600, never overwritten). Runs once per database; a second
//! process starting on the same empty database loses the race on the instance row and skips.
use std::{io::Write, path::Path};

use serde_json::json;

use super::{Ctx, Services, authn_keys::KEY_TYPE_JSON, orgs::domain_label};
use crate::{
    domain::{
        expiry,
        jwt::Algorithm,
        key_file,
        model::{AccessTokenType, AuthnKey, KeyOrigin, KeyOwner, Member, Org, User},
        principal::Role,
    },
    error::{Error, Kind, Result},
    storage::repo,
};

pub const ADMIN_USER_NAME: &str = "admin";

/// What start-up found or made.
#[derive(Debug, Clone)]
pub struct Instance {
    pub default_org_id: String,
    pub admin_user_id: String,
    /// True when this start created the instance (and wrote the key file).
    pub created: bool,
}

impl Services {
    pub async fn bootstrap(&self, org_name: &str, admin_key_file: &Path) -> Result<Instance> {
        if let Some((org_id, admin_id)) = repo::find_instance(&self.db).await? {
            return Ok(Instance {
                default_org_id: org_id,
                admin_user_id: admin_id,
                created: false,
            });
        }
        let private = crate::domain::keypair::KeyPair::from(self.keygen.next_key().await?);
        let now = self.now();
        let org_id = self.ids.next_id();
        let admin_id = self.ids.next_id();
        let key_id = self.ids.next_id();
        let expires_at = expiry::never();
        let file =
            key_file::machine_key_file(&key_id, &private, expires_at, &admin_id).map_err(|e| {
                Error::internal("BOOT-File1", "cannot build the admin key file").with_source(e)
            })?;
        let public_pem = private.public_key().to_pkix_pem().map_err(|e| {
            Error::internal("BOOT-Pem01", "cannot encode the admin public key").with_source(e)
        })?;
        let ctx = Ctx {
            actor: admin_id.clone(),
            org_id: org_id.clone(),
            roles: vec![Role::IamOwner, Role::OrgOwner],
        };

        let mut w = self.begin_write_at(&ctx, now).await?;
        match repo::insert_instance(w.db(), &org_id, &admin_id, now).await {
            Ok(()) => {}
            Err(e) if e.kind == Kind::AlreadyExists => {
                drop(w);
                let (org_id, admin_id) = repo::find_instance(&self.db)
                    .await?
                    .ok_or_else(|| Error::internal("BOOT-Race1", "instance row vanished"))?;
                return Ok(Instance {
                    default_org_id: org_id,
                    admin_user_id: admin_id,
                    created: false,
                });
            }
            Err(e) => return Err(e),
        }
        repo::insert_org(
            w.db(),
            &Org {
                id: org_id.clone(),
                name: org_name.to_owned(),
                primary_domain: format!("{}.{}", domain_label(org_name), self.settings.domain),
                sequence: 1,
                created_at: now,
                changed_at: now,
            },
        )
        .await?;
        repo::insert_user(
            w.db(),
            &User {
                id: admin_id.clone(),
                org_id: org_id.clone(),
                user_name: ADMIN_USER_NAME.into(),
                name: "Administrator".into(),
                description: "created at first start; holds IAM_OWNER".into(),
                access_token_type: AccessTokenType::Bearer,
                dpop_bound: false,
                sequence: 2,
                created_at: now,
                changed_at: now,
            },
        )
        .await?;
        repo::insert_instance_member(w.db(), &admin_id, &[Role::IamOwner], now).await?;
        repo::insert_org_member(
            w.db(),
            &Member {
                org_id: org_id.clone(),
                user_id: admin_id.clone(),
                roles: vec![Role::OrgOwner],
            },
            now,
        )
        .await?;
        repo::insert_key(
            w.db(),
            &AuthnKey {
                id: key_id.clone(),
                owner: KeyOwner::user(&admin_id),
                org_id: org_id.clone(),
                key_type: KEY_TYPE_JSON,
                public_key: public_pem,
                expires_at,
                sequence: 2,
                created_at: now,
                algorithm: Algorithm::RS256,
                origin: KeyOrigin::Generated,
                thumbprint: private.public_key().thumbprint(),
                disabled: None,
                last_used: None,
            },
        )
        .await?;
        for (agg, id, seq, ty, payload) in [
            ("org", &org_id, 1, "org.added", json!({"name": org_name})),
            (
                "user",
                &admin_id,
                1,
                "user.machine.added",
                json!({"userName": ADMIN_USER_NAME}),
            ),
            (
                "user",
                &admin_id,
                2,
                "user.machine.key.added",
                json!({"keyId": key_id}),
            ),
            (
                "instance",
                &admin_id,
                1,
                "instance.member.added",
                json!({"userId": admin_id, "roles": ["IAM_OWNER"]}),
            ),
        ] {
            w.record(agg, id, seq, ty, payload);
        }
        write_key_file(admin_key_file, file.as_bytes())?;
        if let Err(e) = w.commit().await {
            let _ = std::fs::remove_file(admin_key_file);
            return Err(e);
        }
        Ok(Instance {
            default_org_id: org_id,
            admin_user_id: admin_id,
            created: true,
        })
    }
}

/// What `authn-keys admin-key` did.
#[derive(Debug, Clone)]
pub struct BreakGlass {
    pub user_id: String,
    pub key_id: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// True when no IAM_OWNER was left and a new admin user was made.
    pub created_user: bool,
}

/// When a break-glass key expires: at a time, or after a while. A recovery key is meant to
/// be used and removed, so it expires after [`KeyExpiry::DEFAULT_HOURS`] unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExpiry {
    At(chrono::DateTime<chrono::Utc>),
    After(chrono::Duration),
}

impl Default for KeyExpiry {
    fn default() -> Self {
        KeyExpiry::After(chrono::Duration::hours(Self::DEFAULT_HOURS))
    }
}

impl KeyExpiry {
    pub const DEFAULT_HOURS: i64 = 24;

    /// An RFC 3339 time (`2027-01-01T00:00:00Z`) or a duration: whole numbers with units
    /// `w`, `d`, `h`, `m`, `s`, as in `7d`, `12h` or `1d12h`.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(KeyExpiry::At(at.to_utc()));
        }
        let invalid = || {
            format!(
                "{text:?} is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration such as 7d, 12h or 1d12h (units w, d, h, m, s)"
            )
        };
        let mut total = chrono::Duration::zero();
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: i64 = digits.parse().map_err(|_| invalid())?;
            digits.clear();
            let part = match c {
                'w' => chrono::Duration::try_weeks(n),
                'd' => chrono::Duration::try_days(n),
                'h' => chrono::Duration::try_hours(n),
                'm' => chrono::Duration::try_minutes(n),
                's' => chrono::Duration::try_seconds(n),
                _ => None,
            }
            .ok_or_else(invalid)?;
            total = total.checked_add(&part).ok_or_else(invalid)?;
        }
        if !digits.is_empty() || total <= chrono::Duration::zero() {
            return Err(invalid());
        }
        Ok(KeyExpiry::After(total))
    }

    pub fn resolve(
        self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>> {
        let at = match self {
            KeyExpiry::At(at) => at,
            KeyExpiry::After(d) => now.checked_add_signed(d).ok_or_else(|| {
                Error::invalid_argument("BOOT-Exp01", "the expiration is too far in the future")
            })?,
        };
        let at = crate::storage::db_time(at);
        if at > expiry::never() {
            return Err(Error::invalid_argument(
                "BOOT-Exp01",
                "the expiration is too far in the future (at most 9999-12-31T23:59:59Z)",
            ));
        }
        expiry::key_expiration(Some(at), now)
    }
}

/// The actor recorded on break-glass events.
pub const BREAK_GLASS_ACTOR: &str = "system:break-glass";

impl Services {
    /// Break-glass for operators with database access: a new key for an IAM_OWNER machine
    /// user (the oldest grant first), or, when none is left, a new admin user holding
    /// IAM_OWNER and ORG_OWNER of the default org. Written to `out` (mode 0600, never
    /// overwritten) and audited, in one transaction.
    pub async fn break_glass(&self, out: &Path, expiration: KeyExpiry) -> Result<BreakGlass> {
        let Some((default_org, _)) = repo::find_instance(&self.db).await? else {
            return Err(Error::failed_precondition(
                "BOOT-NoInst",
                "this database has no instance yet: start the server once, it creates the admin and its key file",
            ));
        };
        if out.exists() {
            return Err(Error::failed_precondition(
                "BOOT-Exist2",
                format!("{} already exists and is never overwritten", out.display()),
            ));
        }
        let now = self.now();
        let expires_at = expiration.resolve(now)?;
        let private = crate::domain::keypair::KeyPair::from(self.keygen.next_key().await?);
        let key_id = self.ids.next_id();
        let public_pem = private.public_key().to_pkix_pem().map_err(|e| {
            Error::internal("BOOT-Pem02", "cannot encode the public key").with_source(e)
        })?;

        let mut w = self
            .begin_write_at(&self.system_ctx(&default_org), now)
            .await?;
        repo::lock_instance(w.db()).await?;
        let mut owner = None;
        for id in repo::instance_role_holders(w.db(), Role::IamOwner).await? {
            if let Some(user) = repo::find_user(w.db(), &id).await? {
                owner = Some(user);
                break;
            }
        }
        let created_user = owner.is_none();
        let (user_id, org_id) = match owner {
            Some(user) => (user.id, user.org_id),
            None => {
                let id = self.ids.next_id();
                repo::insert_user(
                    w.db(),
                    &User {
                        id: id.clone(),
                        org_id: default_org.clone(),
                        user_name: format!("admin-{id}"),
                        name: "Administrator (break-glass)".into(),
                        description: "created by `authn-keys admin-key`; holds IAM_OWNER".into(),
                        access_token_type: AccessTokenType::Bearer,
                        dpop_bound: false,
                        sequence: 1,
                        created_at: now,
                        changed_at: now,
                    },
                )
                .await?;
                repo::insert_instance_member(w.db(), &id, &[Role::IamOwner], now).await?;
                repo::insert_org_member(
                    w.db(),
                    &Member {
                        org_id: default_org.clone(),
                        user_id: id.clone(),
                        roles: vec![Role::OrgOwner],
                    },
                    now,
                )
                .await?;
                for (agg, seq, ty, payload) in [
                    (
                        "user",
                        1,
                        "user.machine.added",
                        json!({"userName": format!("admin-{id}"), "breakGlass": true}),
                    ),
                    (
                        "instance",
                        1,
                        "instance.member.added",
                        json!({"userId": id, "roles": ["IAM_OWNER"], "breakGlass": true}),
                    ),
                ] {
                    w.record(agg, &id, seq, ty, payload);
                }
                (id, default_org.clone())
            }
        };
        let sequence = repo::bump_user(w.db(), &org_id, &user_id, now)
            .await?
            .ok_or_else(|| Error::internal("BOOT-Gone1", "the admin user vanished"))?;
        repo::insert_key(
            w.db(),
            &AuthnKey {
                id: key_id.clone(),
                owner: KeyOwner::user(&user_id),
                org_id: org_id.clone(),
                key_type: KEY_TYPE_JSON,
                public_key: public_pem,
                expires_at,
                sequence,
                created_at: now,
                algorithm: Algorithm::RS256,
                origin: KeyOrigin::Generated,
                thumbprint: private.public_key().thumbprint(),
                disabled: None,
                last_used: None,
            },
        )
        .await?;
        w.set_org(&org_id);
        w.record(
            "user",
            &user_id,
            sequence,
            "user.machine.key.added",
            json!({"keyId": key_id, "expirationDate": expires_at, "breakGlass": true}),
        );
        let file =
            key_file::machine_key_file(&key_id, &private, expires_at, &user_id).map_err(|e| {
                Error::internal("BOOT-File2", "cannot build the key file").with_source(e)
            })?;
        write_key_file(out, file.as_bytes())?;
        if let Err(e) = w.commit().await {
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
        tracing::warn!(user_id = %user_id, key_id = %key_id, created_user, "break-glass: an IAM_OWNER key file was written");
        Ok(BreakGlass {
            user_id,
            key_id,
            expires_at,
            created_user,
        })
    }

    fn system_ctx(&self, org_id: &str) -> Ctx {
        Ctx {
            actor: BREAK_GLASS_ACTOR.into(),
            org_id: org_id.to_owned(),
            roles: vec![Role::IamOwner],
        }
    }
}

/// Writes a new file readable by its owner only; an existing file is never overwritten.
fn write_key_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::internal(
                "BOOT-Dir01",
                format!("cannot create the directory {}", dir.display()),
            )
            .with_source(e)
        })?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::failed_precondition(
                "BOOT-Exist1",
                format!(
                    "the admin key file {} already exists and is never overwritten; move it away or set AUTHN_KEYS_ADMIN_KEY_FILE",
                    path.display()
                ),
            )
        } else {
            Error::internal("BOOT-Open1", format!("cannot create the admin key file {}", path.display())).with_source(e)
        }
    })?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| {
        Error::internal("BOOT-Write", format!("cannot write {}", path.display())).with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_glass_expiry_defaults_to_a_day_and_reads_times_and_durations() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let at = |e: KeyExpiry| e.resolve(now).unwrap().to_rfc3339();
        assert_eq!(at(KeyExpiry::default()), "2026-01-02T00:00:00+00:00");
        let parse = |t: &str| KeyExpiry::parse(t).unwrap();
        assert_eq!(at(parse("7d")), "2026-01-08T00:00:00+00:00");
        assert_eq!(at(parse("12h")), "2026-01-01T12:00:00+00:00");
        assert_eq!(at(parse("1d12h30m")), "2026-01-02T12:30:00+00:00");
        assert_eq!(at(parse("2w")), "2026-01-15T00:00:00+00:00");
        assert_eq!(
            at(parse("2027-01-01T00:00:00Z")),
            "2027-01-01T00:00:00+00:00"
        );
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "-1d",
            "0h",
            "1.5h",
            "99999999999999999999d",
        ] {
            let e = KeyExpiry::parse(bad).expect_err(bad);
            assert!(e.contains("RFC 3339"), "{e}");
        }
        assert_eq!(
            parse("2020-01-01T00:00:00Z").resolve(now).unwrap_err().id,
            "DOMAIN-dv3t5"
        );
        assert_eq!(
            parse("999999999w").resolve(now).unwrap_err().id,
            "BOOT-Exp01"
        );
    }
}
