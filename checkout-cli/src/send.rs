//! `checkout send`: one checkout, with its trace id and Jaeger link.
//!
//! The quickest way to see the pipeline work end to end: post a cart with a fresh
//! `traceparent` (and optional baggage), then print what came back together with the
//! trace id and a link that opens the trace in the Jaeger UI. Failures are traced too,
//! so the link is printed for error responses as well.

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use contracts::http::IDEMPOTENCY_KEY_HEADER;

use crate::checkout::{self, BaggageEntry, CheckoutResponse, Item, TraceContext};

/// Arguments of `checkout send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Cart line as ID or ID:QTY; repeat for more lines [default: 1:1]
    #[arg(long = "item", value_name = "ID[:QTY]")]
    pub items: Vec<Item>,
    /// Gateway base URL
    #[arg(
        long,
        env = "CHECKOUT_GATEWAY",
        default_value = "http://localhost:8081",
        value_name = "URL"
    )]
    pub gateway: String,
    /// W3C baggage entry sent with the request; repeat for more
    #[arg(long, value_name = "KEY=VALUE")]
    pub baggage: Vec<BaggageEntry>,
    /// Idempotency-Key header: resending with the same key returns the same order
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// API key, sent as `Authorization: Bearer <key>` (needed when the gateway has API_KEYS)
    #[arg(
        long,
        env = "CHECKOUT_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Jaeger UI base URL, for the printed trace link
    #[arg(
        long,
        env = "JAEGER_UI_URL",
        default_value = "http://localhost:16686",
        value_name = "URL"
    )]
    pub jaeger_ui: String,
    /// Give up on the gateway after this long
    #[arg(long, value_parser = crate::duration::parse_duration, default_value = "10s", value_name = "DURATION")]
    pub timeout: Duration,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Gateway base URL, e.g. `http://localhost:8081`.
    pub gateway: String,
    /// Cart lines; the CLI defaults to item 1 × 1 when none are given.
    pub items: Vec<Item>,
    /// W3C baggage entries.
    pub baggage: Vec<BaggageEntry>,
    /// Optional `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Optional API key (`Authorization: Bearer <key>`).
    pub api_key: Option<String>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// HTTP status.
    pub status: reqwest::StatusCode,
    /// The decoded body, or `None` if it matched neither documented shape.
    pub response: Option<CheckoutResponse>,
    /// The raw body (for bodies that did not decode).
    pub body: String,
    /// The trace this request was sent in (from our `traceparent`).
    pub trace_id: String,
}

impl SendOutcome {
    /// Whether the checkout was accepted (2xx).
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The trace to look at: the one the gateway reports, else the one we started.
    pub fn trace_id(&self) -> &str {
        match &self.response {
            Some(CheckoutResponse::Accepted(accepted)) => &accepted.trace_id,
            _ => &self.trace_id,
        }
    }

    /// A link to the trace in the Jaeger UI at `jaeger_ui`.
    pub fn jaeger_link(&self, jaeger_ui: &str) -> String {
        format!(
            "{}/trace/{}",
            jaeger_ui.trim_end_matches('/'),
            self.trace_id()
        )
    }
}

/// Posts one checkout in a new trace. Errors are transport failures only; an error
/// status is a normal [`SendOutcome`].
pub async fn send(
    client: &reqwest::Client,
    options: &SendOptions,
) -> Result<SendOutcome, reqwest::Error> {
    let trace = TraceContext::random();
    let baggage = checkout::baggage_header(&options.baggage);
    let body = serde_json::to_string(&checkout::body(&options.items)).unwrap_or_default();
    let mut request = checkout::request(
        client,
        &checkout::checkout_url(&options.gateway),
        body,
        &trace,
        baggage.as_deref(),
    );
    if let Some(key) = &options.idempotency_key {
        request = request.header(IDEMPOTENCY_KEY_HEADER, key);
    }
    if let Some(key) = &options.api_key {
        // Marks the header sensitive, so reqwest's own logs leave it out.
        request = request.bearer_auth(key);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.text().await?;
    Ok(SendOutcome {
        status,
        response: serde_json::from_str(&body).ok(),
        body,
        trace_id: trace.trace_id,
    })
}

/// Labelled lines: status, then order and total or the error, then the trace id.
impl fmt::Display for SendOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status   {}", self.status)?;
        match &self.response {
            Some(CheckoutResponse::Accepted(accepted)) => {
                writeln!(f, "order    {}", accepted.order_id)?;
                writeln!(f, "total    {}", accepted.total_amount)?;
            }
            Some(CheckoutResponse::Rejected(body)) => {
                writeln!(f, "error    {}: {}", body.error.code, body.error.message)?;
            }
            None if self.body.is_empty() => {}
            None => writeln!(f, "body     {}", self.body.trim())?,
        }
        write!(f, "trace    {}", self.trace_id())?;
        if self.trace_id() != self.trace_id {
            write!(
                f,
                " (the gateway did not continue our trace {})",
                self.trace_id
            )?;
        }
        Ok(())
    }
}

/// Runs `checkout send`: prints the outcome and the Jaeger link; fails on an error status.
pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder().timeout(args.timeout).build()?;
    let options = SendOptions {
        items: if args.items.is_empty() {
            vec![Item { id: 1, quantity: 1 }]
        } else {
            args.items
        },
        gateway: args.gateway,
        baggage: args.baggage,
        idempotency_key: args.idempotency_key,
        api_key: args.api_key,
    };
    let outcome = send(&client, &options)
        .await
        .with_context(|| format!("could not reach the gateway at {}", options.gateway))?;
    println!("{outcome}");
    println!("jaeger   {}", outcome.jaeger_link(&args.jaeger_ui));
    Ok(if outcome.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
