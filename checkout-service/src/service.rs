//! The `checkout.Checkout` gRPC service: `DoCheckout` prices and publishes
//! an order, `ListItems` lists the catalog.
//!
//! Each call runs inside a SERVER span ([`telemetry::spans::grpc::server`])
//! that continues the caller's trace from the request metadata. The PRODUCER
//! span of a checkout's publish is its child.
//!
//! # Idempotency
//!
//! With an idempotency key the order id is derived from the client and the
//! key with a server secret ([`crate::idempotency`]), so a retry by the same
//! client that reaches a replica with the same secret names the same order.
//! The message also carries the request fingerprint of the client and the
//! key ([`contracts::amqp::request_fingerprint`]), which no secret changes:
//! stock-service applies one order per order id and one per fingerprint, so
//! any number of retries is one stock change whatever secret each replica
//! has, and no shared store is needed for that guarantee. To answer a key reused with a
//! *different* cart with an error rather than silently dropping the second
//! cart, the service remembers the cart of each recent (client, key) in a
//! cache bounded in bytes; that check is per instance and best effort, the
//! stock guarantee is not.
//!
//! A key the gateway generated for a client that sent none
//! (`idempotency_key_generated`) names its order the same way, so the
//! gateway's retry on another replica is the same order, but it skips the
//! cache: no client knows that key, so it can never come back with another
//! cart, and remembering it would only cost memory and push the keys of
//! clients that did send one out of the cache sooner.

use contracts::{
    amqp::{CheckoutProcessed, OrderLine, request_fingerprint},
    grpc::{
        CheckoutRequest, CheckoutResponse, DO_CHECKOUT, Item, LIST_ITEMS, ListItemsRequest,
        ListItemsResponse, SERVICE_NAME, checkout_server::Checkout,
    },
    limits::{check_client_id, check_idempotency_key},
};
use service::faults::Faults;
use telemetry::{metrics::OrderOutcomes, spans};
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    catalog::{Catalog, CheckoutError},
    idempotency::{OrderIdSecret, RecentKeys},
    publisher::{PublishError, Publisher},
};

/// The service implementation: a catalog, a publisher, what idempotency
/// keys need, and the demo fault injection.
#[derive(Clone)]
pub struct CheckoutService {
    catalog: Catalog,
    publisher: Publisher,
    faults: Faults,
    /// Derives an order id from (client, idempotency key).
    order_ids: OrderIdSecret,
    /// (client, idempotency key) → the cart it was first used with.
    recent_keys: RecentKeys,
    /// `rpc.server.call.duration`.
    call_durations: spans::grpc::CallDurations,
    /// Orders accepted (published and confirmed).
    orders: OrderOutcomes,
}

impl CheckoutService {
    /// Prices with `catalog`, publishes with `publisher`, names keyed orders
    /// with `order_ids`, remembers recent keys in `recent_keys`, and fails or
    /// slows down calls as `faults` says.
    pub fn new(
        catalog: Catalog,
        publisher: Publisher,
        order_ids: OrderIdSecret,
        recent_keys: RecentKeys,
        faults: Faults,
    ) -> Self {
        Self {
            catalog,
            publisher,
            faults,
            order_ids,
            recent_keys,
            call_durations: spans::grpc::CallDurations::server(),
            orders: OrderOutcomes::new(),
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

        // An empty client id is the anonymous client (a gateway without API
        // keys, or a caller that predates the field).
        if !request.client_id.is_empty() {
            check_client_id(&request.client_id)
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
        }
        let (order_id, fingerprint) = if request.idempotency_key.is_empty() {
            (Uuid::new_v4(), None)
        } else {
            let (client, key) = (&request.client_id, &request.idempotency_key);
            check_idempotency_key(key)
                .map_err(|error| Status::invalid_argument(error.to_string()))?;
            if !request.idempotency_key_generated
                && !self.recent_keys.same_cart(client, key, &order.lines)
            {
                return Err(Status::failed_precondition(
                    "this Idempotency-Key was already used with a different cart",
                ));
            }
            (
                self.order_ids.order_id(client, key),
                Some(request_fingerprint(client, key)),
            )
        };
        Span::current().set_attribute("checkout.order_id", order_id.to_string());

        let mut message = CheckoutProcessed::new(order_id, order.lines, i64::from(order.total));
        if let Some(fingerprint) = fingerprint {
            message = message.with_request_fingerprint(fingerprint);
        }
        // Every publish failure means "not accepted, try again later": the
        // caller must not take the order as placed.
        self.publisher
            .publish(&message)
            .await
            .map_err(|error: PublishError| {
                tracing::warn!(%error, %order_id, "order not published");
                Status::unavailable(error.to_string())
            })?;
        self.orders.add("accepted", 1);
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
        let call = spans::grpc::Call::start(SERVICE_NAME, DO_CHECKOUT);
        let span = spans::grpc::server(request.metadata(), SERVICE_NAME, DO_CHECKOUT);
        let result = self
            .checkout(request.into_inner())
            .instrument(span.clone())
            .await;
        spans::grpc::record_server_status(&span, &self.call_durations, call, &result);
        result.map(Response::new)
    }

    async fn list_items(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<ListItemsResponse>, Status> {
        let call = spans::grpc::Call::start(SERVICE_NAME, LIST_ITEMS);
        let span = spans::grpc::server(request.metadata(), SERVICE_NAME, LIST_ITEMS);
        let result = Ok(ListItemsResponse {
            items: self
                .catalog
                .items()
                .map(|(id, item)| Item {
                    id,
                    name: item.name.clone(),
                    price: item.price,
                })
                .collect(),
        });
        spans::grpc::record_server_status(&span, &self.call_durations, call, &result);
        result.map(Response::new)
    }
}
