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
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Constraint names are unique per database on MySQL: the old table still holds
        // `fk_access_tokens_user_id` while this one is created.
        super::rebuild_access_tokens(m, "machine_keys", ["fk_tokens_user", "fk_tokens_key"]).await
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
