//! The storefront page and its assets, built into the binary: `GET /`,
//! `/assets/app.js`, `/assets/app.css`.
//!
//! The files come from `gateway/assets/` (built by `scripts/build-web`)
//! with `include_bytes!`: the gateway serves the page offline, from one
//! binary, with no file to deploy beside it and no CDN. No crate is needed
//! for three files.
//!
//! Every answer carries [`CONTENT_SECURITY_POLICY`] (scripts, styles and
//! connections from the gateway's own origin only; no inline script, no
//! framing, no form posting anywhere), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer`, and an `ETag` hashed from the content at
//! compile time with `Cache-Control: no-cache`: the browser keeps a copy
//! and asks each time whether it is still current, and a matching
//! `If-None-Match` gets a 304 without the body.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The headers every storefront answer carries (the page, its assets,
/// `/config.json`).
pub const SECURITY_HEADERS: [(HeaderName, &str); 3] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// One embedded file.
pub struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// The content's FNV-1a hash: the `ETag`.
    hash: u64,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str) -> Self {
        Self {
            body,
            content_type,
            hash: fnv1a(body),
        }
    }

    /// The `ETag`, a strong validator: the hash in quotes.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// The file, or a 304 if `request` already has this version.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let etag = self.etag();
        let current = request
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .map(str::trim)
                    .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
            });
        let mut response = if current {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            ([(header::CONTENT_TYPE, self.content_type)], self.body).into_response()
        };
        let headers = response.headers_mut();
        with_security_headers(headers);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

/// Adds [`SECURITY_HEADERS`] to `headers`.
pub fn with_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// `GET /`.
pub static INDEX: Asset = Asset::new(
    include_bytes!("../../assets/index.html"),
    "text/html; charset=utf-8",
);

/// `GET /assets/app.js`.
pub static APP_JS: Asset = Asset::new(
    include_bytes!("../../assets/app.js"),
    "text/javascript; charset=utf-8",
);

/// `GET /assets/app.css`.
pub static APP_CSS: Asset = Asset::new(
    include_bytes!("../../assets/app.css"),
    "text/css; charset=utf-8",
);

/// 64-bit FNV-1a, at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_reference_hash() {
        // The FNV reference values.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_assets_have_distinct_etags() {
        assert_ne!(INDEX.etag(), APP_JS.etag());
        assert_ne!(APP_JS.etag(), APP_CSS.etag());
    }
}
