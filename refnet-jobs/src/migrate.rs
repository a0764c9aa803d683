//! The embedded migrations, applied into schema `refnet_jobs` with their own
//! bookkeeping table, so they never meet an application's own migrations.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::Result;

/// The table that records which of our migrations ran.
pub const MIGRATIONS_TABLE: &str = "refnet_jobs._migrations";

fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.create_schema("refnet_jobs");
    migrator
}

/// Creates or upgrades the `refnet_jobs` schema. Safe to call from many
/// processes at once (the migrator takes an advisory lock) and at every start.
///
/// Fails with [`crate::Error::Migrate`] when a migration fails or the database
/// holds a migration this build does not know.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    migrator().run(pool).await?;
    Ok(())
}

/// Versions and descriptions of the embedded migrations.
pub fn embedded_migrations() -> Vec<(i64, String)> {
    migrator()
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}
