//! Building and running checkout-service.
//!
//! [`Application::build`] does everything that can fail at start (binding the
//! port, declaring the exchange on the broker) so `main` reports it before
//! serving; a broker none of whose nodes answers yet is not such a failure:
//! the service starts `NOT_SERVING` and connects when a node does;
//! [`Application::run_until_stopped`] serves until the shutdown token fires.
//! Binding port 0 lets tests run the real server in-process.
//!
//! What a gRPC caller can make the service hold is bounded, since callers
//! need not come through the gateway: a message is at most
//! [`MAX_GRPC_MESSAGE_BYTES`] either way, at most `MAX_CONCURRENT_CALLS`
//! checkouts run at once and the next is refused at once with
//! `RESOURCE_EXHAUSTED` rather than queued (the gateway sheds its own
//! checkouts the same way), and one connection opens at most twice as many
//! HTTP/2 streams. The health and reflection services stay outside the call limit,
//! so a busy service still answers its health check.

use std::{convert::Infallible, net::SocketAddr};

use anyhow::Context;
use axum::{error_handling::HandleErrorLayer, http};
use contracts::{
    grpc::{FILE_DESCRIPTOR_SET, SERVICE_NAME, checkout_server::CheckoutServer},
    limits::MAX_GRPC_MESSAGE_BYTES,
};
use service::{
    faults::{AdminEndpoint, Faults},
    shutdown::CancellationToken,
    startup::{Listening, Service, bind},
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{
    Status,
    body::Body,
    service::LayerExt,
    transport::{Server, server::TcpIncoming},
};
use tower::{BoxError, ServiceBuilder, limit::GlobalConcurrencyLimitLayer};

use crate::{
    configuration::Settings,
    idempotency::{OrderIdSecret, RecentKeys},
    publisher::Publisher,
    service::CheckoutService,
};

/// A bound, connected checkout-service, ready to run.
pub struct Application {
    listener: TcpListener,
    grpc_addr: SocketAddr,
    admin: Option<AdminEndpoint>,
    max_concurrent_calls: usize,
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
    /// to a node of the broker (or keeps trying in the background when none
    /// answers).
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        // First: a key file that cannot be read or created stops the start
        // before anything is bound or connected.
        let order_ids = order_id_secret(
            settings.order_id_secret.clone(),
            settings.order_id_secret_file.as_deref(),
        )?;
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
                    "cannot set up the broker at {}",
                    settings.amqp.redacted_urls()
                )
            })?;
        let recent_keys =
            RecentKeys::new(u64::try_from(settings.idempotency_cache_bytes).unwrap_or(u64::MAX));
        let service = CheckoutService::new(
            settings.catalog,
            publisher.clone(),
            order_ids,
            recent_keys,
            faults.clone(),
        );
        Ok(Self {
            listener,
            grpc_addr,
            service,
            admin,
            max_concurrent_calls: settings.max_concurrent_calls,
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
        // Above the call limit, so that one connection (the gateway sends
        // every call on one) can reach the limit and be shed at once instead
        // of waiting in its HTTP/2 client for a free stream, with room for
        // health checks; bounded, so no connection opens streams without end.
        let streams_per_connection =
            u32::try_from(self.max_concurrent_calls.saturating_mul(2)).unwrap_or(u32::MAX);
        let served = Server::builder()
            .max_concurrent_streams(streams_per_connection)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(checkout_server(self.service, self.max_concurrent_calls))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                shutdown.cancelled_owned(),
            )
            .await;
        self.publisher_stop.cancel();
        served.context("gRPC server failed")
    }
}

/// The order-id key: `ORDER_ID_SECRET` if set, else the key in
/// `ORDER_ID_SECRET_FILE` (created if missing), else a random one.
///
/// Without either the service still starts (a demo, a single instance that
/// is rarely restarted), with a key of its own: order ids stay
/// unguessable, and a retry that reaches this same process still gets its
/// order id. A retry that reaches another replica, or this service after a
/// restart, gets another order id, though: stock-service recognizes it by
/// its request fingerprint and applies the checkout once, but the client
/// holds an order id whose status says `duplicate` rather than the one that
/// was applied, hence the warning.
fn order_id_secret(
    configured: Option<OrderIdSecret>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<OrderIdSecret> {
    if let Some(secret) = configured {
        return Ok(secret);
    }
    if let Some(path) = file {
        let (secret, origin) = crate::key_file::load_or_create(path).with_context(|| {
            format!(
                "cannot read or create the order-id key file ORDER_ID_SECRET_FILE={}",
                path.display()
            )
        })?;
        let origin = match origin {
            crate::key_file::KeyOrigin::Read => "read",
            crate::key_file::KeyOrigin::Created => "created",
        };
        tracing::info!(path = %path.display(), origin, "order-id key from ORDER_ID_SECRET_FILE");
        return Ok(secret);
    }
    tracing::warn!(
        "neither ORDER_ID_SECRET nor ORDER_ID_SECRET_FILE is set: using a random order-id key \
         for this process, so a retry with the same Idempotency-Key that reaches another replica \
         or this service after a restart gets a different order id (stock-service still applies \
         the checkout once and answers the second id as a duplicate); share one key file or \
         secret between the replicas and keep it across restarts"
    );
    Ok(OrderIdSecret::random())
}

/// The `checkout.Checkout` service with its bounds: messages of at most
/// [`MAX_GRPC_MESSAGE_BYTES`] (a bigger request is refused with
/// `OUT_OF_RANGE` before it is buffered whole), and at most
/// `max_concurrent_calls` calls at once, the next refused at once with
/// `RESOURCE_EXHAUSTED`, which the gateway answers with 503 + `Retry-After`.
/// A shed call never reaches the handler, so it has no SERVER span: the
/// caller's CLIENT span carries the status.
fn checkout_server(
    service: CheckoutService,
    max_concurrent_calls: usize,
) -> impl tower::Service<
    http::Request<Body>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + tonic::server::NamedService
+ Clone
+ Send
+ Sync
+ 'static {
    let server = CheckoutServer::new(service)
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    ServiceBuilder::new()
        // tonic routes only services that never fail: a shed call becomes
        // its gRPC status here.
        .layer(HandleErrorLayer::new(|error: BoxError| async move {
            refused(&error).into_http::<axum::body::Body>()
        }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(max_concurrent_calls))
        .named_layer(server)
}

/// The status of a call refused by the limit (the only error the layers
/// above the server produce).
fn refused(error: &BoxError) -> Status {
    if error.is::<tower::load_shed::error::Overloaded>() {
        Status::resource_exhausted("too many checkouts in flight, retry shortly")
    } else {
        Status::internal(error.to_string())
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
