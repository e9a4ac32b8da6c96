//! API keys: who is calling `POST /api/checkout`.
//!
//! An `Idempotency-Key` is scoped to the client that sent it (checkout-service
//! derives the order id from the pair), so the gateway must know who the
//! client is. With `API_KEYS` set (`client=key,…`), a checkout needs
//! `Authorization: Bearer <key>` ([`API_KEY_HEADER`]); a missing or unknown
//! key is a 401 `unauthorized` with `WWW-Authenticate`, and the key's client
//! id travels to checkout-service in the gRPC request. Without `API_KEYS` no
//! key is asked for and every caller is the same anonymous client: an
//! idempotency key is then shared by the whole deployment.
//!
//! The presented key is compared with every configured key in constant time
//! (`subtle`), and the loop does not stop at a match, so the time taken tells
//! an attacker neither how much of a key was right nor which key matched (only,
//! as with any such comparison, whether the lengths differ). Keys are secrets:
//! they are never logged, and a bad `API_KEYS` is reported without its value.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use contracts::{
    error::ApiError,
    http::{API_KEY_HEADER, API_KEY_SCHEME},
    limits::{MAX_CLIENT_ID_LEN, check_client_id},
};
use service::secret::{Secret, bearer_credential};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// The shortest API key accepted: a key is a password nobody types, so it
/// should be long and random (`openssl rand -hex 32` gives 64 characters).
pub const MIN_API_KEY_LEN: usize = 16;
/// The longest API key accepted.
pub const MAX_API_KEY_LEN: usize = 256;

/// The configured clients and their keys. A client may have several keys
/// (to rotate one without downtime); a key belongs to one client.
#[derive(Clone, Debug)]
pub struct ApiKeys {
    entries: Arc<[(String, Secret)]>,
}

impl ApiKeys {
    /// Parses `API_KEYS`: `client=key,client=key,…`. A client id follows
    /// [`check_client_id`]; a key is [`MIN_API_KEY_LEN`] to
    /// [`MAX_API_KEY_LEN`] printable ASCII characters other than `,` (it may
    /// contain `=`: only the first `=` of an entry separates). No error
    /// quotes a key.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut entries: Vec<(String, Secret)> = Vec::new();
        for (index, entry) in raw.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            let Some((client, key)) = entry.split_once('=') else {
                return Err(format!("entry {position} is not client=key"));
            };
            let (client, key) = (client.trim(), key.trim());
            check_client_id(client).map_err(|_| {
                format!(
                    "entry {position}: a client id must be 1 to {MAX_CLIENT_ID_LEN} printable ASCII characters"
                )
            })?;
            let printable = key.bytes().all(|b| b.is_ascii_graphic());
            if !(MIN_API_KEY_LEN..=MAX_API_KEY_LEN).contains(&key.len()) || !printable {
                return Err(format!(
                    "the key of client {client} must be {MIN_API_KEY_LEN} to {MAX_API_KEY_LEN} printable ASCII characters"
                ));
            }
            if entries.iter().any(|(_, seen)| seen.expose() == key) {
                return Err(format!(
                    "the key of client {client} (entry {position}) is used twice: a key must name one client"
                ));
            }
            entries.push((client.to_owned(), Secret::new(key)));
        }
        Ok(Self {
            entries: entries.into(),
        })
    }

    /// How many distinct clients have a key.
    pub fn clients(&self) -> usize {
        let mut clients: Vec<&str> = self.entries.iter().map(|(c, _)| c.as_str()).collect();
        clients.sort_unstable();
        clients.dedup();
        clients.len()
    }

    /// The client whose key is `presented`, if any. Every configured key is
    /// compared, each in constant time.
    pub fn client_of(&self, presented: &[u8]) -> Option<&str> {
        // 0: no match; i + 1: the i-th entry.
        let mut matched = 0u64;
        for (index, (_, key)) in (1u64..).zip(self.entries.iter()) {
            let equal = key.expose().as_bytes().ct_eq(presented);
            matched.conditional_assign(&index, equal);
        }
        let index = usize::try_from(matched.checked_sub(1)?).ok()?;
        self.entries.get(index).map(|(client, _)| client.as_str())
    }
}

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Client {
    /// No API keys are configured: every caller is this one client.
    Anonymous,
    /// The client whose API key the request carried.
    Identified(String),
}

impl Client {
    /// The client id as the gRPC request carries it (empty: anonymous).
    pub fn grpc_id(&self) -> &str {
        match self {
            Self::Anonymous => "",
            Self::Identified(client) => client,
        }
    }
}

/// Authenticates a request by its API key, when API keys are configured.
/// Any router state that holds the keys will do: it names them with
/// `FromRef` (the gateway's is [`AppState`](crate::state::AppState)).
impl<S> FromRequestParts<S> for Client
where
    S: Send + Sync,
    Option<ApiKeys>: FromRef<S>,
{
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(keys) = Option::<ApiKeys>::from_ref(state) else {
            return Ok(Self::Anonymous);
        };
        let Some(value) = parts.headers.get(API_KEY_HEADER) else {
            return Err(Unauthorized::Missing);
        };
        let key = bearer_credential(value.as_bytes()).ok_or(Unauthorized::Invalid)?;
        keys.client_of(key)
            .map(|client| Self::Identified(client.to_owned()))
            .ok_or(Unauthorized::Invalid)
    }
}

/// Why a request was refused: 401 `unauthorized`, with the
/// `WWW-Authenticate` challenge RFC 6750 describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthorized {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not a known key.
    Invalid,
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let (message, challenge) = match self {
            Self::Missing => (
                format!("an API key is required: send `Authorization: {API_KEY_SCHEME} <key>`"),
                format!(r#"{API_KEY_SCHEME} realm="checkout""#),
            ),
            Self::Invalid => (
                "the API key is not valid".to_owned(),
                format!(r#"{API_KEY_SCHEME} realm="checkout", error="invalid_token""#),
            ),
        };
        let mut response = ApiError::unauthorized(message).into_response();
        if let Ok(challenge) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "shop-key-0123456789";
    const APP: &str = "app-key-0123456789==";

    #[test]
    fn keys_name_their_clients() {
        let keys = ApiKeys::parse(&format!(
            "shop={SHOP}, app={APP},shop=rotated-key-0123456789"
        ))
        .unwrap();
        assert_eq!(keys.client_of(SHOP.as_bytes()), Some("shop"));
        assert_eq!(keys.client_of(APP.as_bytes()), Some("app"));
        assert_eq!(
            keys.client_of(b"rotated-key-0123456789"),
            Some("shop"),
            "a client may have two keys"
        );
        assert_eq!(keys.client_of(b"shop-key-012345678"), None);
        assert_eq!(keys.client_of(b""), None);
    }

    #[test]
    fn bad_api_keys_are_refused_without_quoting_a_key() {
        for bad in [
            "",
            "shop",
            &format!("={SHOP}"),
            &format!("two words={SHOP}"),
            "shop=short",
            &format!("shop={SHOP} x"),
            &format!("shop={SHOP},app={SHOP}"),
            &format!("shop={SHOP},"),
        ] {
            let error = ApiKeys::parse(bad).unwrap_err();
            assert!(!error.contains(SHOP) && !error.contains("short"), "{error}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let token = |raw: &'static str| bearer_credential(raw.as_bytes()).map(<[u8]>::to_vec);
        assert_eq!(token("Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(token("bearer  abc "), Some(b"abc".to_vec()));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearerabc"), None);
        assert_eq!(token("Bear"), None);
    }

    #[test]
    fn the_debug_form_hides_the_keys() {
        let keys = ApiKeys::parse(&format!("shop={SHOP}")).unwrap();
        let printed = format!("{keys:?}");
        assert!(
            printed.contains("shop") && !printed.contains(SHOP),
            "{printed}"
        );
    }
}
