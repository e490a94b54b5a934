//! The store's contract on real files: the same cases as the memory store's, and what only a
//! file can do (reopen, two handles on one file, a corrupt or foreign file, a size limit).

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::replay::test_support::{done, lease};
use crate::replay::{ReplayKey, Retention};

const T0: u64 = 1_000_000;
/// Max age 1 h: delivered rows are kept until `iat` + 3600.
const MAX_AGE: u64 = 3600;

/// A fresh directory of this test's own, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vsc-sqlite-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("replay.sqlite3")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn attempt(jti: &str, iat: u64, at: u64) -> Attempt {
    Attempt::new(
        ReplayKey::new("k", jti),
        iat,
        at,
        Retention::new(iat + MAX_AGE, at),
    )
}

async fn reserve(s: &SqliteReplayStore, jti: &str, iat: u64, at: u64) -> Reservation {
    s.reserve(attempt(jti, iat, at)).await.unwrap()
}

async fn deliver(s: &SqliteReplayStore, jti: &str, iat: u64, at: u64) {
    let l = lease(reserve(s, jti, iat, at).await);
    s.settle(&l, Outcome::Delivered).await.unwrap();
}

#[tokio::test]
async fn reserve_settle_cycle() {
    let dir = Dir::new("cycle");
    let s = SqliteReplayStore::open(dir.file()).unwrap();
    let l = lease(reserve(&s, "j1", T0, T0).await);
    assert_eq!(reserve(&s, "j1", T0, T0).await, Reservation::InFlight);
    assert_eq!(s.lookup(&attempt("j1", T0, T0)).await, Ok(Lookup::Unknown));
    s.settle(&l, Outcome::NotDelivered).await.unwrap();
    let l = lease(reserve(&s, "j1", T0, T0 + 3).await);
    s.settle(&l, Outcome::Delivered).await.unwrap();
    assert_eq!(reserve(&s, "j1", T0, T0 + 50).await, done(T0 + 3));
    let delivered = Lookup::Delivered { at: Some(T0 + 3) };
    assert_eq!(s.lookup(&attempt("j1", T0, T0 + 50)).await, Ok(delivered));
    // Releasing a delivered row (a late duplicate failing) must not forget it.
    s.settle(&l, Outcome::NotDelivered).await.unwrap();
    s.settle_detached(l, Outcome::NotDelivered);
    assert_eq!(reserve(&s, "j1", T0, T0 + 50).await, done(T0 + 3));
}

#[tokio::test]
async fn delivered_rows_expire_with_their_token() {
    let dir = Dir::new("expire");
    let s = SqliteReplayStore::open(dir.file()).unwrap();
    deliver(&s, "j", T0, T0).await;
    assert_eq!(reserve(&s, "j", T0, T0 + MAX_AGE - 1).await, done(T0));
    assert!(matches!(
        reserve(&s, "j", T0, T0 + MAX_AGE).await,
        Reservation::Reserved(_)
    ));
}

#[tokio::test]
async fn a_hung_reservation_expires_and_its_late_release_frees_nothing() {
    let dir = Dir::new("hung");
    let s = SqliteReplayStore::builder(dir.file())
        .in_flight_ttl(Duration::from_secs(10))
        .open()
        .unwrap();
    let first = lease(reserve(&s, "j", T0, T0).await);
    assert_eq!(reserve(&s, "j", T0, T0 + 9).await, Reservation::InFlight);
    let second = lease(reserve(&s, "j", T0, T0 + 10).await);
    s.settle(&first, Outcome::NotDelivered).await.unwrap();
    assert_eq!(reserve(&s, "j", T0, T0 + 11).await, Reservation::InFlight);
    s.settle(&second, Outcome::Delivered).await.unwrap();
    assert_eq!(reserve(&s, "j", T0, T0 + 12).await, done(T0 + 10));
}

#[tokio::test]
async fn a_late_delivery_is_remembered_even_after_its_reservation_was_dropped() {
    let dir = Dir::new("late");
    let s = SqliteReplayStore::builder(dir.file())
        .in_flight_ttl(Duration::from_secs(10))
        .open()
        .unwrap();
    let hung = lease(reserve(&s, "hung", T0, T0).await);
    // Pruned at T0 + 100: the hung reservation's row is gone.
    deliver(&s, "other", T0 + 100, T0 + 100).await;
    prune_now(&s).await;
    s.settle(&hung, Outcome::Delivered).await.unwrap();
    assert_eq!(reserve(&s, "hung", T0, T0 + 101).await, done(T0));
}

/// Lets the thread prune: it does between batches, at most once a second when idle.
async fn prune_now(s: &SqliteReplayStore) {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A request to wake the thread after the pause; it prunes after serving it.
    let _ = s.lookup(&attempt("wake", T0, T0 + 1)).await;
}

#[tokio::test]
async fn the_window_survives_a_restart() {
    let dir = Dir::new("restart");
    {
        let s = SqliteReplayStore::open(dir.file()).unwrap();
        deliver(&s, "j", T0, T0 + 1).await;
    }
    let s = SqliteReplayStore::open(dir.file()).unwrap();
    assert_eq!(reserve(&s, "j", T0, T0 + 5).await, done(T0 + 1));
}

#[tokio::test]
async fn two_stores_on_one_file_share_one_window() {
    let dir = Dir::new("two");
    let a = SqliteReplayStore::open(dir.file()).unwrap();
    let b = SqliteReplayStore::open(dir.file()).unwrap();
    deliver(&a, "j", T0, T0).await;
    assert_eq!(reserve(&b, "j", T0, T0 + 1).await, done(T0));
    // Raced: exactly one of the two reserves.
    for i in 0..50 {
        let jti = format!("race-{i}");
        let (x, y) = tokio::join!(reserve(&a, &jti, T0, T0), reserve(&b, &jti, T0, T0));
        let won = [&x, &y]
            .iter()
            .filter(|r| matches!(r, Reservation::Reserved(_)))
            .count();
        assert_eq!(won, 1, "{x:?} {y:?}");
    }
}

#[tokio::test]
async fn a_clock_stepped_back_cannot_bring_back_what_expired() {
    let dir = Dir::new("clock");
    let s = SqliteReplayStore::open(dir.file()).unwrap();
    for i in 0..16 {
        deliver(&s, &format!("j{i}"), T0, T0).await;
    }
    // The clock jumps a max age ahead: the 16 rows expire and are dropped.
    deliver(&s, "ahead", T0 + MAX_AGE, T0 + MAX_AGE).await;
    prune_now(&s).await;
    // Stepped back, the verifier would find j0 fresh again; the store refuses it.
    assert_eq!(
        reserve(&s, "j0", T0, T0 + 10).await,
        Reservation::OutsideWindow
    );
    assert_eq!(
        s.lookup(&attempt("j0", T0, T0 + 10)).await,
        Ok(Lookup::OutsideWindow)
    );
    // A token issued after them is still accepted.
    assert!(matches!(
        reserve(&s, "fresh", T0 + 10, T0 + 10).await,
        Reservation::Reserved(_)
    ));
}

#[tokio::test]
async fn a_reservation_whose_caller_gave_up_is_freed() {
    let dir = Dir::new("gave-up");
    let s = SqliteReplayStore::open(dir.file()).unwrap();
    drop(s.reserve(attempt("j", T0, T0)));
    // The thread serves the dropped reserve or skips it; either way the jti is free after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match reserve(&s, "j", T0, T0).await {
            Reservation::Reserved(_) => break,
            Reservation::InFlight if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_full_store_fails_closed_and_recovers_as_rows_expire() {
    let dir = Dir::new("full");
    let s = SqliteReplayStore::builder(dir.file())
        .max_size(64 * 1024)
        .open()
        .unwrap();
    let mut delivered = Vec::new();
    let mut refused = false;
    for i in 0..20_000 {
        let jti = format!("c5ba8f24-1a14-4c1e-93e6-{i:012}");
        match s.reserve(attempt(&jti, T0, T0)).await {
            Ok(Reservation::Reserved(l)) => {
                s.settle(&l, Outcome::Delivered).await.unwrap();
                delivered.push(jti);
            }
            Ok(other) => panic!("{other:?}"),
            Err(err) => {
                assert!(err.to_string().contains("full"), "{err}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "64 KiB never filled");
    assert!(delivered.len() > 100, "{}", delivered.len());
    // Full, every delivered jti is still refused.
    for jti in &delivered {
        assert_eq!(reserve(&s, jti, T0, T0 + 1).await, done(T0));
    }
    // Once the rows expire the store makes room by itself.
    let later = T0 + MAX_AGE;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match s.reserve(attempt("after", later, later)).await {
            Ok(Reservation::Reserved(_)) => break,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("never recovered: {other:?}"),
        }
    }
}

fn open_error(path: &std::path::Path) -> String {
    SqliteReplayStore::open(path).unwrap_err().to_string()
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = Dir::new("notadb");
    let text = b"these are notes, not a database, and long enough to fill a header";
    std::fs::write(dir.file(), text).unwrap();
    let err = open_error(&dir.file());
    assert!(err.contains(&dir.file().display().to_string()), "{err}");
    assert!(err.contains("not an SQLite database"), "{err}");
    assert_eq!(std::fs::read(dir.file()).unwrap(), text);
}

#[tokio::test]
async fn a_corrupt_database_is_refused() {
    let dir = Dir::new("corrupt");
    {
        let s = SqliteReplayStore::open(dir.file()).unwrap();
        for i in 0..2000 {
            deliver(&s, &format!("j{i}"), T0, T0).await;
        }
    }
    // Checkpointed into the main file on close; scribble over its second half.
    assert!(
        !wal(&dir.file()).exists(),
        "the log was folded into the file"
    );
    let mut bytes = std::fs::read(dir.file()).unwrap();
    let half = bytes.len() / 2;
    for b in &mut bytes[half..half + 8192] {
        *b = 0x5a;
    }
    std::fs::write(dir.file(), &bytes).unwrap();
    let err = open_error(&dir.file());
    assert!(err.contains(&dir.file().display().to_string()), "{err}");
    assert!(err.contains("corrupt"), "{err}");
}

/// The write-ahead log beside the store's file.
fn wal(file: &std::path::Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

#[tokio::test]
async fn the_last_handle_leaves_the_whole_window_in_the_file() {
    // Both connections closing at once could each leave the log to the other; 40 rounds
    // caught that one time in a few before the reader was made to close first.
    let dir = Dir::new("closed");
    for round in 0..40 {
        let s = SqliteReplayStore::open(dir.file()).unwrap();
        for i in 0..20 {
            let jti = format!("r{round}-{i}");
            deliver(&s, &jti, T0, T0).await;
            let _ = s.lookup(&attempt(&jti, T0, T0)).await;
        }
        drop(s);
        assert!(!wal(&dir.file()).exists(), "round {round} left a log");
    }
}

#[test]
fn a_directory_or_a_missing_folder_is_refused() {
    let dir = Dir::new("dir");
    let err = open_error(&dir.0);
    assert!(err.contains("is a directory"), "{err}");
    let err = open_error(&dir.0.join("no-such-folder").join("replay.sqlite3"));
    assert!(err.contains("no-such-folder"), "{err}");
}

#[test]
fn another_programs_table_of_the_same_name_is_refused() {
    let dir = Dir::new("foreign");
    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    conn.execute_batch("CREATE TABLE replay_window (id INTEGER PRIMARY KEY, note TEXT)")
        .unwrap();
    drop(conn);
    let err = open_error(&dir.file());
    assert!(err.contains("not this store's"), "{err}");
}

#[test]
fn rows_are_keyed_alike_in_every_process_and_apart_per_project() {
    let k = |a: &str, j: &str| worker::row_key(&ReplayKey::new(a, j));
    assert_eq!(k("a1b2", "c5ba"), k("a1b2", "c5ba"));
    assert_ne!(k("a", "bc"), k("ab", "c"));
    // Fixed bytes (SHA-256 of "a1b2", 0xff, "c5ba", first half): a file written by one
    // version is read by the next.
    assert_eq!(
        k("a1b2", "c5ba"),
        [121, 40, 206, 154, 52, 168, 177, 25, 120, 248, 223, 60, 176, 217, 234, 253]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_sustained_writes() {
    let dir = Dir::new("wal");
    let s = SqliteReplayStore::open(dir.file()).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..64 {
        let s = s.clone();
        tasks.spawn(async move {
            for i in 0..300 {
                deliver(&s, &format!("{client}-{i}"), T0, T0).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Checkpointed and restarted as it goes: a few MiB (1 000 pages and one batch), never the
    // sum of every commit (about 2 pages a callback: 19 200 callbacks would be 150 MiB).
    let wal = std::fs::metadata(format!("{}-wal", dir.file().display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(wal < 8 << 20, "write-ahead log of {wal} bytes");
}
