//! Upkeep of the jobs table; one file per service.

mod prune;
mod purge;

pub use prune::{DEFAULT_PRUNE_BATCH, DEFAULT_RETENTION_DAYS, Pruned, prunable, prune};
pub use purge::{PurgeGroup, Purged, purge};
