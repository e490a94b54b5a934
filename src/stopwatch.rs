//! Verification time, and the metrics of a callback's outcome: measured and recorded only with
//! feature `metrics`; without it a zero-sized no-op, so the hot path pays nothing for it.

#[cfg(feature = "metrics")]
use std::time::{Duration, Instant};

use crate::claims::SecretUsed;
use crate::rejection::Rejection;
use crate::secrets::Secrets;

/// Time spent in the verification steps timed so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    spent: Duration,
}

impl Stopwatch {
    /// Runs `step`, adding its duration to the total.
    #[inline]
    pub(crate) fn time<T>(&mut self, step: impl FnOnce() -> T) -> T {
        #[cfg(feature = "metrics")]
        {
            let start = Instant::now();
            let out = step();
            self.spent += start.elapsed();
            out
        }
        #[cfg(not(feature = "metrics"))]
        step()
    }

    /// Records an accepted callback: its time, its body's length, which key and secret.
    #[inline]
    pub(crate) fn accepted(
        self,
        _secrets: &Secrets,
        _api_key: &str,
        _secret: &SecretUsed,
        _body_len: usize,
    ) {
        #[cfg(feature = "metrics")]
        crate::metrics::accepted(
            _secrets.accepted_series(_api_key),
            _secret.index(),
            self.spent,
            _body_len,
        );
    }

    /// Records a refused callback: its time, its reason, the body's length if it was read.
    #[inline]
    pub(crate) fn refused(
        self,
        _secrets: &Secrets,
        _rejection: Rejection,
        _api_key: Option<&str>,
        _body_len: Option<usize>,
    ) {
        #[cfg(feature = "metrics")]
        crate::metrics::refused(
            _rejection,
            _api_key.and_then(|key| _secrets.configured_key(key)),
            self.spent,
            _body_len,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_nothing_without_metrics() {
        let expected = if cfg!(feature = "metrics") { 16 } else { 0 };
        assert_eq!(std::mem::size_of::<Stopwatch>(), expected);
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn adds_up_the_steps_it_timed() {
        let mut watch = Stopwatch::default();
        let pause = Duration::from_millis(5);
        watch.time(|| std::thread::sleep(pause));
        assert_eq!(watch.time(|| 7), 7);
        watch.time(|| std::thread::sleep(pause));
        assert!(watch.spent >= 2 * pause, "{:?}", watch.spent);
    }
}
