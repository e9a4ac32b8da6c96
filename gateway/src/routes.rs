//! The gateway's API handlers: checkout, the catalog, an order's status,
//! the health probes. (The storefront page's routes are in
//! [`crate::storefront`].)

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::{
    error::{ApiError, ErrorBody},
    http::{
        CatalogBody, CatalogItem, CheckoutAccepted, CheckoutBody, IDEMPOTENCY_KEY_HEADER,
        OrderView, Status,
    },
};
use telemetry::spans::current_trace_id;
use uuid::Uuid;

use crate::{
    auth::Client,
    domain::{Cart, IdempotencyKey},
    state::AppState,
};

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

/// The catalog: every item on sale, with its name and price.
///
/// Asks checkout-service (`checkout.Checkout/ListItems`), which prices
/// checkouts from the same catalog, within the checkout deadline.
#[utoipa::path(get, path = "/api/catalog", tag = "storefront",
    responses(
        (status = 200, description = "The items on sale, in ascending id", body = CatalogBody),
        (status = 503, description = "checkout-service is unavailable; retry later", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 504, description = "checkout-service did not answer within the deadline", body = ErrorBody),
    ))]
pub async fn catalog(State(state): State<AppState>) -> Result<Json<CatalogBody>, ApiError> {
    let response = state.checkout.list_items().await?;
    let mut items: Vec<CatalogItem> = response
        .items
        .into_iter()
        .map(|item| CatalogItem {
            id: item.id,
            name: item.name,
            price: item.price,
        })
        .collect();
    items.sort_by_key(|item| item.id);
    Ok(Json(CatalogBody { items }))
}

/// What stock-service decided for an order.
///
/// Passes stock-service's answer on: 200 with the order's status once it is
/// processed (`applied`, or `rejected` with the reason), 404 until then.
/// A checkout's 202 means the broker has the order; poll this until it
/// stops answering 404.
#[utoipa::path(get, path = "/api/orders/{orderId}", tag = "storefront",
    params(("orderId" = String, Path, description = "The order id a checkout answered (a UUID)")),
    responses(
        (status = 200, description = "The order is processed", body = OrderView),
        (status = 400, description = "The order id is not a UUID", body = ErrorBody),
        (status = 404, description = "The order is not processed (yet), or unknown", body = ErrorBody),
        (status = 502, description = "stock-service answered something that is not its API's", body = ErrorBody),
        (status = 503, description = "stock-service is unavailable; retry later", body = ErrorBody,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 504, description = "stock-service did not answer in time", body = ErrorBody),
    ))]
pub async fn order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    let order_id: Uuid = order_id.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_order_id",
            format!("orderId must be a UUID, got {order_id:?}"),
        )
    })?;
    let answer = state.stock.order(order_id).await?;
    // Passed on as it is, once it is the JSON it should be: stock-service's
    // own errors are already the one error body.
    let json = serde_json::from_slice::<serde_json::Value>(&answer.body).is_ok();
    if !json || answer.status.is_informational() || answer.status.is_redirection() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!(
                "stock-service answered {} without its JSON body",
                answer.status
            ),
        ));
    }
    let mut response = (answer.status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(contracts::error::RETRY_AFTER_SECONDS),
        );
    }
    Ok(response)
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
