//! Publishing `checkout.processed` to RabbitMQ, with publisher confirms.
//!
//! One connection and one channel in confirm mode serve every request: lapin
//! channels are safe to share, and confirms are matched to their publish by
//! delivery tag, so concurrent checkouts pipeline on one channel instead of
//! paying for a channel (or connection) each.
//!
//! A publish succeeds only when the broker has confirmed the message
//! (`basic.ack`) and did not return it as unroutable (the `mandatory` flag):
//! a confirmed message is on disk in a durable queue, so the 202 the client
//! gets is a promise the broker can keep. Anything else is an error.
//!
//! When the connection drops, publishing fails fast with
//! [`PublishError::Unavailable`] while a background task reconnects with
//! capped exponential backoff; nothing waits on the broker in an unbounded queue.
//! On a cluster (`AMQP_URL` listing several nodes) the reconnect goes to any
//! node that answers, and each PRODUCER span names the node its message went
//! through. If no node answers at start, the service starts anyway,
//! disconnected (its gRPC health says `NOT_SERVING`), and the same task keeps
//! trying.
//! A publish that is not confirmed within [`CONFIRM_TIMEOUT`] fails too: a
//! caller without a gRPC deadline must not wait forever on a confirm that a
//! dying connection never resolves. The failure is ambiguous, as every
//! publish failure is, and the `Idempotency-Key` is what makes the client's
//! retry safe.
//!
//! A nack or a confirm timeout makes the supervisor replace the channel (at
//! most once per [`CHANNEL_RENEWAL_INTERVAL`]). RabbitMQ 3.10 sets up a new
//! channel's quorum-queue client with the leader its queue record names; a
//! channel opened while the cluster elects a new leader (exactly when a
//! publisher that lost its node reconnects) can keep the dead leader, and
//! nack or never confirm every publish for as long as it lives (fixed in
//! 3.11.x/3.12.x: rabbitmq-server PR 9241). A fresh channel a moment later
//! has the new leader.
//!
//! Each publish runs on a task of its own, to its end (confirmed, refused,
//! or timed out), even when its caller stops waiting. The gateway's deadline
//! (2 s by default) is shorter than [`CONFIRM_TIMEOUT`], and tonic drops a
//! handler whose deadline passed: were the publish part of the handler, a
//! channel that never confirms would fail every call at the deadline and
//! never be replaced.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use amqp::{AmqpSettings, connection::Backoff, settings::Node, topology};
use contracts::amqp::{CONTENT_TYPE, CheckoutProcessed, PUBLISHED_AT_HEADER, PUBLISHER_APP_ID};
use futures::{StreamExt, TryFutureExt};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, Event,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable, ShortString},
};
use service::shutdown::CancellationToken;
use telemetry::{
    propagation,
    spans::{
        self,
        messaging::{Message, PublishMetrics},
    },
};
use tokio::sync::{Notify, watch};
use tracing::{Instrument, instrument::WithSubscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Not connected right now (a reconnect is under way).
    #[error("the message broker is unavailable")]
    Unavailable,
    /// The broker or the connection failed during the publish.
    #[error("publish failed: {0}")]
    Broker(#[from] lapin::Error),
    /// The broker could not be reached.
    #[error("cannot reach the broker: {0}")]
    Connect(#[from] amqp::connection::ConnectError),
    /// No queue is bound for the routing key, so the message would be lost.
    #[error(
        "the broker could not route the message: no queue is bound to {exchange} with {routing_key}"
    )]
    Unroutable {
        /// Exchange published to.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The broker refused the message (`basic.nack`).
    #[error("the broker refused the message")]
    Nacked,
    /// The broker did not confirm the message in time.
    #[error("the broker did not confirm the message within {0:?}")]
    ConfirmTimeout(Duration),
}

/// The least time between two channel replacements (after nacks or confirm
/// timeouts, see the module docs): a queue that refuses messages for another
/// reason (`x-overflow` = `reject-publish`) costs a channel a second, not one
/// per publish.
pub const CHANNEL_RENEWAL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a publish waits for the broker's confirm. A healthy broker
/// confirms a persistent message in milliseconds, even under load.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared publisher; clone it freely.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    /// `checkout.broker.connected`, read from `shared.connected`; held so
    /// that it lives as long as the publisher.
    _connected_gauge: telemetry::metrics::GaugeHandle,
}

struct Shared {
    settings: AmqpSettings,
    /// The confirming channel and its node, `None` while disconnected.
    link: RwLock<Option<Link>>,
    /// Raised by a failed publish to make the supervisor check the connection.
    connection_suspect: Notify,
    /// Set with `connection_suspect` by a nack or a confirm timeout: replace
    /// the channel.
    channel_suspect: AtomicBool,
    /// Whether a channel is open, for health reporting.
    connected: watch::Sender<bool>,
    /// The PRODUCER span's measurements.
    metrics: PublishMetrics,
}

/// The open confirming channel and the node its connection is on.
#[derive(Clone)]
struct Link {
    channel: Channel,
    node: Node,
}

impl Publisher {
    /// Connects to a node of the broker, declares the exchange, and keeps a
    /// connection alive until `shutdown`. If no node answers now, it starts
    /// disconnected and keeps trying in the background; a node that answers
    /// but refuses the exchange's declaration is an error (a setting to fix,
    /// not an outage to wait out).
    pub async fn connect(
        settings: AmqpSettings,
        shutdown: CancellationToken,
    ) -> Result<Self, PublishError> {
        let (connection, link) = match open(&settings).await {
            Ok((connection, link)) => (Some(connection), Some(link)),
            Err(PublishError::Connect(error)) => {
                tracing::warn!(%error, "no broker node answers yet: not serving until one does");
                (None, None)
            }
            Err(error) => return Err(error),
        };
        let metrics = PublishMetrics::new(&settings.exchange);
        let shared = Arc::new(Shared {
            metrics,
            settings,
            connected: watch::Sender::new(link.is_some()),
            link: RwLock::new(link),
            connection_suspect: Notify::new(),
            channel_suspect: AtomicBool::new(false),
        });
        tokio::spawn(supervise(shared.clone(), connection, shutdown));
        let state = Arc::downgrade(&shared);
        let connected_gauge = telemetry::metrics::broker_connected(move || {
            state
                .upgrade()
                .is_some_and(|shared| *shared.connected.borrow())
        });
        Ok(Self {
            shared,
            _connected_gauge: connected_gauge,
        })
    }

    /// True while a channel is open.
    pub fn is_connected(&self) -> bool {
        self.current_link()
            .is_some_and(|link| link.channel.status().connected())
    }

    /// Follows the connection state (true: connected), for readiness.
    pub fn connection_state(&self) -> watch::Receiver<bool> {
        self.shared.connected.subscribe()
    }

    fn current_link(&self) -> Option<Link> {
        self.shared
            .link
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Publishes `order` and waits for the broker's confirm, inside a
    /// PRODUCER span whose context travels in the message headers. The
    /// publish goes on to its end if this future is dropped (see the module
    /// docs).
    pub async fn publish(&self, order: &CheckoutProcessed) -> Result<(), PublishError> {
        let body = order.to_json();
        let order_id = order.order_id.to_string();
        let span = spans::messaging::producer(Message {
            exchange: &self.shared.settings.exchange,
            routing_key: &self.shared.settings.routing_key,
            id: Some(&order_id),
            body_size: body.len(),
        });
        let publisher = self.clone();
        let publish = async move { publisher.publish_and_report(order_id, body).await };
        // The task keeps this dispatcher: the service's propagator and
        // meters are found in it (telemetry's `service_context`).
        let publish = publish.instrument(span).with_current_subscriber();
        match tokio::spawn(publish).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(PublishError::Unavailable),
        }
    }

    /// Publishes inside the current (PRODUCER) span, then records the
    /// outcome on the span and the metrics, and flags the connection or the
    /// channel for the supervisor to check.
    async fn publish_and_report(
        &self,
        order_id: String,
        body: Vec<u8>,
    ) -> Result<(), PublishError> {
        let shared = &self.shared;
        let span = tracing::Span::current();
        let started = Instant::now();
        let link = self.current_link();
        if let Some(link) = &link {
            spans::messaging::record_server(&span, link.node.host(), link.node.port());
        }
        let result = self.publish_confirmed(link, &order_id, &body).await;
        shared
            .metrics
            .record(started, result.as_ref().err().map(PublishError::kind));
        if let Err(error) = &result {
            spans::record_error(&span, error.kind(), &error.to_string());
            if matches!(
                error,
                PublishError::Nacked | PublishError::ConfirmTimeout(_)
            ) {
                shared.channel_suspect.store(true, Ordering::Relaxed);
            }
            if matches!(
                error,
                PublishError::Broker(_)
                    | PublishError::Unavailable
                    | PublishError::ConfirmTimeout(_)
                    | PublishError::Nacked
            ) {
                shared.connection_suspect.notify_one();
            }
        }
        result
    }

    async fn publish_confirmed(
        &self,
        link: Option<Link>,
        order_id: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let channel = link
            .map(|link| link.channel)
            .filter(|channel| channel.status().connected())
            .ok_or(PublishError::Unavailable)?;
        let settings = &self.shared.settings;

        let mut headers = FieldTable::default();
        propagation::amqp::inject(&tracing::Span::current().context(), &mut headers);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        headers.insert(
            PUBLISHED_AT_HEADER.into(),
            AMQPValue::LongLongInt(i64::try_from(now.as_millis()).unwrap_or(i64::MAX)),
        );
        let timestamp = now.as_secs();
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(2) // persistent
            .with_message_id(order_id.into())
            .with_timestamp(timestamp)
            .with_app_id(PUBLISHER_APP_ID.into())
            .with_headers(headers);

        let published = channel
            .basic_publish(
                ShortString::from(settings.exchange.as_str()),
                ShortString::from(settings.routing_key.as_str()),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .and_then(|confirm| confirm);
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, published)
            .await
            .map_err(|_| PublishError::ConfirmTimeout(CONFIRM_TIMEOUT))??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(PublishError::Unroutable {
                exchange: settings.exchange.clone(),
                routing_key: settings.routing_key.clone(),
            }),
            Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}

impl PublishError {
    /// A short, stable name for `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable => "broker_unavailable",
            Self::Broker(_) => "broker_error",
            Self::Connect(_) => "broker_unreachable",
            Self::Unroutable { .. } => "unroutable",
            Self::Nacked => "nacked",
            Self::ConfirmTimeout(_) => "confirm_timeout",
        }
    }
}

/// Opens a connection to a node and a confirming channel, and declares the
/// exchange (idempotent; stock-service declares the same one).
async fn open(settings: &AmqpSettings) -> Result<(Connection, Link), PublishError> {
    let (connection, node) = amqp::connection::connect(settings, PUBLISHER_APP_ID).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    topology::declare_exchange(&channel, settings).await?;
    tracing::info!(node = %node.redacted_url(), exchange = %settings.exchange, "connected to the broker");
    Ok((connection, Link { channel, node }))
}

/// Watches the connection; when it fails, drops the channel (so publishes
/// fail fast) and reconnects to any node with capped exponential backoff.
/// Starts by connecting when `connection` is `None` (no node answered at
/// start).
async fn supervise(
    shared: Arc<Shared>,
    connection: Option<Connection>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut renewed = Instant::now();
    let mut connection = match connection {
        Some(connection) => connection,
        None => match reconnect(&shared, &mut backoff, &shutdown).await {
            Some(connection) => connection,
            None => return,
        },
    };
    loop {
        let mut events = connection.events_listener();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    amqp::connection::close(&connection, "shutting down").await;
                    return;
                }
                event = events.next() => match event {
                    Some(Event::Error(error)) => {
                        tracing::warn!(%error, "broker connection lost");
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                () = shared.connection_suspect.notified() => {
                    let channel_open = shared
                        .link
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_ref()
                        .is_some_and(|link| link.channel.status().connected());
                    if !connection.status().connected() || !channel_open {
                        tracing::warn!("broker connection or channel lost");
                        amqp::connection::close(&connection, "reconnecting").await;
                        break;
                    }
                    if shared.channel_suspect.load(Ordering::Relaxed)
                        && renewed.elapsed() >= CHANNEL_RENEWAL_INTERVAL
                    {
                        shared.channel_suspect.store(false, Ordering::Relaxed);
                        renewed = Instant::now();
                        // A broker that does not confirm may not open a
                        // channel either: bounded like a confirm.
                        let renewed = tokio::time::timeout(
                            CONFIRM_TIMEOUT,
                            renew_channel(&shared, &connection),
                        );
                        let failure = match renewed.await {
                            Ok(Ok(())) => None,
                            Ok(Err(error)) => Some(error.to_string()),
                            Err(_) => Some(format!("no answer within {CONFIRM_TIMEOUT:?}")),
                        };
                        if let Some(error) = failure {
                            tracing::warn!(%error, "cannot replace the channel: reconnecting");
                            amqp::connection::close(&connection, "reconnecting").await;
                            break;
                        }
                    }
                }
            }
        }
        *shared.link.write().unwrap_or_else(|p| p.into_inner()) = None;
        shared.connected.send_replace(false);

        backoff.reset();
        connection = match reconnect(&shared, &mut backoff, &shutdown).await {
            Some(connection) => connection,
            None => return,
        };
    }
}

/// Replaces the confirming channel with a new one on `connection` (after a
/// nack or a confirm timeout: see the module docs). The old one is closed
/// once every publish still in flight on it has had its answer or timed out.
async fn renew_channel(shared: &Shared, connection: &Connection) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let old = shared
        .link
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .map(|link| std::mem::replace(&mut link.channel, channel));
    if let Some(old) = old {
        tokio::spawn(async move {
            tokio::time::sleep(CONFIRM_TIMEOUT).await;
            if let Err(error) = old.close(200, "replaced".into()).await {
                tracing::debug!(%error, "closing a replaced channel");
            }
        });
    }
    tracing::info!("the broker refused or did not confirm a message: publishing on a new channel");
    Ok(())
}

/// Opens a connection to any node, waiting as `backoff` says before each
/// pass over the nodes, and makes its channel the one publishes use; `None`
/// if shutdown came first.
async fn reconnect(
    shared: &Shared,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    loop {
        let delay = backoff.next_delay();
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        let opened = tokio::select! {
            () = shutdown.cancelled() => return None,
            opened = open(&shared.settings) => opened,
        };
        match opened {
            Ok((connection, link)) => {
                *shared.link.write().unwrap_or_else(|p| p.into_inner()) = Some(link);
                shared.connected.send_replace(true);
                tracing::info!("broker connection restored");
                return Some(connection);
            }
            Err(error) => {
                tracing::warn!(%error, "broker reconnect failed");
            }
        }
    }
}
