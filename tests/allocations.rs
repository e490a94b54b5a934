//! Heap allocations per accepted callback, counted by a counting global allocator (dhat), with
//! the whole service driven in-process: verification, buffering, replay bookkeeping, the inner
//! call. Allocation counts are deterministic, unlike times, so they can be asserted.
//!
//! `cargo test --test allocations -- --nocapture` prints the count.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use tower::{Layer, Service, ServiceExt};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{
    CallbackVerifier, FixedClock, MemoryReplayStore, Secret, Secrets, SecureCallbackLayer,
    VerifiedBody,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SECRET: &str = "allocation-test-secret-allocation-test";
const NOW: u64 = 1_800_000_000;
const CALLBACKS: u64 = 200;

/// Answers 200 at once, after checking that the body it was handed is the very buffer the
/// client sent (not a copy).
#[derive(Clone)]
struct SameBuffer {
    sent: Bytes,
}

impl Service<Request<VerifiedBody>> for SameBuffer {
    type Response = Response<Empty<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<VerifiedBody>) -> Self::Future {
        let got = req.into_body().into_bytes();
        assert_eq!(got.as_ptr(), self.sent.as_ptr(), "the body was copied");
        std::future::ready(Ok(Response::new(Empty::new())))
    }
}

async fn call<S>(service: &mut S, request: Request<Full<Bytes>>) -> S::Response
where
    S: Service<Request<Full<Bytes>>, Error = Infallible>,
{
    service.ready().await.unwrap().call(request).await.unwrap()
}

#[test]
fn allocations_per_accepted_2kib_callback() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let body = Bytes::from(vec![b'x'; 2048]);
    let signer = CallbackSigner::new("k", SECRET);
    let authorizations: Vec<String> = (0..=CALLBACKS)
        .map(|_| {
            format!(
                "Bearer {}",
                signer.token_with(&body, |c| {
                    c.insert("iat".into(), NOW.into());
                })
            )
        })
        .collect();
    let clock = FixedClock::new(NOW);
    let store = MemoryReplayStore::with_capacity(1024);
    let verifier = CallbackVerifier::new(Secrets::new().project("k", Secret::new(SECRET).unwrap()))
        .clock(clock);
    let layer = SecureCallbackLayer::new(verifier).replay_store(store.clone());
    let mut service = layer.layer(SameBuffer { sent: body.clone() });
    let requests: Vec<_> = authorizations
        .iter()
        .map(|auth| {
            Request::post("/")
                .header("authorization", auth)
                .body(Full::new(body.clone()))
                .unwrap()
        })
        .collect();

    runtime.block_on(async {
        let mut requests = requests.into_iter();
        // One warm-up callback: lazily initialised state (the store's map) is not per-callback.
        let first = requests.next().unwrap();
        let res = call(&mut service, first).await;
        assert_eq!(res.status(), 200);

        let before = dhat::HeapStats::get().total_blocks;
        for request in requests {
            let res = call(&mut service, request).await;
            assert_eq!(res.status(), 200);
        }
        let total = dhat::HeapStats::get().total_blocks - before;
        let per_callback = total as f64 / CALLBACKS as f64;
        println!("allocations per accepted 2 KiB callback: {per_callback:.2}");
        // Feature `metrics`: the facade builds one label list per metric recorded (three).
        let metrics = if cfg!(feature = "metrics") { 3.0 } else { 0.0 };
        assert!(
            per_callback < 5.5 + metrics,
            "{per_callback} allocations per callback"
        );
    });
    assert_eq!(store.len() as u64, CALLBACKS + 1);
}
