//! `verify`: the crate's verification of one callback beside a hand-written irreducible
//! pipeline and the naive `jsonwebtoken::decode` + SHA-256 one, at four body sizes.
//!
//! `cargo bench --bench verify` ends with a table of ratios from this run's medians.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use vonage_callbacks_bench::*;

const GROUP: &str = "verify";

fn bench(c: &mut Criterion) {
    let verifier = verifier();
    let mut group = c.benchmark_group(GROUP);
    for (name, len) in SIZES {
        let body = body(len);
        let token = token(&body);
        assert!(verifier.verify_token(&token, &body).is_ok());
        assert!(reference(&token, &body, SECRET.as_bytes(), NOW));
        assert!(naive(&token, &body, SECRET.as_bytes()));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("crate", name), &(), |b, _| {
            b.iter(|| verifier.verify_token(black_box(&token), black_box(&body)))
        });
        group.bench_with_input(BenchmarkId::new("reference", name), &(), |b, _| {
            b.iter(|| reference(black_box(&token), black_box(&body), SECRET.as_bytes(), NOW))
        });
        group.bench_with_input(BenchmarkId::new("naive", name), &(), |b, _| {
            b.iter(|| naive(black_box(&token), black_box(&body), SECRET.as_bytes()))
        });
    }
    group.finish();
}

fn report() {
    println!("\nverify: medians of this run");
    println!(
        "{:>6}  {:>10}  {:>10}  {:>10}  {:>14}  {:>12}",
        "body", "crate", "reference", "naive", "crate/ref", "crate/naive"
    );
    for (name, _) in SIZES {
        let m = |f| median_ns(GROUP, f, name);
        if let (Some(c), Some(r), Some(n)) = (m("crate"), m("reference"), m("naive")) {
            println!(
                "{name:>6}  {:>8.0}ns  {:>8.0}ns  {:>8.0}ns  {:>14.3}  {:>12.3}",
                c,
                r,
                n,
                c / r,
                c / n
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
