//! The replay stores' cost per callback in one run: the in-memory store, current against
//! previous, and beside it the durable SQLite store (a file on this machine's disk, every
//! delivery fsynced), one callback at a time and 32 at once.
//!
//! Per accepted callback the layer now asks the store three times (a lookup before the body,
//! a reservation, a settle); before, twice (reserve, complete). Both stores get distinct fresh
//! `jti`s, as production does, and never fill up here; making the `ReplayKey` (which now hashes
//! the key once) is measured with each.
//!
//! ```text
//! cargo bench --bench replay_store
//! ```

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use std::hint::black_box;
use vonage_callbacks_bench::{criterion, median_ns};

use criterion::{BatchSize, Criterion};
use vonage_callbacks_bench::previous_store::{self, PreviousStore};
use vonage_secure_callbacks::replay::{
    Attempt, Outcome, ReplayKey, ReplayStore, Reservation, Retention, SqliteReplayStore,
};
use vonage_secure_callbacks::test_util::fresh_jti;
use vonage_secure_callbacks::MemoryReplayStore;

const GROUP: &str = "replay_store";
const NOW: u64 = 1_800_000_000;
const API_KEY: &str = "a1b2c3d4";

fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the memory store never waits"),
    }
}

fn retention() -> Retention {
    Retention::new(NOW + 86_400 + 300, NOW)
}

fn bench(c: &mut Criterion) {
    // Room for every key criterion will make, so that neither store evicts or refuses.
    let current = MemoryReplayStore::with_capacity(8_000_000);
    let previous = PreviousStore::with_capacity(8_000_000);
    let mut group = c.benchmark_group(GROUP);
    group.bench_function("previous", |b| {
        b.iter_batched(
            fresh_jti,
            |jti| {
                let key = ReplayKey::new(API_KEY, black_box(&jti));
                assert_eq!(
                    previous.try_reserve(black_box(&key)).unwrap(),
                    previous_store::Reservation::Reserved
                );
                previous.complete(&key, retention());
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("current", |b| {
        b.iter_batched(
            fresh_jti,
            |jti| {
                let key = ReplayKey::new(API_KEY, black_box(&jti));
                let attempt = Attempt::new(key, NOW, NOW, retention());
                let Ok(Reservation::Reserved(lease)) = now(current.reserve(attempt)) else {
                    unreachable!("fresh keys are reserved")
                };
                now(current.settle(&lease, Outcome::Delivered)).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("current_with_lookup", |b| {
        b.iter_batched(
            fresh_jti,
            |jti| {
                let key = ReplayKey::new(API_KEY, black_box(&jti));
                let attempt = Attempt::new(key, NOW, NOW, retention());
                now(current.lookup(&attempt)).unwrap();
                let Ok(Reservation::Reserved(lease)) = now(current.reserve(attempt)) else {
                    unreachable!("fresh keys are reserved")
                };
                now(current.settle(&lease, Outcome::Delivered)).unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    sqlite(c);
}

/// lookup, reserve and settle one fresh callback on the SQLite store.
async fn sqlite_callback(store: &SqliteReplayStore) {
    let key = ReplayKey::new(API_KEY, &fresh_jti());
    let attempt = Attempt::new(key, NOW, NOW, retention());
    store.lookup(&attempt).await.unwrap();
    let Ok(Reservation::Reserved(lease)) = store.reserve(attempt).await else {
        unreachable!("fresh keys are reserved")
    };
    store.settle(&lease, Outcome::Delivered).await.unwrap();
}

fn sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let file = std::env::temp_dir().join(format!("bench-replay-{}.sqlite3", std::process::id()));
    let store = SqliteReplayStore::open(&file).unwrap();
    let mut group = c.benchmark_group(GROUP);
    group.bench_function("sqlite_one_at_a_time", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    sqlite_callback(&store).await;
                }
                start.elapsed()
            })
        })
    });
    // 32 callbacks in flight at once, as over 32 connections: per callback.
    group.bench_function("sqlite_32_at_once", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let start = std::time::Instant::now();
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..32 {
                    let (store, next) = (store.clone(), next.clone());
                    tasks.spawn(async move {
                        while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < iters {
                            sqlite_callback(&store).await;
                        }
                    });
                }
                while tasks.join_next().await.is_some() {}
                start.elapsed()
            })
        })
    });
    group.finish();
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

fn report() {
    let m = |f| median_ns(GROUP, f, "");
    if let (Some(prev), Some(cur), Some(full)) =
        (m("previous"), m("current"), m("current_with_lookup"))
    {
        println!("\nin-memory replay store per callback: medians of this run");
        println!("  previous reserve+complete {prev:.0}ns");
        println!("  current reserve+settle {cur:.0}ns, with the pre-body lookup {full:.0}ns");
        println!(
            "  current/previous = {:.3}; with lookup/previous = {:.3}",
            cur / prev,
            full / prev
        );
        if let (Some(one), Some(many)) = (m("sqlite_one_at_a_time"), m("sqlite_32_at_once")) {
            println!("durable SQLite store per callback (lookup, reserve, settle; fsynced):");
            println!(
                "  one at a time {:.1}µs, 32 at once {:.1}µs",
                one / 1e3,
                many / 1e3
            );
            println!(
                "  sqlite one at a time/memory = {:.0}; sqlite 32 at once/memory = {:.0}",
                one / full,
                many / full
            );
        }
    }
}

fn main() {
    let mut c = criterion();
    bench(&mut c);
    c.final_summary();
    report();
}
