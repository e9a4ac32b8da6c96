//! Building and running checkout-service.
//!
//! [`Application::build`] does everything that can fail at start (binding the
//! port, reaching the broker) so `main` reports it before serving;
//! [`Application::run_until_stopped`] serves until the shutdown token fires.
//! Binding port 0 lets tests run the real server in-process.

use std::net::SocketAddr;

use anyhow::Context;
use contracts::grpc::{FILE_DESCRIPTOR_SET, SERVICE_NAME, checkout_server::CheckoutServer};
use service::{
    faults::{AdminEndpoint, Faults},
    shutdown::CancellationToken,
    startup::{Listening, Service, bind},
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::{Server, server::TcpIncoming};

use crate::{configuration::Settings, publisher::Publisher, service::CheckoutService};

/// A bound, connected checkout-service, ready to run.
pub struct Application {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    admin: Option<AdminEndpoint>,
    service: CheckoutService,
    publisher: Publisher,
    publisher_stop: CancellationToken,
}

impl Application {
    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound address of the fault-injection admin endpoint, when
    /// `FAULT_ADMIN_TOKEN` turned it on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminEndpoint::addr)
    }
}

impl Service for Application {
    const NAME: &'static str = crate::NAME;
    const VERSION: &'static str = crate::VERSION;
    type Settings = Settings;

    /// Binds the gRPC port (and the admin port, when turned on) and connects
    /// to the broker.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (listener, grpc_addr) = bind(settings.grpc_address).await?;
        let faults = Faults::new((&settings.faults).into())
            .map_err(|reason| anyhow::anyhow!("invalid FAULT_* settings: {reason}"))?;
        let admin = AdminEndpoint::bind(
            settings.admin_address,
            settings.faults.fault_admin_token.clone(),
            &faults,
        )
        .await?;
        let publisher_stop = CancellationToken::new();
        let publisher = Publisher::connect(settings.amqp.clone(), publisher_stop.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot reach the broker at {}",
                    settings.amqp.redacted_url()
                )
            })?;
        Ok(Self {
            listener,
            grpc_addr,
            service: CheckoutService::new(settings.catalog, publisher.clone(), faults),
            admin,
            publisher,
            publisher_stop,
        })
    }

    /// What the start-up log line reports.
    fn listening(&self) -> Listening {
        Listening {
            grpc: Some(self.grpc_addr),
            admin: self.admin_addr(),
            ..Listening::default()
        }
    }

    /// Serves until `shutdown` is cancelled, then stops accepting calls, lets
    /// the calls in flight finish (their publishes are confirmed or failed),
    /// and closes the broker connection.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        tokio::spawn(report_health(
            health_reporter,
            self.publisher.connection_state(),
            self.publisher_stop.clone(),
        ));
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        if let Some(admin) = self.admin {
            admin.spawn(shutdown.clone());
        }
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(CheckoutServer::new(self.service))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown.cancelled_owned(),
            )
            .await;
        self.publisher_stop.cancel();
        served.context("gRPC server failed")
    }
}

/// Keeps the standard gRPC health service (`grpc.health.v1`) in step with
/// the broker connection: without it no order can be accepted, so the
/// service reports NOT_SERVING until it reconnects.
async fn report_health(
    reporter: tonic_health::server::HealthReporter,
    mut connected: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        let serving = *connected.borrow_and_update();
        if serving {
            reporter
                .set_serving::<CheckoutServer<CheckoutService>>()
                .await;
        } else {
            reporter
                .set_not_serving::<CheckoutServer<CheckoutService>>()
                .await;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = connected.changed() => if changed.is_err() { return },
        }
    }
}

/// Asks the checkout-service on `127.0.0.1:port` whether it is serving
/// (the container health check).
pub async fn health_check(port: u16) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect_timeout(std::time::Duration::from_secs(2))
        .timeout(std::time::Duration::from_secs(2))
        .connect()
        .await?;
    let answer = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        })
        .await?
        .into_inner();
    match answer.status() {
        ServingStatus::Serving => Ok(()),
        status => anyhow::bail!("checkout-service is {}", status.as_str_name()),
    }
}
