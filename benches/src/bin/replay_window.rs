//! Measures the default in-memory replay store: its memory when full, and the effective replay
//! window it gives at sustained callback rates (fake time, 26 h each), as BENCHMARKS.md and the
//! README report them.
//!
//! ```text
//! cargo run --release --example replay_window [rate ...]
//! ```

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use vonage_secure_callbacks::replay::{
    Attempt, Outcome, ReplayKey, ReplayStore, Reservation, Retention, DEFAULT_CAPACITY,
};
use vonage_secure_callbacks::{MemoryReplayStore, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_AGE};

const T0: u64 = 1_800_000_000;

fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the memory store never waits"),
    }
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Delivers callback `i`, issued and verified at `t`, through lookup, reserve and settle.
fn deliver(store: &MemoryReplayStore, i: u64, t: u64) -> bool {
    // As the verifier keeps it: through the last second the token is accepted, plus the skew.
    let retention = Retention::new(
        t + DEFAULT_MAX_AGE.as_secs() + DEFAULT_CLOCK_SKEW.as_secs() + 1,
        t,
    );
    let jti = format!("c5ba8f24-1a14-4c1e-93e6-{i:012x}");
    let attempt = Attempt::new(ReplayKey::new("a1b2c3d4", &jti), t, t, retention);
    let _ = now(store.lookup(&attempt));
    match now(store.reserve(attempt)) {
        Ok(Reservation::Reserved(lease)) => {
            let _ = now(store.settle(&lease, Outcome::Delivered));
            true
        }
        _ => false,
    }
}

fn main() {
    let rates: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rates = if rates.is_empty() {
        vec![1, 5, 9, 10, 25, 50, 100, 250]
    } else {
        rates
    };

    // Memory: one default store filled to capacity, all within the minimum window's reach.
    let before = rss();
    let full = MemoryReplayStore::new();
    for i in 0..DEFAULT_CAPACITY as u64 {
        deliver(&full, i, T0 + i / 1000);
    }
    let after = rss();
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "default store full: {} jtis, RSS grew {:.1} MiB = {:.1} bytes a jti",
            full.len(),
            (a - b) as f64 / (1 << 20) as f64,
            (a - b) as f64 / full.len() as f64
        );
    }
    drop(full);

    println!("\n| sustained rate | callbacks in 26 h | refused | effective window | entries held | time |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let seconds = 26 * 3600;
    for rate in rates {
        let store = MemoryReplayStore::new();
        let started = Instant::now();
        let mut refused = 0u64;
        let mut i = 0u64;
        for s in 0..seconds {
            for _ in 0..rate {
                if !deliver(&store, i, T0 + s) {
                    refused += 1;
                }
                i += 1;
            }
        }
        let window = match store.effective_window() {
            None => "the whole max age (24 h)".to_owned(),
            Some(w) => format!("{:.1} h", w.as_secs_f64() / 3600.0),
        };
        println!(
            "| {rate}/s | {i} | {refused} | {window} | {} | {:.1} s |",
            store.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
