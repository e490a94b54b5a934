//! The measurement code of `vonage-secure-callbacks`, apart from the library: criterion benches
//! (`benches/`), the load tool, the profile harness, the Redis latency probe, the replay window
//! simulators and the proxy's benchmarks (`src/bin/`). Shared here: fixtures, the two
//! comparison pipelines, what the proxy's benchmarks run, and reading back criterion's medians
//! so that each bench can print ratios measured in one run.

pub mod hyper_hop;
pub mod previous_store;
pub mod processes;
pub mod ready;
pub mod reference;
pub use ready::{now, Ok200};
pub use reference::reference;

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use vonage_secure_callbacks::test_util::CallbackSigner;
use vonage_secure_callbacks::{CallbackVerifier, FixedClock, Secret, Secrets};

pub const API_KEY: &str = "a1b2c3d4";
pub const SECRET: &str = "VonageSignatureSecretForTests1234567890";
pub const NOW: u64 = 1_800_000_000;
pub const SIZES: [(&str, usize); 4] = [
    ("256B", 256),
    ("2KiB", 2048),
    ("64KiB", 64 * 1024),
    ("1MiB", 1024 * 1024),
];

/// Pins this thread, and the threads and processes it starts after, to `cpu`, so that a server
/// measured and the client loading it do not steal each other's core. Returns whether it did:
/// not when this process may not run on `cpu` (a machine with one CPU has no CPU 1).
///
/// The kernel is the judge, not a count of CPUs: `available_parallelism` reads this thread's
/// own affinity, so once the thread was pinned to one CPU it would say one, and every later
/// call would have given up.
pub fn pin_to(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

pub fn signer() -> CallbackSigner {
    CallbackSigner::new(API_KEY, SECRET).application_id("aaaaaaaa-bbbb-cccc-dddd-0123456789ab")
}

/// A JSON-looking body of exactly `len` bytes.
pub fn body(len: usize) -> Vec<u8> {
    let mut b = br#"{"sessionId":"2_MX4xMDB-fn4","event":"connectionCreated","pad":""#.to_vec();
    b.resize(len.saturating_sub(2), b'x');
    b.extend_from_slice(br#""}"#);
    b.truncate(len);
    b
}

pub fn token(body: &[u8]) -> String {
    signer().token_with(body, |c| {
        c.insert("iat".into(), NOW.into());
    })
}

/// The one project's secret that every fixture here is signed with.
pub fn secrets() -> Secrets {
    Secrets::new().project(API_KEY, Secret::new(SECRET).unwrap())
}

pub fn verifier() -> CallbackVerifier {
    CallbackVerifier::new(secrets())
        .clock(FixedClock::new(NOW))
        .body_limit(2 * 1024 * 1024)
}

#[derive(Deserialize)]
struct NaiveClaims {
    payload_hash: String,
    #[allow(dead_code)]
    api_key: String,
}

/// What a hand-rolled middleware usually does: `jsonwebtoken::decode` with a key made per
/// request, then hex-encode the body's SHA-256 and compare strings.
pub fn naive(token: &str, body: &[u8], secret: &[u8]) -> bool {
    let key = jsonwebtoken::DecodingKey::from_secret(secret).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.set_issuer(&["Vonage"]);
    let Ok(data) = jsonwebtoken::decode::<NaiveClaims>(token, &key, &validation) else {
        return false;
    };
    let hex: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex == data.claims.payload_hash
}

/// An HTTP/1 connection to `addr`, Nagle off, its driver spawned on the current runtime.
pub async fn connect(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// Where criterion writes its estimates in this run: the workspace's target directory (cargo
/// runs benches from this crate's directory, so a relative `target` would land inside it).
pub fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
        .join("criterion")
}

pub fn criterion() -> Criterion {
    Criterion::default()
        .output_directory(&criterion_dir())
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

#[derive(Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// The median (ns) criterion just measured for `group/function/param`.
pub fn median_ns(group: &str, function: &str, param: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join(param)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        serde_json::from_str::<Estimates>(&text)
            .ok()?
            .median
            .point_estimate,
    )
}
