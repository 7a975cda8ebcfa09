//! Trusts in outside issuers (keyless machine identity), and access tokens obtained with one:
//! a token references the key or the trust that obtained it (exactly one of them), each with a
//! cascading foreign key, so removing a trust ends its tokens as removing a key does.
use sea_orm_migration::{
    prelude::*,
    schema::{big_integer, boolean, string_len, text},
};

use super::{Dialect, ID, cascade, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TRUSTS: &str = "trusts";
const COLUMNS: &str =
    "id, token_hash, user_id, org_id, key_id, scopes, audience, projects, expires_at, created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        m.create_table(
            d.table(TRUSTS)
                .col(string_len("id", ID).primary_key())
                .col(string_len("org_id", ID))
                .col(string_len("user_id", ID))
                .col(text("issuer"))
                // SHA-256 of the issuer, hex: looked up at every exchange.
                .col(string_len("issuer_hash", 64))
                .col(text("subject"))
                .col(text("audience"))
                // JSON object of claim name → required value.
                .col(text("claims"))
                .col(ColumnDef::new("jwks").text().null())
                .col(ColumnDef::new("jwks_uri").text().null())
                .col(big_integer("max_token_lifetime_secs").null())
                .col(boolean("cap_at_token_expiry"))
                // SHA-256 over issuer, subject, audience and claims: one trust per match rule.
                .col(string_len("fingerprint", 64).unique_key())
                .col(big_integer("sequence"))
                .col(string_len("created_by", ID))
                .col(d.time("created_at"))
                .foreign_key(&mut cascade("fk_trusts_org", TRUSTS, "org_id", "orgs"))
                .foreign_key(&mut cascade("fk_trusts_user", TRUSTS, "user_id", "users"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(TRUSTS, &["issuer_hash"])).await?;
        m.create_index(index(TRUSTS, &["user_id"])).await?;

        // access_tokens again, with a nullable key and a trust (SQLite cannot change a column
        // of an existing table, so every backend rebuilds it).
        let next = "access_tokens_next";
        m.create_table(
            d.table(next)
                .col(string_len("id", ID).primary_key())
                .col(string_len("token_hash", 64).unique_key())
                .col(string_len("user_id", ID))
                .col(string_len("org_id", ID))
                .col(ColumnDef::new("key_id").string_len(ID).null())
                .col(ColumnDef::new("trust_id").string_len(ID).null())
                .col(text("scopes"))
                .col(text("audience"))
                .col(text("projects"))
                .col(d.time("expires_at"))
                .col(d.time("created_at"))
                .foreign_key(&mut cascade("fk_tokens3_user", next, "user_id", "users"))
                .foreign_key(&mut cascade("fk_tokens3_key", next, "key_id", "authn_keys"))
                .foreign_key(&mut cascade("fk_tokens3_trust", next, "trust_id", TRUSTS))
                .to_owned(),
        )
        .await?;
        super::swap_in_access_tokens(
            m,
            next,
            COLUMNS,
            "",
            &["user_id", "key_id", "trust_id", "expires_at"],
        )
        .await
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "trusts cannot be taken back: tokens obtained with a trust have no key".into(),
        ))
    }
}
