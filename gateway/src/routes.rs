//! The gateway's HTTP handlers.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use serde_json::{Value, json};

use crate::{
    checkout_client::CheckoutClient,
    domain::{Cart, CheckoutAccepted, CheckoutBody},
    error::ApiError,
    telemetry::current_trace_id,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The checkout-service client.
    pub checkout: CheckoutClient,
}

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// `POST /api/checkout`: parse the cart, check out over gRPC, answer
/// `202 Accepted` once checkout-service has the broker's confirm.
pub async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CheckoutBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CheckoutAccepted>), ApiError> {
    let Json(body) = body?;
    let cart = Cart::parse(body)?;
    let idempotency_key = idempotency_key(&headers)?;
    let response = state
        .checkout
        .do_checkout(&cart, idempotency_key)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CheckoutAccepted {
            order_id: response.order_id,
            total_amount: response.total_amount,
            trace_id: current_trace_id(),
        }),
    ))
}

/// Reads the optional `Idempotency-Key` header: printable ASCII, 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters"),
            )
        })
}

/// `GET /healthz`: the process is up (liveness).
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: checkout-service can take orders (readiness). A gateway
/// that is up but cannot reach a serving checkout-service is alive, not ready.
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.checkout.ready().await.map_err(|reason| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason)
    })?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Any path the gateway does not serve.
pub async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// A served path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
