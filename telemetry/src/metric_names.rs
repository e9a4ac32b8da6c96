//! The names of the metrics the services record and `checkout top` reads:
//! [`contracts::metrics`], re-exported where the recording code looks, with
//! the bucket boundaries every duration histogram is recorded with.

pub use contracts::metrics::*;

/// Bucket boundaries, in seconds, of every duration histogram: from 100 µs,
/// where this pipeline's fastest operations are, to 10 s. The SDK's
/// default boundaries (0, 5, 10, … 10 000) are meant for milliseconds and
/// would put every duration in seconds into one bucket; the conventions'
/// advice starts at 5 ms, above most of these operations.
pub const DURATION_BOUNDARIES: [f64; 21] = [
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1,
    0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[cfg(test)]
mod tests {
    use opentelemetry_semantic_conventions::{attribute, metric};

    use super::*;

    #[test]
    fn the_durations_are_the_conventions_names() {
        assert_eq!(
            OPERATION_DURATIONS,
            [
                metric::HTTP_SERVER_REQUEST_DURATION,
                metric::RPC_CLIENT_CALL_DURATION,
                metric::RPC_SERVER_CALL_DURATION,
                metric::MESSAGING_CLIENT_OPERATION_DURATION,
                metric::MESSAGING_PROCESS_DURATION,
                metric::DB_CLIENT_OPERATION_DURATION,
                metric::HTTP_CLIENT_REQUEST_DURATION,
            ]
        );
        assert_eq!(ERROR_TYPE, attribute::ERROR_TYPE);
        assert!(DURATION_BOUNDARIES.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
