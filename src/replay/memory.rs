//! The default replay store: a bounded map in this process's memory.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex, PoisonError};

use super::{ReplayKey, ReplayStore, ReplayStoreError, Reservation, Retention};
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
/// The map is split into [`SHARDS`] independently locked shards (each holding an equal part of
/// the capacity), so that concurrent callbacks rarely wait for each other.
///
/// It protects one process only: behind a load balancer, or across restarts, use a shared store.
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

/// Number of independently locked parts of a [`MemoryReplayStore`].
pub const SHARDS: usize = 16;

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    clock: Box<dyn Clock>,
}

struct Shard {
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

    /// A store remembering at most `capacity` `jti`s (rounded up to a multiple of [`SHARDS`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::build(capacity, Box::new(SystemClock))
    }

    fn build(capacity: usize, clock: Box<dyn Clock>) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: HashMap::new(),
                    last_sweep: 0,
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                capacity,
                clock,
            }),
        }
    }

    /// Uses `clock` to expire entries (the layer's clock, in tests). Call it before sharing the
    /// store: it starts an empty one.
    pub fn clock(self, clock: impl Clock) -> Self {
        Self::build(self.inner.capacity, Box::new(clock))
    }

    /// How many `jti`s are held (in flight or done, expired ones not yet swept included).
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).entries.len()).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this store holds.
    pub fn capacity(&self) -> usize {
        self.shard_capacity() * SHARDS
    }

    fn shard_capacity(&self) -> usize {
        self.inner.capacity.div_ceil(SHARDS)
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        // Nothing panics while a lock is held; a poisoned lock still holds consistent data.
        self.inner.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard of `key`: FNV-1a of its bytes. Only keys of verified tokens reach the store,
    /// so the spread need not resist chosen keys; each shard's map keeps std's keyed hasher.
    fn shard_of(key: &ReplayKey) -> usize {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in key.api_key().bytes().chain(key.jti().bytes()) {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        hash as usize % SHARDS
    }

    fn try_reserve(&self, key: &ReplayKey) -> Result<Reservation, ReplayStoreError> {
        let capacity = self.shard_capacity();
        let mut guard = self.lock(Self::shard_of(key));
        let shard = &mut *guard;
        // One hash and probe for lookup and insert; the clock is read only when an answer
        // depends on it, so a fresh key in a shard with room (the common case) needs none.
        let room = shard.entries.len() < capacity;
        match shard.entries.entry(key.clone()) {
            MapEntry::Occupied(mut occupied) => {
                let entry = occupied.get_mut();
                return Ok(match *entry {
                    Entry { done: false, .. } => Reservation::InFlight,
                    Entry {
                        done: true,
                        expires_at,
                    } if expires_at > self.inner.clock.now() => Reservation::AlreadyDone,
                    Entry { done: true, .. } => {
                        *entry = Entry::IN_FLIGHT;
                        Reservation::Reserved
                    }
                });
            }
            MapEntry::Vacant(vacant) if room => {
                vacant.insert(Entry::IN_FLIGHT);
                return Ok(Reservation::Reserved);
            }
            MapEntry::Vacant(_) => {}
        }
        // Full: sweep expired entries (at most once a second), then try once more.
        let now = self.inner.clock.now();
        if shard.last_sweep != now {
            shard.last_sweep = now;
            shard.entries.retain(|_, e| !e.done || e.expires_at > now);
        }
        if shard.entries.len() >= capacity {
            return Err(ReplayStoreError::new("in-memory replay store is full"));
        }
        shard.entries.insert(key.clone(), Entry::IN_FLIGHT);
        Ok(Reservation::Reserved)
    }

    fn forget_in_flight(&self, key: &ReplayKey) {
        let mut shard = self.lock(Self::shard_of(key));
        if shard.entries.get(key).is_some_and(|e| !e.done) {
            shard.entries.remove(key);
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

    fn complete(&self, key: &ReplayKey, retention: Retention) -> Self::SettleFuture {
        let done = Entry {
            done: true,
            expires_at: retention.until(),
        };
        let mut shard = self.lock(Self::shard_of(key));
        match shard.entries.get_mut(key) {
            Some(entry) => *entry = done,
            None => {
                shard.entries.insert(key.clone(), done);
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
            .field("capacity", &self.capacity())
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

    /// Remembered until t=1060, as seen at t=1000.
    const TTL: Retention = Retention {
        until: 1060,
        ttl: std::time::Duration::from_secs(60),
    };

    #[test]
    fn reserve_complete_release_cycle() {
        let s = MemoryReplayStore::new().clock(FixedClock::new(1000));
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
        // One entry per shard: SHARDS keys landing in one shard fill it.
        let s = MemoryReplayStore::with_capacity(SHARDS).clock(clock.clone());
        assert_eq!(s.capacity(), SHARDS);
        let first = ReplayKey::new("k", "0");
        let shard = MemoryReplayStore::shard_of(&first);
        let same_shard = (1..)
            .map(|i| ReplayKey::new("k", &i.to_string()))
            .find(|k| MemoryReplayStore::shard_of(k) == shard)
            .unwrap();
        now(s.reserve(&first)).unwrap();
        now(s.complete(&first, TTL)).unwrap();
        assert!(now(s.reserve(&same_shard)).is_err());
        assert_eq!(s.len(), 1);
        clock.advance(61);
        assert_eq!(now(s.reserve(&same_shard)), Ok(Reservation::Reserved));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut counts = [0usize; SHARDS];
        for i in 0..16_000 {
            let jti = format!("c5ba8f24-1a14-4c1e-93e6-{i:012}");
            counts[MemoryReplayStore::shard_of(&ReplayKey::new("a1b2c3d4", &jti))] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1300).contains(&c)),
            "{counts:?}"
        );
    }
}
