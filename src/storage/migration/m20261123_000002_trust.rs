//! Revocation and replay: access tokens (opaque and JWT alike) are stored by hash with the key
//! they were obtained with and their audiences as lists; used assertion ids are remembered
//! until the assertion expires.
//!
//! Tokens issued before this migration are dropped: their audiences were stored as joined
//! strings and never checked against the caller's org, so none of them can be trusted. Their
//! holders request new ones (the JWT-profile grant is non-interactive).
use sea_orm_migration::{prelude::*, schema::*};

use super::Dialect;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        m.drop_table(Table::drop().table("access_tokens").to_owned())
            .await?;
        m.create_table(
            super::access_tokens_table(&d, "access_tokens")
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_access_tokens_user_id")
                        .from("access_tokens", "user_id")
                        .to("users", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        for col in ["user_id", "key_id", "expires_at"] {
            m.create_index(super::index("access_tokens", &[col]))
                .await?;
        }
        m.create_table(
            d.table("used_assertions")
                // SHA-256 (hex) of key id and jti.
                .col(string_len("id", 64).primary_key())
                .col(d.time("expires_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(super::index("used_assertions", &["expires_at"]))
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("used_assertions").to_owned())
            .await?;
        Ok(())
    }
}
