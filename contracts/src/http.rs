//! The JSON bodies of the HTTP APIs.
//!
//! - gateway: `POST /api/checkout` takes a [`CheckoutBody`] and answers
//!   `202` with a [`CheckoutAccepted`]; `GET /api/catalog` answers a
//!   [`CatalogBody`]; `GET /api/orders/{orderId}` passes stock-service's
//!   [`OrderView`] on; the storefront page reads a [`StorefrontConfig`] from
//!   `GET /config.json`;
//! - stock-service: `GET /api/stock/{itemId}` answers a [`StockLevel`],
//!   `GET /api/orders/{orderId}` an [`OrderView`];
//! - both, and checkout-service's admin port: `GET /healthz` and `/readyz`
//!   answer a [`Status`], `GET`/`PUT /admin/faults` a [`FaultSettings`].
//!
//! The gateway's request headers are named here too ([`API_KEY_HEADER`],
//! [`IDEMPOTENCY_KEY_HEADER`]). Every error is a [`crate::error::ErrorBody`].
//! The types derive both `Serialize` and `Deserialize`, so the services write
//! them and the `checkout` command and the tests read them with the same
//! definitions.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The header a client sends its API key in, when the gateway has API keys
/// configured: `Authorization: Bearer <key>` (the bearer scheme of RFC 6750,
/// which HTTP clients, proxies and log scrubbers already treat as a secret).
pub const API_KEY_HEADER: &str = "authorization";

/// The authentication scheme of [`API_KEY_HEADER`], also named in the
/// `WWW-Authenticate` header of a 401.
pub const API_KEY_SCHEME: &str = "Bearer";

/// The optional header naming a checkout so that a retry is the same order.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// `POST /api/checkout` body: `{"items":[{"id":1,"quantity":2}]}`, or the
/// original `{"itemsID":[1,2,3,4]}` (one unit each). Both may be sent; at
/// least one line in all.
///
/// Unknown fields are rejected rather than ignored: a misspelt field (say
/// `item`) would otherwise turn into a confusing "empty cart", and ignored
/// values are not even checked to be valid UTF-8.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"id": 1, "quantity": 2}, {"id": 3, "quantity": 1}]}))]
pub struct CheckoutBody {
    /// Line items with quantities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    // utoipa takes only a literal here: a test holds it to MAX_LINE_ITEMS.
    #[schema(max_items = 100)]
    pub items: Vec<LineItemBody>,
    /// The original form: item ids, one unit each.
    #[serde(default, rename = "itemsID", skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100)]
    pub items_id: Vec<i32>,
}

impl CheckoutBody {
    /// Parses a JSON request body.
    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// One `items` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemBody {
    /// Catalog item id (the demo catalog sells 1–4).
    pub id: i32,
    /// Units, 1 to 1000; 1 when omitted.
    #[serde(default = "one")]
    // utoipa takes only literals here: a test holds them to MAX_QUANTITY.
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    pub quantity: i32,
}

fn one() -> i32 {
    1
}

/// The `202 Accepted` body of `POST /api/checkout`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutAccepted {
    /// The order id stock-service applies the order under.
    pub order_id: String,
    /// The price of the order.
    pub total_amount: i32,
    /// The trace of this request, to look up in Jaeger.
    pub trace_id: String,
}

/// `GET /api/catalog`: every item on sale, in ascending id
/// (`{"items":[{"id":1,"name":"Espresso cup","price":100}]}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"items": [{"id": 1, "name": "Espresso cup", "price": 100}, {"id": 2, "name": "Tea towel", "price": 250}]}))]
pub struct CatalogBody {
    /// The items, in ascending id.
    pub items: Vec<CatalogItem>,
}

/// One item of a [`CatalogBody`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    /// The id a checkout names it by.
    pub id: i32,
    /// What it is called.
    pub name: String,
    /// Its price, in the catalog's currency units, as a checkout charges it.
    pub price: i32,
}

/// `GET /config.json`: what the storefront page needs to know about its
/// deployment (`{"jaegerUrl":"http://localhost:16686"}`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorefrontConfig {
    /// The Jaeger UI the page links a trace to (`{jaegerUrl}/trace/{traceId}`).
    pub jaeger_url: String,
}

/// `GET /api/stock/{itemId}`: `{"itemId":1,"available":998}`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    /// The catalog item.
    pub item_id: i64,
    /// Units left.
    pub available: i64,
}

/// `GET /api/orders/{orderId}`: what stock-service decided for an order
/// (the gateway answers the same body, passed on from stock-service).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(example = json!({"orderId": "5f0c6e2a-8d1b-4a57-9a43-1f2d3c4b5a69", "status": "applied", "reason": null, "totalAmount": 599, "processedAt": 1764690000000_i64}))]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    /// The order.
    #[schema(value_type = String)]
    pub order_id: Uuid,
    /// `applied`, `rejected`, or `duplicate`: a retry of a checkout (the
    /// same client and `Idempotency-Key`) that got another order id than the
    /// order applied for it, [`OrderView::duplicate_of`]; its stock was not
    /// taken again.
    #[schema(example = "applied")]
    pub status: String,
    /// Why it was rejected, or what it duplicates; `null` when applied.
    pub reason: Option<String>,
    /// The order's price, as published.
    pub total_amount: i64,
    /// When the order was decided, in Unix milliseconds.
    pub processed_at: i64,
    /// For a `duplicate`: the order id under which this checkout was
    /// applied (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub duplicate_of: Option<Uuid>,
}

/// [`OrderView::status`] of an order applied under another order id.
pub const ORDER_STATUS_DUPLICATE: &str = "duplicate";

/// The body of the health probes: `{"status":"ok"}` (`/healthz`) or
/// `{"status":"ready"}` (`/readyz`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: String,
}

impl Status {
    /// `{"status":"ok"}`: the process is up.
    pub fn ok() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }

    /// `{"status":"ready"}`: the service can take work.
    pub fn ready() -> Self {
        Self {
            status: "ready".to_owned(),
        }
    }
}

/// `GET`/`PUT /admin/faults`: what fault injection does
/// (`{"failureRate":0.2,"delayMs":300,"delayRate":0.5}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Share of requests that fail (0 to 1).
    pub failure_rate: f64,
    /// How long a delayed request waits, in milliseconds.
    pub delay_ms: u64,
    /// Share of requests that are delayed (0 to 1).
    pub delay_rate: f64,
}

impl FaultSettings {
    /// The longest injected delay, in milliseconds.
    pub const MAX_DELAY_MS: u64 = 60_000;

    /// Checks the shares and the delay; `can_fail` is false for a service
    /// that only injects delays.
    pub fn check(&self, can_fail: bool) -> Result<(), String> {
        for (name, rate) in [
            ("failureRate", self.failure_rate),
            ("delayRate", self.delay_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if self.delay_ms > Self::MAX_DELAY_MS {
            return Err(format!("delayMs must be at most {}", Self::MAX_DELAY_MS));
        }
        if !can_fail && self.failure_rate > 0.0 {
            return Err("this service only injects delays".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_bodies_take_both_forms_and_reject_unknown_fields() {
        let body: CheckoutBody =
            serde_json::from_str(r#"{"items":[{"id":2}],"itemsID":[3]}"#).unwrap();
        assert_eq!(body.items, vec![LineItemBody { id: 2, quantity: 1 }]);
        assert_eq!(body.items_id, vec![3]);
        assert!(serde_json::from_str::<CheckoutBody>(r#"{"item":[1]}"#).is_err());
        assert!(serde_json::from_str::<CheckoutBody>(r#"{"items":[{"id":1,"qty":2}]}"#).is_err());
    }

    #[test]
    fn the_openapi_bounds_are_the_limits() {
        use utoipa::PartialSchema;

        use crate::limits::{MAX_LINE_ITEMS, MAX_QUANTITY};

        let body = serde_json::to_value(CheckoutBody::schema()).unwrap();
        let properties = &body["properties"];
        assert_eq!(properties["items"]["maxItems"], MAX_LINE_ITEMS);
        assert_eq!(properties["itemsID"]["maxItems"], MAX_LINE_ITEMS);
        let line = serde_json::to_value(LineItemBody::schema()).unwrap();
        assert_eq!(line["properties"]["quantity"]["maximum"], MAX_QUANTITY);
        assert_eq!(line["properties"]["quantity"]["minimum"], 1);
    }

    #[test]
    fn accepted_bodies_use_camel_case() {
        let json = serde_json::to_value(CheckoutAccepted {
            order_id: "o".into(),
            total_amount: 5,
            trace_id: "t".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"orderId":"o","totalAmount":5,"traceId":"t"})
        );
    }

    #[test]
    fn catalog_and_config_bodies_use_camel_case() {
        let catalog = serde_json::to_value(CatalogBody {
            items: vec![CatalogItem {
                id: 1,
                name: "Espresso cup".into(),
                price: 100,
            }],
        })
        .unwrap();
        assert_eq!(
            catalog,
            serde_json::json!({"items":[{"id":1,"name":"Espresso cup","price":100}]})
        );
        let config = serde_json::to_value(StorefrontConfig {
            jaeger_url: "http://localhost:16686".into(),
        })
        .unwrap();
        assert_eq!(
            config,
            serde_json::json!({"jaegerUrl":"http://localhost:16686"})
        );
    }

    #[test]
    fn fault_settings_are_checked() {
        let fail = FaultSettings {
            failure_rate: 0.5,
            ..Default::default()
        };
        assert!(fail.check(true).is_ok());
        assert!(fail.check(false).is_err());
        let too_long = FaultSettings {
            delay_ms: FaultSettings::MAX_DELAY_MS + 1,
            ..Default::default()
        };
        assert!(too_long.check(true).is_err());
        let bad_rate = FaultSettings {
            delay_rate: 1.5,
            ..Default::default()
        };
        assert!(bad_rate.check(true).is_err());
    }
}
