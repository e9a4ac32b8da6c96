//! The relay's decoding and clean-up, on the bodies browsers send.

use super::*;

/// An export as `@opentelemetry/exporter-trace-otlp-http` sends it from a
/// page (its JSON serializer: hex ids, camelCase, 64-bit integers as
/// strings or numbers, enums as numbers, the span `flags` of 2.x): a
/// click's root span and the fetch span under it, in another service's name.
pub(crate) const JS_EXPORT: &str = r#"{
  "resourceSpans": [{
    "resource": {
      "attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout-service"}},
        {"key": "telemetry.sdk.language", "value": {"stringValue": "webjs"}},
        {"key": "telemetry.sdk.name", "value": {"stringValue": "opentelemetry"}},
        {"key": "telemetry.sdk.version", "value": {"stringValue": "2.0.1"}}
      ],
      "droppedAttributesCount": 0
    },
    "scopeSpans": [{
      "scope": {"name": "storefront", "version": "0.1.0"},
      "spans": [
        {
          "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
          "spanId": "00f067aa0ba902b7",
          "name": "click Buy",
          "kind": 1,
          "startTimeUnixNano": "1718000000000000000",
          "endTimeUnixNano": "1718000000300000000",
          "attributes": [{"key": "cart.lines", "value": {"intValue": 2}}],
          "droppedAttributesCount": 0,
          "events": [],
          "droppedEventsCount": 0,
          "status": {"code": 0},
          "links": [],
          "droppedLinksCount": 0,
          "flags": 257
        },
        {
          "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
          "spanId": "a3ce929d0e0e4736",
          "parentSpanId": "00f067aa0ba902b7",
          "traceState": "",
          "name": "HTTP POST",
          "kind": 3,
          "startTimeUnixNano": 1718000000001000000,
          "endTimeUnixNano": "1718000000123000000",
          "attributes": [
            {"key": "http.method", "value": {"stringValue": "POST"}},
            {"key": "http.url", "value": {"stringValue": "http://127.0.0.1:8081/api/checkout"}},
            {"key": "http.status_code", "value": {"intValue": "202"}},
            {"key": "http.response_content_length", "value": {"intValue": 89}}
          ],
          "droppedAttributesCount": 0,
          "events": [
            {"attributes": [], "name": "fetchStart", "timeUnixNano": "1718000000001000000", "droppedAttributesCount": 0},
            {"attributes": [], "name": "responseEnd", "timeUnixNano": "1718000000122000000", "droppedAttributesCount": 0}
          ],
          "droppedEventsCount": 0,
          "status": {"code": 0},
          "links": [],
          "droppedLinksCount": 0,
          "flags": 257
        }
      ]
    }]
  }]
}"#;

fn service_names(request: &ExportTraceServiceRequest) -> Vec<String> {
    request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.resource.as_ref().unwrap().attributes)
        .filter(|attribute| attribute.key == "service.name")
        .map(|attribute| match &attribute.value.as_ref().unwrap().value {
            Some(any_value::Value::StringValue(name)) => name.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn the_js_exporters_json_decodes_and_is_renamed_storefront() {
    let mut request = decode(Encoding::Json, JS_EXPORT.as_bytes()).unwrap();
    check(&request).unwrap();
    let all: Vec<&Span> = spans(&request).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(hex(&all[0].trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(all[0].parent_span_id.is_empty());
    assert_eq!(hex(&all[1].parent_span_id), "00f067aa0ba902b7");
    assert_eq!(all[1].kind, 3);
    assert_eq!(all[1].start_time_unix_nano, 1_718_000_000_001_000_000);
    assert_eq!(all[1].events.len(), 2);

    clean(&mut request);
    assert_eq!(service_names(&request), ["storefront"]);
    // And it survives the protobuf round trip to the collector.
    let again = decode(Encoding::Protobuf, &request.encode_to_vec()).unwrap();
    assert_eq!(again, request);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn a_resource_without_a_name_gets_one_and_extras_are_dropped_and_counted() {
    let mut request = decode(Encoding::Json, JS_EXPORT.as_bytes()).unwrap();
    request.resource_spans[0].resource = None;
    let span = &mut request.resource_spans[0].scope_spans[0].spans[0];
    let attribute = span.attributes[0].clone();
    span.attributes = vec![attribute; MAX_RELAY_SPAN_ATTRIBUTES + 3];
    clean(&mut request);
    assert_eq!(service_names(&request), ["storefront"]);
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.attributes.len(), MAX_RELAY_SPAN_ATTRIBUTES);
    assert_eq!(span.dropped_attributes_count, 3);
}

#[test]
fn invalid_ids_and_too_many_spans_are_refused() {
    let mut request = decode(Encoding::Json, JS_EXPORT.as_bytes()).unwrap();
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![0; 16];
    assert_eq!(check(&request).unwrap_err().code, "malformed_otlp");

    let mut request = decode(Encoding::Json, JS_EXPORT.as_bytes()).unwrap();
    let span = request.resource_spans[0].scope_spans[0].spans[0].clone();
    request.resource_spans[0].scope_spans[0].spans = vec![span; MAX_RELAY_SPANS + 1];
    let error = check(&request).unwrap_err();
    assert_eq!(
        (error.status, error.code),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_spans")
    );
}

#[test]
fn content_types_are_otlps_two() {
    let with = |pairs: &[(header::HeaderName, &'static str)]| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from_static(value));
        }
        encoding(&headers)
    };
    assert_eq!(
        with(&[(header::CONTENT_TYPE, "application/json; charset=utf-8")]).unwrap(),
        Encoding::Json
    );
    assert_eq!(
        with(&[(header::CONTENT_TYPE, "Application/X-Protobuf")]).unwrap(),
        Encoding::Protobuf
    );
    for refused in [
        with(&[(header::CONTENT_TYPE, "text/plain")]),
        with(&[]),
        with(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_ENCODING, "gzip"),
        ]),
    ] {
        assert_eq!(
            refused.unwrap_err().status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }
}
