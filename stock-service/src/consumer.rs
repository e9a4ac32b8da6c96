//! The consumer: takes `checkout.processed` deliveries off the queue, applies
//! each inside a span that continues the publisher's trace, and decides how
//! the broker should settle it.
//!
//! # Settling a delivery
//!
//! | outcome                                  | broker                     | span status |
//! |------------------------------------------|----------------------------|-------------|
//! | applied                                  | `ack` after the commit     | unset       |
//! | duplicate (order id already recorded, or its request fingerprint under another order id: recorded as its duplicate) | `ack`, no stock changes | unset |
//! | rejected (unknown item, not enough stock)| recorded as rejected, `ack`| unset       |
//! | poison (not JSON, bad fields, version)   | dead-lettered with reason  | error       |
//! | database error                           | `nack` + requeue, after a pause | error  |
//!
//! A rejection is a business answer, not a failure: the order is recorded
//! with its reason and the span only says `stock.outcome = "rejected"`.
//!
//! Poison messages: retrying cannot fix the bytes, so the consumer publishes
//! the message itself to `<exchange>.dlx` with routing key `<queue>.dead`,
//! its original headers and properties, plus an `x-death-reason` header
//! saying what was wrong, and acknowledges the original once the broker
//! confirmed the copy. That makes the reason readable on the dead letter,
//! which a plain `basic.reject` cannot do. If the copy is not confirmed, the
//! original is rejected without requeue and the broker dead-letters it
//! through the same exchange (without the reason). If the connection drops
//! between the confirm and the ack, the message comes back and is
//! dead-lettered a second time: dead letters are at-least-once too.
//!
//! A database error is assumed transient: the delivery is requeued after
//! [`DB_RETRY_DELAY`], and the quorum queue's delivery limit dead-letters it
//! if the error persists. (A deadlock or serialization failure is first
//! retried inside the store, a few times within a fraction of a second; see
//! [`Store::apply_batch`].)
//!
//! # One batch at a time, in order
//!
//! Deliveries are processed sequentially, in batches: after the next
//! delivery arrives, whatever else is already in the prefetch window (up to
//! [`Store::max_batch`]) joins it, and the batch is applied in one database
//! transaction ([`Store::apply_batch`]) and acknowledged after its commit,
//! with one `basic.ack` whose `multiple` flag settles the whole batch
//! (deliveries arrive in tag order, every earlier one is already settled,
//! and poison ones were settled on their own before). At rest a batch is
//! one delivery, so latency does not change; under load one commit and one
//! ack serve many orders, which is what lets stock-service keep up (see
//! docs/benchmark-history.md). SQLite gets a single writer (no lock contention), the
//! log reads in order, and shutdown has at most one batch in flight.
//! Several replicas may consume one queue into one PostgreSQL database: the
//! store takes each batch's locks in an order that cannot deadlock, and
//! runs a transaction the server aborted again before giving up on it.
//!
//! # Reconnecting
//!
//! When the connection or channel is lost, the consumer logs it, reconnects
//! to any node of the broker with the shared [`Backoff`] (100 ms doubling to
//! 1 s), re-declares the topology and subscribes again; if no node answered
//! at start, it begins there. Unacknowledged deliveries return to the
//! queue on their own; the store's idempotency makes their redelivery
//! harmless.
//!
//! Settling is bounded by [`SETTLE_TIMEOUT`]. An `ack` sent just as the
//! connection dies can wait forever in lapin 4.12 (its frame is queued after
//! the dying connection dropped the pending ones, so nothing ever resolves
//! it); the RabbitMQ restart test caught the consumer stuck there, not
//! consuming and not shutting down. A settle that takes this long is treated
//! as a lost connection: the session is closed and opened again, and the
//! unsettled deliveries come back.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use amqp::connection::Backoff;
use contracts::amqp::{CheckoutProcessed, DEATH_REASON_HEADER, DecodeError};
use futures::{FutureExt, StreamExt};
use lapin::{
    Confirmation,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
        BasicPublishOptions, BasicRejectOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use service::{faults::Faults, shutdown::CancellationToken};
use telemetry::{
    propagation,
    spans::{self, messaging::Message, record_error},
};
use tracing::{Instrument, Span, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    broker::{BrokerError, BrokerSession},
    configuration::Settings,
    domain::Outcome,
    instruments::{ConsumerMetrics, StockLevels, published_at_ms},
    store::Store,
};

/// Pause before requeueing a delivery that hit a database error.
pub const DB_RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long one settling step may take before the connection is treated as
/// lost. An ack is one frame written to the socket and a dead-letter
/// confirm one round trip, so this is far beyond any healthy wait.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the consumer is subscribed right now (the readiness probe reads
/// it). Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct ConsumerStatus(Arc<AtomicBool>);

impl ConsumerStatus {
    /// True while a subscription is active.
    pub fn is_consuming(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, consuming: bool) {
        self.0.store(consuming, Ordering::Relaxed);
    }
}

/// Applies `checkout.processed` deliveries to the store.
pub struct Consumer {
    settings: Settings,
    store: Store,
    status: ConsumerStatus,
    faults: Faults,
    metrics: ConsumerMetrics,
}

impl Consumer {
    /// A consumer for the broker and queue in `settings`, writing to
    /// `store`, slowed down by `faults` when a demonstration asks for it.
    /// Build it under the service's dispatcher: it makes its instruments.
    pub fn new(settings: Settings, store: Store, faults: Faults) -> Self {
        let status = ConsumerStatus::default();
        let consuming = status.clone();
        let metrics =
            ConsumerMetrics::new(&settings.amqp.exchange, &settings.queue.name, move || {
                consuming.is_consuming()
            });
        Self {
            settings,
            store,
            status,
            faults,
            metrics,
        }
    }

    /// The cached stock levels behind the stock gauge; run their refresh
    /// ([`crate::instruments::StockLevels::run`]) beside the consumer.
    pub fn stock_levels(&self) -> Arc<StockLevels> {
        self.metrics.stock.clone()
    }

    /// The subscription flag, for the readiness probe.
    pub fn status(&self) -> ConsumerStatus {
        self.status.clone()
    }

    /// Consumes on `session` until `shutdown` is cancelled, reconnecting
    /// whenever the connection is lost (connecting first when `session` is
    /// `None`: no node answered at start). On shutdown it cancels the
    /// subscription, finishes the delivery in hand, and closes the
    /// connection.
    pub async fn run(&self, session: Option<BrokerSession>, shutdown: CancellationToken) {
        let mut backoff = Backoff::new();
        let mut session = match session {
            Some(session) => session,
            None => match self.reconnect(&mut backoff, &shutdown).await {
                Some(session) => session,
                None => return,
            },
        };
        loop {
            let result = self.consume(&session, &shutdown).await;
            if self.status.is_consuming() {
                // The subscription worked: the next outage starts its
                // backoff afresh.
                backoff.reset();
            }
            self.status.set(false);
            session.close().await;
            if let Err(error) = result {
                warn!(%error, "lost the RabbitMQ connection; reconnecting");
            }
            if shutdown.is_cancelled() {
                return;
            }
            session = match self.reconnect(&mut backoff, &shutdown).await {
                Some(session) => session,
                None => return,
            };
        }
    }

    /// Opens a new session, waiting as `backoff` says before each attempt.
    /// `None` if shutdown came first.
    async fn reconnect(
        &self,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> Option<BrokerSession> {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
            let opened = tokio::select! {
                () = shutdown.cancelled() => return None,
                opened = BrokerSession::open(&self.settings) => opened,
            };
            match opened {
                Ok(session) => {
                    info!("reconnected to RabbitMQ");
                    return Some(session);
                }
                Err(error) => {
                    warn!(%error, "cannot reconnect to RabbitMQ");
                }
            }
        }
    }

    /// Subscribes and processes deliveries until shutdown (`Ok`) or until the
    /// channel or connection fails (`Err`).
    async fn consume(
        &self,
        session: &BrokerSession,
        shutdown: &CancellationToken,
    ) -> Result<(), BrokerError> {
        let mut deliveries = session
            .consume
            .basic_consume(
                self.settings.queue.name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.status.set(true);
        info!(queue = %self.settings.queue.name, prefetch = self.settings.queue.prefetch, "consuming");
        loop {
            // `biased`: once shutdown is requested, take no further delivery.
            // A delivery being processed is not interrupted: this select is
            // only reached between deliveries.
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                next = deliveries.next() => next,
            };
            let first = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Err(error.into()),
                None => return Err(BrokerError::ConsumerEnded),
            };
            // Take whatever else has already arrived (never waiting for
            // more), up to the store's batch size: under load many orders
            // share one commit; at rest a batch is the one delivery.
            let mut batch = vec![first];
            let mut broken = None;
            while batch.len() < self.store.max_batch() {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(delivery))) => batch.push(delivery),
                    Some(Some(Err(error))) => {
                        broken = Some(BrokerError::from(error));
                        break;
                    }
                    Some(None) => {
                        broken = Some(BrokerError::ConsumerEnded);
                        break;
                    }
                    None => break,
                }
            }
            self.handle_batch(batch, session).await?;
            if let Some(error) = broken {
                return Err(error);
            }
        }
        self.status.set(false);
        info!("shutting down: cancelling the subscription");
        session
            .consume
            .basic_cancel(deliveries.tag(), BasicCancelOptions::default())
            .await?;
        Ok(())
    }

    /// Applies a batch of deliveries in one database transaction, each in
    /// its own CONSUMER span, and settles them once the transaction is
    /// committed. Errors are broker errors only (settling failed); everything
    /// about the messages themselves is handled here.
    ///
    /// Poison messages are dead-lettered first and take no part. If the
    /// database fails, nothing of the batch was applied and every delivery
    /// is requeued. The consumer spans stay open until their delivery is
    /// settled, so each one covers the commit it waited for.
    async fn handle_batch(
        &self,
        deliveries: Vec<Delivery>,
        session: &BrokerSession,
    ) -> Result<(), BrokerError> {
        let started = Instant::now();
        let mut orders = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let span = consumer_span(&delivery, &self.settings.queue.name);
            spans::messaging::record_server(&span, session.node.host(), session.node.port());
            match CheckoutProcessed::decode(&delivery.data) {
                Ok(order) => {
                    if delivery.properties.message_id().is_none() {
                        span.record("messaging.message.id", order.order_id.to_string());
                    }
                    orders.push((delivery, span, order));
                }
                Err(error) => {
                    let reason = error.to_string();
                    record_error(&span, decode_error_type(&error), &reason);
                    async {
                        warn!(%reason, "poison message: dead-lettering it");
                        self.dead_letter(&delivery, &reason, session).await
                    }
                    .instrument(span)
                    .await?;
                    self.metrics.order("dead_lettered");
                    self.metrics
                        .process
                        .record(started, Some(decode_error_type(&error)));
                }
            }
        }
        if orders.is_empty() {
            return Ok(());
        }

        // Injected delays happen before the transaction, not inside it: on
        // PostgreSQL a delay there would hold the batch's row locks and stall
        // every replica that needs the same items.
        for (_, span, _) in &orders {
            self.faults.maybe_delay().instrument(span.clone()).await;
        }
        let batch: Vec<(&CheckoutProcessed, &Span)> = orders
            .iter()
            .map(|(_, span, order)| (order, span))
            .collect();
        let applied = self.store.apply_batch(&batch).await;
        drop(batch);

        match applied {
            Ok(outcomes) => {
                let mut spans = Vec::with_capacity(orders.len());
                let mut settled = Vec::with_capacity(orders.len());
                let mut last = None;
                for ((delivery, span, order), outcome) in orders.into_iter().zip(outcomes) {
                    span.set_attribute("stock.outcome", outcome.as_str());
                    if let Outcome::Rejected { reason } = &outcome {
                        span.set_attribute("stock.rejection_reason", reason.clone());
                        info!(parent: &span, order_id = %order.order_id, %reason, "order rejected");
                    } else if let Outcome::DuplicateOf { order_id: original } = &outcome {
                        span.set_attribute("stock.duplicate_of", original.to_string());
                        info!(parent: &span, order_id = %order.order_id, duplicate_of = %original, "a retry of an applied checkout under another order id: not applied");
                    } else {
                        info!(parent: &span, order_id = %order.order_id, outcome = outcome.as_str(), "order processed");
                    }
                    spans.push(span);
                    settled.push((outcome.as_str(), published_at_ms(&delivery.properties)));
                    last = Some(delivery);
                }
                if let Some(last) = &last {
                    settle(last.acker.ack(BasicAckOptions { multiple: true })).await?;
                }
                for (outcome, published_ms) in settled {
                    self.metrics.order(outcome);
                    if outcome != "duplicate" {
                        self.metrics.committed(published_ms);
                    }
                    self.metrics.process.record(started, None);
                }
                self.metrics.stock.changed();
                drop(spans);
            }
            Err(error) => {
                let message = error.to_string();
                for (_, span, order) in &orders {
                    record_error(span, "database_error", &message);
                    warn!(parent: span, order_id = %order.order_id, error = %message, "cannot apply the order; requeueing it");
                }
                tokio::time::sleep(DB_RETRY_DELAY).await;
                if let Some((last, _, _)) = orders.last() {
                    let requeue_all = BasicNackOptions {
                        multiple: true,
                        requeue: true,
                    };
                    settle(last.acker.nack(requeue_all)).await?;
                }
                for _ in &orders {
                    self.metrics.process.record(started, Some("database_error"));
                }
            }
        }
        Ok(())
    }

    /// Publishes a copy of `delivery` with an `x-death-reason` header to the
    /// dead-letter exchange, then acknowledges the original (see the module
    /// docs).
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: &str,
        session: &BrokerSession,
    ) -> Result<(), BrokerError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            DEATH_REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let confirmation = settle(async {
            session
                .publish
                .basic_publish(
                    self.settings.dead_letter_exchange().as_str().into(),
                    self.settings.dead_letter_queue().as_str().into(),
                    // Mandatory: a copy that reaches no queue comes back
                    // instead of being confirmed and lost.
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &delivery.data,
                    properties,
                )
                .await?
                .await
        })
        .await?;
        if let Confirmation::Ack(None) = confirmation {
            settle(delivery.acker.ack(BasicAckOptions::default())).await?;
        } else {
            warn!("the dead-letter copy was not stored; rejecting the message instead");
            settle(delivery.acker.reject(BasicRejectOptions { requeue: false })).await?;
        }
        Ok(())
    }
}

/// Runs one settling step (ack, nack, reject, or the dead-letter copy's
/// publish and confirm), giving up after [`SETTLE_TIMEOUT`] (see the module
/// docs).
async fn settle<T>(
    operation: impl Future<Output = Result<T, lapin::Error>>,
) -> Result<T, BrokerError> {
    tokio::time::timeout(SETTLE_TIMEOUT, operation)
        .await
        .map_err(|_| BrokerError::SettleTimeout(SETTLE_TIMEOUT))?
        .map_err(BrokerError::from)
}

/// The CONSUMER span of one delivery, continuing the trace whose context
/// the publisher put in the message headers.
pub fn consumer_span(delivery: &Delivery, queue: &str) -> Span {
    let parent = propagation::amqp::extract(delivery.properties.headers().as_ref());
    spans::messaging::consumer(
        parent,
        Message {
            exchange: delivery.exchange.as_str(),
            routing_key: delivery.routing_key.as_str(),
            id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str()),
            body_size: delivery.data.len(),
        },
        queue,
    )
}

/// `error.type` for a body that cannot be decoded.
fn decode_error_type(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Malformed(_) => "malformed_message",
        DecodeError::UnsupportedVersion(_) => "unsupported_schema_version",
        DecodeError::Invalid(_) => "invalid_message",
    }
}
