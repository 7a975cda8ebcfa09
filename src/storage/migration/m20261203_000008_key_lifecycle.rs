//! The key lifecycle: each key's algorithm, origin and RFC 7638 thumbprint, its disabled state
//! and its last use; and the orgs' key policies. Existing keys get their thumbprint and
//! algorithm from their public key, and their origin from the event that recorded their
//! addition (`uploaded` in its payload).
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{
    prelude::*,
    schema::{big_integer, integer, string_len, text},
};

use super::{Dialect, ID, cascade, index};
use crate::domain::keypair::PublicKey;

#[derive(DeriveMigrationName)]
pub struct Migration;

const KEYS: &str = "authn_keys";
const POLICIES: &str = "key_policies";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        // One column per statement: SQLite alters one thing at a time.
        let columns = [
            ColumnDef::new("algorithm")
                .string_len(16)
                .not_null()
                .default("RS256")
                .to_owned(),
            ColumnDef::new("origin")
                .string_len(16)
                .not_null()
                .default("generated")
                .to_owned(),
            ColumnDef::new("thumbprint")
                .string_len(64)
                .null()
                .to_owned(),
            d.time_null("disabled_at"),
            ColumnDef::new("disabled_reason").text().null().to_owned(),
            d.time_null("last_used_at"),
            ColumnDef::new("last_used_kind")
                .string_len(32)
                .null()
                .to_owned(),
            ColumnDef::new("last_used_address")
                .string_len(64)
                .null()
                .to_owned(),
        ];
        for mut col in columns {
            m.alter_table(Table::alter().table(KEYS).add_column(&mut col).to_owned())
                .await?;
        }
        backfill(m).await?;
        m.create_index(index(KEYS, &["org_id", "expires_at"]))
            .await?;
        m.create_table(
            d.table(POLICIES)
                .col(string_len("org_id", ID).primary_key())
                .col(big_integer("max_lifetime_secs").null())
                .col(big_integer("default_lifetime_secs").null())
                .col(integer("max_keys_per_owner"))
                // JSON arrays of strings; empty: everything allowed.
                .col(text("allowed_origins"))
                .col(text("allowed_algorithms"))
                .col(big_integer("sequence"))
                .col(d.time("changed_at"))
                .foreign_key(&mut cascade(
                    "fk_key_policies_org",
                    POLICIES,
                    "org_id",
                    "orgs",
                ))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(POLICIES).to_owned())
            .await?;
        m.drop_index(
            Index::drop()
                .name("ix_authn_keys_org_id_expires_at")
                .table(KEYS)
                .to_owned(),
        )
        .await?;
        for col in [
            "last_used_address",
            "last_used_kind",
            "last_used_at",
            "disabled_reason",
            "disabled_at",
            "thumbprint",
            "origin",
            "algorithm",
        ] {
            m.alter_table(Table::alter().table(KEYS).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Thumbprint and algorithm from each stored public key; origin from the key's added event.
async fn backfill(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = db.get_database_backend();
    let uploaded: std::collections::HashSet<String> = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT payload FROM events WHERE event_type IN \
             ('user.machine.key.added', 'project.application.key.added')",
        ))
        .await?
        .into_iter()
        .filter_map(|row| row.try_get_by_index::<String>(0).ok())
        .filter_map(|payload| serde_json::from_str::<serde_json::Value>(&payload).ok())
        .filter(|p| p["uploaded"].as_bool() == Some(true))
        .filter_map(|p| p["keyId"].as_str().map(str::to_owned))
        .collect();
    let keys = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, public_key FROM authn_keys",
        ))
        .await?;
    let update = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE authn_keys SET thumbprint = $1, algorithm = $2, origin = $3 WHERE id = $4"
        }
        _ => "UPDATE authn_keys SET thumbprint = ?, algorithm = ?, origin = ? WHERE id = ?",
    };
    for row in keys {
        let id: String = row.try_get_by_index(0)?;
        let pem: String = row.try_get_by_index(1)?;
        // Every stored key was checked when it was added; one that no longer parses keeps
        // NULL and is reported unreadable where it is used, as before.
        let Ok(public) = PublicKey::from_pkix_pem(pem.as_bytes()) else {
            continue;
        };
        let origin = if uploaded.contains(&id) {
            "uploaded"
        } else {
            "generated"
        };
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            update,
            [
                public.thumbprint().into(),
                public.default_algorithm().as_str().into(),
                origin.into(),
                id.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}
