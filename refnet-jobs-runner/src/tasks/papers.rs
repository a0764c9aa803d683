//! Reads of RefNet's `papers` table shared by several tasks.

use std::collections::BTreeMap;

use refnet_jobs::TaskError;
use sqlx::PgPool;

/// Paper counts per status column (`crawl_status`, `pdf_status`,
/// `summary_status`) and value.
pub(crate) async fn status_counts(
    pool: &PgPool,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, TaskError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT 'crawl_status', crawl_status, count(*) FROM papers GROUP BY 2
         UNION ALL SELECT 'pdf_status', pdf_status, count(*) FROM papers GROUP BY 2
         UNION ALL SELECT 'summary_status', summary_status, count(*) FROM papers GROUP BY 2",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| TaskError::retryable(format!("cannot count papers: {e}")))?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (column, status, count) in rows {
        counts.entry(column).or_default().insert(status, count);
    }
    Ok(counts)
}
