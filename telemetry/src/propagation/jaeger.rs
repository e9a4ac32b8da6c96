//! The Jaeger propagation format (`OTEL_PROPAGATORS=jaeger`): the
//! `uber-trace-id` header, and one `uberctx-{key}` header per baggage entry.
//!
//! Jaeger's own clients (and the OpenTracing-era services still using them)
//! speak only this format. OpenTelemetry's Rust crate for it
//! (`opentelemetry-jaeger-propagator`) depends on a different `opentelemetry`
//! than the rest of the workspace, and it puts `uberctx-` entries in the trace
//! state rather than the baggage; the format is small, so it is written here.
//!
//! `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`, as
//! Jaeger's client documentation defines it:
//!
//! - trace id: 64 or 128 bits in hex, shorter values zero-padded on the left;
//!   zero is invalid;
//! - span id: 64 bits in hex (also padded); zero is invalid;
//! - parent span id: deprecated, ignored when read (but must be hex), written
//!   as `0`;
//! - flags: one byte in hex; bit 1 (`0x01`) sampled, bit 2 (`0x02`) debug,
//!   which Jaeger sets only together with sampled and which OpenTelemetry
//!   cannot carry: it reads as sampled.
//!
//! Some clients URL-encode the header (`%3A` for `:`), so it is decoded first.
//! Baggage values are URL-encoded strings. Anything malformed is ignored (the
//! context is left as it was), never an error: a peer's bad header must not
//! fail a request.

use std::borrow::Cow;

use opentelemetry::{
    Context,
    baggage::{Baggage, BaggageExt},
    propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The trace-identity header.
pub const TRACE_ID_HEADER: &str = "uber-trace-id";
/// The prefix of a baggage entry's header.
pub const BAGGAGE_PREFIX: &str = "uberctx-";

const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

/// Everything but RFC 3986's unreserved characters is encoded in a baggage
/// value, as JavaScript's `encodeURIComponent` (which Jaeger's Node client
/// uses) nearly does: the result is a valid header value in every carrier.
const BAGGAGE_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Reads and writes Jaeger's `uber-trace-id` and `uberctx-*` headers.
#[derive(Clone, Debug)]
pub struct JaegerPropagator {
    fields: [String; 1],
}

impl Default for JaegerPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl JaegerPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self {
            fields: [TRACE_ID_HEADER.to_owned()],
        }
    }
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            let flags = if span_context.is_sampled() {
                FLAG_SAMPLED
            } else {
                0
            };
            injector.set(
                TRACE_ID_HEADER,
                format!(
                    "{}:{}:0:{flags:02x}",
                    span_context.trace_id(),
                    span_context.span_id()
                ),
            );
        }
        for (key, (value, _metadata)) in cx.baggage() {
            injector.set(
                &format!("{BAGGAGE_PREFIX}{key}"),
                utf8_percent_encode(value.as_str(), BAGGAGE_VALUE).to_string(),
            );
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut cx = match extractor.get(TRACE_ID_HEADER).and_then(parse_trace_header) {
            Some(span_context) => cx.with_remote_span_context(span_context),
            None => cx.clone(),
        };
        let entries = baggage_entries(extractor);
        if !entries.is_empty() {
            // Added to what an earlier propagator (W3C baggage) found, not
            // in place of it.
            let mut baggage = Baggage::new();
            for (key, (value, metadata)) in cx.baggage() {
                baggage.insert_with_metadata(key.clone(), value.clone(), metadata.clone());
            }
            for (key, value) in entries {
                baggage.insert(key, value);
            }
            cx = cx.with_baggage(baggage);
        }
        cx
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// The span context of an `uber-trace-id` value, if it is well formed.
fn parse_trace_header(raw: &str) -> Option<SpanContext> {
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    let mut parts = decoded.split(':');
    let (trace_id, span_id, parent_span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from(hex_number(trace_id, 32)?);
    let span_id = SpanId::from(u64::try_from(hex_number(span_id, 16)?).ok()?);
    hex_number(parent_span_id, 16)?;
    let flags = u8::try_from(hex_number(flags, 2)?).ok()?;
    let sampled = flags & (FLAG_SAMPLED | FLAG_DEBUG) != 0;
    let span_context = SpanContext::new(
        trace_id,
        span_id,
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    span_context.is_valid().then_some(span_context)
}

/// `raw` as a number, if it is 1 to `max_digits` hex digits (a sign or any
/// other character is refused, unlike `from_str_radix`).
fn hex_number(raw: &str, max_digits: usize) -> Option<u128> {
    if raw.is_empty() || raw.len() > max_digits || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(raw, 16).ok()
}

/// The baggage entries of the `uberctx-*` headers whose values decode.
fn baggage_entries(extractor: &dyn Extractor) -> Vec<(String, String)> {
    extractor
        .keys()
        .into_iter()
        .filter_map(|header| {
            let prefix = header.get(..BAGGAGE_PREFIX.len())?;
            let key = header.get(BAGGAGE_PREFIX.len()..)?;
            if !prefix.eq_ignore_ascii_case(BAGGAGE_PREFIX) || key.is_empty() {
                return None;
            }
            let value = percent_decode_str(extractor.get(header)?)
                .decode_utf8()
                .ok()?;
            Some((key.to_owned(), Cow::into_owned(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::KeyValue;

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN_ID: &str = "00f067aa0ba902b7";

    fn extract(headers: &[(&str, &str)]) -> Context {
        let carrier: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        JaegerPropagator::new().extract_with_context(&Context::new(), &carrier)
    }

    fn span_of(cx: &Context) -> SpanContext {
        cx.span().span_context().clone()
    }

    fn remote(trace_id: &str, span_id: &str, flags: TraceFlags) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex(trace_id).unwrap(),
            SpanId::from_hex(span_id).unwrap(),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn reads_the_documented_format() {
        let cases = [
            // 128-bit trace id, sampled.
            (
                format!("{TRACE_ID}:{SPAN_ID}:0:1"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED),
            ),
            // Flags as two hex digits; a parent span id is read and ignored.
            (
                format!("{TRACE_ID}:{SPAN_ID}:53ece9b0d2a6c3f1:01"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED),
            ),
            // Not sampled.
            (
                format!("{TRACE_ID}:{SPAN_ID}:0:0"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::default()),
            ),
            // Debug (with sampled, as Jaeger sends it, and alone) is sampled.
            (
                format!("{TRACE_ID}:{SPAN_ID}:0:3"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED),
            ),
            (
                format!("{TRACE_ID}:{SPAN_ID}:0:2"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED),
            ),
            // Firehose (0x08) alone is not sampled.
            (
                format!("{TRACE_ID}:{SPAN_ID}:0:8"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::default()),
            ),
            // A 64-bit trace id and short ids are zero-padded on the left.
            (
                "a3ce929d0e0e4736:17c29:0:1".to_owned(),
                remote(
                    "0000000000000000a3ce929d0e0e4736",
                    "0000000000017c29",
                    TraceFlags::SAMPLED,
                ),
            ),
            (
                "4d0000000000000016:1:0:1".to_owned(),
                remote(
                    "000000000000004d0000000000000016",
                    "0000000000000001",
                    TraceFlags::SAMPLED,
                ),
            ),
            // Upper-case hex, and the URL-encoded form some clients send.
            (
                format!("{}:{}:0:1", TRACE_ID.to_uppercase(), SPAN_ID.to_uppercase()),
                remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED),
            ),
            (
                format!("{TRACE_ID}%3A{SPAN_ID}%3A0%3A1"),
                remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED),
            ),
        ];
        for (header, expected) in cases {
            let cx = extract(&[(TRACE_ID_HEADER, &header)]);
            assert_eq!(span_of(&cx), expected, "{header}");
        }
    }

    #[test]
    fn invalid_headers_are_ignored() {
        let too_long_trace = format!("1{TRACE_ID}");
        let cases = [
            String::new(),
            "0".to_owned(),
            format!("{TRACE_ID}:{SPAN_ID}:0"),
            format!("{TRACE_ID}:{SPAN_ID}:0:1:1"),
            format!("{too_long_trace}:{SPAN_ID}:0:1"),
            format!("{TRACE_ID}:1{SPAN_ID}:0:1"),
            // Zero ids are invalid, however they are padded.
            format!("0:{SPAN_ID}:0:1"),
            format!("{}:{SPAN_ID}:0:1", "0".repeat(32)),
            format!("{TRACE_ID}:0000000000000000:0:1"),
            // Not hex, signs, empty parts, flags over a byte.
            format!("invalidtraceid:{SPAN_ID}:0:1"),
            format!("{TRACE_ID}:invalidspanid:0:1"),
            format!("+{}:{SPAN_ID}:0:1", &TRACE_ID[1..]),
            format!("{TRACE_ID}:{SPAN_ID}:xyz:1"),
            format!("{TRACE_ID}:{SPAN_ID}::1"),
            format!("{TRACE_ID}:{SPAN_ID}:0:"),
            format!("{TRACE_ID}:{SPAN_ID}:0:120"),
            format!("{TRACE_ID}:{SPAN_ID}:0:g"),
            // Broken percent-encoding of non-UTF-8 bytes.
            format!("{TRACE_ID}%3A{SPAN_ID}%3A0%3A1%FF"),
        ];
        for header in cases {
            let cx = extract(&[(TRACE_ID_HEADER, &header)]);
            assert!(!span_of(&cx).is_valid(), "{header:?} must be ignored");
        }

        // An earlier propagator's context survives an invalid header.
        let earlier =
            Context::new().with_remote_span_context(remote(TRACE_ID, SPAN_ID, TraceFlags::SAMPLED));
        let carrier = HashMap::from([(TRACE_ID_HEADER.to_owned(), "garbage".to_owned())]);
        let cx = JaegerPropagator::new().extract_with_context(&earlier, &carrier);
        assert_eq!(span_of(&cx).trace_id().to_string(), TRACE_ID);
    }

    #[test]
    fn baggage_comes_from_uberctx_headers_url_decoded() {
        let cx = extract(&[
            ("uberctx-tenant", "acme"),
            ("uberctx-region", "eu%20west%2C1"),
            ("uberctx-", "no key"),
            ("uberctx-bad", "%FF"),
            ("other", "x"),
        ]);
        let baggage = cx.baggage();
        assert_eq!(baggage.get("tenant").unwrap().as_str(), "acme");
        assert_eq!(baggage.get("region").unwrap().as_str(), "eu west,1");
        assert_eq!(baggage.len(), 2, "{baggage:?}");
        assert!(!span_of(&cx).is_valid(), "baggage alone is no span context");

        // Added to the baggage an earlier propagator found.
        let earlier = Context::new().with_baggage([KeyValue::new("user", "u1")]);
        let carrier = HashMap::from([("uberctx-tenant".to_owned(), "acme".to_owned())]);
        let cx = JaegerPropagator::new().extract_with_context(&earlier, &carrier);
        assert_eq!(cx.baggage().get("user").unwrap().as_str(), "u1");
        assert_eq!(cx.baggage().get("tenant").unwrap().as_str(), "acme");
    }

    #[test]
    fn round_trips_span_context_and_baggage() {
        let propagator = JaegerPropagator::new();
        for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
            let cx = Context::new()
                .with_remote_span_context(remote(TRACE_ID, SPAN_ID, flags))
                .with_baggage([
                    KeyValue::new("tenant", "acme"),
                    KeyValue::new("note", "a b,c=d;é"),
                ]);
            let mut carrier = HashMap::new();
            propagator.inject_context(&cx, &mut carrier);
            let sampled = if flags.is_sampled() { "01" } else { "00" };
            assert_eq!(
                carrier[TRACE_ID_HEADER],
                format!("{TRACE_ID}:{SPAN_ID}:0:{sampled}")
            );
            assert_eq!(carrier["uberctx-tenant"], "acme");
            assert_eq!(carrier["uberctx-note"], "a%20b%2Cc%3Dd%3B%C3%A9");

            let back = propagator.extract_with_context(&Context::new(), &carrier);
            assert_eq!(span_of(&back), remote(TRACE_ID, SPAN_ID, flags));
            assert_eq!(back.baggage().get("note").unwrap().as_str(), "a b,c=d;é");
            assert_eq!(back.baggage().get("tenant").unwrap().as_str(), "acme");
        }

        // Nothing to write: no header at all.
        let mut carrier: HashMap<String, String> = HashMap::new();
        propagator.inject_context(&Context::new(), &mut carrier);
        assert!(carrier.is_empty());
        assert_eq!(propagator.fields().collect::<Vec<_>>(), [TRACE_ID_HEADER]);
    }
}
