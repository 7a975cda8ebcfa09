//! Events and webhooks: the audit trail searchable by key and user, the event log as the
//! webhooks' outbox (`dispatched_at` is set once an event's deliveries exist), the webhooks,
//! their deliveries, the expiry notices already given, and the rows background jobs lock so
//! that one process at a time does them.
use sea_orm::{ConnectionTrait, Statement};
use sea_orm_migration::{
    prelude::*,
    schema::{big_integer, big_pk_auto, blob, boolean, integer, string_len, text},
};

use super::{Dialect, ID, cascade, index};
use crate::domain::events::Subject;

#[derive(DeriveMigrationName)]
pub struct Migration;

const EVENTS: &str = "events";
const WEBHOOKS: &str = "webhooks";
const DELIVERIES: &str = "deliveries";
const NOTICES: &str = "key_notices";
const JOBS: &str = "job_locks";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        let columns = [
            ColumnDef::new("key_id").string_len(ID).null().to_owned(),
            ColumnDef::new("user_id").string_len(ID).null().to_owned(),
            d.time_null("dispatched_at"),
        ];
        for mut col in columns {
            m.alter_table(Table::alter().table(EVENTS).add_column(&mut col).to_owned())
                .await?;
        }
        backfill(m).await?;
        m.create_index(index(EVENTS, &["dispatched_at", "position"]))
            .await?;
        m.create_index(index(EVENTS, &["key_id"])).await?;
        m.create_index(index(EVENTS, &["user_id"])).await?;
        m.create_index(index("authn_keys", &["expires_at"])).await?;

        m.create_table(
            d.table(WEBHOOKS)
                .col(string_len("id", ID).primary_key())
                .col(string_len("org_id", ID))
                // An IAM_OWNER's webhook: every org's events.
                .col(boolean("all_orgs"))
                .col(text("url"))
                // JSON array of contract types; empty: every type.
                .col(text("types"))
                .col(blob("secret_enc"))
                .col(string_len("created_by", ID))
                .col(d.time("created_at"))
                .foreign_key(&mut cascade("fk_webhooks_org", WEBHOOKS, "org_id", "orgs"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(WEBHOOKS, &["org_id"])).await?;

        m.create_table(
            d.table(DELIVERIES)
                .col(big_pk_auto("id"))
                .col(string_len("webhook_id", ID))
                .col(big_integer("event_position"))
                // Deliveries with the same key (a key id, else the event's aggregate) reach a
                // webhook in event order.
                .col(string_len("order_key", ID))
                .col(string_len("state", 16))
                .col(integer("attempts"))
                .col(d.time("due_at"))
                .col(d.time("created_at"))
                .col(d.time_null("last_attempt_at"))
                .col(ColumnDef::new("last_status").integer().null())
                .col(ColumnDef::new("last_error").text().null())
                .foreign_key(&mut cascade(
                    "fk_deliveries_webhook",
                    DELIVERIES,
                    "webhook_id",
                    WEBHOOKS,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(DELIVERIES, &["state", "due_at"]))
            .await?;
        m.create_index(index(
            DELIVERIES,
            &["webhook_id", "order_key", "event_position"],
        ))
        .await?;
        m.create_index(index(DELIVERIES, &["event_position"]))
            .await?;

        m.create_table(
            d.table(NOTICES)
                .col(string_len("key_id", ID))
                // Seconds of the window; 0: the key expired.
                .col(big_integer("notice"))
                .col(d.time("created_at"))
                .primary_key(Index::create().col("key_id").col("notice"))
                .foreign_key(
                    &mut ForeignKey::create()
                        .name("fk_key_notices_key")
                        .from(NOTICES, "key_id")
                        .to("authn_keys", "id")
                        .on_delete(ForeignKeyAction::Cascade)
                        .to_owned(),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            d.table(JOBS)
                .col(string_len("name", 32).primary_key())
                .col(string_len("holder", 64))
                .col(d.time("ran_at"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [JOBS, NOTICES, DELIVERIES, WEBHOOKS] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        m.drop_index(
            Index::drop()
                .name("ix_authn_keys_expires_at")
                .table("authn_keys")
                .to_owned(),
        )
        .await?;
        for name in [
            "ix_events_dispatched_at_position",
            "ix_events_key_id",
            "ix_events_user_id",
        ] {
            m.drop_index(Index::drop().name(name).table(EVENTS).to_owned())
                .await?;
        }
        for col in ["dispatched_at", "user_id", "key_id"] {
            m.alter_table(Table::alter().table(EVENTS).drop_column(col).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Each recorded event's key and user, from how it was recorded; every event recorded before
/// webhooks existed counts as dispatched.
async fn backfill(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let backend = db.get_database_backend();
    db.execute_unprepared("UPDATE events SET dispatched_at = created_at")
        .await?;
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT position, aggregate_type, aggregate_id, payload FROM events",
        ))
        .await?;
    let update = match backend {
        sea_orm::DbBackend::Postgres => {
            "UPDATE events SET key_id = $1, user_id = $2 WHERE position = $3"
        }
        _ => "UPDATE events SET key_id = ?, user_id = ? WHERE position = ?",
    };
    for row in rows {
        let position: i64 = row.try_get_by_index(0)?;
        let aggregate_type: String = row.try_get_by_index(1)?;
        let aggregate_id: String = row.try_get_by_index(2)?;
        let payload: String = row.try_get_by_index(3)?;
        let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null);
        let s = Subject::of(&aggregate_type, &aggregate_id, &payload);
        if s.key_id.is_none() && s.user_id.is_none() {
            continue;
        }
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            update,
            [s.key_id.into(), s.user_id.into(), position.into()],
        ))
        .await?;
    }
    Ok(())
}
