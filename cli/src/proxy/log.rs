//! The proxy's log: one line per callback (and the library's refusals), as text or JSON, on
//! stderr. tracing-subscriber lays the lines out; tracing-appender's writer hands them to a
//! thread of its own, so that no runtime thread ever waits on stderr (a full pipe drops lines
//! rather than stalling callbacks). `RUST_LOG` filters as operators expect (default: info).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Installs the log for the whole process; the lines still queued are written when the guard
/// is dropped.
pub fn init(json: bool) -> WorkerGuard {
    // Buffered: the writer's thread flushes once it has written every line queued, so a burst
    // of callbacks costs a write per burst, not per line.
    let (writer, guard) =
        tracing_appender::non_blocking(std::io::BufWriter::new(std::io::stderr()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(writer);
    // Another subscriber already installed (a test's) keeps its place.
    let _ = if json {
        log.json().try_init()
    } else {
        log.try_init()
    };
    guard
}
