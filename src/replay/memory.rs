//! The default replay store: a bounded map in this process's memory.

use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{ReplayKey, ReplayStore, ReplayStoreError, Reservation};
use crate::clock::{Clock, SystemClock};

/// Default number of `jti`s remembered at once.
///
/// Size it to the callbacks you receive within the max age (24 h by default): 100 000 is about
/// one callback a second, all day, and about 15 MiB.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Remembers `jti`s in this process, at most `capacity` of them.
///
/// Entries expire when their token goes stale (`iat` + max age + skew). When the store is full,
/// expired entries are swept (at most once a second); if it is still full, new callbacks are
/// refused with `replay_store_unavailable` (503): Vonage retries them later, when entries have
/// expired, so nothing is lost and no replay is let through. Only callbacks that passed every
/// other check reach the store, so forged traffic cannot fill it.
///
/// It protects one process only: behind a load balancer, or across restarts, use a shared store.
#[derive(Clone)]
pub struct MemoryReplayStore {
    state: Arc<Mutex<State>>,
    capacity: usize,
    clock: Arc<dyn Clock>,
}

struct State {
    entries: HashMap<ReplayKey, Entry>,
    last_sweep: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    done: bool,
    /// Unix seconds; in-flight entries live until settled.
    expires_at: u64,
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryReplayStore {
    /// A store of [`DEFAULT_CAPACITY`] entries on the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store remembering at most `capacity` `jti`s.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                entries: HashMap::new(),
                last_sweep: 0,
            })),
            capacity,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` to expire entries (the layer's clock, in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many `jti`s are held (in flight or done, expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this store holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while the lock is held; a poisoned lock still holds consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_reserve(&self, key: &ReplayKey) -> Result<Reservation, ReplayStoreError> {
        let now = self.clock.now();
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(key) {
            return Ok(match *entry {
                Entry { done: false, .. } => Reservation::InFlight,
                Entry {
                    done: true,
                    expires_at,
                } if expires_at > now => Reservation::AlreadyDone,
                Entry { done: true, .. } => {
                    *entry = Entry::IN_FLIGHT;
                    Reservation::Reserved
                }
            });
        }
        if state.entries.len() >= self.capacity && state.last_sweep != now {
            state.last_sweep = now;
            state.entries.retain(|_, e| !e.done || e.expires_at > now);
        }
        if state.entries.len() >= self.capacity {
            return Err(ReplayStoreError::new("in-memory replay store is full"));
        }
        state.entries.insert(key.clone(), Entry::IN_FLIGHT);
        Ok(Reservation::Reserved)
    }

    fn forget_in_flight(&self, key: &ReplayKey) {
        let mut state = self.lock();
        if state.entries.get(key).is_some_and(|e| !e.done) {
            state.entries.remove(key);
        }
    }
}

impl Entry {
    const IN_FLIGHT: Entry = Entry {
        done: false,
        expires_at: u64::MAX,
    };
}

impl ReplayStore for MemoryReplayStore {
    type ReserveFuture = Ready<Result<Reservation, ReplayStoreError>>;
    type SettleFuture = Ready<Result<(), ReplayStoreError>>;

    fn reserve(&self, key: &ReplayKey) -> Self::ReserveFuture {
        ready(self.try_reserve(key))
    }

    fn complete(&self, key: &ReplayKey, ttl: Duration) -> Self::SettleFuture {
        let done = Entry {
            done: true,
            expires_at: self.clock.now().saturating_add(ttl.as_secs()),
        };
        let mut state = self.lock();
        match state.entries.get_mut(key) {
            Some(entry) => *entry = done,
            None => {
                state.entries.insert(key.clone(), done);
            }
        }
        ready(Ok(()))
    }

    fn release(&self, key: &ReplayKey) -> Self::SettleFuture {
        self.forget_in_flight(key);
        ready(Ok(()))
    }

    fn abandon(&self, key: &ReplayKey) {
        self.forget_in_flight(key);
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FixedClock;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn now<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the memory store never waits"),
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn reserve_complete_release_cycle() {
        let s = MemoryReplayStore::new();
        let k = ReplayKey::new("k", "j1");
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::Reserved));
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::InFlight));
        now(s.release(&k)).unwrap();
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::Reserved));
        now(s.complete(&k, TTL)).unwrap();
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::AlreadyDone));
        // Releasing a done entry (a late duplicate failing) must not forget it.
        now(s.release(&k)).unwrap();
        s.abandon(&k);
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::AlreadyDone));
    }

    #[test]
    fn done_entries_expire() {
        let clock = FixedClock::new(1000);
        let s = MemoryReplayStore::new().clock(clock.clone());
        let k = ReplayKey::new("k", "j");
        now(s.reserve(&k)).unwrap();
        now(s.complete(&k, TTL)).unwrap();
        clock.advance(59);
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::AlreadyDone));
        clock.advance(1);
        assert_eq!(now(s.reserve(&k)), Ok(Reservation::Reserved));
    }

    #[test]
    fn full_store_sweeps_then_fails_closed() {
        let clock = FixedClock::new(1000);
        let s = MemoryReplayStore::with_capacity(3).clock(clock.clone());
        for j in ["a", "b", "c"] {
            let k = ReplayKey::new("k", j);
            now(s.reserve(&k)).unwrap();
            now(s.complete(&k, TTL)).unwrap();
        }
        let d = ReplayKey::new("k", "d");
        assert!(now(s.reserve(&d)).is_err());
        assert_eq!(s.len(), 3);
        clock.advance(61);
        assert_eq!(now(s.reserve(&d)), Ok(Reservation::Reserved));
        assert_eq!(s.len(), 1);
        assert_eq!(s.capacity(), 3);
    }
}
