//! Statements on `refnet_jobs.tasks`, the task catalogue.

use sqlx::PgExecutor;

use crate::Result;
use crate::catalogue::TaskInfo;

/// Records (or refreshes) one task a worker can run.
pub(crate) async fn upsert<'e>(executor: impl PgExecutor<'e>, info: &TaskInfo) -> Result<()> {
    sqlx::query(
        "INSERT INTO refnet_jobs.tasks (name, queue, aliases, max_attempts, description)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE
         SET queue = EXCLUDED.queue, aliases = EXCLUDED.aliases,
             max_attempts = EXCLUDED.max_attempts, description = EXCLUDED.description,
             last_seen_at = now()",
    )
    .bind(&info.name)
    .bind(&info.queue)
    .bind(&info.aliases)
    .bind(info.max_attempts)
    .bind(&info.description)
    .execute(executor)
    .await?;
    Ok(())
}

/// Every catalogued task, by name.
pub(crate) async fn list<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<TaskInfo>> {
    let rows: Vec<(String, String, Vec<String>, i32, String)> = sqlx::query_as(
        "SELECT name, queue, aliases, max_attempts, description
         FROM refnet_jobs.tasks ORDER BY name",
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, queue, aliases, max_attempts, description)| TaskInfo {
                name,
                queue,
                aliases,
                max_attempts,
                description,
            },
        )
        .collect())
}

/// Removes tasks from the catalogue.
pub(crate) async fn remove<'e>(executor: impl PgExecutor<'e>, names: &[&str]) -> Result<()> {
    sqlx::query("DELETE FROM refnet_jobs.tasks WHERE name = ANY($1)")
        .bind(names)
        .execute(executor)
        .await?;
    Ok(())
}
