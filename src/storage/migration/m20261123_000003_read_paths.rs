//! Indexes fitted to the read and delete paths: key listings are ordered by (created_at, id)
//! per owner, so the index carries both; removing a project deletes its app keys and removing
//! a user its memberships, both by a column that was not indexed.
use sea_orm_migration::prelude::*;

use super::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn drop(table: &'static str, name: &'static str) -> IndexDropStatement {
    Index::drop().name(name).table(table).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The wider index first: MySQL refuses to drop the index a foreign key uses until
        // another one serves it.
        m.create_index(index("machine_keys", &["user_id", "created_at", "id"]))
            .await?;
        m.drop_index(drop("machine_keys", "ix_machine_keys_user_id_created_at"))
            .await?;
        m.create_index(index("app_keys", &["app_id", "created_at", "id"]))
            .await?;
        m.drop_index(drop("app_keys", "ix_app_keys_app_id_created_at"))
            .await?;
        m.create_index(index("app_keys", &["project_id"])).await?;
        m.create_index(index("org_members", &["user_id"])).await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(drop("org_members", "ix_org_members_user_id"))
            .await?;
        m.drop_index(drop("app_keys", "ix_app_keys_project_id"))
            .await?;
        m.create_index(index("app_keys", &["app_id", "created_at"]))
            .await?;
        m.drop_index(drop("app_keys", "ix_app_keys_app_id_created_at_id"))
            .await?;
        m.create_index(index("machine_keys", &["user_id", "created_at"]))
            .await?;
        m.drop_index(drop(
            "machine_keys",
            "ix_machine_keys_user_id_created_at_id",
        ))
        .await?;
        Ok(())
    }
}
