//! Verification time for the metrics: measured only with feature `metrics`, and without it a
//! zero-sized no-op, so the hot path pays nothing for it.

#[cfg(feature = "metrics")]
use std::time::{Duration, Instant};

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

    #[cfg(feature = "metrics")]
    pub(crate) fn spent(&self) -> Duration {
        self.spent
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
        assert!(watch.spent() >= 2 * pause, "{:?}", watch.spent());
    }
}
