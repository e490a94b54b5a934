//! The store's threads: each owns a connection, takes every request queued since its last
//! commit, serves them in one transaction and answers them only once that transaction is
//! committed (group commit: one fsync for a batch of concurrent callbacks).
//!
//! Between batches the writer drops expired rows a slice at a time, and retries the delivery
//! marks it owes (settles that failed or whose request went away). The reader serves look-ups.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::open::cause;
use crate::replay::{Attempt, Lease, Lookup, Outcome, ReplayKey, ReplayStoreError, Reservation};

/// Most requests served in one transaction: long enough to share an fsync among a burst, short
/// enough that the lock is never held for long.
const MAX_BATCH: usize = 512;
/// Most expired rows dropped in one transaction, so that pruning never holds the lock long.
const PRUNE_SLICE: usize = 2_000;
/// How often expired rows are looked for when there is nothing else to do.
const PRUNE_EVERY: Duration = Duration::from_secs(1);
/// Backoff of owed delivery marks.
const OWED_MIN: Duration = Duration::from_millis(50);
const OWED_MAX: Duration = Duration::from_secs(1);

type Answer<T> = oneshot::Sender<Result<T, ReplayStoreError>>;

/// One call of the store, with where to send its answer.
pub(super) enum Request {
    Lookup {
        attempt: Attempt,
        answer: Answer<Lookup>,
    },
    Reserve {
        lease: Lease,
        in_flight_ttl: u64,
        answer: Answer<Reservation>,
    },
    Settle {
        lease: Lease,
        outcome: Outcome,
        /// None: detached; a delivery that fails is owed and retried.
        answer: Option<Answer<()>>,
    },
}

impl Request {
    fn now(&self) -> u64 {
        match self {
            Request::Lookup { attempt, .. } => attempt.now(),
            Request::Reserve { lease, .. } | Request::Settle { lease, .. } => lease.attempt().now(),
        }
    }

    fn writes(&self) -> bool {
        !matches!(self, Request::Lookup { .. })
    }

    /// Its caller gave up (timed out, dropped): a read or a reservation is not worth doing.
    fn abandoned(&self) -> bool {
        match self {
            Request::Lookup { answer, .. } => answer.is_closed(),
            Request::Reserve { answer, .. } => answer.is_closed(),
            Request::Settle { .. } => false,
        }
    }
}

/// What one request came to inside the transaction, answered after the commit.
enum Served {
    Lookup(Lookup),
    Reservation(Reservation),
    Settled,
}

/// A delivery mark not yet committed: retried until it sticks or its token is stale anyway.
struct Owed {
    lease: Lease,
    next: Instant,
    delay: Duration,
}

pub(super) struct Worker {
    conn: Connection,
    /// The writer prunes and keeps owed marks; the reader only looks up.
    writes: bool,
    /// Requests queued and not yet taken (the store refuses new ones past its bound).
    queued: Arc<AtomicUsize>,
    /// The "now" of the latest request: the layer's clock, which pruning follows.
    now: u64,
    owed: Vec<Owed>,
    next_prune: Instant,
}

impl Worker {
    /// The thread that reserves, settles and prunes.
    pub(super) fn writer(conn: Connection, queued: Arc<AtomicUsize>) -> Self {
        Self::new(conn, queued, true)
    }

    /// The thread that serves look-ups.
    pub(super) fn reader(conn: Connection, queued: Arc<AtomicUsize>) -> Self {
        Self::new(conn, queued, false)
    }

    fn new(conn: Connection, queued: Arc<AtomicUsize>, writes: bool) -> Self {
        Self {
            conn,
            writes,
            queued,
            now: 0,
            owed: Vec::new(),
            next_prune: Instant::now(),
        }
    }

    /// Serves requests until every handle of the store is dropped.
    pub(super) fn run(mut self, requests: Receiver<Request>) {
        loop {
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            let mut batch = match requests.recv_timeout(wait) {
                Ok(first) => vec![first],
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.retry_owed(true);
                    return;
                }
            };
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let taken = batch.iter().filter(|r| counted(r)).count();
            self.queued.fetch_sub(taken, Ordering::AcqRel);
            batch.retain(|r| !r.abandoned());
            if !batch.is_empty() {
                self.serve(batch);
            }
            if self.writes {
                self.retry_owed(false);
                if Instant::now() >= self.next_prune {
                    self.prune();
                }
            }
        }
    }

    fn next_wake(&self) -> Instant {
        if !self.writes {
            return Instant::now() + Duration::from_secs(3600);
        }
        self.owed
            .iter()
            .map(|o| o.next)
            .fold(self.next_prune, Instant::min)
    }

    fn serve(&mut self, batch: Vec<Request>) {
        // The latest, not the largest: after a clock put right, pruning follows it.
        if let Some(last) = batch.last() {
            self.now = last.now();
        }
        match self.transaction(&batch) {
            Ok(served) => {
                for (request, served) in batch.into_iter().zip(served) {
                    self.answer(request, Ok(served));
                }
            }
            Err(err) => {
                if err.sqlite_error_code() == Some(ErrorCode::DiskFull) {
                    self.prune();
                }
                // One failing request (the disk full for its insert, say) must not sink the
                // others: each is tried again alone, after room was looked for.
                let retry = batch.len() > 1;
                let error = store_error(&err);
                for request in batch {
                    let served = if retry {
                        let one = std::slice::from_ref(&request);
                        let served = self.transaction(one).map(|mut s| s.remove(0));
                        served.map_err(|e| store_error(&e))
                    } else {
                        Err(error.clone())
                    };
                    self.answer(request, served);
                }
            }
        }
    }

    /// Serves `batch` in one transaction; nothing of it is answered unless the commit succeeds.
    fn transaction(&mut self, batch: &[Request]) -> rusqlite::Result<Vec<Served>> {
        let behavior = if batch.iter().any(Request::writes) {
            // Takes the write lock at once: no deadlock between two processes upgrading.
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        let tx = self.conn.transaction_with_behavior(behavior)?;
        let floor = floor(&tx)?;
        let served = batch
            .iter()
            .map(|request| serve_one(&tx, floor, request))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(served)
    }

    fn answer(&mut self, request: Request, served: Result<Served, ReplayStoreError>) {
        match (request, served) {
            (Request::Lookup { answer, .. }, Ok(Served::Lookup(found))) => {
                let _ = answer.send(Ok(found));
            }
            (Request::Reserve { answer, .. }, Ok(Served::Reservation(reservation))) => {
                // Its caller gave up after the reservation was committed: free it now rather
                // than hold the jti until the in-flight TTL.
                if let Err(Ok(Reservation::Reserved(lease))) = answer.send(Ok(reservation)) {
                    let release = Request::Settle {
                        lease,
                        outcome: Outcome::NotDelivered,
                        answer: None,
                    };
                    let _ = self.transaction(std::slice::from_ref(&release));
                }
            }
            (
                Request::Settle {
                    lease,
                    outcome,
                    answer,
                },
                served,
            ) => {
                let failed = served.is_err();
                match answer {
                    Some(answer) => {
                        let _ = answer.send(served.map(drop));
                    }
                    // Detached: a delivery that could not be marked is owed.
                    None if failed && outcome == Outcome::Delivered => self.owe(lease),
                    None => {}
                }
            }
            (Request::Lookup { answer, .. }, Err(err)) => {
                let _ = answer.send(Err(err));
            }
            (Request::Reserve { answer, .. }, Err(err)) => {
                let _ = answer.send(Err(err));
            }
            (Request::Lookup { answer, .. }, Ok(_)) => {
                let _ = answer.send(Err(mismatch()));
            }
            (Request::Reserve { answer, .. }, Ok(_)) => {
                let _ = answer.send(Err(mismatch()));
            }
        }
    }

    fn owe(&mut self, lease: Lease) {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "vonage_secure_callbacks", jti = lease.key().jti(),
            "could not mark a delivered callback in the SQLite replay store; retrying");
        self.owed.push(Owed {
            lease,
            next: Instant::now() + OWED_MIN,
            delay: OWED_MIN,
        });
    }

    /// Retries the owed delivery marks that are due (all of them when `all`), in one
    /// transaction; one whose token is stale by now is owed no more.
    fn retry_owed(&mut self, all: bool) {
        let now = Instant::now();
        let clock = self.now;
        self.owed
            .retain(|o| o.lease.attempt().retention().until() > clock);
        let due: Vec<Request> = self
            .owed
            .iter()
            .filter(|o| all || o.next <= now)
            .map(|o| Request::Settle {
                lease: o.lease.clone(),
                outcome: Outcome::Delivered,
                answer: None,
            })
            .collect();
        if due.is_empty() {
            return;
        }
        if self.transaction(&due).is_ok() {
            self.owed.retain(|o| !(all || o.next <= now));
        } else {
            for o in self.owed.iter_mut().filter(|o| all || o.next <= now) {
                o.delay = (o.delay * 2).min(OWED_MAX);
                o.next = now + o.delay;
            }
        }
    }

    /// Drops a slice of the rows expired at the layer's latest "now", raising the floor over
    /// the delivered ones among them; comes back at once while more are left.
    fn prune(&mut self) {
        let result = prune(&mut self.conn, self.now);
        self.next_prune = match result {
            Ok(dropped) if dropped == PRUNE_SLICE => Instant::now(),
            _ => Instant::now() + PRUNE_EVERY,
        };
    }
}

/// Requests that count against the queue's bound: settles never do, since each ends a
/// reservation that was counted already and must not be refused.
pub(super) fn counted(request: &Request) -> bool {
    !matches!(request, Request::Settle { .. })
}

fn mismatch() -> ReplayStoreError {
    ReplayStoreError::new("the SQLite replay store answered out of order")
}

pub(super) fn store_error(err: &rusqlite::Error) -> ReplayStoreError {
    // SQLite's words never quote a key: rows are keyed by digests.
    ReplayStoreError::new(format!("SQLite replay store: {}", cause(err)))
}

/// A row's key: the same in every process, 16 bytes whatever the lengths.
pub(super) fn row_key(key: &ReplayKey) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(key.api_key().as_bytes());
    // 0xff never occurs in UTF-8, so ("a", "bc") and ("ab", "c") differ.
    hasher.update([0xff]);
    hasher.update(key.jti().as_bytes());
    let digest = hasher.finalize();
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn owner(lease: &Lease) -> i64 {
    // The owner token's bits as SQLite's signed integer; 0 stays 0 (delivered), and an owner
    // is never 0.
    i64::from_ne_bytes(lease.owner().to_ne_bytes())
}

/// The floor: every delivered row dropped so far had a retention ending at or before it. A
/// token whose own retention ends there is refused (`OutsideWindow`): with a right clock it is
/// stale anyway, and after a clock stepped back it might be a replay whose row is gone.
/// Measured on retention rather than `iat`, so that layers of different max ages can share a
/// file without one refusing the other's fresh tokens.
fn floor(conn: &Connection) -> rusqlite::Result<u64> {
    let floor: Option<i64> = conn
        .prepare_cached("SELECT value FROM replay_meta WHERE name = 'floor'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(floor.map_or(0, |f| u64::try_from(f).unwrap_or(0)))
}

/// A row as the store reads it.
struct Row {
    owner: i64,
    until: u64,
    delivered_at: Option<u64>,
}

fn row(conn: &Connection, key: &[u8; 16]) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached("SELECT owner, until, delivered_at FROM replay_window WHERE key = ?1")?
        .query_row([key], |r| {
            Ok(Row {
                owner: r.get(0)?,
                until: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                delivered_at: r
                    .get::<_, Option<i64>>(2)?
                    .and_then(|t| u64::try_from(t).ok()),
            })
        })
        .optional()
}

fn serve_one(conn: &Connection, floor: u64, request: &Request) -> rusqlite::Result<Served> {
    match request {
        Request::Lookup { attempt, .. } => {
            if attempt.retention().until() <= floor {
                return Ok(Served::Lookup(Lookup::OutsideWindow));
            }
            let found = match row(conn, &row_key(attempt.key()))? {
                Some(r) if r.owner == 0 && r.until > attempt.now() => {
                    Lookup::Delivered { at: r.delivered_at }
                }
                _ => Lookup::Unknown,
            };
            Ok(Served::Lookup(found))
        }
        Request::Reserve {
            lease,
            in_flight_ttl,
            ..
        } => {
            let attempt = lease.attempt();
            if attempt.retention().until() <= floor {
                return Ok(Served::Reservation(Reservation::OutsideWindow));
            }
            let key = row_key(attempt.key());
            let now = attempt.now();
            match row(conn, &key)? {
                Some(r) if r.until > now && r.owner == 0 => {
                    return Ok(Served::Reservation(Reservation::AlreadyDone {
                        at: r.delivered_at,
                    }))
                }
                Some(r) if r.until > now => return Ok(Served::Reservation(Reservation::InFlight)),
                // Absent, stale, or a reservation whose handler outlived its TTL: taken over.
                // The old owner's late release will not match and frees nothing.
                _ => {}
            }
            conn.prepare_cached(
                "INSERT INTO replay_window (key, owner, until, delivered_at) VALUES (?1, ?2, ?3, NULL)
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until = excluded.until,
                 delivered_at = NULL",
            )?
            .execute(params![
                key,
                owner(lease),
                int(now.saturating_add(*in_flight_ttl))
            ])?;
            Ok(Served::Reservation(Reservation::Reserved(lease.clone())))
        }
        Request::Settle {
            lease,
            outcome: Outcome::Delivered,
            ..
        } => {
            // Delivered wins over whatever holds the key now: it is never forgotten early.
            let attempt = lease.attempt();
            conn.prepare_cached(
                "INSERT INTO replay_window (key, owner, until, delivered_at) VALUES (?1, 0, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET owner = 0, until = max(until, excluded.until),
                 delivered_at = excluded.delivered_at",
            )?
            .execute(params![
                row_key(attempt.key()),
                int(attempt.retention().until()),
                int(attempt.now())
            ])?;
            Ok(Served::Settled)
        }
        Request::Settle {
            lease,
            outcome: Outcome::NotDelivered,
            ..
        } => {
            // Only this reservation's own row: never a delivered one, never a successor's.
            conn.prepare_cached("DELETE FROM replay_window WHERE key = ?1 AND owner = ?2")?
                .execute(params![row_key(lease.key()), owner(lease)])?;
            Ok(Served::Settled)
        }
    }
}

/// Drops up to [`PRUNE_SLICE`] rows expired at `now` and raises the floor over the delivered
/// ones, in one transaction; returns how many went.
fn prune(conn: &mut Connection, now: u64) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (dropped, newest) = {
        let mut stmt = tx.prepare_cached(
            "DELETE FROM replay_window WHERE key IN
               (SELECT key FROM replay_window WHERE until <= ?1 ORDER BY until LIMIT ?2)
             RETURNING owner, until",
        )?;
        let mut rows = stmt.query(params![int(now), PRUNE_SLICE as i64])?;
        let (mut dropped, mut newest) = (0, 0i64);
        while let Some(r) = rows.next()? {
            dropped += 1;
            if r.get::<_, i64>(0)? == 0 {
                newest = newest.max(r.get(1)?);
            }
        }
        (dropped, newest)
    };
    if newest > 0 {
        tx.prepare_cached(
            "INSERT INTO replay_meta (name, value) VALUES ('floor', ?1)
             ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        )?
        .execute([newest])?;
    }
    tx.commit()?;
    Ok(dropped)
}
