//! The checkout request as the gateway sends it on: a [`Cart`] and an
//! [`IdempotencyKey`].
//!
//! Parse, don't validate: a handler that holds a [`Cart`] knows it is within
//! every limit of [`contracts::limits`] — at least one line, at most
//! [`MAX_LINE_ITEMS`] lines, each item's quantity from 1 to
//! [`MAX_QUANTITY`] — because the only way to get one is [`Cart::parse`].
//! Pricing and "does this item exist" stay with checkout-service, which
//! owns the catalog.

use std::collections::BTreeMap;

use contracts::{
    error::ApiError,
    http::{CheckoutBody, LineItemBody},
    limits::{InvalidIdempotencyKey, MAX_LINE_ITEMS, MAX_QUANTITY, check_idempotency_key},
};
use uuid::Uuid;

/// The idempotency key every checkout carries: the client's
/// `Idempotency-Key`, or a random UUID the gateway generates when it sent
/// none.
///
/// A generated key is what makes the gateway's own retry on another replica
/// safe: checkout-service derives the order id from the key, so the retry is
/// the same order even if the first attempt reached the broker. It also
/// spreads keyless checkouts evenly over the replicas (see
/// [`crate::checkout_client`]). It is sent as generated, so that
/// checkout-service need not remember it: no client knows it to reuse it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    value: String,
    generated: bool,
}

impl IdempotencyKey {
    /// The client's key, if it follows [`check_idempotency_key`]'s rule.
    pub fn from_client(value: &str) -> Result<Self, InvalidIdempotencyKey> {
        check_idempotency_key(value)?;
        Ok(Self {
            value: value.to_owned(),
            generated: false,
        })
    }

    /// A new random key (a UUID v4), for a checkout whose client sent none.
    pub fn generate() -> Self {
        Self {
            value: Uuid::new_v4().to_string(),
            generated: true,
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether the gateway generated it.
    pub fn is_generated(&self) -> bool {
        self.generated
    }
}

/// A cart the gateway will send on.
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
    /// A quantity below 1 or, summed over the item's lines, above
    /// [`MAX_QUANTITY`].
    #[error("quantity {quantity} of item {item} is out of range 1..={MAX_QUANTITY}")]
    BadQuantity {
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
        let count = body.items.len() + body.items_id.len();
        if count == 0 {
            return Err(CartError::Empty);
        }
        if count > MAX_LINE_ITEMS {
            return Err(CartError::TooManyLines);
        }
        let lines: Vec<LineItemBody> = body
            .items
            .into_iter()
            .chain(
                body.items_id
                    .into_iter()
                    .map(|id| LineItemBody { id, quantity: 1 }),
            )
            .collect();
        let mut per_item: BTreeMap<i32, i32> = BTreeMap::new();
        for line in &lines {
            let total = per_item.entry(line.id).or_default();
            *total = total.saturating_add(line.quantity);
            if !(1..=MAX_QUANTITY).contains(&line.quantity) || *total > MAX_QUANTITY {
                return Err(CartError::BadQuantity {
                    item: line.id,
                    quantity: if line.quantity < 1 {
                        line.quantity
                    } else {
                        *total
                    },
                });
            }
        }
        Ok(Self { lines })
    }

    /// The lines, in request order.
    pub fn lines(&self) -> &[LineItemBody] {
        &self.lines
    }
}

impl From<CartError> for ApiError {
    fn from(error: CartError) -> Self {
        ApiError::bad_request("invalid_cart", error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Cart, CartError> {
        Cart::parse(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn generated_idempotency_keys_are_fresh_valid_keys() {
        let (one, two) = (IdempotencyKey::generate(), IdempotencyKey::generate());
        assert!(one.is_generated());
        assert_ne!(one, two);
        assert!(check_idempotency_key(one.as_str()).is_ok());
        let client = IdempotencyKey::from_client("order-42").unwrap();
        assert_eq!(
            (client.as_str(), client.is_generated()),
            ("order-42", false)
        );
        assert!(IdempotencyKey::from_client("two words").is_err());
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
    fn rejects_empty_carts_and_bad_quantities() {
        assert_eq!(parse("{}"), Err(CartError::Empty));
        assert_eq!(parse(r#"{"items":[],"itemsID":[]}"#), Err(CartError::Empty));
        assert!(matches!(
            parse(r#"{"items":[{"id":1,"quantity":0}]}"#),
            Err(CartError::BadQuantity {
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

    #[test]
    fn enforces_the_quantity_limit_per_item_at_the_edge() {
        assert!(
            parse(&format!(
                r#"{{"items":[{{"id":1,"quantity":{MAX_QUANTITY}}}]}}"#
            ))
            .is_ok()
        );
        assert!(matches!(
            parse(&format!(
                r#"{{"items":[{{"id":1,"quantity":{}}}]}}"#,
                MAX_QUANTITY + 1
            )),
            Err(CartError::BadQuantity { item: 1, .. })
        ));
        // Lines of one item add up, as checkout-service merges them.
        assert!(matches!(
            parse(&format!(
                r#"{{"items":[{{"id":1,"quantity":{MAX_QUANTITY}}}],"itemsID":[1]}}"#
            )),
            Err(CartError::BadQuantity { item: 1, .. })
        ));
    }
}
