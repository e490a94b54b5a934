//! The in-memory replay store as it was before the sliding floor (fixed capacity, refusing
//! when full, `ReplayKey`s as map keys, FNV shard choice), kept only as the baseline that
//! `benches/replay_store.rs` measures the current store against in the same run.
#![allow(dead_code)]

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use vonage_secure_callbacks::replay::{ReplayKey, Retention};
use vonage_secure_callbacks::{Clock, SystemClock};

pub const SHARDS: usize = 16;
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct Full;

#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    Reserved,
    InFlight,
    AlreadyDone,
}

#[derive(Clone)]
pub struct PreviousStore {
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

impl Default for PreviousStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl PreviousStore {
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

    pub fn try_reserve(&self, key: &ReplayKey) -> Result<Reservation, Full> {
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
        Err(Full)
    }

    pub fn forget_in_flight(&self, key: &ReplayKey) {
        let mut map = self.lock(Self::shard_of(key));
        if map.get(key).is_some_and(|e| !e.done) {
            map.remove(key);
            self.free_places(1);
        }
    }
}

impl PreviousStore {
    /// Its `complete`, as it was.
    pub fn complete(&self, key: &ReplayKey, retention: Retention) {
        let done = Entry {
            done: true,
            expires_at: retention.until(),
        };
        let mut map = self.lock(Self::shard_of(key));
        match map.get_mut(key) {
            Some(entry) => *entry = done,
            None => {
                map.insert(key.clone(), done);
                self.inner.len.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}
