//! `checkout trace`: one trace fetched from Jaeger's HTTP query API, as a waterfall.
//!
//! Handy when the services export to Jaeger (the docker-compose setup) and you want
//! the trace from a `checkout send` in the terminal, or as JSON for a script. Jaeger
//! has two HTTP APIs and which one answers depends on its version, so both are tried:
//!
//! 1. [`v3`]: `GET /api/v3/traces/{id}`, Jaeger's current query API; the body is OTLP
//!    JSON `TracesData` wrapped as `{"result": {...}}`, read with `opentelemetry-proto`'s
//!    types. Jaeger 1.x wrote it in another JSON dialect; that fails, and the legacy API
//!    answers instead.
//! 2. [`legacy`]: `GET /api/traces/{id}`, the internal API behind the Jaeger UI, in
//!    Jaeger's own span model (not OTLP); served by every Jaeger version so far.
//!
//! Both convert into [`ReceivedSpan`]s, so the waterfall and JSON output are the same
//! as for `checkout traces`.

pub mod legacy;
pub mod v3;

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use testkit::receiver::{ReceivedSpan, SpanKind};

use crate::waterfall;

/// Arguments of `checkout trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Trace id: up to 32 hex digits
    pub trace_id: String,
    /// Jaeger UI base URL (its query API is served at the same address)
    #[arg(
        long = "jaeger-ui",
        alias = "jaeger",
        env = "JAEGER_UI_URL",
        default_value = "http://localhost:16686",
        value_name = "URL"
    )]
    pub jaeger_ui: String,
    /// Print the trace as one JSON object instead of a waterfall
    #[arg(long)]
    pub json: bool,
    /// Width of the timeline bars, in characters
    #[arg(long, default_value_t = 40, value_name = "CHARS")]
    pub width: usize,
}

/// Why a trace could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum JaegerError {
    /// Not a trace id.
    #[error("invalid trace id {0:?}: expected 1 to 32 hex digits")]
    InvalidTraceId(String),
    /// The request failed (connection, timeout, ...).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// Jaeger answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Jaeger's error message, or the start of the body.
        message: String,
    },
    /// The body is not in the expected shape.
    #[error("unexpected response: {0}")]
    Json(#[from] serde_json::Error),
    /// The body reports an error.
    #[error("Jaeger reported: {0}")]
    Api(String),
    /// The body has no spans.
    #[error("the trace has no spans")]
    Empty,
    /// Both APIs failed.
    #[error("API v3: {v3}; legacy API: {legacy}")]
    BothFailed {
        /// How `/api/v3/traces/{id}` failed.
        v3: Box<JaegerError>,
        /// How `/api/traces/{id}` failed.
        legacy: Box<JaegerError>,
    },
}

/// Fetches trace `trace_id` from the Jaeger at `jaeger` (e.g. `http://localhost:16686`):
/// API v3 first, then the legacy API. The spans are sorted by start time.
pub async fn fetch_trace(
    client: &reqwest::Client,
    jaeger: &str,
    trace_id: &str,
) -> Result<Vec<ReceivedSpan>, JaegerError> {
    let id = normalize_trace_id(trace_id)?;
    let base = jaeger.trim_end_matches('/');
    let v3 = match get(client, &format!("{base}/api/v3/traces/{id}"), v3::parse).await {
        Ok(spans) => return Ok(spans),
        // Nobody is listening: the legacy API on the same address would not answer either.
        Err(JaegerError::Http(error)) if error.is_connect() => {
            return Err(JaegerError::Http(error));
        }
        Err(error) => error,
    };
    get(client, &format!("{base}/api/traces/{id}"), legacy::parse)
        .await
        .map_err(|legacy| JaegerError::BothFailed {
            v3: Box::new(v3),
            legacy: Box::new(legacy),
        })
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    parse: fn(&str) -> Result<Vec<ReceivedSpan>, JaegerError>,
) -> Result<Vec<ReceivedSpan>, JaegerError> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        return Err(JaegerError::Status {
            status: status.as_u16(),
            message: error_message(&body),
        });
    }
    let mut spans = parse(&body)?;
    if spans.is_empty() {
        return Err(JaegerError::Empty);
    }
    spans.sort_by_key(|span| span.start_unix_nanos);
    Ok(spans)
}

/// The message of an error body: v3's `{"error":{"message"}}`, the legacy
/// `{"errors":[{"msg"}]}`, or else the start of the body.
fn error_message(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_default();
    json["error"]["message"]
        .as_str()
        .or_else(|| json["errors"][0]["msg"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.trim().chars().take(200).collect())
}

/// Lowercase, left-padded to 32 digits (Jaeger prints 64-bit ids with 16).
fn normalize_trace_id(trace_id: &str) -> Result<String, JaegerError> {
    let id = trace_id.trim();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(JaegerError::InvalidTraceId(trace_id.to_owned()));
    }
    Ok(format!("{:0>32}", id.to_ascii_lowercase()))
}

/// A span kind by name, as Jaeger writes it: `server`, `SERVER` or `SPAN_KIND_SERVER`.
pub fn kind_from_name(name: &str) -> SpanKind {
    match name
        .trim_start_matches("SPAN_KIND_")
        .to_ascii_lowercase()
        .as_str()
    {
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

/// Runs `checkout trace`.
pub async fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let spans = fetch_trace(&client, &args.jaeger_ui, &args.trace_id)
        .await
        .with_context(|| format!("trace {} from {}", args.trace_id, args.jaeger_ui))?;
    if args.json {
        println!("{}", waterfall::render_json(&spans));
    } else {
        print!("{}", waterfall::render_waterfall(&spans, args.width));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_validated_and_padded() {
        assert_eq!(
            normalize_trace_id(" 4BF92F3577B34DA6A3CE929D0E0E4736 ")
                .ok()
                .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            normalize_trace_id("a3ce929d0e0e4736").ok().as_deref(),
            Some("0000000000000000a3ce929d0e0e4736")
        );
        for bad in ["", "xyz", "../api/services", &"a".repeat(33)] {
            assert!(normalize_trace_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_messages_come_from_either_api_shape() {
        let v3 = r#"{"error":{"httpCode":404,"message":"trace not found"}}"#;
        let legacy = r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}"#;
        assert_eq!(error_message(v3), "trace not found");
        assert_eq!(error_message(legacy), "trace not found");
        assert_eq!(error_message("404 page not found\n"), "404 page not found");
    }
}
