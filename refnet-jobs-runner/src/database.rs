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
    owner_file: PathBuf,
}

impl Embedded {
    /// Stops the server and removes the URL and owner files.
    pub(crate) fn stop(mut self) {
        let _ = std::fs::remove_file(&self.url_file);
        let _ = std::fs::remove_file(&self.owner_file);
        if let Err(error) = self.server.stop() {
            tracing::warn!(%error, "could not stop the throwaway PostgreSQL");
        }
    }
}

/// Starts (or reuses) the throwaway PostgreSQL under `work_dir/.refnet-jobs`
/// and writes its URL where the CLI looks for it.
pub(crate) fn start_embedded(work_dir: &Path) -> Result<Database, String> {
    let state_dir = work_dir.join(LOCAL_STATE_DIR);
    claim_state_dir(&state_dir)?;
    start_server(&state_dir).map_err(|e| {
        let _ = std::fs::remove_file(state_dir.join(OWNER_FILE));
        format!("cannot start the throwaway PostgreSQL: {e}")
    })
}

/// File holding the pid of the runner that owns the throwaway server.
const OWNER_FILE: &str = "runner.pid";

/// Makes this process the owner of `state_dir`. Starting the server would
/// restart one that another live runner is using, so a second runner is
/// refused, with the way to share the database instead. A pid file left by a
/// runner that died is taken over (and its server restarted).
fn claim_state_dir(state_dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
    let owner_file = state_dir.join(OWNER_FILE);
    if let Ok(text) = std::fs::read_to_string(&owner_file)
        && let Ok(pid) = text.trim().parse::<u32>()
        && pid != std::process::id()
        && is_runner(pid)
    {
        return Err(format!(
            "another refnet-jobs-runner (pid {pid}) already runs the throwaway PostgreSQL in {}; stop it first, or share its database: DATABASE_URL=$(cat {}) refnet-jobs-runner",
            state_dir.display(),
            state_dir.join(LOCAL_URL_FILE).display()
        ));
    }
    std::fs::write(&owner_file, format!("{}\n", std::process::id()))
        .map_err(|e| format!("cannot write {}: {e}", owner_file.display()))
}

/// True when `pid` is a live refnet-jobs-runner process.
fn is_runner(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains("refnet-jobs-runner"))
        .unwrap_or(false)
}

fn start_server(state_dir: &Path) -> Result<Database, EmbeddedPgError> {
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
        embedded: Some(Embedded {
            server,
            url_file,
            owner_file: state_dir.join(OWNER_FILE),
        }),
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
