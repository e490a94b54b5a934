//! Work done on a steady tick by a task of the runtime: the log's flush and the two timeouts'
//! keepers.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// Runs `work` every `period`, for ever, the first time one `period` from now. Ticks are at
/// least `period` apart, even after a late one (a busy runtime), so a deadline judged on them
/// is never passed early.
pub async fn every(period: Duration, mut work: impl FnMut()) {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        work();
    }
}
