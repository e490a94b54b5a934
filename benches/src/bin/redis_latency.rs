//! Added latency of the Redis replay store over the in-memory one, per callback, on loopback.
//!
//! ```text
//! redis-server --port 6390 --save '' &
//! REDIS_URL=redis://127.0.0.1:6390/ cargo run --release --features redis --example redis_latency
//! ```
//!
//! Callbacks (2 KiB, each freshly signed before the timed run) go one at a time through the
//! whole service, alternating between a layer on the memory store and one on Redis, so both
//! see the same machine. Bounded: `--callbacks N` each (default 20000) or `--seconds N` in all
//! (default 30), whichever ends first.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use tower::{Layer, ServiceExt};
use vonage_secure_callbacks::replay::{RedisReplayStore, ReplayStore};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{
    MemoryReplayStore, Secret, Secrets, SecureCallbackLayer, VerifiedBody,
};

const API_KEY: &str = "a1b2c3d4";
const SECRET: &str = "redis-latency-signature-secret-0001";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

async fn one<R: ReplayStore>(layer: &SecureCallbackLayer<R>, auth: &str, body: &Bytes) -> Duration {
    let inner = tower::service_fn(|_: Request<VerifiedBody>| async {
        Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
    });
    let request = Request::post("/")
        .header("authorization", auth)
        .body(Full::new(body.clone()))
        .unwrap();
    let started = Instant::now();
    let response = layer.layer(inner).oneshot(request).await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    took
}

fn summary(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    println!(
        "{name:>7}: median {:>8.1} µs  p99 {:>8.1} µs  ({} callbacks)",
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6,
        v.len()
    );
    (p(0.5), p(0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("REDIS_URL").map_err(|_| "set REDIS_URL, e.g. redis://127.0.0.1:6390/")?;
    let callbacks = arg("--callbacks", 20_000) as usize;
    let deadline = Instant::now() + Duration::from_secs(arg("--seconds", 30));

    let body = Bytes::from(vec![b'x'; 2048]);
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let auths: Vec<String> = (0..2 * callbacks)
        .map(|_| signer.authorization(&body))
        .collect();
    let secrets = Secrets::new().project(API_KEY, Secret::new(SECRET)?);
    let memory = SecureCallbackLayer::new(secrets.clone())
        .replay_store(MemoryReplayStore::with_capacity(4 * callbacks));
    let prefix = format!("bench-{}", vonage_secure_callbacks::test_util::fresh_jti());
    let redis = SecureCallbackLayer::new(secrets).replay_store(
        RedisReplayStore::builder(&url)
            .prefix(prefix)
            .connect()
            .await?,
    );

    let (mut m, mut r) = (Vec::new(), Vec::new());
    for pair in auths.chunks(2) {
        if Instant::now() > deadline {
            break;
        }
        m.push(one(&memory, &pair[0], &body).await);
        r.push(one(&redis, &pair[1], &body).await);
    }
    let (m50, m99) = summary("memory", m);
    let (r50, r99) = summary("redis", r);
    println!(
        "added by Redis: median {:.1} µs, p99 {:.1} µs per callback",
        (r50.as_secs_f64() - m50.as_secs_f64()) * 1e6,
        (r99.as_secs_f64() - m99.as_secs_f64()) * 1e6
    );
    Ok(())
}
