//! Indexes for the console's listings: an org's users, an org's projects and a project's apps,
//! each read in (created_at, id) order, as the key listings are.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &str, [&str; 3]); 3] = [
    (
        "users",
        "ix_users_org_id_created_at_id",
        ["org_id", "created_at", "id"],
    ),
    (
        "projects",
        "ix_projects_org_id_created_at_id",
        ["org_id", "created_at", "id"],
    ),
    (
        "apps",
        "ix_apps_project_id_created_at_id",
        ["project_id", "created_at", "id"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, cols) in INDEXES {
            let mut i = Index::create();
            i.name(name).table(table);
            for c in cols {
                i.col(c);
            }
            m.create_index(i.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, _) in INDEXES {
            m.drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
