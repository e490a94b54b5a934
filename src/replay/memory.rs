//! The default replay store: a bounded map in this process's memory, with a sliding floor on
//! `iat` once it is full (the anti-replay window of IPsec and DTLS, applied to `iat`).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Ready};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::{
    Attempt, Lease, Lookup, Outcome, ReplayKey, ReplayStore, ReplayStoreError, Reservation,
};

/// Default number of `jti`s remembered at once: 800 000, about 34 MiB when full (measured, see
/// BENCHMARKS.md). At a sustained 9 callbacks a second that covers the whole 24 h max age; at
/// 100 a second, the last 2.1 h ([`guide::replay_stores`](crate::guide::replay_stores) has the table).
pub const DEFAULT_CAPACITY: usize = 800_000;

/// Default lifetime of an in-flight reservation: a handler that has not answered by then loses
/// its reservation, so a hung handler cannot hold a `jti` (or a place in the store) forever.
pub const DEFAULT_IN_FLIGHT_TTL: Duration = Duration::from_secs(60);

/// The floor never comes closer to "now" than this: callbacks issued within the last minute are
/// never forgotten to make room. A store full of such callbacks refuses new ones with 503
/// (retried by Vonage) rather than forget one.
pub const MIN_WINDOW: Duration = Duration::from_secs(60);

/// Independently locked parts of the map.
const SHARDS: usize = 16;
/// Each time the store is full, at least this share of its capacity is freed, so that a full
/// store scans its entries once per `capacity / EVICT_SHARE` new callbacks, not once per callback.
const EVICT_SHARE: usize = 16;
/// At most one window warning per this many seconds.
const WARN_INTERVAL: u64 = 300;

/// Remembers `jti`s in this process, at most `capacity` of them, and never lets a replay
/// through, even when full.
///
/// Delivered `jti`s are kept until their token is stale (`iat` + max age + skew). When the store
/// is full it first drops what has expired; if that is not enough, it forgets the delivered
/// `jti`s with the oldest `iat` and raises a *floor*: from then on a token issued at or before the
/// floor is refused as `replay_window_exceeded` (it might be a replay the store no longer
/// remembers). Fresh callbacks are always accepted, memory stays bounded, and no replay is ever
/// accepted; the price is that a callback older than the [effective
/// window](Self::effective_window) is refused. A `tracing` warning says when that starts. Size
/// the capacity to your rate (see [`guide::replay_stores`](crate::guide::replay_stores)), or share a [Redis store](super::RedisReplayStore)
/// across instances.
///
/// In-flight reservations expire after the
/// [in-flight TTL](MemoryStoreBuilder::in_flight_ttl), so a hung
/// handler cannot hold a `jti` forever; and only callbacks that passed the signature checks
/// reach the store, so forged traffic cannot fill it.
///
/// Entries are 128-bit keyed fingerprints of `api_key` and `jti`, not the strings: about 45
/// bytes a `jti` when full. Every [`SecureCallbackLayer`](crate::SecureCallbackLayer) uses
/// [`MemoryReplayStore::shared`] unless told otherwise, so one process has one replay window
/// however many layers it builds.
///
/// It protects one process only: behind a load balancer, or across restarts, use a shared store.
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Map>]>,
    capacity: usize,
    /// Entries in all shards together.
    len: AtomicUsize,
    /// Tokens with `iat` at or below this are refused; 0 until the store first evicts.
    floor: AtomicU64,
    /// The longest retention seen (`until - iat`): how long after `iat` an entry may be dropped.
    span: AtomicU64,
    /// Seconds; set where the store is built, the same for every layer that shares it.
    in_flight_ttl: u64,
    /// The "now" the latest attempt brought, for [`MemoryReplayStore::effective_window`].
    last_now: AtomicU64,
    /// When the last window warning was logged (0: never).
    last_warning: AtomicU64,
    /// One eviction at a time; the others wait for it and find room.
    evicting: Mutex<()>,
    #[cfg(feature = "metrics")]
    gauges: crate::metrics::StoreGauges,
}

type Map = HashMap<Fingerprint, Entry, PassThrough>;

/// [`ReplayKey::fingerprint`]: 128 bits of keyed hash of `api_key` and `jti`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: the map uses it as it is.
        state.write_u64(self.0);
    }
}

/// The map's hasher: passes a fingerprint's first word through.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// 16 bytes. In flight while `owner` is nonzero, until `stamp`. Delivered when `owner` is zero:
/// the low bits of `stamp` are the token's `iat`, the high bits how many seconds after it the
/// delivery was verified, plus one (zero: not known).
#[derive(Clone, Copy)]
struct Entry {
    stamp: u64,
    owner: u64,
}

const IAT_BITS: u32 = 40;
const IAT_MASK: u64 = (1 << IAT_BITS) - 1;
/// Deliveries recorded up to about 194 days after their `iat` keep their time; later ones (only
/// with a max age that long) are remembered without it.
const AFTER_MAX: u64 = (1 << (64 - IAT_BITS)) - 1;

impl Entry {
    fn in_flight(lease: &Lease, deadline: u64) -> Self {
        Self {
            stamp: deadline,
            owner: lease.owner(),
        }
    }

    /// Delivered at `at`: both are kept (an `iat` beyond year 36 000 is clamped).
    fn delivered(iat: u64, at: u64) -> Self {
        let iat = iat.min(IAT_MASK);
        let after = match at.checked_sub(iat) {
            Some(after) if after < AFTER_MAX => after + 1,
            _ => 0,
        };
        Self {
            stamp: iat | (after << IAT_BITS),
            owner: 0,
        }
    }

    fn is_delivered(self) -> bool {
        self.owner == 0
    }

    /// The `iat` of a delivered entry.
    fn iat(self) -> u64 {
        self.stamp & IAT_MASK
    }

    /// When a delivered entry's delivery was verified, if known.
    fn delivered_at(self) -> Option<u64> {
        match self.stamp >> IAT_BITS {
            0 => None,
            after => Some(self.iat() + after - 1),
        }
    }

    /// Droppable at `now`: a delivered token that is stale by now, or a reservation whose handler
    /// outlived the in-flight TTL.
    fn expired(self, now: u64, span: u64) -> bool {
        if self.is_delivered() {
            self.iat().saturating_add(span) <= now
        } else {
            self.stamp <= now
        }
    }
}

/// Settings of a [`MemoryReplayStore`], from [`MemoryReplayStore::builder`];
/// [`build`](Self::build) ends it. The settings belong to the store: every layer given it (or a
/// clone) shares them.
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    capacity: usize,
    in_flight_ttl: Duration,
}

impl MemoryStoreBuilder {
    /// At most this many `jti`s, in flight or delivered (default [`DEFAULT_CAPACITY`]; 0
    /// refuses every callback with 503).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Lifetime of an in-flight reservation, in whole seconds (default
    /// [`DEFAULT_IN_FLIGHT_TTL`]); make it longer than your slowest handler.
    pub fn in_flight_ttl(mut self, ttl: Duration) -> Self {
        self.in_flight_ttl = ttl;
        self
    }

    /// The store.
    pub fn build(self) -> MemoryReplayStore {
        MemoryReplayStore::from_builder(self)
    }
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MemoryReplayStore {
    /// A new store of [`DEFAULT_CAPACITY`], private to whoever holds it (and its clones).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new store remembering at most `capacity` `jti`s (0 refuses every callback with 503);
    /// short for `builder().capacity(capacity).build()`.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::builder().capacity(capacity).build()
    }

    /// Starts configuring a store of its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vonage_secure_callbacks::MemoryReplayStore;
    /// let store = MemoryReplayStore::builder()
    ///     .capacity(100_000)
    ///     .in_flight_ttl(Duration::from_secs(120))
    ///     .build();
    /// assert_eq!(store.capacity(), 100_000);
    /// ```
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: DEFAULT_CAPACITY,
            in_flight_ttl: DEFAULT_IN_FLIGHT_TTL,
        }
    }

    fn from_builder(
        MemoryStoreBuilder {
            capacity,
            in_flight_ttl,
        }: MemoryStoreBuilder,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                capacity,
                len: AtomicUsize::new(0),
                floor: AtomicU64::new(0),
                span: AtomicU64::new(0),
                in_flight_ttl: in_flight_ttl.as_secs().max(1),
                last_now: AtomicU64::new(0),
                last_warning: AtomicU64::new(0),
                evicting: Mutex::new(()),
                #[cfg(feature = "metrics")]
                gauges: Default::default(),
            }),
        }
    }

    /// The process-wide store, with the defaults: what every layer uses unless given another,
    /// so that two layers (one per route, say) never each accept the same callback. It cannot
    /// be reconfigured (that would change every layer's behind its back): for other settings,
    /// build a store and give it to each layer that should share it.
    pub fn shared() -> Self {
        static SHARED: OnceLock<MemoryReplayStore> = OnceLock::new();
        SHARED.get_or_init(Self::new).clone()
    }

    /// How many `jti`s are held (in flight or delivered, expired ones not yet dropped included).
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

    /// The `iat` at or below which tokens are refused, once the store has forgotten delivered
    /// `jti`s (expired ones, or live ones to make room); `None` until then. While it lies below
    /// what is stale anyway it refuses nothing the verifier would accept, unless the clock
    /// steps back: then it refuses what the store no longer remembers.
    pub fn floor(&self) -> Option<u64> {
        match self.inner.floor.load(Ordering::Acquire) {
            0 => None,
            floor => Some(floor),
        }
    }

    /// How far back the store can vouch for a token, as of the latest callback it saw: `None`
    /// while that is the whole max age (the floor lies below what is stale anyway); else how old
    /// a token may be and still be accepted.
    pub fn effective_window(&self) -> Option<Duration> {
        let floor = self.floor()?;
        let now = self.inner.last_now.load(Ordering::Relaxed);
        let window = now.saturating_sub(floor);
        (window < self.inner.span.load(Ordering::Relaxed)).then(|| Duration::from_secs(window))
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Map> {
        // Nothing panics while a lock is held; a poisoned lock still holds consistent data.
        self.inner.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn fingerprint(key: &ReplayKey) -> Fingerprint {
        let [a, b] = key.fingerprint();
        Fingerprint(a, b)
    }

    fn shard_of(fp: Fingerprint) -> usize {
        // The second word, so that the shard and the map's hash are independent.
        (fp.1 % SHARDS as u64) as usize
    }

    /// Records what an attempt tells about time: the latest "now", the longest retention.
    fn observe(&self, attempt: &Attempt) {
        let inner = &self.inner;
        // The latest, not the largest: after a clock put right the window reads from the
        // right time.
        inner.last_now.store(attempt.now(), Ordering::Relaxed);
        let span = attempt.retention().until().saturating_sub(attempt.iat());
        if span > inner.span.load(Ordering::Relaxed) {
            inner.span.fetch_max(span, Ordering::Relaxed);
        }
    }

    fn below_floor(&self, iat: u64) -> bool {
        self.floor().is_some_and(|floor| iat <= floor)
    }

    /// Takes one place of the capacity, if one is free.
    fn take_place(&self) -> bool {
        let inner = &self.inner;
        inner
            .len
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn try_lookup(&self, attempt: &Attempt) -> Lookup {
        self.observe(attempt);
        if self.below_floor(attempt.iat()) {
            return Lookup::OutsideWindow;
        }
        let fp = Self::fingerprint(attempt.key());
        let span = self.inner.span.load(Ordering::Relaxed);
        match self.lock(Self::shard_of(fp)).get(&fp) {
            Some(e) if e.is_delivered() && !e.expired(attempt.now(), span) => Lookup::Delivered {
                at: e.delivered_at(),
            },
            _ => Lookup::Unknown,
        }
    }

    fn try_reserve(&self, attempt: Attempt) -> Result<Reservation, ReplayStoreError> {
        self.observe(&attempt);
        let now = attempt.now();
        let fp = Self::fingerprint(attempt.key());
        let deadline = now.saturating_add(self.inner.in_flight_ttl);
        for round in 0..2 {
            if self.below_floor(attempt.iat()) {
                return Ok(Reservation::OutsideWindow);
            }
            {
                let span = self.inner.span.load(Ordering::Relaxed);
                let mut map = self.lock(Self::shard_of(fp));
                // One hash and probe for lookup and insert.
                match map.entry(fp) {
                    MapEntry::Occupied(mut occupied) => {
                        let entry = occupied.get_mut();
                        if !entry.expired(now, span) {
                            return Ok(if entry.is_delivered() {
                                Reservation::AlreadyDone {
                                    at: entry.delivered_at(),
                                }
                            } else {
                                Reservation::InFlight
                            });
                        }
                        // Stale, or a reservation whose handler outlived the TTL: take it over.
                        // The old owner's late release will not match and frees nothing.
                        let lease = Lease::new(attempt);
                        *entry = Entry::in_flight(&lease, deadline);
                        return Ok(Reservation::Reserved(lease));
                    }
                    MapEntry::Vacant(vacant) if self.take_place() => {
                        let lease = Lease::new(attempt);
                        vacant.insert(Entry::in_flight(&lease, deadline));
                        return Ok(Reservation::Reserved(lease));
                    }
                    MapEntry::Vacant(_) => {}
                }
            }
            // Full: make room with no shard lock held, then try once more.
            if round > 0 || !self.make_room(now) {
                break;
            }
        }
        Err(ReplayStoreError::new(
            "in-memory replay store is full of callbacks in flight or issued within the minimum window",
        ))
    }

    /// Frees at least `capacity / EVICT_SHARE` places if it can: expired entries first, then the
    /// delivered ones with the oldest `iat`, raising the floor over them. True if room was made.
    fn make_room(&self, now: u64) -> bool {
        let inner = &self.inner;
        let _one_at_a_time = inner
            .evicting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.len() < inner.capacity {
            return true; // Another eviction made room while this one waited.
        }
        let span = inner.span.load(Ordering::Relaxed);
        let target = (inner.capacity / EVICT_SHARE).max(1);

        // Census: how many are expired, the newest `iat` among the expired delivered ones, and
        // the `iat`s of the live delivered ones.
        let mut expired = 0;
        let mut newest_expired = 0;
        let mut iats = Vec::new();
        for shard in 0..SHARDS {
            for entry in self.lock(shard).values() {
                if entry.expired(now, span) {
                    expired += 1;
                    if entry.is_delivered() {
                        newest_expired = newest_expired.max(entry.iat());
                    }
                } else if entry.is_delivered() {
                    iats.push(entry.iat());
                }
            }
        }

        let old_floor = inner.floor.load(Ordering::Acquire);
        // What expired is forgotten too, so the floor covers it: were the clock to step back,
        // a token whose entry is gone is refused rather than accepted again.
        let mut floor = old_floor.max(newest_expired);
        if expired < target && !iats.is_empty() {
            let need = (target - expired).min(iats.len());
            let (_, nth, _) = iats.select_nth_unstable(need - 1);
            // Never so close to now that a fresh callback would fall under it.
            let limit = now.saturating_sub(MIN_WINDOW.as_secs() + 1);
            let cut = (*nth).min(limit);
            // The floor rises to the newest `iat` actually forgotten, and no further.
            if let Some(&newest) = iats.iter().filter(|&&iat| iat <= cut).max() {
                floor = floor.max(newest);
            }
        }
        drop(iats);
        if floor > old_floor {
            inner.floor.fetch_max(floor, Ordering::AcqRel);
        }
        // Warned about only when tokens that are not stale yet fall under it.
        let shrunk = floor > old_floor && now.saturating_sub(floor) < span;

        let mut freed = 0;
        for shard in 0..SHARDS {
            let mut map = self.lock(shard);
            let before = map.len();
            map.retain(|_, e| {
                !(e.expired(now, span) || e.is_delivered() && floor > 0 && e.iat() <= floor)
            });
            freed += before - map.len();
        }
        inner.len.fetch_sub(freed, Ordering::AcqRel);
        if shrunk {
            self.warn_window(now, floor);
        }
        freed > 0
    }

    fn warn_window(&self, now: u64, floor: u64) {
        let last = &self.inner.last_warning;
        let previous = last.load(Ordering::Relaxed);
        let due = previous == 0 || now >= previous.saturating_add(WARN_INTERVAL);
        if !due
            || last
                .compare_exchange(previous, now.max(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let _window_secs = now.saturating_sub(floor);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "vonage_secure_callbacks",
            window_secs = _window_secs,
            capacity = self.inner.capacity,
            "in-memory replay store is full: callbacks issued more than {_window_secs} s ago are now \
             refused (replay_window_exceeded); give it a larger capacity or use RedisReplayStore"
        );
    }

    fn try_settle(&self, lease: &Lease, outcome: Outcome) {
        let fp = Self::fingerprint(lease.key());
        let mut map = self.lock(Self::shard_of(fp));
        match (outcome, map.entry(fp)) {
            // Delivered wins over whatever holds the key now: it is never forgotten early.
            (Outcome::Delivered, MapEntry::Occupied(mut occupied)) => {
                *occupied.get_mut() =
                    Entry::delivered(lease.attempt().iat(), lease.attempt().now());
            }
            // Dropped while this handler ran past its TTL: remember it all the same, even one
            // over capacity (bounded by the reservations in flight).
            (Outcome::Delivered, MapEntry::Vacant(vacant)) => {
                if !self.below_floor(lease.attempt().iat()) {
                    vacant.insert(Entry::delivered(
                        lease.attempt().iat(),
                        lease.attempt().now(),
                    ));
                    self.inner.len.fetch_add(1, Ordering::AcqRel);
                }
            }
            (Outcome::NotDelivered, MapEntry::Occupied(occupied))
                if !occupied.get().is_delivered() && occupied.get().owner == lease.owner() =>
            {
                occupied.remove();
                self.inner.len.fetch_sub(1, Ordering::AcqRel);
            }
            (Outcome::NotDelivered, _) => {}
        }
    }
}

impl ReplayStore for MemoryReplayStore {
    type LookupFuture = Ready<Result<Lookup, ReplayStoreError>>;
    type ReserveFuture = Ready<Result<Reservation, ReplayStoreError>>;
    type SettleFuture = Ready<Result<(), ReplayStoreError>>;

    fn lookup(&self, attempt: &Attempt) -> Self::LookupFuture {
        ready(Ok(self.try_lookup(attempt)))
    }

    fn reserve(&self, attempt: Attempt) -> Self::ReserveFuture {
        let reservation = self.try_reserve(attempt);
        #[cfg(feature = "metrics")]
        {
            let full = Duration::from_secs(self.inner.span.load(Ordering::Relaxed));
            let window = self.effective_window().unwrap_or(full);
            self.inner.gauges.set(self.len(), window);
        }
        ready(reservation)
    }

    fn settle(&self, lease: &Lease, outcome: Outcome) -> Self::SettleFuture {
        self.try_settle(lease, outcome);
        ready(Ok(()))
    }

    fn settle_detached(&self, lease: Lease, outcome: Outcome) {
        self.try_settle(&lease, outcome);
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("floor", &self.floor())
            .field(
                "in_flight_ttl",
                &Duration::from_secs(self.inner.in_flight_ttl),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::test_support::{done, lease};
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn now<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the memory store never waits"),
        }
    }

    const T0: u64 = 1_000_000;
    /// Max age 1 h: delivered entries are remembered until `iat` + 3600.
    const MAX_AGE: u64 = 3600;

    fn attempt(jti: &str, iat: u64, at: u64) -> Attempt {
        let key = ReplayKey::new("k", jti);
        Attempt::new(
            key,
            iat,
            at,
            super::super::Retention::new(iat + MAX_AGE, iat),
        )
    }

    fn reserve(s: &MemoryReplayStore, jti: &str, iat: u64, at: u64) -> Reservation {
        now(s.reserve(attempt(jti, iat, at))).unwrap()
    }

    fn deliver(s: &MemoryReplayStore, jti: &str, iat: u64, at: u64) {
        let l = lease(reserve(s, jti, iat, at));
        now(s.settle(&l, Outcome::Delivered)).unwrap();
    }

    #[test]
    fn reserve_settle_cycle() {
        let s = MemoryReplayStore::new();
        let l = lease(reserve(&s, "j1", T0, T0));
        assert_eq!(reserve(&s, "j1", T0, T0), Reservation::InFlight);
        assert_eq!(now(s.lookup(&attempt("j1", T0, T0))), Ok(Lookup::Unknown));
        now(s.settle(&l, Outcome::NotDelivered)).unwrap();
        let l = lease(reserve(&s, "j1", T0, T0 + 3));
        now(s.settle(&l, Outcome::Delivered)).unwrap();
        // Refused, saying when the delivery was verified.
        assert_eq!(reserve(&s, "j1", T0, T0 + 50), done(T0 + 3));
        let delivered = Lookup::Delivered { at: Some(T0 + 3) };
        assert_eq!(now(s.lookup(&attempt("j1", T0, T0 + 50))), Ok(delivered));
        // Releasing a delivered entry (a late duplicate failing) must not forget it.
        now(s.settle(&l, Outcome::NotDelivered)).unwrap();
        s.settle_detached(l, Outcome::NotDelivered);
        assert_eq!(reserve(&s, "j1", T0, T0 + 50), done(T0 + 3));
    }

    #[test]
    fn a_delivered_entry_keeps_its_iat_and_when_it_was_delivered() {
        let e = Entry::delivered(T0, T0 + 7);
        assert!(e.is_delivered());
        assert_eq!((e.iat(), e.delivered_at()), (T0, Some(T0 + 7)));
        // Before its iat (within the clock skew), or absurdly late: the time is not kept.
        assert_eq!(Entry::delivered(T0, T0 - 1).delivered_at(), None);
        assert_eq!(Entry::delivered(T0, T0 + AFTER_MAX).delivered_at(), None);
        assert_eq!(
            Entry::delivered(T0, T0 + AFTER_MAX - 1).delivered_at(),
            Some(T0 + AFTER_MAX - 1)
        );
        assert_eq!(Entry::delivered(u64::MAX, u64::MAX).iat(), IAT_MASK);
    }

    #[test]
    fn delivered_entries_expire_with_their_token() {
        let s = MemoryReplayStore::new();
        deliver(&s, "j", T0, T0);
        assert_eq!(reserve(&s, "j", T0, T0 + MAX_AGE - 1), done(T0));
        assert!(matches!(
            reserve(&s, "j", T0, T0 + MAX_AGE),
            Reservation::Reserved(_)
        ));
    }

    #[test]
    fn a_hung_reservation_expires_and_its_late_release_frees_nothing() {
        let s = MemoryReplayStore::builder()
            .in_flight_ttl(Duration::from_secs(10))
            .build();
        let first = lease(reserve(&s, "j", T0, T0));
        assert_eq!(reserve(&s, "j", T0, T0 + 9), Reservation::InFlight);
        let second = lease(reserve(&s, "j", T0, T0 + 10));
        // The first handler's late failure must not free the second's reservation.
        now(s.settle(&first, Outcome::NotDelivered)).unwrap();
        assert_eq!(reserve(&s, "j", T0, T0 + 11), Reservation::InFlight);
        now(s.settle(&second, Outcome::Delivered)).unwrap();
        assert_eq!(reserve(&s, "j", T0, T0 + 12), done(T0 + 10));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_late_delivery_is_remembered_even_after_its_reservation_was_dropped() {
        let s = MemoryReplayStore::builder()
            .capacity(2)
            .in_flight_ttl(Duration::from_secs(10))
            .build();
        let hung = lease(reserve(&s, "hung", T0, T0));
        deliver(&s, "a", T0, T0);
        // Full: the expired reservation is dropped to make room.
        deliver(&s, "b", T0 + 100, T0 + 100);
        assert_eq!(s.len(), 2);
        now(s.settle(&hung, Outcome::Delivered)).unwrap();
        assert_eq!(reserve(&s, "hung", T0, T0 + 101), done(T0));
    }

    #[test]
    fn full_store_forgets_the_oldest_and_raises_the_floor() {
        let s = MemoryReplayStore::with_capacity(32);
        for i in 0..32u64 {
            deliver(&s, &format!("j{i}"), T0 + i, T0 + i);
        }
        assert_eq!(s.floor(), None);
        let at = T0 + 1000;
        // Full: 32 / 16 = 2 oldest forgotten, floor at the newer of them.
        deliver(&s, "fresh", at, at);
        assert_eq!(s.floor(), Some(T0 + 1));
        assert_eq!(s.effective_window(), Some(Duration::from_secs(999)));
        assert_eq!(s.len(), 31);
        // The forgotten ones, and anything at or below the floor, are refused outright.
        assert_eq!(reserve(&s, "j0", T0, at), Reservation::OutsideWindow);
        assert_eq!(reserve(&s, "j1", T0 + 1, at), Reservation::OutsideWindow);
        assert_eq!(
            reserve(&s, "never-seen", T0 + 1, at),
            Reservation::OutsideWindow
        );
        assert_eq!(
            now(s.lookup(&attempt("j0", T0, at))),
            Ok(Lookup::OutsideWindow)
        );
        // Those above it are still remembered.
        assert_eq!(reserve(&s, "j2", T0 + 2, at), done(T0 + 2));
        assert_eq!(reserve(&s, "fresh", at, at), done(at));
    }

    /// A store of 16 filled at `T0`, then given one more callback `MAX_AGE` later (or with the
    /// clock that far ahead): the 16 are dropped as expired.
    fn full_then_expired() -> MemoryReplayStore {
        let s = MemoryReplayStore::with_capacity(16);
        for i in 0..16u64 {
            deliver(&s, &format!("j{i}"), T0, T0);
        }
        let later = T0 + MAX_AGE;
        deliver(&s, "fresh", later, later);
        s
    }

    #[test]
    fn expired_entries_go_before_any_floor_is_raised() {
        let s = full_then_expired();
        assert_eq!(s.len(), 1);
        // The floor covers what expired, which is stale anyway: the window is still whole.
        assert_eq!((s.floor(), s.effective_window()), (Some(T0), None));
    }

    #[test]
    fn a_clock_stepped_back_cannot_bring_back_what_expired() {
        // The clock jumped ahead: full, the store dropped the 16 as expired.
        let s = full_then_expired();
        assert_eq!(s.len(), 1);
        // Stepped back, the verifier would find j0 fresh again; the store refuses it.
        assert_eq!(reserve(&s, "j0", T0, T0 + 10), Reservation::OutsideWindow);
        assert_eq!(
            now(s.lookup(&attempt("j0", T0, T0 + 10))),
            Ok(Lookup::OutsideWindow)
        );
    }

    #[test]
    fn callbacks_of_the_last_minute_are_never_forgotten() {
        let s = MemoryReplayStore::with_capacity(4);
        for i in 0..4u64 {
            deliver(&s, &format!("j{i}"), T0, T0 + 30);
        }
        // All four within MIN_WINDOW of now: none may go, so the store refuses (503, retried).
        assert!(now(s.reserve(attempt("new", T0 + 30, T0 + 30))).is_err());
        assert_eq!(s.floor(), None);
        // A minute later they may.
        assert!(matches!(
            reserve(&s, "new", T0 + 90, T0 + 90),
            Reservation::Reserved(_)
        ));
        assert_eq!(s.floor(), Some(T0));
    }

    #[test]
    fn a_store_full_of_reservations_fails_closed() {
        let s = MemoryReplayStore::with_capacity(3);
        for j in ["a", "b", "c"] {
            lease(reserve(&s, j, T0, T0));
        }
        assert!(now(s.reserve(attempt("d", T0, T0))).is_err());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn the_capacity_is_exact_whatever_the_shards() {
        let s = MemoryReplayStore::with_capacity(1000);
        let leases: Vec<Lease> = (0..1200)
            .filter_map(|i| match now(s.reserve(attempt(&i.to_string(), T0, T0))) {
                Ok(Reservation::Reserved(l)) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!((leases.len(), s.len()), (1000, 1000));
        for l in &leases[..10] {
            now(s.settle(l, Outcome::NotDelivered)).unwrap();
        }
        assert_eq!(s.len(), 990);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut counts = [0usize; SHARDS];
        for i in 0..16_000 {
            let jti = format!("c5ba8f24-1a14-4c1e-93e6-{i:012}");
            counts[MemoryReplayStore::shard_of(MemoryReplayStore::fingerprint(
                &ReplayKey::new("a1b2c3d4", &jti),
            ))] += 1;
        }
        assert!(
            counts.iter().all(|&c| (700..1300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn the_shared_store_is_one_store() {
        let a = MemoryReplayStore::shared();
        let b = MemoryReplayStore::shared();
        assert!(Arc::ptr_eq(&a.inner, &b.inner));
        assert!(!Arc::ptr_eq(&a.inner, &MemoryReplayStore::new().inner));
    }
}
