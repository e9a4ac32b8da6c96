//! The bounds of a checkout, shared by every hop.
//!
//! The gateway enforces all of them at the edge, so a client hears about a
//! bad request without a gRPC hop; checkout-service enforces them again with
//! the same constants, because gRPC callers need not come through the
//! gateway.

/// Largest HTTP request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most line items one checkout may carry, and the most distinct items.
pub const MAX_LINE_ITEMS: usize = 100;

/// The most units of one item a checkout may ask for (summed over its lines).
pub const MAX_QUANTITY: i32 = 1_000;

/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The longest client id (the name an API key is configured under, passed
/// from the gateway to checkout-service) accepted.
pub const MAX_CLIENT_ID_LEN: usize = 64;

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
    use super::*;

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
