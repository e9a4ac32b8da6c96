//! The gateway's HTTP handlers.

use axum::{
    Json,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use contracts::{
    error::{ApiError, ErrorBody},
    http::{CheckoutAccepted, CheckoutBody, IDEMPOTENCY_KEY_HEADER, Status},
};
use telemetry::spans::current_trace_id;

use crate::{
    auth::{ApiKeys, Client},
    checkout_client::CheckoutClient,
    domain::{Cart, IdempotencyKey},
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The checkout-service client.
    pub checkout: CheckoutClient,
    /// The clients and their API keys; `None`: no key is asked for and every
    /// caller is the anonymous client.
    pub api_keys: Option<ApiKeys>,
}

/// Check out a cart.
///
/// Answers `202 Accepted` once checkout-service has priced the cart and the
/// message broker has confirmed the order; stock is then applied
/// asynchronously by stock-service. The request continues a W3C
/// `traceparent`/`baggage` sent by the client.
///
/// When the gateway has API keys configured (`API_KEYS`), the request needs
/// `Authorization: Bearer <key>`; an `Idempotency-Key` is scoped to the
/// client the key names. Without API keys every caller is one anonymous
/// client, and a key is shared by every caller of the deployment.
#[utoipa::path(
    post,
    path = "/api/checkout",
    tag = "checkout",
    request_body(content = CheckoutBody, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "Retrying with the same key and cart gives the same order (keys are scoped to the client); 1 to 255 printable ASCII characters"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context to continue"),
        ("baggage" = Option<String>, Header, description = "W3C baggage"),
    ),
    responses(
        (status = 202, description = "Order accepted", body = CheckoutAccepted),
        (status = 400, description = "Malformed JSON, empty cart, bad quantity or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "API keys are configured and the request has none, or an unknown one",
            body = ErrorBody, headers(("WWW-Authenticate" = String, description = "The Bearer challenge"))),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 415, description = "Content type is not application/json", body = ErrorBody),
        (status = 422, description = "Unknown item, or Idempotency-Key reused with another cart", body = ErrorBody),
        (status = 503, description = "Checkout or the broker is unavailable, or too many checkouts in flight; retry later",
            body = ErrorBody, headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 504, description = "Checkout did not answer within the deadline", body = ErrorBody),
    ),
    // No security requirement, or the API key: which one depends on API_KEYS.
    security((), ("api_key" = []))
)]
pub async fn checkout(
    client: Client,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CheckoutBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CheckoutAccepted>), ApiError> {
    let Json(body) = body?;
    let cart = Cart::parse(body)?;
    let idempotency_key = idempotency_key(&headers)?.unwrap_or_else(IdempotencyKey::generate);
    let response = state
        .checkout
        .do_checkout(&cart, &client, &idempotency_key)
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

/// Reads the optional `Idempotency-Key` header (see
/// [`IdempotencyKey::from_client`]).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|key| IdempotencyKey::from_client(key).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                contracts::limits::InvalidIdempotencyKey.to_string(),
            )
        })
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Status> {
    Json(Status::ok())
}

/// Readiness: a checkout-service replica can take orders. A gateway that is
/// up but cannot reach a serving replica is alive, not ready.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state.checkout.ready().await.map_err(ApiError::not_ready)?;
    Ok(Json(Status::ready()))
}

/// Any path the gateway does not serve.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

/// A served path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
