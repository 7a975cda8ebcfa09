//! One key table for both owners. Keys of machine users and of API apps were two tables with
//! the same columns but the owner; every feature of keys (lifecycle, last use, policies) would
//! have been written twice. `authn_keys` holds both: a user's key has `user_id`, an app's key
//! `project_id` and `app_id`, and exactly one of the two owners is set (a check constraint).
//! Both owners keep their cascade: removing a user or an app removes its keys, and removing a
//! key removes the access tokens obtained with it (`access_tokens.key_id` now references this
//! table).
//!
//! Rows move as they are: key ids come from one generator, so the two tables never shared an
//! id. The old tables are dropped at the end, in the same migration.
use sea_orm_migration::{prelude::*, schema::*};

use super::{Dialect, ID, cascade, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const KEY_COLUMNS: &str = "key_type, public_key, expires_at, sequence, created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        let t = "authn_keys";
        let mut table = d.table(t);
        table
            .col(string_len("id", ID).primary_key())
            .col(string_len("org_id", ID))
            .col(string_len_null("user_id", ID))
            .col(string_len_null("project_id", ID))
            .col(string_len_null("app_id", ID));
        super::key_columns(&mut table, &d);
        m.create_table(
            table
                .check(Expr::cust(
                    "(user_id IS NOT NULL AND app_id IS NULL AND project_id IS NULL) \
                     OR (user_id IS NULL AND app_id IS NOT NULL AND project_id IS NOT NULL)",
                ))
                .foreign_key(&mut cascade("fk_authn_keys_user", t, "user_id", "users"))
                .foreign_key(&mut cascade("fk_authn_keys_app", t, "app_id", "apps"))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(&format!(
            "INSERT INTO {t} (id, org_id, user_id, project_id, app_id, {KEY_COLUMNS}) \
             SELECT id, org_id, user_id, NULL, NULL, {KEY_COLUMNS} FROM machine_keys"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO {t} (id, org_id, user_id, project_id, app_id, {KEY_COLUMNS}) \
             SELECT id, org_id, NULL, project_id, app_id, {KEY_COLUMNS} FROM app_keys"
        ))
        .await?;
        // Listings per owner are ordered by (created_at, id); removing a project removes its
        // app keys by project.
        m.create_index(index(t, &["user_id", "created_at", "id"]))
            .await?;
        m.create_index(index(t, &["app_id", "created_at", "id"]))
            .await?;
        m.create_index(index(t, &["project_id"])).await?;
        m.create_index(index(t, &["org_id", "created_at", "id"]))
            .await?;
        super::rebuild_access_tokens(m, t, ["fk_access_tokens_user", "fk_access_tokens_key"])
            .await?;
        for old in ["machine_keys", "app_keys"] {
            m.drop_table(Table::drop().table(old).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
