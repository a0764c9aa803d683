//! All SQL against the `refnet_jobs` schema lives here, one file per table.

pub(crate) mod bench;
pub(crate) mod jobs;
pub(crate) mod schedules;
pub(crate) mod tasks;

/// The NOTIFY channel workers listen on; payloads are queue names.
pub(crate) const CHANNEL: &str = "refnet_jobs";
