//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): install
//! any recorder (Prometheus, StatsD, OpenTelemetry exporters) and these appear.
//!
//! | name | kind | labels | what |
//! | --- | --- | --- | --- |
//! | [`ACCEPTED`] | counter | `api_key`, `secret` | callbacks passed to the inner service |
//! | [`REFUSED`] | counter | `reason`, `api_key` | callbacks refused, by [`Rejection::code`] |
//! | [`VERIFICATION_SECONDS`] | histogram | `api_key` | wall time spent verifying a callback (the checks, not the body's transfer or the handler) |
//! | [`BODY_BYTES`] | histogram | `api_key` | length of each body read |
//! | [`STORE_ENTRIES`] | gauge | | `jti`s held by the in-memory replay store |
//! | [`STORE_WINDOW_SECONDS`] | gauge | | how old a token that store still vouches for may be |
//!
//! - `api_key` is a configured API key, or `unknown` when the request's token named none of
//!   them or could not be read: a forger cannot grow the number of series.
//! - `secret` is the label of the secret that verified the callback
//!   ([`Secret::labelled`](crate::Secret::labelled); `current` and `previous` from
//!   [`Secrets::from_env`](crate::Secrets::from_env)), else its position (`0`, `1`, ...). When
//!   rotating, wait until `secret="previous"` stops growing before removing that secret.
//! - Verification time covers the checks of the headers, the token and the body's hash, not
//!   waiting for the body or for the replay store; it is recorded for every callback, accepted
//!   or refused. Body length is recorded for each body read (refusals from the headers alone
//!   read none).
//! - The store gauges are set by [`MemoryReplayStore`](crate::MemoryReplayStore) on each
//!   reservation; the window is the full retention until the store has had to shrink it. A
//!   process normally has one such store ([`MemoryReplayStore::shared`](crate::MemoryReplayStore::shared)).
//!   Redis reports its own size (`INFO keyspace`).
//!
//! Call [`describe`] once after installing the recorder to give each metric its unit and help
//! text. Install the recorder before serving: the series of accepted callbacks and the store's
//! gauges are registered with the recorder in place at their first use, and kept (a series found
//! once, not looked up by its labels for every callback). Without the feature none of this is
//! compiled in.
//!
//! [`Rejection::code`]: crate::Rejection::code

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ::metrics::{Counter, Gauge, Histogram, SharedString};

use crate::rejection::Rejection;

/// Counter of accepted callbacks; labels `api_key`, `secret`.
pub const ACCEPTED: &str = "vonage_callbacks_accepted_total";
/// Counter of refused callbacks; labels `reason`, `api_key`.
pub const REFUSED: &str = "vonage_callbacks_refused_total";
/// Histogram of verification time, in seconds; label `api_key`.
pub const VERIFICATION_SECONDS: &str = "vonage_callback_verification_seconds";
/// Histogram of body lengths, in bytes; label `api_key`.
pub const BODY_BYTES: &str = "vonage_callback_body_bytes";
/// Gauge of the in-memory replay store's entries.
pub const STORE_ENTRIES: &str = "vonage_replay_store_entries";
/// Gauge of the in-memory replay store's effective window, in seconds.
pub const STORE_WINDOW_SECONDS: &str = "vonage_replay_store_window_seconds";

/// The `api_key` label of a token that named no configured key.
pub const UNKNOWN_API_KEY: &str = "unknown";

/// Registers each metric's unit and description with the installed recorder.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        ACCEPTED,
        Unit::Count,
        "Vonage callbacks verified and passed on"
    );
    describe_counter!(REFUSED, Unit::Count, "Vonage callbacks refused, by reason");
    describe_histogram!(
        VERIFICATION_SECONDS,
        Unit::Seconds,
        "Time spent verifying a Vonage callback's token and payload hash"
    );
    describe_histogram!(BODY_BYTES, Unit::Bytes, "Length of Vonage callback bodies");
    describe_gauge!(
        STORE_ENTRIES,
        Unit::Count,
        "jti values held by the replay store"
    );
    describe_gauge!(
        STORE_WINDOW_SECONDS,
        Unit::Seconds,
        "How old a token the in-memory replay store still vouches for may be"
    );
}

/// The label for `configured`, the configured key a request named (shared, not copied), else
/// [`UNKNOWN_API_KEY`].
fn api_key_label(configured: Option<&Arc<str>>) -> SharedString {
    match configured {
        Some(key) => SharedString::from(Arc::clone(key)),
        None => SharedString::const_str(UNKNOWN_API_KEY),
    }
}

/// The `secret` label: the secret's label, else its position.
fn secret_label(label: Option<&Arc<str>>, index: usize) -> SharedString {
    const POSITIONS: [&str; 4] = ["0", "1", "2", "3"];
    match (label, POSITIONS.get(index)) {
        (Some(label), _) => SharedString::from(Arc::clone(label)),
        (None, Some(position)) => SharedString::const_str(position),
        (None, None) => SharedString::from(index.to_string()),
    }
}

/// A project's series of accepted callbacks, registered with the recorder installed at its first
/// accepted callback and then kept: finding a labelled series costs a key built, hashed and
/// looked up, several times the cost of counting in it.
#[derive(Clone, Default)]
pub(crate) struct ProjectSeries(OnceLock<Accepted>);

/// The handles an accepted callback records in.
#[derive(Clone)]
pub(crate) struct Accepted {
    /// [`ACCEPTED`] of each of the project's secrets, by position.
    by_secret: Box<[Counter]>,
    verification: Histogram,
    body: Histogram,
}

impl ProjectSeries {
    /// The series of `api_key`, whose secrets have `labels` in order.
    pub(crate) fn get_or_register(
        &self,
        api_key: &Arc<str>,
        labels: impl Iterator<Item = Option<Arc<str>>>,
    ) -> &Accepted {
        self.0.get_or_init(|| {
            let key = SharedString::from(Arc::clone(api_key));
            let by_secret = labels
                .enumerate()
                .map(|(index, label)| {
                    let secret = secret_label(label.as_ref(), index);
                    ::metrics::counter!(ACCEPTED, "api_key" => key.clone(), "secret" => secret)
                })
                .collect();
            Accepted {
                by_secret,
                verification: ::metrics::histogram!(VERIFICATION_SECONDS, "api_key" => key.clone()),
                body: ::metrics::histogram!(BODY_BYTES, "api_key" => key),
            }
        })
    }
}

/// Records an accepted callback in its project's `series`, verified by the secret at `secret`.
pub(crate) fn accepted(series: Option<&Accepted>, secret: usize, spent: Duration, body_len: usize) {
    // A verified callback's key is configured, and its secret one of the key's.
    let Some(series) = series else {
        return;
    };
    if let Some(counter) = series.by_secret.get(secret) {
        counter.increment(1);
    }
    series.verification.record(spent.as_secs_f64());
    series.body.record(body_len as f64);
}

/// Records a refused callback; `api_key` is the configured key it named, if any.
pub(crate) fn refused(
    rejection: Rejection,
    api_key: Option<&Arc<str>>,
    spent: Duration,
    body_len: Option<usize>,
) {
    let api_key = api_key_label(api_key);
    ::metrics::histogram!(VERIFICATION_SECONDS, "api_key" => api_key.clone())
        .record(spent.as_secs_f64());
    if let Some(len) = body_len {
        ::metrics::histogram!(BODY_BYTES, "api_key" => api_key.clone()).record(len as f64);
    }
    ::metrics::counter!(REFUSED, "reason" => rejection.code(), "api_key" => api_key).increment(1);
}

/// The in-memory store's gauges, registered at its first reservation and kept.
#[derive(Default)]
pub(crate) struct StoreGauges(OnceLock<[Gauge; 2]>);

impl StoreGauges {
    pub(crate) fn set(&self, entries: usize, window: Duration) {
        let [held, span] = self.0.get_or_init(|| {
            [
                ::metrics::gauge!(STORE_ENTRIES),
                ::metrics::gauge!(STORE_WINDOW_SECONDS),
            ]
        });
        held.set(entries as f64);
        span.set(window.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use crate::{Secret, Secrets};

    #[test]
    fn a_secret_added_after_the_first_callback_is_counted_too() {
        let one = Secrets::new().project("k", Secret::new([1u8; 32]).unwrap());
        assert_eq!(one.accepted_series("k").unwrap().by_secret.len(), 1);
        // A clone made after the series were registered, given a second secret.
        let two = one.clone().project("k", Secret::new([2u8; 32]).unwrap());
        assert_eq!(two.accepted_series("k").unwrap().by_secret.len(), 2);
        assert_eq!(one.accepted_series("k").unwrap().by_secret.len(), 1);
        assert!(one.accepted_series("other").is_none());
    }
}
