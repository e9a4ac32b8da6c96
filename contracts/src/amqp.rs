//! The `checkout.processed` message: the contract between its publisher
//! (checkout-service) and its consumer (stock-service), and the names of
//! what it travels through.
//!
//! The body is JSON with camelCase keys and an explicit `schemaVersion`, so a
//! consumer can tell a message it does not understand (and dead-letter it)
//! from one that is merely malformed. Unknown fields are ignored, so adding a
//! field is backward compatible; changing a meaning needs a new version.
//!
//! # Topology
//!
//! ```text
//!  <exchange> (topic) ──<routing key>──▶ <queue> (quorum) ──▶ stock-service
//!                                          │ x-dead-letter-exchange
//!                                          ▼
//!  <exchange>.dlx (direct) ──<queue>.dead──▶ <queue>.dead (quorum)
//! ```
//!
//! The exchange, routing key and queue are configurable (their defaults are
//! below); the dead-letter names derive from them
//! ([`dead_letter_exchange`], [`dead_letter_queue`]). Every declarer must
//! use the same queue arguments ([`DELIVERY_LIMIT`] among them), or the
//! broker refuses the second declaration.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Default topic exchange (`AMQP_EXCHANGE`).
pub const DEFAULT_EXCHANGE: &str = "checkout";
/// Default routing key (`AMQP_ROUTING_KEY`).
pub const DEFAULT_ROUTING_KEY: &str = "checkout.processed";
/// Default stock-service queue (`AMQP_QUEUE`).
pub const DEFAULT_QUEUE: &str = "stock-queue";
/// Deliveries of one message (the first included) before the broker
/// dead-letters it: the work queue's `x-delivery-limit`.
pub const DELIVERY_LIMIT: i32 = 5;
/// The header a dead letter carries its reason in.
pub const DEATH_REASON_HEADER: &str = "x-death-reason";
/// The header holding the publish time, in milliseconds since the Unix
/// epoch (a signed 64-bit integer): the start of the order's end-to-end lag.
/// The AMQP `timestamp` property says the same in whole seconds, too coarse
/// for a lag of a few milliseconds.
pub const PUBLISHED_AT_HEADER: &str = "x-published-at-ms";
/// The AMQP `app_id` property checkout-service publishes with.
pub const PUBLISHER_APP_ID: &str = "checkout-service";
/// `content_type` property of every message.
pub const CONTENT_TYPE: &str = "application/json";
/// The schema version this code writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The dead-letter exchange of `exchange`: `<exchange>.dlx`.
pub fn dead_letter_exchange(exchange: &str) -> String {
    format!("{exchange}.dlx")
}

/// The dead-letter queue of `queue`, which is also its routing key:
/// `<queue>.dead`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead")
}

/// One line of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Catalog item id.
    pub id: i32,
    /// Units ordered (at least 1).
    pub quantity: i32,
}

/// A priced, accepted order, published once the checkout succeeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutProcessed {
    /// Always [`SCHEMA_VERSION`] when written by this code.
    pub schema_version: u32,
    /// The order id; also the AMQP `message_id` and the idempotency key
    /// stock-service applies the order under.
    pub order_id: Uuid,
    /// What was ordered.
    pub items: Vec<OrderLine>,
    /// The price of the order.
    pub total_amount: i64,
}

/// Why a message body cannot be processed. Each is permanent: retrying the
/// same bytes gives the same answer, so such a message is dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or missing/mistyped fields.
    #[error("malformed body: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A schema version this consumer does not know.
    #[error("unsupported schemaVersion {0} (this consumer reads {SCHEMA_VERSION})")]
    UnsupportedVersion(u32),
    /// Well-formed, but not a valid order.
    #[error("invalid order: {0}")]
    Invalid(&'static str),
}

impl CheckoutProcessed {
    /// A version-[`SCHEMA_VERSION`] message.
    pub fn new(order_id: Uuid, items: Vec<OrderLine>, total_amount: i64) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            order_id,
            items,
            total_amount,
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain fields into a Vec cannot fail; an empty body
        // would be dead-lettered as malformed, never misread.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Version {
            schema_version: u32,
        }
        let version: Version = serde_json::from_slice(body)?;
        if version.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(version.schema_version));
        }
        let message: Self = serde_json::from_slice(body)?;
        if message.items.is_empty() {
            return Err(DecodeError::Invalid("no items"));
        }
        if message.items.len() > crate::limits::MAX_LINE_ITEMS {
            return Err(DecodeError::Invalid("too many lines"));
        }
        if message.items.iter().any(|line| line.quantity < 1) {
            return Err(DecodeError::Invalid("quantity below 1"));
        }
        if message
            .items
            .iter()
            .any(|line| line.quantity > crate::limits::MAX_QUANTITY)
        {
            return Err(DecodeError::Invalid("quantity above the limit"));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_camel_case_keys() {
        let message =
            CheckoutProcessed::new(Uuid::nil(), vec![OrderLine { id: 1, quantity: 2 }], 200);
        let json: serde_json::Value = serde_json::from_slice(&message.to_json()).unwrap();
        assert_eq!(json["orderId"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["totalAmount"], 200);
        assert_eq!(
            CheckoutProcessed::decode(&message.to_json()).unwrap(),
            message
        );
    }

    #[test]
    fn rejects_what_it_cannot_apply() {
        assert!(matches!(
            CheckoutProcessed::decode(b"not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            CheckoutProcessed::decode(br#"{"schemaVersion":2}"#),
            Err(DecodeError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            CheckoutProcessed::decode(br#"{"schemaVersion":1,"orderId":"x"}"#),
            Err(DecodeError::Malformed(_))
        ));
        let empty = br#"{"schemaVersion":1,"orderId":"00000000-0000-0000-0000-000000000000","items":[],"totalAmount":0}"#;
        assert!(matches!(
            CheckoutProcessed::decode(empty),
            Err(DecodeError::Invalid(_))
        ));
    }
}
