//! Load over loopback, in one of two modes.
//!
//! **Throughput** (default): a bare axum route, the same route behind `SecureCallbackLayer`,
//! behind a naive `from_fn` middleware (to_bytes + jsonwebtoken + sha2, request rebuilt), and
//! bare but reading its body, run in turn with 2 KiB bodies over 32 connections from this
//! process. Last line: `layer/bare=X layer/naive=Y`, medians of per-round throughput ratios.
//!
//! ```text
//! cargo run --release --example load -- --seconds 3 --rounds 5
//! ```
//!
//! **Server CPU** (`--server-cpu`): the server runs in a child process of its own, and what is
//! measured is its CPU time per request (its process CPU clock, read before and after each
//! run), so that the client's own work does not count. Routes: reading the body, the naive
//! middleware, the layer as configured by default (in-memory replay store on), and the layer
//! without replay protection; bodies of 256 B, 2 KiB and 64 KiB; every request its own `jti`.
//! Rounds alternate the order of the routes; figures are medians of per-round figures, beside
//! this run's irreducible verification (`benches/common/reference.rs`) and SHA-256 of the body.
//! Last line: `server_cpu_us read=A layer=B layer_no_replay=C naive=D irreducible=E` (2 KiB).
//!
//! ```text
//! cargo run --release --example load -- --server-cpu --requests 20000 --rounds 5
//! ```
//!
//! Options: `--seconds N` per run (throughput only, default 3), `--requests N` per run (default
//! 200000 for throughput, 20000 for server CPU), `--connections N` (default 32), `--rounds N`
//! (default 3 and 5); server CPU only, to profile one case: `--routes LIST`, `--sizes LIST`
//! (comma-separated names, as printed).

mod client;
mod routes;
mod server_cpu;
mod throughput;

pub struct Options {
    pub seconds: u64,
    pub requests: Option<usize>,
    pub connections: usize,
    pub rounds: Option<usize>,
    /// Server CPU mode: only these routes and body sizes (to profile one of them).
    pub routes: Option<Vec<String>>,
    pub sizes: Option<Vec<String>>,
}

const USAGE: &str =
    "usage: load [--server-cpu] [--seconds N] [--requests N] [--connections N] [--rounds N]";

fn main() {
    routes::install_jsonwebtoken_provider();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(server_cpu::SERVE_FLAG) {
        return server_cpu::serve();
    }
    let cpu_mode = args.first().map(String::as_str) == Some("--server-cpu");
    if cpu_mode {
        args.remove(0);
    }
    let mut o = Options {
        seconds: 3,
        requests: None,
        connections: 32,
        rounds: None,
        routes: None,
        sizes: None,
    };
    for pair in args.chunks(2) {
        let list = || {
            pair.get(1)
                .map(|v| v.split(',').map(str::to_owned).collect())
        };
        match pair[0].as_str() {
            "--routes" => o.routes = list(),
            "--sizes" => o.sizes = list(),
            _ => {}
        }
        let value = pair.get(1).and_then(|v| v.parse::<u64>().ok());
        match (pair[0].as_str(), value) {
            ("--routes" | "--sizes", _) => {}
            ("--seconds", Some(v)) => o.seconds = v,
            ("--requests", Some(v)) => o.requests = Some(v as usize),
            ("--connections", Some(v)) => o.connections = (v as usize).max(1),
            ("--rounds", Some(v)) => o.rounds = Some((v as usize).max(1)),
            _ => panic!("{USAGE}"),
        }
    }
    if cpu_mode {
        server_cpu::run(&o);
    } else {
        throughput::run(&o);
    }
}
