//! The background settle of the network stores (Redis, PostgreSQL): a delivery mark that could
//! not be written when the answer went out is tried again, with backoff, until the in-flight TTL
//! would have freed the reservation anyway. A release is tried once: if it fails, the TTL frees
//! the reservation.

use std::time::Duration;

use super::{Lease, Outcome, ReplayStore};

const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Settles `lease` on the current tokio runtime, retrying a delivery mark for up to `within`.
/// `store_name` names the store in the log line of a mark that never made it.
pub(crate) fn settle_in_background<R: ReplayStore>(
    store: R,
    lease: Lease,
    outcome: Outcome,
    within: Duration,
    store_name: &'static str,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        #[cfg(feature = "tracing")]
        tracing::error!(target: "vonage_secure_callbacks", ?outcome, store = store_name,
            "no tokio runtime to settle a replay reservation on");
        let _ = store_name;
        return;
    };
    runtime.spawn(async move {
        let deadline = tokio::time::Instant::now() + within;
        let mut delay = RETRY_MIN;
        loop {
            let result = store.settle(&lease, outcome).await;
            if result.is_ok() || outcome == Outcome::NotDelivered {
                return;
            }
            if tokio::time::Instant::now() + delay > deadline {
                #[cfg(feature = "tracing")]
                tracing::error!(target: "vonage_secure_callbacks", jti = lease.key().jti(),
                    store = store_name,
                    "could not mark a delivered callback within the in-flight TTL");
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
    });
}
