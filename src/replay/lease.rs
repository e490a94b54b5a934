//! What the layer hands a replay store: the key of a callback, the attempt to deliver it, and the
//! lease that a reservation gives.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Identifies one callback: the project's API key and the token's `jti`.
///
/// Cloning shares one buffer, so the request and the store hold the same allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    /// `api_key` followed by `jti`, split at `split`.
    joined: Arc<[u8]>,
    split: usize,
    /// 128 bits of keyed hash, computed once so that the in-memory store need not hash the key
    /// on each of its three visits per callback.
    fingerprint: [u64; 2],
}

impl ReplayKey {
    /// The key of `jti` issued for project `api_key`.
    pub fn new(api_key: &str, jti: &str) -> Self {
        // Sized once and filled with two copies (collecting the bytes one by one cost three
        // times as much).
        let mut joined: Arc<[u8]> = std::iter::repeat_n(0, api_key.len() + jti.len()).collect();
        if let Some(buf) = Arc::get_mut(&mut joined) {
            let (a, b) = buf.split_at_mut(api_key.len());
            a.copy_from_slice(api_key.as_bytes());
            b.copy_from_slice(jti.as_bytes());
        }
        Self {
            joined,
            split: api_key.len(),
            fingerprint: fingerprint(api_key, jti),
        }
    }

    /// Two SipHash values of the key under keys random to this process. Only keys of verified
    /// tokens reach a store and the keys are secret, so a collision (2^-128 a pair) cannot be
    /// aimed at.
    pub(crate) fn fingerprint(&self) -> [u64; 2] {
        self.fingerprint
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

/// One verified callback as the layer presents it to the store: its key, its `iat`, the time
/// of verification, and how long it must be remembered once delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    key: ReplayKey,
    iat: u64,
    now: u64,
    retention: Retention,
}

impl Attempt {
    /// An attempt to deliver `key`, whose token was issued at `iat`, verified at `now` (Unix
    /// seconds on the layer's clock).
    pub fn new(key: ReplayKey, iat: u64, now: u64, retention: Retention) -> Self {
        Self {
            key,
            iat,
            now,
            retention,
        }
    }

    /// The callback's key.
    pub fn key(&self) -> &ReplayKey {
        &self.key
    }

    /// The token's `iat`.
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// When the token was verified (the layer's clock; stores use it rather than their own so
    /// that every decision of one request reads one clock).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// How long to remember the key once delivered.
    pub fn retention(&self) -> Retention {
        self.retention
    }
}

/// A reservation: the attempt it was made for and an owner token that only its request knows,
/// so that settling acts on this reservation and no other.
///
/// With a store that asks for it ([`ReplayStore::LEASE_FOR_HANDLER`](super::ReplayStore::LEASE_FOR_HANDLER):
/// the PostgreSQL store), the layer puts the lease of each request it lets through in the
/// request's extensions, for a handler that marks the delivery in its own transaction
/// (`PostgresReplayStore::mark_delivered`, feature `postgres`).
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    attempt: Attempt,
    owner: u64,
}

impl Lease {
    /// A lease of `attempt` with a fresh random owner token (never 0).
    pub fn new(attempt: Attempt) -> Self {
        Self {
            attempt,
            owner: fresh_owner(),
        }
    }

    /// The attempt this lease reserves.
    pub fn attempt(&self) -> &Attempt {
        &self.attempt
    }

    /// The callback's key.
    pub fn key(&self) -> &ReplayKey {
        &self.attempt.key
    }

    /// The owner token: random, unique to this reservation, never 0.
    pub fn owner(&self) -> u64 {
        self.owner
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("attempt", &self.attempt)
            .field("owner", &format_args!("{:016x}", self.owner))
            .finish()
    }
}

fn fingerprint(api_key: &str, jti: &str) -> [u64; 2] {
    static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [RandomState::new(), RandomState::new()])
        .each_ref()
        .map(|keys| {
            let mut h = keys.build_hasher();
            h.write(api_key.as_bytes());
            // 0xff never occurs in UTF-8, so ("a", "bc") and ("ab", "c") differ.
            h.write_u8(0xff);
            h.write(jti.as_bytes());
            h.finish()
        })
}

/// A random nonzero 64-bit token (0 means "no owner" in the stores).
fn fresh_owner() -> u64 {
    crate::random::unique_u64().max(1)
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

    #[test]
    fn owners_are_distinct_and_nonzero() {
        let attempt = Attempt::new(ReplayKey::new("k", "j"), 1, 1, Retention::new(2, 1));
        let owners: std::collections::HashSet<u64> = (0..10_000)
            .map(|_| Lease::new(attempt.clone()).owner())
            .collect();
        assert_eq!(owners.len(), 10_000);
        assert!(!owners.contains(&0));
    }
}
