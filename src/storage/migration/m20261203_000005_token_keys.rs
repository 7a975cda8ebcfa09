//! A token record cannot outlive the key it was obtained with: `access_tokens.key_id` becomes a
//! foreign key to `machine_keys` with cascade. Before, a grant read the key, did more work and
//! then recorded the token without checking that the key was still there, so a token granted
//! while its key was being removed stayed valid for its whole lifetime. Now the database decides,
//! on every backend and across processes: the insert of a token whose key is gone fails (the
//! grant is refused), and the removal of a key deletes every token recorded with it, including
//! one committed while the removal waited for its lock.
//!
//! The table is rebuilt (SQLite cannot add a constraint to an existing table); records whose key
//! no longer exists are not carried over — they are exactly the tokens that should not work.
use sea_orm_migration::{prelude::*, schema::*};

use super::Dialect;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ID: u32 = 200;
const COLUMNS: &str =
    "id, token_hash, user_id, org_id, key_id, scopes, audience, projects, expires_at, created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        // Constraint names are unique per database on MySQL: the old table still holds
        // `fk_access_tokens_user_id` while this one is created.
        m.create_table(
            d.table("access_tokens_next")
                .col(string_len("id", ID).primary_key())
                .col(string_len("token_hash", 64).unique_key())
                .col(string_len("user_id", ID))
                .col(string_len("org_id", ID))
                .col(string_len("key_id", ID))
                .col(text("scopes"))
                .col(text("audience"))
                .col(text("projects"))
                .col(d.time("expires_at"))
                .col(d.time("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_tokens_user")
                        .from("access_tokens_next", "user_id")
                        .to("users", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_tokens_key")
                        .from("access_tokens_next", "key_id")
                        .to("machine_keys", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO access_tokens_next ({COLUMNS}) SELECT {COLUMNS} FROM access_tokens t \
                 WHERE EXISTS (SELECT 1 FROM machine_keys k WHERE k.id = t.key_id)"
            ))
            .await?;
        m.drop_table(Table::drop().table("access_tokens").to_owned())
            .await?;
        m.rename_table(
            Table::rename()
                .table("access_tokens_next", "access_tokens")
                .to_owned(),
        )
        .await?;
        for col in ["user_id", "key_id", "expires_at"] {
            m.create_index(
                Index::create()
                    .name(format!("ix_access_tokens_{col}"))
                    .table("access_tokens")
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
