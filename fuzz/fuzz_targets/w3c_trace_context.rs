//! Arbitrary `traceparent`, `tracestate` and `baggage` values through every
//! carrier: extracted from HTTP headers, injected into gRPC metadata and AMQP
//! headers, and extracted again. Whatever a client sends, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry::propagation::{
    amqp::{self, FieldTable},
    grpc::{self, MetadataMap},
    http::{self as http_carrier, HeaderMap, HeaderValue},
};

fuzz_target!(|data: &[u8]| {
    // Split the input into the three header values.
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let mut headers = HeaderMap::new();
    for name in ["traceparent", "tracestate", "baggage"] {
        if let Some(value) = parts.next().and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(name, value);
        }
    }
    let cx = http_carrier::extract(&headers);

    let mut metadata = MetadataMap::new();
    grpc::inject(&cx, &mut metadata);
    let cx = grpc::extract(&metadata);

    let mut table = FieldTable::default();
    amqp::inject(&cx, &mut table);
    let _ = amqp::extract(Some(&table));
});
