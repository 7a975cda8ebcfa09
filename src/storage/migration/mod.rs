//! Schema migrations. Portable column types only, so the same migration runs on SQLite and
//! PostgreSQL; ids are strings (the API's ids are strings, and AddMachineUser accepts any).
use sea_orm_migration::prelude::*;

mod m20261122_000001_init;
mod m20261123_000002_trust;
mod m20261123_000003_read_paths;
mod m20261201_000004_listings;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_init::Migration),
            Box::new(m20261123_000002_trust::Migration),
            Box::new(m20261123_000003_read_paths::Migration),
            Box::new(m20261201_000004_listings::Migration),
        ]
    }
}
