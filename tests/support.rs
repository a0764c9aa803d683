//! Shared by the end-to-end tests: database URLs, binaries, waiting.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// The URL of the per-test database behind `pool` (DATABASE_URL with its
/// database name replaced).
pub async fn url_of(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests");
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let scheme_end = without_query.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = without_query[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(without_query.len());
    format!("{}/{name}{query}", &without_query[..path_start])
}

/// A binary of this workspace, built by `cargo test --workspace`.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo test --workspace` (or bash scripts/test)",
        path.display()
    );
    path
}

/// Runs the CLI with `args` against `url`, without any other database variables.
pub fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(binary("refnet-jobs"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("REFNET_JOBS_TZ")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Polls `check` until it holds; panics after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Loads RefNet's schema and sample data.
pub async fn load_fixture(pool: &PgPool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "examples/refnet/schema.sql",
        "examples/refnet/sample_data.sql",
    ] {
        let sql = std::fs::read_to_string(root.join(file)).unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "refnet-e2e-{label}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Sends SIGTERM to a process.
pub fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
