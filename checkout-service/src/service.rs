//! The `checkout.Checkout` gRPC service.
//!
//! Each call runs inside a SERVER span that continues the caller's trace from
//! the request metadata ([`utils::propagation::grpc`]) and follows the
//! OpenTelemetry RPC conventions: `rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`. The PRODUCER span of the publish is its child.

use proto::{CheckoutRequest, CheckoutResponse, checkout_server::Checkout};
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utils::{
    message::{CheckoutProcessed, OrderLine},
    propagation,
};
use uuid::Uuid;

use crate::{
    catalog::{Catalog, CheckoutError},
    publisher::{PublishError, Publisher},
};

/// Namespace for order ids derived from an idempotency key (UUID v5), so the
/// same key always names the same order.
const ORDER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a7e_58d4_4b0e_9a51_0c3e_8e7d_2b91);

/// The service implementation: a catalog and a publisher.
#[derive(Clone)]
pub struct CheckoutService {
    catalog: Catalog,
    publisher: Publisher,
}

impl CheckoutService {
    /// Prices with `catalog`, publishes with `publisher`.
    pub fn new(catalog: Catalog, publisher: Publisher) -> Self {
        Self { catalog, publisher }
    }

    async fn checkout(&self, request: CheckoutRequest) -> Result<CheckoutResponse, Status> {
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
            Uuid::new_v5(&ORDER_ID_NAMESPACE, request.idempotency_key.as_bytes())
        };
        Span::current().record("checkout.order_id", order_id.to_string());

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
        let span = server_span(&request, "DoCheckout");
        let result = self
            .checkout(request.into_inner())
            .instrument(span.clone())
            .await;
        record_status(&span, &result);
        result.map(Response::new)
    }
}

/// The SERVER span of one call, continuing the caller's trace.
fn server_span<T>(request: &Request<T>, method: &str) -> Span {
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %format_args!("{}/{method}", proto::SERVICE_NAME),
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        rpc.system = "grpc",
        rpc.service = proto::SERVICE_NAME,
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        checkout.order_id = Empty,
    );
    // Must happen before the span is first entered.
    let _ = span.set_parent(propagation::grpc::extract(request.metadata()));
    span
}

/// Records the outcome. Per the RPC conventions a server span is an error
/// only for codes that mean the server failed, not for a caller's mistake.
fn record_status<T>(span: &Span, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    span.record("rpc.grpc.status_code", code as i64);
    if let Err(status) = result
        && matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        )
    {
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", status.message());
    }
}
