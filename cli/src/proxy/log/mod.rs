//! The proxy's log: one line per callback (and the library's refusals), as text or JSON, on
//! stderr in batches; the forwarded callbacks' lines written straight, the rest through
//! tracing, all in one layout. `RUST_LOG` filters as operators expect (default: info).

mod access;
mod batch;
mod text;

use tracing::Subscriber;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub use access::{Access, Forwarded};
pub use batch::Batch;

/// Installs the log for the whole process, its lines gathered in `batch` (whose `flush`
/// writes the last of them at exit).
pub fn init(batch: &Batch, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    subscriber(batch, json, filter).init();
}

/// The log's subscriber: its layout, its filter, its batch.
fn subscriber(batch: &Batch, json: bool, filter: EnvFilter) -> Box<dyn Subscriber + Send + Sync> {
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(batch.clone());
    if json {
        Box::new(log.json().finish())
    } else {
        Box::new(log.event_format(text::Text).finish())
    }
}
