//! Access tokens are found by their record's id, which every token carries (the part before the
//! dot of an opaque token, the `jti` of a JWT), and checked against the hash the record keeps.
//! The hash no longer needs a unique index: ids are time-ordered, so a new record appends to
//! the primary key, where a hash landed at a random place in its index and dirtied a page of
//! its own for every token a batch wrote. Every backend rebuilds the table, as SQLite cannot
//! drop a constraint declared with the table.
use sea_orm_migration::{
    prelude::*,
    schema::{string_len, text},
};

use super::{Dialect, ID, cascade};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &str = "id, token_hash, user_id, org_id, key_id, trust_id, scopes, audience, \
                       projects, expires_at, created_at, dpop_jkt";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        let next = "access_tokens_next";
        m.create_table(
            d.table(next)
                .col(string_len("id", ID).primary_key())
                .col(string_len("token_hash", 64))
                .col(string_len("user_id", ID))
                .col(string_len("org_id", ID))
                .col(ColumnDef::new("key_id").string_len(ID).null())
                .col(ColumnDef::new("trust_id").string_len(ID).null())
                .col(text("scopes"))
                .col(text("audience"))
                .col(text("projects"))
                .col(d.time("expires_at"))
                .col(d.time("created_at"))
                .col(ColumnDef::new("dpop_jkt").string_len(64).null())
                .foreign_key(&mut cascade("fk_tokens4_user", next, "user_id", "users"))
                .foreign_key(&mut cascade("fk_tokens4_key", next, "key_id", "authn_keys"))
                .foreign_key(&mut cascade("fk_tokens4_trust", next, "trust_id", "trusts"))
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
            "token records cannot go back to a unique hash index: earlier versions find tokens by hash only"
                .into(),
        ))
    }
}
