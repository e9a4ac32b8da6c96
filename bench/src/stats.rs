//! The arithmetic of the figures: latency percentiles, ratios, CPU per thousand
//! operations.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latency percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl Latency {
    /// From a histogram of microseconds (zeros when empty).
    pub fn of_micros(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let at = |quantile| Duration::from_micros(histogram.value_at_quantile(quantile));
        Self {
            p50: at(0.5),
            p99: at(0.99),
            max: Duration::from_micros(histogram.max()),
        }
    }

    /// From the load generator's summary.
    pub fn of_load(summary: &checkout_cli::load::LatencySummary) -> Self {
        Self {
            p50: summary.p50,
            p99: summary.p99,
            max: summary.max,
        }
    }
}

/// A new microsecond histogram: 1 µs to 1 h, 3 significant digits.
#[allow(
    clippy::expect_used,
    reason = "constant bounds that the constructor accepts"
)]
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

/// `numerator / denominator`, `None` when the denominator is zero or not finite.
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator.is_finite() && denominator != 0.0).then(|| numerator / denominator)
}

/// CPU seconds per 1,000 operations (`None` without operations).
pub fn cpu_per_thousand(cpu: Duration, operations: u64) -> Option<f64> {
    ratio(cpu.as_secs_f64() * 1_000.0, operations as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 4.0), Some(0.75));
        assert_eq!(ratio(1.0, 0.0), None);
    }

    #[test]
    fn cpu_per_thousand_operations() {
        // 1.5 s of CPU for 10,000 checkouts: 0.15 s per 1,000, i.e. 150 µs each.
        let per_k = cpu_per_thousand(Duration::from_millis(1_500), 10_000).unwrap();
        assert!((per_k - 0.15).abs() < 1e-12);
        assert_eq!(cpu_per_thousand(Duration::from_secs(1), 0), None);
    }

    #[test]
    fn histogram_latencies() {
        let mut histogram = micros_histogram();
        for micros in 1..=1_000 {
            histogram.record(micros).unwrap();
        }
        let latency = Latency::of_micros(&histogram);
        assert!(latency.p50.abs_diff(Duration::from_micros(500)) <= Duration::from_micros(1));
        assert!(latency.p99.abs_diff(Duration::from_micros(990)) <= Duration::from_micros(1));
        assert_eq!(latency.max, Duration::from_micros(1_000));
        assert_eq!(Latency::of_micros(&micros_histogram()), Latency::default());
    }
}
