//! Placing many orders while something fails, and checking the outcome the
//! pipeline promises: every order the gateway accepted changed the stock
//! exactly once.
//!
//! Each logical order carries its own `Idempotency-Key` and is retried on
//! 503, 504 and transport errors until it is accepted, as a careful client
//! would. A failure is ambiguous (the broker may have the message even though
//! the client never got the 202), and the key is what makes retrying safe:
//! the retry names the same order id, and stock-service applies an order id
//! once. So in the end every order is accepted, and the stock must have moved
//! by exactly the sum of all of them.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One logical order.
#[derive(Clone, Debug)]
pub struct Order {
    /// Its `Idempotency-Key`.
    pub key: String,
    /// `(item, quantity)` lines.
    pub lines: Vec<(i64, i64)>,
}

/// An order the gateway accepted.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// What was ordered.
    pub order: Order,
    /// The order id from the 202.
    pub order_id: String,
    /// The trace id from the 202: the trace of the attempt that was accepted.
    pub trace_id: String,
    /// How many requests it took.
    pub attempts: u32,
}

/// Live counters, for a test that waits for "some orders went through".
#[derive(Debug, Default)]
pub struct Progress {
    accepted: AtomicUsize,
    in_flight: AtomicUsize,
    statuses: Mutex<BTreeMap<String, usize>>,
    /// When the first and the last answer other than 202 came.
    refusals: Mutex<Option<(Instant, Instant)>>,
}

impl Progress {
    /// Orders accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests sent and not answered yet: the most a fault that strikes
    /// now can fail at once.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How often each answer was seen (`202`, `503`, `transport error`, …).
    pub fn answers(&self) -> BTreeMap<String, usize> {
        self.statuses.lock().expect("not poisoned").clone()
    }

    /// Waits until at least `count` orders were accepted; fails saying what
    /// the load saw instead.
    pub async fn wait_for_accepted(&self, count: usize, patience: Duration) {
        let what = format!("{count} orders accepted");
        let waited = testkit::poll::within(what, patience, || async {
            (self.accepted() >= count).then_some(())
        })
        .await;
        if let Err(error) = waited {
            panic!(
                "{error}; {} accepted, {} in flight, answers {:?}",
                self.accepted(),
                self.in_flight(),
                self.answers()
            );
        }
    }

    /// Waits until some answer other than `202` was seen: proof that the
    /// load ran into whatever fault the test caused.
    pub async fn wait_for_a_refusal(&self, patience: Duration) {
        testkit::poll::until("a refusal seen by the load", patience, || async {
            (!self.answers().keys().all(|answer| answer == "202")).then_some(())
        })
        .await;
    }

    /// When the first and the last refusal (any answer but 202) came, if
    /// there was one.
    pub fn refusals(&self) -> Option<(Instant, Instant)> {
        *self.refusals.lock().expect("not poisoned")
    }

    /// The time from the first to the last refusal: how long a fault made
    /// the pipeline refuse orders (zero for a single refusal, `None` for
    /// none).
    pub fn refusal_window(&self) -> Option<Duration> {
        self.refusals().map(|(first, last)| last - first)
    }

    fn count(&self, answer: String) {
        if answer != "202" {
            let now = Instant::now();
            let mut refusals = self.refusals.lock().expect("not poisoned");
            *refusals = Some(refusals.map_or((now, now), |(first, _)| (first, now)));
        }
        *self
            .statuses
            .lock()
            .expect("not poisoned")
            .entry(answer)
            .or_default() += 1;
    }
}

/// The `index`-th order of a load: known lines (items 1–4, 1 to 3 units),
/// its key unique to `run`.
pub fn make_order(run: &str, index: usize) -> Order {
    let item = (index % 4) as i64 + 1;
    let mut lines = vec![(item, (index % 3) as i64 + 1)];
    if index.is_multiple_of(5) {
        lines.push((item % 4 + 1, 1));
    }
    Order {
        key: format!("{run}-{index}"),
        lines,
    }
}

/// How many orders [`TestPipeline::load`](crate::TestPipeline::load) keeps in flight.
pub const LOAD_CONCURRENCY: usize = 8;

/// How a [`Load`] places its orders.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// This many orders in flight at all times, each started as soon as
    /// another is accepted: as fast as the pipeline goes.
    InFlight(usize),
    /// A new order every `1/rate` second, however long the earlier ones
    /// take (at most [`Pace::MAX_IN_FLIGHT`] in flight): a steady load, as
    /// many independent customers make, that keeps arriving during a fault.
    PerSecond(u32),
}

impl Pace {
    /// The most orders a paced load keeps in flight (retrying) at once.
    pub const MAX_IN_FLIGHT: usize = 4096;
}

/// Orders placed through a gateway at a [`Pace`] until [`Load::finish`] is
/// called.
///
/// The load is open-ended on purpose. A fault test must know that the load
/// was still running while the fault lasted; a fixed number of orders can
/// all be done before a slow `rabbitmqctl -n NODE stop_app` has taken the
/// broker away (a fast machine did exactly that). So a test waits on [`Progress`]
/// for what it needs ("60 accepted", "saw a 503", "60 more after the
/// restart") and only then finishes the load.
pub struct Load {
    progress: Arc<Progress>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Accepted>>,
}

impl Load {
    /// Starts placing fresh orders through the gateway at `gateway_url`, at
    /// `pace`; each is retried for up to `give_up_after`.
    pub fn start_at(
        http: reqwest::Client,
        gateway_url: String,
        pace: Pace,
        give_up_after: Duration,
    ) -> Self {
        let progress = Arc::new(Progress::default());
        let run = uuid::Uuid::new_v4().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (in_flight, ticks) = match pace {
            Pace::InFlight(count) => (count, None),
            Pace::PerSecond(rate) => {
                let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                (Pace::MAX_IN_FLIGHT, Some(ticks))
            }
        };
        // 0, 1, 2, … each after the next tick when paced.
        let indices = futures::stream::unfold((0, ticks), |(index, mut ticks)| async move {
            if let Some(ticks) = ticks.as_mut() {
                ticks.tick().await;
            }
            Some((index, (index + 1, ticks)))
        });
        let task = tokio::spawn({
            let progress = progress.clone();
            async move {
                indices
                    .map(|index| make_order(&run, index))
                    .take_until(stopped)
                    .map(|order| place(&http, &gateway_url, order, give_up_after, &progress))
                    .buffer_unordered(in_flight)
                    .collect()
                    .await
            }
        });
        Self {
            progress,
            stop,
            task,
        }
    }

    /// Live counters of this load.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Waits until `count` more orders than now were accepted.
    pub async fn wait_for_more_accepted(&self, count: usize, patience: Duration) {
        let target = self.progress.accepted() + count;
        self.progress.wait_for_accepted(target, patience).await;
    }

    /// Stops starting new orders, waits for those in flight to be accepted
    /// and returns every accepted order. Panics if one was not accepted in
    /// time or got an answer a retry cannot fix.
    pub async fn finish(self) -> Vec<Accepted> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(accepted) => accepted,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("the load was cancelled: {error}"),
            },
        }
    }
}

async fn place(
    http: &reqwest::Client,
    gateway_url: &str,
    order: Order,
    give_up_after: Duration,
    progress: &Progress,
) -> Accepted {
    let body = json!({
        "items": order.lines.iter()
            .map(|(id, quantity)| json!({"id": id, "quantity": quantity}))
            .collect::<Vec<_>>()
    });
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0;
    loop {
        attempts += 1;
        progress.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = http
            .post(format!("{gateway_url}/api/checkout"))
            .header("idempotency-key", &order.key)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .await;
        progress.in_flight.fetch_sub(1, Ordering::Relaxed);
        match sent {
            Ok(response) if response.status() == StatusCode::ACCEPTED => {
                progress.count("202".into());
                let answer: Value = response.json().await.expect("a JSON 202 body");
                progress.accepted.fetch_add(1, Ordering::Relaxed);
                return Accepted {
                    order_id: answer["orderId"].as_str().expect("orderId").to_owned(),
                    trace_id: answer["traceId"].as_str().expect("traceId").to_owned(),
                    order,
                    attempts,
                };
            }
            Ok(response)
                if matches!(
                    response.status(),
                    StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                ) =>
            {
                progress.count(response.status().as_str().to_owned());
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                panic!("order {} got an unexpected {status}: {text}", order.key);
            }
            Err(_) => progress.count("transport error".into()),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {} not accepted after {attempts} attempts in {give_up_after:?}; answers: {:?}",
            order.key,
            progress.answers()
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Waits until stock-service (at `stock_url`) has applied every accepted
/// order, then checks each item's stock moved by exactly the ordered units.
/// An accepted order id may be a `duplicate`: a retry that got another order
/// id than the first attempt (replicas with different order-id keys), whose
/// checkout was applied under the order id it names, once.
pub async fn assert_applied_exactly_once(
    http: &reqwest::Client,
    stock_url: &str,
    accepted: &[Accepted],
    initial_stock: i64,
    patience: Duration,
) {
    let deadline = tokio::time::Instant::now() + patience;
    let mut duplicates = 0;
    for order in accepted {
        let url = format!("{stock_url}/api/orders/{}", order.order_id);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let what = format!(
            "order {} ({}) accepted, then applied",
            order.order_id, order.order.key
        );
        let record = order_record(http, &url, what, left).await;
        if record["status"] == "duplicate" {
            let original = record["duplicateOf"].as_str().expect("duplicateOf");
            let url = format!("{stock_url}/api/orders/{original}");
            let what = format!("order {original}, which {} duplicates", order.order_id);
            let original = order_record(http, &url, what, PATIENCE_FOR_A_RECORD).await;
            assert_eq!(original["status"], "applied", "{original} ({record})");
            duplicates += 1;
        } else {
            assert_eq!(record["status"], "applied", "{record}");
        }
    }
    if duplicates > 0 {
        eprintln!(
            "{duplicates} of {} accepted order ids were retries applied under another order id",
            accepted.len()
        );
    }

    let mut ordered: BTreeMap<i64, i64> = BTreeMap::new();
    for order in accepted {
        for (item, quantity) in &order.order.lines {
            *ordered.entry(*item).or_default() += quantity;
        }
    }
    for (item, units) in ordered {
        let level: Value = http
            .get(format!("{stock_url}/api/stock/{item}"))
            .send()
            .await
            .expect("stock-service answers")
            .json()
            .await
            .expect("JSON stock level");
        assert_eq!(
            level["available"].as_i64(),
            Some(initial_stock - units),
            "item {item}: {units} units were ordered from {initial_stock}"
        );
    }
}

/// How long to wait for the record of an order known to be processed.
const PATIENCE_FOR_A_RECORD: Duration = Duration::from_secs(10);

/// stock-service's record of an order (at `url`), once it has one.
async fn order_record(
    http: &reqwest::Client,
    url: &str,
    what: String,
    patience: Duration,
) -> Value {
    testkit::poll::until(what, patience, || async {
        let response = http.get(url).send().await.ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        response.json().await.ok()
    })
    .await
}
