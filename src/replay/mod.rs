//! Replay protection: each verified `jti` is reserved while the inner service runs, remembered
//! once it answered 2xx, and released otherwise so that Vonage's retry is accepted.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use memory::{MemoryReplayStore, DEFAULT_CAPACITY, SHARDS};
#[cfg(feature = "redis")]
pub use redis::{RedisReplayStore, DEFAULT_IN_FLIGHT_TTL, DEFAULT_PREFIX, DEFAULT_TIMEOUT};

/// Identifies one callback: the project's API key and the token's `jti`.
///
/// Cloning shares one buffer, so the request and the store hold the same allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    /// `api_key` followed by `jti`, split at `split`.
    joined: Arc<[u8]>,
    split: usize,
}

impl ReplayKey {
    /// The key of `jti` issued for project `api_key`.
    pub fn new(api_key: &str, jti: &str) -> Self {
        Self {
            joined: api_key.bytes().chain(jti.bytes()).collect(),
            split: api_key.len(),
        }
    }

    /// The project's API key.
    pub fn api_key(&self) -> &str {
        // Both halves were whole `&str`s, so this never falls back.
        std::str::from_utf8(&self.joined[..self.split]).unwrap_or_default()
    }

    /// The token's `jti`.
    pub fn jti(&self) -> &str {
        std::str::from_utf8(&self.joined[self.split..]).unwrap_or_default()
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayKey")
            .field("api_key", &self.api_key())
            .field("jti", &self.jti())
            .finish()
    }
}

/// How long a delivered `jti` must be remembered: until its token is stale anyway, so that a
/// replay after that is refused as `stale_token` without the store's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    until: u64,
    ttl: Duration,
}

impl Retention {
    /// Remember until `until` (Unix seconds), as seen at `now`; at least one second.
    pub fn new(until: u64, now: u64) -> Self {
        Self {
            until: until.max(now.saturating_add(1)),
            ttl: Duration::from_secs(until.saturating_sub(now).max(1)),
        }
    }

    /// The Unix second after which the entry may be forgotten.
    pub fn until(&self) -> u64 {
        self.until
    }

    /// The same, as a time to live from the moment of verification (for stores that expire
    /// keys themselves, like Redis).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// What [`ReplayStore::reserve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The `jti` was free and is now reserved for this request.
    Reserved,
    /// Another request holds the `jti` right now (answered 503 with `Retry-After`).
    InFlight,
    /// The `jti` was delivered and answered 2xx already (answered 409).
    AlreadyDone,
}

/// The store could not answer (unreachable, too slow, full); the callback is refused with
/// `replay_store_unavailable` (503), so Vonage retries it later.
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

/// Where reserved and delivered `jti`s are kept. Consulted only after every other check passed,
/// so a forged or tampered request can never reserve or burn a `jti`.
///
/// The futures are associated types, so the layer's response future holds them without boxing.
pub trait ReplayStore: Clone + Send + Sync + 'static {
    /// Future of [`reserve`](Self::reserve).
    type ReserveFuture: Future<Output = Result<Reservation, ReplayStoreError>> + Send + 'static;
    /// Future of [`complete`](Self::complete) and [`release`](Self::release).
    type SettleFuture: Future<Output = Result<(), ReplayStoreError>> + Send + 'static;

    /// Atomically reserves `key` unless it is in flight or done.
    fn reserve(&self, key: &ReplayKey) -> Self::ReserveFuture;

    /// The inner service answered 2xx: remember `key` as done for as long as `retention` says.
    fn complete(&self, key: &ReplayKey, retention: Retention) -> Self::SettleFuture;

    /// The inner service failed or answered non-2xx: forget `key`, so a retry is accepted.
    fn release(&self, key: &ReplayKey) -> Self::SettleFuture;

    /// The request was dropped while `key` was reserved (the client went away): release it
    /// without waiting. The default drops the reservation by polling nothing; stores that can
    /// release synchronously, or spawn, should override it.
    fn abandon(&self, key: &ReplayKey) {
        let _ = key;
    }
}

/// A reservation held by a request; dropping it unsettled abandons it in the store.
pub(crate) struct Held<R: ReplayStore> {
    store: R,
    key: Option<ReplayKey>,
    retention: Retention,
}

impl<R: ReplayStore> Held<R> {
    pub(crate) fn new(store: R, key: ReplayKey, retention: Retention) -> Self {
        Self {
            store,
            key: Some(key),
            retention,
        }
    }

    /// Settles the reservation by the inner service's outcome.
    pub(crate) fn settle(mut self, success: bool) -> R::SettleFuture {
        let key = self.key.take().expect("a held reservation has a key");
        if success {
            self.store.complete(&key, self.retention)
        } else {
            self.store.release(&key)
        }
    }
}

impl<R: ReplayStore> Drop for Held<R> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.store.abandon(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts() {
        let k = ReplayKey::new("a1b2", "c5ba8f24");
        assert_eq!((k.api_key(), k.jti()), ("a1b2", "c5ba8f24"));
        assert_ne!(ReplayKey::new("a", "bc"), ReplayKey::new("ab", "c"));
    }
}
