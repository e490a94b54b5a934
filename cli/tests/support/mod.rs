//! What the proxy's test files share: the upstreams in other languages, the proxy as a child
//! process, and requests to it.
#![allow(dead_code)] // each test file uses its own part of it

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use vonage_secure_callbacks::test_util::CallbackSigner;

pub const API_KEY: &str = "47123456";
pub const SECRET: &str = "proxy-test-project-signature-secret-01";
/// A second secret, as while one is rotated.
pub const OTHER_SECRET: &str = "proxy-test-the-previous-signature-secret";

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first line of `child`'s stdout that starts with `prefix`, within 20 s.
pub fn line_starting(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with(prefix) {
            // Keep draining, so that the child never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return line;
        }
    }
    panic!("no line starting {prefix:?}");
}

/// One request the upstream received: its path, headers (names lower-cased) and body.
pub type Received = (String, Vec<(String, String)>, Vec<u8>);

/// An upstream recording into `dir/requests.jsonl`, on `port` (0: any).
pub struct Upstream {
    _child: Killed,
    pub port: u16,
    pub record: PathBuf,
}

impl Upstream {
    /// The Python one.
    pub fn start(dir: &std::path::Path, port: u16) -> Self {
        Self::run("python3", "upstream.py", dir, port)
    }

    /// The Node one.
    pub fn node(dir: &std::path::Path) -> Self {
        Self::run("node", "upstream.js", dir, 0)
    }

    pub fn run(interpreter: &str, script: &str, dir: &std::path::Path, port: u16) -> Self {
        let record = dir.join("requests.jsonl");
        let log = std::fs::File::create(dir.join(format!("{script}.log"))).unwrap();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(script);
        let mut child = Command::new(interpreter)
            .arg(script)
            .arg(&record)
            .arg(port.to_string())
            // No child shares the test runner's descriptors: its output goes to files.
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("{interpreter} runs the upstream: {err}"));
        let line = line_starting(&mut child, "listening ");
        let port = line["listening ".len()..].trim().parse().unwrap();
        Self {
            _child: Killed(child),
            port,
            record,
        }
    }

    /// The JSON line it recorded for each request, oldest first.
    fn records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// What it received, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.records()
            .into_iter()
            .map(|v| {
                let headers = v["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_ascii_lowercase(),
                            h[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let body = base64::engine::general_purpose::STANDARD
                    .decode(v["body"].as_str().unwrap())
                    .unwrap();
                (v["path"].as_str().unwrap().to_owned(), headers, body)
            })
            .collect()
    }
}

/// The proxy in front of `upstream_port`, with `args` added.
pub struct Proxy {
    pub child: Child,
    pub addr: String,
    pub admin: String,
}

impl Proxy {
    pub fn start(upstream_port: u16, args: &[&str], dir: &std::path::Path) -> Self {
        let upstream = format!("http://127.0.0.1:{upstream_port}");
        Self::start_on("127.0.0.1:0", &upstream, args, dir)
    }

    /// The proxy listening on `listen`, in front of the `upstream` URL.
    pub fn start_on(listen: &str, upstream: &str, args: &[&str], dir: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vonage-callbacks"))
            .current_dir(dir)
            .env("VONAGE_API_KEY", API_KEY)
            .env("VONAGE_SIGNATURE_SECRET", SECRET)
            .env_remove("VONAGE_SIGNATURE_SECRET_PREVIOUS")
            .env("RUST_LOG", "info")
            .args(["proxy", "--listen", listen, "--admin-listen", "127.0.0.1:0"])
            .args(["--upstream", upstream])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its log, for the tests that read it (and for whoever debugs one).
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("proxy.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let line = line_starting(&mut child, "proxy: listening on ");
        let addr = line["proxy: listening on ".len()..]
            .split(',')
            .next()
            .unwrap();
        let addr = addr.split("://").nth(1).unwrap().to_owned();
        let admin = line.rsplit("admin on http://").next().unwrap().to_owned();
        Self { child, addr, admin }
    }

    /// SIGTERM, then the exit status within 30 s.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the proxy did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What came back: status, headers, body.
pub type Answer = (u16, http::HeaderMap, Vec<u8>);

/// One request, over a fresh client, within 30 s.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    try_send(method, url, headers, body).expect("the request went through")
}

/// One request, over a fresh client, within 30 s; `None` when no answer came (refused, reset).
pub fn try_send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<Answer> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
            .await
            .expect("an answer within 30 s")
            .ok()?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.ok()?.to_bytes().to_vec();
        Some((parts.status.as_u16(), parts.headers, body))
    })
}

pub fn signer() -> CallbackSigner {
    CallbackSigner::new(API_KEY, SECRET).application_id("aaaaaaaa-bbbb-cccc-dddd-0123456789ab")
}

/// POSTs `body` with `authorization` to `path` on the proxy.
pub fn callback(proxy: &Proxy, path: &str, authorization: &str, body: &[u8]) -> Answer {
    let url = format!("http://{}{path}", proxy.addr);
    let headers = [
        ("authorization", authorization),
        ("content-type", "application/json"),
        ("x-vonage-jti", "forged-by-the-client"),
        ("x-vonage-verified", "1"),
        ("X-Vonage-Role", "admin"),
        ("x-request-id", "kept-end-to-end"),
    ];
    send("POST", &url, &headers, body)
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// One request a CGI-style upstream received: its method, path and CGI variables.
pub type Seen = (String, String, std::collections::HashMap<String, String>);

impl Upstream {
    /// The WSGI app under Python's wsgiref.
    pub fn wsgi(dir: &std::path::Path) -> Self {
        Self::run("python3", "upstream_wsgi.py", dir, 0)
    }

    /// The router script under PHP's built-in server, or `None` where PHP is not installed.
    pub fn php(dir: &std::path::Path) -> Option<Self> {
        let record = dir.join("requests.jsonl");
        let port = free_port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream.php");
        let child = Command::new("php")
            .args(["-S", &format!("127.0.0.1:{port}")])
            .arg(script)
            .env("UPSTREAM_RECORD", &record)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("php.log")).unwrap())
            .spawn()
            .ok()?;
        let child = Killed(child);
        wait_for_listener(&format!("127.0.0.1:{port}"));
        Some(Self {
            _child: child,
            port,
            record,
        })
    }

    /// What a CGI-style upstream received, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.records()
            .into_iter()
            .map(|v| {
                let environ = v["environ"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let text = |key: &str| v[key].as_str().unwrap().to_owned();
                (text("method"), text("path"), environ)
            })
            .collect()
    }
}

/// A loopback port nothing listens on (taken, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits, up to 20 s, until something accepts connections at `addr`.
pub fn wait_for_listener(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens at {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `request` on a connection of its own and reads until the proxy closes it (or 20 s
/// pass, which fails the test): what came back.
pub fn raw(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the proxy closes the connection");
    String::from_utf8_lossy(&answer).into_owned()
}

impl Proxy {
    /// The samples of the admin listener's /metrics, as `(name{labels}, value)`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let (status, _, text) = send("GET", &format!("http://{}/metrics", self.admin), &[], b"");
        assert_eq!(status, 200);
        String::from_utf8(text)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse::<f64>().unwrap())
            })
            .collect()
    }

    /// The sum of the samples whose name (with labels) starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Waits, up to 30 s, until the metric `prefix` is `value`.
    pub fn await_metric(&self, prefix: &str, value: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = self.metric(prefix);
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{prefix} stayed {now}, not {value}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The proxy's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}
