//! The gRPC client for checkout-service.
//!
//! One lazily-connected [`Channel`] (HTTP/2, multiplexed) is shared by every
//! request; cloning the client is cheap. Each call gets a deadline, sent to
//! the server as `grpc-timeout` and enforced here too, and a CLIENT span whose
//! context the [`TraceContextInterceptor`] writes into the call's metadata.

use std::time::Duration;

use contracts::grpc::{CheckoutRequest, CheckoutResponse, DO_CHECKOUT, LineItem, SERVICE_NAME};
use telemetry::{propagation::grpc::TraceContextInterceptor, spans};
use tonic::{
    Status,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tracing::Instrument;

use crate::{auth::Client, domain::Cart};

type Inner = contracts::grpc::checkout_client::CheckoutClient<
    InterceptedService<Channel, TraceContextInterceptor>,
>;

/// A traced `DoCheckout` caller.
#[derive(Clone)]
pub struct CheckoutClient {
    inner: Inner,
    health: HealthClient<Channel>,
    deadline: Duration,
    server_address: String,
    server_port: u16,
}

impl CheckoutClient {
    /// A client for `endpoint_url`; connects on first use and reconnects on
    /// its own, so the gateway starts even while checkout-service is down.
    pub fn new(endpoint_url: &str, deadline: Duration) -> Result<Self, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(endpoint_url.to_owned())?
            .connect_timeout(deadline)
            .tcp_nodelay(true);
        let uri = endpoint.uri();
        let server_address = uri.host().unwrap_or_default().to_owned();
        let server_port = uri.port_u16().unwrap_or(80);
        let channel = endpoint.connect_lazy();
        Ok(Self {
            health: HealthClient::new(channel.clone()),
            inner: contracts::grpc::checkout_client::CheckoutClient::with_interceptor(
                channel,
                TraceContextInterceptor,
            ),
            deadline,
            server_address,
            server_port,
        })
    }

    /// Calls `DoCheckout` for `cart`, on behalf of `client`, within the
    /// deadline.
    pub async fn do_checkout(
        &self,
        cart: &Cart,
        client: &Client,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutResponse, Status> {
        let span = spans::grpc::client(
            SERVICE_NAME,
            DO_CHECKOUT,
            &self.server_address,
            self.server_port,
        );
        let mut request = tonic::Request::new(CheckoutRequest {
            items_id: Vec::new(),
            items: cart
                .lines()
                .iter()
                .map(|line| LineItem {
                    id: line.id,
                    quantity: line.quantity,
                })
                .collect(),
            idempotency_key: idempotency_key.unwrap_or_default().to_owned(),
            client_id: client.grpc_id().to_owned(),
            idempotency_key_generated: false,
        });
        request.set_timeout(self.deadline);
        let mut client = self.inner.clone();
        let call = async {
            match tokio::time::timeout(self.deadline, client.do_checkout(request)).await {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
            }
        };
        let result = call.instrument(span.clone()).await;

        spans::grpc::record_client_status(&span, &result);
        result
    }

    /// Asks checkout-service's standard health service whether it can take
    /// orders (it reports NOT_SERVING while its broker connection is down).
    pub async fn ready(&self) -> Result<(), String> {
        let request = HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        };
        let mut health = self.health.clone();
        let answer = tokio::time::timeout(self.deadline, health.check(request))
            .await
            .map_err(|_| "checkout-service health check timed out".to_owned())?
            .map_err(|status| format!("checkout-service unreachable: {}", status.message()))?;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            status => Err(format!("checkout-service is {}", status.as_str_name())),
        }
    }
}
