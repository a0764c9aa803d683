//! `refnet.scheduled.cleanup_old_logs`: deletes old log files from the
//! configured log directories, never through a symlink (issue 7).
//!
//! **What is deleted**: regular files whose name contains `.log` (the glob
//! `*.log*`, case-sensitive: `app.log`, `app.log.1`, `worker.log.2026-01-01.gz`
//! and `x.logfile` match, `log.txt` and `catalog.txt` do not) and whose
//! modification time is more than `days_to_keep` days before the run started.
//! Every entry is examined with [`std::fs::symlink_metadata`], so a symlink is
//! never taken for what it points to: it is left alone (neither the link nor
//! its target is touched) and listed in `skipped_symlinks`. Directories,
//! sockets, FIFOs and devices are never deleted.
//!
//! **Where**: each configured directory (`TaskEnv::log_dirs`) and, only with
//! `log_recursive`, its real subdirectories; a symlinked subdirectory is never
//! entered. A configured directory that is itself a symlink (or not a
//! directory at all) is refused: listed in `refused_dirs` with the reason and
//! logged as a warning, while the other directories are still cleaned and the
//! job still succeeds (it is a configuration problem no retry can fix). A
//! configured directory that does not exist is listed in `missing_dirs` and is
//! not an error (a fresh install has no logs yet). Only the last component of
//! a configured path is checked: a symlink higher up (`/var/log` on some
//! systems) is the operator's choice.
//!
//! **Partial failures**: an I/O error (deleting a file, listing a directory,
//! reading an entry's metadata) does not stop the sweep: the rest is still
//! cleaned, then the job fails with a retryable error that names the failing
//! paths (the first few) and says how many files and bytes were freed anyway.
//! Retrying is safe, since a second sweep only finds what is left. A file that
//! vanished before it could be deleted (another sweep, a log rotator) is not
//! an error and is not counted. When the job is asked to stop, the sweep ends
//! before the next entry and the job fails (retryable) with what it had freed.
//!
//! **Limits**: the checks guard against symlinks placed in the log
//! directories beforehand, not against someone swapping a directory for a
//! symlink while the sweep runs (std offers no `openat`): the log directories
//! are expected to be writable only by RefNet. Deleting a path that became a
//! symlink in the meantime unlinks the link itself, never its target.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use refnet_jobs::{CancellationToken, JobContext, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use super::{TaskEnv, options};

/// Days of logs kept when the arguments do not say.
const DEFAULT_DAYS_TO_KEEP: u32 = 30;
const SECONDS_PER_DAY: u64 = 86_400;
/// How many failing paths a failure message names before "and N more".
const ERRORS_IN_MESSAGE: usize = 5;

/// The job's arguments: `{ "days_to_keep": 30 }`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CleanupArgs {
    /// Log files modified within this many days are kept; at least 1.
    #[serde(default = "default_days_to_keep")]
    pub(crate) days_to_keep: u32,
}

fn default_days_to_keep() -> u32 {
    DEFAULT_DAYS_TO_KEEP
}

impl Default for CleanupArgs {
    fn default() -> Self {
        CleanupArgs {
            days_to_keep: DEFAULT_DAYS_TO_KEEP,
        }
    }
}

/// A deleted file and the bytes it freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DeletedFile {
    path: String,
    bytes: u64,
}

/// A configured directory that was not cleaned, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RefusedDir {
    path: String,
    reason: &'static str,
}

/// What the job stores as its result. Paths are shown lossily (a file name
/// that is not UTF-8 must not make the result unserializable).
#[derive(Debug, Default, Serialize)]
pub(crate) struct CleanupOutcome {
    days_to_keep: u32,
    /// Every file deleted, in the order deleted.
    deleted: Vec<DeletedFile>,
    files_deleted: usize,
    bytes_freed: u64,
    /// Symlinks met in the directories swept, left alone.
    skipped_symlinks: Vec<String>,
    /// Configured directories refused (a symlink, not a directory).
    refused_dirs: Vec<RefusedDir>,
    /// Configured directories that do not exist.
    missing_dirs: Vec<String>,
}

/// See the module docs.
pub(crate) struct CleanupOldLogs(pub(crate) Arc<TaskEnv>);

impl Task for CleanupOldLogs {
    const NAME: &'static str = "refnet.scheduled.cleanup_old_logs";
    type Args = CleanupArgs;
    type Output = CleanupOutcome;

    fn options() -> TaskOptions {
        options(
            "cleanup-logs",
            "delete *.log* files older than days_to_keep from the log directories",
        )
    }

    fn validate(args: &CleanupArgs) -> Result<(), String> {
        if args.days_to_keep == 0 {
            return Err("days_to_keep must be at least 1 (0 would delete every log)".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: JobContext, args: CleanupArgs) -> Result<CleanupOutcome, TaskError> {
        let dirs = self.0.log_dirs.clone();
        let recursive = self.0.log_recursive;
        let cutoff = cutoff(SystemTime::now(), args.days_to_keep);
        let sweep = ctx
            .run_blocking(move |cancel| {
                sweep(&dirs, recursive, cutoff, cancel, &mut |path| {
                    fs::remove_file(path)
                })
            })
            .await?;
        sweep.finish(args.days_to_keep)
    }
}

/// The instant before which a file counts as old: `now` minus `days`.
fn cutoff(now: SystemTime, days: u32) -> SystemTime {
    now.checked_sub(Duration::from_secs(u64::from(days) * SECONDS_PER_DAY))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Whether `name` matches the glob `*.log*`, i.e. contains `.log`.
fn is_log_name(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().windows(4).any(|w| w == b".log")
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A sweep's findings, with what went wrong along the way.
#[derive(Debug, Default)]
struct Sweep {
    outcome: CleanupOutcome,
    /// One line per failure, naming the path.
    errors: Vec<String>,
    /// Stopped early because the job was asked to.
    cancelled: bool,
    /// Directories already swept, by (device, inode), so none is swept twice.
    seen: HashSet<(u64, u64)>,
}

/// Cleans `dirs` (see the module docs), deleting with `remove`, and stops
/// before the next entry once `cancel` fires.
fn sweep(
    dirs: &[PathBuf],
    recursive: bool,
    cutoff: SystemTime,
    cancel: &CancellationToken,
    remove: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> Sweep {
    let mut sweep = Sweep::default();
    for dir in dirs {
        if cancel.is_cancelled() {
            sweep.cancelled = true;
            break;
        }
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                sweep.outcome.missing_dirs.push(shown(dir));
            }
            Err(e) => sweep.errors.push(format!("{}: {e}", dir.display())),
            Ok(meta) if meta.file_type().is_symlink() => sweep.refuse(dir, "is a symlink"),
            Ok(meta) if !meta.is_dir() => sweep.refuse(dir, "is not a directory"),
            Ok(meta) => sweep.walk(dir, &meta, recursive, cutoff, cancel, remove),
        }
    }
    sweep
}

impl Sweep {
    fn refuse(&mut self, dir: &Path, reason: &'static str) {
        tracing::warn!(dir = %dir.display(), reason, "log directory refused");
        self.outcome.refused_dirs.push(RefusedDir {
            path: shown(dir),
            reason,
        });
    }

    /// Cleans `root` (a real directory) and, with `recursive`, the real
    /// directories below it, depth first.
    fn walk(
        &mut self,
        root: &Path,
        meta: &Metadata,
        recursive: bool,
        cutoff: SystemTime,
        cancel: &CancellationToken,
        remove: &mut dyn FnMut(&Path) -> io::Result<()>,
    ) {
        let mut stack = vec![(root.to_path_buf(), (meta.dev(), meta.ino()))];
        while let Some((dir, id)) = stack.pop() {
            if !self.seen.insert(id) {
                continue;
            }
            let mut subdirs = Vec::new();
            for path in self.entries(&dir) {
                if cancel.is_cancelled() {
                    self.cancelled = true;
                    return;
                }
                let meta = match fs::symlink_metadata(&path) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        self.errors.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                };
                let kind = meta.file_type();
                if kind.is_symlink() {
                    self.outcome.skipped_symlinks.push(shown(&path));
                } else if kind.is_dir() {
                    if recursive {
                        subdirs.push((path, (meta.dev(), meta.ino())));
                    }
                } else if kind.is_file() && path.file_name().is_some_and(is_log_name) {
                    self.consider(&path, &meta, cutoff, remove);
                }
            }
            // Reversed so the stack visits subdirectories in name order.
            stack.extend(subdirs.into_iter().rev());
        }
    }

    /// The paths in `dir`, sorted (so results are stable); a listing error is
    /// recorded and yields what could be read.
    fn entries(&mut self, dir: &Path) -> Vec<PathBuf> {
        let listing = match fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) => {
                self.errors
                    .push(format!("cannot list {}: {e}", dir.display()));
                return Vec::new();
            }
        };
        let mut paths = Vec::new();
        for entry in listing {
            match entry {
                Ok(entry) => paths.push(entry.path()),
                Err(e) => self
                    .errors
                    .push(format!("cannot list {}: {e}", dir.display())),
            }
        }
        paths.sort();
        paths
    }

    /// Deletes the regular log file `path` when it was modified before `cutoff`.
    fn consider(
        &mut self,
        path: &Path,
        meta: &Metadata,
        cutoff: SystemTime,
        remove: &mut dyn FnMut(&Path) -> io::Result<()>,
    ) {
        let modified = match meta.modified() {
            Ok(modified) => modified,
            Err(e) => {
                self.errors.push(format!("{}: {e}", path.display()));
                return;
            }
        };
        if modified >= cutoff {
            return;
        }
        match remove(path) {
            Ok(()) => self.outcome.deleted.push(DeletedFile {
                path: shown(path),
                bytes: meta.len(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => self
                .errors
                .push(format!("cannot delete {}: {e}", path.display())),
        }
    }

    /// Totals the outcome, logs one line, and fails when the sweep stopped
    /// early or anything went wrong.
    fn finish(self, days_to_keep: u32) -> Result<CleanupOutcome, TaskError> {
        let Sweep {
            mut outcome,
            errors,
            cancelled,
            ..
        } = self;
        outcome.days_to_keep = days_to_keep;
        outcome.files_deleted = outcome.deleted.len();
        outcome.bytes_freed = outcome.deleted.iter().map(|f| f.bytes).sum();
        tracing::info!(
            days_to_keep,
            files_deleted = outcome.files_deleted,
            bytes_freed = outcome.bytes_freed,
            skipped_symlinks = outcome.skipped_symlinks.len(),
            refused_dirs = outcome.refused_dirs.len(),
            missing_dirs = outcome.missing_dirs.len(),
            errors = errors.len(),
            cancelled,
            "old log cleanup done"
        );
        let freed = format!(
            "deleted {} files, {} bytes",
            outcome.files_deleted, outcome.bytes_freed
        );
        if cancelled {
            return Err(TaskError::retryable(format!(
                "stopped early: asked to cancel ({freed} so far)"
            )));
        }
        if errors.is_empty() {
            return Ok(outcome);
        }
        let mut message = format!(
            "log cleanup incomplete ({freed}; {} errors): {}",
            errors.len(),
            errors[..errors.len().min(ERRORS_IN_MESSAGE)].join("; ")
        );
        if errors.len() > ERRORS_IN_MESSAGE {
            message = format!("{message}; and {} more", errors.len() - ERRORS_IN_MESSAGE);
        }
        Err(TaskError::retryable(message))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A directory under the system's temporary one, removed when dropped
    /// (`remove_dir_all` removes symlinks, never what they point to).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "refnet-logs-test-{}-{}",
                std::process::id(),
                uuid::Uuid::now_v7()
            ));
            fs::create_dir_all(dir.join("logs")).unwrap();
            Scratch(dir)
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.0.join(rel)
        }

        /// Writes `bytes` bytes to `rel`, last modified `age_days` days ago.
        fn file(&self, rel: &str, bytes: usize, age_days: u64) -> PathBuf {
            let path = self.path(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, vec![b'x'; bytes]).unwrap();
            let when = SystemTime::now() - Duration::from_secs(age_days * SECONDS_PER_DAY);
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
            path
        }

        fn env(&self, log_dirs: &[&str], recursive: bool) -> Arc<TaskEnv> {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect_lazy("postgres://unused@127.0.0.1:1/x")
                .unwrap();
            let mut env = TaskEnv::for_tests(pool, &self.0, "postgres://unused@127.0.0.1:1/x");
            env.log_dirs = log_dirs.iter().map(|d| self.path(d)).collect();
            env.log_recursive = recursive;
            Arc::new(env)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ctx() -> JobContext {
        JobContext {
            id: uuid::Uuid::now_v7(),
            task: CleanupOldLogs::NAME.into(),
            attempt: 1,
            max_attempts: 3,
            cancel: CancellationToken::new(),
        }
    }

    async fn clean(env: Arc<TaskEnv>, days: u32) -> Result<CleanupOutcome, TaskError> {
        CleanupOldLogs(env)
            .run(ctx(), CleanupArgs { days_to_keep: days })
            .await
    }

    fn deleted_paths(outcome: &CleanupOutcome) -> Vec<String> {
        let mut paths: Vec<String> = outcome.deleted.iter().map(|f| f.path.clone()).collect();
        paths.sort();
        paths
    }

    fn shown_all(paths: &[&PathBuf]) -> Vec<String> {
        let mut shown: Vec<String> = paths.iter().map(|p| super::shown(p)).collect();
        shown.sort();
        shown
    }

    #[tokio::test]
    async fn deletes_old_log_files_only_and_reports_bytes() {
        let s = Scratch::new();
        let old = [
            s.file("logs/app.log", 100, 40),
            s.file("logs/app.log.1", 200, 40),
            s.file("logs/app.log.2.gz", 300, 31),
            s.file("logs/worker.log.2026-01-01.gz", 400, 365),
            s.file("logs/x.logfile", 50, 40),
        ];
        let kept = [
            s.file("logs/current.log", 10, 0),
            s.file("logs/recent.log.1", 10, 29),
            s.file("logs/notes.txt", 10, 40),
            s.file("logs/log.txt", 10, 40),
            s.file("logs/catalog.txt", 10, 40),
            s.file("logs/logs.txt", 10, 40),
        ];
        let outcome = clean(s.env(&["logs"], false), 30).await.unwrap();

        assert_eq!(
            deleted_paths(&outcome),
            shown_all(&old.iter().collect::<Vec<_>>())
        );
        assert!(old.iter().all(|p| !p.exists()));
        assert!(kept.iter().all(|p| p.exists()));
        assert_eq!(outcome.files_deleted, 5);
        assert_eq!(outcome.bytes_freed, 100 + 200 + 300 + 400 + 50);
        assert_eq!(
            outcome.bytes_freed,
            outcome.deleted.iter().map(|f| f.bytes).sum::<u64>()
        );
        let app = outcome
            .deleted
            .iter()
            .find(|f| f.path.ends_with("/app.log"))
            .unwrap();
        assert_eq!(app.bytes, 100);

        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["days_to_keep"], 30);
        assert_eq!(json["files_deleted"], 5);
        assert_eq!(json["bytes_freed"], 1050);
        assert!(json["deleted"][0]["path"].is_string());
        assert!(json["deleted"][0]["bytes"].is_u64());
        for key in ["skipped_symlinks", "refused_dirs", "missing_dirs"] {
            assert_eq!(json[key], serde_json::json!([]), "{key}");
        }
    }

    #[tokio::test]
    async fn never_follows_a_symlink_to_a_file_or_a_directory() {
        let s = Scratch::new();
        let target = s.file("outside/target.log", 100, 40);
        let inner = s.file("outside_dir/old.log", 100, 40);
        let file_link = s.path("logs/link.log");
        let dir_link = s.path("logs/linked_dir");
        symlink(&target, &file_link).unwrap();
        symlink(s.path("outside_dir"), &dir_link).unwrap();

        // Recursive, so a followed directory link would be swept.
        let outcome = clean(s.env(&["logs"], true), 30).await.unwrap();

        assert!(outcome.deleted.is_empty(), "{:?}", outcome.deleted);
        assert!(target.exists() && inner.exists());
        assert!(fs::symlink_metadata(&file_link).unwrap().is_symlink());
        assert!(fs::symlink_metadata(&dir_link).unwrap().is_symlink());
        let mut skipped = outcome.skipped_symlinks.clone();
        skipped.sort();
        assert_eq!(skipped, shown_all(&[&file_link, &dir_link]));
    }

    #[tokio::test]
    async fn subdirectories_are_swept_only_when_recursive() {
        let s = Scratch::new();
        let top = s.file("logs/top.log", 10, 40);
        let sub = s.file("logs/sub/old.log", 20, 40);
        let deeper = s.file("logs/sub/deeper/old.log.1", 30, 40);
        let fresh = s.file("logs/sub/new.log", 40, 1);

        let flat = clean(s.env(&["logs"], false), 30).await.unwrap();
        assert_eq!(deleted_paths(&flat), shown_all(&[&top]));
        assert!(sub.exists() && deeper.exists());

        let deep = clean(s.env(&["logs"], true), 30).await.unwrap();
        assert_eq!(deleted_paths(&deep), shown_all(&[&sub, &deeper]));
        assert_eq!(deep.bytes_freed, 50);
        assert!(!sub.exists() && !deeper.exists() && fresh.exists());
    }

    #[tokio::test]
    async fn refuses_a_log_dir_that_is_a_symlink_and_cleans_the_others() {
        let s = Scratch::new();
        fs::remove_dir(s.path("logs")).unwrap();
        let real = s.file("real/old.log", 10, 40);
        symlink(s.path("real"), s.path("logs")).unwrap();
        let plain = s.file("not_a_dir", 10, 40);
        let other = s.file("other/old.log", 10, 40);

        let outcome = clean(s.env(&["logs", "not_a_dir", "other"], true), 30)
            .await
            .unwrap();

        assert!(real.exists() && plain.exists());
        assert!(!other.exists());
        assert_eq!(deleted_paths(&outcome), shown_all(&[&other]));
        assert_eq!(
            outcome.refused_dirs,
            vec![
                RefusedDir {
                    path: shown(&s.path("logs")),
                    reason: "is a symlink",
                },
                RefusedDir {
                    path: shown(&plain),
                    reason: "is not a directory",
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_dir_is_reported_not_an_error() {
        let s = Scratch::new();
        let outcome = clean(s.env(&["nope", "logs"], false), 30).await.unwrap();
        assert_eq!(outcome.missing_dirs, vec![shown(&s.path("nope"))]);
        assert_eq!(outcome.files_deleted, 0);
        assert_eq!(outcome.bytes_freed, 0);
    }

    #[test]
    fn arguments_default_to_30_days_and_refuse_0() {
        let args: CleanupArgs = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(args.days_to_keep, 30);
        assert!(CleanupOldLogs::validate(&args).is_ok());
        assert!(CleanupOldLogs::validate(&CleanupArgs { days_to_keep: 0 }).is_err());
        assert!(serde_json::from_value::<CleanupArgs>(serde_json::json!({"days": 3})).is_err());
        assert_eq!(CleanupOldLogs::options().aliases, vec!["cleanup-logs"]);
        assert_eq!(CleanupOldLogs::options().queue, "default");
    }

    #[test]
    fn log_names_match_the_glob() {
        for name in ["app.log", "app.log.1", "a.log.2.gz", "x.logfile", ".log"] {
            assert!(is_log_name(name.as_ref()), "{name}");
        }
        for name in ["log.txt", "logs.txt", "catalog.txt", "app.LOG", "applog"] {
            assert!(!is_log_name(name.as_ref()), "{name}");
        }
    }

    #[test]
    fn a_failed_deletion_fails_the_job_after_trying_the_rest() {
        let s = Scratch::new();
        let a = s.file("logs/a.log", 10, 40);
        let b = s.file("logs/b.log", 20, 40);
        let c = s.file("logs/c.log", 30, 40);
        let cutoff = cutoff(SystemTime::now(), 30);
        let mut remove = |path: &Path| {
            if path.ends_with("b.log") {
                Err(io::Error::from(io::ErrorKind::PermissionDenied))
            } else {
                fs::remove_file(path)
            }
        };
        let swept = sweep(
            &[s.path("logs")],
            false,
            cutoff,
            &CancellationToken::new(),
            &mut remove,
        );
        assert_eq!(deleted_paths(&swept.outcome), shown_all(&[&a, &c]));
        assert!(b.exists());

        let error = swept.finish(30).unwrap_err();
        assert!(!error.is_permanent());
        assert!(error.message().contains(&*shown(&b)), "{}", error.message());
        assert!(error.message().contains("deleted 2 files, 40 bytes"));
    }

    #[tokio::test]
    async fn a_cancelled_job_stops_before_deleting() {
        let s = Scratch::new();
        let old = s.file("logs/old.log", 10, 40);
        let ctx = ctx();
        ctx.cancel.cancel();
        let error = CleanupOldLogs(s.env(&["logs"], false))
            .run(ctx, CleanupArgs::default())
            .await
            .unwrap_err();
        assert!(!error.is_permanent());
        assert!(error.message().contains("cancel"), "{}", error.message());
        assert!(old.exists());
    }
}
