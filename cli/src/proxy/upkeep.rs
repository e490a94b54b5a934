//! The metrics recorder's upkeep. Its histograms (the layer's verification time and body length,
//! the upstream's time) keep every sample until something drains them into their summaries: a
//! scrape of `/metrics` does, but a proxy nobody scrapes would keep them all, 8 bytes a sample
//! and three samples a callback, for as long as it runs. So a thread of its own drains them on
//! a period: a thread, not a task, since after a busy period that is many thousands of samples,
//! which must not hold up the runtime's callbacks.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// How often the histograms are drained: at most this long's samples are kept.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Drains `recorder`'s histograms every `period`, for as long as the process runs.
pub fn drain_every(recorder: PrometheusHandle, period: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            recorder.run_upkeep();
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::*;

    /// The process's resident memory, in bytes.
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn samples_are_drained_rather_than_kept() {
        let recorder = PrometheusBuilder::new().build_recorder();
        drain_every(recorder.handle(), Duration::from_millis(10)).unwrap();
        let histogram = metrics::with_local_recorder(&recorder, || metrics::histogram!("t"));
        let burst = |n: u32| {
            for i in 0..n {
                histogram.record(f64::from(i));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The first bursts leave the allocator holding what later ones reuse once drained.
        const SAMPLES: u32 = 500_000;
        burst(SAMPLES);
        burst(SAMPLES);
        let before = resident();
        const BURSTS: u32 = 8;
        for _ in 0..BURSTS {
            burst(SAMPLES);
        }
        let grown = resident().saturating_sub(before);
        // Kept, they would take 8 bytes each, and more with their blocks.
        let kept = (SAMPLES * BURSTS) as usize * 8;
        assert!(
            grown < kept / 2,
            "grew {grown} bytes over {kept} bytes of samples"
        );
    }
}
