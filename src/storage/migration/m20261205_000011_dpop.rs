//! DPoP (RFC 9449): the key thumbprint a token is bound to, and the machine users whose
//! tokens must be bound (`dpop_bound_access_tokens`).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("access_tokens")
                .add_column(ColumnDef::new("dpop_jkt").string_len(64).null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("users")
                .add_column(
                    ColumnDef::new("dpop_bound")
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("users")
                .drop_column("dpop_bound")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("access_tokens")
                .drop_column("dpop_jkt")
                .to_owned(),
        )
        .await
    }
}
