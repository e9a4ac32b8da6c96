//! The flattened span model: what the receiver stores and what tests assert on.
//!
//! OTLP nests spans as `ResourceSpans → ScopeSpans → Span` and encodes ids as raw
//! bytes and attributes as `AnyValue` oneofs. That shape is awkward to assert on, so
//! every span is flattened into a [`ReceivedSpan`] with hex ids, its resource's
//! `service.name`, and plain Rust enums. Conversion never panics: malformed input
//! (odd id lengths, unknown enum values, missing values) is rendered as faithfully
//! as possible instead of rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use serde::{Serialize, Serializer};

/// One exported span, flattened with its resource's `service.name`, in a form easy to assert on.
/// The default is empty (no ids, unspecified kind, unset status), for tests to fill in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReceivedSpan {
    /// Trace id as lowercase hex (32 chars for a well-formed id).
    pub trace_id: String,
    /// Span id as lowercase hex (16 chars for a well-formed id).
    pub span_id: String,
    /// Parent span id as lowercase hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Span name, e.g. `POST /checkout`.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// The resource attribute `service.name` (`""` if absent).
    pub service_name: String,
    /// The resource attribute `service.instance.id`, which tells replicas
    /// of one service apart (`""` if absent, and from Jaeger).
    pub service_instance_id: String,
    /// Span attributes by key.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Span status.
    pub status: SpanStatus,
    /// Start time, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End time, nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Events recorded on the span, in export order.
    pub events: Vec<SpanEvent>,
    /// Links to other spans.
    pub links: Vec<SpanLink>,
}

impl ReceivedSpan {
    /// The attribute stored under `key`, if any.
    pub fn attr(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes.get(key)
    }

    /// The attribute under `key` if it is a string.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttributeValue::as_str)
    }

    /// The attribute under `key` if it is an integer.
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttributeValue::as_i64)
    }

    /// Wall-clock duration (zero if the end time precedes the start time).
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }

    /// Whether this span has no parent, i.e. starts its trace (locally).
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }
}

/// The role a span plays, mirroring OTLP `SpanKind`. Displays and serializes lowercase (`"server"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// Not set by the exporter (also used for unknown values).
    #[default]
    Unspecified,
    /// In-process operation.
    Internal,
    /// Handles an incoming request.
    Server,
    /// Makes an outgoing request.
    Client,
    /// Hands a message to a broker.
    Producer,
    /// Processes a message from a broker.
    Consumer,
}

impl From<i32> for SpanKind {
    fn from(kind: i32) -> Self {
        match span::SpanKind::try_from(kind) {
            Ok(span::SpanKind::Internal) => Self::Internal,
            Ok(span::SpanKind::Server) => Self::Server,
            Ok(span::SpanKind::Client) => Self::Client,
            Ok(span::SpanKind::Producer) => Self::Producer,
            Ok(span::SpanKind::Consumer) => Self::Consumer,
            Ok(span::SpanKind::Unspecified) | Err(_) => Self::Unspecified,
        }
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        })
    }
}

/// Span outcome, mirroring OTLP `Status`. Serializes as `{"code": "error", "message": ".."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "lowercase")]
pub enum SpanStatus {
    /// No status set (also used for unknown codes).
    #[default]
    Unset,
    /// Explicitly marked successful.
    Ok,
    /// Failed, with the exporter's description (may be empty).
    Error {
        /// The status message.
        message: String,
    },
}

impl fmt::Display for SpanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset => f.write_str("unset"),
            Self::Ok => f.write_str("ok"),
            Self::Error { message } if message.is_empty() => f.write_str("error"),
            Self::Error { message } => write!(f, "error: {message}"),
        }
    }
}

/// A timestamped event recorded on a span (e.g. an exception).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanEvent {
    /// Event name.
    pub name: String,
    /// Event time, nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Event attributes by key.
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// A link from a span to another span (e.g. a consumer linking to its producer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpanLink {
    /// Linked trace id, lowercase hex.
    pub trace_id: String,
    /// Linked span id, lowercase hex.
    pub span_id: String,
}

/// An attribute value. Serializes untagged (`"abc"`, `42`, `true`, ..; bytes as hex).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// A homogeneous or mixed array.
    Array(Vec<AttributeValue>),
    /// Raw bytes.
    Bytes(#[serde(serialize_with = "serialize_hex")] Vec<u8>),
    /// A nested key/value list (OTLP `kvlist_value`).
    Map(BTreeMap<String, AttributeValue>),
}

impl AttributeValue {
    /// The value if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value if it is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value if it is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Converts an OTLP value; `None` for an absent value (or the profiles-only string index).
    pub(crate) fn from_proto(value: &AnyValue) -> Option<Self> {
        use any_value::Value;
        Some(match value.value.as_ref()? {
            Value::StringValue(s) => Self::String(s.clone()),
            Value::BoolValue(b) => Self::Bool(*b),
            Value::IntValue(i) => Self::Int(*i),
            Value::DoubleValue(d) => Self::Double(*d),
            Value::BytesValue(b) => Self::Bytes(b.clone()),
            Value::ArrayValue(array) => {
                Self::Array(array.values.iter().filter_map(Self::from_proto).collect())
            }
            Value::KvlistValue(list) => Self::Map(attributes(&list.values)),
            Value::StringValueStrindex(_) => return None,
        })
    }
}

/// Displays strings bare, arrays as `[a, b]`, maps as `{k: v}` and bytes as hex.
impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Double(d) => write!(f, "{d}"),
            Self::Bytes(b) => f.write_str(&hex(b)),
            Self::Array(values) => {
                f.write_str("[")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                f.write_str("]")
            }
            Self::Map(map) => {
                f.write_str("{")?;
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key}: {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<i64> for AttributeValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for AttributeValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// A resource's `service.name` (`""` if absent or not a string).
pub fn service_name(resource: Option<&Resource>) -> &str {
    resource_string(resource, "service.name")
}

/// A resource's string attribute `key` (`""` if absent or not a string).
fn resource_string<'a>(resource: Option<&'a Resource>, key: &str) -> &'a str {
    resource
        .iter()
        .flat_map(|resource| &resource.attributes)
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(name) => Some(name.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

/// Flattens an export request into one [`ReceivedSpan`] per span, tagging each with its
/// resource's `service.name` and `service.instance.id`: what the receiver stores, and
/// what `checkout trace` makes of the OTLP/JSON Jaeger's API v3 answers with.
pub fn flatten_spans(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.as_ref();
        let service_name = service_name(resource).to_owned();
        let instance = resource_string(resource, "service.instance.id").to_owned();
        for scope_spans in resource_spans.scope_spans {
            out.extend(scope_spans.spans.into_iter().map(|span| {
                let mut span = received_span(span, &service_name);
                span.service_instance_id.clone_from(&instance);
                span
            }));
        }
    }
    out
}

fn received_span(span: Span, service_name: &str) -> ReceivedSpan {
    let status = match &span.status {
        None => SpanStatus::Unset,
        Some(s) => match status::StatusCode::try_from(s.code) {
            Ok(status::StatusCode::Ok) => SpanStatus::Ok,
            Ok(status::StatusCode::Error) => SpanStatus::Error {
                message: s.message.clone(),
            },
            Ok(status::StatusCode::Unset) | Err(_) => SpanStatus::Unset,
        },
    };
    ReceivedSpan {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
        name: span.name,
        kind: SpanKind::from(span.kind),
        service_name: service_name.to_owned(),
        service_instance_id: String::new(),
        attributes: attributes(&span.attributes),
        status,
        start_unix_nanos: span.start_time_unix_nano,
        end_unix_nanos: span.end_time_unix_nano,
        events: span
            .events
            .iter()
            .map(|event| SpanEvent {
                name: event.name.clone(),
                time_unix_nanos: event.time_unix_nano,
                attributes: attributes(&event.attributes),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|link| SpanLink {
                trace_id: hex(&link.trace_id),
                span_id: hex(&link.span_id),
            })
            .collect(),
    }
}

pub(crate) fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, AttributeValue> {
    kvs.iter()
        .filter_map(|kv| {
            Some((
                kv.key.clone(),
                AttributeValue::from_proto(kv.value.as_ref()?)?,
            ))
        })
        .collect()
}

/// Lowercase hex of arbitrary bytes (ids of the wrong length are rendered, not rejected).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn serialize_hex<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex(bytes))
}
