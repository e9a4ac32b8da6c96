//! Opening and closing a broker connection within time limits, and the one
//! reconnect backoff both services use.

use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::AmqpSettings;

/// How long a TCP connect plus AMQP handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing may wait for the broker's answer.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A protocol or network error.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker did not complete the handshake in time.
    #[error("timed out connecting to {0}")]
    Timeout(String),
}

/// Connects to the broker of `settings` as `connection_name` (shown in the
/// management UI), giving up after [`CONNECT_TIMEOUT`].
pub async fn connect(
    settings: &AmqpSettings,
    connection_name: &str,
) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(connection_name.into());
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(&settings.url, properties),
    )
    .await
    .map_err(|_| ConnectError::Timeout(settings.redacted_url()))?
    .map_err(ConnectError::from)
}

/// Closes `connection` with `reason`, waiting at most [`CLOSE_TIMEOUT`].
/// Deliveries received but not acknowledged go back to their queue.
pub async fn close(connection: &Connection, reason: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, reason.into())).await {
        Ok(Ok(())) => {}
        // Typically the connection is already gone, which is why we close.
        Ok(Err(error)) => tracing::debug!(%error, "closing the AMQP connection"),
        Err(_) => tracing::warn!("the broker did not confirm closing the connection"),
    }
}

/// Capped exponential backoff between reconnect attempts: 100 ms doubling
/// to 5 s, so a broker that is back is found quickly and one that is down
/// is not hammered. [`Backoff::reset`] starts over after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(5);

    /// A backoff at its first wait.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The wait before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    /// Starts over from the first wait.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays[0], Backoff::FIRST);
        assert_eq!(delays[1], Backoff::FIRST * 2);
        assert_eq!(*delays.last().unwrap(), Backoff::MAX);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Backoff::FIRST);
    }
}
