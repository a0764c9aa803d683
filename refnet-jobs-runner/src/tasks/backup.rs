//! `refnet.scheduled.backup_database`: `pg_dump` of RefNet's database to the
//! backup directory (production only).
//!
//! A backup is a custom-format dump named `refnet_<db>_<UTC timestamp>.dump`.
//! It is written to `.<name>.partial` (created 0600 before `pg_dump` opens it),
//! read back with `pg_restore --list`, fsynced and renamed into place, so the
//! directory only ever holds complete, readable backups. Then backups beyond
//! the configured count or age are pruned (never the one just written).
//!
//! The password reaches `pg_dump` only through its environment (`PGPASSWORD`):
//! the connection is given as `PGHOST`/`PGPORT`/`PGUSER`/`PGDATABASE`, never as
//! a URL on the command line, and messages name the database as
//! `host:port/db` only. Outside production the task does nothing and says so.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use refnet_jobs::{JobContext, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::process::Command;

use super::{TaskEnv, options};

/// Why the task does nothing outside production (stored as the job's result).
const SKIP_REASON: &str =
    "backups run only in production (REFNET_ENV=production); this runner is not";
/// Backup files are `refnet_*.dump`.
const PREFIX: &str = "refnet_";
/// See [`PREFIX`].
const SUFFIX: &str = ".dump";
/// A dump in progress is `.<final name>.partial`.
const PARTIAL_SUFFIX: &str = ".partial";
/// Partial files older than this are leftovers of a crashed runner and are removed.
const STALE_PARTIAL: Duration = Duration::from_secs(24 * 3600);
/// Where Debian/Ubuntu install PostgreSQL's programs, one `<major>/bin` per version.
const VERSIONED_BIN_ROOT: &str = "/usr/lib/postgresql";
/// Seconds `pg_dump` waits for its connection.
const CONNECT_TIMEOUT_SECS: &str = "30";
/// Shown instead of the password should `pg_dump` ever echo it.
const REDACTED: &str = "***";

/// No arguments.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupArgs {}

/// What the job stores: the backup written, or why none was.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum BackupOutcome {
    /// A verified backup is in place.
    Written(BackupWritten),
    /// Not production: nothing was done.
    Skipped(BackupSkipped),
}

/// A verified backup and the pruning after it.
#[derive(Debug, Serialize)]
pub(crate) struct BackupWritten {
    /// The backup file.
    path: PathBuf,
    /// Its size.
    bytes: u64,
    /// Entries in its table of contents (`pg_restore --list`).
    entries: usize,
    /// How long dump, check and pruning took.
    duration_ms: u64,
    /// Older backups (and stale partial files) deleted.
    pruned: Vec<PathBuf>,
    /// Files pruning should have deleted but could not (the backup itself is fine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prune_errors: Vec<String>,
}

/// The result outside production.
#[derive(Debug, Serialize)]
pub(crate) struct BackupSkipped {
    /// Always true.
    skipped: bool,
    /// Why.
    reason: &'static str,
}

/// See the module docs.
pub(crate) struct BackupDatabase(pub(crate) Arc<TaskEnv>);

impl Task for BackupDatabase {
    const NAME: &'static str = "refnet.scheduled.backup_database";
    type Args = BackupArgs;
    type Output = BackupOutcome;

    fn options() -> TaskOptions {
        TaskOptions {
            queue: "backup".into(),
            ..options(
                "backup",
                "pg_dump the database to the backup directory (production only)",
            )
        }
    }

    async fn run(&self, ctx: JobContext, _args: BackupArgs) -> Result<BackupOutcome, TaskError> {
        let env = &self.0.backup;
        if !env.production {
            tracing::info!(reason = SKIP_REASON, "database backup skipped");
            return Ok(BackupOutcome::Skipped(BackupSkipped {
                skipped: true,
                reason: SKIP_REASON,
            }));
        }
        let started = Instant::now();
        let target = Target::parse(&env.database_url).map_err(TaskError::permanent)?;
        let programs = Programs::locate().map_err(TaskError::permanent)?;

        let dir = env.dir.clone();
        let base = format!(
            "{PREFIX}{}_{}",
            file_name_part(&target.database),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        );
        let (path, partial) = ctx
            .run_blocking(move |_| claim_partial(&dir, &base))
            .await?
            .map_err(|e| {
                TaskError::retryable(format!(
                    "cannot create a backup file in {}: {e}",
                    env.dir.display()
                ))
            })?;
        // Removes the partial file on every way out but success, a dropped
        // (timed out, revoked) attempt included.
        let guard = PartialGuard(Some(partial.clone()));

        let dump = dump_command(&programs.pg_dump, &target, &partial);
        let output = run_to_end(dump, &ctx, &target, "pg_dump").await?;
        if !output.status.success() {
            return Err(TaskError::retryable(format!(
                "pg_dump of {target} failed ({}): {}",
                output.status,
                target.scrub(String::from_utf8_lossy(&output.stderr).trim())
            )));
        }

        let list = list_command(&programs.pg_restore, &partial);
        let output = run_to_end(list, &ctx, &target, "pg_restore --list").await?;
        if !output.status.success() {
            return Err(TaskError::retryable(format!(
                "the dump of {target} does not read back: pg_restore --list failed ({}): {}",
                output.status,
                target.scrub(String::from_utf8_lossy(&output.stderr).trim())
            )));
        }
        let entries = count_entries(&String::from_utf8_lossy(&output.stdout));
        if entries == 0 {
            return Err(TaskError::retryable(format!(
                "the dump of {target} lists no entries (pg_restore --list)"
            )));
        }

        let (dir, final_path) = (env.dir.clone(), path.clone());
        let bytes = ctx
            .run_blocking(move |_| publish(&partial, &final_path, &dir))
            .await?
            .map_err(|e| {
                TaskError::retryable(format!("cannot put {} in place: {e}", path.display()))
            })?;
        guard.disarm();

        let (dir, newest, keep, max_age_days) =
            (env.dir.clone(), path.clone(), env.keep, env.max_age_days);
        let pruning = ctx
            .run_blocking(move |_| prune(&dir, &newest, keep, max_age_days, SystemTime::now()))
            .await?;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        for error in &pruning.errors {
            tracing::warn!(%error, "backup pruning");
        }
        tracing::info!(
            database = %target,
            path = %path.display(),
            bytes,
            entries,
            duration_ms,
            pruned = pruning.pruned.len(),
            "database backed up"
        );
        Ok(BackupOutcome::Written(BackupWritten {
            path,
            bytes,
            entries,
            duration_ms,
            pruned: pruning.pruned,
            prune_errors: pruning.errors,
        }))
    }
}

/// Where `pg_dump` connects, from the database URL. Neither `Debug` nor
/// `Display` shows the password.
struct Target {
    /// Host name, IP address, or unix socket directory (starts with `/`).
    host: String,
    /// Server port (also names the socket file).
    port: u16,
    /// Role to connect as.
    user: String,
    /// Database to dump.
    database: String,
    /// libpq's `sslmode`.
    ssl_mode: &'static str,
    /// Extra libpq settings from the URL's query (`PGSSLROOTCERT`, ...).
    extra_env: Vec<(&'static str, String)>,
    /// The password from the URL, if it holds one.
    password: Option<Secret>,
}

/// A password: shown as `***` by `Debug`.
struct Secret(String);

impl fmt::Debug for Secret {
    /// Never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Debug for Target {
    /// `host:port/db`, like `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Target {
    /// `host:port/db`: how messages name the database.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.database)
    }
}

impl Target {
    /// Parses `url` as sqlx does (so the dump reaches the database the pool
    /// uses). Errors never contain the URL.
    fn parse(url: &str) -> Result<Target, String> {
        let options: PgConnectOptions = url.parse().map_err(|e| {
            format!(
                "the database URL is not valid ({e}); it is not shown as it may hold a password"
            )
        })?;
        let host = match options.get_socket() {
            Some(socket) => socket.to_string_lossy().into_owned(),
            None => {
                let host = options.get_host();
                host.strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host)
                    .to_string()
            }
        };
        let user = options.get_username().to_string();
        let query = query_pairs(url);
        let mut extra_env = Vec::new();
        for (key, value) in &query {
            let var = match key.as_str() {
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => "PGSSLROOTCERT",
                "sslcert" | "ssl-cert" => "PGSSLCERT",
                "sslkey" | "ssl-key" => "PGSSLKEY",
                "hostaddr" => "PGHOSTADDR",
                _ => continue,
            };
            // sqlx also takes inline PEM here; libpq wants a file.
            if !value.starts_with("-----BEGIN") {
                extra_env.push((var, value.clone()));
            }
        }
        if let Some(opts) = options.get_options() {
            extra_env.push(("PGOPTIONS", opts.to_string()));
        }
        // The last `password=` in the query wins over the one in the authority, as in sqlx.
        let password = query
            .into_iter()
            .rev()
            .find(|(key, _)| key == "password")
            .map(|(_, value)| value)
            .or_else(|| userinfo_password(url))
            .map(Secret);
        Ok(Target {
            host,
            port: options.get_port(),
            database: options.get_database().unwrap_or(&user).to_string(),
            user,
            ssl_mode: ssl_mode_name(options.get_ssl_mode()),
            extra_env,
            password,
        })
    }

    /// `text` with the password (should it appear) replaced by `***`.
    fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(Secret(password)) if !password.is_empty() => text.replace(password, REDACTED),
            _ => text.to_string(),
        }
    }

    /// Puts the connection in `cmd`'s environment: the password only as `PGPASSWORD`.
    fn apply_env(&self, cmd: &mut Command) {
        // A service definition would override what is set here.
        cmd.env_remove("PGSERVICE")
            .env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.database)
            .env("PGSSLMODE", self.ssl_mode)
            .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS)
            .env("PGAPPNAME", "refnet-backup");
        for (var, value) in &self.extra_env {
            cmd.env(var, value);
        }
        // Without one in the URL, `pg_dump` finds the password where sqlx did:
        // the inherited PGPASSWORD or ~/.pgpass.
        if let Some(Secret(password)) = &self.password {
            cmd.env("PGPASSWORD", password);
        }
    }
}

/// libpq's name for an sslmode.
fn ssl_mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The password in `scheme://user:password@host/...`, percent-decoded.
fn userinfo_password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    Some(percent_decode(password, false))
}

/// The URL's query as decoded `(key, value)` pairs.
fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space in a query); other bytes stay.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: always below 256.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            (b'+', _, _) if plus_is_space => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A database name made safe for a file name.
fn file_name_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `pg_dump` run: custom format into the pre-created `file`, never prompting.
fn dump_command(program: &Path, target: &Target, file: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--format=custom")
        .arg("--no-password")
        .arg("--file")
        .arg(file);
    target.apply_env(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// `pg_restore --list file`: reads the dump's table of contents (no connection).
fn list_command(program: &Path, file: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg("--list")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to its end, or kills it when the job is told to stop.
async fn run_to_end(
    mut cmd: Command,
    ctx: &JobContext,
    target: &Target,
    what: &str,
) -> Result<std::process::Output, TaskError> {
    let child = cmd.spawn().map_err(|e| {
        TaskError::retryable(format!(
            "cannot run {}: {e}",
            cmd.as_std().get_program().to_string_lossy()
        ))
    })?;
    tokio::select! {
        output = child.wait_with_output() => output.map_err(|e| {
            TaskError::retryable(format!("{what} for {target}: {e}"))
        }),
        // Dropping the running `wait_with_output` drops the child: kill_on_drop kills it.
        () = ctx.cancel.cancelled() => Err(TaskError::retryable(format!(
            "backup of {target} stopped during {what}: the job was told to stop"
        ))),
    }
}

/// Table-of-contents entries in `pg_restore --list` output (lines not comments).
fn count_entries(list: &str) -> usize {
    list.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(';'))
        .count()
}

/// The PostgreSQL programs used.
struct Programs {
    /// Writes the dump.
    pg_dump: PathBuf,
    /// Reads it back.
    pg_restore: PathBuf,
}

impl Programs {
    /// Finds `pg_dump` as the runner finds `initdb` (PATH, then the newest
    /// `/usr/lib/postgresql/*/bin`), and `pg_restore` preferably next to it.
    fn locate() -> Result<Programs, String> {
        let pg_dump = find_program("pg_dump", None)?;
        let bin_dir = fs::canonicalize(&pg_dump)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf));
        let pg_restore = find_program("pg_restore", bin_dir.as_deref())?;
        Ok(Programs {
            pg_dump,
            pg_restore,
        })
    }
}

/// Looks for `name` in `preferred`, then on PATH, then in the versioned bin dirs.
fn find_program(name: &str, preferred: Option<&Path>) -> Result<PathBuf, String> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    preferred
        .into_iter()
        .map(Path::to_path_buf)
        .chain(path_dirs.into_iter().filter(|dir| dir.is_absolute()))
        .chain(versioned_bin_dirs())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            format!(
                "PostgreSQL program `{name}` not found on PATH or in {VERSIONED_BIN_ROOT}/*/bin; \
                 install the PostgreSQL client package (e.g. `apt-get install postgresql-client-15`)"
            )
        })
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn versioned_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(VERSIONED_BIN_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Removes the partial file when dropped, unless disarmed.
struct PartialGuard(Option<PathBuf>);

impl PartialGuard {
    /// The file was renamed into place: nothing to remove.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PartialGuard {
    /// Deletes the partial file, if still armed.
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(error) = fs::remove_file(&path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove partial backup");
        }
    }
}

/// Creates `dir` (0700) if needed and, in it, a new empty 0600 partial file
/// for backup `base`: the final path and the partial's. A name already taken
/// (two backups within a second) gets a `_2`, `_3`... suffix.
fn claim_partial(dir: &Path, base: &str) -> io::Result<(PathBuf, PathBuf)> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{base}{SUFFIX}")
        } else {
            format!("{base}_{n}{SUFFIX}")
        };
        let path = dir.join(&name);
        let partial = dir.join(format!(".{name}{PARTIAL_SUFFIX}"));
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
        {
            Ok(file) => {
                // Exactly 0600, whatever the umask.
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
                return Ok((path, partial));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("every name for {base}{SUFFIX} is taken"),
    ))
}

/// Flushes the verified `partial` to disk and renames it to `target`; its size.
fn publish(partial: &Path, target: &Path, dir: &Path) -> io::Result<u64> {
    let file = fs::File::open(partial)?;
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    fs::rename(partial, target)?;
    if let Err(error) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "cannot fsync the backup directory");
    }
    Ok(bytes)
}

/// What pruning did.
#[derive(Debug, Default)]
struct Pruning {
    /// Files deleted.
    pruned: Vec<PathBuf>,
    /// Files that could not be deleted (or listed), with why.
    errors: Vec<String>,
}

/// Deletes backups in `dir` beyond the newest `keep` (counting `newest`, which
/// is never deleted) or older than `max_age_days` (0: no age limit), and
/// partial files left by a crash.
fn prune(dir: &Path, newest: &Path, keep: usize, max_age_days: u32, now: SystemTime) -> Pruning {
    let mut pruning = Pruning::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            pruning
                .errors
                .push(format!("cannot list {}: {e}", dir.display()));
            return pruning;
        }
    };
    let age = |mtime: SystemTime| now.duration_since(mtime).unwrap_or_default();
    let max_age = Duration::from_secs(u64::from(max_age_days) * 86_400);
    let mut backups: Vec<(SystemTime, String, PathBuf)> = Vec::new();
    let mut doomed: Vec<PathBuf> = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() || path == newest {
            continue;
        }
        let mtime = meta.modified().unwrap_or(now);
        if is_backup_name(&name) {
            backups.push((mtime, name, path));
        } else if name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(PARTIAL_SUFFIX))
            .is_some_and(is_backup_name)
            && age(mtime) > STALE_PARTIAL
        {
            doomed.push(path);
        }
    }
    // Newest first; equal times by name (the timestamp in it).
    backups.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let others_kept = keep.max(1) - 1;
    for (i, (mtime, _, path)) in backups.into_iter().enumerate() {
        let too_old = max_age_days > 0 && age(mtime) > max_age;
        if i >= others_kept || too_old {
            doomed.push(path);
        }
    }
    for path in doomed {
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "old backup deleted");
                pruning.pruned.push(path);
            }
            Err(e) => pruning
                .errors
                .push(format!("cannot delete {}: {e}", path.display())),
        }
    }
    pruning
}

/// Whether `name` is a backup's file name (`refnet_*.dump`).
fn is_backup_name(name: &str) -> bool {
    name.len() > PREFIX.len() + SUFFIX.len() && name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::PgPool;

    /// A password with characters a URL must escape.
    const PASSWORD: &str = "S3cret-pw-XYZ/:@?";
    /// [`PASSWORD`] percent-encoded for a URL.
    const PASSWORD_IN_URL: &str = "S3cret-pw-XYZ%2F%3A%40%3F";

    /// A fresh directory under the system temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "refnet-backup-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// A job context for direct runs.
    fn ctx() -> JobContext {
        JobContext {
            id: uuid::Uuid::now_v7(),
            task: BackupDatabase::NAME.into(),
            attempt: 1,
            max_attempts: 3,
            cancel: refnet_jobs::CancellationToken::new(),
        }
    }

    /// The URL of the pool's database (DATABASE_URL with its database name replaced).
    async fn url_of(pool: &PgPool) -> String {
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(pool)
            .await
            .unwrap();
        with_database(&dev_url(), &name)
    }

    /// The test server's URL.
    fn dev_url() -> String {
        std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests")
    }

    /// `base` with its database name replaced by `name`.
    fn with_database(base: &str, name: &str) -> String {
        let (without_query, query) = match base.split_once('?') {
            Some((b, q)) => (b.to_string(), format!("?{q}")),
            None => (base.to_string(), String::new()),
        };
        let scheme_end = without_query.find("://").map(|i| i + 3).unwrap_or(0);
        let path_start = without_query[scheme_end..]
            .find('/')
            .map(|i| i + scheme_end)
            .unwrap_or(without_query.len());
        format!("{}/{name}{query}", &without_query[..path_start])
    }

    /// A URL for database `db` on the test server as `user` with [`PASSWORD`].
    fn url_as(user: &str, db: &str) -> String {
        let target = Target::parse(&dev_url()).expect("DATABASE_URL");
        format!(
            "postgres://{user}:{PASSWORD_IN_URL}@{}:{}/{db}",
            target.host, target.port
        )
    }

    /// Creates a login role with [`PASSWORD`]; its name.
    async fn create_role(pool: &PgPool) -> String {
        let role = format!(
            "backup_tester_{}",
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{}'",
            PASSWORD.replace('\'', "''")
        )))
        .execute(pool)
        .await
        .expect("create role");
        role
    }

    /// Hands `role`'s objects back and drops it.
    async fn drop_role(pool: &PgPool, role: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE {role}"
        )))
        .execute(pool)
        .await
        .expect("drop role");
    }

    /// A 100-row table owned by `role`.
    async fn create_demo_table(pool: &PgPool, role: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE papers_demo (id int PRIMARY KEY, title text NOT NULL);
             INSERT INTO papers_demo SELECT g, 'paper ' || g FROM generate_series(1, 100) g;
             ALTER TABLE papers_demo OWNER TO {role}"
        )))
        .execute(pool)
        .await
        .expect("demo table");
    }

    /// Names of the files in `dir` (none if it does not exist), sorted.
    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The stored result of a successful run.
    fn written(outcome: BackupOutcome) -> BackupWritten {
        match outcome {
            BackupOutcome::Written(written) => written,
            BackupOutcome::Skipped(_) => panic!("backup skipped in production"),
        }
    }

    /// Asserts the password shows in no form in `text`.
    fn assert_no_password(text: &str) {
        for form in [PASSWORD, PASSWORD_IN_URL, "S3cret"] {
            assert!(!text.contains(form), "password ({form}) in {text}");
        }
    }

    #[sqlx::test(migrations = false)]
    async fn production_backup_is_private_verified_and_restores_into_a_scratch_database(
        pool: PgPool,
    ) {
        let role = create_role(&pool).await;
        create_demo_table(&pool, &role).await;
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&pool)
            .await
            .unwrap();
        let dir = temp_dir("restore");
        let env = TaskEnv::for_tests(pool.clone(), &dir, &url_as(&role, &db));
        let backups = env.backup.dir.clone();
        let task = BackupDatabase(Arc::new(env));

        let outcome = task.run(ctx(), BackupArgs {}).await.expect("backup");
        let json = serde_json::to_string(&outcome).unwrap();
        assert_no_password(&json);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        for key in ["path", "bytes", "entries", "duration_ms", "pruned"] {
            assert!(value.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(value["pruned"], serde_json::json!([]));
        let outcome = written(outcome);

        let name = outcome
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let prefix = format!("refnet_{}_", file_name_part(&db));
        let stamp = name
            .strip_prefix(&prefix)
            .and_then(|n| n.strip_suffix(".dump"))
            .unwrap_or_else(|| panic!("unexpected name {name}"));
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").expect("UTC timestamp");
        assert_eq!(outcome.path.parent(), Some(backups.as_path()));
        assert_eq!(names_in(&backups), vec![name], "no partial file left");

        let meta = fs::metadata(&outcome.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), outcome.bytes);
        assert_eq!(
            fs::metadata(&backups).unwrap().permissions().mode() & 0o777,
            0o700
        );

        let programs = Programs::locate().expect("pg_dump and pg_restore");
        let list = list_command(&programs.pg_restore, &outcome.path)
            .output()
            .await
            .unwrap();
        assert!(list.status.success());
        let list = String::from_utf8_lossy(&list.stdout);
        assert_eq!(count_entries(&list), outcome.entries);
        assert!(
            list.contains("TABLE DATA public papers_demo"),
            "table of contents: {list}"
        );

        // Restore into a scratch database with the real pg_restore.
        // Its own short name: the test database's is already 63 bytes long.
        let scratch = format!("refnet_restore_{}", uuid::Uuid::now_v7().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{scratch}\""
        )))
        .execute(&pool)
        .await
        .expect("scratch database");
        let mut restore = Command::new(&programs.pg_restore);
        restore
            .args(["--no-owner", "--exit-on-error", "--no-password"])
            .arg(format!("--dbname={scratch}"))
            .arg(&outcome.path);
        Target::parse(&with_database(&dev_url(), &scratch))
            .unwrap()
            .apply_env(&mut restore);
        let restored = restore.output().await.expect("pg_restore runs");
        assert!(
            restored.status.success(),
            "pg_restore: {}",
            String::from_utf8_lossy(&restored.stderr)
        );
        let scratch_pool = PgPool::connect(&with_database(&dev_url(), &scratch))
            .await
            .expect("scratch pool");
        let (rows, sum): (i64, i64) =
            sqlx::query_as("SELECT count(*), sum(id)::bigint FROM papers_demo")
                .fetch_one(&scratch_pool)
                .await
                .expect("restored table");
        assert_eq!((rows, sum), (100, 5050));
        scratch_pool.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE \"{scratch}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await
        .expect("drop scratch database");
        drop_role(&pool, &role).await;
        let _ = fs::remove_dir_all(&dir);
    }

    #[sqlx::test(migrations = false)]
    async fn outside_production_the_backup_is_skipped_visibly(pool: PgPool) {
        let dir = temp_dir("skip");
        let url = url_of(&pool).await;
        let mut env = TaskEnv::for_tests(pool, &dir, &url);
        env.backup.production = false;
        let backups = env.backup.dir.clone();
        let outcome = BackupDatabase(Arc::new(env))
            .run(ctx(), BackupArgs {})
            .await
            .expect("skip is a success");
        let value = serde_json::to_value(&outcome).unwrap();
        assert_eq!(value["skipped"], true);
        assert!(
            value["reason"]
                .as_str()
                .unwrap()
                .contains("REFNET_ENV=production"),
            "{value}"
        );
        assert!(!backups.exists(), "nothing written");
        let _ = fs::remove_dir_all(&dir);
    }

    #[sqlx::test(migrations = false)]
    async fn old_backups_beyond_the_count_or_age_are_pruned_but_never_the_new_one(pool: PgPool) {
        sqlx::raw_sql("CREATE TABLE papers_demo (id int); INSERT INTO papers_demo VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        let dir = temp_dir("prune");
        let url = url_of(&pool).await;
        let task = |keep: usize| {
            let mut env = TaskEnv::for_tests(pool.clone(), &dir, &url);
            env.backup.keep = keep;
            env.backup.max_age_days = 30;
            BackupDatabase(Arc::new(env))
        };
        let backups = task(3).0.backup.dir.clone();
        fs::create_dir_all(&backups).unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let fake = |name: &str, days_old: u32| {
            let file = fs::File::create(backups.join(name)).unwrap();
            file.set_modified(now - day * days_old).unwrap();
        };
        // Five old backups (of another database too: the pattern is refnet_*.dump).
        fake("refnet_x_20200105T000000Z.dump", 1);
        fake("refnet_x_20200104T000000Z.dump", 2);
        fake("refnet_x_20200103T000000Z.dump", 3);
        fake("refnet_x_20200102T000000Z.dump", 40);
        fake("refnet_x_20200101T000000Z.dump", 50);
        // Not backups: left alone, however old.
        fake("notes.txt", 90);
        fake("other_x.dump", 90);
        // A partial file a crash left behind, and a fresh one (a dump in progress).
        fake(".refnet_x_20190101T000000Z.dump.partial", 5);
        fake(".refnet_x_20990101T000000Z.dump.partial", 0);
        let names = |paths: &[PathBuf]| {
            let mut names: Vec<String> = paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };

        // Room for ten: only the age limit (30 days) and the stale partial apply.
        let first = written(task(10).run(ctx(), BackupArgs {}).await.expect("first"));
        assert_eq!(
            names(&first.pruned),
            vec![
                ".refnet_x_20190101T000000Z.dump.partial",
                "refnet_x_20200101T000000Z.dump",
                "refnet_x_20200102T000000Z.dump",
            ]
        );
        assert!(first.prune_errors.is_empty(), "{:?}", first.prune_errors);

        // Keep 3: the new backup, the first one and the newest fake; within the
        // same second, the second backup gets a name of its own.
        let second = written(task(3).run(ctx(), BackupArgs {}).await.expect("second"));
        assert_ne!(second.path, first.path, "a backup never overwrites another");
        assert_eq!(
            names(&second.pruned),
            vec![
                "refnet_x_20200103T000000Z.dump",
                "refnet_x_20200104T000000Z.dump",
            ]
        );
        let mut expected = names(&[first.path.clone(), second.path.clone()]);
        expected.extend(
            [
                ".refnet_x_20990101T000000Z.dump.partial",
                "notes.txt",
                "other_x.dump",
                "refnet_x_20200105T000000Z.dump",
            ]
            .map(String::from),
        );
        expected.sort();
        assert_eq!(names_in(&backups), expected);

        // Keep 1: only the backup just written survives among the backups.
        let third = written(task(1).run(ctx(), BackupArgs {}).await.expect("third"));
        assert_eq!(
            names(&third.pruned),
            names(&[
                first.path.clone(),
                second.path.clone(),
                backups.join("refnet_x_20200105T000000Z.dump"),
            ])
        );
        assert!(third.path.exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[sqlx::test(migrations = false)]
    async fn a_failing_dump_names_the_database_not_the_password_and_leaves_no_file(pool: PgPool) {
        let dir = temp_dir("fail");
        let missing = format!("no_such_db_{}", uuid::Uuid::now_v7().simple());
        let env = TaskEnv::for_tests(pool, &dir, &url_as("postgres", &missing));
        let backups = env.backup.dir.clone();
        let error = match BackupDatabase(Arc::new(env))
            .run(ctx(), BackupArgs {})
            .await
        {
            Ok(outcome) => panic!("dump of a missing database succeeded: {outcome:?}"),
            Err(error) => error,
        };
        assert!(!error.is_permanent(), "worth retrying");
        assert!(error.message().contains(&missing), "{}", error.message());
        assert!(error.message().contains("pg_dump"), "{}", error.message());
        assert_no_password(error.message());
        assert_eq!(names_in(&backups), Vec::<String>::new(), "no partial file");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_password_goes_to_the_environment_never_the_command_line() {
        let url = format!("postgres://refnet:{PASSWORD_IN_URL}@db.example:6543/refnet");
        let target = Target::parse(&url).expect("parse");
        let cmd = dump_command(
            Path::new("/usr/bin/pg_dump"),
            &target,
            Path::new("/backups/.x.partial"),
        );
        let cmd = cmd.as_std();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        for arg in &args {
            assert_no_password(arg);
            assert!(
                !arg.contains("db.example"),
                "connection as an argument: {arg}"
            );
        }
        assert!(args.contains(&"--format=custom".to_string()));
        assert!(args.contains(&"--no-password".to_string()));
        let envs: std::collections::HashMap<String, Option<String>> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        let var = |name: &str| envs.get(name).cloned().flatten();
        assert_eq!(var("PGPASSWORD").as_deref(), Some(PASSWORD));
        assert_eq!(var("PGHOST").as_deref(), Some("db.example"));
        assert_eq!(var("PGPORT").as_deref(), Some("6543"));
        assert_eq!(var("PGUSER").as_deref(), Some("refnet"));
        assert_eq!(var("PGDATABASE").as_deref(), Some("refnet"));
        assert_eq!(envs.get("PGSERVICE"), Some(&None), "service file ignored");

        assert_no_password(&format!("{target} {target:?}"));
        assert_eq!(target.to_string(), "db.example:6543/refnet");
        assert_eq!(
            target.scrub(&format!("oops {PASSWORD} leaked")),
            "oops *** leaked"
        );
    }

    #[test]
    fn urls_parse_like_sqlx_with_sockets_query_passwords_and_ipv6() {
        let socket = Target::parse("postgres://refnet@%2Fvar%2Frun%2Fpostgresql:5433/refnet")
            .expect("socket in the host");
        assert_eq!(socket.host, "/var/run/postgresql");
        assert_eq!(socket.port, 5433);
        assert!(socket.password.is_none());

        let query = Target::parse(
            "postgres://u@h/d?host=/tmp&password=a%20b+c&sslmode=require&sslrootcert=/ca.pem",
        )
        .expect("query parameters");
        assert_eq!(query.host, "/tmp");
        assert_eq!(query.password.as_ref().map(|p| p.0.as_str()), Some("a b c"));
        assert_eq!(query.ssl_mode, "require");
        assert!(
            query
                .extra_env
                .contains(&("PGSSLROOTCERT", "/ca.pem".to_string()))
        );

        let v6 = Target::parse("postgres://u:p@[::1]:5432/d").expect("ipv6");
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.password.as_ref().map(|p| p.0.as_str()), Some("p"));
        assert_eq!(v6.to_string(), "::1:5432/d");

        let no_db = Target::parse("postgres://someone@h").expect("no database");
        assert_eq!(no_db.database, "someone", "libpq's default: the user name");

        let error = Target::parse(&format!("postgres://u:{PASSWORD_IN_URL}@h:notaport/d"))
            .expect_err("bad port");
        assert_no_password(&error);
    }

    #[test]
    fn helpers() {
        assert_eq!(percent_decode("a%2Fb%zz%4", false), "a/b%zz%4");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(file_name_part("my db/x"), "my_db_x");
        assert!(is_backup_name("refnet_x_1.dump"));
        assert!(!is_backup_name("refnet_.dump"));
        assert!(!is_backup_name(".refnet_x.dump.partial"));
        assert_eq!(
            count_entries(
                ";\n; Archive created at 2024\n;\n3; 2615 2200 SCHEMA - public pg\n\n216; 1259 1 TABLE public t pg\n"
            ),
            2
        );
    }

    #[test]
    fn runs_on_the_backup_queue_and_refuses_unknown_arguments() {
        let options = BackupDatabase::options();
        assert_eq!(options.queue, "backup");
        assert_eq!(options.aliases, vec!["backup".to_string()]);
        assert!(serde_json::from_value::<BackupArgs>(serde_json::json!({})).is_ok());
        assert!(serde_json::from_value::<BackupArgs>(serde_json::json!({"keep": 1})).is_err());
    }
}
