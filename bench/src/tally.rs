//! The benchmark's span sink: an OTLP/gRPC receiver that tallies spans per trace
//! instead of keeping them.
//!
//! The sink stands in for Jaeger, on the same two CPUs as the pipeline it measures, so
//! every microsecond it spends is taken from the services and shows up as "the cost of
//! tracing". [`OtlpReceiver`](testkit::receiver::OtlpReceiver) decodes every span
//! whole (attributes, events, status) into an owned
//! [`ReceivedSpan`](testkit::receiver::ReceivedSpan) and keeps them all, which is
//! right for tests that assert on spans but, over a benchmark run, is a quarter of a
//! million spans in memory and some thirty allocations per span to decode and free.
//!
//! This sink serves the same method on the same path
//! (`opentelemetry.proto.collector.trace.v1.TraceService/Export`, gzip accepted) but
//! decodes the request into [`wire`]'s trimmed mirror of the official messages: only
//! `service.name`, and each span's trace id, name and kind. Protobuf decoders skip the
//! fields a message does not declare without allocating, so attributes and events cost
//! a length read. It keeps, per trace id, only which of
//! [`CHECKOUT_TRACE`](testkit::verify::CHECKOUT_TRACE) arrived: enough for "every
//! accepted checkout's trace is complete". What the services send is unchanged; a collector elsewhere would pay the
//! full decode on its own machine. (The trimmed decoding cut the sink's CPU per
//! checkout by about three quarters; see docs/benchmark-history.md.)

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use testkit::{
    receiver::SpanKind,
    verify::{self, ALL_SEEN, Seen, TraceCheck},
};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    time::Instant,
};
use tonic::{
    server::{NamedService, UnaryService},
    transport::server::TcpIncoming,
};

use crate::discard::{LogsSink, MetricsSink, unary};

/// The OTLP trace service's one method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A trace id as exported: 16 bytes.
type TraceId = [u8; 16];

/// The official OTLP trace messages, trimmed to the fields the tally reads.
///
/// Field numbers and types are those of `opentelemetry/proto/collector/trace/v1/
/// trace_service.proto` and the files it imports; fields not declared here are skipped
/// on decoding. The tests check the mirror against the official types.
pub mod wire {
    /// `ExportTraceServiceRequest`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        /// `resource_spans = 1`
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    /// `ExportTraceServiceResponse` (the sink never sends a partial success).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceResponse {}

    /// `ResourceSpans`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        /// `resource = 1`
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        /// `scope_spans = 2`
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    /// `Resource`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        /// `attributes = 1`
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    /// `KeyValue`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// `key = 1`
        #[prost(string, tag = "1")]
        pub key: String,
        /// `value = 2`
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// `AnyValue`, its `string_value = 1` arm only (a string-valued attribute decodes
    /// the same; other kinds leave it empty).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        /// `string_value = 1`
        #[prost(string, tag = "1")]
        pub string_value: String,
    }

    /// `ScopeSpans`
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        /// `spans = 2`
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    /// `Span`: its trace id, name and kind.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        /// `trace_id = 1`
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        /// `name = 5`
        #[prost(string, tag = "5")]
        pub name: String,
        /// `kind = 6` (the `SpanKind` enum's number)
        #[prost(int32, tag = "6")]
        pub kind: i32,
    }

    /// The resource's `service.name`, or `""`.
    pub fn service_name(resource: Option<&Resource>) -> &str {
        resource
            .into_iter()
            .flat_map(|resource| &resource.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map_or("", |value| value.string_value.as_str())
    }
}

#[derive(Debug, Default)]
struct Tallies {
    /// Which of a checkout's spans arrived, per trace.
    traces: Mutex<HashMap<TraceId, Seen>>,
    spans: AtomicUsize,
    /// Traces that have every span of a checkout: counted as each becomes complete, so
    /// traces whose ids nobody knows (wrk's, started by the gateway) can be counted
    /// without a scan of the map.
    complete: AtomicUsize,
}

impl Tallies {
    fn add(&self, request: wire::ExportTraceServiceRequest) {
        let mut count = 0;
        let mut traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        for resource_spans in &request.resource_spans {
            let service = wire::service_name(resource_spans.resource.as_ref());
            for span in resource_spans
                .scope_spans
                .iter()
                .flat_map(|scope| &scope.spans)
            {
                count += 1;
                let Ok(trace_id) = TraceId::try_from(span.trace_id.as_slice()) else {
                    continue;
                };
                let seen = traces.entry(trace_id).or_default();
                let was = *seen;
                *seen |= verify::seen_by_parts(service, SpanKind::from(span.kind), &span.name);
                if was != ALL_SEEN && *seen == ALL_SEEN {
                    self.complete.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.spans.fetch_add(count, Ordering::Relaxed);
    }
}

/// The `Export` method: tally, answer success.
struct Export(Arc<Tallies>);

impl UnaryService<wire::ExportTraceServiceRequest> for Export {
    type Response = wire::ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<wire::ExportTraceServiceRequest>) -> Self::Future {
        self.0.add(request.into_inner());
        std::future::ready(Ok(tonic::Response::new(
            wire::ExportTraceServiceResponse::default(),
        )))
    }
}

/// The trace service as tonic's generated server would route it, with the trimmed
/// messages' codec ([`unary`]).
#[derive(Clone)]
struct TraceService(Arc<Tallies>);

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tower::Service<http::Request<B>> for TraceService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let tallies = self.0.clone();
        Box::pin(async move {
            if request.uri().path() != EXPORT_PATH {
                return Ok(tonic::Status::unimplemented("only TraceService/Export").into_http());
            }
            Ok(unary::<wire::ExportTraceServiceRequest, _, _>(Export(tallies), request).await)
        })
    }
}

/// A running span sink; see the module docs.
pub struct SpanTally {
    tallies: Arc<Tallies>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    stopped: oneshot::Receiver<()>,
}

impl SpanTally {
    /// Serves OTLP/gRPC on 127.0.0.1, on a free port, from a thread of its own.
    ///
    /// The sink gets its own single-threaded runtime so that decoding an export
    /// never holds up a tokio worker of the load generator: sharing them would add
    /// the sink's work to the latencies the load generator measures (the OS still
    /// shares the CPUs between them, as it would with a collector process).
    pub async fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tallies = Arc::new(Tallies::default());
        let (stop, mut stop_requested) = watch::channel(false);
        let (stopped_tx, stopped) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let service = TraceService(tallies.clone());
        std::thread::Builder::new()
            .name("otlp-sink".to_owned())
            .spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    // Metrics and logs (the "full" runs) are dropped.
                    tonic::transport::Server::builder()
                        .add_service(service)
                        .add_service(MetricsSink)
                        .add_service(LogsSink)
                        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                            let _ = stop_requested.wait_for(|stop| *stop).await;
                        })
                        .await
                        .map_err(std::io::Error::other)
                });
                if let Err(error) = served {
                    eprintln!("warning: the OTLP sink stopped with an error: {error}");
                }
                let _ = stopped_tx.send(());
            })?;
        Ok(Self {
            tallies,
            addr,
            stop,
            stopped,
        })
    }

    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Spans received, of any trace.
    pub fn spans(&self) -> usize {
        self.tallies.spans.load(Ordering::Relaxed)
    }

    /// Traces received so far that are complete (every span of a checkout), whatever
    /// their ids.
    pub fn complete_traces(&self) -> usize {
        self.tallies.complete.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` until at least `target` traces are complete
    /// ([`SpanTally::complete_traces`]), then says how many are.
    pub async fn wait_complete_traces(&self, target: usize, timeout: Duration) -> usize {
        let started = Instant::now();
        loop {
            let complete = self.complete_traces();
            if complete >= target || started.elapsed() >= timeout {
                return complete;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` for every trace in `trace_ids` to be complete, then
    /// says how many are.
    pub async fn check(&self, trace_ids: &[String], timeout: Duration) -> TraceCheck {
        let started = Instant::now();
        let ids: Vec<Option<TraceId>> = trace_ids.iter().map(|id| parse_trace_id(id)).collect();
        loop {
            let seen: Vec<Option<Seen>> = {
                let traces = self
                    .tallies
                    .traces
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                ids.iter()
                    .map(|id| traces.get(id.as_ref()?).copied())
                    .collect()
            };
            let all_complete = seen.iter().all(|seen| *seen == Some(ALL_SEEN));
            if all_complete || started.elapsed() >= timeout {
                return verify::tally_check(seen, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.stopped.await;
    }
}

fn parse_trace_id(hex: &str) -> Option<TraceId> {
    if hex.len() != 32 {
        return None;
    }
    let mut id = [0; 16];
    for (byte, pair) in id.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_from_lowercase_hex_only_at_full_length() {
        let id = parse_trace_id("0af7651916cd43dd8448eb211c80319c").unwrap();
        assert_eq!(id[0], 0x0a);
        assert_eq!(id[15], 0x9c);
        assert_eq!(parse_trace_id("0af7"), None);
        assert_eq!(parse_trace_id("zzf7651916cd43dd8448eb211c80319c"), None);
    }
}

/// The trimmed messages against the official ones, and the sink over a real gRPC
/// connection.
#[cfg(test)]
mod wire_tests {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::{
            ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
        },
        common::v1::{AnyValue, KeyValue, any_value::Value},
        resource::v1::Resource,
        trace::v1::{ResourceSpans, ScopeSpans, Span, span, status::StatusCode},
    };
    use prost::Message;

    use super::*;

    fn attribute(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// A full official request: every span carries attributes, an event and a
    /// status the trimmed mirror skips, and the resource has a non-string attribute
    /// before `service.name`.
    fn official_request(
        service: &str,
        trace_id: TraceId,
        spans: &[(&str, span::SpanKind)],
    ) -> ExportTraceServiceRequest {
        let spans = spans
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| Span {
                trace_id: trace_id.to_vec(),
                span_id: vec![i as u8 + 1; 8],
                parent_span_id: vec![9; 8],
                name: (*name).to_owned(),
                kind: *kind as i32,
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                attributes: vec![
                    attribute("http.request.method", Value::StringValue("POST".into())),
                    attribute("http.response.status_code", Value::IntValue(202)),
                ],
                events: vec![span::Event {
                    name: "exception".into(),
                    ..Default::default()
                }],
                status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                    code: StatusCode::Ok as i32,
                    message: String::new(),
                }),
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        attribute("process.pid", Value::IntValue(42)),
                        attribute("service.name", Value::StringValue(service.into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_trimmed_messages_decode_what_the_official_ones_encode() {
        let trace_id = [7; 16];
        let request = official_request(
            "gateway",
            trace_id,
            &[
                ("POST /api/checkout", span::SpanKind::Server),
                ("checkout.Checkout/DoCheckout", span::SpanKind::Client),
            ],
        );
        let decoded = wire::ExportTraceServiceRequest::decode(request.encode_to_vec().as_slice())
            .expect("the official encoding decodes");
        let resource_spans = &decoded.resource_spans[0];
        assert_eq!(
            wire::service_name(resource_spans.resource.as_ref()),
            "gateway"
        );
        let spans = &resource_spans.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].trace_id, trace_id);
        assert_eq!(spans[0].name, "POST /api/checkout");
        assert_eq!(SpanKind::from(spans[0].kind), SpanKind::Server);
        assert_eq!(spans[1].name, "checkout.Checkout/DoCheckout");
        assert_eq!(SpanKind::from(spans[1].kind), SpanKind::Client);
    }

    #[test]
    fn a_resource_without_a_string_service_name_has_none() {
        let resource = wire::Resource {
            attributes: vec![wire::KeyValue {
                key: "service.name".into(),
                value: None,
            }],
        };
        assert_eq!(wire::service_name(Some(&resource)), "");
        assert_eq!(wire::service_name(None), "");
    }

    #[tokio::test]
    async fn the_sink_tallies_gzipped_exports_from_an_official_client() {
        let sink = SpanTally::start().await.expect("the sink starts");
        let mut client = TraceServiceClient::connect(sink.endpoint())
            .await
            .expect("the sink accepts connections")
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        let complete = [1; 16];
        let partial = [2; 16];
        let exports = [
            official_request(
                "gateway",
                complete,
                &[
                    ("POST /api/checkout", span::SpanKind::Server),
                    ("checkout.Checkout/DoCheckout", span::SpanKind::Client),
                ],
            ),
            official_request(
                "checkout-service",
                complete,
                &[
                    ("checkout.Checkout/DoCheckout", span::SpanKind::Server),
                    ("publish checkout", span::SpanKind::Producer),
                ],
            ),
            official_request(
                "stock-service",
                complete,
                &[
                    ("process checkout.processed", span::SpanKind::Consumer),
                    ("UPDATE stock", span::SpanKind::Client),
                    ("INSERT processed_orders", span::SpanKind::Client),
                ],
            ),
            official_request(
                "gateway",
                partial,
                &[("POST /api/checkout", span::SpanKind::Server)],
            ),
        ];
        for export in exports {
            client
                .export(export)
                .await
                .expect("the sink accepts the export");
        }

        let hex = |id: TraceId| id.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(sink.spans(), 8);
        let check = sink.check(&[hex(complete)], Duration::from_secs(5)).await;
        assert_eq!(check.complete, 1, "{check:?}");
        let check = sink
            .check(&[hex(partial)], Duration::from_millis(200))
            .await;
        assert_eq!(check.complete, 0, "{check:?}");
        assert_eq!(
            sink.complete_traces(),
            1,
            "the partial trace does not count"
        );
        assert_eq!(
            sink.wait_complete_traces(2, Duration::from_millis(200))
                .await,
            1
        );
        sink.shutdown().await;
    }

    #[tokio::test]
    async fn the_sink_takes_metric_and_log_exports() {
        use opentelemetry_proto::tonic::collector::{
            logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
            metrics::v1::{
                ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient,
            },
        };

        let sink = SpanTally::start().await.expect("the sink starts");
        let mut metrics = MetricsServiceClient::connect(sink.endpoint())
            .await
            .expect("connects")
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        metrics
            .export(ExportMetricsServiceRequest::default())
            .await
            .expect("a metrics export is accepted");
        let mut logs = LogsServiceClient::connect(sink.endpoint())
            .await
            .expect("connects");
        logs.export(ExportLogsServiceRequest::default())
            .await
            .expect("a logs export is accepted");
        sink.shutdown().await;
    }
}
