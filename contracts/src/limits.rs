//! The bounds of a checkout, shared by every hop, and those of the spans a
//! browser may hand the gateway's relay.
//!
//! The gateway enforces all of them at the edge, so a client hears about a
//! bad request without a gRPC hop; checkout-service enforces the checkout's
//! again with the same constants, because gRPC callers need not come
//! through the gateway.
//!
//! The relay's (`POST /v1/traces`, the storefront page's OTLP exporter) are
//! generous for a page that exports a few spans per click in batches, and
//! small enough that no browser makes the gateway buffer, decode or forward
//! much: [`MAX_RELAY_BODY_BYTES`], [`MAX_RELAY_SPANS`], and per span
//! [`MAX_RELAY_SPAN_ATTRIBUTES`], [`MAX_RELAY_SPAN_EVENTS`] and
//! [`MAX_RELAY_SPAN_LINKS`] (what is past those is dropped and counted in
//! the span's `dropped_*_count`, as an SDK does). Their rate is the
//! gateway's `TRACE_RELAY_RATE_LIMIT` setting.

/// Largest HTTP request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest gRPC message checkout-service decodes or encodes, in bytes (the
/// server's `max_decoding_message_size`; tonic's default is 4 MiB).
///
/// Why this bound is safe for any valid request: a `CheckoutRequest` holds
/// at most [`MAX_LINE_ITEMS`] lines, each a few bytes of protobuf (an id
/// alone at most 10, a line item with its quantity at most 24: tags, a
/// length and two varints), and an idempotency key of at most
/// [`MAX_IDEMPOTENCY_KEY_LEN`] bytes plus 3 of framing. Even with both forms
/// full and the widest varints that is under 4 KB; a real full cart is
/// ~1.5 KB. The HTTP body's bound leaves more than ten times that, and
/// anything the gateway accepts fits, since the protobuf is smaller than the
/// JSON it came from. What it refuses is what a gRPC caller could otherwise
/// make the service buffer: 4 MiB per call, times every call in flight.
pub const MAX_GRPC_MESSAGE_BYTES: usize = MAX_BODY_BYTES;

/// The most line items one checkout may carry, and the most distinct items.
pub const MAX_LINE_ITEMS: usize = 100;

/// The most units of one item a checkout may ask for (summed over its lines).
pub const MAX_QUANTITY: i32 = 1_000;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The longest client id (the name an API key is configured under, passed
/// from the gateway to checkout-service) accepted.
pub const MAX_CLIENT_ID_LEN: usize = 64;

/// Largest OTLP export request body the relay reads, in bytes (a 413
/// past it). The page's batches are a few KiB.
pub const MAX_RELAY_BODY_BYTES: usize = 256 * 1024;

/// The most spans one export request to the relay may carry (a 413 past it:
/// the request is too large, though under the byte limit, and the exporter
/// should send smaller batches; the OpenTelemetry JS SDK's default batch is
/// 512).
pub const MAX_RELAY_SPANS: usize = 512;

/// The most attributes the relay forwards per span, per event and per link,
/// and on the resource; the rest are dropped and counted.
pub const MAX_RELAY_SPAN_ATTRIBUTES: usize = 128;

/// The most events the relay forwards per span; the rest are dropped and
/// counted.
pub const MAX_RELAY_SPAN_EVENTS: usize = 128;

/// The most links the relay forwards per span; the rest are dropped and
/// counted.
pub const MAX_RELAY_SPAN_LINKS: usize = 128;

/// 1 to `max` printable ASCII characters: no spaces, no control characters,
/// nothing a log line or a header could be confused by.
fn short_printable_ascii(text: &str, max: usize) -> bool {
    (1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] printable
/// ASCII characters (no spaces or control characters).
pub fn check_idempotency_key(key: &str) -> Result<(), InvalidIdempotencyKey> {
    if short_printable_ascii(key, MAX_IDEMPOTENCY_KEY_LEN) {
        Ok(())
    } else {
        Err(InvalidIdempotencyKey)
    }
}

/// An idempotency key that breaks the rule of [`check_idempotency_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters")]
pub struct InvalidIdempotencyKey;

/// Checks a client id: 1 to [`MAX_CLIENT_ID_LEN`] printable ASCII
/// characters, the rule of idempotency keys with a shorter limit. (An empty
/// client id on the gRPC request is the anonymous client, not checked here.)
pub fn check_client_id(client: &str) -> Result<(), InvalidClientId> {
    if short_printable_ascii(client, MAX_CLIENT_ID_LEN) {
        Ok(())
    } else {
        Err(InvalidClientId)
    }
}

/// A client id that breaks the rule of [`check_client_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a client id must be 1 to {MAX_CLIENT_ID_LEN} printable ASCII characters")]
pub struct InvalidClientId;

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::grpc::{CheckoutRequest, LineItem};

    #[test]
    fn the_largest_valid_request_fits_the_grpc_limit_with_room() {
        // Worst case: every line in both forms, with the widest varints
        // (negative ids and quantities take 10 bytes each), the longest key
        // and the longest client id.
        let request = CheckoutRequest {
            items_id: vec![i32::MIN; MAX_LINE_ITEMS],
            items: vec![
                LineItem {
                    id: i32::MIN,
                    quantity: i32::MIN,
                };
                MAX_LINE_ITEMS
            ],
            idempotency_key: "k".repeat(MAX_IDEMPOTENCY_KEY_LEN),
            client_id: "c".repeat(MAX_CLIENT_ID_LEN),
            idempotency_key_generated: true,
        };
        let encoded = request.encoded_len();
        assert!(encoded * 10 < MAX_GRPC_MESSAGE_BYTES, "{encoded} bytes");
    }

    #[test]
    fn idempotency_keys_are_short_printable_ascii() {
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(check_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY_LEN)).is_ok());
        for bad in [
            String::new(),
            "k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1),
            "with space".to_owned(),
            "tab\t".to_owned(),
            "é".to_owned(),
        ] {
            assert_eq!(check_idempotency_key(&bad), Err(InvalidIdempotencyKey));
        }
    }

    #[test]
    fn client_ids_are_shorter_printable_ascii() {
        assert!(check_client_id("shop-eu").is_ok());
        assert!(check_client_id(&"c".repeat(MAX_CLIENT_ID_LEN)).is_ok());
        for bad in [
            String::new(),
            "c".repeat(MAX_CLIENT_ID_LEN + 1),
            "two words".to_owned(),
            "nul\0".to_owned(),
            "ü".to_owned(),
        ] {
            assert_eq!(check_client_id(&bad), Err(InvalidClientId));
        }
    }
}
