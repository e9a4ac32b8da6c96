//! The sink's metrics and logs services: the "full" runs export metrics and
//! OTLP log records beside spans, and a collector would take them, so the
//! span sink ([`crate::tally`]) serves the two OTLP methods too. It counts
//! the exports and drops them: the benchmark measures what sending costs the
//! services, not what a collector does with them. Each request is decoded
//! into an empty message, so protobuf skips its fields without allocating:
//! the sink's own CPU stays small, as the span tally's does. (The test that the
//! sink takes both exports is with the sink's, in [`crate::tally`].)

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic_prost::ProstCodec;

/// Largest accepted export (decoded); SDK batches are far smaller.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Any OTLP export request or response, with every field skipped: the
/// responses' fields are all optional (no partial success).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Discarded {}

/// Answers one unary gRPC call with `method`, the request decoded as `R` (gzip
/// accepted, up to [`MAX_MESSAGE_BYTES`]): the part of a tonic-generated server the
/// sinks need, with the trimmed messages' codec (generated servers fix their codec to
/// the full message types).
pub(crate) async fn unary<R, M, B>(
    method: M,
    request: http::Request<B>,
) -> http::Response<tonic::body::Body>
where
    R: prost::Message + Default + Send + 'static,
    M: UnaryService<R>,
    M::Response: prost::Message + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let mut accept = EnabledCompressionEncodings::default();
    accept.enable(CompressionEncoding::Gzip);
    Grpc::new(ProstCodec::<M::Response, R>::default())
        .apply_compression_config(accept, EnabledCompressionEncodings::default())
        .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), None)
        .unary(method, request)
        .await
}

macro_rules! discarding_service {
    ($name:ident, $service:literal) => {
        /// Takes the exports of one OTLP service and drops them.
        #[derive(Clone, Debug)]
        pub struct $name;

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
                Box::pin(async move { Ok(unary::<Discarded, _, _>(Discard, request).await) })
            }
        }
    };
}

discarding_service!(
    MetricsSink,
    "opentelemetry.proto.collector.metrics.v1.MetricsService"
);
discarding_service!(
    LogsSink,
    "opentelemetry.proto.collector.logs.v1.LogsService"
);

/// The unary method: answer with an empty (full success) response.
struct Discard;

impl UnaryService<Discarded> for Discard {
    type Response = Discarded;
    type Future = std::future::Ready<Result<tonic::Response<Discarded>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<Discarded>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(Discarded {})))
    }
}
