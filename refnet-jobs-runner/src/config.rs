//! The runner's configuration file (`refnet-jobs.toml`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use refnet_jobs::{MisfirePolicy, ScheduleSpec};
use serde::Deserialize;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Environments accepted without a schedule naming them.
const KNOWN_ENVIRONMENTS: [&str; 4] = ["development", "test", "staging", "production"];

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Default IANA zone of schedules.
    #[serde(default = "default_timezone")]
    pub(crate) timezone: String,
    /// `development`, `staging`, `production`...; `REFNET_ENV` overrides it.
    #[serde(default = "default_environment")]
    pub(crate) environment: String,
    #[serde(default)]
    pub(crate) workers: Workers,
    #[serde(default)]
    pub(crate) paths: Paths,
    #[serde(default)]
    pub(crate) backup: Backup,
    #[serde(default)]
    pub(crate) monitoring: Monitoring,
    #[serde(default)]
    pub(crate) schedules: Vec<ScheduleEntry>,
}

/// Queues this runner works, with their concurrency, and how its workers
/// hold, renew and give up jobs. Durations are in seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Workers {
    pub(crate) queues: BTreeMap<String, usize>,
    pub(crate) shutdown_grace_secs: u64,
    /// A running job's lease; after it expires without a heartbeat, any
    /// runner rescues the job.
    pub(crate) lease_secs: f64,
    pub(crate) heartbeat_secs: f64,
    pub(crate) rescue_secs: f64,
    /// How long a revoked running job may take to stop on its own.
    pub(crate) cancel_grace_secs: f64,
    /// LISTEN for new jobs and revokes; false polls only (PgBouncer in transaction mode).
    pub(crate) listen: bool,
    /// Pool size; default: the total concurrency plus 4.
    pub(crate) max_connections: Option<u32>,
    /// RefNet's tasks' time limits (Celery's soft and hard limits).
    pub(crate) soft_limit_secs: Option<f64>,
    pub(crate) hard_limit_secs: Option<f64>,
    /// Also register the diagnostic tasks (`refnet.diag.*`).
    pub(crate) diagnostic_tasks: bool,
}

impl Default for Workers {
    fn default() -> Self {
        let library = refnet_jobs::WorkerConfig::default();
        let refnet = crate::tasks::TIME_LIMITS;
        Workers {
            queues: [("default", 4), ("maintenance", 1), ("backup", 1)]
                .into_iter()
                .map(|(q, c)| (q.to_string(), c))
                .collect(),
            shutdown_grace_secs: default_shutdown_grace(),
            lease_secs: library.lease.as_secs_f64(),
            heartbeat_secs: library.heartbeat_interval.as_secs_f64(),
            rescue_secs: library.rescue_interval.as_secs_f64(),
            cancel_grace_secs: library.cancel_grace.as_secs_f64(),
            listen: true,
            max_connections: None,
            soft_limit_secs: refnet.soft().map(|d| d.as_secs_f64()),
            hard_limit_secs: refnet.hard().map(|d| d.as_secs_f64()),
            diagnostic_tasks: false,
        }
    }
}

impl Workers {
    /// The library's worker settings from these.
    pub(crate) fn worker_config(&self) -> Result<refnet_jobs::WorkerConfig, String> {
        let secs = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("[workers] {name} must be a positive number of seconds"))
        };
        Ok(refnet_jobs::WorkerConfig {
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            lease: secs("lease_secs", self.lease_secs)?,
            heartbeat_interval: secs("heartbeat_secs", self.heartbeat_secs)?,
            rescue_interval: secs("rescue_secs", self.rescue_secs)?,
            cancel_grace: secs("cancel_grace_secs", self.cancel_grace_secs)?,
            listen: self.listen,
            // RefNet's tasks are long: claim one job at a time per free slot.
            batch_size: 1,
            ..refnet_jobs::WorkerConfig::default()
        })
    }

    /// The time limits of RefNet's tasks.
    pub(crate) fn time_limits(&self) -> Result<refnet_jobs::TimeLimits, String> {
        refnet_jobs::TimeLimits::from_secs(self.soft_limit_secs, self.hard_limit_secs)
            .map_err(|e| format!("[workers] soft_limit_secs / hard_limit_secs: {e}"))
    }
}

/// Where RefNet's tasks read and write files. Relative paths are taken from
/// the config file's directory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Paths {
    /// Where the stats report is written.
    pub(crate) reports_dir: PathBuf,
    /// Directories whose old `*.log*` files the log cleanup deletes.
    pub(crate) log_dirs: Vec<PathBuf>,
    /// Also clean the subdirectories of `log_dirs` (never through a symlink).
    pub(crate) log_recursive: bool,
    /// Where backups are written.
    pub(crate) backup_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            reports_dir: default_reports_dir(),
            log_dirs: vec![PathBuf::from("logs")],
            log_recursive: false,
            backup_dir: PathBuf::from("data/backups"),
        }
    }
}

/// How many backups are kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Backup {
    /// At most this many backups are kept (the newest).
    pub(crate) keep: usize,
    /// Backups older than this are deleted, whatever their number.
    pub(crate) max_age_days: u32,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            keep: 7,
            max_age_days: 30,
        }
    }
}

/// Alerts, health and metrics.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Monitoring {
    /// Address of `/healthz` and `/metrics` (empty, the default: no HTTP
    /// endpoint); the `REFNET_JOBS_LISTEN` variable overrides it.
    pub(crate) listen: String,
    /// Alerts are POSTed here as JSON; none set: a CRITICAL log line instead.
    pub(crate) webhook_url: Option<String>,
    /// Tasks whose every failed attempt raises an alert (any task's last attempt does).
    pub(crate) critical_tasks: Vec<String>,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            listen: String::new(),
            webhook_url: None,
            critical_tasks: vec![
                "refnet.scheduled.database_maintenance".into(),
                "refnet.scheduled.backup_database".into(),
            ],
        }
    }
}

/// One `[[schedules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleEntry {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) task: String,
    #[serde(default)]
    pub(crate) args: Option<toml::Table>,
    pub(crate) timezone: Option<String>,
    pub(crate) queue: Option<String>,
    #[serde(default)]
    pub(crate) priority: i16,
    pub(crate) max_attempts: Option<i32>,
    #[serde(default = "enabled")]
    pub(crate) enabled: bool,
    #[serde(default)]
    pub(crate) misfire: MisfirePolicy,
    #[serde(default = "default_misfire_cap")]
    pub(crate) misfire_cap: i32,
    /// Run only in these environments (empty: everywhere).
    #[serde(default)]
    pub(crate) environments: Vec<String>,
}

fn default_timezone() -> String {
    "Asia/Tokyo".into()
}
fn default_environment() -> String {
    "development".into()
}
fn default_shutdown_grace() -> u64 {
    30
}
fn default_reports_dir() -> PathBuf {
    PathBuf::from("data/reports")
}
fn enabled() -> bool {
    true
}
fn default_misfire_cap() -> i32 {
    10
}

impl Config {
    /// Reads and checks a config file; relative paths in it are taken from its directory.
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Ok(listen) = std::env::var("REFNET_JOBS_LISTEN") {
            config.monitoring.listen = listen.trim().to_string();
        }
        if let Ok(env) = std::env::var("REFNET_ENV")
            && !env.trim().is_empty()
        {
            config.environment = env.trim().to_string();
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        absolute(&mut config.paths.reports_dir);
        absolute(&mut config.paths.backup_dir);
        config.paths.log_dirs.iter_mut().for_each(absolute);
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if self.workers.queues.is_empty() {
            return Err(invalid("[workers] queues is empty".into()));
        }
        if let Some((queue, _)) = self.workers.queues.iter().find(|(_, c)| **c == 0) {
            return Err(invalid(format!("queue {queue:?} has concurrency 0")));
        }
        let workers = self.workers.worker_config().map_err(invalid)?;
        if workers.lease <= workers.heartbeat_interval {
            return Err(invalid(
                "[workers] lease_secs must be longer than heartbeat_secs".into(),
            ));
        }
        self.workers.time_limits().map_err(invalid)?;
        if !self.monitoring.listen.is_empty()
            && self
                .monitoring
                .listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(invalid(format!(
                "[monitoring] listen {:?} is not an address such as 127.0.0.1:9187",
                self.monitoring.listen
            )));
        }
        if let Some(url) = &self.monitoring.webhook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "[monitoring] webhook_url {url:?} must be an http:// or https:// URL"
            )));
        }
        if self.backup.keep == 0 {
            return Err(invalid("[backup] keep must be at least 1".into()));
        }
        if self.workers.max_connections.is_some_and(|n| n < 3) {
            return Err(invalid(
                "[workers] max_connections must be at least 3 (a listener, the heartbeat, claims)"
                    .into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for spec in self.schedule_specs() {
            spec.validate().map_err(|e| invalid(e.to_string()))?;
            if !names.insert(spec.name.clone()) {
                return Err(invalid(format!(
                    "schedule {:?} is defined twice",
                    spec.name
                )));
            }
        }
        // A typo such as "prod" would silently gate out production schedules.
        let mut known: Vec<&str> = KNOWN_ENVIRONMENTS.to_vec();
        known.extend(
            self.schedules
                .iter()
                .flat_map(|s| s.environments.iter().map(String::as_str)),
        );
        if !known.contains(&self.environment.as_str()) {
            known.sort_unstable();
            known.dedup();
            return Err(invalid(format!(
                "unknown environment {:?} (from `environment` or REFNET_ENV); expected one of: {}",
                self.environment,
                known.join(", ")
            )));
        }
        Ok(())
    }

    /// The schedules as the library stores them. A schedule limited to other
    /// environments is stored disabled, so it shows up as gated out.
    pub(crate) fn schedule_specs(&self) -> Vec<ScheduleSpec> {
        self.schedules
            .iter()
            .map(|entry| {
                let mut spec = ScheduleSpec::new(&entry.name, &entry.cron, &entry.task);
                spec.timezone = entry
                    .timezone
                    .clone()
                    .unwrap_or_else(|| self.timezone.clone());
                spec.args = entry
                    .args
                    .as_ref()
                    .map(|t| serde_json::to_value(t).unwrap_or_default())
                    .unwrap_or_else(|| serde_json::json!({}));
                if let Some(queue) = &entry.queue {
                    spec.queue = queue.clone();
                }
                spec.priority = entry.priority;
                if let Some(max) = entry.max_attempts {
                    spec.max_attempts = max;
                }
                spec.enabled = entry.enabled && self.allows(entry);
                spec.disabled_reason = if !self.allows(entry) {
                    Some(format!(
                        "only in {} (this runner: {})",
                        entry.environments.join(", "),
                        self.environment
                    ))
                } else if !entry.enabled {
                    Some("enabled = false in the config".into())
                } else {
                    None
                };
                spec.misfire = entry.misfire;
                spec.misfire_cap = entry.misfire_cap;
                spec
            })
            .collect()
    }

    /// True when the entry may run in this runner's environment.
    pub(crate) fn allows(&self, entry: &ScheduleEntry) -> bool {
        entry.environments.is_empty() || entry.environments.iter().any(|e| e == &self.environment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("refnet-jobs.toml");
        std::fs::write(&path, text).expect("write config");
        (dir, path)
    }

    mod tempdir {
        pub(crate) struct Dir(pub(crate) std::path::PathBuf);
        impl Dir {
            pub(crate) fn new() -> Dir {
                let path = std::env::temp_dir().join(format!(
                    "refnet-config-{}-{}",
                    std::process::id(),
                    rand_suffix()
                ));
                std::fs::create_dir_all(&path).expect("temp dir");
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        fn rand_suffix() -> u128 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        }
    }

    #[test]
    fn the_shipped_config_has_refnets_eight_schedules_and_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../refnet-jobs.toml");
        let config = Config::load(&path).expect("shipped config loads");
        assert_eq!(config.schedules.len(), 8);
        assert_eq!(config.timezone, "Asia/Tokyo");
        let backup = config
            .schedules
            .iter()
            .find(|s| s.name == "daily-backup")
            .expect("backup schedule");
        assert_eq!(backup.environments, vec!["production".to_string()]);
    }

    #[test]
    fn a_malformed_cron_stops_start_up_naming_the_schedule() {
        let (_dir, path) =
            write("[[schedules]]\nname = \"nightly\"\ncron = \"0 25 * * *\"\ntask = \"t\"\n");
        let err = Config::load(&path)
            .expect_err("bad cron refused")
            .to_string();
        assert!(err.contains("nightly"), "{err}");
        assert!(err.contains("0 25 * * *"), "{err}");
    }

    #[test]
    fn an_unknown_time_zone_stops_start_up_naming_the_schedule() {
        let (_dir, path) = write(
            "[[schedules]]\nname = \"tokio\"\ncron = \"0 2 * * *\"\ntask = \"t\"\ntimezone = \"Asia/Tokio\"\n",
        );
        let err = Config::load(&path)
            .expect_err("bad zone refused")
            .to_string();
        assert!(err.contains("tokio") && err.contains("Asia/Tokio"), "{err}");
    }

    #[test]
    fn a_misspelled_environment_is_refused() {
        let (_dir, path) = write("environment = \"prod\"\n");
        let err = Config::load(&path).expect_err("typo refused").to_string();
        assert!(
            err.contains("\"prod\"") && err.contains("production"),
            "{err}"
        );
    }

    #[test]
    fn a_schedule_defined_twice_is_refused() {
        let entry = "[[schedules]]\nname = \"a\"\ncron = \"0 2 * * *\"\ntask = \"t\"\n";
        let (_dir, path) = write(&format!("{entry}{entry}"));
        let err = Config::load(&path)
            .expect_err("duplicate refused")
            .to_string();
        assert!(err.contains("\"a\" is defined twice"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let (_dir, path) = write("timezon = \"UTC\"\n");
        let err = Config::load(&path).expect_err("typo refused").to_string();
        assert!(err.contains("timezon"), "{err}");
    }
}
