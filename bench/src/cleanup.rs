//! The broker objects of a benchmark: connecting to a node within a time limit, and
//! [`Cleanup`], the register of the queues and exchanges the benchmark created, deleted
//! after each run and again at exit, whatever happened (a run that fails half-way must
//! not leave its queue behind on a broker other tests and people use).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

/// The local broker, as the default guest user (which RabbitMQ only lets in over loopback).
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// How long connecting (TCP + AMQP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the node at `url` as `name`, giving up after 10 s.
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let at = address_of(url);
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties))
        .await
        .with_context(|| format!("timed out connecting to RabbitMQ at {at}"))?
        .with_context(|| format!("cannot connect to RabbitMQ at {at}"))
}

/// `host:port` of an `amqp://user:password@host:port/vhost` URL, for messages (no
/// password).
fn address_of(url: &str) -> &str {
    let authority = url.split('/').nth(2).unwrap_or_default();
    authority.rsplit_once('@').map_or(authority, |(_, at)| at)
}

/// A broker object to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BrokerObject {
    Queue(String),
    Exchange(String),
}

/// The queues and exchanges the benchmark created; [`Cleanup::run`] deletes them.
/// Register a name *before* declaring it, so a failure half-way leaves nothing behind.
#[derive(Debug, Clone)]
pub struct Cleanup {
    /// The node they are deleted through (any node of a cluster would do).
    url: String,
    objects: Arc<Mutex<Vec<BrokerObject>>>,
}

impl Cleanup {
    /// Nothing registered yet; objects will be deleted through the node at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            objects: Arc::default(),
        }
    }

    /// The node objects are declared and deleted through.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers a queue.
    pub fn queue(&self, name: &str) {
        self.push(BrokerObject::Queue(name.to_owned()));
    }

    /// Registers an exchange.
    pub fn exchange(&self, name: &str) {
        self.push(BrokerObject::Exchange(name.to_owned()));
    }

    fn push(&self, object: BrokerObject) {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(object);
    }

    /// Deletes every registered object (queues first), bounded to 30 s in all; what
    /// could not be deleted stays registered and is returned as an error.
    pub async fn run(&self) -> anyhow::Result<()> {
        let objects =
            std::mem::take(&mut *self.objects.lock().unwrap_or_else(PoisonError::into_inner));
        if objects.is_empty() {
            return Ok(());
        }
        let deleting = async {
            let connection = connect(&self.url, "bench-cleanup").await?;
            let channel = connection.create_channel().await?;
            let mut queues_first = objects.clone();
            queues_first.sort_by_key(|object| matches!(object, BrokerObject::Exchange(_)));
            for object in &queues_first {
                match object {
                    BrokerObject::Queue(name) => {
                        channel
                            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                            .await?;
                    }
                    BrokerObject::Exchange(name) => {
                        channel
                            .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                            .await?;
                    }
                }
            }
            let _ = connection.close(200, "bench cleanup done".into()).await;
            anyhow::Ok(())
        };
        let result = match tokio::time::timeout(Duration::from_secs(30), deleting).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!("timed out")),
        };
        if let Err(error) = result {
            // Keep them for the next attempt (deleting a missing object is not an error).
            self.objects
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(objects.iter().cloned());
            return Err(error.context(format!("could not delete {objects:?}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_registers_what_it_will_delete() {
        let cleanup = Cleanup::new(AMQP_URL);
        cleanup.queue("q");
        cleanup.exchange("x");
        assert_eq!(
            *cleanup.objects.lock().unwrap(),
            vec![
                BrokerObject::Queue("q".into()),
                BrokerObject::Exchange("x".into())
            ]
        );
        assert_eq!(cleanup.url(), AMQP_URL);
    }

    #[test]
    fn messages_name_the_node_without_its_password() {
        assert_eq!(address_of(AMQP_URL), "127.0.0.1:5672");
        assert_eq!(address_of("amqp://u:p@w@host:5673/%2f"), "host:5673");
        assert_eq!(address_of("amqp://host"), "host");
    }
}
