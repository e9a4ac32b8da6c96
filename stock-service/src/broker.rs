//! The RabbitMQ side: one connection (to whichever node of the broker
//! answered), its two channels, and the topology this service consumes from
//! (declared at every connect by [`amqp::topology::declare_queue`], its
//! quorum queues replicated on `AMQP_QUORUM_SIZE` nodes).
//!
//! Two channels, because their settings differ: the consuming channel has
//! the prefetch limit (`basic.qos`); the publishing channel, used only to
//! dead-letter poison messages, is in confirm mode so a dead letter is known
//! to be stored before the original is acknowledged.

use std::time::Duration;

use amqp::{connection::ConnectError, settings::Node, topology::DeclareError};
use lapin::{
    Channel, Connection,
    options::{BasicQosOptions, ConfirmSelectOptions},
};

use crate::configuration::Settings;

/// Talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A protocol, channel or connection error.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// No node of the broker could be reached.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The broker refused the queues' declaration.
    #[error("{0}")]
    Declare(#[from] DeclareError),
    /// The broker ended the subscription (queue deleted, channel closed).
    #[error("the broker ended the subscription")]
    ConsumerEnded,
    /// Settling a delivery did not complete in time; the connection is
    /// treated as lost.
    #[error("settling a delivery took longer than {0:?}")]
    SettleTimeout(Duration),
}

/// An open connection with the topology declared.
pub struct BrokerSession {
    connection: Connection,
    /// The node the connection is on (the consumer spans name it).
    pub(crate) node: Node,
    /// Carries the subscription; has the prefetch limit.
    pub(crate) consume: Channel,
    /// Publishes dead letters; in confirm mode.
    pub(crate) publish: Channel,
}

impl BrokerSession {
    /// Connects to a node, declares the topology and opens both channels.
    pub async fn open(settings: &Settings) -> Result<Self, BrokerError> {
        let (connection, node) = amqp::connection::connect(&settings.amqp, crate::NAME).await?;
        let consume = connection.create_channel().await?;
        amqp::topology::declare_queue(
            &consume,
            &settings.amqp,
            &settings.queue.name,
            settings.queue.quorum_size,
        )
        .await?;
        consume
            .basic_qos(settings.queue.prefetch, BasicQosOptions::default())
            .await?;

        let publish = connection.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        tracing::info!(node = %node.redacted_url(), "connected to RabbitMQ");
        Ok(Self {
            connection,
            node,
            consume,
            publish,
        })
    }

    /// Closes the connection (and with it both channels). Deliveries that
    /// were received but not acknowledged go back to the queue.
    pub async fn close(self) {
        amqp::connection::close(&self.connection, "stock-service stopping").await;
    }
}
