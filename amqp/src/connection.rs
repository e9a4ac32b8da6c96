//! Opening and closing a broker connection within time limits, and the one
//! reconnect backoff both services use.
//!
//! The broker may be a cluster: [`connect`] tries its nodes in a random
//! order, so that the replicas of a service spread over the nodes, and
//! returns the first that answers together with which node it is (the
//! spans name the node actually connected). When that node is lost, the
//! services' reconnect loops call [`connect`] again and land on any node that
//! is up. One pass over the nodes is one attempt of the [`Backoff`].

use std::{fmt, time::Duration};

use lapin::{Connection, ConnectionProperties};
use rand::seq::SliceRandom;

use crate::{AmqpSettings, settings::Node};

/// How long a TCP connect plus AMQP handshake may take, per node.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing may wait for the broker's answer.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// No node could be connected to; what each one answered.
#[derive(Debug, thiserror::Error)]
#[error("no RabbitMQ node answered: {}", Failures(.failures))]
pub struct ConnectError {
    /// Each node tried (its URL redacted) and why it failed.
    pub failures: Vec<(String, NodeError)>,
}

/// Why one node could not be connected to.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A protocol or network error.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The node did not complete the handshake in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// `url: reason; url: reason` for [`ConnectError`]'s message.
struct Failures<'a>(&'a [(String, NodeError)]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (url, error)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{url}: {error}")?;
        }
        Ok(())
    }
}

/// Connects as `connection_name` (shown in the management UI and by
/// `rabbitmqctl list_connections`) to the first node of `settings` that
/// answers, trying them in a random order, each within
/// [`CONNECT_TIMEOUT`]. Returns the connection and its node.
pub async fn connect(
    settings: &AmqpSettings,
    connection_name: &str,
) -> Result<(Connection, Node), ConnectError> {
    let mut nodes = settings.nodes.as_slice().to_vec();
    nodes.shuffle(&mut rand::rng());
    let mut failures = Vec::new();
    for node in nodes {
        let properties =
            ConnectionProperties::default().with_connection_name(connection_name.into());
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(node.url(), properties))
                .await;
        match attempt {
            Ok(Ok(connection)) => return Ok((connection, node)),
            Ok(Err(error)) => failures.push((node.redacted_url(), NodeError::from(error))),
            Err(_) => failures.push((node.redacted_url(), NodeError::Timeout(CONNECT_TIMEOUT))),
        }
    }
    Err(ConnectError { failures })
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

/// Capped exponential backoff between reconnect attempts (an attempt is one
/// pass over the nodes): 100 ms doubling to 1 s, each wait drawn at random
/// between half and all of that step.
///
/// The cap is low so that the first order goes through within about a
/// second of any node being reachable again; a pass over nodes that refuse
/// connections takes milliseconds, so even at the cap a dead cluster sees
/// one connection attempt per node per half-second or more from each
/// process, not a tight loop. The random part keeps the replicas of a
/// service, which all lost their node at the same moment, from reconnecting
/// in lockstep. [`Backoff::reset`] starts over after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    /// The first step.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest step: no wait is longer.
    pub const MAX: Duration = Duration::from_secs(1);

    /// A backoff at its first step.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The wait before the next attempt, between half the current step and
    /// all of it; each call doubles the step, up to [`Backoff::MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Starts over from the first step.
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
    fn backoff_doubles_up_to_its_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new();
        let steps = [100, 200, 400, 800, 1000, 1000, 1000, 1000].map(Duration::from_millis);
        for step in steps {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} not within [{:?}, {step:?}]",
                step / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Backoff::FIRST);
    }

    #[test]
    fn no_wait_is_ever_longer_than_the_cap() {
        let mut backoff = Backoff::new();
        assert!((0..1000).all(|_| backoff.next_delay() <= Backoff::MAX));
    }

    #[tokio::test]
    async fn a_list_of_dead_nodes_fails_naming_each_without_its_password() {
        // Ports that refuse: bound a moment ago, then released.
        let ports: Vec<u16> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let list = ports
            .iter()
            .map(|port| format!("amqp://guest:s3cret@127.0.0.1:{port}/%2f"))
            .collect::<Vec<_>>()
            .join(",");
        let settings = AmqpSettings {
            nodes: list.parse().unwrap(),
            exchange: "checkout".to_owned(),
            routing_key: "checkout.processed".to_owned(),
        };
        let error = connect(&settings, "test").await.unwrap_err();
        assert_eq!(error.failures.len(), 2);
        let message = error.to_string();
        for port in ports {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        }
        assert!(!message.contains("s3cret"), "{message}");
    }
}
