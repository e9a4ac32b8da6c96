//! Forwarding spans recorded elsewhere — the storefront page's, which the
//! gateway's relay receives from browsers — to the collector this service
//! exports its own spans to.
//!
//! [`SpanForwarder`] is built by [`crate::Telemetry::build`] from the same
//! resolved configuration as the span exporter, so the relay cannot drift
//! from it: the endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, with `/v1/traces`
//! appended for OTLP/HTTP, as the exporter does), the protocol (`grpc`: the
//! collector's `TraceService/Export`, on a channel whose connection runs on
//! the exporters' own runtime; `http/protobuf`: a `POST` of the protobuf),
//! the headers (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else
//! `OTEL_EXPORTER_OTLP_HEADERS`) and the time limit of one export
//! (`OTEL_EXPORTER_OTLP_TIMEOUT`). With
//! traces off (`OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`) there
//! is none, and service code finds `None`.
//!
//! [`SpanForwarder::current`] finds it where the service is built (it lives
//! in `service_context`, with the service's other per-service parts).

use std::{sync::Arc, time::Duration};

use http::{HeaderMap, Request, Uri, header};
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
use tonic::{Code, metadata::MetadataMap, transport::Channel};

use super::Transport;
use crate::{OtlpHeaders, OtlpProtocol, TelemetryError};

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
    /// Sent with every forward.
    headers: HeaderMap,
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
    /// A forwarder to the collector at `endpoint` over `protocol` (the
    /// gRPC endpoint, or the full OTLP/HTTP traces URL), sending `headers`,
    /// waiting at most `timeout` for each answer. Must be called in a Tokio
    /// runtime for gRPC (its channel's tasks are spawned there).
    pub fn new(
        endpoint: &str,
        protocol: OtlpProtocol,
        timeout: Duration,
        headers: &OtlpHeaders,
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
            inner: Arc::new(Inner {
                to,
                timeout,
                headers: headers.header_map(),
            }),
        })
    }

    /// The forwarder of a service exporting through `transport`.
    pub(crate) fn build(transport: &Transport<'_>) -> Result<Self, TelemetryError> {
        let config = transport.config;
        match config.protocol {
            OtlpProtocol::Grpc => {
                let _entered = transport.runtime.map(|runtime| runtime.handle.enter());
                Self::new(
                    &config.endpoint,
                    config.protocol,
                    config.export_timeout,
                    &config.trace_headers,
                )
            }
            OtlpProtocol::HttpProtobuf => Self::new(
                &transport.http_url("traces"),
                config.protocol,
                config.export_timeout,
                &config.trace_headers,
            ),
        }
    }

    /// Sends `request` and waits, at most the export time limit, for the
    /// collector's answer.
    pub async fn forward(&self, request: ExportTraceServiceRequest) -> Result<(), ForwardError> {
        let timeout = self.inner.timeout;
        let headers = &self.inner.headers;
        let sent = async {
            match &self.inner.to {
                Destination::Grpc(client) => {
                    let mut request = tonic::Request::new(request);
                    *request.metadata_mut() = MetadataMap::from_headers(headers.clone());
                    client
                        .clone()
                        .export(request)
                        .await
                        .map(drop)
                        .map_err(grpc_failure)
                }
                Destination::Http { client, url } => {
                    post(client, url, headers, request.encode_to_vec()).await
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

/// What a gRPC status from the collector means: no answer (unavailable,
/// timed out, cancelled), or a refusal.
fn grpc_failure(status: tonic::Status) -> ForwardError {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            ForwardError::Unreachable(status.message().to_owned())
        }
        code => ForwardError::Refused(format!("{code:?}: {}", status.message())),
    }
}

/// `POST`s an encoded export request to `url` with `headers`.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &Uri,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<(), ForwardError> {
    let mut request = Request::post(url.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| ForwardError::Refused(error.to_string()))?;
    request.headers_mut().extend(headers.clone());
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

#[cfg(test)]
mod tests {
    use axum::{Router, body::Bytes as Body, extract::State, routing::post};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use tokio::sync::mpsc;

    use super::*;

    /// An OTLP/HTTP collector on a free port that answers `status` and
    /// hands each request's headers and body to the test.
    async fn collector(
        status: http::StatusCode,
    ) -> (String, mpsc::UnboundedReceiver<(HeaderMap, Body)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let app = Router::new()
            .route(
                "/v1/traces",
                post(
                    move |State(tx): State<mpsc::UnboundedSender<(HeaderMap, Body)>>,
                          headers: HeaderMap,
                          body: Body| async move {
                        let _ = tx.send((headers, body));
                        status
                    },
                ),
            )
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    fn one_span() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "click".to_owned(),
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[tokio::test]
    async fn http_forwards_post_the_protobuf_with_the_headers() {
        let (url, mut received) = collector(http::StatusCode::OK).await;
        let headers = OtlpHeaders::parse("api-key=s3cret").unwrap();
        let forwarder = SpanForwarder::new(
            &url,
            OtlpProtocol::HttpProtobuf,
            Duration::from_secs(5),
            &headers,
        )
        .unwrap();
        forwarder.forward(one_span()).await.unwrap();
        let (headers, body) = received.recv().await.unwrap();
        assert_eq!(headers["api-key"], "s3cret");
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(ExportTraceServiceRequest::decode(body).unwrap(), one_span());
    }

    #[tokio::test]
    async fn a_refusal_and_an_absent_collector_are_told_apart() {
        let (url, _received) = collector(http::StatusCode::BAD_REQUEST).await;
        let none = OtlpHeaders::default();
        let refusing = SpanForwarder::new(
            &url,
            OtlpProtocol::HttpProtobuf,
            Duration::from_secs(5),
            &none,
        )
        .unwrap();
        assert!(matches!(
            refusing.forward(one_span()).await,
            Err(ForwardError::Refused(_))
        ));
        for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc] {
            let absent = SpanForwarder::new(
                "http://127.0.0.1:1",
                protocol,
                Duration::from_secs(5),
                &none,
            )
            .unwrap();
            assert!(
                matches!(
                    absent.forward(one_span()).await,
                    Err(ForwardError::Unreachable(_))
                ),
                "{protocol:?}"
            );
        }
    }
}
