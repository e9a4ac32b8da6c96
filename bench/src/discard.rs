//! The sink's metrics and logs services: the "full" runs export metrics and
//! OTLP log records beside spans, and a collector would take them, so the
//! span sink ([`crate::tally`]) serves the two OTLP methods too. It counts
//! the exports and drops them: the benchmark measures what sending costs the
//! services, not what a collector does with them. Each request is decoded
//! into an empty message, so protobuf skips its fields without allocating:
//! the sink's own CPU stays small, as the span tally's does. (The test that the
//! sink takes both exports is with the sink's, in [`crate::tally`].)

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::{
    codec::{CompressionEncoding, EnabledCompressionEncodings},
    server::{Grpc, NamedService, UnaryService},
};
use tonic_prost::ProstCodec;

/// Largest accepted export (decoded).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Any OTLP export request or response, with every field skipped: the
/// responses' fields are all optional (no partial success).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Discarded {}

/// Exports received (requests, not items) per signal.
#[derive(Debug, Default)]
pub struct Received {
    /// Metric exports.
    pub metric_exports: AtomicUsize,
    /// Log exports.
    pub log_exports: AtomicUsize,
}

macro_rules! discarding_service {
    ($name:ident, $service:literal, $counter:ident) => {
        /// Takes the exports of one OTLP service, counts and drops them.
        #[derive(Clone, Debug)]
        pub struct $name(pub Arc<Received>);

        impl NamedService for $name {
            const NAME: &'static str = $service;
        }

        impl<B> tower::Service<http::Request<B>> for $name
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
                let received = self.0.clone();
                Box::pin(async move {
                    let mut accept = EnabledCompressionEncodings::default();
                    accept.enable(CompressionEncoding::Gzip);
                    let mut grpc = Grpc::new(ProstCodec::<Discarded, Discarded>::default())
                        .apply_compression_config(accept, EnabledCompressionEncodings::default())
                        .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), None);
                    Ok(grpc
                        .unary(
                            Count(move || {
                                received.$counter.fetch_add(1, Ordering::Relaxed);
                            }),
                            request,
                        )
                        .await)
                })
            }
        }
    };
}

discarding_service!(
    MetricsSink,
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    metric_exports
);
discarding_service!(
    LogsSink,
    "opentelemetry.proto.collector.logs.v1.LogsService",
    log_exports
);

/// The unary method: count, answer with an empty (full success) response.
struct Count<F>(F);

impl<F: Fn() + Clone + Send + 'static> UnaryService<Discarded> for Count<F> {
    type Response = Discarded;
    type Future = BoxFuture<'static, Result<tonic::Response<Discarded>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<Discarded>) -> Self::Future {
        (self.0)();
        Box::pin(async { Ok(tonic::Response::new(Discarded {})) })
    }
}
