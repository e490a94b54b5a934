//! The proxy beside the hop verifying in place (`proxy_vs_nginx`'s `hop_verifying`), each run
//! under callgrind's cache simulation: instructions, level-1 data cache misses and last-level
//! misses per callback on the thread that serves them. Unlike CPU time these counts repeat
//! from run to run, so a change worth 1 % shows even on a machine whose clock cannot tell 1 %
//! apart.
//!
//! Each contender gets 300 signed 2 KiB callbacks over one connection to warm up, then 2 000
//! that are counted: the counters are zeroed between (`callgrind_control -z`) and dumped after
//! (`-d`), one file per thread. The last level is simulated as 1 MiB, the size of this
//! machine's level 2 cache: a miss there goes to the shared level 3 or to memory. SHA-256
//! runs in software under valgrind (it lacks the SHA extensions), which adds the same 110 000
//! instructions or so to every contender.
//!
//! ```text
//! cargo build --release -p vonage-callbacks -p vonage-callbacks-bench
//! cargo run --release -p vonage-callbacks-bench --bin proxy_cache_profile -- [--baseline PROXY_BINARY]...
//! ```
//!
//! valgrind is installed from the distribution's packages (apt) when it is missing. The dumps
//! stay in the directory printed at the start, for `callgrind_annotate`. One line per
//! contender: `proxy_cache_profile NAME instructions=I l1_misses=M ll_misses=L`, per callback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use vonage_callbacks_bench::hyper_hop;
use vonage_callbacks_bench::processes::{
    free_port, installed, proxy_command, this_build, upstream_answering_ok, wait_for, Killed,
};
use vonage_callbacks_bench::{body, connect, signer};

const WARM_UP: usize = 300;
const COUNTED: usize = 2_000;
/// Under valgrind a process starts some fifty times slower.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// `command` under callgrind with the cache simulation, its dumps named after `name` in `dir`.
fn under_callgrind(dir: &Path, name: &str, command: &Command) -> Command {
    let mut wrapped = Command::new(installed("/usr/bin/valgrind", &["valgrind"]));
    wrapped
        .args(["--tool=callgrind", "--cache-sim=yes", "--LL=1048576,16,64"])
        .arg("--separate-threads=yes")
        .arg(format!("--callgrind-out-file={}/{name}.%p", dir.display()))
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::null())
        // valgrind's own lines and the contender's log.
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap());
    wrapped
}

/// What is measured: a build of the proxy, or the hop verifying in place.
enum Contender {
    Proxy(PathBuf),
    HopVerifying,
}

impl Contender {
    /// The command that starts it on `port`, forwarding to `upstream`.
    fn command(&self, port: u16, upstream: u16) -> Command {
        match self {
            Contender::Proxy(bin) => proxy_command(bin, port, upstream),
            Contender::HopVerifying => hyper_hop::command(hyper_hop::VERIFYING, port, upstream),
        }
    }
}

/// `n` freshly signed callbacks, one after another over one connection.
async fn send(addr: SocketAddr, n: usize) {
    let payload = Bytes::from(body(2048));
    let signer = signer();
    let mut sender = connect(addr).await;
    for _ in 0..n {
        let request = http::Request::post("/vonage/video")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("authorization", signer.authorization(&payload))
            .body(Full::new(payload.clone()))
            .unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        assert_eq!(status, 200, "a callback was not forwarded");
    }
}

fn callgrind_control(option: &str, pid: u32) {
    let status = Command::new("callgrind_control")
        .args([option, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "callgrind_control {option} {pid} failed");
}

/// The counts of the thread that did the most work in the dump's part 1.
fn serving_thread(dir: &Path, name: &str, pid: u32) -> [u64; 9] {
    let prefix = format!("{name}.{pid}.1-");
    let mut busiest = [0; 9];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !file.starts_with(&prefix) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let events: Vec<&str> = line_after(&text, "events:").split_whitespace().collect();
        assert_eq!(
            events,
            ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"],
            "{file}: not a cache simulation's events"
        );
        let mut counts = [0; 9];
        for (count, value) in counts
            .iter_mut()
            .zip(line_after(&text, "summary:").split_whitespace())
        {
            *count = value.parse().unwrap();
        }
        if counts[0] > busiest[0] {
            busiest = counts;
        }
    }
    assert!(busiest[0] > 0, "no dump {prefix}* in {}", dir.display());
    busiest
}

fn line_after<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` line"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Started under valgrind by the run below.
    hyper_hop::run_if_asked(&args);
    let mut baselines: Vec<PathBuf> = Vec::new();
    for pair in args[1..].chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--baseline", Some(v)) => baselines.push(PathBuf::from(v)),
            _ => panic!("usage: proxy_cache_profile [--baseline PROXY_BINARY]..."),
        }
    }
    let dir = std::env::temp_dir().join(format!("proxy-cache-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("dumps in {}", dir.display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The upstream every contender forwards to.
        let upstream = upstream_answering_ok().await;
        let mut contenders = vec![
            ("proxy".to_owned(), Contender::Proxy(this_build())),
            ("hop_verifying".to_owned(), Contender::HopVerifying),
        ];
        for (i, bin) in baselines.into_iter().enumerate() {
            contenders.push((format!("baseline{}", i + 1), Contender::Proxy(bin)));
        }
        for (name, contender) in &contenders {
            let port = free_port();
            let mut command = under_callgrind(&dir, name, &contender.command(port, upstream));
            let child = Killed(command.spawn().unwrap());
            let pid = child.0.id();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_for(addr, START_TIMEOUT).await;
            send(addr, WARM_UP).await;
            callgrind_control("-z", pid);
            send(addr, COUNTED).await;
            callgrind_control("-d", pid);
            drop(child);
            let [ir, _, _, _, d1mr, d1mw, _, dlmr, dlmw] = serving_thread(&dir, name, pid);
            let per = |n: u64| n as f64 / COUNTED as f64;
            println!(
                "proxy_cache_profile {name} instructions={:.0} l1_misses={:.0} ll_misses={:.1}",
                per(ir),
                per(d1mr + d1mw),
                per(dlmr + dlmw),
            );
        }
    });
}
