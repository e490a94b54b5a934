//! The in-memory replay store's cost per callback, current against previous, in one run.
//!
//! Per accepted callback the layer now asks the store three times (a lookup before the body,
//! a reservation, a settle); before, twice (reserve, complete). Both stores get distinct fresh
//! `jti`s, as production does, and never fill up here; making the `ReplayKey` (which now hashes
//! the key once) is measured with each.
//!
//! ```text
//! cargo bench --bench replay_store
//! ```

#[path = "common/mod.rs"]
mod common;
#[path = "common/previous_store.rs"]
mod previous_store;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use common::{criterion, median_ns};
use std::hint::black_box;

use criterion::{BatchSize, Criterion};
use previous_store::PreviousStore;
use vonage_secure_callbacks::replay::{
    Attempt, Outcome, ReplayKey, ReplayStore, Reservation, Retention,
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
    }
}

fn main() {
    let mut c = criterion();
    bench(&mut c);
    c.final_summary();
    report();
}
