//! Wiring: builds every part of the service from [`Settings`] and runs them
//! until shutdown.
//!
//! [`Application::build`] does everything that can fail because of the
//! environment (binding the ports, opening and migrating the database,
//! connecting to RabbitMQ and declaring the topology), so a misconfigured
//! service fails at start with a clear error. A broker none of whose nodes
//! answers yet is not a misconfiguration: the service starts, not ready
//! (`/readyz` answers 503), and its consumer keeps trying to connect. [`Application::run_until_stopped`]
//! then only runs. Tests build the real application with port 0 and their
//! own queue and database, and stop it with a [`CancellationToken`].

use std::net::SocketAddr;

use anyhow::Context;
use service::{
    configuration::redact_url,
    faults::{AdminEndpoint, Faults},
    http::{HttpLimits, serve},
    shutdown::CancellationToken,
    startup::{Listening, Service, bind},
};
use tokio::net::TcpListener;

use crate::{
    broker::{BrokerError, BrokerSession},
    configuration::Settings,
    consumer::Consumer,
    retention::Retention,
    routes::{AppState, router},
    store::Store,
};

/// A built, not yet running, stock-service.
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    http_limits: HttpLimits,
    store: Store,
    consumer: Consumer,
    retention: Retention,
    /// `None` when no node answered at start.
    session: Option<BrokerSession>,
    admin: Option<AdminEndpoint>,
}

impl Application {
    /// The bound HTTP address (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound address of the fault-injection admin endpoint, when
    /// `FAULT_ADMIN_TOKEN` turned it on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminEndpoint::addr)
    }

    /// A handle to the store (for tests). It is closed when the application
    /// stops.
    pub fn store(&self) -> Store {
        self.store.clone()
    }
}

impl Service for Application {
    const NAME: &'static str = crate::NAME;
    const VERSION: &'static str = crate::VERSION;
    type Settings = Settings;

    /// Binds the HTTP listener (port 0 picks a free port) and, when turned
    /// on, the admin one, opens and migrates the database, seeds missing stock, connects to RabbitMQ and
    /// declares the topology (or, when no node answers, leaves that to the
    /// consumer, which keeps trying).
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (listener, http_addr) = bind(settings.http_address).await?;

        let store = Store::connect(&settings.database_url)
            .await
            .with_context(|| format!("cannot open {}", redact_url(&settings.database_url)))?;
        store.migrate().await?;
        let seeded = store.seed(&settings.initial_stock).await?;

        let faults = Faults::delays_only((&settings.faults).into())
            .map_err(|reason| anyhow::anyhow!("invalid FAULT_* settings: {reason}"))?;
        let admin = AdminEndpoint::bind(
            settings.admin_address,
            settings.faults.fault_admin_token.clone(),
            &faults,
        )
        .await?;
        let session = match BrokerSession::open(&settings).await {
            Ok(session) => Some(session),
            Err(BrokerError::Connect(error)) => {
                tracing::warn!(%error, "no RabbitMQ node answers yet: not ready until one does");
                None
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot set up RabbitMQ at {}",
                        settings.amqp.redacted_urls()
                    )
                });
            }
        };
        tracing::info!(
            database = %redact_url(&settings.database_url),
            seeded_items = seeded,
            amqp = %settings.amqp.redacted_urls(),
            exchange = %settings.amqp.exchange,
            queue = %settings.queue.name,
            "started"
        );
        Ok(Self {
            listener,
            http_addr,
            http_limits: settings.http,
            retention: Retention::new(store.clone(), settings.retention.clone()),
            consumer: Consumer::new(settings, store.clone(), faults),
            admin,
            store,
            session,
        })
    }

    /// What the start-up log line reports.
    fn listening(&self) -> Listening {
        Listening {
            http: Some(self.http_addr),
            admin: self.admin_addr(),
            ..Listening::default()
        }
    }

    /// Serves HTTP, consumes messages and purges old processed orders until
    /// `shutdown` is cancelled, then stops in order: the listener stops
    /// accepting and finishes open requests; the consumer cancels its
    /// subscription, finishes (commits and acknowledges) the delivery in hand
    /// and closes the connection, which returns prefetched, unprocessed
    /// deliveries to the queue; the purge stops after its current chunk;
    /// last, the database pool closes.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = AppState {
            store: self.store.clone(),
            consumer: self.consumer.status(),
        };
        // A child token: if either half stops on its own, the other stops
        // too, without cancelling the caller's token.
        let stop = shutdown.child_token();
        if let Some(admin) = self.admin {
            admin.spawn(stop.clone());
        }
        let http = async {
            serve(self.listener, router(state), self.http_limits, stop.clone()).await;
            stop.cancel();
        };
        let consume = async {
            self.consumer.run(self.session, stop.clone()).await;
            stop.cancel();
        };
        // The purge never ends on its own: it only follows the others.
        let purge = self.retention.run(stop.clone());
        tokio::join!(http, consume, purge);
        self.store.close().await;
        tracing::info!("stock-service stopped");
        Ok(())
    }
}
