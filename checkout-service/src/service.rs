//! The `checkout.Checkout` gRPC service.
//!
//! Each call runs inside a SERVER span ([`telemetry::spans::grpc::server`])
//! that continues the caller's trace from the request metadata. The PRODUCER
//! span of the publish is its child.
//!
//! # Idempotency
//!
//! With an idempotency key the order id is a UUID v5 of the key, so a retry
//! names the same order and stock-service, which applies each order id once,
//! turns any number of retries into one stock change: no shared store is
//! needed for that guarantee. To answer a key reused with a *different* cart
//! with an error rather than silently dropping the second cart, the service
//! remembers the cart of each recent key in a bounded in-memory cache; that
//! check is per instance and best effort, the stock guarantee is not.

use contracts::{
    amqp::{CheckoutProcessed, OrderLine},
    grpc::{
        CheckoutRequest, CheckoutResponse, DO_CHECKOUT, SERVICE_NAME, checkout_server::Checkout,
    },
    limits::check_idempotency_key,
};
use service::faults::Faults;
use telemetry::spans;
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    catalog::{Catalog, CheckoutError},
    publisher::{PublishError, Publisher},
};

/// Namespace for order ids derived from an idempotency key (UUID v5), so the
/// same key always names the same order.
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a7e_58d4_4b0e_9a51_0c3e_8e7d_2b91);

/// How many recent idempotency keys are remembered, and for how long.
const RECENT_KEYS: u64 = 100_000;
const RECENT_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// The service implementation: a catalog, a publisher, the recent keys, and
/// the demo fault injection.
#[derive(Clone)]
pub struct CheckoutService {
    catalog: Catalog,
    publisher: Publisher,
    faults: Faults,
    /// Idempotency key → the cart it was first used with.
    recent_keys: moka::sync::Cache<String, Vec<OrderLine>>,
}

impl CheckoutService {
    /// Prices with `catalog`, publishes with `publisher`, and fails or slows
    /// down calls as `faults` says.
    pub fn new(catalog: Catalog, publisher: Publisher, faults: Faults) -> Self {
        Self {
            catalog,
            publisher,
            faults,
            recent_keys: moka::sync::Cache::builder()
                .max_capacity(RECENT_KEYS)
                .time_to_live(RECENT_KEY_TTL)
                .build(),
        }
    }

    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutResponse, Status> {
        self.faults.maybe_delay().await;
        if self.faults.should_fail() {
            return Err(Status::unavailable("injected fault (FAULT_FAILURE_RATE)"));
        }
        // The original form lists ids (one unit each); the new one has
        // quantities. Both may be present; they add up.
        let lines = request
            .items_id
            .iter()
            .map(|&id| OrderLine { id, quantity: 1 })
            .chain(request.items.iter().map(|line| OrderLine {
                id: line.id,
                quantity: line.quantity,
            }));
        let order = self.catalog.price_order(lines).map_err(|error| {
            let code = match error {
                CheckoutError::UnknownItem(_) => Code::NotFound,
                _ => Code::InvalidArgument,
            };
            Status::new(code, error.to_string())
        })?;

        let order_id = if request.idempotency_key.is_empty() {
            Uuid::new_v4()
        } else {
            check_idempotency_key(&request.idempotency_key)
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            let first_cart = self
                .recent_keys
                .get_with_by_ref(&request.idempotency_key, || order.lines.clone());
            if first_cart != order.lines {
                return Err(Status::failed_precondition(
                    "this Idempotency-Key was already used with a different cart",
                ));
            }
            Uuid::new_v5(&ORDER_ID_NAMESPACE, request.idempotency_key.as_bytes())
        };
        Span::current().set_attribute("checkout.order_id", order_id.to_string());

        let message = CheckoutProcessed::new(order_id, order.lines, i64::from(order.total));
        // Every publish failure means "not accepted, try again later": the
        // caller must not take the order as placed.
        self.publisher
            .publish(&message)
            .await
            .map_err(|error: PublishError| {
                tracing::warn!(%error, %order_id, "order not published");
                Status::unavailable(error.to_string())
            })?;
        tracing::info!(%order_id, total = order.total, "order accepted");

        Ok(CheckoutResponse {
            total_amount: order.total,
            order_id: order_id.to_string(),
        })
    }
}

#[tonic::async_trait]
impl Checkout for CheckoutService {
    async fn do_checkout(
        &self,
        request: Request<CheckoutRequest>,
    ) -> Result<Response<CheckoutResponse>, Status> {
        let span = spans::grpc::server(request.metadata(), SERVICE_NAME, DO_CHECKOUT);
        let result = self
            .checkout(request.into_inner())
            .instrument(span.clone())
            .await;
        spans::grpc::record_server_status(&span, &result);
        result.map(Response::new)
    }
}
