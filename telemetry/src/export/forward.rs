//! Forwarding spans recorded elsewhere — the storefront page's, which the
//! gateway's relay receives from browsers — to the collector this service
//! exports its own spans to.
//!
//! [`SpanForwarder`] is built by [`crate::Telemetry::build`] from the same
//! resolved configuration as the span exporter, so the relay cannot drift
//! from it: the endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, with `/v1/traces`
//! appended for OTLP/HTTP, as the exporter does), the protocol (`grpc`: the
//! collector's `TraceService/Export`, on a channel whose connection runs on
//! the exporters' own runtime; `http/protobuf`: a `POST` of the protobuf)
//! and the time limit of one export (`OTEL_EXPORTER_OTLP_TIMEOUT`). With
//! traces off (`OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`) there
//! is none, and service code finds `None`.
//!
//! Like the propagator and the meter, the forwarder travels in the
//! service's dispatcher: [`SpanForwarder::current`] finds it where the
//! service is built.

use std::{sync::Arc, time::Duration};

use http::{Request, Uri, header};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use prost::Message;
use tonic::{Code, transport::Channel};
use tracing_subscriber::{Layer, filter::filter_fn};

use super::Transport;
use crate::{OtlpProtocol, TelemetryError};

/// Sends export requests to the service's collector. Cloning is cheap and
/// shares the connection.
#[derive(Clone, Debug)]
pub struct SpanForwarder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    to: Destination,
    timeout: Duration,
}

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per service, behind an Arc: its size costs nothing"
)]
enum Destination {
    Grpc(TraceServiceClient<Channel>),
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        url: Uri,
    },
}

/// Why a forward failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No answer: the collector cannot be reached, or did not answer within
    /// the export time limit. Worth retrying later.
    #[error("the collector is unreachable: {0}")]
    Unreachable(String),
    /// The collector answered, and refused the spans.
    #[error("the collector refused the spans: {0}")]
    Refused(String),
}

impl SpanForwarder {
    /// The forwarder of the dispatcher current on this thread: the service's,
    /// where its code runs; `None` with traces off or outside any service.
    pub fn current() -> Option<Self> {
        tracing::dispatcher::get_default(|dispatch| {
            dispatch
                .downcast_ref::<ServiceForwarder>()
                .and_then(|layer| layer.0.clone())
        })
    }

    /// A forwarder to the collector at `endpoint` over `protocol`: the
    /// gRPC endpoint, or the full OTLP/HTTP traces URL. Must be called in a
    /// Tokio runtime for gRPC (its channel's tasks are spawned there).
    pub fn new(
        endpoint: &str,
        protocol: OtlpProtocol,
        timeout: Duration,
    ) -> Result<Self, TelemetryError> {
        let invalid = |reason: String| {
            TelemetryError::Exporter(
                opentelemetry_otlp::ExporterBuildError::InvalidConfiguration(format!(
                    "{endpoint}: {reason}"
                )),
            )
        };
        let to = match protocol {
            OtlpProtocol::Grpc => {
                let channel = Channel::from_shared(endpoint.to_owned())
                    .map_err(|error| invalid(error.to_string()))?
                    .connect_timeout(timeout)
                    .timeout(timeout)
                    .connect_lazy();
                Destination::Grpc(TraceServiceClient::new(channel))
            }
            OtlpProtocol::HttpProtobuf => Destination::Http {
                client: Client::builder(TokioExecutor::new()).build_http(),
                url: endpoint
                    .parse()
                    .map_err(|error: http::uri::InvalidUri| invalid(error.to_string()))?,
            },
        };
        Ok(Self {
            inner: Arc::new(Inner { to, timeout }),
        })
    }

    /// The forwarder of a service exporting through `transport`.
    pub(crate) fn build(transport: &Transport<'_>) -> Result<Self, TelemetryError> {
        let config = transport.config;
        match config.protocol {
            OtlpProtocol::Grpc => {
                let _entered = transport.runtime.map(|runtime| runtime.handle.enter());
                Self::new(&config.endpoint, config.protocol, config.export_timeout)
            }
            OtlpProtocol::HttpProtobuf => Self::new(
                &transport.http_url("traces"),
                config.protocol,
                config.export_timeout,
            ),
        }
    }

    /// Sends `request` and waits, at most the export time limit, for the
    /// collector's answer.
    pub async fn forward(&self, request: ExportTraceServiceRequest) -> Result<(), ForwardError> {
        let timeout = self.inner.timeout;
        let sent =
            async {
                match &self.inner.to {
                    Destination::Grpc(client) => {
                        let mut client = client.clone();
                        client.export(request).await.map(drop).map_err(|status| {
                            match status.code() {
                                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                                    ForwardError::Unreachable(status.message().to_owned())
                                }
                                code => {
                                    ForwardError::Refused(format!("{code:?}: {}", status.message()))
                                }
                            }
                        })
                    }
                    Destination::Http { client, url } => {
                        post(client, url, request.encode_to_vec()).await
                    }
                }
            };
        tokio::time::timeout(timeout, sent)
            .await
            .unwrap_or_else(|_| {
                Err(ForwardError::Unreachable(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            })
    }
}

/// `POST`s an encoded export request to `url`.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &Uri,
    body: Vec<u8>,
) -> Result<(), ForwardError> {
    let request = Request::post(url.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| ForwardError::Refused(error.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|error| ForwardError::Unreachable(error.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status == http::StatusCode::SERVICE_UNAVAILABLE
        || status == http::StatusCode::TOO_MANY_REQUESTS
    {
        Err(ForwardError::Unreachable(format!(
            "the collector answered {status}"
        )))
    } else {
        Err(ForwardError::Refused(format!(
            "the collector answered {status}"
        )))
    }
}

/// A service's forwarder (none with traces off), as a `tracing` layer so
/// that it lives in the service's dispatcher, where
/// [`SpanForwarder::current`] finds it.
pub(crate) struct ServiceForwarder(Option<SpanForwarder>);

impl<S: tracing::Subscriber> Layer<S> for ServiceForwarder {}

/// The layer carrying `forwarder`. Its filter turns every span and event
/// away, so it enables no callsite the other layers leave off.
pub(crate) fn service_layer<S>(forwarder: Option<SpanForwarder>) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    ServiceForwarder(forwarder).with_filter(filter_fn(|_| false))
}
