//! The log lines go to stderr in batches: gathered in memory and written once [`LIMIT`] bytes
//! have gathered or [`PERIOD`] has passed, so that a busy proxy makes one write for many
//! callbacks rather than one each (as nginx's `access_log ... buffer=`). A line is on stderr at
//! most [`PERIOD`] after it was logged, and what is gathered is written before the proxy exits.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// What may gather before it is written.
pub const LIMIT: usize = 32 * 1024;
/// How long a line may wait.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The lines logged and not yet written; each clone shares them.
#[derive(Clone, Default)]
pub struct Batch(Arc<Mutex<Vec<u8>>>);

impl Batch {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // Nothing panics while the lock is held; a poisoned one still holds whole lines.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds one line, built by `line` straight into the batch; one that fails to build is
    /// taken out again whole.
    pub fn add(&self, line: impl FnOnce(&mut Vec<u8>) -> fmt::Result) {
        let mut lines = self.lock();
        let before = lines.len();
        if line(&mut lines).is_err() {
            lines.truncate(before);
        }
        if lines.len() >= LIMIT {
            write_out(&mut lines);
        }
    }

    /// What has gathered and is not yet written.
    #[cfg(test)]
    pub fn gathered(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// Writes what has gathered.
    pub fn flush(&self) {
        write_out(&mut self.lock());
    }

    /// Writes what has gathered every [`PERIOD`], for ever (a task of the runtime).
    pub async fn flush_every_period(self) {
        crate::proxy::tick::every(PERIOD, || self.flush()).await;
    }
}

/// Writes `lines` to stderr and empties them. A log that cannot be written (stderr closed, a
/// full disk) must not stop the proxy: the lines are dropped.
fn write_out(lines: &mut Vec<u8>) {
    if !lines.is_empty() {
        let _ = io::stderr().write_all(lines);
        lines.clear();
    }
}

impl<'a> MakeWriter<'a> for Batch {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line(self)
    }
}

/// One event's line, added to the batch (tracing-subscriber hands it over whole).
pub struct Line<'a>(&'a Batch);

impl Write for Line<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.add(|lines| {
            lines.extend_from_slice(line);
            Ok(())
        });
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
