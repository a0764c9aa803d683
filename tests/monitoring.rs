//! The runner's monitoring for real: `/healthz` and `/metrics` of a running
//! runner, and an alert POSTed to a local webhook when a critical task (the
//! backup) fails — with the database password nowhere in logs or results.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Kills the runner if the test fails midway.
struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain GET over TCP: (status line, body).
async fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The URL of `pool`'s database with a password added (the test server
/// trusts local connections, so it is accepted and ignored).
async fn url_with_password(pool: &PgPool, password: &str) -> String {
    let url = url_of(pool).await;
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_host, path) = rest.split_once('/').unwrap();
    let (user, host) = user_host.split_once('@').unwrap_or(("postgres", user_host));
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}/{path}")
}

fn start(dir: &Path, url: &str, config: &Path) -> Runner {
    let child = Command::new(env!("CARGO_BIN_EXE_refnet-jobs-runner"))
        .current_dir(dir)
        .arg("--config")
        .arg(config)
        .arg("--no-scheduler")
        .env("DATABASE_URL", url)
        .env_remove("DATABASE__HOST")
        .env_remove("DATABASE__DATABASE")
        .env_remove("REFNET_JOBS_LISTEN")
        .env("REFNET_ENV", "production")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("runner.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    Runner(child)
}

#[sqlx::test(migrations = false)]
async fn health_metrics_and_an_alert_for_a_failed_backup(pool: PgPool) {
    load_fixture(&pool).await;
    let password = "Pw-never-shown-4711";
    let url = url_with_password(&pool, password).await;
    let dir = temp_dir("monitoring");
    let (http, hook) = (free_port(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let hook_port = hook.local_addr().unwrap().port();
    // A backup directory under a regular file can never be created: the backup fails.
    std::fs::write(dir.join("not-a-dir"), "x").unwrap();
    let config = dir.join("refnet-jobs.toml");
    std::fs::write(
        &config,
        format!(
            "timezone = \"UTC\"\nenvironment = \"production\"\n\
             [workers]\nqueues = {{ default = 1, backup = 1 }}\n\
             [monitoring]\nlisten = \"127.0.0.1:{http}\"\nwebhook_url = \"http://127.0.0.1:{hook_port}/alerts\"\n\
             [paths]\nbackup_dir = \"not-a-dir/backups\"\n"
        ),
    )
    .unwrap();
    let _runner = start(&dir, &url, &config);

    wait_for(Duration::from_secs(60), "/healthz to answer", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", http))
            .await
            .is_ok()
    })
    .await;
    let (status, body) = get(http, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("database reachable"));
    assert_eq!(get(http, "/nope").await.0, "HTTP/1.1 404 Not Found");

    // A health check, so /metrics has paper counts, then the backup that fails.
    let out = cli(&url, &["run", "health-check", "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Its first failed attempt alerts at once (a critical task), retries or not.
    let out = cli(&url, &["run", "refnet.scheduled.backup_database"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut stream, _) = tokio::time::timeout(Duration::from_secs(30), hook.accept())
        .await
        .expect("the webhook is called")
        .unwrap();
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&request).contains("\"time\"") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "request ended early: {}",
            String::from_utf8_lossy(&request)
        );
        request.extend_from_slice(&chunk[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let request = String::from_utf8_lossy(&request).into_owned();
    assert!(request.starts_with("POST /alerts"), "{request}");
    let body: serde_json::Value =
        serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["task"], "refnet.scheduled.backup_database");
    assert!(body["job_id"].is_string() && body["time"].is_string());
    assert!(!body["error"].as_str().unwrap().is_empty());

    // A job waiting on a queue nobody works, for the queue gauges.
    let out = cli(&url, &["run", "health-check", "--queue", "idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, metrics) = get(http, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    for expected in [
        "refnet_jobs_task_attempts_total{task=\"refnet.scheduled.system_health_check\",outcome=\"completed\"} 1",
        "refnet_jobs_task_duration_seconds_count{task=\"refnet.scheduled.system_health_check\"} 1",
        "refnet_jobs_task_attempts_total{task=\"refnet.scheduled.backup_database\",outcome=",
        "refnet_jobs_jobs{queue=\"idle\",state=\"available\"} 1",
        "refnet_jobs_oldest_waiting_seconds{queue=\"idle\"}",
        "refnet_jobs_queue_paused{queue=\"idle\"} 0",
        "refnet_papers{column=\"crawl_status\",status=\"pending\"}",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing from:\n{metrics}"
        );
    }

    // The password is nowhere: not in the log, not in any job's result or error.
    let log = std::fs::read_to_string(dir.join("runner.log")).unwrap();
    assert!(!log.contains(password), "password in the log");
    assert!(
        log.contains("CRITICAL"),
        "a CRITICAL line for the failed backup"
    );
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs
         WHERE coalesce(result::text, '') LIKE '%' || $1 || '%' OR errors::text LIKE '%' || $1 || '%'",
    )
    .bind(password)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    assert!(!metrics.contains(password));
    std::fs::remove_dir_all(&dir).ok();
}
