//! The checkout request: its JSON shape and the [`Cart`] it parses into.
//!
//! Parse, don't validate: a handler that holds a [`Cart`] knows it is
//! non-empty with quantities of at least 1, because the only way to get one
//! is [`Cart::parse`]. Pricing and "does this item exist" stay with
//! checkout-service, which owns the catalog.

use serde::{Deserialize, Serialize};

/// The most line items one request may carry.
pub const MAX_LINE_ITEMS: usize = 100;

/// `POST /api/checkout` body: `{"items":[{"id":1,"quantity":2}]}`, or the
/// original `{"itemsID":[1,2,3,4]}` (one unit each). Both may be sent; at
/// least one line in all.
///
/// Unknown fields are rejected rather than ignored: a misspelt field (say
/// `item`) would otherwise turn into a confusing "empty cart", and ignored
/// values are not even checked to be valid UTF-8.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"items": [{"id": 1, "quantity": 2}, {"id": 3, "quantity": 1}]}))]
pub struct CheckoutBody {
    /// Line items with quantities.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub items: Vec<LineItemBody>,
    /// The original form: item ids, one unit each.
    #[serde(default, rename = "itemsID")]
    #[schema(max_items = 100)]
    pub items_id: Vec<i32>,
}

/// One `items` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItemBody {
    /// Catalog item id (the demo catalog sells 1–4).
    pub id: i32,
    /// Units, 1 to 1000; 1 when omitted.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    pub quantity: i32,
}

fn one() -> i32 {
    1
}

/// A cart the gateway will send on: at least one line, every quantity ≥ 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cart {
    lines: Vec<LineItemBody>,
}

/// Why a body is not a cart.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// Neither `items` nor `itemsID` has anything.
    #[error("the cart is empty: send items or itemsID")]
    Empty,
    /// A quantity below 1.
    #[error("quantity of item {item} must be at least 1, got {quantity}")]
    QuantityBelowOne {
        /// The item.
        item: i32,
        /// Its quantity.
        quantity: i32,
    },
    /// More than [`MAX_LINE_ITEMS`] lines.
    #[error("too many line items: at most {MAX_LINE_ITEMS}")]
    TooManyLines,
}

impl Cart {
    /// Parses a request body into a cart.
    pub fn parse(body: CheckoutBody) -> Result<Self, CartError> {
        let lines: Vec<LineItemBody> = body
            .items
            .into_iter()
            .chain(
                body.items_id
                    .into_iter()
                    .map(|id| LineItemBody { id, quantity: 1 }),
            )
            .collect();
        if lines.is_empty() {
            return Err(CartError::Empty);
        }
        if lines.len() > MAX_LINE_ITEMS {
            return Err(CartError::TooManyLines);
        }
        if let Some(bad) = lines.iter().find(|line| line.quantity < 1) {
            return Err(CartError::QuantityBelowOne {
                item: bad.id,
                quantity: bad.quantity,
            });
        }
        Ok(Self { lines })
    }

    /// The lines, in request order.
    pub fn lines(&self) -> &[LineItemBody] {
        &self.lines
    }
}

/// The `202 Accepted` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutAccepted {
    /// The order id stock-service applies the order under.
    pub order_id: String,
    /// The price of the order.
    pub total_amount: i32,
    /// The trace of this request, to look up in Jaeger.
    pub trace_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Cart, CartError> {
        Cart::parse(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn accepts_both_request_forms() {
        let cart = parse(r#"{"items":[{"id":1,"quantity":2}],"itemsID":[3]}"#).unwrap();
        assert_eq!(
            cart.lines(),
            &[
                LineItemBody { id: 1, quantity: 2 },
                LineItemBody { id: 3, quantity: 1 }
            ]
        );
        assert_eq!(parse(r#"{"itemsID":[1,2,3,4]}"#).unwrap().lines().len(), 4);
        assert_eq!(
            parse(r#"{"items":[{"id":2}]}"#).unwrap().lines()[0].quantity,
            1
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        assert!(serde_json::from_str::<CheckoutBody>(r#"{"item":[1]}"#).is_err());
        assert!(serde_json::from_str::<CheckoutBody>(r#"{"items":[{"id":1,"qty":2}]}"#).is_err());
    }

    #[test]
    fn rejects_empty_carts_and_bad_quantities() {
        assert_eq!(parse("{}"), Err(CartError::Empty));
        assert_eq!(parse(r#"{"items":[],"itemsID":[]}"#), Err(CartError::Empty));
        assert!(matches!(
            parse(r#"{"items":[{"id":1,"quantity":0}]}"#),
            Err(CartError::QuantityBelowOne {
                item: 1,
                quantity: 0
            })
        ));
        let many = format!(
            r#"{{"itemsID":[{}]}}"#,
            vec!["1"; MAX_LINE_ITEMS + 1].join(",")
        );
        assert_eq!(parse(&many), Err(CartError::TooManyLines));
    }
}
