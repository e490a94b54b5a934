//! The proxy's log: one line per callback (and the library's refusals), as text or JSON, on
//! stderr in batches. `RUST_LOG` filters as operators expect (default: info).

mod batch;
mod text;

pub use batch::Batch;

/// Installs the log for the whole process; what it returns writes the last lines at exit.
pub fn init(json: bool) -> Batch {
    let batch = Batch::default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(batch.clone());
    if json {
        log.json().init();
    } else {
        log.event_format(text::Text).init();
    }
    batch
}
