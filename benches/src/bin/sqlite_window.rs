//! Measures the SQLite replay store on disk: the file's size (database and write-ahead log)
//! while callbacks arrive at a sustained rate for 26 h of fake time, so past one whole max age
//! (24 h + skew) into the steady state where rows expire as fast as they come. Prints the size
//! each simulated hour and, at the end, the bytes per delivered `jti` held, as the README
//! reports them.
//!
//! ```text
//! cargo run --release --example sqlite_window [rate ...]
//! ```
//!
//! Default rates: 10, 100 and 250 callbacks a second. Each callback is reserved and settled
//! delivered (the lookup changes nothing on disk), by 256 concurrent clients so that the
//! store's thread commits in batches as it does under load; a try the store refuses (503: too
//! slow, say) is retried after 100 ms, as Vonage would, and counted.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vonage_secure_callbacks::replay::{
    Attempt, Outcome, ReplayKey, ReplayStore, Reservation, Retention, SqliteReplayStore,
};
use vonage_secure_callbacks::{DEFAULT_CLOCK_SKEW, DEFAULT_MAX_AGE};

const T0: u64 = 1_800_000_000;
const HOURS: u64 = 26;
const CLIENTS: usize = 256;

fn size(file: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", file.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Delivers callback `i` at `t`, retrying as Vonage would when the store answers 503; returns
/// how many tries were refused.
async fn deliver(store: &SqliteReplayStore, i: u64, t: u64) -> u64 {
    // As the verifier keeps it: through the last second the token is accepted, plus the skew.
    let until = t + DEFAULT_MAX_AGE.as_secs() + DEFAULT_CLOCK_SKEW.as_secs() + 1;
    let jti = format!("c5ba8f24-1a14-4c1e-93e6-{i:012x}");
    let attempt = Attempt::new(
        ReplayKey::new("a1b2c3d4", &jti),
        t,
        t,
        Retention::new(until, t),
    );
    let mut refused = 0;
    loop {
        match store.reserve(attempt.clone()).await {
            Ok(Reservation::Reserved(lease)) => {
                // A settle that fails is retried by the store itself.
                let _ = store.settle(&lease, Outcome::Delivered).await;
                return refused;
            }
            Ok(Reservation::InFlight) | Err(_) => {
                refused += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("callback {i} at {t}: {other:?}"),
        }
    }
}

async fn measure(rate: u64) {
    let file = std::env::temp_dir().join(format!(
        "sqlite-window-{}-{rate}.sqlite3",
        std::process::id()
    ));
    let store = SqliteReplayStore::open(&file).unwrap();
    let total = rate * HOURS * 3600;
    let next = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (store, next, refused) = (store.clone(), next.clone(), refused.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let tries = deliver(&store, i, T0 + i / rate).await;
                refused.fetch_add(tries, Ordering::Relaxed);
            }
        }));
    }
    let retention = DEFAULT_MAX_AGE.as_secs() + DEFAULT_CLOCK_SKEW.as_secs() + 1;
    let mut hour = 0;
    let mut peak = 0;
    while hour < HOURS {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let done = next.load(Ordering::Relaxed).min(total);
        peak = peak.max(size(&file));
        if done >= (hour + 1) * 3600 * rate {
            hour += 1;
            println!(
                "rate {rate}/s  hour {hour:>2}: {:>8.1} MiB  ({:.0} s so far)",
                mib(size(&file)),
                started.elapsed().as_secs_f64()
            );
        }
    }
    for client in clients {
        client.await.unwrap();
    }
    let end = size(&file);
    let held = rate * retention;
    println!(
        "rate {rate}/s: after {HOURS} h {:.1} MiB (peak {:.1} MiB), {held} jtis held, {:.0} B per jti; {} callbacks in {:.0} s ({:.0}/s), {} tries refused (503) and retried",
        mib(end),
        mib(peak),
        end as f64 / held as f64,
        total,
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64(),
        refused.load(Ordering::Relaxed)
    );
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

#[tokio::main]
async fn main() {
    let rates: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rates = if rates.is_empty() {
        vec![10, 100, 250]
    } else {
        rates
    };
    for rate in rates {
        measure(rate).await;
    }
}
