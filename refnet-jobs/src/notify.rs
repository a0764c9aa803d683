//! The one LISTEN connection per worker process, fanning wake-ups out to queues.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::CHANNEL;

/// Listens on the jobs channel and wakes the fetch loop of the queue named in
/// each notification. After a lost connection it reconnects with backoff and
/// wakes every queue, since notifications sent meanwhile are gone.
pub(crate) async fn listen(
    pool: PgPool,
    wakers: HashMap<String, Arc<Notify>>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for new jobs; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        wakers.values().for_each(|w| w.notify_one());
        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = shutdown.cancelled() => return,
            };
            match received {
                Ok(Some(notification)) => {
                    if let Some(waker) = wakers.get(notification.payload()) {
                        waker.notify_one();
                    }
                }
                Ok(None) => {
                    // The connection dropped and was re-established: catch up.
                    wakers.values().for_each(|w| w.notify_one());
                }
                Err(error) => {
                    tracing::warn!(%error, "LISTEN connection lost; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
