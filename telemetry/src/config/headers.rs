//! `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS`:
//! the headers sent with every OTLP export (a collector's API key, say).
//!
//! The specification's format: `key=value` pairs, comma-separated, values
//! `%`-encoded. They are resolved here, once, with the other settings, and
//! given to the exporters and to the gateway's span relay, so that both send
//! the same. (The OTLP exporter also reads the variables itself and merges
//! them in, with the same result.) The values are secrets: `Debug` shows
//! the header names only, and a value that does not parse is reported
//! without it.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;

/// Parsed export headers, in the order given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OtlpHeaders(Vec<(HeaderName, HeaderValue)>);

impl OtlpHeaders {
    /// Parses `key=value,…`: the names must be valid header names and the
    /// decoded values valid header values. No error quotes a value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut headers = Vec::new();
        for (index, entry) in raw.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let position = index + 1;
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| format!("entry {position} is not key=value"))?;
            let name = HeaderName::try_from(name.trim())
                .map_err(|_| format!("entry {position} has an invalid header name"))?;
            let value = percent_decode_str(value.trim())
                .decode_utf8()
                .ok()
                .and_then(|value| HeaderValue::try_from(value.as_ref()).ok())
                .ok_or_else(|| format!("entry {position} has an invalid header value"))?;
            let mut value = value;
            value.set_sensitive(true);
            headers.push((name, value));
        }
        Ok(Self(headers))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As an HTTP header map (a name given twice: the last wins).
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.0.len());
        for (name, value) in &self.0 {
            map.insert(name.clone(), value.clone());
        }
        map
    }

    /// As the OTLP/HTTP exporter takes them.
    pub(crate) fn string_map(&self) -> HashMap<String, String> {
        self.0
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect()
    }
}

impl std::fmt::Debug for OtlpHeaders {
    /// The names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| format!("{name}: ***")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_specifications_format_and_hides_values() {
        let headers =
            OtlpHeaders::parse(" api-key = s3cr%3Dt , x-tenant=acme,, Authorization=Bearer%20t")
                .unwrap();
        let map = headers.header_map();
        assert_eq!(map["api-key"], "s3cr=t");
        assert_eq!(map["x-tenant"], "acme");
        assert_eq!(map["authorization"], "Bearer t");
        let shown = format!("{headers:?}");
        assert!(
            !shown.contains("s3cr") && shown.contains("api-key"),
            "{shown}"
        );
        assert!(OtlpHeaders::parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_entry_not_the_value() {
        for bad in ["novalue", "bad name=x", "k=line%0Abreak"] {
            let error = OtlpHeaders::parse(bad).unwrap_err();
            assert!(error.contains("entry 1"), "{error}");
            assert!(!error.contains("break"), "{error}");
        }
    }
}
