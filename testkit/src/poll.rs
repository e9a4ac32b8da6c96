//! Waiting on a condition, the one way the tests and the benchmark do it: poll
//! a probe often, with a generous deadline, and say what did not happen.
//! Never sleep-and-hope.

use std::{fmt::Display, future::Future, time::Duration};

/// How often a probe runs.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// Runs `probe` every [`INTERVAL`] until it returns `Some`, and returns that
/// value; fails the test with `what` if `patience` runs out first.
pub async fn until<T, F, Fut>(what: impl Display, patience: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, patience, probe)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

/// [`until`] for a tool that reports rather than panics: the error says what did
/// not happen within `patience`.
pub async fn within<T, F, Fut>(
    what: impl Display,
    patience: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {patience:?}"
        );
        tokio::time::sleep(INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_the_probe_finds() {
        let mut calls = 0;
        let found = until("the third call", Duration::from_secs(5), || {
            calls += 1;
            let answer = (calls == 3).then_some(calls);
            async move { answer }
        })
        .await;
        assert_eq!(found, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never: not within")]
    async fn fails_with_what_did_not_happen() {
        until("never", Duration::from_millis(120), || async { None::<()> }).await;
    }
}
