//! The HTTP API: read-only views of the store, and the health probes.
//!
//! - `GET /api/stock/{itemId}`: `{"itemId":1,"available":998}`
//! - `GET /api/orders/{orderId}`: `{"orderId":…,"status":"applied"|"rejected"|"duplicate","reason":…,"totalAmount":…}`
//!   (a `duplicate` also names the order it duplicates, `duplicateOf`)
//! - `GET /healthz`: the process is up (liveness).
//! - `GET /readyz`: the consumer is subscribed and the database answers
//!   (readiness); 503 otherwise, so an orchestrator holds traffic and alerts
//!   instead of restarting a service that is only waiting for its broker.
//!
//! The fault-injection admin endpoint is not here: it has a port of its own
//! (`ADMIN_ADDRESS`), never this public one (`service::faults::admin`).
//!
//! Every error is JSON, `{"error":{"code":"not_found","message":"…"}}`, so
//! clients never have to parse text bodies.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use contracts::{
    error::ApiError,
    http::{OrderView, Status, StockLevel},
};
use uuid::Uuid;

use crate::{
    consumer::ConsumerStatus,
    store::{Store, StoreError},
};

/// How long the readiness probe waits for the database.
const DB_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Read access to stock and orders.
    pub store: Store,
    /// Whether the consumer is subscribed.
    pub consumer: ConsumerStatus,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let traced = telemetry::spans::http::trace_layer(true);
    Router::new()
        .route("/api/stock/{item_id}", get(stock_level))
        .route("/api/orders/{order_id}", get(order))
        // Only the routes above get a SERVER span: a health probe every few
        // seconds would drown the traces that matter.
        .route_layer(traced)
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

async fn health() -> Json<Status> {
    Json(Status::ok())
}

async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if !state.consumer.is_consuming() {
        return Err(ApiError::not_ready("not subscribed to RabbitMQ"));
    }
    match tokio::time::timeout(DB_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Status::ready())),
        Ok(Err(error)) => Err(ApiError::not_ready(error.to_string())),
        Err(_) => Err(ApiError::not_ready("the database did not answer in time")),
    }
}

async fn stock_level(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<Json<StockLevel>, ApiError> {
    let item_id: i64 = item_id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_request",
            format!("itemId must be an integer, got {item_id:?}"),
        )
    })?;
    match state.store.stock_level(item_id).await? {
        Some(available) => Ok(Json(StockLevel { item_id, available })),
        None => Err(ApiError::not_found(format!(
            "no stock record for item {item_id}"
        ))),
    }
}

async fn order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let order_id: Uuid = order_id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_request",
            format!("orderId must be a UUID, got {order_id:?}"),
        )
    })?;
    match state.store.order_status(order_id).await? {
        Some(record) => Ok(Json(OrderView {
            order_id,
            status: record.status.as_str().to_owned(),
            reason: record.reason,
            total_amount: record.total_amount,
            processed_at: record.processed_at_ms,
            duplicate_of: record.duplicate_of,
        })),
        None => Err(ApiError::not_found(format!(
            "order {order_id} has not been processed"
        ))),
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // Logged here with the detail; the client gets a generic message.
        tracing::error!(%error, "store query failed");
        ApiError::internal("the stock database failed to answer")
    }
}
