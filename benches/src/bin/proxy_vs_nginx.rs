//! The verifying proxy beside nginx `proxy_pass`, in one run: the same signed 2 KiB callbacks
//! over 32 connections to the same upstream, once through `vonage-callbacks proxy` (which
//! verifies and keeps the replay window) and once through nginx (which forwards and verifies
//! nothing). Measured: each proxy process's own CPU per callback (from `/proc/PID/stat`) and the
//! client's latency p50/p99. Rounds alternate the order; figures are medians of per-round ones.
//!
//! ```text
//! cargo build --release -p vonage-callbacks
//! cargo run --release -p vonage-callbacks-bench --bin proxy_vs_nginx -- --requests 20000 --rounds 3
//! ```
//!
//! nginx is installed from the distribution's packages (apt) when it is missing. Last line:
//! `proxy_vs_nginx cpu_us proxy=A nginx=B verify=C ratio=A/B p50_ms proxy=.. nginx=.. p99_ms ...`,
//! where `verify` is this run's in-process cost of verifying one callback: the aim is
//! `proxy <= nginx + verify`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use vonage_callbacks_bench::{body, connect, signer, verifier, API_KEY, NOW, SECRET};
use vonage_secure_callbacks::test_util::CallbackSigner;

const CONNECTIONS: usize = 32;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User plus system CPU time of process `pid`, from `/proc/PID/stat`.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    let ticks = rustix::param::clock_ticks_per_second();
    Duration::from_secs_f64((fields[0] + fields[1]) as f64 / ticks as f64)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx() -> PathBuf {
    let found = |p: &str| Path::new(p).exists().then(|| PathBuf::from(p));
    if let Some(path) = found("/usr/sbin/nginx") {
        return path;
    }
    println!("nginx missing: installing it from the distribution's packages");
    let status = Command::new("sh")
        .args(["-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null"])
        .status()
        .unwrap();
    assert!(status.success(), "apt-get install nginx failed");
    found("/usr/sbin/nginx").expect("nginx installed")
}

/// nginx, one process, forwarding to `upstream` over kept-alive connections.
fn start_nginx(dir: &Path, upstream: u16) -> (Killed, SocketAddr) {
    let port = free_port();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; error_log stderr warn; pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/f; uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    client_body_buffer_size 64k;
    keepalive_requests 1000000;
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}
  }}
}}
",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx())
        .args(["-p", dir.to_str().unwrap(), "-c", "nginx.conf"])
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    (Killed(child), format!("127.0.0.1:{port}").parse().unwrap())
}

fn start_proxy(dir: &Path, upstream: u16) -> (Killed, SocketAddr) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/vonage-callbacks");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p vonage-callbacks"
    );
    let port = free_port();
    let child = Command::new(bin)
        .current_dir(dir)
        .env("VONAGE_API_KEY", API_KEY)
        .env("VONAGE_SIGNATURE_SECRET", SECRET)
        .args(["proxy", "--replay-store", "memory"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &format!("http://127.0.0.1:{upstream}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Killed(child), format!("127.0.0.1:{port}").parse().unwrap())
}

async fn wait_for(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `requests` (authorization, body) over `CONNECTIONS` connections; per-request latency.
async fn drive(addr: SocketAddr, requests: Vec<(String, Bytes)>) -> Vec<Duration> {
    let per = requests.len().div_ceil(CONNECTIONS);
    let mut tasks = Vec::new();
    for chunk in requests.chunks(per) {
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::with_capacity(chunk.len());
            for (authorization, body) in chunk {
                let request = http::Request::post("/vonage/video")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .header("authorization", authorization)
                    .body(Full::new(body))
                    .unwrap();
                let sent = Instant::now();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                response.into_body().collect().await.unwrap();
                assert_eq!(status, 200, "a callback was not forwarded");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One round through `addr` (process `pid`): CPU µs per callback, p50 and p99 in ms.
async fn round(addr: SocketAddr, pid: u32, signer: &CallbackSigner, n: usize) -> (f64, f64, f64) {
    let payload = Bytes::from(body(2048));
    // Signed before the clock starts: every request its own jti.
    let requests: Vec<(String, Bytes)> = (0..n)
        .map(|_| (signer.authorization(&payload), payload.clone()))
        .collect();
    let before = cpu_of(pid);
    let mut latencies = drive(addr, requests).await;
    let cpu = cpu_of(pid) - before;
    latencies.sort();
    (
        cpu.as_secs_f64() * 1e6 / n as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    )
}

fn main() {
    let mut requests = 20_000;
    let mut rounds = 3;
    let args: Vec<String> = std::env::args().collect();
    for pair in args[1..].chunks(2) {
        match (pair[0].as_str(), pair.get(1).and_then(|v| v.parse().ok())) {
            ("--requests", Some(v)) => requests = v,
            ("--rounds", Some(v)) => rounds = v,
            _ => panic!("usage: proxy_vs_nginx [--requests N] [--rounds N]"),
        }
    }
    let dir = std::env::temp_dir().join(format!("proxy-vs-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The upstream both forward to: answers 200 at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap().port();
        let app = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move { axum::serve(listener, app).await });

        let (nginx, nginx_addr) = start_nginx(&dir, upstream);
        let (proxy, proxy_addr) = start_proxy(&dir, upstream);
        wait_for(nginx_addr).await;
        wait_for(proxy_addr).await;
        let signer = signer();
        // Warm both up.
        round(nginx_addr, nginx.0.id(), &signer, 2000).await;
        round(proxy_addr, proxy.0.id(), &signer, 2000).await;

        let mut figures: Vec<[f64; 6]> = Vec::new();
        for r in 0..rounds {
            let (p, n) = if r % 2 == 0 {
                let p = round(proxy_addr, proxy.0.id(), &signer, requests).await;
                (p, round(nginx_addr, nginx.0.id(), &signer, requests).await)
            } else {
                let n = round(nginx_addr, nginx.0.id(), &signer, requests).await;
                (round(proxy_addr, proxy.0.id(), &signer, requests).await, n)
            };
            println!(
                "round {r}: cpu_us proxy={:.1} nginx={:.1}  p50_ms proxy={:.3} nginx={:.3}  p99_ms proxy={:.3} nginx={:.3}",
                p.0, n.0, p.1, n.1, p.2, n.2
            );
            figures.push([p.0, n.0, p.1, n.1, p.2, n.2]);
        }
        let m = |i: usize| median(figures.iter().map(|f| f[i]).collect());

        // This run's cost of the verification itself, in process.
        let verifier = verifier();
        let payload = body(2048);
        let tokens: Vec<String> = (0..20_000)
            .map(|_| {
                signer.token_with(&payload, |c| {
                    c.insert("iat".into(), NOW.into());
                })
            })
            .collect();
        let started = Instant::now();
        for token in &tokens {
            assert!(verifier.verify_token(token, &payload).is_ok());
        }
        let verify = started.elapsed().as_secs_f64() * 1e6 / tokens.len() as f64;

        println!(
            "proxy_vs_nginx cpu_us proxy={:.1} nginx={:.1} verify={verify:.1} ratio={:.2} p50_ms proxy={:.3} nginx={:.3} p99_ms proxy={:.3} nginx={:.3}",
            m(0),
            m(1),
            m(0) / m(1),
            m(2),
            m(3),
            m(4),
            m(5)
        );
        drop((nginx, proxy));
    });
    let _ = std::fs::remove_dir_all(&dir);
}
