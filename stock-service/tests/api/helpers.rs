//! Test harness: the real service in-process, its own broker topology and
//! database (a SQLite file or a PostgreSQL database), a publisher, and
//! waiting on conditions instead of sleeping.
//!
//! Tests that touch the database run once per [`Backend`]: write the body
//! as `async fn name(backend: Backend)` and list it in [`on_each_backend!`].

use service::configuration::Configuration;
use std::{
    future::Future,
    path::PathBuf,
    str::FromStr,
    sync::OnceLock,
    time::{Duration, Instant},
};

use contracts::amqp::{CheckoutProcessed, OrderLine};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    message::Delivery,
    options::{
        BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use service::{shutdown::CancellationToken, startup::Service};
use sqlx::{
    AssertSqlSafe, Connection as _,
    postgres::{PgConnectOptions, PgConnection},
};
use stock_service::{
    Application, Settings, configuration::InitialStock, domain::OrderRecord, store::Store,
};
use tokio::task::JoinHandle;
use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt};
use uuid::Uuid;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Every span the tests' services finish, exported in memory. Installed
/// once as the global subscriber of this test binary, so the services run
/// with tracing on exactly as in production; tests find their own spans by
/// trace id.
pub fn finished_spans() -> Vec<SpanData> {
    static EXPORTER: OnceLock<(SdkTracerProvider, InMemorySpanExporter)> = OnceLock::new();
    let (_, exporter) = EXPORTER.get_or_init(init_tracing);
    exporter.get_finished_spans().unwrap_or_default()
}

fn init_tracing() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("stock-service-tests")));
    tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    (provider, exporter)
}

/// A running stock-service with a unique exchange, queue and database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub store: Store,
    pub settings: Settings,
    /// The test's own database, deleted when the app is dropped.
    pub db: TestDatabase,
    pub http: reqwest::Client,
    /// In confirm mode: every publish waits for the broker's ack.
    pub publisher: Channel,
    _connection: Connection,
    shutdown: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Starts a service on SQLite with 1000 units of items 1 to 4.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Sqlite, InitialStock::uniform(1000)).await
}

/// Starts a service on a fresh database of `backend` with the given stock.
pub async fn spawn_app_on(backend: Backend, initial_stock: InitialStock) -> TestApp {
    spawn_app_with(backend, initial_stock, |_| {}).await
}

/// [`spawn_app_on`], with the test's settings changed by `configure` before
/// the service starts.
pub async fn spawn_app_with(
    backend: Backend,
    initial_stock: InitialStock,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    finished_spans(); // installs the subscriber before the service starts
    let id = Uuid::new_v4().simple().to_string();
    let db = TestDatabase::create(backend).await;
    let mut settings = Settings::defaults();
    if let Ok(url) = std::env::var("AMQP_URL") {
        settings.amqp.nodes = url.parse().expect("a valid AMQP_URL");
    }
    settings.amqp.exchange = format!("test-checkout-{id}");
    settings.queue.name = format!("test-stock-{id}");
    settings.queue.prefetch = 8;
    settings.database_url = db.url.clone();
    settings.http_address = "127.0.0.1:0".parse().expect("address");
    settings.initial_stock = initial_stock;
    configure(&mut settings);
    let application = Application::build(settings.clone())
        .await
        .expect("the application builds");
    let address = format!("http://{}", application.http_addr());
    let store = application.store();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(application.run_until_stopped(shutdown.clone()));

    let connection = Connection::connect(
        settings.amqp.nodes.as_slice()[0].url(),
        ConnectionProperties::default(),
    )
    .await
    .expect("test connection to RabbitMQ");
    let publisher = connection.create_channel().await.expect("channel");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    TestApp {
        address,
        store,
        settings,
        db,
        http: reqwest::Client::new(),
        publisher,
        _connection: connection,
        shutdown,
        running: Some(running),
    }
}

impl TestApp {
    /// Publishes `body` to the service's exchange and routing key and waits
    /// for the broker's confirm. Returns whether the message was routed to a
    /// queue (mandatory publish).
    pub async fn try_publish(&self, body: &[u8], properties: BasicProperties) -> bool {
        let confirmation = self
            .publisher
            .basic_publish(
                self.settings.amqp.exchange.as_str().into(),
                self.settings.amqp.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("publisher confirm");
        match confirmation {
            Confirmation::Ack(returned) => returned.is_none(),
            other => panic!("the broker did not take the message: {other:?}"),
        }
    }

    /// Publishes and asserts the message reached the queue.
    pub async fn publish(&self, body: &[u8], properties: BasicProperties) {
        assert!(
            self.try_publish(body, properties).await,
            "the message was not routed to the queue"
        );
    }

    /// Publishes an order as checkout-service does (JSON, message id =
    /// order id, persistent).
    pub async fn publish_order(&self, order: &CheckoutProcessed) {
        self.publish(
            &order.to_json(),
            order_properties(order, FieldTable::default()),
        )
        .await;
    }

    /// Waits until the order has been decided on.
    pub async fn wait_for_order(&self, order_id: Uuid) -> OrderRecord {
        eventually(&format!("order {order_id} to be processed"), || async {
            self.store
                .order_status(order_id)
                .await
                .expect("store query")
        })
        .await
    }

    /// Waits until the dead-letter queue holds `count` messages and takes them.
    pub async fn take_dead_letters(&self, count: usize) -> Vec<Delivery> {
        let queue = self.settings.dead_letter_queue();
        let deadline = Instant::now() + DEADLINE;
        let mut taken = Vec::new();
        while taken.len() < count {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} dead letters"
            );
            match self
                .publisher
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
            {
                Some(message) => taken.push(message.delivery),
                None => tokio::time::sleep(POLL_EVERY).await,
            }
        }
        taken
    }

    /// Units of `item_id` on hand, through the HTTP API.
    pub async fn stock_via_http(&self, item_id: i64) -> i64 {
        let body: serde_json::Value = self
            .get(&format!("/api/stock/{item_id}"))
            .await
            .json()
            .await
            .expect("JSON body");
        body["available"].as_i64().expect("available is a number")
    }

    /// `GET <path>`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("HTTP request")
    }

    /// Publishes every message of `orders` without waiting for each
    /// confirm, then waits for all of them (a few thousand messages take a
    /// second instead of a round trip each).
    pub async fn publish_orders(&self, orders: &[&CheckoutProcessed]) {
        let mut confirms = Vec::with_capacity(orders.len());
        for order in orders {
            let confirm = self
                .publisher
                .basic_publish(
                    self.settings.amqp.exchange.as_str().into(),
                    self.settings.amqp.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &order.to_json(),
                    order_properties(order, FieldTable::default()),
                )
                .await
                .expect("publish");
            confirms.push(confirm);
        }
        for confirm in futures::future::join_all(confirms).await {
            match confirm.expect("publisher confirm") {
                Confirmation::Ack(None) => {}
                other => panic!("the broker did not queue the message: {other:?}"),
            }
        }
    }

    /// The service's queue as the broker sees it now: (messages ready,
    /// consumers).
    pub async fn queue_state(&self) -> (u32, u32) {
        let queue = self
            .publisher
            .queue_declare(
                self.settings.queue.name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive queue.declare");
        (queue.message_count(), queue.consumer_count())
    }

    /// Stops the service's writes to `processed_orders` (PostgreSQL only)
    /// until the gate is released: the consumer's transaction waits on its
    /// first `INSERT`, and deliveries pile up in the queue and the prefetch
    /// window meanwhile, so the next batch is a full one.
    pub async fn hold_writes(&self) -> WriteGate {
        let mut connection = PgConnection::connect(&self.db.url)
            .await
            .expect("gate connection");
        sqlx::raw_sql("BEGIN; LOCK TABLE processed_orders IN SHARE MODE")
            .execute(&mut connection)
            .await
            .expect("lock processed_orders");
        WriteGate(connection)
    }

    /// Starts another replica of the service: its own `Application` on the
    /// same queue and database (and a port of its own).
    pub async fn spawn_replica(&self) -> Replica {
        let application = Application::build(self.settings.clone())
            .await
            .expect("the replica builds");
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(application.run_until_stopped(shutdown.clone()));
        Replica {
            shutdown,
            running: Some(running),
        }
    }

    /// Cancels the service and checks that it stops cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            let stopped = tokio::time::timeout(DEADLINE, running)
                .await
                .expect("the service stops in time")
                .expect("the service task did not panic");
            stopped.expect("the service stops without error");
        }
    }
}

/// A lock on `processed_orders` that holds the service's writes back (see
/// [`TestApp::hold_writes`]); released when its connection ends, at the
/// latest when dropped.
pub struct WriteGate(PgConnection);

impl WriteGate {
    /// Lets the writes go on.
    pub async fn release(mut self) {
        sqlx::raw_sql("COMMIT")
            .execute(&mut self.0)
            .await
            .expect("release the lock");
        let _ = self.0.close().await;
    }
}

/// A further replica of a [`TestApp`]'s service (see
/// [`TestApp::spawn_replica`]). Stopped when dropped; stop it before the
/// `TestApp`, whose drop deletes the queue.
pub struct Replica {
    shutdown: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Replica {
    /// Cancels the replica and checks that it stops cleanly and in time (a
    /// consumer stuck on a delivery would not).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            let stopped = tokio::time::timeout(DEADLINE, running)
                .await
                .expect("the replica stops in time")
                .expect("the replica task did not panic");
            stopped.expect("the replica stops without error");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestApp {
    /// Stops the service and deletes the test's exchanges and queues, also
    /// when the test failed (the database goes with the `db` field). Async
    /// clean-up cannot run in `drop`, so it runs on a thread with its own
    /// runtime.
    fn drop(&mut self) {
        self.shutdown.cancel();
        let settings = self.settings.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("clean-up runtime");
            runtime.block_on(delete_topology(&settings));
        });
        let _ = cleanup.join();
    }
}

async fn delete_topology(settings: &Settings) {
    let Ok(connection) = Connection::connect(
        settings.amqp.nodes.as_slice()[0].url(),
        ConnectionProperties::default(),
    )
    .await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        for queue in [settings.queue.name.clone(), settings.dead_letter_queue()] {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [
            settings.amqp.exchange.clone(),
            settings.dead_letter_exchange(),
        ] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// Polls `probe` every 50 ms until it returns `Some`, failing the test after
/// 30 s.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(DEADLINE, POLL_EVERY, what, probe).await
}

/// Polls `probe` every `every` until it returns `Some`, failing the test
/// after `deadline`.
pub async fn eventually_within<T, F, Fut>(
    deadline: Duration,
    every: Duration,
    what: &str,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// An order with a fresh id.
pub fn order(items: &[(i32, i32)], total_amount: i64) -> CheckoutProcessed {
    CheckoutProcessed::new(
        Uuid::new_v4(),
        items
            .iter()
            .map(|&(id, quantity)| OrderLine { id, quantity })
            .collect(),
        total_amount,
    )
}

/// The properties checkout-service publishes with, plus `headers`.
pub fn order_properties(order: &CheckoutProcessed, headers: FieldTable) -> BasicProperties {
    BasicProperties::default()
        .with_message_id(order.order_id.to_string().into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// A headers table of long strings, the type RabbitMQ expects for text.
pub fn long_string_headers(entries: &[(&str, &str)]) -> FieldTable {
    let mut headers = FieldTable::default();
    for &(key, value) in entries {
        headers.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
    headers
}

/// The text of a header, whatever string type it was sent as.
pub fn header_text(delivery: &Delivery, key: &str) -> Option<String> {
    match delivery.properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

/// The database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database of its own on the server `TEST_POSTGRES_URL` points to.
    Postgres,
}

impl Backend {
    /// The `db.system.name` the service reports for it.
    pub fn system(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }
}

/// Generates, for each listed `async fn name(backend: Backend)`, a module
/// `name` with two tests, `sqlite` and `postgres`, that run the same body on
/// each backend (`cargo test postgres` selects the PostgreSQL runs).
macro_rules! on_each_backend {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            use crate::helpers::Backend;

            #[tokio::test]
            async fn sqlite() {
                super::$test(Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$test(Backend::Postgres).await;
            }
        }
    )+};
}
pub(crate) use on_each_backend;

/// The variable naming the PostgreSQL server the tests create databases on.
const TEST_POSTGRES_URL: &str = "TEST_POSTGRES_URL";

/// A database of a test's own: a SQLite file in a fresh directory, or a
/// fresh PostgreSQL database. Deleted when dropped, so also when the test
/// panics.
pub struct TestDatabase {
    /// The `DATABASE_URL` the service gets.
    pub url: String,
    /// The `db.namespace` the service reports: the file or database name.
    pub name: String,
    cleanup: Cleanup,
}

enum Cleanup {
    RemoveDir(PathBuf),
    DropDatabase { admin_url: String },
}

impl TestDatabase {
    /// Creates an empty database (no schema: the service migrates it).
    pub async fn create(backend: Backend) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("stock-service-test-{id}"));
                std::fs::create_dir_all(&dir).expect("temp dir");
                Self {
                    // A bare path: also exercises the "file path means
                    // SQLite" form of DATABASE_URL.
                    url: dir.join("stock.db").display().to_string(),
                    name: "stock.db".to_owned(),
                    cleanup: Cleanup::RemoveDir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url();
                let name = format!("stock_test_{id}");
                let mut admin = admin_connection(&admin_url).await;
                // The name is generated (hex digits), so formatting it in is safe.
                sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
                let _ = admin.close().await;
                Self {
                    url: with_database(&admin_url, &name),
                    name,
                    cleanup: Cleanup::DropDatabase { admin_url },
                }
            }
        }
    }

    /// The URL in the normalized form the service connects with (a bare
    /// SQLite path becomes `sqlite://…?mode=rwc`).
    pub fn normalized_url(&self) -> String {
        stock_service::configuration::parse_database_url(&self.url).expect("a valid URL")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::RemoveDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::DropDatabase { admin_url } => {
                let admin_url = admin_url.clone();
                let name = self.name.clone();
                // Async clean-up cannot run in `drop`: a thread with its own
                // runtime. FORCE ends connections still open on it (a pool
                // of a test that panicked).
                let cleanup = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("clean-up runtime");
                    runtime.block_on(async {
                        let mut admin = PgConnection::connect(&admin_url).await?;
                        sqlx::raw_sql(AssertSqlSafe(format!(
                            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                        )))
                        .execute(&mut admin)
                        .await?;
                        admin.close().await
                    })
                });
                match cleanup.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
                    Err(_) => eprintln!("could not drop test database {}", self.name),
                }
            }
        }
    }
}

/// `TEST_POSTGRES_URL`, or a failed test saying how to get a server: a
/// PostgreSQL variant never passes without having run.
fn postgres_admin_url() -> String {
    match std::env::var(TEST_POSTGRES_URL) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{TEST_POSTGRES_URL} is not set, so the PostgreSQL variant of this test cannot run. \
             Start a local server with scripts/ensure-postgres and run \
             `export {TEST_POSTGRES_URL}=postgres://checkout_test:checkout_test@127.0.0.1:5432/checkout_test` \
             (scripts/test does both)."
        ),
    }
}

async fn admin_connection(admin_url: &str) -> PgConnection {
    let options = PgConnectOptions::from_str(admin_url)
        .unwrap_or_else(|e| panic!("{TEST_POSTGRES_URL} is not a PostgreSQL URL: {e}"));
    PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to PostgreSQL at {} ({TEST_POSTGRES_URL}): {e}. \
             Is the server running? Start it with scripts/ensure-postgres.",
                service::configuration::redact_url(admin_url)
            )
        })
}

/// `url` with its database (the path) replaced by `database`, keeping the
/// credentials, host and query.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |scheme| scheme + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |slash| authority + slash);
    format!("{}/{database}{query}", &base[..path])
}
