//! The broker objects and files one test owns, so tests running in
//! parallel cannot take each other's messages, and their removal.

use std::path::PathBuf;

use contracts::amqp::{dead_letter_exchange, dead_letter_queue};
use lapin::options::*;

use crate::amqp_url;

/// Names of the broker objects and files one pipeline owns.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// Topic exchange.
    pub exchange: String,
    /// stock-service's queue.
    pub queue: String,
    /// Routing key.
    pub routing_key: String,
    /// Directory holding the SQLite database.
    pub dir: PathBuf,
    /// The broker every service of the pipeline uses ([`amqp_url`] unless
    /// the test chose another, see [`Isolation::on_broker`]).
    pub amqp_url: String,
}

impl Isolation {
    /// Fresh, unique names.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("checkout-e2e-{id}"));
        Self {
            exchange: format!("e2e-{id}"),
            queue: format!("e2e-{id}"),
            routing_key: "checkout.processed".to_owned(),
            dir,
            amqp_url: amqp_url(),
        }
    }

    /// Fresh, unique names on the broker at `amqp_url`.
    pub fn on_broker(amqp_url: String) -> Self {
        Self {
            amqp_url,
            ..Self::new()
        }
    }

    /// The SQLite URL inside [`Isolation::dir`].
    pub fn database_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.dir.join("stock.db").display())
    }

    /// The pipeline's broker settings (`AMQP_URL`, exchange, routing key).
    pub fn amqp_settings(&self) -> amqp::AmqpSettings {
        amqp::AmqpSettings {
            nodes: self.amqp_url.parse().expect("a valid AMQP_URL"),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
        }
    }

    /// [`Isolation::clean_up`] from synchronous code such as `Drop`, on a
    /// thread with a runtime of its own (a test's runtime may be the one
    /// being dropped from).
    pub fn clean_up_blocking(&self) {
        let isolation = self.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(isolation.clean_up());
            }
        })
        .join();
    }

    /// Deletes the queues, exchanges and files (best effort), through any
    /// node of the broker that answers.
    pub async fn clean_up(&self) {
        if let Ok((connection, _node)) =
            amqp::connection::connect(&self.amqp_settings(), "e2e-clean-up").await
            && let Ok(channel) = connection.create_channel().await
        {
            for queue in [self.queue.clone(), dead_letter_queue(&self.queue)] {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for exchange in [self.exchange.clone(), dead_letter_exchange(&self.exchange)] {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = connection.close(200, "done".into()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Default for Isolation {
    fn default() -> Self {
        Self::new()
    }
}
