//! What makes a retried checkout the same order: its order id, derived from
//! the client and its `Idempotency-Key` with a server secret, and the cache
//! of recent keys that catches a key reused with another cart.
//!
//! # Order ids
//!
//! The order id is the first 16 bytes of HMAC-SHA256(`ORDER_ID_SECRET`,
//! client id ‖ key), formatted as a UUID v8 (RFC 9562's version for custom
//! ids, version and variant bits set), so the rest of the pipeline keeps its
//! UUID order ids. It is keyed for two reasons:
//!
//! - the client is part of the input, so two clients that happen to use the
//!   same key and cart get two orders, instead of the second one silently
//!   getting the first one's order id (and no order of its own);
//! - the secret is part of the key, so nobody outside can compute the order
//!   id of someone else's key and read that order from stock-service's
//!   `GET /api/orders/{id}` (a hash of the key alone, such as a UUID v5 in a
//!   namespace written in the source, can be computed by anyone).
//!
//! A retry gets the same order id only from a replica with the same
//! secret: set one on every replica (or share one key file,
//! [`crate::key_file`]) and keep it across restarts. A retry that reaches
//! another secret gets another order id; it is still never applied twice,
//! because the message also carries the secret-independent fingerprint of
//! the client and the key ([`contracts::amqp::request_fingerprint`]), by
//! which stock-service recognizes it and records the second order id as a
//! duplicate of the first.
//!
//! # Recent keys
//!
//! [`RecentKeys`] remembers the cart of each recent (client, key) pair, to
//! answer a key reused with a *different* cart with an error rather than
//! silently dropping the second cart. It is bounded in bytes, not entries,
//! because a key is up to 255 bytes and a cart up to 100 lines: a bound in
//! entries would let the memory it takes vary by two orders of magnitude
//! with what clients send. When it is full the least recently used entry
//! goes: a retry comes soon after the first attempt, so the newest keys are
//! the ones worth keeping (moka's default, TinyLFU, may refuse to admit a
//! key seen once, which is every new key here). The check is per instance and
//! best effort; the exactly-once stock guarantee does not depend on it.

use std::time::Duration;

use contracts::amqp::OrderLine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The shortest `ORDER_ID_SECRET` accepted: 32 bytes, the output size of
/// SHA-256, which RFC 2104 gives as the least an HMAC key should have.
pub const MIN_SECRET_LEN: usize = 32;

/// How long a recent key is remembered.
const RECENT_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The key of order ids: HMAC-SHA256 keyed with `ORDER_ID_SECRET`.
#[derive(Clone)]
pub struct OrderIdSecret {
    mac: Hmac<Sha256>,
}

impl OrderIdSecret {
    /// Parses `ORDER_ID_SECRET`: at least [`MIN_SECRET_LEN`] bytes, used as
    /// they are (say 64 hex digits from `openssl rand -hex 32`). The error
    /// never quotes the value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() < MIN_SECRET_LEN {
            return Err(format!(
                "expected at least {MIN_SECRET_LEN} bytes (for example `openssl rand -hex 32`), got {}",
                raw.len()
            ));
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(raw.as_bytes())
            .map_err(|_| "not usable as an HMAC key".to_owned())?;
        Ok(Self { mac })
    }

    /// A secret of 64 random bytes (SHA-256's block, the longest key HMAC
    /// uses as it is), for a service started without `ORDER_ID_SECRET`.
    pub fn random() -> Self {
        let key: [u8; 64] = rand::random();
        Self {
            mac: <Hmac<Sha256> as KeyInit>::new(&key.into()),
        }
    }

    /// The order id of `key` sent by `client` (`""`: the anonymous client).
    /// The client id is length-prefixed so that no two (client, key) pairs
    /// make the same input.
    pub fn order_id(&self, client: &str, key: &str) -> Uuid {
        let mut mac = self.mac.clone();
        mac.update(&(client.len() as u64).to_be_bytes());
        mac.update(client.as_bytes());
        mac.update(key.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Uuid::new_v8(bytes)
    }
}

impl std::fmt::Debug for OrderIdSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OrderIdSecret(***)")
    }
}

/// The cart each recent (client, idempotency key) pair was first used with,
/// bounded in bytes (see the module documentation).
#[derive(Clone)]
pub struct RecentKeys {
    carts: moka::sync::Cache<(String, String), Vec<OrderLine>>,
}

impl RecentKeys {
    /// A cache holding at most about `max_bytes` of keys and carts, each
    /// for a day.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            carts: moka::sync::Cache::builder()
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .weigher(weight)
                .max_capacity(max_bytes)
                .time_to_live(RECENT_KEY_TTL)
                .build(),
        }
    }

    /// Remembers `cart` for (`client`, `key`) unless a cart is remembered
    /// already; returns whether the remembered cart is `cart`.
    pub fn same_cart(&self, client: &str, key: &str, cart: &[OrderLine]) -> bool {
        let first = self
            .carts
            .get_with((client.to_owned(), key.to_owned()), || cart.to_vec());
        first == cart
    }
}

/// The bytes one entry holds: the two strings and the cart, and the fixed
/// size of their headers: 128 for a typical entry (a UUID key, a short
/// client id, two lines), 1,191 for the largest (a 64-byte client id, a
/// 255-byte key, 100 lines). moka's own bookkeeping per entry, a fixed
/// amount, is not counted: the bound is on what clients can make us keep.
fn weight((client, key): &(String, String), cart: &Vec<OrderLine>) -> u32 {
    let bytes = size_of::<(String, String)>()
        + client.len()
        + key.len()
        + size_of::<Vec<OrderLine>>()
        + size_of_val(cart.as_slice());
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use contracts::limits::{MAX_CLIENT_ID_LEN, MAX_IDEMPOTENCY_KEY_LEN, MAX_LINE_ITEMS};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    const OTHER_SECRET: &str = "fedcba9876543210fedcba9876543210-test";

    fn secret(raw: &str) -> OrderIdSecret {
        OrderIdSecret::parse(raw).unwrap()
    }

    #[test]
    fn the_same_client_and_key_make_the_same_order_id() {
        let id = secret(SECRET).order_id("shop", "order-42");
        assert_eq!(id, secret(SECRET).order_id("shop", "order-42"));
        assert_eq!(id.get_version(), Some(uuid::Version::Custom));
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn another_client_key_or_secret_makes_another_order_id() {
        let id = secret(SECRET).order_id("shop", "order-42");
        assert_ne!(id, secret(SECRET).order_id("app", "order-42"));
        assert_ne!(id, secret(SECRET).order_id("", "order-42"));
        assert_ne!(id, secret(SECRET).order_id("shop", "order-43"));
        assert_ne!(id, secret(OTHER_SECRET).order_id("shop", "order-42"));
        // The boundary between client and key is part of the input.
        assert_ne!(
            secret(SECRET).order_id("ab", "c"),
            secret(SECRET).order_id("a", "bc")
        );
    }

    #[test]
    fn order_ids_are_not_the_old_public_uuid_v5() {
        // The namespace order ids used to be derived in, without a secret:
        // anyone could compute the order id of any key.
        let old_namespace = Uuid::from_u128(0x6f1c_2a7e_58d4_4b0e_9a51_0c3e_8e7d_2b91);
        for client in ["", "shop"] {
            let id = secret(SECRET).order_id(client, "order-42");
            assert_ne!(id, Uuid::new_v5(&old_namespace, b"order-42"));
            assert_ne!(id.get_version(), Some(uuid::Version::Sha1));
        }
    }

    #[test]
    fn random_secrets_differ() {
        let (one, two) = (OrderIdSecret::random(), OrderIdSecret::random());
        assert_ne!(one.order_id("", "k"), two.order_id("", "k"));
    }

    #[test]
    fn a_short_secret_is_refused_without_quoting_it() {
        let error = OrderIdSecret::parse("too-short-secret").unwrap_err();
        assert!(error.contains("at least 32"), "{error}");
        assert!(!error.contains("too-short-secret"), "{error}");
        assert_eq!(format!("{:?}", secret(SECRET)), "OrderIdSecret(***)");
    }

    fn cart(lines: usize) -> Vec<OrderLine> {
        (1..=lines)
            .map(|id| OrderLine {
                id: i32::try_from(id).unwrap(),
                quantity: 1,
            })
            .collect()
    }

    #[test]
    fn a_key_is_scoped_to_its_client() {
        let recent = RecentKeys::new(1 << 20);
        assert!(recent.same_cart("shop", "k", &cart(1)));
        assert!(recent.same_cart("shop", "k", &cart(1)));
        assert!(!recent.same_cart("shop", "k", &cart(2)), "reused key");
        assert!(recent.same_cart("app", "k", &cart(2)), "another client");
    }

    #[test]
    fn entries_weigh_their_keys_and_carts() {
        let small = weight(&("shop".into(), "k".into()), &cart(1));
        let large = weight(
            &(
                "c".repeat(MAX_CLIENT_ID_LEN),
                "k".repeat(MAX_IDEMPOTENCY_KEY_LEN),
            ),
            &cart(MAX_LINE_ITEMS),
        );
        let fixed = size_of::<(String, String)>() + size_of::<Vec<OrderLine>>();
        assert_eq!(small as usize, fixed + 5 + 8);
        assert_eq!(
            large as usize,
            fixed + MAX_CLIENT_ID_LEN + MAX_IDEMPOTENCY_KEY_LEN + 8 * MAX_LINE_ITEMS
        );
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let entry = weight(&("shop".into(), "key-0000".into()), &cart(MAX_LINE_ITEMS));
        let recent = RecentKeys::new(u64::from(entry) * 10);
        for index in 0..1_000 {
            recent.same_cart("shop", &format!("key-{index:04}"), &cart(MAX_LINE_ITEMS));
        }
        recent.carts.run_pending_tasks();
        assert!(
            recent.carts.weighted_size() <= u64::from(entry) * 10,
            "{} bytes held",
            recent.carts.weighted_size()
        );
        assert!(recent.carts.entry_count() <= 10);
    }
}
