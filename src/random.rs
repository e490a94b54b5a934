//! Unique, unpredictable 64-bit values without an RNG dependency: a process-wide counter through
//! std's randomly keyed hasher (keyed once per process). Good for identifiers that only have to
//! be unique and unguessable by another request, not for keys.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A fresh value: never the same twice in one process (the counter), unpredictable across
/// processes (the key).
pub(crate) fn unique_u64() -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = KEY.get_or_init(RandomState::new).build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_differ() {
        let values: std::collections::HashSet<u64> =
            (0..1000).map(|_| super::unique_u64()).collect();
        assert_eq!(values.len(), 1000);
    }
}
