//! The two job kinds of the workloads: `noop` and `lat`.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::{JobContext, Task, TaskError};

/// Does nothing and succeeds.
pub struct Noop;

impl Task for Noop {
    const NAME: &'static str = "bench.noop";
    type Args = serde_json::Value;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _args: serde_json::Value) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Arguments of [`Lat`]: the client's clock (ms since the epoch) right before the enqueue.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LatArgs {
    /// Milliseconds since the Unix epoch, as a float.
    pub t: f64,
}

/// Where [`Lat`] records each enqueue → start latency, in milliseconds.
pub enum LatencySink {
    /// In memory, read back by [`super::latency`].
    Memory(Mutex<Vec<f64>>),
    /// One float per line appended to a file (the peer harness reads it).
    File(Mutex<std::fs::File>),
}

impl LatencySink {
    /// An empty in-memory sink.
    pub fn memory() -> Self {
        LatencySink::Memory(Mutex::new(Vec::new()))
    }

    /// How many latencies were recorded (always 0 for a file sink).
    pub fn len(&self) -> usize {
        match self {
            LatencySink::Memory(values) => {
                values.lock().unwrap_or_else(PoisonError::into_inner).len()
            }
            LatencySink::File(_) => 0,
        }
    }

    /// True when nothing was recorded in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recorded latencies (empty for a file sink).
    pub fn values(&self) -> Vec<f64> {
        match self {
            LatencySink::Memory(values) => values
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            LatencySink::File(_) => Vec::new(),
        }
    }

    fn record(&self, ms: f64) -> Result<(), TaskError> {
        match self {
            LatencySink::Memory(values) => {
                values
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(ms);
                Ok(())
            }
            LatencySink::File(file) => {
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                writeln!(file, "{ms:.3}")?;
                Ok(())
            }
        }
    }
}

/// Records how long ago its job was enqueued, by the client's clock in its arguments.
pub struct Lat {
    sink: Arc<LatencySink>,
}

impl Lat {
    /// A task recording into `sink`.
    pub fn new(sink: Arc<LatencySink>) -> Self {
        Lat { sink }
    }
}

impl Task for Lat {
    const NAME: &'static str = "bench.lat";
    type Args = LatArgs;
    type Output = ();
    async fn run(&self, _ctx: JobContext, args: LatArgs) -> Result<(), TaskError> {
        self.sink.record(epoch_ms() - args.t)
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
