//! The SQLite replay store through real `callback_server` processes on one file (feature
//! `sqlite`): a restart, a SIGKILL under load, two processes, a full disk, and files it must
//! refuse to open. Each server runs in production mode with the project's secret, as deployed;
//! the test signs what Vonage would send.
#![cfg(feature = "sqlite")]

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::example::{address, run_to_exit, start_in, KillOnDrop, TempDir};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use vonage_secure_callbacks::test_util::CallbackSigner;

const API_KEY: &str = "abcd1234";
const SECRET: &str = "a-project-signature-secret-from-the-dashboard";
const BODY: &str = r#"{"sessionId":"2_MX4","event":"connectionCreated"}"#;

fn production(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("VONAGE_API_KEY", API_KEY.to_owned()),
        ("VONAGE_SIGNATURE_SECRET", SECRET.to_owned()),
    ];
    env.extend(extra.iter().cloned());
    env
}

fn start(dir: &Path, env: &[(&'static str, String)]) -> (KillOnDrop, String, Vec<String>) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (child, lines) = start_in("callback_server", &env, dir);
    let addr = address(&lines);
    (child, addr, lines)
}

/// A signed callback as Vonage sends it: a fresh `jti`, signed now.
fn callback() -> String {
    CallbackSigner::new(API_KEY, SECRET).authorization(BODY.as_bytes())
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn http() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The status and error code of one delivery, or `None` when the connection failed or no
/// answer came within 10 s.
async fn deliver(client: &HttpClient, addr: &str, auth: &str) -> Option<(StatusCode, String)> {
    let req = Request::post(format!("http://{addr}/vonage/session"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let reply = async {
        let res = client.request(req).await.ok()?;
        let status = res.status();
        let body = res.into_body().collect().await.ok()?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Some((status, v["error"].as_str().unwrap_or("").to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), reply)
        .await
        .ok()
        .flatten()
}

/// Delivers as Vonage does: a 5xx is tried again (every 100 ms, for up to `patience`), a 2xx or
/// 4xx is final. Returns the final status and code.
async fn deliver_until_final(
    client: &HttpClient,
    addr: &str,
    auth: &str,
    patience: Duration,
) -> (StatusCode, String) {
    let deadline = Instant::now() + patience;
    loop {
        match deliver(client, addr, auth).await {
            Some((status, code)) if !status.is_server_error() => return (status, code),
            last if Instant::now() >= deadline => panic!("still no final answer: {last:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn sqlite_line(lines: &[String]) -> &str {
    lines
        .iter()
        .find(|l| l.starts_with("replay store: SQLite file "))
        .unwrap_or_else(|| panic!("no SQLite store line: {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_reopen_the_replay_window() {
    let dir = TempDir::new("restart");
    // No REPLAY_STORE: production mode keeps the window in a file by default, and says where.
    let (server, addr, lines) = start(&dir.0, &production(&[]));
    assert!(sqlite_line(&lines).contains("replay-window.sqlite3"));
    let client = http();
    let auth = callback();
    assert_eq!(
        deliver(&client, &addr, &auth).await.unwrap().0,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&client, &addr, &auth).await.unwrap(),
        (StatusCode::CONFLICT, "replayed_token".into())
    );
    drop(server);

    let (_server, addr, _) = start(&dir.0, &production(&[]));
    assert_eq!(
        deliver(&http(), &addr, &auth).await.unwrap(),
        (StatusCode::CONFLICT, "replayed_token".into()),
        "the replay after a restart is refused"
    );
}

/// What the client saw of each callback during the load.
#[derive(Default)]
struct Seen {
    /// Answered 2xx: the callback was delivered.
    delivered: Vec<String>,
    /// Sent, but the connection died or no answer came: Vonage would retry it.
    unanswered: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_load_loses_no_callback_and_lets_no_replay_through() {
    let dir = TempDir::new("sigkill");
    // A short in-flight TTL, so that the reservations the killed process held free up soon.
    let env = production(&[("REPLAY_IN_FLIGHT_TTL_SECS", "2".into())]);
    let (mut server, addr, lines) = start(&dir.0, &env);
    sqlite_line(&lines);

    const CALLBACKS: usize = 4000;
    const CONNECTIONS: usize = 32;
    let auths: Arc<Vec<String>> = Arc::new((0..CALLBACKS).map(|_| callback()).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let client = http();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (auths, next, seen, client, addr) = (
            auths.clone(),
            next.clone(),
            seen.clone(),
            client.clone(),
            addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(auth) = auths.get(i) else { return };
                let reply = deliver(&client, &addr, auth).await;
                let mut seen = seen.lock().unwrap();
                match reply {
                    Some((status, _)) if status.is_success() => seen.delivered.push(auth.clone()),
                    Some((status, code)) => panic!("{status} {code} under load"),
                    None => {
                        seen.unanswered.push(auth.clone());
                        return; // The server is gone.
                    }
                }
            }
        }));
    }
    // Killed mid-load, once a good number were delivered.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().delivered.len() < CALLBACKS / 4 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let sent = next
        .load(std::sync::atomic::Ordering::Relaxed)
        .min(CALLBACKS);
    assert!(
        seen.delivered.len() < sent,
        "killed before the load ended: {} of {CALLBACKS} delivered",
        seen.delivered.len()
    );

    let (_server, addr, _) = start(&dir.0, &env);
    let client = http();
    for auth in &seen.delivered {
        assert_eq!(
            deliver(&client, &addr, auth).await,
            Some((StatusCode::CONFLICT, "replayed_token".into())),
            "every callback answered 2xx before the kill is a replay after the restart"
        );
    }
    // Vonage retries what got no answer: each is accepted now, or was delivered just before
    // the kill (its 2xx lost with the connection) and is refused as done. None is lost.
    let mut outcomes: HashMap<StatusCode, usize> = HashMap::new();
    for auth in &seen.unanswered {
        let (status, _) = deliver_until_final(&client, &addr, auth, Duration::from_secs(10)).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::CONFLICT,
            "{status}"
        );
        *outcomes.entry(status).or_default() += 1;
    }
    // And the ones never sent are accepted as new.
    for auth in auths.iter().skip(sent).take(50) {
        assert_eq!(
            deliver(&client, &addr, auth).await.unwrap().0,
            StatusCode::OK
        );
    }
    eprintln!(
        "sigkill: {} delivered before the kill, all refused after the restart; {} unanswered, then {:?}",
        seen.delivered.len(),
        seen.unanswered.len(),
        outcomes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_share_one_window_under_load_and_across_a_kill() {
    let dir = TempDir::new("two");
    let file = dir.0.join("shared.sqlite3");
    let env = production(&[
        ("REPLAY_STORE", format!("sqlite:{}", file.display())),
        ("REPLAY_IN_FLIGHT_TTL_SECS", "2".into()),
    ]);
    let (_a, addr_a, _) = start(&dir.0, &env);
    let (b, addr_b, _) = start(&dir.0, &env);
    let client = http();
    let auth = callback();
    assert_eq!(
        deliver(&client, &addr_a, &auth).await.unwrap().0,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&client, &addr_b, &auth).await.unwrap(),
        (StatusCode::CONFLICT, "replayed_token".into()),
        "delivered through one, refused by the other"
    );

    // Under load: each callback sent to both at once, as a duplicate delivery would; each is
    // accepted exactly once between them.
    const CALLBACKS: usize = 600;
    let auths: Vec<String> = (0..CALLBACKS).map(|_| callback()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    for auth in auths.clone() {
        let (client, a, b, gate) = (client.clone(), addr_a.clone(), addr_b.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let patience = Duration::from_secs(20);
            let (x, y) = tokio::join!(
                deliver_until_final(&client, &a, &auth, patience),
                deliver_until_final(&client, &b, &auth, patience)
            );
            [x, y]
        });
    }
    while let Some(pair) = tasks.join_next().await {
        let pair = pair.unwrap();
        let accepted = pair.iter().filter(|(s, _)| *s == StatusCode::OK).count();
        assert_eq!(accepted, 1, "{pair:?}");
        assert!(pair.contains(&(StatusCode::CONFLICT, "replayed_token".into())));
    }

    // B killed and restarted on the same file: it still refuses everything A or B delivered.
    drop(b);
    let (_b, addr_b, _) = start(&dir.0, &env);
    for auth in auths.iter().step_by(7) {
        assert_eq!(
            deliver(&client, &addr_b, auth).await,
            Some((StatusCode::CONFLICT, "replayed_token".into()))
        );
    }
}

/// A small file system of its own (tmpfs), unmounted when dropped: needs root.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        let mount = dir.join("disk");
        std::fs::create_dir_all(&mount).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(mount))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_accepts_nothing_twice_and_recovers_once_room_is_made() {
    let dir = TempDir::new("disk-full");
    if !is_root() {
        eprintln!("skipped: mounting a small file system needs root (CI runs as root)");
        return;
    }
    let disk = SmallDisk::mount(&dir.0, "4m").expect("mount a 4 MiB tmpfs");
    let file = disk.0.join("replay.sqlite3");
    let env = production(&[("REPLAY_STORE", format!("sqlite:{}", file.display()))]);
    let (_server, addr, _) = start(&dir.0, &env);
    let client = http();

    // Something else fills the disk (logs, say) but for a little room.
    let filler = disk.0.join("filler");
    let free = || rustix::fs::statvfs(&disk.0).map(|s| s.f_bavail * s.f_frsize);
    let room = free().unwrap().saturating_sub(256 * 1024);
    std::fs::write(&filler, vec![0u8; usize::try_from(room).unwrap()]).unwrap();

    let mut delivered = Vec::new();
    let mut refused = None;
    for _ in 0..20_000 {
        let auth = callback();
        match deliver(&client, &addr, &auth).await.expect("an answer") {
            (StatusCode::OK, _) => delivered.push(auth),
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    assert_eq!(
        refused,
        Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "replay_store_unavailable".into()
        )),
        "the disk filled after {} callbacks",
        delivered.len()
    );
    assert!(!delivered.is_empty());
    // Full: nothing delivered is accepted again.
    for auth in &delivered {
        let (status, code) = deliver(&client, &addr, auth).await.unwrap();
        assert!(
            status == StatusCode::CONFLICT || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status} {code}"
        );
    }
    // Room is made; the store recovers by itself, and still knows what it delivered.
    std::fs::remove_file(&filler).unwrap();
    let (status, _) =
        deliver_until_final(&client, &addr, &callback(), Duration::from_secs(10)).await;
    assert_eq!(status, StatusCode::OK);
    for auth in &delivered {
        assert_eq!(
            deliver(&client, &addr, auth).await,
            Some((StatusCode::CONFLICT, "replayed_token".into()))
        );
    }
    eprintln!(
        "disk full after {} callbacks: 503, then recovered",
        delivered.len()
    );
}

/// Starts the server on `file` expecting it to refuse at once; returns what it printed.
fn refuses_to_start(file: &Path) -> String {
    let store = format!("sqlite:{}", file.display());
    let env = production(&[("REPLAY_STORE", store)]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, stderr) = run_to_exit("callback_server", &env);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "names the file: {stderr}"
    );
    stderr
}

#[test]
fn a_corrupt_file_or_one_that_is_not_a_database_stops_the_server_by_name() {
    let dir = TempDir::new("bad-file");
    let notes = dir.0.join("notes.sqlite3");
    std::fs::write(
        &notes,
        "a text file that happens to sit at the store's path",
    )
    .unwrap();
    let err = refuses_to_start(&notes);
    assert!(err.contains("not an SQLite database"), "{err}");

    // A real window, then a disk fault over its middle.
    let file = dir.0.join("replay.sqlite3");
    a_window_of_3000_callbacks(&file);
    let mut bytes = std::fs::read(&file).unwrap();
    let half = bytes.len() / 2;
    bytes[half..half + 4096].fill(0xa5);
    std::fs::write(&file, &bytes).unwrap();
    let err = refuses_to_start(&file);
    assert!(err.contains("corrupt"), "{err}");
}

/// A store file holding a few thousand delivered callbacks, written by a real server.
fn a_window_of_3000_callbacks(file: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = vonage_secure_callbacks::replay::SqliteReplayStore::open(file).unwrap();
        let layer = vonage_secure_callbacks::SecureCallbackLayer::new(
            vonage_secure_callbacks::Secrets::new().project(
                API_KEY,
                vonage_secure_callbacks::Secret::new(SECRET).unwrap(),
            ),
        )
        .replay_store(store);
        let addr = common::serve_axum(common::echo_app(layer))
            .await
            .to_string();
        let client = http();
        for _ in 0..3000 {
            assert_eq!(
                deliver(&client, &addr, &callback()).await.unwrap().0,
                StatusCode::OK
            );
        }
    });
}

/// Runs the server as the unprivileged user `nobody`, where the test runs as root (root may
/// write anywhere); as itself otherwise.
fn refuses_to_start_as_nobody(file: &Path) -> String {
    if !is_root() {
        return refuses_to_start(file);
    }
    let exe = common::example::example_binary();
    let mut child = std::process::Command::new("setpriv");
    child
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&exe)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("VONAGE_API_KEY", API_KEY)
        .env("VONAGE_SIGNATURE_SECRET", SECRET)
        .env("REPLAY_STORE", format!("sqlite:{}", file.display()))
        .env_remove("REPLAY_IN_FLIGHT_TTL_SECS")
        .env_remove("REDIS_URL")
        .env_remove("VONAGE_SIGNATURE_SECRET_PREVIOUS")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = KillOnDrop(child.spawn().unwrap(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server started as nobody");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    stderr
}

/// Makes `path` and its parents readable and searchable by everyone (the temporary folders are
/// not always), so that another user reaches the file and meets its own permissions.
fn open_the_way(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for dir in path.ancestors().skip(1) {
        if dir == std::env::temp_dir() || dir.as_os_str().is_empty() {
            break;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn a_file_owned_by_another_user_or_a_read_only_folder_stops_the_server_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("permissions");
    // The binary must be reachable by that user too.
    common::example::example_binary();

    // Owned by this user, 0600: another cannot open it.
    let owned = dir.0.join("owned").join("replay.sqlite3");
    std::fs::create_dir_all(owned.parent().unwrap()).unwrap();
    std::fs::write(&owned, b"").unwrap();
    std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o600)).unwrap();
    open_the_way(&owned);
    if !is_root() {
        std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let err = refuses_to_start_as_nobody(&owned);
    assert!(err.contains("ermission denied"), "{err}");

    // A folder it cannot write: no file can be made there (nor SQLite's -wal and -shm).
    let locked = dir.0.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    open_the_way(&locked.join("x"));
    let file = locked.join("replay.sqlite3");
    let err = refuses_to_start_as_nobody(&file);
    assert!(err.contains("directory must be writable"), "{err}");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Python's own sqlite3 module takes the file's write lock and holds it until its standard
/// input closes: another program on the host, as a backup tool or a second app might.
const HOLD_THE_LOCK: &str = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_by_another_process_is_a_bounded_wait_then_503_then_recovery() {
    let dir = TempDir::new("locked");
    let file = dir.0.join("replay.sqlite3");
    let env = production(&[("REPLAY_STORE", format!("sqlite:{}", file.display()))]);
    let (_server, addr, _) = start(&dir.0, &env);
    let client = http();
    assert_eq!(
        deliver(&client, &addr, &callback()).await.unwrap().0,
        StatusCode::OK
    );

    let mut holder = std::process::Command::new("python3")
        .args(["-c", HOLD_THE_LOCK])
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");

    // The lock timeout (1 s) passes, then 503: neither a hang nor an acceptance.
    let auth = callback();
    let asked = Instant::now();
    let reply = deliver(&client, &addr, &auth).await;
    let waited = asked.elapsed();
    assert_eq!(
        reply,
        Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "replay_store_unavailable".into()
        ))
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // The other program lets go: Vonage's retry is accepted, once.
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    let (status, _) = deliver_until_final(&client, &addr, &auth, Duration::from_secs(10)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        deliver(&client, &addr, &auth).await,
        Some((StatusCode::CONFLICT, "replayed_token".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_that_jumps_ahead_and_back_lets_no_replay_through() {
    // The memory store's case: the SQLite store prunes at most a second after the clock
    // jumped, so two callbacks at the wrong time a second apart let it.
    let dir = TempDir::new("clock");
    let file = dir.0.join("replay.sqlite3");
    let store = vonage_secure_callbacks::replay::SqliteReplayStore::open(file).unwrap();
    crate::replay::a_clock_jump_lets_no_replay_through(store, 2, Duration::from_millis(1100)).await;
}
