//! SeaORM entities, one module a table. They never leave `storage/`.
//!
//! Times are `DateTime<FixedOffset>` (always UTC) rather than `DateTime<Utc>`: sqlx hands the
//! latter to MySQL as a TIMESTAMP parameter, whose range ends in 2038, and keys without an
//! expiration expire in 9999. On SQLite and PostgreSQL both are written alike.
#![allow(clippy::derive_partial_eq_without_eq)]

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod org {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "orgs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub primary_domain: String,
        pub sequence: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub changed_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod user {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub user_name: String,
        pub name: String,
        pub description: String,
        pub access_token_type: i32,
        /// Its tokens must be DPoP-bound (RFC 9449 `dpop_bound_access_tokens`).
        pub dpop_bound: bool,
        pub sequence: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub changed_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod authn_key {
    use sea_orm::entity::prelude::*;
    /// A machine user's key (`user_id`) or an API app's key (`project_id`, `app_id`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "authn_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub user_id: Option<String>,
        pub project_id: Option<String>,
        pub app_id: Option<String>,
        pub key_type: i32,
        pub public_key: String,
        pub expires_at: ChronoDateTimeWithTimeZone,
        pub sequence: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
        /// The JWS algorithm its assertions use.
        pub algorithm: String,
        /// "generated" or "uploaded".
        pub origin: String,
        /// RFC 7638 JWK thumbprint.
        pub thumbprint: Option<String>,
        pub disabled_at: Option<ChronoDateTimeWithTimeZone>,
        pub disabled_reason: Option<String>,
        pub last_used_at: Option<ChronoDateTimeWithTimeZone>,
        pub last_used_kind: Option<String>,
        pub last_used_address: Option<String>,
    }
    no_relations!();
}

pub mod key_policy {
    use sea_orm::entity::prelude::*;
    /// An org's key policy; orgs without a row follow the instance default.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "key_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: String,
        pub max_lifetime_secs: Option<i64>,
        pub default_lifetime_secs: Option<i64>,
        pub max_keys_per_owner: i32,
        pub allowed_origins: String,
        pub allowed_algorithms: String,
        pub sequence: i64,
        pub changed_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod org_member {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "org_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub roles: String,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub changed_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod instance_member {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "instance_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub roles: String,
        pub created_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod project {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "projects")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub name: String,
        pub project_role_assertion: bool,
        pub project_role_check: bool,
        pub has_project_check: bool,
        pub private_labeling_setting: i32,
        pub sequence: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub changed_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod app {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "apps")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub project_id: String,
        pub org_id: String,
        pub name: String,
        pub client_id: String,
        pub auth_method: i32,
        pub secret_hash: Option<String>,
        pub sequence: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub changed_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod access_token {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "access_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub token_hash: String,
        pub user_id: String,
        pub org_id: String,
        /// The key that obtained it, or
        pub key_id: Option<String>,
        /// the trust (exactly one of the two).
        pub trust_id: Option<String>,
        pub scopes: String,
        pub audience: String,
        pub projects: String,
        pub expires_at: ChronoDateTimeWithTimeZone,
        pub created_at: ChronoDateTimeWithTimeZone,
        /// The RFC 7638 thumbprint of the DPoP key the token is bound to.
        pub dpop_jkt: Option<String>,
    }
    no_relations!();
}

pub mod trust {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "trusts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub user_id: String,
        pub issuer: String,
        pub issuer_hash: String,
        pub subject: String,
        pub audience: String,
        pub claims: String,
        pub jwks: Option<String>,
        pub jwks_uri: Option<String>,
        pub max_token_lifetime_secs: Option<i64>,
        pub cap_at_token_expiry: bool,
        pub fingerprint: String,
        pub sequence: i64,
        pub created_by: String,
        pub created_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod used_assertion {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "used_assertions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub expires_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod signing_key {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub algorithm: String,
        pub public_key: String,
        pub private_key_enc: Vec<u8>,
        pub created_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod event {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub position: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub org_id: String,
        pub aggregate_type: String,
        pub aggregate_id: String,
        pub aggregate_sequence: i64,
        pub event_type: String,
        pub actor: String,
        pub payload: String,
        pub key_id: Option<String>,
        pub user_id: Option<String>,
        pub dispatched_at: Option<ChronoDateTimeWithTimeZone>,
    }
    no_relations!();
}

pub mod webhook {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhooks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub all_orgs: bool,
        pub url: String,
        pub types: String,
        /// Sealed with a key derived from the master key; never shown.
        pub secret_enc: Vec<u8>,
        pub created_by: String,
        pub created_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();

    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("webhook::Model")
                .field("id", &self.id)
                .field("org_id", &self.org_id)
                .field("url", &self.url)
                .finish_non_exhaustive()
        }
    }
}

pub mod delivery {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "deliveries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub webhook_id: String,
        pub event_position: i64,
        pub order_key: String,
        pub state: String,
        pub attempts: i32,
        pub due_at: ChronoDateTimeWithTimeZone,
        pub created_at: ChronoDateTimeWithTimeZone,
        pub last_attempt_at: Option<ChronoDateTimeWithTimeZone>,
        pub last_status: Option<i32>,
        pub last_error: Option<String>,
    }
    no_relations!();
}

pub mod key_notice {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "key_notices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub notice: i64,
        pub created_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod job_lock {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "job_locks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub holder: String,
        pub ran_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod node {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "id_nodes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub started_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}

pub mod instance {
    use sea_orm::entity::prelude::*;
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "instance")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub default_org_id: String,
        pub admin_user_id: String,
        pub created_at: ChronoDateTimeWithTimeZone,
    }
    no_relations!();
}
