//! Diagnostic tasks, registered only when `[workers] diagnostic_tasks = true`:
//! smoke tests of a deployment and the subjects of the failure tests (a
//! runner killed mid-job, time limits, revoke, large payloads).

use std::time::Duration;

use refnet_jobs::{JobContext, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

/// `refnet.diag.sleep`'s arguments.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SleepArgs {
    /// How long to sleep.
    pub(crate) secs: f64,
    /// Keep sleeping when asked to stop (a task that ignores its soft limit or a revoke).
    #[serde(default)]
    pub(crate) ignore_cancel: bool,
}

/// What `refnet.diag.sleep` reports.
#[derive(Debug, Serialize)]
pub(crate) struct Slept {
    attempt: i32,
    /// True when it stopped early because it was asked to.
    cancelled: bool,
}

/// Sleeps, watching its cancel token unless told not to.
pub(crate) struct DiagSleep;

impl Task for DiagSleep {
    const NAME: &'static str = "refnet.diag.sleep";
    type Args = SleepArgs;
    type Output = Slept;

    fn options() -> TaskOptions {
        TaskOptions {
            max_attempts: 3,
            aliases: vec!["diag-sleep".into()],
            description: "diagnostic: sleep `secs` seconds".into(),
            retry: refnet_jobs::RetryPolicy::exponential(
                Duration::from_millis(200),
                Duration::from_secs(2),
            ),
            ..TaskOptions::default()
        }
    }

    fn validate(args: &SleepArgs) -> Result<(), String> {
        Duration::try_from_secs_f64(args.secs)
            .map(|_| ())
            .map_err(|_| format!("secs must be a number of seconds, got {}", args.secs))
    }

    async fn run(&self, ctx: JobContext, args: SleepArgs) -> Result<Slept, TaskError> {
        let nap = tokio::time::sleep(Duration::from_secs_f64(args.secs));
        if args.ignore_cancel {
            nap.await;
            return Ok(Slept {
                attempt: ctx.attempt,
                cancelled: false,
            });
        }
        tokio::select! {
            _ = nap => Ok(Slept { attempt: ctx.attempt, cancelled: false }),
            _ = ctx.cancel.cancelled() => Err(TaskError::retryable("stopped early: asked to cancel")),
        }
    }
}

/// What `refnet.diag.echo_len` reports about its arguments.
#[derive(Debug, Serialize)]
pub(crate) struct Lengths {
    /// Bytes of the `payload` string (UTF-8).
    bytes: usize,
    /// Characters of it.
    chars: usize,
}

/// `refnet.diag.echo_len`'s arguments.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EchoArgs {
    pub(crate) payload: String,
}

/// Reports the length of the payload it was given (large-payload checks).
pub(crate) struct DiagEchoLen;

impl Task for DiagEchoLen {
    const NAME: &'static str = "refnet.diag.echo_len";
    type Args = EchoArgs;
    type Output = Lengths;

    fn options() -> TaskOptions {
        TaskOptions {
            aliases: vec!["echo_len".into(), "diag-echo-len".into()],
            description: "diagnostic: report the byte and character length of `payload`".into(),
            ..TaskOptions::default()
        }
    }

    async fn run(&self, _ctx: JobContext, args: EchoArgs) -> Result<Lengths, TaskError> {
        Ok(Lengths {
            bytes: args.payload.len(),
            chars: args.payload.chars().count(),
        })
    }
}
