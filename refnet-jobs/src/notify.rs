//! The one LISTEN connection per worker, fanning wake-ups out to queues and
//! revokes out to the jobs they name.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use uuid::Uuid;

use crate::db::{CANCEL_CHANNEL, CHANNEL};

/// Called with the id of each job revoked while running, and whether the
/// revoke asks to drop it at once (`terminate`).
pub(crate) type OnRevoke = Arc<dyn Fn(Uuid, bool) + Send + Sync>;

/// Listens on the jobs channel and wakes the fetch loop of the queue named in
/// each notification, and on the cancel channel, handing each revoked id to
/// `on_revoke`. After a lost connection it reconnects with backoff and wakes
/// every queue, since notifications sent meanwhile are gone (heartbeats pick
/// up the revokes missed).
pub(crate) async fn listen(
    pool: PgPool,
    wakers: HashMap<String, Arc<Notify>>,
    on_revoke: OnRevoke,
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
                Ok(Some(notification)) if notification.channel() == CANCEL_CHANNEL => {
                    // "<id>" or "<id> terminate".
                    let mut words = notification.payload().split(' ');
                    if let Some(Ok(id)) = words.next().map(str::parse::<Uuid>) {
                        on_revoke(id, words.next() == Some("terminate"));
                    }
                }
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
    listener.listen_all([CHANNEL, CANCEL_CHANNEL]).await?;
    Ok(listener)
}
