//! An index for the newest event position of one org: the `processedSequence` of a listing
//! reflects only the orgs its caller may see, and each org's maximum is one probe of it.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_events_org_id_position";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name(NAME)
                .table("events")
                .col("org_id")
                .col("position")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name(NAME).table("events").to_owned())
            .await
    }
}
