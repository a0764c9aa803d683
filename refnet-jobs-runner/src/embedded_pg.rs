//! A throwaway PostgreSQL server run from the locally installed binaries.
//!
//! This is the Rust twin of `scripts/pg-throwaway`: it initialises a cluster in a
//! directory of your choice (trust authentication, superuser `postgres`), starts it
//! on a free TCP port on 127.0.0.1 and hands out a connection URL. It is meant for
//! demos and local use, never for data you care about.
//!
//! Layout of the directory passed to [`EmbeddedPostgres::start`]:
//!
//! * `data/` – the cluster (`initdb` output),
//! * `postgres.log` – the server log,
//! * `.s.PGSQL.<port>` – the unix socket (when the path is short enough).
//!
//! PostgreSQL refuses to run as root. When this process runs as root, the server
//! programs (`initdb`, `pg_ctl`) are run as the `postgres` OS user instead, the
//! directory is handed over to that user, and every parent directory must be
//! traversable by it.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

/// The database superuser created by `initdb` (and the OS user the server runs as when we are root).
const SUPERUSER: &str = "postgres";
/// Name of the settings file (inside the data directory) rewritten on every start.
const CONF_FILE: &str = "refnet_embedded.conf";
/// The line added to `postgresql.conf` so that [`CONF_FILE`] is read.
const CONF_INCLUDE: &str = "include_if_exists = 'refnet_embedded.conf'";
/// How often a start is retried when another process grabbed the chosen port first.
const START_ATTEMPTS: usize = 5;
/// How many lines of the server log are included in a start failure.
const LOG_TAIL_LINES: usize = 30;
/// Seconds `pg_ctl` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// Longest database name PostgreSQL keeps without truncating (NAMEDATALEN - 1).
const MAX_DATABASE_NAME_BYTES: usize = 63;
/// Maximum length of a unix socket path (`sun_path`, including the terminating NUL).
const MAX_SOCKET_PATH: usize = 108;
/// Where Debian/Ubuntu install the server binaries, one `<major>/bin` per version.
const VERSIONED_BIN_ROOT: &str = "/usr/lib/postgresql";

/// Errors from starting or stopping an [`EmbeddedPostgres`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum EmbeddedPgError {
    /// A PostgreSQL program could not be found.
    #[error(
        "PostgreSQL program `{name}` not found on PATH or in {VERSIONED_BIN_ROOT}/*/bin; \
         install the PostgreSQL server package (e.g. `apt-get install postgresql-15`)"
    )]
    BinaryNotFound {
        /// The program that is missing, e.g. `initdb`.
        name: &'static str,
    },
    /// We run as root but there is no `postgres` OS user to run the server as.
    #[error(
        "running as root, but there is no `postgres` OS user to run the server as \
         (PostgreSQL refuses to run as root); create it (e.g. `useradd --system postgres`) \
         or run as an unprivileged user"
    )]
    NoPostgresUser,
    /// The `postgres` OS user cannot reach the server directory.
    #[error(
        "the `postgres` OS user cannot reach {}: {reason}; use a directory every user can \
         traverse (e.g. under /tmp) or grant access (e.g. `chmod o+x` on the parents)",
        dir.display()
    )]
    Unreachable {
        /// The directory the server would live in.
        dir: PathBuf,
        /// Which parent is blocking, or the underlying error.
        reason: String,
    },
    /// The requested database name cannot be used.
    #[error("invalid database name {name:?}: {reason}")]
    InvalidDatabaseName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A PostgreSQL program exited unsuccessfully.
    #[error("`{cmd}` failed ({status}){details}")]
    Command {
        /// The command line that failed.
        cmd: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its output and, for server start failures, the tail of the server log.
        details: String,
    },
    /// An I/O error, with what we were doing at the time.
    #[error("{context}: {source}")]
    Io {
        /// What failed, e.g. "creating /tmp/x".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Shorthand for results in this module.
type Result<T, E = EmbeddedPgError> = std::result::Result<T, E>;

/// Builds a closure turning an [`io::Error`] into [`EmbeddedPgError::Io`] with `context`.
fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// A throwaway PostgreSQL server run from the installed binaries, for demos and local use.
///
/// The server is stopped by [`EmbeddedPostgres::stop`] or, failing that, when the value
/// is dropped. The cluster's files stay in the directory, so the next
/// [`EmbeddedPostgres::start`] on the same directory reuses the data.
#[derive(Debug)]
pub(crate) struct EmbeddedPostgres {
    /// The directory holding `data/`, the log and the socket (canonical path).
    dir: PathBuf,
    /// The cluster's data directory, `dir/data`.
    data_dir: PathBuf,
    /// The server log, `dir/postgres.log`.
    log_file: PathBuf,
    /// The PostgreSQL programs in use.
    bins: Binaries,
    /// The OS user the server runs as when we are root; `None` runs it as ourselves.
    server_user: Option<OsUser>,
    /// The TCP port on 127.0.0.1 the server listens on.
    port: u16,
    /// The connection URL handed out by [`EmbeddedPostgres::url`].
    url: String,
    /// Whether this value started the server and has not stopped it yet.
    running: bool,
}

impl EmbeddedPostgres {
    /// Starts (initialising on first use) a server whose files live in `dir` (e.g. `./.refnet-jobs/postgres`),
    /// on a free port on 127.0.0.1, and makes sure database `database` exists.
    ///
    /// An existing cluster in `dir` is reused (its data is kept). If a server from a
    /// previous run is still running there (e.g. the process was killed before it could
    /// stop it), that server is **stopped and restarted** on a fresh port, so that the
    /// settings written by this run are the ones in effect.
    ///
    /// The connecting role is the superuser `postgres` with trust authentication, so
    /// anyone on this machine can connect: do not put anything secret in it.
    pub(crate) fn start(dir: &Path, database: &str) -> Result<Self> {
        validate_database_name(database)?;
        let bins = Binaries::locate()?;
        let server_user = if effective_uid()? == 0 {
            Some(OsUser::lookup(SUPERUSER)?.ok_or(EmbeddedPgError::NoPostgresUser)?)
        } else {
            None
        };

        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let dir = fs::canonicalize(dir).map_err(io_err(format!("resolving {}", dir.display())))?;
        if let Some(user) = server_user {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).map_err(io_err(
                format!("handing {} over to the postgres user", dir.display()),
            ))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err(format!("setting permissions of {}", dir.display())))?;
            check_reachable(&dir, user)?;
        }

        let mut pg = Self {
            data_dir: dir.join("data"),
            log_file: dir.join("postgres.log"),
            dir,
            bins,
            server_user,
            port: 0,
            url: String::new(),
            running: false,
        };

        if pg.is_initialised() {
            if pg.server_is_running()? {
                tracing::warn!(
                    data_dir = %pg.data_dir.display(),
                    "a PostgreSQL server from a previous run is still running here; restarting it"
                );
                pg.pg_ctl_stop()?;
            }
        } else {
            pg.initdb()?;
        }
        pg.launch(database)?;
        // From here on, dropping `pg` (e.g. on the error path below) stops the server.
        pg.ensure_database(database)?;
        tracing::info!(url = %pg.url, log = %pg.log_file.display(), "embedded PostgreSQL ready");
        Ok(pg)
    }

    /// The connection URL, e.g. postgres://postgres@127.0.0.1:54321/refnet
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster, the log and the socket.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server (fast shutdown). Idempotent.
    ///
    /// Stopping a server that has already gone away (e.g. killed from outside) is not an error.
    pub(crate) fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        if self.server_is_running()? {
            self.pg_ctl_stop()?;
            tracing::info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        }
        self.running = false;
        Ok(())
    }

    /// Whether `data_dir` holds an initialised cluster.
    fn is_initialised(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    /// A command for a server program, run in `dir` as the server's OS user.
    fn server_command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // Running in `dir` keeps the programs from complaining about an unreadable
        // working directory (e.g. /root) once they no longer run as root.
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        if let Some(user) = self.server_user {
            cmd.uid(user.uid).gid(user.gid);
        }
        cmd
    }

    /// Runs `initdb` to create the cluster and hooks our settings file into it.
    fn initdb(&self) -> Result<()> {
        tracing::info!(data_dir = %self.data_dir.display(), "initialising PostgreSQL cluster");
        let mut cmd = self.server_command(&self.bins.initdb);
        cmd.arg("-D").arg(&self.data_dir).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]);
        run(&mut cmd)?;

        let conf = self.data_dir.join("postgresql.conf");
        let current =
            fs::read_to_string(&conf).map_err(io_err(format!("reading {}", conf.display())))?;
        if !current.lines().any(|line| line.trim() == CONF_INCLUDE) {
            let mut file = fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .map_err(io_err(format!("opening {}", conf.display())))?;
            writeln!(
                file,
                "\n# Settings written by refnet-jobs-runner on every start\n{CONF_INCLUDE}"
            )
            .map_err(io_err(format!("writing {}", conf.display())))?;
        }
        Ok(())
    }

    /// Writes the per-start settings (port, addresses, socket directory).
    fn write_settings(&self, port: u16) -> Result<()> {
        let socket_dirs = match self.dir.to_str() {
            // `.s.PGSQL.<port>` plus NUL must fit in a unix socket path, and the setting is a
            // comma-separated list.
            Some(dir) if dir.len() + 20 <= MAX_SOCKET_PATH && !dir.contains(',') => dir,
            _ => {
                tracing::debug!(dir = %self.dir.display(), "directory unusable for a unix socket; TCP only");
                ""
            }
        };
        let settings = format!(
            "# Written by refnet-jobs-runner on every start; edits are lost.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = {}\n\
             max_connections = 300\n",
            conf_quote(socket_dirs)
        );
        let path = self.data_dir.join(CONF_FILE);
        fs::write(&path, settings).map_err(io_err(format!("writing {}", path.display())))?;
        if let Some(user) = self.server_user {
            std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))
                .map_err(io_err(format!("chown {}", path.display())))?;
        }
        Ok(())
    }

    /// Starts the server on a free port, retrying when the port is taken in the meantime.
    fn launch(&mut self, database: &str) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            self.write_settings(port)?;
            let log_offset = fs::metadata(&self.log_file).map_or(0, |m| m.len());

            let mut cmd = self.server_command(&self.bins.pg_ctl);
            cmd.arg("start")
                .arg("-D")
                .arg(&self.data_dir)
                .arg("-l")
                .arg(&self.log_file)
                .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
            match run(&mut cmd) {
                Ok(_) => {
                    self.port = port;
                    self.url = format!(
                        "postgres://{SUPERUSER}@127.0.0.1:{port}/{}",
                        percent_encode(database)
                    );
                    self.running = true;
                    return Ok(());
                }
                Err(EmbeddedPgError::Command {
                    cmd,
                    status,
                    mut details,
                }) => {
                    let new_log = read_log_from(&self.log_file, log_offset);
                    if new_log.contains("could not bind") && attempt < START_ATTEMPTS {
                        tracing::debug!(port, attempt, "port taken in the meantime; retrying");
                        continue;
                    }
                    let _ = write!(
                        details,
                        "\n--- last lines of {} ---\n{}",
                        self.log_file.display(),
                        tail_lines(&new_log, LOG_TAIL_LINES)
                    );
                    return Err(EmbeddedPgError::Command {
                        cmd,
                        status,
                        details,
                    });
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Creates `database` unless it exists, connecting over TCP as the superuser.
    fn ensure_database(&self, database: &str) -> Result<()> {
        // psql quotes `:'db'` as a literal and the server quotes the identifier with %I,
        // so any valid name is safe here.
        const SCRIPT: &str = "SELECT format('CREATE DATABASE %I', :'db') \
                              WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\n\
                              \\gexec\n";
        let mut cmd = Command::new(&self.bins.psql);
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v"])
            .arg(format!("db={database}"))
            .arg(format!(
                "host=127.0.0.1 port={} user={SUPERUSER} dbname=postgres",
                self.port
            ))
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmd_line = describe(&cmd);
        let mut child = cmd.spawn().map_err(io_err(format!("running {cmd_line}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(SCRIPT.as_bytes())
                .map_err(io_err(format!("writing to {cmd_line}")))?;
        }
        let output = child
            .wait_with_output()
            .map_err(io_err(format!("running {cmd_line}")))?;
        check_output(cmd_line, output).map(drop)
    }

    /// Whether a server is running on `data_dir` (`pg_ctl status`).
    fn server_is_running(&self) -> Result<bool> {
        if !self.is_initialised() {
            return Ok(false);
        }
        let mut cmd = self.server_command(&self.bins.pg_ctl);
        cmd.arg("status").arg("-D").arg(&self.data_dir);
        let output = cmd
            .output()
            .map_err(io_err(format!("running {}", describe(&cmd))))?;
        // 0: running, 3: not running, 4: no accessible data directory.
        Ok(output.status.success())
    }

    /// `pg_ctl stop -m fast`, waiting for the shutdown to complete.
    fn pg_ctl_stop(&self) -> Result<()> {
        let mut cmd = self.server_command(&self.bins.pg_ctl);
        cmd.arg("stop").arg("-D").arg(&self.data_dir).args([
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ]);
        run(&mut cmd).map(drop)
    }
}

impl Drop for EmbeddedPostgres {
    /// Stops the server if still running; errors are logged and otherwise ignored.
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::warn!(%error, "failed to stop embedded PostgreSQL");
        }
    }
}

/// The PostgreSQL programs used.
#[derive(Debug, Clone)]
struct Binaries {
    /// `initdb`, creates the cluster.
    initdb: PathBuf,
    /// `pg_ctl`, starts and stops the server.
    pg_ctl: PathBuf,
    /// `psql`, creates the database.
    psql: PathBuf,
}

impl Binaries {
    /// Finds `initdb` on PATH (else in the newest `/usr/lib/postgresql/*/bin`), then the
    /// other programs preferably next to the real `initdb` so that versions match.
    fn locate() -> Result<Self> {
        let initdb = find_program("initdb", None)?;
        let bin_dir = fs::canonicalize(&initdb)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf));
        let pg_ctl = find_program("pg_ctl", bin_dir.as_deref())?;
        let psql = find_program("psql", bin_dir.as_deref())?;
        tracing::debug!(initdb = %initdb.display(), pg_ctl = %pg_ctl.display(), psql = %psql.display(), "PostgreSQL programs");
        Ok(Self {
            initdb,
            pg_ctl,
            psql,
        })
    }
}

/// Looks for `name` in `preferred` (if any), then on PATH, then in the newest versioned bin dir.
fn find_program(name: &'static str, preferred: Option<&Path>) -> Result<PathBuf> {
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
        .ok_or(EmbeddedPgError::BinaryNotFound { name })
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn versioned_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(VERSIONED_BIN_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// Parses a version directory name such as `15` or `9.6`.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// An OS user the server can run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OsUser {
    /// User id.
    uid: u32,
    /// Primary group id.
    gid: u32,
}

impl OsUser {
    /// Looks `name` up in /etc/passwd, then through `getent passwd` (NSS, e.g. LDAP).
    fn lookup(name: &str) -> Result<Option<Self>> {
        if let Ok(passwd) = fs::read_to_string("/etc/passwd")
            && let Some(user) = passwd
                .lines()
                .find_map(|line| parse_passwd_line(line, name))
        {
            return Ok(Some(user));
        }
        match Command::new("getent").args(["passwd", name]).output() {
            Ok(output) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout)
                .lines()
                .find_map(|line| parse_passwd_line(line, name))),
            _ => Ok(None),
        }
    }
}

/// Parses a passwd(5) line, returning the ids if it is `name`'s entry.
fn parse_passwd_line(line: &str, name: &str) -> Option<OsUser> {
    let mut fields = line.split(':');
    if fields.next()? != name {
        return None;
    }
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(OsUser { uid, gid })
}

/// The effective uid of this process, from /proc/self/status (falling back to `id -u`).
fn effective_uid() -> Result<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status")
        && let Some(uid) = parse_effective_uid(&status)
    {
        return Ok(uid);
    }
    let output = Command::new("id")
        .arg("-u")
        .output()
        .map_err(io_err("finding the current user id (`id -u`)"))?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| EmbeddedPgError::Io {
            context: "finding the current user id".to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "neither /proc/self/status nor `id -u` gave a uid",
            ),
        })
}

/// Extracts the effective uid from the `Uid:` line (real, effective, saved, fs) of `/proc/<pid>/status`.
fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Checks that `user` can traverse every directory from `/` down to `dir`.
fn check_reachable(dir: &Path, user: OsUser) -> Result<()> {
    let groups = supplementary_groups(SUPERUSER);
    for ancestor in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let meta =
            fs::metadata(ancestor).map_err(io_err(format!("inspecting {}", ancestor.display())))?;
        let mode = meta.mode();
        // Like the kernel: the owner bits apply to the owner, else the group bits to members.
        let allowed = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid || groups.contains(&meta.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !allowed {
            return Err(EmbeddedPgError::Unreachable {
                dir: dir.to_path_buf(),
                reason: format!(
                    "{} (mode {:o}, owner uid {}) is not traversable by it",
                    ancestor.display(),
                    mode & 0o7777,
                    meta.uid()
                ),
            });
        }
    }
    Ok(())
}

/// Group ids listing `name` as a member in /etc/group (empty if unreadable).
fn supplementary_groups(name: &str) -> Vec<u32> {
    let Ok(group) = fs::read_to_string("/etc/group") else {
        return Vec::new();
    };
    group
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let (gid, members) = (fields.get(2)?, fields.get(3)?);
            members
                .split(',')
                .any(|member| member == name)
                .then(|| gid.parse().ok())
                .flatten()
        })
        .collect()
}

/// Rejects names PostgreSQL would truncate or that cannot be passed around safely.
fn validate_database_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_DATABASE_NAME_BYTES {
        Some("it is longer than 63 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(EmbeddedPgError::InvalidDatabaseName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for the URL path).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Quotes a string value for postgresql.conf.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Asks the OS for a currently free TCP port on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("finding a free port on 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(io_err("finding a free port on 127.0.0.1"))?;
    Ok(addr.port())
}

/// The part of the log file after `offset` bytes (empty if unreadable).
fn read_log_from(path: &Path, offset: u64) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A readable command line for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion, capturing its output; a non-zero exit is an error.
fn run(cmd: &mut Command) -> Result<Output> {
    let cmd_line = describe(cmd);
    tracing::debug!(cmd = %cmd_line, "running");
    let output = cmd
        .output()
        .map_err(io_err(format!("running {cmd_line}")))?;
    check_output(cmd_line, output)
}

/// Turns an unsuccessful [`Output`] into [`EmbeddedPgError::Command`].
fn check_output(cmd: String, output: Output) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    let mut details = String::new();
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        let text = text.trim();
        if !text.is_empty() {
            details.push('\n');
            details.push_str(text);
        }
    }
    Err(EmbeddedPgError::Command {
        cmd,
        status: output.status,
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Test result with `?` for any error.
    type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// A directory under /tmp, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        /// Creates a fresh, uniquely named directory under /tmp.
        fn new(tag: &str) -> io::Result<Self> {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = PathBuf::from(format!(
                "/tmp/refnet-embedded-pg-{tag}-{}-{nanos}",
                std::process::id()
            ));
            fs::create_dir(&path)?;
            Ok(Self(path))
        }
    }

    impl Drop for TempDir {
        /// Removes the directory, ignoring errors.
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Runs one SQL statement through psql against `url`, returning its unaligned output.
    fn psql(url: &str, sql: &str) -> TestResult<String> {
        let bins = Binaries::locate()?;
        let output = Command::new(&bins.psql)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "psql {url} -c {sql:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    #[test]
    fn starts_creates_database_stops_and_reuses_cluster() -> TestResult {
        let tmp = TempDir::new("reuse")?;
        let dir = tmp.0.join("postgres");

        let mut pg = EmbeddedPostgres::start(&dir, "refnet")?;
        let url = pg.url().to_owned();
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:{}/refnet", pg.port())
        );
        assert_eq!(psql(&url, "select 1")?, "1");
        assert_eq!(psql(&url, "select current_database()")?, "refnet");
        assert_eq!(psql(&url, "show max_connections")?, "300");
        psql(
            &url,
            "create table kept (x int); insert into kept values (42)",
        )?;
        pg.stop()?;
        pg.stop()?; // idempotent
        assert!(
            psql(&url, "select 1").is_err(),
            "server still answering after stop"
        );
        drop(pg);

        // Second start reuses the cluster: the data is still there.
        let mut pg = EmbeddedPostgres::start(&dir, "refnet")?;
        assert_eq!(psql(pg.url(), "select x from kept")?, "42");
        pg.stop()?;
        Ok(())
    }

    #[test]
    fn restarts_a_server_left_running_and_handles_odd_names() -> TestResult {
        let tmp = TempDir::new("stale")?;
        // A space in the path and a database name that needs quoting and URL encoding.
        let dir = tmp.0.join("pg data");
        let name = "my-db o'x";

        let first = EmbeddedPostgres::start(&dir, name)?;
        let first_port = first.port();
        assert!(first.url().ends_with("/my-db%20o%27x"), "{}", first.url());
        assert_eq!(psql(first.url(), "select current_database()")?, name);
        // Simulate a crashed process: the server keeps running, nobody stops it.
        std::mem::forget(first);

        let mut second = EmbeddedPostgres::start(&dir, name)?;
        assert_eq!(psql(second.url(), "select current_database()")?, name);
        if second.port() != first_port {
            let stale = format!("postgres://postgres@127.0.0.1:{first_port}/postgres");
            assert!(
                psql(&stale, "select 1").is_err(),
                "old server still running"
            );
        }
        second.stop()?;
        Ok(())
    }

    #[test]
    fn rejects_bad_database_names() {
        assert!(validate_database_name("").is_err());
        assert!(validate_database_name(&"x".repeat(64)).is_err());
        assert!(validate_database_name("a\nb").is_err());
        assert!(validate_database_name("refnet").is_ok());
    }

    #[test]
    fn helpers() {
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(conf_quote(r"/tmp/o'x\y"), r"'/tmp/o''x\\y'");
        assert_eq!(
            parse_passwd_line(
                "postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash",
                "postgres"
            ),
            Some(OsUser { uid: 101, gid: 104 })
        );
        assert_eq!(
            parse_passwd_line("postgresx:x:1:1::/:/bin/sh", "postgres"),
            None
        );
        assert_eq!(
            parse_effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"),
            Some(0)
        );
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("common"), None);
        assert_eq!(tail_lines("a\nb\nc", 2), "b\nc");
    }
}
