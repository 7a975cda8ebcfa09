//! The first schema: orgs, users, machine keys, members, projects, apps, app keys, access
//! tokens, token signing keys, the audit event log, id nodes and the instance row.
use sea_orm_migration::{prelude::*, schema::*};

use super::{Dialect, ID};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(
    from: &'static str,
    col: &'static str,
    to: &'static str,
    to_col: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from}_{col}"))
        .from(from, col)
        .to(to, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(format!("ix_{table}_{}", cols.join("_")))
        .table(table);
    for c in cols {
        i.col(*c);
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

/// A key table of this schema: its id, the owner's and org's columns, the key's columns.
fn key_table(
    d: &Dialect,
    name: &'static str,
    owner: &[&'static str],
    mut owner_fk: ForeignKeyCreateStatement,
) -> TableCreateStatement {
    let mut t = d.table(name);
    t.col(string_len("id", ID).primary_key());
    for col in owner {
        t.col(string_len(*col, ID));
    }
    super::key_columns(&mut t, d);
    t.foreign_key(&mut owner_fk).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let d = Dialect::of(m).await?;
        m.create_table(
            d.table("orgs")
                .col(string_len("id", ID).primary_key())
                .col(string_len("name", 200).unique_key())
                .col(string_len("primary_domain", 255))
                .col(big_integer("sequence"))
                .col(d.time("created_at"))
                .col(d.time("changed_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            d.table("users")
                .col(string_len("id", ID).primary_key())
                .col(string_len("org_id", ID))
                .col(string_len("user_name", 200))
                .col(string_len("name", 200))
                .col(string_len("description", 500))
                .col(integer("access_token_type"))
                .col(big_integer("sequence"))
                .col(d.time("created_at"))
                .col(d.time("changed_at"))
                .foreign_key(&mut fk("users", "org_id", "orgs", "id"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("users", &["org_id", "user_name"], true))
            .await?;
        m.create_table(key_table(
            &d,
            "machine_keys",
            &["user_id", "org_id"],
            fk("machine_keys", "user_id", "users", "id"),
        ))
        .await?;
        m.create_index(index("machine_keys", &["user_id", "created_at"], false))
            .await?;
        m.create_table(
            d.table("org_members")
                .col(string_len("org_id", ID))
                .col(string_len("user_id", ID))
                .col(text("roles"))
                .col(d.time("created_at"))
                .col(d.time("changed_at"))
                .primary_key(Index::create().col("org_id").col("user_id"))
                .foreign_key(&mut fk("org_members", "org_id", "orgs", "id"))
                .foreign_key(&mut fk("org_members", "user_id", "users", "id"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            d.table("instance_members")
                .col(string_len("user_id", ID).primary_key())
                .col(text("roles"))
                .col(d.time("created_at"))
                .foreign_key(&mut fk("instance_members", "user_id", "users", "id"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            d.table("projects")
                .col(string_len("id", ID).primary_key())
                .col(string_len("org_id", ID))
                .col(string_len("name", 200))
                .col(boolean("project_role_assertion"))
                .col(boolean("project_role_check"))
                .col(boolean("has_project_check"))
                .col(integer("private_labeling_setting"))
                .col(big_integer("sequence"))
                .col(d.time("created_at"))
                .col(d.time("changed_at"))
                .foreign_key(&mut fk("projects", "org_id", "orgs", "id"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("projects", &["org_id"], false))
            .await?;
        m.create_table(
            d.table("apps")
                .col(string_len("id", ID).primary_key())
                .col(string_len("project_id", ID))
                .col(string_len("org_id", ID))
                .col(string_len("name", 200))
                .col(string_len("client_id", ID).unique_key())
                .col(integer("auth_method"))
                .col(text_null("secret_hash"))
                .col(big_integer("sequence"))
                .col(d.time("created_at"))
                .col(d.time("changed_at"))
                .foreign_key(&mut fk("apps", "project_id", "projects", "id"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("apps", &["project_id"], false))
            .await?;
        m.create_table(key_table(
            &d,
            "app_keys",
            &["app_id", "project_id", "org_id"],
            fk("app_keys", "app_id", "apps", "id"),
        ))
        .await?;
        m.create_index(index("app_keys", &["app_id", "created_at"], false))
            .await?;
        m.create_table(
            d.table("access_tokens")
                .col(string_len("id", ID).primary_key())
                .col(string_len("token_hash", 64).unique_key())
                .col(string_len("user_id", ID))
                .col(string_len("org_id", ID))
                .col(text("scopes"))
                .col(text("audience"))
                .col(d.time("expires_at"))
                .col(d.time("created_at"))
                .foreign_key(&mut fk("access_tokens", "user_id", "users", "id"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("access_tokens", &["user_id"], false))
            .await?;
        m.create_index(index("access_tokens", &["expires_at"], false))
            .await?;
        m.create_table(
            d.table("signing_keys")
                .col(string_len("id", ID).primary_key())
                .col(string_len("algorithm", 16))
                .col(text("public_key"))
                .col(blob("private_key_enc"))
                .col(d.time("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            d.table("events")
                .col(big_pk_auto("position"))
                .col(d.time("created_at"))
                .col(string_len("org_id", ID))
                .col(string_len("aggregate_type", 32))
                .col(string_len("aggregate_id", ID))
                .col(big_integer("aggregate_sequence"))
                .col(string_len("event_type", 64))
                .col(string_len("actor", ID))
                .col(text("payload"))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "events",
            &["aggregate_id", "aggregate_sequence"],
            false,
        ))
        .await?;
        m.create_table(
            d.table("id_nodes")
                .col(big_pk_auto("id"))
                .col(d.time("started_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            d.table("instance")
                .col(integer("id").primary_key())
                .col(string_len("default_org_id", ID))
                .col(string_len("admin_user_id", ID))
                .col(d.time("created_at"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "instance",
            "id_nodes",
            "events",
            "signing_keys",
            "access_tokens",
            "app_keys",
            "apps",
            "projects",
            "instance_members",
            "org_members",
            "machine_keys",
            "users",
            "orgs",
        ] {
            m.drop_table(Table::drop().table(t).to_owned()).await?;
        }
        Ok(())
    }
}
