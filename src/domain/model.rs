//! The records the services work with, as plain data. Storage maps its rows to these.
use chrono::{DateTime, Utc};

use super::{jwt::Algorithm, principal::Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub primary_domain: String,
    pub sequence: u64,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

/// How a machine user's access tokens look (zitadel.user.v1.AccessTokenType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenType {
    /// Opaque random token; only its hash is stored.
    Bearer = 0,
    /// RS256 JWT, verifiable with the JWKS.
    Jwt = 1,
}

impl AccessTokenType {
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(AccessTokenType::Bearer),
            1 => Some(AccessTokenType::Jwt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub org_id: String,
    pub user_name: String,
    pub name: String,
    pub description: String,
    pub access_token_type: AccessTokenType,
    /// Tokens are issued only with a DPoP proof, bound to its key (RFC 9449
    /// `dpop_bound_access_tokens`).
    pub dpop_bound: bool,
    pub sequence: u64,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

/// Whose key it is: the one thing that differs between a machine user's key and an API app's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// A machine user's key: signs JWT-profile assertions at the token endpoint.
    User { user_id: String },
    /// An API app's key: signs client assertions at the introspection endpoint.
    App { project_id: String, app_id: String },
}

/// The kind of a [`KeyOwner`], for lookups that know which kind they expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    User,
    App,
}

impl KeyOwner {
    pub fn user(user_id: impl Into<String>) -> Self {
        KeyOwner::User {
            user_id: user_id.into(),
        }
    }

    pub fn app(project_id: impl Into<String>, app_id: impl Into<String>) -> Self {
        KeyOwner::App {
            project_id: project_id.into(),
            app_id: app_id.into(),
        }
    }

    /// The user's or the app's id.
    pub fn id(&self) -> &str {
        match self {
            KeyOwner::User { user_id } => user_id,
            KeyOwner::App { app_id, .. } => app_id,
        }
    }

    pub fn kind(&self) -> OwnerKind {
        match self {
            KeyOwner::User { .. } => OwnerKind::User,
            KeyOwner::App { .. } => OwnerKind::App,
        }
    }

    /// The project of an app's key.
    pub fn project_id(&self) -> Option<&str> {
        match self {
            KeyOwner::User { .. } => None,
            KeyOwner::App { project_id, .. } => Some(project_id),
        }
    }
}

/// Who made a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOrigin {
    /// The server generated it and returned the private key once, in the key file.
    Generated,
    /// Its owner uploaded the public key; the server never saw the private key.
    Uploaded,
}

impl KeyOrigin {
    pub const ALL: [KeyOrigin; 2] = [KeyOrigin::Generated, KeyOrigin::Uploaded];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::Generated => "generated",
            KeyOrigin::Uploaded => "uploaded",
        }
    }

    pub fn parse(s: &str) -> Option<KeyOrigin> {
        KeyOrigin::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Where a key stands. A disabled key that has also expired reads as disabled: the operator's
/// decision, with its reason, is what a reader needs to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    Active,
    Disabled,
    Expired,
}

/// What a key was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUse {
    /// A machine user's assertion at the token endpoint.
    JwtBearerGrant,
    /// A client assertion: an API app's at introspection or revocation, a machine user's at
    /// revocation.
    ClientAssertion,
}

impl KeyUse {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::JwtBearerGrant => "jwt_bearer_grant",
            KeyUse::ClientAssertion => "client_assertion",
        }
    }

    pub fn parse(s: &str) -> Option<KeyUse> {
        [KeyUse::JwtBearerGrant, KeyUse::ClientAssertion]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

/// A key's most recent successful use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    pub at: DateTime<Utc>,
    pub kind: KeyUse,
    /// The client's address as seen (after trusted proxies); empty when unknown.
    pub address: String,
}

/// Set while a key is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabled {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A machine key or an app key: public part and metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnKey {
    pub id: String,
    pub owner: KeyOwner,
    pub org_id: String,
    pub key_type: i32,
    /// PKIX PEM.
    pub public_key: String,
    pub expires_at: DateTime<Utc>,
    /// The owning aggregate's sequence after the key was added.
    pub sequence: u64,
    pub created_at: DateTime<Utc>,
    /// The JWS algorithm its assertions use (an RSA key verifies RS256 and PS256 alike).
    pub algorithm: Algorithm,
    pub origin: KeyOrigin,
    /// RFC 7638 SHA-256 JWK thumbprint, base64url.
    pub thumbprint: String,
    pub disabled: Option<Disabled>,
    pub last_used: Option<LastUse>,
}

impl AuthnKey {
    pub fn state(&self, now: DateTime<Utc>) -> KeyState {
        if self.disabled.is_some() {
            KeyState::Disabled
        } else if self.expires_at <= now {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }

    /// The user's or the app's id.
    pub fn owner_id(&self) -> &str {
        self.owner.id()
    }

    /// The key's ObjectDetails on reads: keys never change, so both dates are its creation.
    pub fn details(&self) -> Details {
        Details::read(
            self.sequence,
            self.created_at,
            self.created_at,
            &self.org_id,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub org_id: String,
    pub user_id: String,
    pub roles: Vec<Role>,
}

/// An org membership as ListOrgMembers shows it: the roles, with the member user's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    pub org_id: String,
    pub user_id: String,
    pub roles: Vec<Role>,
    /// The user's login name within its org.
    pub user_name: String,
    /// The machine user's name.
    pub display_name: String,
    /// The org the user belongs to.
    pub user_org_id: String,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

impl ReadDetails for MemberEntry {
    /// Memberships keep their dates but no sequence of their own, so the sequence is 0 rather
    /// than a number that would mean something else.
    fn details(&self) -> Details {
        Details::read(0, self.created_at, self.changed_at, &self.org_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub project_role_assertion: bool,
    pub project_role_check: bool,
    pub has_project_check: bool,
    pub private_labeling_setting: i32,
    pub sequence: u64,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

/// How an API app authenticates (zitadel.app.v1.APIAuthMethodType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAuthMethod {
    Basic = 0,
    PrivateKeyJwt = 1,
}

impl ApiAuthMethod {
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(ApiAuthMethod::Basic),
            1 => Some(ApiAuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub project_id: String,
    pub org_id: String,
    pub name: String,
    pub client_id: String,
    pub auth_method: ApiAuthMethod,
    /// PHC string of the client secret's argon2id hash (BASIC apps only).
    pub secret_hash: Option<String>,
    pub sequence: u64,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("project_id", &self.project_id)
            .field("client_id", &self.client_id)
            .field("auth_method", &self.auth_method)
            .finish_non_exhaustive()
    }
}

/// An issued access token (opaque or JWT) as recorded, and what a valid, unrevoked token says:
/// only its hash is stored, with the key it was obtained with, so removing the user or that
/// key ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub org_id: String,
    /// The machine key whose assertion obtained the token, or the trust whose outside token
    /// did (`via_trust`). Ids are unique across both.
    pub key_id: String,
    pub via_trust: bool,
    pub scopes: Vec<String>,
    /// The `aud` claim as issued: the user itself, then the requested projects.
    pub audience: Vec<String>,
    /// The project ids the token was asked for (each checked to be of the user's org): the
    /// only audiences an API app may accept it for.
    pub projects: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// The RFC 7638 thumbprint of the key the token is bound to (DPoP, RFC 9449): it then
    /// works only with a fresh proof signed by that key.
    pub dpop_jkt: Option<String>,
}

/// An audit event, appended in the same transaction as the change it records.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub org_id: String,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub aggregate_sequence: u64,
    pub event_type: &'static str,
    pub actor: String,
    /// Never holds key material or secrets.
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The ObjectDetails of an object as read: its sequence, both dates, its org.
pub trait ReadDetails {
    fn details(&self) -> Details;
}

/// `ReadDetails` for records with a sequence, both dates and an owning org (`$owner`).
macro_rules! read_details {
    ($($record:ty => $owner:ident),*) => {$(
        impl ReadDetails for $record {
            fn details(&self) -> Details {
                Details::read(self.sequence, self.created_at, self.changed_at, &self.$owner)
            }
        }
    )*};
}

read_details!(Org => id, User => org_id, Project => org_id, App => org_id);

/// ZITADEL's ObjectDetails: on create the creation date is set, on change and remove the
/// change date, on reads both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub sequence: u64,
    pub created: Option<DateTime<Utc>>,
    pub changed: Option<DateTime<Utc>>,
    pub resource_owner: String,
}

impl Details {
    pub fn added(sequence: u64, at: DateTime<Utc>, resource_owner: &str) -> Self {
        Details {
            sequence,
            created: Some(at),
            changed: None,
            resource_owner: resource_owner.into(),
        }
    }
    pub fn changed(sequence: u64, at: DateTime<Utc>, resource_owner: &str) -> Self {
        Details {
            sequence,
            created: None,
            changed: Some(at),
            resource_owner: resource_owner.into(),
        }
    }
    pub fn read(
        sequence: u64,
        created: DateTime<Utc>,
        changed: DateTime<Utc>,
        resource_owner: &str,
    ) -> Self {
        Details {
            sequence,
            created: Some(created),
            changed: Some(changed),
            resource_owner: resource_owner.into(),
        }
    }
}

/// One page of a list, with the totals ZITADEL's ListDetails carry.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub total: u64,
    pub processed_sequence: u64,
    pub view_timestamp: DateTime<Utc>,
    pub items: Vec<T>,
}
