//! The verifying proxy beside nginx `proxy_pass`, in one run: the same signed 2 KiB callbacks
//! over 32 connections to the same upstream, through `vonage-callbacks proxy` (which verifies,
//! keeps the replay window and logs a line per callback to a file), through nginx with no access
//! log (a plain hop, verifying nothing), through nginx logging each request to a file (its
//! default, the like-for-like hop), through the least a hop built on hyper can do
//! (`vonage_callbacks_bench::hyper_hop`, this binary in a process of its own: the floor under
//! the proxy's own work), and through that hop verifying each callback in place (the
//! verification as a proxy must do it, and nothing else of the proxy's). Measured: each
//! process's own CPU per callback (the scheduler's count, `/proc/PID/task/*/schedstat`), its user
//! part alone (the kernel's ticks, `/proc/PID/stat`), and the client's latency p50/p99. Rounds
//! rotate the order; figures are medians of per-round ones, and ratios medians of per-round
//! ratios. `--baseline PROXY_BINARY`, once or more, runs other builds of the proxy beside them.
//!
//! ```text
//! cargo build --release -p vonage-callbacks
//! cargo run --release -p vonage-callbacks-bench --bin proxy_vs_nginx -- --requests 20000 --rounds 3
//! ```
//!
//! nginx is installed from the distribution's packages (apt) when it is missing. Last line:
//! `proxy_vs_nginx cpu_us proxy=A nginx=B nginx_logged=C hyper_hop=D hop_verifying=E verify=V
//! ratio=A/B ratio_logged=A/C ratio_hyper_hop=A/D ratio_hop_verifying=A/E user_us ... p50_ms ...
//! p99_ms ...`, where `verify` is this run's in-process cost of verifying one callback in a
//! loop: the aim is `proxy <= nginx + verify`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use vonage_callbacks_bench::hyper_hop;
use vonage_callbacks_bench::processes::{
    free_port, installed, proxy_command, this_build, upstream_answering_ok, wait_for, Killed,
};
use vonage_callbacks_bench::{body, connect, pin_to, signer, verifier, NOW};
use vonage_secure_callbacks::test_util::CallbackSigner;

const CONNECTIONS: usize = 32;

/// Process `pid`'s CPU time: all of it, exactly, and the user part, as the kernel's ticks
/// sampled it.
///
/// The total is the scheduler's own count of nanoseconds on a CPU (`/proc/PID/task/*/schedstat`,
/// summed over the threads). `/proc/PID/stat` counts whole ticks instead (4 ms at 250 Hz): a
/// contender's round is a hundred or so, so its ticks alone moved the figure by several per
/// cent from round to round. The user part has only the ticks to go by.
fn cpu_of(pid: u32) -> Cpu {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("schedstat");
        // A thread that ended meanwhile has no file any more; its time is not counted.
        let Ok(schedstat) = std::fs::read_to_string(path) else {
            continue;
        };
        let ns: u64 = schedstat.split(' ').next().unwrap().parse().unwrap();
        total += Duration::from_nanos(ns);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let user_ticks: u64 = rest.split(' ').nth(11).unwrap().parse().unwrap();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    Cpu {
        total,
        user: Duration::from_secs_f64(user_ticks as f64 / ticks),
    }
}

/// A process's CPU time so far.
struct Cpu {
    total: Duration,
    user: Duration,
}

/// The machine's two cores split: the contenders on the first, this process (the client and
/// the upstream) on the second, so that no contender's CPU depends on where the client ran.
/// Children inherit the affinity of the thread that starts them.
trait SpawnPinned {
    /// Starts the command on the contenders' core.
    fn spawn_pinned(&mut self) -> Child;
}

impl SpawnPinned for Command {
    fn spawn_pinned(&mut self) -> Child {
        let pinned = pin_to(0);
        let child = self.spawn().unwrap();
        let back = pin_to(1);
        println!(
            "{:?} started on {}",
            self.get_program(),
            if pinned && back {
                "CPU 0 (this process on CPU 1)"
            } else {
                "any CPU: the machine could not be split"
            }
        );
        child
    }
}

/// nginx, one process, forwarding to `upstream` over kept-alive connections; with `access_log`,
/// one line per request in a file (nginx's default format), as the proxy logs each callback.
fn start_nginx(dir: &Path, upstream: u16, access_log: bool) -> (Killed, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let log = if access_log {
        format!("access_log {}/access.log", dir.display())
    } else {
        "access_log off".to_owned()
    };
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; error_log stderr warn; pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  {log};
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
    let child = Command::new(installed("/usr/sbin/nginx", &["nginx-light", "nginx"]))
        .args(["-p", dir.to_str().unwrap(), "-c", "nginx.conf"])
        .stderr(Stdio::inherit())
        .spawn_pinned();
    (Killed(child), format!("127.0.0.1:{port}").parse().unwrap())
}

/// This benchmark's own binary serving the bare hyper hop (`vonage_callbacks_bench::hyper_hop`),
/// `mode` [`hyper_hop::STREAMED`] or [`hyper_hop::VERIFYING`] (each callback verified in place).
fn start_hyper_hop(mode: &str, upstream: u16) -> (Killed, SocketAddr) {
    let port = free_port();
    let child = hyper_hop::command(mode, port, upstream).spawn_pinned();
    (Killed(child), format!("127.0.0.1:{port}").parse().unwrap())
}

/// The proxy binary `bin`, logging to `log` in `dir`.
fn start_proxy(bin: &Path, dir: &Path, log: &str, upstream: u16) -> (Killed, SocketAddr) {
    let port = free_port();
    let child = proxy_command(bin, port, upstream)
        .current_dir(dir)
        .stdout(Stdio::null())
        // Its log lines go to a file, as nginx's access log does.
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn_pinned();
    (Killed(child), format!("127.0.0.1:{port}").parse().unwrap())
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

/// What one round measured of one contender.
#[derive(Clone, Copy, Default)]
struct Figures {
    /// Its process's CPU time per callback, user and system, in µs: exact.
    cpu_us: f64,
    /// The user part alone, where the proxy's own work shows: sampled by the kernel's ticks.
    user_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One round of `n` callbacks through `addr` (process `pid`).
async fn round(addr: SocketAddr, pid: u32, signer: &CallbackSigner, n: usize) -> Figures {
    let payload = Bytes::from(body(2048));
    // Signed before the clock starts: every request its own jti.
    let requests: Vec<(String, Bytes)> = (0..n)
        .map(|_| (signer.authorization(&payload), payload.clone()))
        .collect();
    let before = cpu_of(pid);
    let mut latencies = drive(addr, requests).await;
    let after = cpu_of(pid);
    latencies.sort();
    let per_callback = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    Figures {
        cpu_us: per_callback(after.total - before.total),
        user_us: per_callback(after.user - before.user),
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    }
}

fn main() {
    let mut requests = 20_000;
    let mut rounds = 3;
    // Other builds of the proxy to run beside this one (a change's before and after).
    let mut baselines: Vec<PathBuf> = Vec::new();
    let args: Vec<String> = std::env::args().collect();
    // Started by the run below as a contender of its own.
    hyper_hop::run_if_asked(&args);
    for pair in args[1..].chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--requests", Some(v)) if v.parse::<usize>().is_ok() => requests = v.parse().unwrap(),
            ("--rounds", Some(v)) if v.parse::<usize>().is_ok() => rounds = v.parse().unwrap(),
            ("--baseline", Some(v)) => baselines.push(PathBuf::from(v)),
            _ => panic!(
                "usage: proxy_vs_nginx [--requests N] [--rounds N] [--baseline PROXY_BINARY]..."
            ),
        }
    }
    let dir = std::env::temp_dir().join(format!("proxy-vs-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Its runtime's threads on the second core, with this one.
    pin_to(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The upstream both forward to.
        let upstream = upstream_answering_ok().await;
        let this_build = this_build();
        let mut contenders: Vec<(String, (Killed, SocketAddr))> = vec![
            (
                "proxy".into(),
                start_proxy(&this_build, &dir, "proxy.log", upstream),
            ),
            (
                "nginx".into(),
                start_nginx(&dir.join("nginx"), upstream, false),
            ),
            (
                "nginx_logged".into(),
                start_nginx(&dir.join("nginx-logged"), upstream, true),
            ),
            (
                "hyper_hop".into(),
                start_hyper_hop(hyper_hop::STREAMED, upstream),
            ),
            (
                "hop_verifying".into(),
                start_hyper_hop(hyper_hop::VERIFYING, upstream),
            ),
        ];
        for (i, bin) in baselines.iter().enumerate() {
            let name = format!("baseline{}", i + 1);
            let log = format!("{name}.log");
            contenders.push((name, start_proxy(bin, &dir, &log, upstream)));
        }
        let signer = signer();
        for (_, (process, addr)) in &contenders {
            wait_for(*addr, Duration::from_secs(10)).await;
            // Warm each up.
            round(*addr, process.0.id(), &signer, 2000).await;
        }

        // figures[r][c]: contender c in round r.
        let n = contenders.len();
        let mut figures: Vec<Vec<Figures>> = Vec::new();
        for r in 0..rounds {
            let mut this = vec![Figures::default(); n];
            // Each round starts with the next contender, so none always runs first.
            for i in 0..n {
                let c = (r + i) % n;
                let (_, (process, addr)) = &contenders[c];
                this[c] = round(*addr, process.0.id(), &signer, requests).await;
            }
            let line = |f: fn(&Figures) -> f64, digits: usize| {
                let values: Vec<String> = contenders
                    .iter()
                    .zip(&this)
                    .map(|((name, _), x)| format!("{name}={:.digits$}", f(x)))
                    .collect();
                values.join(" ")
            };
            println!(
                "round {r}: cpu_us {}  user_us {}  p50_ms {}  p99_ms {}",
                line(|x| x.cpu_us, 1),
                line(|x| x.user_us, 1),
                line(|x| x.p50_ms, 3),
                line(|x| x.p99_ms, 3)
            );
            figures.push(this);
        }
        let median_of = |c: usize, f: fn(&Figures) -> f64| {
            median(figures.iter().map(|round| f(&round[c])).collect())
        };
        let summary = |f: fn(&Figures) -> f64, digits: usize| {
            let values: Vec<String> = contenders
                .iter()
                .enumerate()
                .map(|(c, (name, _))| format!("{name}={:.digits$}", median_of(c, f)))
                .collect();
            values.join(" ")
        };
        // The proxy's CPU over contender c's, as the median of the rounds' ratios: a round in
        // which the machine ran slow for everyone moves no ratio.
        let ratio = |c: usize| {
            median(
                figures
                    .iter()
                    .map(|round| round[0].cpu_us / round[c].cpu_us)
                    .collect(),
            )
        };

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

        // The proxy over each other contender, named after it; over nginx, the figure itself.
        let ratios: String = contenders
            .iter()
            .enumerate()
            .skip(1)
            .map(|(c, (name, _))| {
                let label = match name.strip_prefix("nginx") {
                    Some("") => "ratio".to_owned(),
                    Some(rest) => format!("ratio{rest}"),
                    None => format!("ratio_{name}"),
                };
                format!(" {label}={:.2}", ratio(c))
            })
            .collect();
        println!(
            "proxy_vs_nginx cpu_us {} verify={verify:.1}{ratios} user_us {} p50_ms {} p99_ms {}",
            summary(|x| x.cpu_us, 1),
            summary(|x| x.user_us, 1),
            summary(|x| x.p50_ms, 3),
            summary(|x| x.p99_ms, 3)
        );
        drop(contenders);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
