//! Log setup: stderr always (systemd and the lab capture it), plus ha.cf's `logfile`.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Install the global subscriber; `logfile` failures are reported and otherwise ignored so a
/// bad log path never keeps the cluster from running.
pub fn init(logfile: Option<&Path>, debug: bool) {
    let filter = EnvFilter::try_from_env("HAD_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if debug { "debug" } else { "info" }));
    let file = logfile.and_then(
        |p| match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Some(Arc::new(f)),
            Err(e) => {
                eprintln!(
                    "had: cannot open logfile {}: {e}; logging to stderr only",
                    p.display()
                );
                None
            }
        },
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false);
    match file {
        Some(f) => builder.with_writer(std::io::stderr.and(f)).init(),
        None => builder.with_writer(std::io::stderr).init(),
    }
}
