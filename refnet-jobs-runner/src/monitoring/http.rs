//! A small HTTP/1.1 endpoint for probes and scrapers: `GET /healthz` (200
//! when the database answers within 2 s, else 503) and `GET /metrics`
//! (Prometheus text). Two fixed pages do not need a web framework; anything
//! else is a 404, and a request must arrive within 5 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use refnet_jobs::CancellationToken;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::TaskCounters;

/// Requests answered at once; more connections are closed at once.
const MAX_REQUESTS: usize = 4;

/// Serves `address` until `shutdown` fires.
///
/// Fails when the address cannot be bound.
pub(crate) async fn serve(
    address: SocketAddr,
    pool: PgPool,
    counters: Arc<TaskCounters>,
    env: Arc<crate::tasks::TaskEnv>,
    shutdown: CancellationToken,
) -> std::io::Result<impl Future<Output = ()>> {
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "health and metrics at /healthz and /metrics");
    let busy = Arc::new(tokio::sync::Semaphore::new(MAX_REQUESTS));
    Ok(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            // A few requests at a time: probes and scrapers, not a crowd,
            // must never take the pool's connections from the workers.
            let Ok(permit) = busy.clone().try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let (pool, counters, env) = (pool.clone(), counters.clone(), env.clone());
            tokio::spawn(async move {
                if let Err(error) = answer(stream, &pool, &counters, &env).await {
                    tracing::debug!(%error, "metrics endpoint: request failed");
                }
                drop(permit);
            });
        }
    })
}

async fn answer(
    mut stream: TcpStream,
    pool: &PgPool,
    counters: &TaskCounters,
    env: &crate::tasks::TaskEnv,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Read the head only (no body is expected), at most 8 KiB, within 5 s.
    let head = tokio::time::timeout(Duration::from_secs(5), async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if head.is_err() {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&request);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/healthz") => {
            let ping = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool),
            )
            .await;
            match ping {
                Ok(Ok(_)) => (
                    "200 OK",
                    "text/plain",
                    "ok: process up, database reachable\n".to_string(),
                ),
                Ok(Err(error)) => {
                    // Details in the log, not on a page anyone can read.
                    tracing::warn!(%error, "healthz: database unreachable");
                    (
                        "503 Service Unavailable",
                        "text/plain",
                        "database unreachable\n".to_string(),
                    )
                }
                Err(_) => (
                    "503 Service Unavailable",
                    "text/plain",
                    "database did not answer within 2 s\n".into(),
                ),
            }
        }
        ("GET" | "HEAD", "/metrics") => match tokio::time::timeout(
            Duration::from_secs(5),
            super::metrics::render(pool, counters, env),
        )
        .await
        {
            Ok(Ok(text)) => ("200 OK", "text/plain; version=0.0.4", text),
            Ok(Err(error)) => {
                tracing::warn!(%error, "metrics: cannot read the database");
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "cannot read metrics\n".to_string(),
                )
            }
            Err(_) => (
                "503 Service Unavailable",
                "text/plain",
                "metrics timed out\n".to_string(),
            ),
        },
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain",
            "try /healthz or /metrics\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let length = body.len();
    let body = if method == "HEAD" {
        String::new()
    } else {
        body
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n{body}"
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
