//! The benchmark's span sink: an OTLP/gRPC receiver that tallies spans per trace
//! instead of keeping them.
//!
//! The sink stands in for Jaeger, on the same two CPUs as the pipeline it measures, so
//! it should cost no more than it must. [`OtlpReceiver`](checkout_cli::receiver::OtlpReceiver)
//! turns every span into an owned [`ReceivedSpan`](checkout_cli::receiver::ReceivedSpan)
//! (hex ids, attribute maps) and keeps them all, which is right for tests that assert on
//! spans, but over a benchmark run that is a quarter of a million spans held in memory.
//! This sink decodes the same `ExportTraceServiceRequest` (it is a real OTLP endpoint,
//! gzip included) and keeps, per trace id, only which of
//! [`CHECKOUT_TRACE`](checkout_cli::verify::CHECKOUT_TRACE) arrived and how many spans:
//! enough for "every accepted checkout's trace is complete" and "spans received vs
//! expected". Decoding the protobuf remains most of its CPU (see BENCHMARKS.md), which
//! any collector on the machine would pay too.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use checkout_cli::{
    receiver::{self, SpanKind},
    verify::{self, ALL_SEEN, Seen, TraceCheck},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle, time::Instant};
use tonic::{codec::CompressionEncoding, transport::server::TcpIncoming};

/// Largest accepted export (decoded); SDK batches are far smaller.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A trace id as exported: 16 bytes.
type TraceId = [u8; 16];

/// What arrived of one trace.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    seen: Seen,
    spans: usize,
}

#[derive(Debug, Default)]
struct Tallies {
    traces: Mutex<HashMap<TraceId, Tally>>,
    spans: AtomicUsize,
}

impl Tallies {
    fn add(&self, request: ExportTraceServiceRequest) {
        let mut count = 0;
        let mut traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        for resource_spans in request.resource_spans {
            let service = receiver::service_name(resource_spans.resource.as_ref());
            for span in resource_spans
                .scope_spans
                .iter()
                .flat_map(|scope| &scope.spans)
            {
                count += 1;
                let Ok(trace_id) = TraceId::try_from(span.trace_id.as_slice()) else {
                    continue;
                };
                let tally = traces.entry(trace_id).or_default();
                tally.spans += 1;
                tally.seen |= verify::seen_by_parts(service, SpanKind::from(span.kind), &span.name);
            }
        }
        self.spans.fetch_add(count, Ordering::Relaxed);
    }
}

struct Export(Arc<Tallies>);

#[tonic::async_trait]
impl TraceService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A running span sink; see the module docs.
pub struct SpanTally {
    tallies: Arc<Tallies>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl SpanTally {
    /// Serves OTLP/gRPC on 127.0.0.1, on a free port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let tallies = Arc::new(Tallies::default());
        let (stop, mut stopped) = watch::channel(false);
        let service = TraceServiceServer::new(Export(tallies.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
        let server = tokio::spawn(async move {
            if let Err(error) = server.await {
                eprintln!("warning: the OTLP sink stopped with an error: {error}");
            }
        });
        Ok(Self {
            tallies,
            addr,
            stop,
            server,
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

    /// Spans received of the traces in `trace_ids` (lowercase hex).
    pub fn spans_of(&self, trace_ids: &[String]) -> usize {
        let traces = self
            .tallies
            .traces
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        trace_ids
            .iter()
            .filter_map(|id| traces.get(&parse_trace_id(id)?))
            .map(|tally| tally.spans)
            .sum()
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
                    .map(|id| Some(traces.get(id.as_ref()?)?.seen))
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
        let _ = self.server.await;
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
