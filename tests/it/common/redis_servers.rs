//! Real `redis-server` processes for the Redis store's tests: single nodes (optionally with
//! persistence), a 3-master cluster, a TLS listener. Each on free loopback ports, each stopped
//! when dropped. `redis-server`, `redis-cli` and `openssl` must be on `PATH` (`.ci/run`
//! installs them).

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certificates::TestCertificates;

/// A free loopback port (and, for a cluster node, its bus port + 10 000 free too).
pub fn free_port(with_bus: bool) -> u16 {
    for _ in 0..100 {
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !with_bus || (port < 55_000 && StdListener::bind(("127.0.0.1", port + 10_000)).is_ok()) {
            return port;
        }
    }
    panic!("no free port pair");
}

/// A directory of this test's own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vsc-{name}-{}",
            vonage_secure_callbacks::test_util::fresh_jti()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` of this test's own; killed when dropped.
pub struct RedisServer {
    pub port: u16,
    args: Vec<String>,
    child: Option<Child>,
    _dir: TempDir,
}

impl RedisServer {
    /// No persistence: a restart forgets everything.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// With `appendonly yes` and `appendfsync always`: a restart keeps every acknowledged write.
    pub fn start_persistent() -> Self {
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let port = free_port(false);
        Self::start_on(port, extra, TempDir::new("redis"))
    }

    fn start_on(port: u16, extra: &[&str], dir: TempDir) -> Self {
        let mut args: Vec<String> = vec!["--bind".into(), "127.0.0.1".into()];
        args.extend(["--dir".into(), dir.0.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--port") {
            args.extend(["--port".into(), port.to_string()]);
        }
        let mut server = Self {
            port,
            args,
            child: None,
            _dir: dir,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Ready once it answers PING (a persistent one loads its file first).
        loop {
            let pong = Command::new("redis-cli")
                .args(["-p", &self.port.to_string()])
                .args(self.cli_tls_args())
                .arg("ping")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
                .unwrap_or(false);
            if pong {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cli_tls_args(&self) -> Vec<String> {
        match self.args.iter().position(|a| a == "--tls-ca-cert-file") {
            Some(i) => vec!["--tls".into(), "--cacert".into(), self.args[i + 1].clone()],
            None => Vec::new(),
        }
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Kills it at once (SIGKILL): what it acknowledged is on disk if it persists.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Three masters, no replicas, all slots covered.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_port(true);
                let conf = format!("nodes-{port}.conf");
                RedisServer::start_on(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf,
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    TempDir::new("cluster"),
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster never became ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Keys held by each node.
    pub fn key_counts(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "dbsize"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
            })
            .collect()
    }
}

impl TestCertificates {
    /// A `redis-server` that speaks only TLS.
    pub fn start_server(&self) -> RedisServer {
        let port = free_port(false);
        let port_s = port.to_string();
        let (cert, key, ca) = (
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem"),
        );
        RedisServer::start_on(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port_s,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            TempDir::new("redis-tls"),
        )
    }
}
