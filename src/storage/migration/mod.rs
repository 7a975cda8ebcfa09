//! Schema migrations. Portable column types only, so the same migration runs on SQLite,
//! PostgreSQL and MySQL; ids are strings (the API's ids are strings, and AddMachineUser
//! accepts any). Where MySQL needs its own declaration, [`Dialect`] gives it.
use sea_orm_migration::{
    prelude::*,
    schema::{big_integer, integer, string_len, text, timestamp_with_time_zone},
};

mod m20261122_000001_init;
mod m20261123_000002_trust;
mod m20261123_000003_read_paths;
mod m20261201_000004_listings;
mod m20261203_000005_token_keys;
mod m20261203_000006_event_positions;
mod m20261203_000007_one_key_table;
mod m20261203_000008_key_lifecycle;
mod m20261204_000009_events_webhooks;
mod m20261204_000010_trusts;
mod m20261205_000011_dpop;
mod m20261206_000012_token_ids;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_init::Migration),
            Box::new(m20261123_000002_trust::Migration),
            Box::new(m20261123_000003_read_paths::Migration),
            Box::new(m20261201_000004_listings::Migration),
            Box::new(m20261203_000005_token_keys::Migration),
            Box::new(m20261203_000006_event_positions::Migration),
            Box::new(m20261203_000007_one_key_table::Migration),
            Box::new(m20261203_000008_key_lifecycle::Migration),
            Box::new(m20261204_000009_events_webhooks::Migration),
            Box::new(m20261204_000010_trusts::Migration),
            Box::new(m20261205_000011_dpop::Migration),
            Box::new(m20261206_000012_token_ids::Migration),
        ]
    }
}

/// How the migrations declare tables and times on the connected backend.
pub(crate) struct Dialect {
    /// On MySQL, the binary collation tables are created with.
    mysql_collation: Option<String>,
}

impl Dialect {
    /// MySQL compares text by its collation, which is case- and accent-insensitive by
    /// default: ids "Ab" and "ab" would collide and equality queries would ignore case, unlike
    /// PostgreSQL and SQLite. Tables therefore use a binary collation, preferring one that
    /// does not ignore trailing spaces (MySQL 8's `utf8mb4_0900_bin`, MariaDB's
    /// `utf8mb4_nopad_bin`) over the older `utf8mb4_bin`.
    pub(crate) async fn of(m: &SchemaManager<'_>) -> Result<Dialect, DbErr> {
        if m.get_database_backend() != sea_orm::DbBackend::MySql {
            return Ok(Dialect {
                mysql_collation: None,
            });
        }
        let row = m
            .get_connection()
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::MySql,
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS \
                 WHERE COLLATION_NAME IN ('utf8mb4_0900_bin', 'utf8mb4_nopad_bin', 'utf8mb4_bin') \
                 ORDER BY FIELD(COLLATION_NAME, 'utf8mb4_0900_bin', 'utf8mb4_nopad_bin', 'utf8mb4_bin') \
                 LIMIT 1",
            ))
            .await?;
        let collation = match row {
            Some(row) => row.try_get_by_index::<String>(0)?,
            None => "utf8mb4_bin".to_owned(),
        };
        Ok(Dialect {
            mysql_collation: Some(collation),
        })
    }

    /// `CREATE TABLE name`, on MySQL as InnoDB (foreign keys, transactions) in utf8mb4.
    pub(crate) fn table(&self, name: &'static str) -> TableCreateStatement {
        let mut t = Table::create();
        t.table(name);
        if let Some(collation) = &self.mysql_collation {
            t.engine("InnoDB")
                .character_set("utf8mb4")
                .collate(collation.as_str());
        }
        t
    }

    /// A point in time, not null. PostgreSQL keeps it as `timestamptz`, SQLite as RFC 3339
    /// text; MySQL's TIMESTAMP ends in 2038 and drops fractions, so there it is DATETIME(6)
    /// holding UTC (keys without an expiration expire in 9999).
    pub(crate) fn time(&self, name: &'static str) -> ColumnDef {
        if self.mysql_collation.is_some() {
            ColumnDef::new(name)
                .custom("DATETIME(6)")
                .not_null()
                .to_owned()
        } else {
            timestamp_with_time_zone(name)
        }
    }

    /// [`Dialect::time`] that may be NULL.
    pub(crate) fn time_null(&self, name: &'static str) -> ColumnDef {
        if self.mysql_collation.is_some() {
            ColumnDef::new(name).custom("DATETIME(6)").null().to_owned()
        } else {
            ColumnDef::new(name)
                .timestamp_with_time_zone()
                .null()
                .to_owned()
        }
    }
}

/// Ids are strings of at most this many characters.
pub(crate) const ID: u32 = 200;

/// An index named after its table and columns.
pub(crate) fn index(table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(format!("ix_{table}_{}", cols.join("_")))
        .table(table);
    for c in cols {
        i.col(*c);
    }
    i.to_owned()
}

/// `from.col` references `to.id`; deleting the referenced row deletes this one.
pub(crate) fn cascade(
    name: &str,
    from: &'static str,
    col: &'static str,
    to: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from, col)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// The columns every key table has after its owner's: type, public key, expiry, sequence and
/// creation time.
pub(crate) fn key_columns(t: &mut TableCreateStatement, d: &Dialect) {
    t.col(integer("key_type"))
        .col(text("public_key"))
        .col(d.time("expires_at"))
        .col(big_integer("sequence"))
        .col(d.time("created_at"));
}

/// `access_tokens` (or a table named so while it replaces it) as migrations 2 and 5 define
/// it, without its foreign keys.
pub(crate) fn access_tokens_table(d: &Dialect, name: &'static str) -> TableCreateStatement {
    d.table(name)
        .col(string_len("id", ID).primary_key())
        .col(string_len("token_hash", 64).unique_key())
        .col(string_len("user_id", ID))
        .col(string_len("org_id", ID))
        .col(string_len("key_id", ID))
        // JSON arrays of strings.
        .col(text("scopes"))
        .col(text("audience"))
        .col(text("projects"))
        .col(d.time("expires_at"))
        .col(d.time("created_at"))
        .to_owned()
}

/// Rebuilds `access_tokens` with its key column referencing `key_table` (SQLite cannot change
/// a constraint of an existing table, so every backend rebuilds): the records whose key is not
/// in `key_table` are not carried over — those are tokens that must not work. `fk_names` name
/// the user and key constraints; on MySQL they must differ from the old table's.
pub(crate) async fn rebuild_access_tokens(
    m: &SchemaManager<'_>,
    key_table: &'static str,
    fk_names: [&str; 2],
) -> Result<(), DbErr> {
    const COLUMNS: &str = "id, token_hash, user_id, org_id, key_id, scopes, audience, projects, expires_at, created_at";
    let d = Dialect::of(m).await?;
    let next = "access_tokens_next";
    m.create_table(
        access_tokens_table(&d, next)
            .foreign_key(&mut cascade(fk_names[0], next, "user_id", "users"))
            .foreign_key(&mut cascade(fk_names[1], next, "key_id", key_table))
            .to_owned(),
    )
    .await?;
    let keep = format!("WHERE EXISTS (SELECT 1 FROM {key_table} k WHERE k.id = t.key_id)");
    swap_in_access_tokens(
        m,
        next,
        COLUMNS,
        &keep,
        &["user_id", "key_id", "expires_at"],
    )
    .await
}

/// Replaces `access_tokens` with the table `next`, already created: copies `columns` of the
/// records `keep` (a `WHERE` clause on `t`, or empty) selects, drops the old table, renames
/// `next` and indexes `indexed`, one index per column.
pub(crate) async fn swap_in_access_tokens(
    m: &SchemaManager<'_>,
    next: &'static str,
    columns: &str,
    keep: &str,
    indexed: &[&'static str],
) -> Result<(), DbErr> {
    m.get_connection()
        .execute_unprepared(&format!(
            "INSERT INTO {next} ({columns}) SELECT {columns} FROM access_tokens t {keep}"
        ))
        .await?;
    m.drop_table(Table::drop().table("access_tokens").to_owned())
        .await?;
    m.rename_table(Table::rename().table(next, "access_tokens").to_owned())
        .await?;
    for col in indexed {
        m.create_index(index("access_tokens", &[col])).await?;
    }
    Ok(())
}
