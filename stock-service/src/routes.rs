//! The HTTP API: read-only views of the store, and the health probes.
//!
//! - `GET /api/stock/{itemId}`: `{"itemId":1,"available":998}`
//! - `GET /api/orders/{orderId}`: `{"orderId":…,"status":"applied"|"rejected","reason":…,"totalAmount":…}`
//! - `GET /healthz`: the process is up (liveness).
//! - `GET /readyz`: the consumer is subscribed and the database answers
//!   (readiness); 503 otherwise, so an orchestrator holds traffic and alerts
//!   instead of restarting a service that is only waiting for its broker.
//!
//! Every error is JSON, `{"error":{"code":"not_found","message":"…"}}`, so
//! clients never have to parse text bodies.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use serde_json::json;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use utils::{
    faults::Faults,
    http_span::{MakeServerSpan, RecordResponse},
};

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
    /// Demo fault injection, served at `/admin/faults`.
    pub faults: Faults,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let admin = state.faults.admin_router();
    let traced = TraceLayer::new_for_http()
        .make_span_with(MakeServerSpan::default())
        .on_response(RecordResponse)
        .on_failure(());
    Router::new()
        .route("/api/stock/{item_id}", get(stock_level))
        .route("/api/orders/{order_id}", get(order))
        // Only the routes above get a SERVER span: a health probe every few
        // seconds would drown the traces that matter.
        .route_layer(traced)
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found("no such route".to_owned()) })
        .with_state(state)
        .merge(admin)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StockLevel {
    item_id: i64,
    available: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderView {
    order_id: Uuid,
    status: &'static str,
    reason: Option<String>,
    total_amount: i64,
    /// When the order was decided, in Unix milliseconds.
    processed_at: i64,
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.consumer.is_consuming() {
        return Err(ApiError::not_ready("not subscribed to RabbitMQ".to_owned()));
    }
    match tokio::time::timeout(DB_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(error)) => Err(ApiError::not_ready(error.to_string())),
        Err(_) => Err(ApiError::not_ready(
            "the database did not answer in time".to_owned(),
        )),
    }
}

async fn stock_level(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
) -> Result<Json<StockLevel>, ApiError> {
    let item_id: i64 = item_id.parse().map_err(|_| {
        ApiError::bad_request(format!("itemId must be an integer, got {item_id:?}"))
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
    let order_id: Uuid = order_id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("orderId must be a UUID, got {order_id:?}")))?;
    match state.store.order_status(order_id).await? {
        Some(record) => Ok(Json(OrderView {
            order_id,
            status: record.status.as_str(),
            reason: record.reason,
            total_amount: record.total_amount,
            processed_at: record.processed_at_ms,
        })),
        None => Err(ApiError::not_found(format!(
            "order {order_id} has not been processed"
        ))),
    }
}

/// An error response: `{"error":{"code":…,"message":…}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message,
        }
    }

    fn not_found(message: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message,
        }
    }

    fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "this route only answers GET".to_owned(),
        }
    }

    fn not_ready(message: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "not_ready",
            message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        // Logged here with the detail; the client gets a generic message.
        tracing::error!(%error, "store query failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "the stock database failed to answer".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
