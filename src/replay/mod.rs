//! Replay protection: each verified `jti` is looked up before the body is read, reserved while
//! the inner service runs, remembered once it answered 2xx, and released otherwise so that
//! Vonage's retry is accepted.
//!
//! A reservation is a [`Lease`] with an owner token that only its request knows: a late release
//! never frees a reservation that another request took over after the in-flight TTL.
//!
//! Delivery is at least once: a request dropped while its handler runs (the client went away,
//! a timeout) releases its `jti`, and Vonage's retry then runs the handler again. Handlers must
//! be idempotent, for example keyed by the `jti` (see [`guide::handlers`](crate::guide::handlers)),
//! or, with the PostgreSQL store, commit the delivery mark with their own writes (see
//! [`guide::replay_stores`](crate::guide::replay_stores)).

mod lease;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod retry;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::fmt;
use std::future::Future;

pub use lease::{Attempt, Lease, ReplayKey, Retention};
pub use memory::{
    MemoryReplayStore, MemoryStoreBuilder, DEFAULT_CAPACITY, DEFAULT_IN_FLIGHT_TTL, MIN_WINDOW,
};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresReplayStore, PostgresStoreBuilder, DEFAULT_TABLE};
#[cfg(feature = "redis")]
pub use redis::{RedisReplayStore, RedisStoreBuilder, DEFAULT_PREFIX, DEFAULT_TIMEOUT};
#[cfg(feature = "sqlite")]
pub use sqlite::{
    SqliteReplayStore, SqliteReply, SqliteStoreBuilder, DEFAULT_LOCK_TIMEOUT, DEFAULT_QUEUE,
    DEFAULT_SQLITE_TIMEOUT,
};

/// What [`ReplayStore::lookup`] found, before the body is read. Read only: nothing is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not delivered as far as the store knows: read the body, then reserve.
    Unknown,
    /// Delivered and answered 2xx already: refused at once (409), without reading the body.
    Delivered {
        /// When that delivery was verified (Unix seconds, the layer's clock), if the store
        /// keeps it.
        at: Option<u64>,
    },
    /// Older than the store can vouch for (its window shrank when it filled up): refused at once.
    OutsideWindow,
}

/// What [`ReplayStore::reserve`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// The `jti` was free and is now reserved for this request.
    Reserved(Lease),
    /// Another request holds the `jti` right now (answered 503 with `Retry-After`).
    InFlight,
    /// The `jti` was delivered and answered 2xx already (answered 409).
    AlreadyDone {
        /// When that delivery was verified (Unix seconds, the layer's clock), if the store
        /// keeps it.
        at: Option<u64>,
    },
    /// The token is older than the store can vouch for (answered `replay_window_exceeded`).
    OutsideWindow,
}

/// How a reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The inner service answered 2xx: remember the `jti` as delivered.
    Delivered,
    /// It failed, answered non-2xx, or the request was dropped before it answered: forget the
    /// reservation, so that Vonage's retry is accepted.
    NotDelivered,
}

/// The store could not answer (unreachable, too slow, full of in-flight callbacks); the callback
/// is refused with `replay_store_unavailable` (503), so Vonage retries it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayStoreError {
    message: String,
}

impl ReplayStoreError {
    /// An error with a short description. Never put a token or body in it.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ReplayStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replay store unavailable: {}", self.message)
    }
}

impl std::error::Error for ReplayStoreError {}

/// Where reserved and delivered `jti`s are kept. Consulted only after the token's signature,
/// issuer and age were checked, so a forged request can never reserve or burn a `jti`.
///
/// The futures are associated types, so the layer's response future holds them without boxing.
pub trait ReplayStore: Clone + Send + Sync + 'static {
    /// Future of [`lookup`](Self::lookup).
    type LookupFuture: Future<Output = Result<Lookup, ReplayStoreError>> + Send + 'static;
    /// Future of [`reserve`](Self::reserve).
    type ReserveFuture: Future<Output = Result<Reservation, ReplayStoreError>> + Send + 'static;
    /// Future of [`settle`](Self::settle).
    type SettleFuture: Future<Output = Result<(), ReplayStoreError>> + Send + 'static;

    /// Whether the layer puts each reservation's [`Lease`] in the request extensions, for a
    /// handler that settles the callback itself (the PostgreSQL store's `mark_delivered`, in
    /// the handler's transaction). Off by default: the other stores' handlers have no use for
    /// it, and it would cost each callback an allocation.
    const LEASE_FOR_HANDLER: bool = false;

    /// Whether `attempt` was delivered already, without reserving anything: lets the layer refuse
    /// a replay before it reads (and waits for) the body.
    fn lookup(&self, attempt: &Attempt) -> Self::LookupFuture;

    /// Atomically reserves the attempt's key unless it is in flight or delivered.
    fn reserve(&self, attempt: Attempt) -> Self::ReserveFuture;

    /// Ends the reservation `lease`. [`Outcome::Delivered`] marks the key delivered whoever
    /// holds it now (a delivered callback is never forgotten); [`Outcome::NotDelivered`] frees
    /// the key only while `lease` still owns it.
    fn settle(&self, lease: &Lease, outcome: Outcome) -> Self::SettleFuture;

    /// Ends `lease` without the request: its settle failed, or the request was dropped before
    /// the settle finished. Stores that can fail should keep trying in the background; the
    /// default settles once and drops the result.
    fn settle_detached(&self, lease: Lease, outcome: Outcome) {
        drop(self.settle(&lease, outcome));
    }
}

/// A reservation held by a request; dropped before it is settled, it settles itself detached.
pub(crate) struct Held<R: ReplayStore> {
    store: R,
    lease: Lease,
    outcome: Outcome,
    settled: bool,
}

impl<R: ReplayStore> Held<R> {
    /// Holds `lease`; dropped as it is, the reservation is released.
    pub(crate) fn new(store: R, lease: Lease) -> Self {
        Self {
            store,
            lease,
            outcome: Outcome::NotDelivered,
            settled: false,
        }
    }

    /// Starts settling with `outcome`; until [`finish`](Self::finish) is called with a success,
    /// dropping `self` settles detached with that outcome.
    pub(crate) fn settle(&mut self, outcome: Outcome) -> R::SettleFuture {
        self.outcome = outcome;
        self.store.settle(&self.lease, outcome)
    }

    /// The settle ended with `result`: on failure, keep trying detached.
    pub(crate) fn finish(mut self, result: Result<(), ReplayStoreError>) {
        match result {
            Ok(()) => self.settled = true,
            Err(_err) => {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "vonage_secure_callbacks", error = %_err, outcome = ?self.outcome,
                    "replay store settle failed; retrying in the background");
            }
        }
    }
}

impl<R: ReplayStore> Drop for Held<R> {
    fn drop(&mut self) {
        if !self.settled {
            self.store.settle_detached(self.lease.clone(), self.outcome);
        }
    }
}

/// What the stores' own tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Lease, Reservation};

    /// The lease of a reservation that must have been made.
    pub(crate) fn lease(r: Reservation) -> Lease {
        match r {
            Reservation::Reserved(lease) => lease,
            other => panic!("not reserved: {other:?}"),
        }
    }

    /// Refused as delivered, the delivery recorded at `at`.
    pub(crate) fn done(at: u64) -> Reservation {
        Reservation::AlreadyDone { at: Some(at) }
    }
}
