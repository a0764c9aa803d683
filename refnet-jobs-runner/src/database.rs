//! Which database the runner uses: a configured one, or a throwaway local
//! PostgreSQL loaded with RefNet's schema and a generated sample.

use std::path::{Path, PathBuf};

use refnet_jobs::connect::{LOCAL_STATE_DIR, LOCAL_URL_FILE};
use sqlx::PgPool;

use crate::embedded_pg::{EmbeddedPgError, EmbeddedPostgres};

/// RefNet's schema and a deterministic sample (about 12,000 papers).
const FIXTURE_SCHEMA: &str = include_str!("../../examples/refnet/schema.sql");
const FIXTURE_SAMPLE: &str = include_str!("../../examples/refnet/sample_data.sql");

/// The database in use and, for a throwaway one, the server to stop at exit.
pub(crate) struct Database {
    pub(crate) url: String,
    pub(crate) embedded: Option<Embedded>,
}

/// A throwaway server and the URL file that tells the CLI about it.
pub(crate) struct Embedded {
    server: EmbeddedPostgres,
    url_file: PathBuf,
}

impl Embedded {
    /// Stops the server and removes the URL file.
    pub(crate) fn stop(mut self) {
        let _ = std::fs::remove_file(&self.url_file);
        if let Err(error) = self.server.stop() {
            tracing::warn!(%error, "could not stop the throwaway PostgreSQL");
        }
    }
}

/// Starts (or reuses) the throwaway PostgreSQL under `work_dir/.refnet-jobs`
/// and writes its URL where the CLI looks for it.
pub(crate) fn start_embedded(work_dir: &Path) -> Result<Database, EmbeddedPgError> {
    let state_dir = work_dir.join(LOCAL_STATE_DIR);
    let server = EmbeddedPostgres::start(&state_dir.join("postgres"), "refnet")?;
    let url = server.url().to_string();
    tracing::info!(port = server.port(), data = %server.dir().display(), "throwaway PostgreSQL running");
    let url_file = state_dir.join(LOCAL_URL_FILE);
    std::fs::write(&url_file, format!("{url}\n")).map_err(|e| EmbeddedPgError::Io {
        context: format!("writing {}", url_file.display()),
        source: e,
    })?;
    Ok(Database {
        url,
        embedded: Some(Embedded { server, url_file }),
    })
}

/// Loads RefNet's schema and sample data unless `papers` already exists.
/// Returns true when it loaded them.
pub(crate) async fn load_fixture_if_missing(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let present: bool = sqlx::query_scalar("SELECT to_regclass('public.papers') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if present {
        return Ok(false);
    }
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(FIXTURE_SCHEMA))
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(FIXTURE_SAMPLE))
        .execute(&mut *conn)
        .await?;
    Ok(true)
}
