//! `service`: the whole `SecureCallbackService` driven in-process (in-memory replay store on,
//! inner service answering 200 at once) beside the bare inner service and the verification
//! alone, at 2 KiB. The layer's own overhead is what remains:
//! `overhead = layer - bare - verify` (futures, buffering, extensions, replay bookkeeping).
//!
//! Every future here is ready at once, so it is polled once with a no-op waker: no runtime's
//! scheduling is measured.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion};
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service};
use vonage_callbacks_bench::*;
use vonage_secure_callbacks::{MemoryReplayStore, SecureCallbackLayer, VerifiedBody};

const GROUP: &str = "service";
const LEN: usize = 2048;

fn signed_request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/vonage/session")
        .header("authorization", format!("Bearer {}", token(body)))
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let body = Bytes::from(body(LEN));
    let store = MemoryReplayStore::with_capacity(4_000_000);
    let layer = SecureCallbackLayer::new(verifier()).replay_store(store);
    let mut service = layer.layer(Ok200);
    let verifier = verifier();

    let mut group = c.benchmark_group(GROUP);
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(1));
    group.bench_function("layer", |b| {
        b.iter_batched(
            || signed_request(&body),
            |req| {
                let res = now(service.call(req)).unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bare", |b| {
        b.iter_batched(
            || {
                let (parts, _) = signed_request(&body).into_parts();
                Request::from_parts(parts, VerifiedBody::from(body.clone()))
            },
            |req| now(Ok200.call(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("verify", |b| {
        b.iter_batched(
            || signed_request(&body).into_parts().0,
            |parts| {
                verifier
                    .verify(black_box(&parts.headers), black_box(&body))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn report() {
    let m = |f| median_ns(GROUP, f, "");
    if let (Some(layer), Some(bare), Some(verify)) = (m("layer"), m("bare"), m("verify")) {
        println!("\nservice at 2 KiB: medians of this run");
        println!("  layer {layer:.0}ns, bare inner {bare:.0}ns, verification {verify:.0}ns");
        println!(
            "  layer overhead = layer - bare - verify = {:.0}ns per callback",
            layer - bare - verify
        );
        println!("  layer/(bare+verify) = {:.3}", layer / (bare + verify));
    }
}

fn main() {
    let mut c = criterion();
    bench(&mut c);
    c.final_summary();
    report();
}
