//! What the upstream did with a forwarded callback, and the proxy's series of it: each series
//! found once and kept, since finding a labelled series costs a key built, hashed and looked up
//! for every callback.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Histogram};

/// Upstream answers by status (`2xx` codes, `unreachable`, `timeout`, `too_large`,
/// `invalid`).
pub const UPSTREAM_RESPONSES: &str = "vonage_proxy_upstream_responses_total";
/// Time to the upstream's whole answer, seconds.
pub const UPSTREAM_SECONDS: &str = "vonage_proxy_upstream_seconds";

/// How a forwarded callback ended at the upstream.
#[derive(Clone, Copy)]
pub enum Outcome {
    /// It answered with this status.
    Answered(StatusCode),
    /// It could not be reached, or dropped the connection.
    Unreachable,
    /// It did not answer within the upstream timeout.
    Timeout,
    /// Its answer's body was longer than the body limit.
    TooLarge,
    /// Its answer was not HTTP/1.1 as RFC 9112 frames it.
    Invalid,
}

impl Outcome {
    /// The status code's digits, `unreachable`, `timeout`, `too_large` or `invalid`: the log
    /// line's and the metric's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Answered(status) => status.as_str(),
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
            Self::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status codes are 100 to 999: one slot each, then unreachable, timeout, too large and
/// invalid.
const SLOTS: usize = 900 + 4;

/// The series of [`UPSTREAM_RESPONSES`] and [`UPSTREAM_SECONDS`], registered with the recorder
/// at first use.
pub struct UpstreamSeries {
    responses: Box<[OnceLock<Counter>]>,
    seconds: OnceLock<Histogram>,
}

impl UpstreamSeries {
    pub fn new() -> Self {
        Self {
            responses: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            seconds: OnceLock::new(),
        }
    }

    /// Counts `outcome`, and how long the upstream took.
    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        let slot = match outcome {
            Outcome::Answered(status) => usize::from(status.as_u16()) - 100,
            Outcome::Unreachable => SLOTS - 4,
            Outcome::Timeout => SLOTS - 3,
            Outcome::TooLarge => SLOTS - 2,
            Outcome::Invalid => SLOTS - 1,
        };
        self.responses[slot]
            .get_or_init(|| metrics::counter!(UPSTREAM_RESPONSES, "status" => outcome.to_string()))
            .increment(1);
        self.seconds
            .get_or_init(|| metrics::histogram!(UPSTREAM_SECONDS))
            .record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_slot_of_its_own() {
        let statuses = [100, 200, 599, 999].map(|code| StatusCode::from_u16(code).unwrap());
        let outcomes = statuses.map(Outcome::Answered).into_iter().chain([
            Outcome::Unreachable,
            Outcome::Timeout,
            Outcome::TooLarge,
            Outcome::Invalid,
        ]);
        let names: Vec<String> = outcomes.clone().map(|o| o.to_string()).collect();
        assert_eq!(
            names,
            [
                "100",
                "200",
                "599",
                "999",
                "unreachable",
                "timeout",
                "too_large",
                "invalid"
            ]
        );
        // Each is recorded without running past the slots (a recorder is not needed to tell).
        let series = UpstreamSeries::new();
        for outcome in outcomes {
            series.record(outcome, Duration::from_millis(1));
        }
        assert_eq!(
            series
                .responses
                .iter()
                .filter(|s| s.get().is_some())
                .count(),
            8
        );
    }
}
