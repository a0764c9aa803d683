//! The crate's error type.

/// Everything that can go wrong in a refnet-jobs call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused a statement or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database could not be reached at all.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// Host, port and database tried (never the password).
        target: String,
        /// Why the connection failed.
        reason: String,
    },
    /// Applying the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A cron expression could not be parsed or never matches.
    #[error("invalid cron expression {expr:?}: {reason}")]
    InvalidCron {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A time zone name is not in the IANA database.
    #[error("unknown time zone {0:?} (use an IANA name such as Asia/Tokyo or UTC)")]
    UnknownTimeZone(String),
    /// A task name is not known to any worker.
    #[error("unknown task {name:?}; known tasks: {}", if known.is_empty() { "none registered yet (start a runner or a worker first)".to_string() } else { known.join(", ") })]
    UnknownTask {
        /// The name asked for.
        name: String,
        /// The names (and aliases) that exist.
        known: Vec<String>,
    },
    /// A job's arguments could not be encoded or decoded as JSON.
    #[error("invalid job arguments: {0}")]
    InvalidArgs(String),
    /// A job option is out of range (for example `max_attempts = 0`).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A schedule definition is invalid.
    #[error("schedule {name:?}: {reason}")]
    InvalidSchedule {
        /// The schedule's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The live job holding this unique key finished while the enqueue looked
    /// it up; nothing was inserted, and enqueueing again will insert the job.
    #[error(
        "the job holding unique key {0:?} finished during the enqueue; nothing was inserted, try again"
    )]
    UniqueKeyRace(String),
    /// No job or schedule with this id or name exists.
    #[error("{0} not found")]
    NotFound(String),
    /// The job or schedule is not in a state that allows this (retrying a
    /// completed job, resuming a schedule that is not paused).
    #[error("{0}")]
    WrongState(String),
    /// The job has finished, so there is nothing left to revoke.
    #[error("job {id} already finished ({state}); nothing to revoke")]
    AlreadyFinished {
        /// The job.
        id: uuid::Uuid,
        /// Its final state.
        state: crate::JobState,
    },
    /// A benchmark could not complete (a worker crashed, jobs never ran).
    #[error("benchmark failed: {0}")]
    Bench(String),
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
