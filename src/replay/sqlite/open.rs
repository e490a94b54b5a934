//! Opening the store's file: every way it can be wrong is an error naming the file and the
//! cause, and nothing ever silently starts an empty window over a file that held one.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::replay::ReplayStoreError;

/// The layout this version writes and reads; a file marked with another is refused.
const SCHEMA_VERSION: i64 = 1;

/// One row per remembered callback. `key`: 16 bytes of SHA-256 over `api_key`, 0xff, `jti` (the
/// same in every process, half the size of the strings). `owner`: 0 once delivered, else the
/// owner token of the reservation holding it. `until`: the Unix second from which the row may
/// be dropped (a delivered token's retention, a reservation's deadline). `delivered_at`: when
/// the delivery was verified. The index on `until` keeps pruning a range scan.
///
/// `replay_meta` holds the schema version and the floor (see the worker).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replay_window (
    key BLOB PRIMARY KEY NOT NULL,
    owner INTEGER NOT NULL,
    until INTEGER NOT NULL,
    delivered_at INTEGER
) WITHOUT ROWID, STRICT;
CREATE TABLE IF NOT EXISTS replay_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID, STRICT;
";

const INDEX: &str = "CREATE INDEX IF NOT EXISTS replay_window_until ON replay_window (until);";

/// How the connection is set up; from the builder.
pub(super) struct Options<'a> {
    pub(super) path: &'a Path,
    pub(super) lock_timeout: Duration,
    pub(super) max_size: Option<u64>,
    pub(super) check_integrity: bool,
}

/// Opens (creating it if there is no file yet) and checks the store's file.
pub(super) fn open(options: &Options<'_>) -> Result<Connection, ReplayStoreError> {
    let path = options.path;
    let fail = |cause: String| unusable(path, &cause);
    precheck(path).map_err(fail)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| fail(cause(&e)))?;
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(fail("SQLite opened it read-only".into()));
    }
    configure(&conn, options).map_err(|e| fail(cause(&e)))?;
    if options.check_integrity {
        integrity(&conn).map_err(fail)?;
    }
    schema(&conn).map_err(fail)?;
    Ok(conn)
}

/// A second connection to the file that [`open`] checked, for the reader thread: the same
/// journal and lock timeout, nothing written.
pub(super) fn open_reader(options: &Options<'_>) -> Result<Connection, ReplayStoreError> {
    let fail = |e: rusqlite::Error| unusable(options.path, &cause(&e));
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(options.path, flags).map_err(fail)?;
    conn.busy_timeout(options.lock_timeout).map_err(fail)?;
    Ok(conn)
}

/// The error of a file the store cannot use: its path and why.
fn unusable(path: &Path, cause: &str) -> ReplayStoreError {
    ReplayStoreError::new(format!(
        "cannot use {} as the replay store: {cause}",
        path.display()
    ))
}

/// What the operating system says of the file and its folder, before SQLite (whose
/// "unable to open database file" names no reason).
fn precheck(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err("it is a directory".into()),
        Ok(_) => {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| format!("the file cannot be opened for reading and writing: {e}"))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("the file cannot be examined: {e}")),
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir)
        .map_err(|e| format!("its directory {} cannot be examined: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    Ok(())
}

/// Journal, durability and limits. WAL lets readers and one writer of several processes share
/// the file; `synchronous = FULL` fsyncs the log at each commit, so a committed delivery
/// survives a crash or a power cut.
fn configure(conn: &Connection, options: &Options<'_>) -> rusqlite::Result<()> {
    conn.busy_timeout(options.lock_timeout)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "the journal stays {mode:?}: WAL is needed (a local file system that supports shared memory)"
            )),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The log is cut back to this after each checkpoint, so it cannot keep a burst's size.
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
    if let Some(bytes) = options.max_size {
        let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page.max(512);
        conn.pragma_update(None, "max_page_count", pages.max(1))?;
    }
    Ok(())
}

fn integrity(conn: &Connection) -> Result<(), String> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check(3)")
        .map_err(|e| cause(&e))?;
    let findings: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(|e| cause(&e))?;
    match findings.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(format!(
            "the database is corrupt (SQLite's quick_check: {}); move it aside and restart (the \
             store then starts empty: see the README on what that reopens)",
            findings.join("; ")
        )),
    }
}

fn schema(conn: &Connection) -> Result<(), String> {
    conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}"))
        .map_err(|e| cause(&e))?;
    let version = conn
        .query_row(
            "INSERT INTO replay_meta (name, value) VALUES ('schema', ?1)
             ON CONFLICT (name) DO UPDATE SET value = value RETURNING value",
            [SCHEMA_VERSION],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| cause(&e));
    // The columns this version reads: a table of another shape is someone else's.
    let shape = conn
        .prepare("SELECT key, owner, until, delivered_at FROM replay_window LIMIT 0")
        .map(drop)
        .map_err(|e| {
            format!(
                "its replay_window table is not this store's ({})",
                cause(&e)
            )
        })
        .and_then(|()| conn.execute_batch(INDEX).map_err(|e| cause(&e)));
    let outcome = match (version, shape) {
        (Ok(SCHEMA_VERSION), Ok(())) => conn.execute_batch("COMMIT").map_err(|e| cause(&e)),
        (Ok(other), Ok(())) => Err(format!(
            "it was written by another version of this crate (schema {other}, this one reads {SCHEMA_VERSION})"
        )),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if outcome.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// SQLite's error in words an operator acts on.
pub(super) fn cause(err: &rusqlite::Error) -> String {
    let code = err.sqlite_error_code();
    let hint = match code {
        Some(ErrorCode::NotADatabase) => "it is not an SQLite database",
        Some(ErrorCode::DatabaseCorrupt) => "the database is corrupt",
        Some(ErrorCode::CannotOpen) => {
            "it cannot be opened (its directory must be writable: SQLite keeps -wal and -shm files beside it)"
        }
        Some(ErrorCode::ReadOnly) => "it is read-only for this process",
        Some(ErrorCode::PermissionDenied) => "permission denied",
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another process holds it locked longer than the lock timeout"
        }
        Some(ErrorCode::DiskFull) => "the disk (or the store's size limit) is full",
        _ => "",
    };
    match hint {
        "" => format!("SQLite: {err}"),
        hint => format!("{hint} (SQLite: {err})"),
    }
}
