//! A throwaway PostgreSQL cluster for the PostgreSQL store's tests: `initdb` in a directory of
//! the test's own, the server on a free loopback port, run as an unprivileged user when the
//! test runs as root (PostgreSQL refuses root). Stopped (as by a crash) when dropped. The
//! distribution's `postgresql` package provides the binaries (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::example::TempDir;

pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    dir: TempDir,
    running: bool,
    /// Extra server settings (`-c name=value`), kept across restarts.
    settings: String,
}

/// Where `initdb` and `pg_ctl` are: on `PATH`, else the newest `/usr/lib/postgresql/N/bin`.
fn binaries() -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
    {
        let found = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !found.is_empty() {
            return Path::new(&found).parent().unwrap().to_owned();
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (.ci/run installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL with pg_ctl")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl PostgresServer {
    /// A new cluster, started.
    pub fn start() -> Self {
        let dir = TempDir::new("postgres");
        let server = Self {
            port: std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
            bin: binaries(),
            dir,
            running: false,
            settings: String::new(),
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&server.dir.0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = server.data();
        let status = server
            .command("initdb")
            .args(["-D", data.to_str().unwrap()])
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let mut server = server;
        server.start_again();
        server
    }

    /// A new cluster that takes TCP connections over TLS only, with `certificates`' server
    /// certificate.
    #[cfg(feature = "postgres-tls")]
    pub fn start_tls(certificates: &super::certificates::TestCertificates) -> Self {
        let mut server = Self::start();
        server.kill();
        let data = server.data();
        for name in ["server.pem", "server.key"] {
            std::fs::copy(certificates.path(name), data.join(name)).unwrap();
        }
        // Local sockets as before; TCP only with TLS.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(&data)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
        server.settings =
            " -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key".to_owned();
        server.start_again();
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    /// `tool` from the cluster's binaries, as the user that owns the cluster, its output
    /// dropped (the server's own log is `server.log`).
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(exe);
            cmd
        } else {
            Command::new(exe)
        };
        cmd.current_dir(&self.dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// Starts the server on its port and waits until it accepts connections.
    pub fn start_again(&mut self) {
        // Commits reach the kernel, which keeps them across a killed server; fsync would only
        // add a power cut to what the tests can survive.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200{}",
            self.port,
            self.dir.0.display(),
            self.settings
        );
        let status = self
            .command("pg_ctl")
            .args(["-D", self.data().to_str().unwrap(), "-w", "-t", "60"])
            .args(["-l", self.dir.0.join("server.log").to_str().unwrap()])
            .args(["-o", &options, "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the PostgreSQL server did not start");
        self.running = true;
    }

    /// Stops it at once, as a crash would (`-m immediate`: no checkpoint, clients cut off).
    pub fn kill(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .args([
                    "-D",
                    self.data().to_str().unwrap(),
                    "-m",
                    "immediate",
                    "stop",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.running = false;
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}
