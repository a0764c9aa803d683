//! Log set-up: human-readable or JSON lines on stderr, never fatal.

use std::io::Write;

/// Stderr that swallows write errors. A closed or broken stderr (a log pipe
/// whose reader went away) must not panic the runner mid-shutdown or stop it
/// from handling signals; the lines are simply lost.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Installs the global subscriber; `RUST_LOG` filters (default `info`).
pub(crate) fn init(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| Stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Prints a fatal error: a log line in JSON mode, else one plain line.
pub(crate) fn fatal(json: bool, message: &str) {
    if json {
        tracing::error!("{message}");
    } else {
        let _ = writeln!(std::io::stderr(), "refnet-jobs-runner: {message}");
    }
}
