//! The relay's rate limit: a token bucket shared by every client.
//!
//! `TRACE_RELAY_RATE_LIMIT` exports a second, with bursts of up to twice
//! as many; past it an export is refused at once with 429 and a
//! `Retry-After` that says when a token is back. Global rather than per
//! client IP: the gateway's listener does not hand the router the peer's
//! address, and behind a proxy or a NAT every browser would share one
//! anyway. What it protects is the collector and the gateway's CPU; one
//! noisy browser can starve the others' telemetry, never anyone's
//! checkouts (the relay shares nothing with them but the listener).
//!
//! Hand-written (a dozen lines under a mutex held for two arithmetic
//! operations) rather than tower's `RateLimit`, which queues rather than
//! refuses and is not `Clone`, or a crate such as `governor`, whose keyed
//! limiters this does not need.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// A token bucket: `per_second` tokens a second, holding at most `burst`.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `per_second` exports a second (at least 1), with bursts of twice as
    /// many; the bucket starts full.
    pub fn new(per_second: usize) -> Self {
        let per_second = per_second.max(1) as f64;
        let burst = 2.0 * per_second;
        Self {
            per_second,
            burst,
            bucket: Mutex::new(Bucket {
                tokens: burst,
                at: Instant::now(),
            }),
        }
    }

    /// Takes a token, or says how long until one is back.
    pub fn try_take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_then_refusals_with_a_wait() {
        let limit = RateLimit::new(5);
        for _ in 0..10 {
            assert!(limit.try_take().is_ok());
        }
        let wait = limit.try_take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }

    #[test]
    fn tokens_come_back_with_time() {
        let limit = RateLimit::new(1000);
        while limit.try_take().is_ok() {}
        std::thread::sleep(Duration::from_millis(20));
        assert!(limit.try_take().is_ok());
    }
}
