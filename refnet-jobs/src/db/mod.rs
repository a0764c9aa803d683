//! All SQL against the `refnet_jobs` schema lives here, one file per table.

pub(crate) mod bench;
pub(crate) mod jobs;
pub(crate) mod queues;
pub(crate) mod schedules;
pub(crate) mod tasks;
pub(crate) mod workers;

/// The NOTIFY channel workers listen on; payloads are queue names.
pub(crate) const CHANNEL: &str = "refnet_jobs";
/// The NOTIFY channel revokes of running jobs go out on; payloads are job ids.
pub(crate) const CANCEL_CHANNEL: &str = "refnet_jobs_cancel";
