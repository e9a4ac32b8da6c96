//! One `POST /api/checkout` request, shared by `checkout send` and `checkout load`.
//!
//! Both commands start the trace themselves instead of letting the gateway do it: each
//! request carries a freshly generated W3C `traceparent`, so the caller knows the
//! trace id before the response arrives (and even when there is none). That is what
//! lets `send` print a Jaeger link for failed requests and `load` check every
//! request's trace. This module also parses the command-line forms of items
//! (`ID[:QTY]`) and baggage (`key=value`).

use std::fmt;
use std::str::FromStr;

use contracts::{
    error::ErrorBody,
    http::{CheckoutAccepted, CheckoutBody, LineItemBody},
};
use serde::{Deserialize, Serialize};

/// A cart line: `{"id": 1, "quantity": 2}` in the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Catalog item id.
    pub id: i32,
    /// Units (the gateway rejects quantities below 1; the CLI lets you try).
    pub quantity: i32,
}

impl FromStr for Item {
    type Err = String;

    /// Parses `ID` (one unit) or `ID:QTY`, e.g. `3` or `1:2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, quantity) = s.split_once(':').unwrap_or((s, "1"));
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<i32>()
                .map_err(|_| format!("invalid {what} in item {s:?}: expected ID or ID:QTY"))
        };
        Ok(Self {
            id: number(id, "id")?,
            quantity: number(quantity, "quantity")?,
        })
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id, self.quantity)
    }
}

/// One W3C baggage entry, parsed from `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageEntry {
    /// The key: an HTTP token (letters, digits and ``!#$%&'*+-.^_`|~``).
    pub key: String,
    /// The value, unencoded; [`baggage_header`] percent-encodes it.
    pub value: String,
}

impl FromStr for BaggageEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("invalid baggage {s:?}: expected key=value"))?;
        let key = key.trim();
        let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if key.is_empty() || !key.chars().all(is_token_char) {
            return Err(format!(
                "invalid baggage key {key:?}: expected an HTTP token"
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.trim().to_owned(),
        })
    }
}

/// The `baggage` header value for `entries` (`k1=v1,k2=v2`), or `None` if there are none.
///
/// Values are percent-encoded outside the W3C `baggage-octet` range (space, `"`, `,`,
/// `;`, `\`, controls and non-ASCII) and `%` itself, as the W3C Baggage spec requires.
pub fn baggage_header(entries: &[BaggageEntry]) -> Option<String> {
    use fmt::Write;
    let encode = |value: &str| {
        value.bytes().fold(String::new(), |mut out, byte| {
            match byte {
                b'!' | b'#'..=b'$' | b'&'..=b'+' | b'-'..=b':' | b'<'..=b'[' | b']'..=b'~' => {
                    out.push(char::from(byte));
                }
                _ => {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
            out
        })
    };
    (!entries.is_empty()).then(|| {
        entries
            .iter()
            .map(|entry| format!("{}={}", entry.key, encode(&entry.value)))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A W3C trace context for one request: random ids, sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits (16 random bytes, never all zero).
    pub trace_id: String,
    /// 16 lowercase hex digits (8 random bytes, never all zero): the caller's span,
    /// which becomes the parent of the gateway's server span.
    pub span_id: String,
}

impl TraceContext {
    /// Fresh random ids. All-zero ids are invalid in W3C Trace Context, so they are redrawn.
    pub fn random() -> Self {
        Self {
            trace_id: hex(&nonzero_random::<16>()),
            span_id: hex(&nonzero_random::<8>()),
        }
    }

    /// The `traceparent` header: version 00, flags 01 (sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// The `traceparent` header with flags 00 (not sampled): asks a service with a
    /// parent-based sampler to trace nothing of the request.
    pub fn traceparent_unsampled(&self) -> String {
        format!("00-{}-{}-00", self.trace_id, self.span_id)
    }
}

fn nonzero_random<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = rand::random();
        if bytes.iter().any(|&b| b != 0) {
            return bytes;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request body `{"items":[{"id":1,"quantity":2}]}`.
pub fn body(items: &[Item]) -> CheckoutBody {
    CheckoutBody {
        items: items
            .iter()
            .map(|item| LineItemBody {
                id: item.id,
                quantity: item.quantity,
            })
            .collect(),
        items_id: Vec::new(),
    }
}

/// The checkout URL for a gateway base URL such as `http://localhost:8081`.
pub fn checkout_url(gateway: &str) -> String {
    format!("{}/api/checkout", gateway.trim_end_matches('/'))
}

/// Builds the request: JSON body, `traceparent`, and `baggage` if given.
pub fn request(
    client: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
    trace: &TraceContext,
    baggage: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("traceparent", trace.traceparent())
        .body(body);
    match baggage {
        Some(baggage) => request.header("baggage", baggage),
        None => request,
    }
}

/// The gateway's answer, decoded with the contract's own types.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CheckoutResponse {
    /// `202 {"orderId":"…","totalAmount":N,"traceId":"…"}`.
    Accepted(CheckoutAccepted),
    /// `{"error":{"code":"…","message":"…"}}`.
    Rejected(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_with_and_without_quantity() {
        assert_eq!("3".parse(), Ok(Item { id: 3, quantity: 1 }));
        assert_eq!("1:2".parse(), Ok(Item { id: 1, quantity: 2 }));
        assert_eq!(" 7 : 0 ".parse(), Ok(Item { id: 7, quantity: 0 }));
        for bad in ["", "x", "1:", ":2", "1:2:3", "1.5", "99999999999"] {
            assert!(bad.parse::<Item>().is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn baggage_parses_key_value_and_encodes_the_value() {
        let entries: Vec<BaggageEntry> = ["tenant=acme", "note=hello world, 100%", "expr=a=b"]
            .iter()
            .map(|s| s.parse().expect("valid baggage"))
            .collect();
        assert_eq!(entries[2].value, "a=b");
        assert_eq!(
            baggage_header(&entries).as_deref(),
            Some("tenant=acme,note=hello%20world%2C%20100%25,expr=a=b")
        );
        assert_eq!(baggage_header(&[]), None);
        for bad in ["novalue", "=v", "bad key=v", "k;x=v"] {
            assert!(
                bad.parse::<BaggageEntry>().is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn traceparent_is_w3c_shaped() {
        let trace = TraceContext::random();
        let traceparent = trace.traceparent();
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert_eq!(parts[3], "01");
        assert!(
            parts[1..3]
                .iter()
                .all(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        assert!(parts[1..3].iter().all(|id| id.bytes().any(|b| b != b'0')));
        assert_ne!(TraceContext::random().trace_id, trace.trace_id);
    }

    #[test]
    fn responses_decode_both_shapes() {
        let accepted: CheckoutResponse =
            serde_json::from_str(r#"{"orderId":"o-1","totalAmount":599,"traceId":"ab"}"#)
                .expect("accepted");
        assert_eq!(
            accepted,
            CheckoutResponse::Accepted(CheckoutAccepted {
                order_id: "o-1".into(),
                total_amount: 599,
                trace_id: "ab".into()
            })
        );
        let rejected: CheckoutResponse =
            serde_json::from_str(r#"{"error":{"code":"unknown_item","message":"no item 9"}}"#)
                .expect("rejected");
        assert!(
            matches!(rejected, CheckoutResponse::Rejected(body) if body.error.code == "unknown_item")
        );
    }
}
