//! Schema migrations. Portable column types only, so the same migration runs on SQLite,
//! PostgreSQL and MySQL; ids are strings (the API's ids are strings, and AddMachineUser
//! accepts any). Where MySQL needs its own declaration, [`Dialect`] gives it.
use sea_orm_migration::{prelude::*, schema::timestamp_with_time_zone};

mod m20261122_000001_init;
mod m20261123_000002_trust;
mod m20261123_000003_read_paths;
mod m20261201_000004_listings;
mod m20261203_000005_token_keys;
mod m20261203_000006_event_positions;

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
}
