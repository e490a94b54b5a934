//! What the proxy's benchmarks run: the proxy built here, the upstream it forwards to, tools
//! installed on first use, and a handle that stops each process when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{API_KEY, SECRET};

/// A child process, killed and reaped when dropped, so that no contender outlives a run.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `path`, installed from the distribution's packages (the first of `packages` that installs)
/// when it is missing.
pub fn installed(path: &str, packages: &[&str]) -> PathBuf {
    if Path::new(path).exists() {
        return PathBuf::from(path);
    }
    println!("{path} missing: installing it from the distribution's packages");
    let installs = packages.iter().any(|package| {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    assert!(installs, "apt-get install {packages:?} failed");
    assert!(Path::new(path).exists(), "{path} still missing");
    PathBuf::from(path)
}

/// The proxy's release build in this workspace, which the benchmarks measure.
pub fn this_build() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/vonage-callbacks")
}

/// An upstream that answers 200 at once, served on the current runtime; its port.
pub async fn upstream_answering_ok() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The proxy binary `bin` on `port` with the memory store, forwarding to `upstream`, with the
/// benchmarks' project.
pub fn proxy_command(bin: &Path, port: u16, upstream: u16) -> Command {
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build --release -p vonage-callbacks)",
        bin.display()
    );
    let mut command = Command::new(bin);
    command
        .env("VONAGE_API_KEY", API_KEY)
        .env("VONAGE_SIGNATURE_SECRET", SECRET)
        .args(["proxy", "--replay-store", "memory"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &format!("http://127.0.0.1:{upstream}")]);
    command
}

/// Waits until something listens on `addr`, for at most `timeout`.
pub async fn wait_for(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
