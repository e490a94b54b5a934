//! The default replay store: a bounded map in this process's memory.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{ReplayKey, ReplayStore, ReplayStoreError, Reservation, Retention};
use crate::clock::{Clock, SystemClock};

/// Default number of `jti`s remembered at once.
///
/// Size it to the callbacks you receive within the max age (24 h by default): 100 000 is about
/// one callback a second, all day, and takes about 13 MiB (134 bytes a `jti`, measured).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Number of independently locked parts of a [`MemoryReplayStore`].
pub const SHARDS: usize = 16;

/// Remembers `jti`s in this process, at most `capacity` of them.
///
/// Entries expire when their token goes stale (`iat` + max age + skew). When the store is full,
/// expired entries are swept (at most once a second); if it is still full, new callbacks are
/// refused with `replay_store_unavailable` (503): Vonage retries them later, when entries have
/// expired, so nothing is lost and no replay is let through. Only callbacks that passed every
/// other check reach the store, so forged traffic cannot fill it.
///
/// The map is split into [`SHARDS`] independently locked shards, so that concurrent callbacks
/// rarely wait for each other; the capacity bounds them all together.
///
/// It protects one process only: behind a load balancer, or across restarts, use a shared store.
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<HashMap<ReplayKey, Entry>>]>,
    capacity: usize,
    /// Entries in all shards together.
    len: AtomicUsize,
    /// Unix second of the last sweep, so that a full store sweeps at most once a second.
    last_sweep: AtomicU64,
    clock: Box<dyn Clock>,
}

#[derive(Clone, Copy)]
struct Entry {
    done: bool,
    /// Unix seconds; in-flight entries live until settled.
    expires_at: u64,
}

impl Entry {
    const IN_FLIGHT: Entry = Entry {
        done: false,
        expires_at: u64::MAX,
    };
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
        Self::build(capacity, Box::new(SystemClock))
    }

    fn build(capacity: usize, clock: Box<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                capacity,
                len: AtomicUsize::new(0),
                last_sweep: AtomicU64::new(0),
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
        self.inner.len.load(Ordering::Relaxed)
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this store holds.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, HashMap<ReplayKey, Entry>> {
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

    /// Takes one place of the capacity, if one is free.
    fn take_place(&self) -> bool {
        let len = &self.inner.len;
        len.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.inner.capacity).then_some(n + 1)
        })
        .is_ok()
    }

    fn free_places(&self, n: usize) {
        self.inner.len.fetch_sub(n, Ordering::AcqRel);
    }

    /// Removes expired entries from every shard, at most once a second; true if it ran.
    fn sweep(&self) -> bool {
        let now = self.inner.clock.now();
        if self.inner.last_sweep.swap(now, Ordering::AcqRel) == now {
            return false;
        }
        for shard in 0..SHARDS {
            let mut map = self.lock(shard);
            let before = map.len();
            map.retain(|_, e| !e.done || e.expires_at > now);
            self.free_places(before - map.len());
        }
        true
    }

    fn try_reserve(&self, key: &ReplayKey) -> Result<Reservation, ReplayStoreError> {
        for attempt in 0..2 {
            {
                let mut map = self.lock(Self::shard_of(key));
                // One hash and probe for lookup and insert; the clock is read only when an
                // answer depends on it, so a fresh key (the common case) needs none.
                match map.entry(key.clone()) {
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
                    MapEntry::Vacant(vacant) if self.take_place() => {
                        vacant.insert(Entry::IN_FLIGHT);
                        return Ok(Reservation::Reserved);
                    }
                    MapEntry::Vacant(_) => {}
                }
            }
            // Full: sweep with no lock held (the sweep takes each shard's in turn), then retry.
            if attempt > 0 || !self.sweep() {
                break;
            }
        }
        Err(ReplayStoreError::new("in-memory replay store is full"))
    }

    fn forget_in_flight(&self, key: &ReplayKey) {
        let mut map = self.lock(Self::shard_of(key));
        if map.get(key).is_some_and(|e| !e.done) {
            map.remove(key);
            self.free_places(1);
        }
    }
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
        let mut map = self.lock(Self::shard_of(key));
        match map.get_mut(key) {
            Some(entry) => *entry = done,
            // Only a store shared with another writer gets here; remember it all the same.
            None => {
                map.insert(key.clone(), done);
                self.inner.len.fetch_add(1, Ordering::AcqRel);
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

    #[test]
    fn the_capacity_is_exact_whatever_the_shards() {
        let s = MemoryReplayStore::with_capacity(1000);
        let reserved = (0..1200)
            .filter(|i| now(s.reserve(&ReplayKey::new("k", &i.to_string()))).is_ok())
            .count();
        assert_eq!((reserved, s.len()), (1000, 1000));
        // Releasing frees places.
        for i in 0..10 {
            now(s.release(&ReplayKey::new("k", &i.to_string()))).unwrap();
        }
        assert_eq!(s.len(), 990);
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
