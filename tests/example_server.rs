//! The README's main job, as a newcomer runs it: start `examples/callback_server`, run the `curl`
//! command it prints, exactly as printed, and get the verified claims back.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example binary that `cargo test` builds beside this test; built here if it is missing.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join("callback_server");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "callback_server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the example with `env`, returns it and the lines it printed up to the curl command.
fn start(env: &[(&str, &str)]) -> (KillOnDrop, Vec<String>) {
    let mut cmd = Command::new(example_binary());
    cmd.env("LISTEN_ADDR", "127.0.0.1:0")
        .env_remove("VONAGE_API_KEY")
        .env_remove("VONAGE_SIGNATURE_SECRET")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = KillOnDrop(cmd.spawn().unwrap());
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
        let done = line.starts_with("curl ");
        lines.push(line);
        if done {
            return (child, lines);
        }
    }
    panic!("the example printed no curl command: {lines:?}");
}

fn run_printed_curl(curl: &str) -> String {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("{curl} --max-time 10 -w '\\n%{{http_code}}'"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn printed_curl_is_accepted_once_then_refused_as_a_replay() {
    let (_server, lines) = start(&[]);
    assert!(
        lines.iter().any(|l| l.contains("development secret")),
        "says that it made up a secret: {lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("listening on http://127.0.0.1:")));
    let curl = lines.last().unwrap();

    let first = run_printed_curl(curl);
    let (body, status) = first.rsplit_once('\n').unwrap();
    assert_eq!(status, "200", "{first}");
    let claims: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(claims["verified"], true);
    assert_eq!(claims["api_key"], "dev-api-key");
    assert_eq!(claims["jti"].as_str().unwrap().len(), 36);

    let second = run_printed_curl(curl);
    assert!(second.ends_with("\n409"), "{second}");
    assert!(second.contains("replayed_token"), "{second}");
}

#[test]
fn uses_the_project_credentials_when_given() {
    let secret = "a-project-signature-secret-from-the-dashboard";
    let (_server, lines) = start(&[
        ("VONAGE_API_KEY", "abcd1234"),
        ("VONAGE_SIGNATURE_SECRET", secret),
    ]);
    assert!(!lines.iter().any(|l| l.contains("development secret")));
    assert!(
        !lines.iter().any(|l| l.contains(secret)),
        "the secret is never printed"
    );
    let out = run_printed_curl(lines.last().unwrap());
    assert!(out.ends_with("\n200"), "{out}");
    assert!(out.contains("abcd1234"));
}
