//! A replay store in one SQLite file (feature `sqlite`): durable across restarts and crashes,
//! shared by every process of the host, with no server to run.

mod open;
mod reply;
mod worker;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

pub use reply::SqliteReply;

use super::{
    Attempt, Lease, Lookup, Outcome, ReplayStore, ReplayStoreError, Reservation,
    DEFAULT_IN_FLIGHT_TTL,
};
use worker::{counted, Request, Worker};

/// Default bound on waiting for another process's lock: then the callback is answered 503.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// Default bound on each call, queue and commit included: well under the few seconds Vonage
/// waits, so that a stalled disk turns into a 503 (retried later) rather than a timeout.
pub const DEFAULT_SQLITE_TIMEOUT: Duration = Duration::from_millis(2500);
/// Default number of requests waiting for the store's threads before new callbacks are refused
/// with 503: bounds the memory a stalled disk can make the process hold.
pub const DEFAULT_QUEUE: usize = 4096;

/// Replay protection in one file: a restart, a crash or a second process on the same host
/// shares the window.
///
/// **Durability.** A delivered mark is committed with `synchronous = FULL` (the write-ahead log
/// is fsynced) before the settle resolves, and the layer sends the handler's 2xx only after
/// that: a callback whose 2xx went out is on disk, and survives a kill, a crash or a power cut.
/// Should that commit fail (the disk full), the 2xx still goes out, as with every store (the
/// handler has acted), and the store keeps retrying the mark until the token is stale; until
/// then the reservation's row keeps refusing the callback (503 `duplicate_in_flight`), and on a
/// full disk every new reservation fails the same way (503), so no replay is accepted meanwhile.
///
/// **Speed.** SQLite calls run on two threads of the store's own, never on the async workers:
/// reservations and settles queue to a writer, which serves everything queued since its last
/// commit in one transaction, so concurrent callbacks share one fsync (group commit); the
/// look-ups before the body go to a reader on a connection of its own, which never waits for
/// the writer's commits. Every read and write of a call is a point look-up on the primary
/// key; expired rows go a slice at a time through an index on their expiry.
///
/// **Sharing.** The file is in WAL mode: every process that opens it (two workers, a
/// blue/green switch) sees one window, and a `jti` delivered through one is refused by the
/// others. A process waits at most the [lock timeout](SqliteStoreBuilder::lock_timeout) for
/// another's lock, then answers 503. Keep the file on a local disk: SQLite's locking does not
/// hold over network file systems.
///
/// **Bounded.** A row lives until its token is stale (max age + clock skew, the last accepted
/// second included), or an in-flight reservation until its TTL, then is dropped as the store
/// goes; the file's size follows the callbacks of one max age (see the README's table).
/// [`max_size`](SqliteStoreBuilder::max_size) caps it: a full store answers 503 and recovers by
/// itself as rows expire.
///
/// **Shutdown.** When the last handle is dropped, the store finishes what was queued (delivery
/// marks it owes included), closes the file and only then returns: drop it before the process
/// exits and a store opened after it finds every delivery. That drop may wait for one
/// transaction; do it at shutdown.
///
/// **Faults.** A file that is not a database, is corrupt, or cannot be written is refused at
/// [`open`](Self::open) with an error naming the file and the cause: the store never silently
/// starts empty over a window it cannot read.
///
/// ```no_run
/// use vonage_secure_callbacks::replay::SqliteReplayStore;
/// use vonage_secure_callbacks::{Secrets, SecureCallbackLayer};
///
/// let store = SqliteReplayStore::open("/var/lib/my-app/replay.sqlite3")?;
/// let layer = SecureCallbackLayer::new(Secrets::from_env()?).replay_store(store);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SqliteReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// To the writer thread: reservations and settles.
    requests: Sender<Request>,
    /// To the reader thread: look-ups, which never wait behind the writer's commits (WAL
    /// readers see every committed write without taking its lock).
    lookups: Sender<Request>,
    /// The two threads, joined when the last handle goes: the reader first, so that the
    /// writer's connection is the file's last and folds the write-ahead log into it.
    reader: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    /// Requests queued and not yet taken by the thread.
    queued: Arc<AtomicUsize>,
    path: PathBuf,
    timeout: Duration,
    queue: usize,
    in_flight_ttl: Duration,
}

/// How to open the store: from [`SqliteReplayStore::builder`]; [`open`](Self::open) ends it.
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    timeout: Duration,
    lock_timeout: Duration,
    queue: usize,
    in_flight_ttl: Duration,
    max_size: Option<u64>,
    check_integrity: bool,
}

impl SqliteStoreBuilder {
    /// Bound on each call, from the request's point of view (default
    /// [`DEFAULT_SQLITE_TIMEOUT`]): past it the callback is answered 503.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bound on waiting for another process's lock on the file (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Most requests waiting for the store's thread (default [`DEFAULT_QUEUE`]); past it new
    /// callbacks are answered 503.
    pub fn queue(mut self, requests: usize) -> Self {
        self.queue = requests;
        self
    }

    /// Lifetime of an in-flight reservation (default [`DEFAULT_IN_FLIGHT_TTL`]); make it longer
    /// than your slowest handler.
    pub fn in_flight_ttl(mut self, ttl: Duration) -> Self {
        self.in_flight_ttl = ttl;
        self
    }

    /// Largest size of the database file, in bytes (SQLite's `max_page_count`; default: no
    /// limit but the disk's). A full store answers 503 until expired rows make room.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// Whether [`open`](Self::open) runs SQLite's `quick_check` over the whole file (default
    /// true). It reads every page: 4.5 s for a 690 MB file on the machine of BENCHMARKS.md
    /// (12 h at 250 callbacks a second). Without it a corrupt page is found only when a
    /// callback touches it, and that callback is answered 503.
    pub fn check_integrity(mut self, check: bool) -> Self {
        self.check_integrity = check;
        self
    }

    /// Opens the file (creating it when there is none), checks it and starts the store's
    /// threads. Every error names the file and the cause.
    ///
    /// This blocks while it reads the file (the integrity check reads every page): call it
    /// at start, before serving, or through `tokio::task::spawn_blocking`.
    pub fn open(self) -> Result<SqliteReplayStore, ReplayStoreError> {
        let options = open::Options {
            path: &self.path,
            lock_timeout: self.lock_timeout,
            max_size: self.max_size,
            check_integrity: self.check_integrity,
        };
        let writer = open::open(&options)?;
        let reader = open::open_reader(&options)?;
        let queued = Arc::new(AtomicUsize::new(0));
        let (requests, write_thread) = spawn(
            "vonage-replay-write",
            Worker::writer(writer, queued.clone()),
        )?;
        let (lookups, read_thread) =
            spawn("vonage-replay-read", Worker::reader(reader, queued.clone()))?;
        Ok(SqliteReplayStore {
            inner: Arc::new(Inner {
                requests,
                lookups,
                reader: Some(read_thread),
                writer: Some(write_thread),
                queued,
                path: self.path,
                timeout: self.timeout,
                queue: self.queue,
                in_flight_ttl: self.in_flight_ttl,
            }),
        })
    }
}

/// Starts `worker` on a thread of its own; returns where to send it requests, and the thread.
fn spawn(
    name: &str,
    worker: Worker,
) -> Result<(Sender<Request>, JoinHandle<()>), ReplayStoreError> {
    let (requests, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || worker.run(receiver))
        .map_err(|e| {
            ReplayStoreError::new(format!("cannot start the SQLite store's thread: {e}"))
        })?;
    Ok((requests, thread))
}

/// The last handle gone, the threads finish what was queued (owed delivery marks included),
/// close their connections, and are waited for: a process that drops its store before it exits
/// leaves the file complete, and a store opened after it on the same file finds every delivery.
impl Drop for Inner {
    fn drop(&mut self) {
        // Closing a queue is what tells its thread to stop. When both connections close at
        // once, each can see the other still open and leave the log unmerged: close in turn.
        let closed = || std::sync::mpsc::channel().0;
        drop(std::mem::replace(&mut self.lookups, closed()));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        drop(std::mem::replace(&mut self.requests, closed()));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl SqliteReplayStore {
    /// Opens the store in the file at `path` with the default settings; see
    /// [`builder`](Self::builder).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReplayStoreError> {
        Self::builder(path).open()
    }

    /// Starts configuring a store in the file at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_owned(),
            timeout: DEFAULT_SQLITE_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            queue: DEFAULT_QUEUE,
            in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
            max_size: None,
            check_integrity: true,
        }
    }

    /// The file the window is kept in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Lifetime of an in-flight reservation.
    pub fn in_flight_ttl(&self) -> Duration {
        self.inner.in_flight_ttl
    }

    /// Queues `request` for the thread; its answer arrives on `answer`.
    fn send<T>(
        &self,
        request: Request,
        answer: oneshot::Receiver<Result<T, ReplayStoreError>>,
    ) -> SqliteReply<T> {
        let inner = &self.inner;
        let counts = counted(&request);
        if counts {
            let admitted = inner
                .queued
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < inner.queue).then_some(n + 1)
                })
                .is_ok();
            if !admitted {
                return SqliteReply::refused(ReplayStoreError::new(format!(
                    "the SQLite replay store has {} requests waiting",
                    inner.queue
                )));
            }
        }
        let to = match request {
            Request::Lookup { .. } => &inner.lookups,
            _ => &inner.requests,
        };
        if to.send(request).is_err() {
            if counts {
                inner.queued.fetch_sub(1, Ordering::AcqRel);
            }
            return SqliteReply::refused(ReplayStoreError::new(
                "the SQLite replay store's thread stopped",
            ));
        }
        SqliteReply::waiting(answer, inner.timeout)
    }
}

impl ReplayStore for SqliteReplayStore {
    type LookupFuture = SqliteReply<Lookup>;
    type ReserveFuture = SqliteReply<Reservation>;
    type SettleFuture = SqliteReply<()>;

    fn lookup(&self, attempt: &Attempt) -> Self::LookupFuture {
        let (answer, receiver) = oneshot::channel();
        let attempt = attempt.clone();
        self.send(Request::Lookup { attempt, answer }, receiver)
    }

    fn reserve(&self, attempt: Attempt) -> Self::ReserveFuture {
        let (answer, receiver) = oneshot::channel();
        let request = Request::Reserve {
            lease: Lease::new(attempt),
            in_flight_ttl: self.inner.in_flight_ttl.as_secs().max(1),
            answer,
        };
        self.send(request, receiver)
    }

    fn settle(&self, lease: &Lease, outcome: Outcome) -> Self::SettleFuture {
        let (answer, receiver) = oneshot::channel();
        let request = Request::Settle {
            lease: lease.clone(),
            outcome,
            answer: Some(answer),
        };
        self.send(request, receiver)
    }

    /// Queued to the store's thread, which retries a delivery that fails until its token is
    /// stale (a release is tried once: the in-flight TTL frees the key otherwise).
    fn settle_detached(&self, lease: Lease, outcome: Outcome) {
        let _ = self.inner.requests.send(Request::Settle {
            lease,
            outcome,
            answer: None,
        });
    }
}

impl fmt::Debug for SqliteReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteReplayStore")
            .field("path", &self.inner.path)
            .field("timeout", &self.inner.timeout)
            .field("queue", &self.inner.queue)
            .field("in_flight_ttl", &self.inner.in_flight_ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
