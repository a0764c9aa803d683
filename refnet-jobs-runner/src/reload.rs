//! Config reload without a restart: on SIGHUP, or when the file changes (its
//! modification time is checked every few seconds), the schedules are read
//! again and stored — new and changed ones updated, removed ones disabled. A
//! file that does not load is logged and ignored: the schedules stay as they
//! were. Worker settings (`[workers]`) take effect at the next start.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use refnet_jobs::{CancellationToken, Registry};
use sqlx::PgPool;

use crate::config::Config;

/// How often the file's modification time is checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Watches `path` until `shutdown` fires.
pub(crate) async fn watch(
    path: PathBuf,
    mut current: Config,
    pool: PgPool,
    registry: Registry,
    shutdown: CancellationToken,
) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| tracing::warn!(%error, "cannot watch SIGHUP; config changes are still picked up"))
        .ok();
    let mut seen = modified(&path);
    loop {
        let why = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = async { hangup.as_mut().expect("guarded").recv().await }, if hangup.is_some() => "SIGHUP",
            _ = tokio::time::sleep(CHECK_EVERY) => {
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                "the file changed"
            }
        };
        let loaded = match Config::load(&path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "config not reloaded ({why}); the schedules stay as they were");
                continue;
            }
        };
        if loaded.environment != current.environment {
            tracing::warn!(old = %current.environment, new = %loaded.environment,
                "the environment changed; gating follows the new one");
        }
        match crate::apply_schedules(&pool, &loaded, &registry).await {
            Ok(()) => {
                tracing::info!(
                    schedules = loaded.schedules.len(),
                    "config reloaded ({why})"
                );
                if loaded.workers != current.workers {
                    tracing::warn!(
                        "[workers] changed: those settings take effect at the next start"
                    );
                }
                current = loaded;
            }
            Err(error) => {
                tracing::error!(%error, "config not reloaded ({why}); the schedules stay as they were")
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
