//! Telemetry for the checkout services: OpenTelemetry traces, metrics and
//! logs over OTLP, JSON logs that carry the trace and span ids, one builder
//! per span kind, and trace-context propagation for each protocol.
//!
//! Every service reads [`TelemetryArgs`] (the standard `OTEL_*` variables
//! and `RUST_LOG`) with its other settings and calls [`Telemetry::build`]
//! once at start. Spans are written with the `tracing` macros, each kind by
//! one function in [`spans`]; the `tracing-opentelemetry` layer turns them
//! into OpenTelemetry spans, exported in batches on their own thread. Log
//! events become JSON lines and, through `opentelemetry-appender-tracing`,
//! OTLP log records with the trace and span ids of the span they happen in.
//! Measurements go through the service's meter ([`metrics::meter`]), named
//! as [`metric_names`] says, exported periodically. All three signals carry
//! the same resource (`service.name`, `service.version`, …).
//!
//! [`Telemetry`] is a value, not hidden global state: a binary installs it as
//! the process default ([`Telemetry::install_global`]); see below for why it
//! is not the SDK's globals.
//!
//! # One service's telemetry per dispatcher, not the SDK's globals
//!
//! The end-to-end tests run the three services in the test's process, each
//! built with its own `Application::build` on port 0, the way a reader would
//! test a service of their own; only the fault tests that must SIGKILL a
//! service start it as a process. Several such pipelines run at once in one
//! test binary, each service with its own settings (`service.name`,
//! `OTEL_PROPAGATORS`, its collector): the SDK's process-wide propagator and
//! meter provider could hold only one of them. So everything a service's code
//! looks up at run time — the carriers' propagator, the meter provider, and
//! the gateway relay's span forwarder — travels in that service's `tracing`
//! dispatcher ([`Telemetry::dispatch`], one layer: `service_context`),
//! which is the process default in a binary and the service's own in a test.
//! That is the whole cost in production code: one layer and one lookup.
//!
//! Time is not the reason: measured on the 2-core machine (debug build), a
//! pipeline started in-process, one checkout through it and its shutdown took
//! 0.41–0.54 s (median 0.46 s), the same with the three services as child
//! processes 0.43–0.94 s (median 0.59 s); the suite starts 38 in-process
//! pipelines, so processes would add some 5 s to a run of several minutes.
//! What in-process gives is the service as a library under test: its settings
//! as values rather than environment strings, its log lines in a writer the
//! test reads, a service restarted on a thread, and a failing service's panic
//! in the test's own output.
//!
//! # Layout
//!
//! - [`config`]: the settings ([`TelemetryArgs`], [`TelemetryConfig`]), those
//!   of metrics and logs in [`config::signals`].
//! - `export`: one pipeline per signal (exporter, batching, provider), the
//!   exporters' own runtime, and the count of what they delivered and lost;
//!   and [`SpanForwarder`], which sends spans recorded elsewhere (a
//!   browser's, through the gateway's relay) to the same collector.
//! - `logs`: the JSON log layer and the OTLP log layer.
//! - [`metrics`]: how service code gets its service's meter.
//! - [`metric_names`]: the metric names the services record and
//!   `checkout top` reads.
//! - [`spans`]: one builder per span kind — HTTP server, gRPC client and
//!   server, messaging producer and consumer, database client — with the
//!   semantic conventions' attribute names, and [`spans::record_error`], the
//!   one way a span is marked as failed.
//! - [`propagation`]: the trace context on the wire, one file per protocol
//!   (the AMQP one with the `amqp` feature, so the gateway links no AMQP
//!   client), in the formats `OTEL_PROPAGATORS` names.
//! - `service_context`: what a service's code finds in its dispatcher (its
//!   propagator, meters and span forwarder).

pub mod config;
mod export;
mod logs;
pub mod metric_names;
pub mod metrics;
pub mod propagation;
mod service_context;
pub mod spans;

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use anyhow::Context as _;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    error::OTelSdkResult, logs::SdkLoggerProvider, metrics::SdkMeterProvider,
    trace::SdkTracerProvider,
};
use service::{shutdown, startup::Service};
use tracing::{Dispatch, dispatcher::WeakDispatch};
use tracing_subscriber::{
    EnvFilter,
    filter::{FilterExt, filter_fn},
    layer::{Layer, SubscriberExt},
};

pub use config::{
    BatchSettings, LogsConfig, MetricsConfig, OtlpHeaders, OtlpProtocol, ResourceAttributes,
    SamplerSetting, SignalArgs, SignalExporter, TelemetryArgs, TelemetryConfig,
};
pub use export::forward::{ForwardError, SpanForwarder};
use export::{
    ExportRuntime, Pipelines, is_export_machinery,
    outage::is_repeated_export_error,
    tally::{ExportTally, SignalCounts},
};
use logs::{json_logs, otlp_logs};
pub use propagation::{PropagatorName, Propagators};

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An OTLP exporter could not be built.
    #[error("cannot build an OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// `RUST_LOG` does not parse.
    #[error("invalid RUST_LOG: {0}")]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    /// The `/metrics` listener could not be bound or started.
    #[error("cannot serve the metrics on METRICS_ADDRESS: {0}")]
    MetricsEndpoint(String),
    /// The exporter's runtime or its thread could not be created.
    #[error("cannot start the OTLP exporter's runtime: {0}")]
    ExportRuntime(std::io::Error),
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// A service's tracer, meter and logger providers (each `None` when its
/// signal is off) and its `tracing` dispatcher. Cloning shares them.
#[derive(Clone)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
    /// Cleared when the logger provider shuts down: the OTLP log layer then
    /// stops handing it records.
    logs_open: Arc<AtomicBool>,
    /// What the exporters delivered and lost, reported at shutdown.
    tally: Arc<ExportTally>,
    dispatch: Dispatch,
    /// Where the OTLP/gRPC exporters' channels run; `None` without one.
    export_runtime: Option<Arc<ExportRuntime>>,
    /// The `/metrics` listener (`METRICS_ADDRESS`), if any.
    prometheus: Option<Arc<export::prometheus::PrometheusEndpoint>>,
}

impl Telemetry {
    /// Builds the exporters, providers and subscriber. The gRPC exporters'
    /// channels run on a runtime of their own (see `ExportRuntime`), so this
    /// needs no Tokio context.
    pub fn build(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        Self::build_with_writer(config, std::io::stdout)
    }

    /// As [`Telemetry::build`], writing logs to `writer` (tests capture them).
    pub fn build_with_writer<W>(config: &TelemetryConfig, writer: W) -> Result<Self, TelemetryError>
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        // `RUST_LOG` filters the logs only (the JSON lines and the OTLP log
        // records alike): which spans are traced must not depend on how
        // verbose the logs are (RUST_LOG=warn keeps its traces). Parsed first,
        // so a bad value starts no exporter.
        let json_filter = EnvFilter::builder().parse(&config.log_filter)?;
        let otlp_filter = EnvFilter::builder().parse(&config.log_filter)?;
        let Pipelines {
            tracer,
            meter,
            logger,
            runtime: export_runtime,
            tally,
            prometheus,
            forwarder,
        } = export::pipelines(config)?;
        let own_dispatch = Arc::new(OnceLock::<WeakDispatch>::new());
        let logs_open = Arc::new(AtomicBool::new(true));
        let otlp_logs = logger.as_ref().map(|provider| {
            otlp_logs(
                provider,
                otlp_filter,
                logs_open.clone(),
                own_dispatch.clone(),
            )
        });
        let spans = tracer.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(config.service_name.clone()))
                // No `busy_ns`/`idle_ns` (not OpenTelemetry conventions,
                // and timing every poll of every instrumented future costs
                // two clock reads) and no `thread.id`/`thread.name` (a
                // tokio worker says nothing about a request): both cost
                // CPU on the hot path and bytes in every exported span.
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_filter(filter_fn(|metadata| {
                    metadata.is_span()
                        && *metadata.level() <= tracing::Level::INFO
                        && !is_export_machinery(metadata.target())
                }))
        });
        let subscriber = tracing_subscriber::registry()
            // The SDK's per-batch export errors are left out: the exporters
            // log a collector's going away once (see `export::outage`).
            .with(json_logs(writer, own_dispatch.clone()).with_filter(
                json_filter.and(filter_fn(|metadata| !is_repeated_export_error(metadata))),
            ))
            .with(otlp_logs)
            // The carriers' propagator, the meters and the relay's span
            // forwarder, each built here, once (see `service_context`).
            .with(
                service_context::ServiceContext {
                    propagator: Arc::new(config.propagators.composite()),
                    meters: meter.clone(),
                    forwarder,
                }
                .layer(),
            )
            .with(spans);
        let dispatch = Dispatch::new(subscriber);
        let _ = own_dispatch.set(dispatch.downgrade());
        let _ = tally.dispatch.set(dispatch.downgrade());
        Ok(Self {
            tracer,
            meter,
            logger,
            logs_open,
            tally,
            dispatch,
            export_runtime,
            prometheus: prometheus.map(Arc::new),
        })
    }

    /// Where `/metrics` is served (`METRICS_ADDRESS`, with the real port if
    /// 0 was asked for); `None` without the listener.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.prometheus.as_ref().map(|endpoint| endpoint.address())
    }

    /// A meter of this service (`name` is the instrumentation scope, e.g. the
    /// crate's name); a no-op one with metrics off. Code running under this
    /// service's dispatcher can use [`metrics::meter`] instead.
    pub fn meter(&self, name: &'static str) -> Meter {
        metrics::meter_of(self.meter.as_ref(), name)
    }

    /// The dispatcher to run this service's code under. A binary makes it
    /// global with [`Telemetry::install_global`]; an in-process test runs each
    /// service's runtime threads with its own.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Makes this the process-wide subscriber (what `main` does).
    pub fn install_global(&self) -> Result<(), TelemetryError> {
        tracing::dispatcher::set_global_default(self.dispatch.clone())
            .map_err(|_| TelemetryError::AlreadyInstalled)
    }

    /// Exports every finished span, the current metric values and every log
    /// record queued, now (tests call this before asserting).
    pub fn force_flush(&self) {
        let results = [
            (
                "spans",
                self.tracer.as_ref().map(SdkTracerProvider::force_flush),
            ),
            (
                "metrics",
                self.meter.as_ref().map(SdkMeterProvider::force_flush),
            ),
            (
                "logs",
                self.logger.as_ref().map(SdkLoggerProvider::force_flush),
            ),
        ];
        warn_failures("flush failed", results);
    }

    /// Flushes what is queued and stops the exporters: spans first, then
    /// metrics (whose last export still counts the spans' export), then
    /// logs; last, one log line with what each exporter delivered and lost
    /// (the SDK logs queue-full drops itself). Blocking work runs off the
    /// async threads, under this service's dispatcher, so the SDK's own
    /// warnings land in this service's logs.
    pub async fn shutdown(&self) {
        let (tracer, meter, logger) =
            (self.tracer.clone(), self.meter.clone(), self.logger.clone());
        let (dispatch, logs_open) = (self.dispatch.clone(), self.logs_open.clone());
        let tally = self.tally.clone();
        let _ = tokio::task::spawn_blocking(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                // A signal whose collector is away fails its last export too:
                // that was logged when it went away, and the totals below
                // count what it lost, so it is not logged a third time.
                let unless_away = |result: Option<OTelSdkResult>, counts: &SignalCounts| {
                    result.filter(|_| !counts.collector_away())
                };
                let spans = unless_away(
                    tracer.as_ref().map(SdkTracerProvider::shutdown),
                    &tally.spans,
                );
                let metrics = unless_away(
                    meter.as_ref().map(SdkMeterProvider::shutdown),
                    &tally.metric_points,
                );
                logs_open.store(false, Ordering::Release);
                let logs = unless_away(
                    logger.as_ref().map(SdkLoggerProvider::shutdown),
                    &tally.logs,
                );
                warn_failures(
                    "telemetry shutdown incomplete",
                    [("spans", spans), ("metrics", metrics), ("logs", logs)],
                );
            });
        })
        .await;
        tracing::dispatcher::with_default(&self.dispatch, || self.log_totals());
        if let Some(export_runtime) = &self.export_runtime {
            export_runtime.stop();
        }
    }

    /// One line: what the exporters delivered and lost (a warning if any
    /// was lost), for the signals that are on.
    fn log_totals(&self) {
        if self.tracer.is_none() && self.meter.is_none() && self.logger.is_none() {
            return;
        }
        let tally = &self.tally;
        let lost = tally.spans.lost() + tally.logs.lost() + tally.metric_points.lost();
        macro_rules! totals {
            ($level:ident) => {
                tracing::$level!(
                    spans_exported = tally.spans.exported(),
                    spans_lost = tally.spans.lost(),
                    log_records_exported = tally.logs.exported(),
                    log_records_lost = tally.logs.lost(),
                    metric_points_exported = tally.metric_points.exported(),
                    metric_points_lost = tally.metric_points.lost(),
                    "telemetry export totals (lost: in exports that failed; queue-full drops are logged by the SDK)"
                )
            };
        }
        if lost > 0 {
            totals!(warn);
        } else {
            totals!(info);
        }
    }
}

/// Logs `what` with each signal's error, if any.
fn warn_failures<const N: usize>(what: &str, results: [(&str, Option<OTelSdkResult>); N]) {
    for (signal, result) in results {
        if let Some(Err(error)) = result {
            tracing::warn!(%error, signal, "{what}");
        }
    }
}

/// A service binary's `main`: telemetry from `args` as the process default,
/// then `S` built from `settings`, its start-up line logged, and served
/// until SIGINT/SIGTERM; last, the spans and log records still queued and
/// the metrics' final values are exported (those of a failed start included).
pub async fn run<S: Service>(settings: S::Settings, args: TelemetryArgs) -> anyhow::Result<()> {
    let config = args
        .into_config(S::NAME, S::VERSION)
        .map_err(anyhow::Error::msg)?;
    let telemetry = Telemetry::build(&config)?;
    telemetry.install_global()?;

    let result = async {
        let application = S::build(settings).await?;
        application.listening().log(S::NAME, S::VERSION);
        application.run_until_stopped(shutdown::on_signal()).await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "{} stopped", S::NAME);
    }
    telemetry.shutdown().await;
    result.with_context(|| format!("{} failed", S::NAME))
}
