//! Server CPU mode: the server in a child process, its process CPU clock read over HTTP before
//! and after each run, so that only the server's own work per request is counted.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustix::time::{clock_gettime, ClockId};
use sha2::{Digest, Sha256};
use vonage_secure_callbacks::dangerous::NoReplayStore;
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{Clock, SecureCallbackLayer, SystemClock};

use crate::client::{connect, post_signed};
use crate::routes::{body, naive, no_content, read_body, secrets, API_KEY, SECRET};
use crate::Options;

use vonage_callbacks_bench::{pin_to, reference};

/// The child's argument: serve, print the address, run until killed.
pub const SERVE_FLAG: &str = "--serve-for-cpu-measurement";

/// `read_layered` is `read` behind an identity tower layer: what axum charges any route layer
/// (the route boxed again, the request passed through one more service), the floor of every
/// middleware here.
/// `read_reference` reads the body and runs the irreducible verification in the handler: the
/// crypto's own cost in place, with whatever it does to the server's timing.
const ROUTES: [&str; 6] = [
    "read",
    "naive",
    "layer",
    "layer_no_replay",
    "read_layered",
    "read_reference",
];
const SIZES: [(&str, usize); 3] = [("256B", 256), ("2KiB", 2048), ("64KiB", 64 * 1024)];

fn cpu_ns(clock: ClockId) -> u64 {
    let t = clock_gettime(clock);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The child: the four routes on one port, on the multi-threaded runtime users run.
pub fn serve() {
    // The server on the first core, the client on the second; the runtime sizes itself to one.
    pin_to(0);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = Router::new()
            .route("/read", post(read_body))
            .route(
                "/naive",
                post(no_content).route_layer(middleware::from_fn(naive)),
            )
            // What a user runs: the defaults, the process-wide in-memory replay store.
            .route(
                "/layer",
                post(no_content).route_layer(SecureCallbackLayer::new(secrets())),
            )
            .route(
                "/layer_no_replay",
                post(no_content)
                    .route_layer(SecureCallbackLayer::new(secrets()).replay_store(NoReplayStore)),
            )
            .route(
                "/read_layered",
                post(read_body).route_layer(tower::util::MapRequestLayer::new(
                    |request: axum::extract::Request| request,
                )),
            )
            .route("/read_reference", post(read_reference))
            .route(
                "/cpu",
                get(|| async { cpu_ns(ClockId::ProcessCPUTime).to_string() }),
            );
        // The durable store in a file of the child's own: its thread's CPU is the server's too.
        let file = std::env::temp_dir().join(format!("load-cpu-{}.sqlite3", std::process::id()));
        let sqlite = vonage_secure_callbacks::replay::SqliteReplayStore::open(&file).unwrap();
        let app = app.route(
            "/layer_sqlite",
            post(no_content).route_layer(SecureCallbackLayer::new(secrets()).replay_store(sqlite)),
        );
        #[cfg(feature = "redis")]
        let app = match std::env::var("REDIS_URL") {
            Ok(url) => {
                let store = vonage_secure_callbacks::replay::RedisReplayStore::connect(&url)
                    .await
                    .unwrap();
                let layer = SecureCallbackLayer::new(secrets()).replay_store(store);
                app.route("/layer_redis", post(no_content).route_layer(layer))
            }
            Err(_) => app,
        };
        #[cfg(feature = "postgres")]
        let app = match std::env::var("DATABASE_URL") {
            Ok(url) => {
                // A pool as large as the client's connections: the store's own limit.
                let store = vonage_secure_callbacks::replay::PostgresReplayStore::builder(&url)
                    .max_connections(32)
                    .connect()
                    .await
                    .unwrap();
                let layer = SecureCallbackLayer::new(secrets()).replay_store(store);
                app.route("/layer_postgres", post(no_content).route_layer(layer))
            }
            Err(_) => app,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.unwrap();
    });
}

/// Reads the body and verifies it with the hand-written reference pipeline (no replay store).
async fn read_reference(headers: axum::http::HeaderMap, body: Bytes) -> StatusCode {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if reference::reference(token, &body, SECRET.as_bytes(), SystemClock.now()) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// The child server, killed when dropped (its SQLite store's files removed after it).
struct Server(Child, SocketAddr);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let file = std::env::temp_dir().join(format!("load-cpu-{}.sqlite3", self.0.id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
}

fn start_server() -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(SERVE_FLAG)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("the server's address")
        .parse()
        .unwrap();
    Server(child, addr)
}

/// The server's process CPU time, in ns.
async fn server_cpu(addr: SocketAddr) -> u64 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = http::Request::get("/cpu")
        .header("host", "127.0.0.1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    std::str::from_utf8(&body).unwrap().parse().unwrap()
}

/// What one run of one route measured.
#[derive(Clone, Copy, Default)]
struct Figures {
    /// Server CPU per request, µs.
    cpu_us: f64,
    requests_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Sends one request per authorization over `connections` connections; every answer must be
/// 204.
async fn measure(
    addr: SocketAddr,
    route: &str,
    auths: Vec<String>,
    body: Bytes,
    connections: usize,
) -> Figures {
    let n = auths.len();
    let auths = Arc::new(auths);
    let next = Arc::new(AtomicUsize::new(0));
    let before = server_cpu(addr).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (auths, body, next) = (auths.clone(), body.clone(), next.clone());
        let path = format!("/{route}");
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::new();
            while let Some(auth) = auths.get(next.fetch_add(1, Ordering::Relaxed)) {
                let took = post_signed(&mut sender, &path, auth, &body).await;
                latencies.push(took.as_secs_f64() * 1e6);
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = server_cpu(addr).await;
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    Figures {
        cpu_us: (after - before) as f64 / n as f64 / 1000.0,
        requests_per_s: n as f64 / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

/// CPU time (µs) of `f` on this thread, per call, over `n` calls.
fn thread_cpu_per_call(n: usize, mut f: impl FnMut() -> bool) -> f64 {
    let start = cpu_ns(ClockId::ThreadCPUTime);
    for _ in 0..n {
        assert!(std::hint::black_box(f()));
    }
    (cpu_ns(ClockId::ThreadCPUTime) - start) as f64 / n as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(options: &Options) {
    let requests = options.requests.unwrap_or(20_000);
    let rounds = options.rounds.unwrap_or(5);
    let server = start_server();
    let addr = server.1;
    let pinned = pin_to(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let signer = CallbackSigner::new(API_KEY, SECRET);
    let routes = routes();
    let chosen = |list: &Option<Vec<String>>, name: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|n| n == name))
    };
    println!(
        "server CPU per request (µs), server in its own process{}; {requests} requests per run, \
         {} connections, {rounds} rounds",
        if pinned {
            " on CPU 0, client on CPU 1"
        } else {
            ""
        },
        options.connections
    );
    // [size][route] -> per-round figures; and per size the reference and SHA-256 alone.
    let mut figures = vec![vec![Vec::<Figures>::new(); routes.len()]; SIZES.len()];
    let mut yardsticks = vec![(Vec::new(), Vec::new()); SIZES.len()];
    for round in 0..rounds {
        for (s, (size_name, len)) in SIZES.iter().enumerate() {
            if !chosen(&options.sizes, size_name) {
                continue;
            }
            let body = body(*len);
            let mut line = format!("round {} {size_name:>6}:", round + 1);
            // Each round starts with another route, so that no route always runs first.
            for r in (0..routes.len()).map(|i| (i + round) % routes.len()) {
                if !chosen(&options.routes, routes[r]) {
                    continue;
                }
                let auths: Vec<String> =
                    (0..requests).map(|_| signer.authorization(&body)).collect();
                let f = runtime.block_on(measure(
                    addr,
                    routes[r],
                    auths,
                    body.clone(),
                    options.connections,
                ));
                figures[s][r].push(f);
                line += &format!(" {}={:.2}", routes[r], f.cpu_us);
            }
            let token = signer.token(&body);
            let calls = if *len > 4096 { 500 } else { 5_000 };
            let now = SystemClock.now();
            let irreducible = thread_cpu_per_call(calls, || {
                reference::reference(&token, &body, SECRET.as_bytes(), now)
            });
            let sha = thread_cpu_per_call(calls, || {
                std::hint::black_box(Sha256::digest(&body));
                true
            });
            yardsticks[s].0.push(irreducible);
            yardsticks[s].1.push(sha);
            println!("{line} irreducible={irreducible:.2} sha256={sha:.2}");
        }
    }
    std::thread::sleep(Duration::from_millis(10));
    drop(server);

    let mut last = String::new();
    for (s, (size_name, _)) in SIZES.iter().enumerate() {
        if yardsticks[s].0.is_empty() {
            continue;
        }
        let irreducible = median(yardsticks[s].0.clone());
        let sha = median(yardsticks[s].1.clone());
        println!(
            "\n{size_name}, medians over rounds; extra = server CPU over `read`, the median of \
             the rounds' differences; irreducible {irreducible:.2} µs, SHA-256 of the body \
             {sha:.2} µs"
        );
        println!(
            "{:>16} {:>9} {:>9} {:>10} {:>9} {:>9}",
            "route", "cpu µs", "extra µs", "req/s", "p50 µs", "p99 µs"
        );
        let of = |r: usize, pick: fn(&Figures) -> f64| -> Option<f64> {
            let v: Vec<f64> = figures[s][r].iter().map(pick).collect();
            (!v.is_empty()).then(|| median(v))
        };
        let mut cpu = vec![None; routes.len()];
        for (r, route) in routes.iter().enumerate() {
            let Some(c) = of(r, |f| f.cpu_us) else {
                continue;
            };
            cpu[r] = Some(c);
            let extra = (!figures[s][0].is_empty()).then(|| {
                let d = figures[s][r].iter().zip(&figures[s][0]);
                median(d.map(|(a, b)| a.cpu_us - b.cpu_us).collect())
            });
            println!(
                "{route:>16} {c:>9.2} {:>9} {:>10.0} {:>9.0} {:>9.0}",
                extra.map_or("-".into(), |e| format!("{e:.2}")),
                of(r, |f| f.requests_per_s).unwrap_or_default(),
                of(r, |f| f.p50_us).unwrap_or_default(),
                of(r, |f| f.p99_us).unwrap_or_default(),
            );
        }
        if let (&"2KiB", [Some(read), Some(naive), Some(layer), Some(no_replay), ..]) =
            (size_name, cpu.as_slice())
        {
            last = format!(
                "server_cpu_us read={read:.2} layer={layer:.2} layer_no_replay={no_replay:.2} \
                 naive={naive:.2} irreducible={irreducible:.2}"
            );
        }
    }
    println!("{last}");
}

/// The routes served: the four compared, `read_layered`, `layer_sqlite` (the layer with the
/// SQLite replay store in a temporary file), with feature `redis` and `REDIS_URL` set,
/// `layer_redis` (the layer with the Redis replay store), and with feature `postgres` and
/// `DATABASE_URL` set, `layer_postgres`.
fn routes() -> Vec<&'static str> {
    let mut routes = ROUTES.to_vec();
    routes.push("layer_sqlite");
    if cfg!(feature = "redis") && std::env::var_os("REDIS_URL").is_some() {
        routes.push("layer_redis");
    }
    if cfg!(feature = "postgres") && std::env::var_os("DATABASE_URL").is_some() {
        routes.push("layer_postgres");
    }
    routes
}
