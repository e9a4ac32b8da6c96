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
//! # Request fingerprint
//!
//! A message of a checkout that carried an idempotency key also carries
//! [`request_fingerprint`] of the client and the key: a hash of what the
//! client sent, independent of any server secret. The order id is derived
//! from the same pair under checkout-service's key, which may differ between
//! replicas or across a restart; the fingerprint does not, so stock-service
//! recognizes a retry by it even when the retry got another order id.
//!
//! # Topology names
//!
//! The exchange, routing key and queue are configurable (their defaults are
//! below); the dead-letter names derive from them
//! ([`dead_letter_exchange`], [`dead_letter_queue`]). Every declarer must
//! use the same queue arguments ([`DELIVERY_LIMIT`] among them), or the
//! broker refuses the second declaration.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

/// The fingerprint of a checkout request with an idempotency key: SHA-256
/// of the client id and the key, each preceded by its length in bytes (a
/// 64-bit big-endian integer, so no two pairs make the same input), as 64
/// lowercase hex digits. `client` is `""` for the anonymous client.
///
/// It is not secret and needs no key: anyone who knows a client's
/// idempotency key can compute it, which is why it is never shown by an API,
/// only stored by stock-service beside the order.
pub fn request_fingerprint(client: &str, key: &str) -> String {
    let mut hash = Sha256::new();
    for part in [client, key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `raw` has the shape [`request_fingerprint`] gives.
fn is_fingerprint(raw: &str) -> bool {
    raw.len() == 64
        && raw
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
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
    /// [`request_fingerprint`] of the client and idempotency key the order
    /// came with; absent for a checkout without a key (its order id is
    /// random, so it has no retry to recognize) and in messages of
    /// publishers that predate the field. stock-service applies at most one
    /// order per fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
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
            request_fingerprint: None,
        }
    }

    /// The same message, carrying `fingerprint` (see [`request_fingerprint`]).
    pub fn with_request_fingerprint(mut self, fingerprint: String) -> Self {
        self.request_fingerprint = Some(fingerprint);
        self
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
        if message
            .request_fingerprint
            .as_deref()
            .is_some_and(|fingerprint| !is_fingerprint(fingerprint))
        {
            return Err(DecodeError::Invalid(
                "requestFingerprint is not 64 hex digits",
            ));
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
    fn the_fingerprint_is_of_the_client_and_key_only() {
        let fingerprint = request_fingerprint("shop", "order-42");
        assert!(is_fingerprint(&fingerprint), "{fingerprint}");
        assert_eq!(fingerprint, request_fingerprint("shop", "order-42"));
        assert_ne!(fingerprint, request_fingerprint("app", "order-42"));
        assert_ne!(fingerprint, request_fingerprint("", "order-42"));
        assert_ne!(fingerprint, request_fingerprint("shop", "order-43"));
        // The boundary between client and key is part of the input.
        assert_ne!(
            request_fingerprint("ab", "c"),
            request_fingerprint("a", "bc")
        );
        // A fixed value, so that publishers built from other versions of
        // this code agree: SHA-256 of 0u64 ‖ 0u64 (the anonymous client, an
        // empty key).
        assert_eq!(
            request_fingerprint("", ""),
            "374708fff7719dd5979ec875d56cd2286f6d3cf7ec317a3b25632aab28ec37bb"
        );
    }

    #[test]
    fn the_fingerprint_travels_and_is_optional() {
        let plain = CheckoutProcessed::new(Uuid::nil(), vec![OrderLine { id: 1, quantity: 1 }], 1);
        let json: serde_json::Value = serde_json::from_slice(&plain.to_json()).unwrap();
        assert!(json.get("requestFingerprint").is_none(), "{json}");
        let keyed = plain.with_request_fingerprint(request_fingerprint("", "k"));
        let json: serde_json::Value = serde_json::from_slice(&keyed.to_json()).unwrap();
        assert_eq!(json["requestFingerprint"], request_fingerprint("", "k"));
        assert_eq!(CheckoutProcessed::decode(&keyed.to_json()).unwrap(), keyed);
        let bad = br#"{"schemaVersion":1,"orderId":"00000000-0000-0000-0000-000000000000","items":[{"id":1,"quantity":1}],"totalAmount":1,"requestFingerprint":"x"}"#;
        assert!(matches!(
            CheckoutProcessed::decode(bad),
            Err(DecodeError::Invalid(_))
        ));
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
