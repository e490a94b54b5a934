//! End-to-end load over loopback: a bare axum route, the same route behind
//! `SecureCallbackLayer`, and behind a naive `from_fn` middleware (to_bytes + jsonwebtoken +
//! sha2, request rebuilt), run in turn A/B/C/A/B/C with 2 KiB bodies over 32 connections. A
//! fourth route, bare but reading its body, shows what reading a body costs by itself.
//! Each request carries its own token, signed before the timed run.
//!
//! ```text
//! cargo run --release --example load -- --seconds 3
//! ```
//!
//! Options: `--seconds N` per run (default 3), `--requests N` at most per run (default
//! 200000), `--connections N` (default 32), `--rounds N` (default 3). The last line is
//! `layer/bare=X layer/naive=Y`: the medians over the rounds of each round's throughput ratio
//! (runs next to each other in time, so that the machine's drift cancels out).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{MemoryReplayStore, Secret, Secrets, SecureCallbackLayer};

const API_KEY: &str = "a1b2c3d4";
const SECRET: &str = "load-test-signature-secret-load-test-0001";
const BODY_LEN: usize = 2048;

struct Options {
    seconds: u64,
    requests: usize,
    connections: usize,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 3,
        requests: 200_000,
        connections: 32,
        rounds: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--seconds", Some(v)) => o.seconds = v,
            ("--requests", Some(v)) => o.requests = v as usize,
            ("--connections", Some(v)) => o.connections = v as usize,
            ("--rounds", Some(v)) => o.rounds = (v as usize).max(1),
            _ => panic!("usage: load [--seconds N] [--requests N] [--connections N] [--rounds N]"),
        }
    }
    o
}

async fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The bare route, but reading the body: what any body-consuming handler pays in hyper and axum.
async fn read_body(body: Bytes) -> StatusCode {
    drop(body);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, Clone)]
struct NaiveClaims {
    payload_hash: String,
    api_key: String,
}

/// The middleware people write by hand: read the body, `jsonwebtoken::decode`, hex-compare the
/// hash, rebuild the request.
async fn naive(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let Ok(data) = jsonwebtoken::decode::<NaiveClaims>(token, &key, &validation) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if hex != data.claims.payload_hash || data.claims.api_key != API_KEY {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(data.claims);
    next.run(request).await
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

struct Run {
    requests: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

/// Sends the pre-signed requests over `connections` connections until they run out or time is
/// up; every answer must be 204.
async fn run(addr: SocketAddr, auths: Arc<Vec<String>>, body: Bytes, o: &Options) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (auths, body, next) = (auths.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(auth) = auths.get(i) else { break };
                let request = http::Request::post("/cb")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .header("authorization", auth)
                    .body(Full::new(body.clone()))
                    .unwrap();
                let sent = Instant::now();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                response.into_body().collect().await.unwrap();
                assert_eq!(status, StatusCode::NO_CONTENT, "request {i} refused");
                latencies.push(sent.elapsed().as_micros() as u32);
            }
            latencies
        }));
    }
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.unwrap());
    }
    Run {
        requests: latencies_us.len(),
        elapsed: start.elapsed(),
        latencies_us,
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[tokio::main]
async fn main() {
    // The naive middleware uses jsonwebtoken's process-wide backend: name it, as a careful
    // user must when a build has both.
    #[cfg(feature = "aws_lc_rs")]
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
    );
    let o = options();
    let body = Bytes::from({
        let mut b = br#"{"sessionId":"2_MX4xMDB-fn4","event":"connectionCreated","pad":""#.to_vec();
        b.resize(BODY_LEN - 2, b'x');
        b.extend_from_slice(br#""}"#);
        b
    });
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let sign = |n: usize| -> Arc<Vec<String>> {
        Arc::new((0..n).map(|_| signer.authorization(&body)).collect())
    };

    let route = || Router::new().route("/cb", post(no_content));
    // Room for every token of every round, with slack for uneven shards.
    let store = MemoryReplayStore::with_capacity(2 * o.requests * o.rounds);
    let layer =
        SecureCallbackLayer::new(Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap()))
            .replay_store(store);
    let servers = [
        ("bare", serve(route()).await),
        ("layer", serve(route().layer(layer)).await),
        (
            "naive",
            serve(route().layer(middleware::from_fn(naive))).await,
        ),
        (
            "read",
            serve(Router::new().route("/cb", post(read_body))).await,
        ),
    ];

    println!(
        "loopback, {BODY_LEN} B bodies, {} connections, {} s or {} requests per run",
        o.connections, o.seconds, o.requests
    );
    let shared_auths = sign(o.requests);
    let mut totals: [(usize, Duration, Vec<u32>); 4] = Default::default();
    let mut ratios: Vec<[f64; 4]> = Vec::new();
    for round in 0..o.rounds {
        let mut rps = [0.0; 4];
        for (i, (name, addr)) in servers.iter().enumerate() {
            // The layer refuses replays: it gets tokens never sent before.
            let auths = if *name == "layer" {
                sign(o.requests)
            } else {
                shared_auths.clone()
            };
            let mut r = run(*addr, auths, body.clone(), &o).await;
            r.latencies_us.sort_unstable();
            rps[i] = r.requests as f64 / r.elapsed.as_secs_f64();
            println!(
                "round {} {name:>5}: {:>8.0} req/s  p50 {:>5} µs  p99 {:>6} µs  ({} requests)",
                round + 1,
                rps[i],
                percentile(&r.latencies_us, 0.50),
                percentile(&r.latencies_us, 0.99),
                r.requests
            );
            totals[i].0 += r.requests;
            totals[i].1 += r.elapsed;
            totals[i].2.extend(r.latencies_us);
        }
        ratios.push([
            rps[1] / rps[0],
            rps[1] / rps[2],
            rps[3] / rps[0],
            rps[1] / rps[3],
        ]);
    }
    for (i, (name, _)) in servers.iter().enumerate() {
        let (n, elapsed, lat) = &mut totals[i];
        lat.sort_unstable();
        println!(
            "all   {name:>5}: {:>8.0} req/s  p50 {:>5} µs  p99 {:>6} µs",
            *n as f64 / elapsed.as_secs_f64(),
            percentile(lat, 0.50),
            percentile(lat, 0.99)
        );
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = ratios.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Informational: the bare route that also reads its body, the floor for any verifier.
    println!("read/bare={:.3} layer/read={:.3}", median(2), median(3));
    println!("layer/bare={:.3} layer/naive={:.3}", median(0), median(1));
}
