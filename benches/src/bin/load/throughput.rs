//! Throughput mode: every route served in this process, 32 client connections from this process
//! too, runs in turn; ratios of requests per second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::middleware;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use vonage_secure_callbacks::replay::SqliteReplayStore;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{MemoryReplayStore, SecureCallbackLayer};

use crate::client::{connect, post_signed};
use crate::routes::{body, naive, no_content, read_body, secrets, API_KEY, SECRET};
use crate::Options;

const BODY_LEN: usize = 2048;

/// How many requests and seconds a run may take.
struct Limits {
    seconds: u64,
    requests: usize,
    connections: usize,
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
async fn run_one(addr: SocketAddr, auths: Arc<Vec<String>>, body: Bytes, o: &Limits) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(o.seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (auths, body, next) = (auths.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let Some(auth) = auths.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let took = post_signed(&mut sender, "/cb", auth, &body).await;
                latencies.push(took.as_micros() as u32);
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

pub fn run(options: &Options) {
    tokio::runtime::Runtime::new().unwrap().block_on(measure(
        Limits {
            seconds: options.seconds,
            requests: options.requests.unwrap_or(200_000),
            connections: options.connections,
        },
        options.rounds.unwrap_or(3),
    ));
}

async fn measure(o: Limits, rounds: usize) {
    let body = body(BODY_LEN);
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let sign = |n: usize| -> Arc<Vec<String>> {
        Arc::new((0..n).map(|_| signer.authorization(&body)).collect())
    };

    let route = || Router::new().route("/cb", post(no_content));
    // Room for every token of every round, with slack for uneven shards.
    let store = MemoryReplayStore::with_capacity(2 * o.requests * rounds);
    let layer = SecureCallbackLayer::new(secrets()).replay_store(store);
    // The durable store, on this machine's disk: every delivery fsynced before its 2xx.
    let file = std::env::temp_dir().join(format!("load-replay-{}.sqlite3", std::process::id()));
    let sqlite = SqliteReplayStore::open(&file).unwrap();
    let layer_sqlite = SecureCallbackLayer::new(secrets()).replay_store(sqlite);
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
        ("sqlite", serve(route().layer(layer_sqlite)).await),
    ];

    println!(
        "loopback, {BODY_LEN} B bodies, {} connections, {} s or {} requests per run",
        o.connections, o.seconds, o.requests
    );
    let shared_auths = sign(o.requests);
    let mut totals: [(usize, Duration, Vec<u32>); 5] = Default::default();
    let mut ratios: Vec<[f64; 5]> = Vec::new();
    for round in 0..rounds {
        let mut rps = [0.0; 5];
        for (i, (name, addr)) in servers.iter().enumerate() {
            // The layer refuses replays: it gets tokens never sent before.
            let auths = if *name == "layer" || *name == "sqlite" {
                sign(o.requests)
            } else {
                shared_auths.clone()
            };
            let mut r = run_one(*addr, auths, body.clone(), &o).await;
            r.latencies_us.sort_unstable();
            rps[i] = r.requests as f64 / r.elapsed.as_secs_f64();
            println!(
                "round {} {name:>6}: {:>8.0} req/s  p50 {:>5} µs  p99 {:>6} µs  ({} requests)",
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
            rps[4] / rps[1],
        ]);
    }
    for (i, (name, _)) in servers.iter().enumerate() {
        let (n, elapsed, lat) = &mut totals[i];
        lat.sort_unstable();
        println!(
            "all   {name:>6}: {:>8.0} req/s  p50 {:>5} µs  p99 {:>6} µs",
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
    println!(
        "sqlite/layer={:.3} (the durable store beside the memory store)",
        median(4)
    );
    println!("layer/bare={:.3} layer/naive={:.3}", median(0), median(1));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}
