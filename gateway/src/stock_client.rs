//! The HTTP client for stock-service's order status: what
//! `GET /api/orders/{orderId}` asks before answering the same.
//!
//! stock-service decides an order after the gateway's 202, so a client
//! (the storefront page) polls the gateway, which asks stock-service's
//! `GET /api/orders/{orderId}` (`STOCK_SERVICE_URL`) and passes its answer
//! on: the status and the JSON body, a `contracts::http::OrderView` or the
//! error body. Each request has an HTTP CLIENT span
//! ([`telemetry::spans::http::client`], `GET /api/orders/{orderId}`) whose
//! context goes out in the request's headers in the configured formats
//! ([`telemetry::propagation::http::inject`]), so stock-service's SERVER
//! span joins the page's trace.
//!
//! Bounded: the whole exchange within [`ORDER_STATUS_TIMEOUT`] (a 504
//! after), an answer of at most [`MAX_ANSWER_BYTES`] (a 502 past it), and a
//! refused or failed connection is a 503. The client is hyper-util's, which
//! tonic and axum already bring in: one pooled HTTP/1.1 connection per
//! concurrent poll, no TLS (stock-service is reached inside the
//! deployment's network).

use std::time::Duration;

use axum::{
    body::Bytes,
    http::{HeaderValue, Method, Request, StatusCode, Uri, header},
};
use contracts::error::ApiError;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use telemetry::{propagation, spans};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// How long an order-status request to stock-service may take, connecting
/// included; a 504 after. stock-service answers from one indexed read.
pub const ORDER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest answer read from stock-service (an `OrderView` is ~200 bytes).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// The route template of the call, its span's name and `url.template`.
const ORDER_TEMPLATE: &str = "/api/orders/{orderId}";

/// Parses `STOCK_SERVICE_URL`: `http://host:port` (a bare `host:port` is
/// accepted), with no credentials, query or fragment; a path is kept as a
/// prefix. Plain HTTP only: no TLS client is linked.
pub fn parse_stock_url(raw: &str) -> Result<Uri, String> {
    let url = service::configuration::parse_endpoint_url(raw)?;
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("expected http://host:port (stock-service is reached without TLS)".to_owned());
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') || uri.query().is_some() {
        return Err("expected http://host:port, without credentials or a query".to_owned());
    }
    Ok(uri)
}

/// A traced caller of stock-service's order status. Cloning is cheap and
/// shares the connection pool.
#[derive(Clone, Debug)]
pub struct StockClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: Uri,
    durations: spans::http::ClientDurations,
}

/// stock-service's answer: its status and JSON body, passed on as they are.
#[derive(Clone, Debug)]
pub struct StockAnswer {
    /// stock-service's status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
}

impl StockClient {
    /// A client of stock-service at `base` (from [`parse_stock_url`]).
    /// Connects when first used. Build it under the service's dispatcher,
    /// where its duration histogram is made.
    pub fn new(base: Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(ORDER_STATUS_TIMEOUT));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base,
            durations: spans::http::ClientDurations::new(),
        }
    }

    /// Asks stock-service for `order_id`'s status, in a CLIENT span.
    pub async fn order(&self, order_id: Uuid) -> Result<StockAnswer, ApiError> {
        let url = self.url(&format!("/api/orders/{order_id}"))?;
        let (span, timed) = spans::http::client(&Method::GET, &url, ORDER_TEMPLATE);
        let mut request = Request::get(url)
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .body(Empty::new())
            .map_err(|error| ApiError::internal(error.to_string()))?;
        propagation::http::inject(&span.context(), request.headers_mut());
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| (Failure::Connect, error.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|error| (Failure::Body, error.to_string()))?
                .to_bytes();
            Ok::<_, (Failure, String)>(StockAnswer { status, body })
        };
        let outcome = tokio::time::timeout(ORDER_STATUS_TIMEOUT, exchange)
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| Err((Failure::Timeout, "no answer in time".to_owned())));
        match outcome {
            Ok(answer) => {
                spans::http::record_client_response(
                    &span,
                    &self.durations,
                    &timed,
                    Ok(answer.status),
                );
                Ok(answer)
            }
            Err((failure, detail)) => {
                spans::http::record_client_response(
                    &span,
                    &self.durations,
                    &timed,
                    Err(failure.error_type()),
                );
                tracing::warn!(parent: &span, %detail, "order status from stock-service failed");
                Err(failure.into_api_error())
            }
        }
    }

    /// `path` under the base URL's path.
    fn url(&self, path: &str) -> Result<Uri, ApiError> {
        let prefix = self.base.path().trim_end_matches('/');
        Uri::builder()
            .scheme("http")
            .authority(
                self.base
                    .authority()
                    .map(|a| a.as_str())
                    .unwrap_or_default(),
            )
            .path_and_query(format!("{prefix}{path}"))
            .build()
            .map_err(|error| ApiError::internal(error.to_string()))
    }
}

/// What left no answer to pass on.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// No connection, or it broke before the answer's head.
    Connect,
    /// The body broke off or was too large.
    Body,
    /// Nothing within [`ORDER_STATUS_TIMEOUT`].
    Timeout,
}

impl Failure {
    /// `error.type` on the span and the measurement.
    fn error_type(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Body => "response_body",
            Self::Timeout => "timeout",
        }
    }

    /// What the client is told.
    fn into_api_error(self) -> ApiError {
        match self {
            Self::Connect => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "stock-service is unavailable, try again later",
            ),
            Self::Body => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "stock-service's answer broke off or was too large",
            ),
            Self::Timeout => ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                "stock-service did not answer in time",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_urls_are_plain_http_without_credentials() {
        assert_eq!(
            parse_stock_url("stock-service:8082").unwrap().to_string(),
            "http://stock-service:8082/"
        );
        assert!(parse_stock_url("http://127.0.0.1:8082/").is_ok());
        for bad in [
            "https://stock:8082",
            "http://user:pw@stock:8082",
            "http://stock:8082/?x=1",
            "",
        ] {
            assert!(parse_stock_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn order_urls_keep_a_base_path() {
        let client = |base: &str| StockClient {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            base: parse_stock_url(base).unwrap(),
            durations: spans::http::ClientDurations::new(),
        };
        assert_eq!(
            client("http://stock:8082")
                .url("/api/orders/x")
                .unwrap()
                .to_string(),
            "http://stock:8082/api/orders/x"
        );
        assert_eq!(
            client("http://proxy/stock/")
                .url("/api/orders/x")
                .unwrap()
                .to_string(),
            "http://proxy/stock/api/orders/x"
        );
    }
}
