//! Finding the database: `DATABASE_URL`, RefNet's `DATABASE__*` variables, or
//! the URL file a local runner leaves for the CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::{Error, Result};

/// Directory (under the working directory) where a runner started with no
/// database keeps its throwaway PostgreSQL and the URL file.
pub const LOCAL_STATE_DIR: &str = ".refnet-jobs";
/// File in [`LOCAL_STATE_DIR`] holding the throwaway database's URL.
pub const LOCAL_URL_FILE: &str = "database-url";

/// The database URL from the environment: `DATABASE_URL`, else RefNet's
/// `DATABASE__HOST`, `__PORT`, `__DATABASE`, `__USERNAME`, `__PASSWORD`
/// (host or database must be set; port defaults to 5432).
pub fn database_url_from_env() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(url) = var("DATABASE_URL") {
        return Some(url);
    }
    let host = var("DATABASE__HOST");
    let database = var("DATABASE__DATABASE");
    if host.is_none() && database.is_none() {
        return None;
    }
    let host = host.unwrap_or_else(|| "localhost".to_string());
    let port = var("DATABASE__PORT").unwrap_or_else(|| "5432".to_string());
    let database = database.unwrap_or_else(|| "refnet".to_string());
    let user = var("DATABASE__USERNAME").unwrap_or_else(|| "postgres".to_string());
    let credentials = match var("DATABASE__PASSWORD") {
        Some(password) => format!("{}:{}", encode(&user), encode(&password)),
        None => encode(&user),
    };
    Some(format!(
        "postgres://{credentials}@{host}:{port}/{}",
        encode(&database)
    ))
}

/// Looks for a local runner's URL file in `start` and its parents; returns the
/// file and the URL in it.
pub fn discover_local_url(start: &Path) -> Option<(PathBuf, String)> {
    start.ancestors().find_map(|dir| {
        let file = dir.join(LOCAL_STATE_DIR).join(LOCAL_URL_FILE);
        let url = std::fs::read_to_string(&file).ok()?;
        let url = url.trim().to_string();
        (!url.is_empty()).then_some((file, url))
    })
}

/// Opens a pool of at most `max_connections` to `url`, after one direct
/// connection attempt (at most `timeout`), so a refused or misaddressed
/// server is reported at once with its real cause instead of a pool timeout.
///
/// Fails with [`Error::Connect`], naming host, port and database but never the password.
pub async fn pool(url: &str, max_connections: u32, timeout: Duration) -> Result<PgPool> {
    let failed = |reason: String| Error::Connect {
        target: describe_url(url),
        reason,
    };
    let probe = tokio::time::timeout(timeout, PgConnection::connect(url))
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    probe.close().await.ok();
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(timeout)
        .connect(url)
        .await
        .map_err(|e| failed(e.to_string()))
}

/// Where a URL points, without its password, for error messages.
pub fn describe_url(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let location = rest.rsplit_once('@').map(|(_, l)| l).unwrap_or(rest);
    location.split('?').next().unwrap_or(location).to_string()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_url_never_shows_the_password() {
        assert_eq!(
            describe_url("postgres://refnet:s3cr@t@db.example:5433/refnet?sslmode=require"),
            "db.example:5433/refnet"
        );
        assert_eq!(describe_url("postgres://localhost/x"), "localhost/x");
    }

    #[test]
    fn credentials_are_percent_encoded() {
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
