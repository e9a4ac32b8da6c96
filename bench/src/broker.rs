//! The broker ceiling: what RabbitMQ alone sustains for `checkout.processed`-sized,
//! persistent, confirmed messages into a durable quorum queue, with C publishes in
//! flight, while a consumer on its own connection acks them one by one.
//!
//! Mirrors what checkout-service and stock-service do with the broker, without
//! anything else: one long-lived publishing channel in confirm mode shared by C tasks
//! (each publishes with `mandatory`, awaits the `basic.ack`, and repeats), a durable
//! topic exchange bound to a quorum queue with the pipeline's routing key, and a
//! consumer with the same prefetch that acks each delivery (manual ack). The message is
//! a real [`CheckoutProcessed`] body with the pipeline's properties (persistent,
//! content type, message id, timestamp, app id) and W3C `traceparent`/`baggage` headers
//! as long strings.
//!
//! Against the cluster of `--topology cluster` the queue is declared with
//! `x-quorum-initial-group-size` so that every node holds a replica, and the publisher
//! and the consumer connect to the node that declared it, which holds the queue's
//! leader: the best placement, so the ceiling is the broker's and what the cluster adds
//! is the replication.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use contracts::amqp::{self as message, CheckoutProcessed, OrderLine};
use futures::StreamExt;
use hdrhistogram::Histogram;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cleanup::{Cleanup, connect};
use crate::procfs::Snapshot;
use crate::stats::{self, Latency};

/// How long after the window unconfirmed publishes are waited for.
const STRAGGLER_TIMEOUT: Duration = Duration::from_secs(30);

/// One raw-broker run.
#[derive(Debug, Clone)]
pub struct RawConfig {
    /// The node the publisher and the consumer connect to (and declare the queue on).
    pub node_url: String,
    /// `x-quorum-initial-group-size` of the queue (`None`: RabbitMQ's default).
    pub quorum_size: Option<usize>,
    /// A cluster node `rabbitmqctl` asks how many replicas the queue has (`None`: a
    /// single node, not asked).
    pub cluster_node: Option<String>,
    /// Publishes in flight.
    pub concurrency: usize,
    /// Unmeasured lead-in.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Consumer prefetch (`basic.qos`), as stock-service's `AMQP_PREFETCH`.
    pub prefetch: u16,
    /// Longest wait for the consumer to catch up after the window.
    pub drain_timeout: Duration,
}

/// What a raw-broker run measured (warmup excluded).
#[derive(Debug, Clone)]
pub struct RawResult {
    /// Publishes in flight.
    pub concurrency: usize,
    /// From the end of the warmup until the last confirm.
    pub elapsed: Duration,
    /// Messages published and acked by the broker in the window.
    pub confirmed: u64,
    /// Nacked, returned (unroutable) or failed publishes in the window.
    pub failed: u64,
    /// Publish → confirm latency.
    pub latency: Latency,
    /// Messages consumed in all (warmup included).
    pub consumed: u64,
    /// Messages confirmed in all (warmup included).
    pub confirmed_total: u64,
    /// CPU time over the window (until drained): the broker, and this process (the
    /// publisher and consumer).
    pub cpu: Vec<(String, Duration)>,
    /// Share of the machine's CPU time that was busy over the window.
    pub machine_busy: f64,
    /// Share of the machine's CPU busy in processes not measured (see
    /// [`Usage::unaccounted_busy`](crate::procfs::Usage::unaccounted_busy)).
    pub unaccounted_busy: f64,
    /// In a cluster: the nodes the queue had a replica on (`None`: not asked, or no
    /// answer).
    pub queue_members: Option<usize>,
}

impl RawResult {
    /// Confirmed messages per second.
    pub fn throughput(&self) -> f64 {
        self.confirmed as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// A typical `checkout.processed` message: the body checkout-service would publish for
/// one unit of item 1 (what the load generator orders), and its trace headers.
pub fn sample_message() -> (Vec<u8>, FieldTable) {
    let body = CheckoutProcessed::new(
        uuid::Uuid::new_v4(),
        vec![OrderLine { id: 1, quantity: 1 }],
        100,
    )
    .to_json();
    let mut headers = FieldTable::default();
    let trace = checkout_cli::checkout::TraceContext::random();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(trace.traceparent())),
    );
    headers.insert(
        "baggage".into(),
        AMQPValue::LongString(LongString::from("tenant=acme,channel=web")),
    );
    (body, headers)
}

/// Bytes of the header names and (long string) values.
pub fn header_bytes(headers: &FieldTable) -> usize {
    headers
        .inner()
        .iter()
        .map(|(key, value)| {
            key.as_str().len()
                + match value {
                    AMQPValue::LongString(value) => value.as_bytes().len(),
                    _ => 0,
                }
        })
        .sum()
}

/// Per-task counters, merged at the end.
struct TaskStats {
    latency: Histogram<u64>,
    confirmed: u64,
    failed: u64,
    confirmed_total: u64,
}

/// Runs the raw-broker benchmark at one concurrency. `processes` are measured over the
/// window in addition to this process (normally just the broker).
pub async fn run_raw(
    config: &RawConfig,
    processes: &[(String, u32)],
    clock_ticks: u64,
    cleanup: &Cleanup,
) -> anyhow::Result<RawResult> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let exchange = format!("bench-raw-{}", &id[..12]);
    let queue = exchange.clone();
    cleanup.queue(&queue);
    cleanup.exchange(&exchange);

    let publisher = connect(&config.node_url, "bench-raw-publisher").await?;
    let consumer_connection = connect(&config.node_url, "bench-raw-consumer").await?;
    let result = async {
        let channel = publisher.create_channel().await?;
        declare(&channel, &exchange, &queue, config.quorum_size).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;

        let consumed = Arc::new(AtomicU64::new(0));
        let consume_channel = consumer_connection.create_channel().await?;
        consume_channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = consume_channel
            .basic_consume(
                queue.as_str().into(),
                "bench-raw".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = {
            let consumed = consumed.clone();
            tokio::spawn(async move {
                while let Some(Ok(delivery)) = deliveries.next().await {
                    if delivery
                        .acker
                        .ack(BasicAckOptions::default())
                        .await
                        .is_err()
                    {
                        break;
                    }
                    consumed.fetch_add(1, Ordering::Relaxed);
                }
            })
        };

        let (body, headers) = sample_message();
        let body: Arc<[u8]> = body.into();
        let measure_from = Instant::now() + config.warmup;
        let end = measure_from + config.duration;
        let mut publishers = JoinSet::new();
        for _ in 0..config.concurrency {
            let (channel, body, headers, exchange) = (
                channel.clone(),
                body.clone(),
                headers.clone(),
                exchange.clone(),
            );
            publishers.spawn(async move {
                publish_until(&channel, &exchange, &body, &headers, measure_from, end).await
            });
        }
        let mut measured = processes.to_vec();
        measured.push(("bench".to_owned(), std::process::id()));
        tokio::time::sleep_until(measure_from).await;
        let before = Snapshot::take(&measured)?;

        let mut latency = stats::micros_histogram();
        let (mut confirmed, mut failed, mut confirmed_total) = (0, 0, 0);
        // A confirm never comes if the broker blocks publishers (memory or disk alarm):
        // give up on stragglers a while after the window.
        let give_up = end + STRAGGLER_TIMEOUT;
        loop {
            let task = match tokio::time::timeout_at(give_up, publishers.join_next()).await {
                Ok(Some(task)) => task.context("a publishing task panicked")?,
                Ok(None) => break,
                Err(_) => anyhow::bail!(
                    "publishes still unconfirmed {STRAGGLER_TIMEOUT:?} after the window (broker blocked?)"
                ),
            };
            latency.add(&task.latency).context("merging histograms")?;
            confirmed += task.confirmed;
            failed += task.failed;
            confirmed_total += task.confirmed_total;
        }
        let elapsed = measure_from.elapsed();
        let drain_deadline = Instant::now() + config.drain_timeout;
        while consumed.load(Ordering::Relaxed) < confirmed_total && Instant::now() < drain_deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = Snapshot::take(&measured)?;
        consumer.abort();
        let consumed = consumed.load(Ordering::Relaxed);
        let usage = before.until(&after, clock_ticks);
        let queue_members = match &config.cluster_node {
            Some(node) => crate::cluster::queue_members(node, &queue).await,
            None => None,
        };
        anyhow::Ok(RawResult {
            concurrency: config.concurrency,
            elapsed,
            confirmed,
            failed,
            latency: Latency::of_micros(&latency),
            consumed,
            confirmed_total,
            cpu: usage.per_process,
            machine_busy: usage.machine_busy,
            unaccounted_busy: usage.unaccounted_busy,
            queue_members,
        })
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher.close(200, "done".into())).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        consumer_connection.close(200, "done".into()),
    )
    .await;
    if let Err(error) = cleanup.run().await {
        eprintln!("warning: {error:#}");
    }
    result
}

/// The pipeline's topology, minus dead-lettering: a durable topic exchange and a
/// durable quorum queue, on `quorum_size` nodes if given, bound with the pipeline's
/// routing key.
async fn declare(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    quorum_size: Option<usize>,
) -> anyhow::Result<()> {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    if let Some(size) = quorum_size {
        quorum.insert(
            "x-quorum-initial-group-size".into(),
            AMQPValue::LongLongInt(i64::try_from(size).unwrap_or(i64::MAX)),
        );
    }
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), quorum)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            message::DEFAULT_ROUTING_KEY.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// One in-flight slot: publish, await the confirm, repeat until `end`; record the ones
/// started at or after `measure_from`.
async fn publish_until(
    channel: &Channel,
    exchange: &str,
    body: &[u8],
    headers: &FieldTable,
    measure_from: Instant,
    end: Instant,
) -> TaskStats {
    let mut stats = TaskStats {
        latency: stats::micros_histogram(),
        confirmed: 0,
        failed: 0,
        confirmed_total: 0,
    };
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let measured = started >= measure_from;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let properties = BasicProperties::default()
            .with_content_type(message::CONTENT_TYPE.into())
            .with_delivery_mode(2)
            .with_message_id(uuid::Uuid::new_v4().to_string().into())
            .with_timestamp(timestamp)
            .with_app_id("bench".into())
            .with_headers(headers.clone());
        let outcome = async {
            let confirm = channel
                .basic_publish(
                    ShortString::from(exchange),
                    ShortString::from(message::DEFAULT_ROUTING_KEY),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?;
            confirm.await
        }
        .await;
        let ok = matches!(outcome, Ok(Confirmation::Ack(None)));
        if ok {
            stats.confirmed_total += 1;
        }
        if measured {
            if ok {
                stats.confirmed += 1;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.latency.saturating_record(micros);
            } else {
                stats.failed += 1;
            }
        }
        if outcome.is_err() {
            // The channel is gone: every further publish would fail the same way.
            break;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_message_is_a_real_checkout_processed() {
        let (body, headers) = sample_message();
        let decoded = CheckoutProcessed::decode(&body).expect("a valid message");
        assert_eq!(decoded.total_amount, 100);
        let traceparent = match headers.inner().get("traceparent") {
            Some(AMQPValue::LongString(value)) => value.to_string(),
            other => panic!("traceparent must be a long string, got {other:?}"),
        };
        assert_eq!(traceparent.len(), 55);
        assert_eq!(
            header_bytes(&headers),
            "traceparent".len() + 55 + "baggage".len() + 23
        );
    }
}
