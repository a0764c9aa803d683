//! Background upkeep of the jobs table; one file per service.

mod prune;

pub use prune::{DEFAULT_PRUNE_BATCH, DEFAULT_RETENTION_DAYS, Pruned, prune};
