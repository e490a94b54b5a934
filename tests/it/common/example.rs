//! Runs `examples/callback_server` as a newcomer would, and the `curl` command it prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The main example's binary, built (or found up to date) with this test build's features.
pub fn example_binary() -> PathBuf {
    example_named("callback_server")
}

/// The package an example is built from: the examples crate, but for the gRPC one, which is
/// this crate's own (it needs the tests' tonic).
fn package_of(name: &str) -> &'static str {
    match name {
        "grpc_and_callbacks" => "vonage-secure-callbacks",
        _ => "vonage-secure-callbacks-examples",
    }
}

/// An example's binary, built (or found up to date) with this test build's features.
pub fn example_named(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !built.iter().any(|b| b == name) {
        let features: Vec<&str> = [
            ("rust_crypto", cfg!(feature = "rust_crypto")),
            ("aws_lc_rs", cfg!(feature = "aws_lc_rs")),
            ("redis", cfg!(feature = "redis")),
            ("sqlite", cfg!(feature = "sqlite")),
            ("sms", cfg!(feature = "sms")),
            ("postgres", cfg!(feature = "postgres")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let out = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", name])
            .args(["-p", package_of(name)])
            .args(["--no-default-features", "--features", &features.join(",")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        built.push(name.to_owned());
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

/// Example `name` on a free port with `env` and no other Vonage or replay store variable, in
/// `dir` (where a default store file lands).
fn command(name: &str, env: &[(&str, &str)], dir: &Path) -> Command {
    let mut cmd = Command::new(example_named(name));
    cmd.env("LISTEN_ADDR", "127.0.0.1:0")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for var in [
        "VONAGE_API_KEY",
        "VONAGE_SIGNATURE_SECRET",
        "VONAGE_SIGNATURE_SECRET_PREVIOUS",
        "REDIS_URL",
        "REPLAY_STORE",
        "REPLAY_IN_FLIGHT_TTL_SECS",
        "DATABASE_URL",
        "EXACTLY_ONCE_PAUSE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs example `name` with `env` (and no Vonage variables but those), expecting it to exit
/// at once; returns its exit status and standard error.
pub fn run_to_exit(name: &str, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let dir = TempDir::new(name);
    let mut cmd = command(name, env, &dir.0);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap(), Some(dir));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status, stderr);
        }
        assert!(Instant::now() < deadline, "example {name} kept running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address of a started example, from its "listening on" line.
pub fn address(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("listening on http://"))
        .expect("a listening line")
        .to_owned()
}

/// A started example, killed when dropped, with the working directory it was started in
/// (removed after it).
pub struct KillOnDrop(pub Child, pub Option<TempDir>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory of the test's own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vsc-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the example with `env`, returns it and the lines it printed up to the curl command
/// (development mode) or the production mode line.
pub fn start(env: &[(&str, &str)]) -> (KillOnDrop, Vec<String>) {
    start_named("callback_server", env)
}

/// As [`start`], for example `name`.
pub fn start_named(name: &str, env: &[(&str, &str)]) -> (KillOnDrop, Vec<String>) {
    let dir = TempDir::new(name);
    let (mut child, lines) = start_in(name, env, &dir.0);
    child.1 = Some(dir);
    (child, lines)
}

/// As [`start_named`], in the working directory `dir`, which the caller keeps.
pub fn start_in(name: &str, env: &[(&str, &str)], dir: &Path) -> (KillOnDrop, Vec<String>) {
    let mut cmd = command(name, env, dir);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = KillOnDrop(cmd.spawn().unwrap(), None);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        // The JWT demo is printed last (after the SMS one).
        let done = (line.starts_with("curl ") && line.contains("/vonage/session"))
            || line.starts_with("production mode")
            || line.starts_with("ready:");
        lines.push(line);
        if done {
            return (child, lines);
        }
    }
    panic!("the example never said it was ready: {lines:?}");
}

pub fn run_printed_curl(curl: &str) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{curl} --max-time 10 -w '\\n%{{http_code}}'"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
