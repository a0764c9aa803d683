//! A `refnet-jobs-runner` process for end-to-end tests: started with a config
//! of the test's, logged to a file, SIGKILLed on drop so no runner outlives a
//! failed test. Shared by the lifecycle and cron tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

pub struct Runner {
    child: Option<Child>,
    pub pid: u32,
    pub name: String,
    log: PathBuf,
}

impl Runner {
    /// Starts `refnet-jobs-runner --config CONFIG` on `url`, its log (stderr)
    /// in `dir/NAME.log`.
    pub fn start(dir: &Path, name: &str, config: &Path, url: &str) -> Runner {
        Runner::start_with(dir, name, config, url, &[])
    }

    /// The same without the cron scheduler (workers only).
    pub fn workers_only(dir: &Path, name: &str, config: &Path, url: &str) -> Runner {
        Runner::start_with(dir, name, config, url, &["--no-scheduler"])
    }

    fn start_with(dir: &Path, name: &str, config: &Path, url: &str, args: &[&str]) -> Runner {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_refnet-jobs-runner"))
            .current_dir(dir)
            .arg("--config")
            .arg(config)
            .args(args)
            .env("DATABASE_URL", url)
            .env_remove("DATABASE__HOST")
            .env_remove("DATABASE__DATABASE")
            .env_remove("REFNET_ENV")
            .env_remove("REFNET_JOBS_LOG_JSON")
            .env_remove("REFNET_JOBS_CONFIG")
            .env("RUST_LOG", "info,sqlx=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Runner {
            pid: child.id(),
            child: Some(child),
            name: name.to_string(),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// SIGTERM, then its exit status within `limit` (panics, with the log, after that).
    pub async fn terminate(&mut self, limit: Duration) -> ExitStatus {
        super::support::terminate(self.pid);
        self.wait_exit(limit).await
    }

    /// Its exit status within `limit` of a SIGTERM sent already (panics,
    /// with the log, after that).
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("runner still running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                child.kill().ok();
                child.wait().ok();
                panic!(
                    "runner {} did not stop within {limit:?} of SIGTERM; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Every runner's log, for failure messages.
pub fn logs(runners: &[&Runner]) -> String {
    runners
        .iter()
        .map(|r| format!("--- {} (pid {}) ---\n{}", r.name, r.pid, r.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The worker id `runner` registered under, once its worker has started
/// (its tasks are in the catalogue by then).
pub async fn ready(pool: &PgPool, runner: &mut Runner) -> String {
    let start = Instant::now();
    loop {
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM refnet_jobs.workers WHERE pid = $1")
                .bind(runner.pid as i32)
                .fetch_optional(pool)
                .await
                .ok()
                .flatten();
        if let Some(id) = id {
            return id;
        }
        if let Some(status) = runner.exited() {
            panic!(
                "runner {} exited ({status}) before it started; log:\n{}",
                runner.name,
                runner.log()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "runner {} did not register within 60 s; log:\n{}",
            runner.name,
            runner.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
