//! Telemetry for the checkout services: OpenTelemetry traces over OTLP, JSON
//! logs that carry the trace and span ids, one builder per span kind, and
//! trace-context propagation for each protocol.
//!
//! Every service reads [`TelemetryArgs`] (the standard `OTEL_*` variables
//! and `RUST_LOG`) with its other settings and calls [`Telemetry::build`]
//! once at start. Spans are written with the `tracing` macros, each kind by
//! one function in [`spans`]; the `tracing-opentelemetry` layer turns them
//! into OpenTelemetry spans, exported in batches on their own thread.
//!
//! [`Telemetry`] is a value, not hidden global state: a binary installs it as
//! the process default ([`Telemetry::install_global`]), while tests that run
//! several services in one process give each its own (see
//! [`Telemetry::dispatch`]) so each keeps its own `service.name`.
//!
//! # Layout
//!
//! - [`config`]: the settings ([`TelemetryArgs`], [`TelemetryConfig`]).
//! - `export`: exporter, batch processor, tracer provider, and the exporter's
//!   own runtime.
//! - `logs`: the JSON log layer.
//! - [`spans`]: one builder per span kind — HTTP server, gRPC client and
//!   server, messaging producer and consumer, database client — with the
//!   semantic conventions' attribute names, and [`spans::record_error`], the
//!   one way a span is marked as failed.
//! - [`propagation`]: the trace context on the wire, one file per protocol
//!   (the AMQP one with the `amqp` feature, so the gateway links no AMQP
//!   client), in the formats `OTEL_PROPAGATORS` names; each service's
//!   propagator travels in its dispatcher, like its `service.name`.

pub mod config;
mod export;
mod logs;
pub mod propagation;
pub mod spans;

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use service::{shutdown, startup::Service};
use tracing::{Dispatch, dispatcher::WeakDispatch};
use tracing_subscriber::{
    EnvFilter,
    filter::filter_fn,
    layer::{Layer, SubscriberExt},
};

pub use config::{
    BatchSettings, OtlpProtocol, ResourceAttributes, SamplerSetting, TelemetryArgs, TelemetryConfig,
};
use export::{ExportRuntime, is_export_machinery, tracer_provider};
use logs::json_logs;
pub use propagation::{PropagatorName, Propagators};

/// Telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// `RUST_LOG` does not parse.
    #[error("invalid RUST_LOG: {0}")]
    LogFilter(#[from] tracing_subscriber::filter::ParseError),
    /// The exporter's runtime or its thread could not be created.
    #[error("cannot start the OTLP exporter's runtime: {0}")]
    ExportRuntime(std::io::Error),
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// A service's tracer provider and `tracing` dispatcher. Cloning shares them.
#[derive(Clone)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    dispatch: Dispatch,
    /// Where the OTLP/gRPC exporter's channel runs; `None` without one.
    export_runtime: Option<Arc<ExportRuntime>>,
}

impl Telemetry {
    /// Builds the exporter, provider and subscriber. The gRPC exporter's
    /// channel runs on a runtime of its own (see `ExportRuntime`), so this
    /// needs no Tokio context.
    pub fn build(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        Self::build_with_writer(config, std::io::stdout)
    }

    /// As [`Telemetry::build`], writing logs to `writer` (tests capture them).
    pub fn build_with_writer<W>(config: &TelemetryConfig, writer: W) -> Result<Self, TelemetryError>
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        let (provider, export_runtime) = if config.traces_enabled {
            let (provider, export_runtime) = tracer_provider(config)?;
            (Some(provider), export_runtime)
        } else {
            (None, None)
        };
        // `RUST_LOG` filters the logs only: which spans are traced must not
        // depend on how verbose the logs are (RUST_LOG=warn keeps its traces).
        let log_filter = EnvFilter::builder().parse(&config.log_filter)?;
        let own_dispatch = Arc::new(OnceLock::<WeakDispatch>::new());
        let registry = tracing_subscriber::registry()
            .with(json_logs(writer, own_dispatch.clone()).with_filter(log_filter))
            // The carriers find the service's propagator in its dispatcher
            // (see `propagation`); it is built here, once.
            .with(propagation::service_layer(&config.propagators));
        let dispatch = match &provider {
            Some(provider) => {
                let tracer = provider.tracer(config.service_name.clone());
                let spans = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
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
                    }));
                Dispatch::new(registry.with(spans))
            }
            None => Dispatch::new(registry),
        };
        let _ = own_dispatch.set(dispatch.downgrade());
        Ok(Self {
            provider,
            dispatch,
            export_runtime,
        })
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

    /// Exports every finished span now (tests call this before asserting).
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "span flush failed");
        }
    }

    /// Flushes what is queued and stops the exporter. Blocking work runs off
    /// the async threads.
    pub async fn shutdown(&self) {
        if let Some(provider) = self.provider.clone() {
            let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = result {
                tracing::warn!(%error, "telemetry shutdown incomplete");
            }
        }
        if let Some(export_runtime) = &self.export_runtime {
            export_runtime.stop();
        }
    }
}

/// A service binary's `main`: telemetry from `args` as the process default,
/// then `S` built from `settings`, its start-up line logged, and served
/// until SIGINT/SIGTERM; last, the spans still queued are exported (those of
/// a failed start included).
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
