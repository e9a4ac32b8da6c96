//! Telemetry set-up: OpenTelemetry traces over OTLP, and JSON logs that carry
//! the trace and span ids.
//!
//! Every service calls [`TelemetryConfig::from_env`] and [`Telemetry::build`]
//! once at start. Spans are written with the `tracing` macros; the
//! `tracing-opentelemetry` layer turns them into OpenTelemetry spans, and the
//! batch span processor exports them on its own thread, so a slow or absent
//! collector never blocks a request: when its bounded queue is full, spans are
//! dropped (and counted by the SDK) rather than queued without limit.
//!
//! The standard variables are honoured: `OTEL_SDK_DISABLED`,
//! `OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`),
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*` for the
//! batch processor, and `RUST_LOG` for the log filter.
//!
//! [`Telemetry`] is a value, not hidden global state: a binary installs it as
//! the process default ([`Telemetry::install_global`]), while tests that run
//! several services in one process give each its own (see
//! [`Telemetry::dispatch`]) so each keeps its own `service.name`.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use opentelemetry::{KeyValue, trace::TraceContextExt, trace::TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider},
};
use tracing::{Dispatch, dispatcher::WeakDispatch};
use tracing_subscriber::{
    EnvFilter,
    filter::filter_fn,
    layer::{Layer, SubscriberExt},
    registry::LookupSpan,
};

use crate::config::{ConfigError, env_bool, env_or, env_parse};

/// How spans are sent to the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317), the default.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
}

impl std::str::FromStr for OtlpProtocol {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            _ => Err("expected grpc or http/protobuf".to_owned()),
        }
    }
}

/// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Debug, PartialEq)]
pub enum SamplerSetting {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with its ratio.
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default)
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with its ratio.
    ParentBasedTraceIdRatio(f64),
}

impl SamplerSetting {
    fn from_env() -> Result<Self, ConfigError> {
        let ratio = env_parse("OTEL_TRACES_SAMPLER_ARG", |raw| match raw.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err("expected a ratio between 0 and 1"),
        })?
        .unwrap_or(1.0);
        Ok(env_parse("OTEL_TRACES_SAMPLER", |raw| {
            Ok::<_, &str>(match raw {
                "always_on" => Self::AlwaysOn,
                "always_off" => Self::AlwaysOff,
                "traceidratio" => Self::TraceIdRatio(ratio),
                "parentbased_always_on" => Self::ParentBasedAlwaysOn,
                "parentbased_always_off" => Self::ParentBasedAlwaysOff,
                "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(ratio),
                _ => return Err("expected always_on, always_off, traceidratio or parentbased_*"),
            })
        })?
        .unwrap_or(Self::ParentBasedAlwaysOn))
    }

    fn to_sampler(&self) -> Sampler {
        match *self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            Self::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Self::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Self::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

/// The batch span processor's bounds (`OTEL_BSP_*`).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSettings {
    /// Spans held before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Time between exports (`OTEL_BSP_SCHEDULE_DELAY`, milliseconds).
    pub scheduled_delay: Duration,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        // The specification's delay, with a larger queue and larger
        // batches. At a few thousand checkouts a second (seven spans each) the
        // default 2048-span queue fills between two exports. And the batch
        // processor exports one batch at a time, so its throughput is the
        // batch size over one export's round trip: on a busy machine 512
        // spans per round trip fell behind stock-service applying ~6,000
        // orders a second (three spans each) and the queue overflowed. 1024
        // keeps up; larger batches did too but, encoded in one go, cost
        // request latency (BENCHMARKS.md, history). A 1024-span export is
        // far below the 4 MiB a gRPC server accepts by default.
        Self {
            max_queue_size: 16_384,
            scheduled_delay: Duration::from_millis(1_000),
            max_export_batch_size: 1_024,
        }
    }
}

/// Everything telemetry needs, read from the environment or built by a test.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `service.name` on every span (`OTEL_SERVICE_NAME` overrides the default).
    pub service_name: String,
    /// False when `OTEL_SDK_DISABLED=true`: no spans are exported; logs still are.
    pub traces_enabled: bool,
    /// Collector endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: OtlpProtocol,
    /// `OTEL_TRACES_SAMPLER` and its argument.
    pub sampler: SamplerSetting,
    /// Batch processor bounds.
    pub batch: BatchSettings,
    /// Per-export time limit (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds).
    pub export_timeout: Duration,
    /// `RUST_LOG` directives (default `info`).
    pub log_filter: String,
}

impl TelemetryConfig {
    /// Defaults for `service_name`, exporting to `endpoint` over gRPC.
    pub fn new(service_name: &str, endpoint: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            traces_enabled: true,
            endpoint: endpoint.to_owned(),
            protocol: OtlpProtocol::Grpc,
            sampler: SamplerSetting::ParentBasedAlwaysOn,
            batch: BatchSettings::default(),
            export_timeout: Duration::from_secs(10),
            log_filter: "info".to_owned(),
        }
    }

    /// Reads the standard `OTEL_*` variables and `RUST_LOG`.
    pub fn from_env(default_service_name: &str) -> Result<Self, ConfigError> {
        let protocol = env_or("OTEL_EXPORTER_OTLP_PROTOCOL", OtlpProtocol::Grpc)?;
        let default_endpoint = match protocol {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        };
        let defaults = BatchSettings::default();
        Ok(Self {
            service_name: env_or("OTEL_SERVICE_NAME", default_service_name.to_owned())?,
            traces_enabled: !env_bool("OTEL_SDK_DISABLED", false)?,
            endpoint: env_parse(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                crate::config::parse_endpoint_url,
            )?
            .unwrap_or_else(|| default_endpoint.to_owned()),
            protocol,
            sampler: SamplerSetting::from_env()?,
            batch: BatchSettings {
                max_queue_size: env_or("OTEL_BSP_MAX_QUEUE_SIZE", defaults.max_queue_size)?,
                scheduled_delay: crate::config::env_millis(
                    "OTEL_BSP_SCHEDULE_DELAY",
                    defaults.scheduled_delay,
                )?,
                max_export_batch_size: env_or(
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    defaults.max_export_batch_size,
                )?,
            },
            export_timeout: crate::config::env_millis(
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                Duration::from_secs(10),
            )?,
            log_filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        })
    }
}

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
            .with(json_logs(writer, own_dispatch.clone()).with_filter(log_filter));
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

/// The crates that carry spans to the collector. Their own (debug-level)
/// spans must never become OpenTelemetry spans: exporting them would create
/// more spans to export, without end, whenever `RUST_LOG` lets them through.
fn is_export_machinery(target: &str) -> bool {
    const CRATES: [&str; 7] = [
        "h2",
        "hyper",
        "hyper_util",
        "tonic",
        "tower",
        "reqwest",
        "opentelemetry",
    ];
    let krate = target.split("::").next().unwrap_or(target);
    CRATES.contains(&krate) || krate.starts_with("opentelemetry")
}

/// A single-threaded Tokio runtime, on a thread of its own, for the OTLP/gRPC
/// exporter's channel.
///
/// tonic spawns a channel's tasks (its request buffer and the HTTP/2
/// connection, which encodes every export) on the runtime it is built in.
/// Built in the service's runtime, a batch of up to 1024 spans would be
/// encoded and written on a worker that is meant to be serving requests, and
/// every request queued behind it waits: that showed as a higher p99 when
/// traced. On its own thread the export still uses CPU, but the OS shares it
/// out in slices instead of a request waiting for the whole batch.
struct ExportRuntime {
    handle: tokio::runtime::Handle,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl ExportRuntime {
    fn start() -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TelemetryError::ExportRuntime)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("otlp-export".to_owned())
            .spawn(move || {
                // Runs the channel's tasks until told to stop (or dropped);
                // dropping the runtime then cancels whatever is left.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(TelemetryError::ExportRuntime)?;
        Ok(Self {
            handle,
            stop: std::sync::Mutex::new(Some(stop)),
        })
    }

    /// Ends the runtime's thread; exports after this fail.
    fn stop(&self) {
        let mut stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stop) = stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tracer provider, and the runtime its gRPC exporter runs on (none for
/// OTLP/HTTP, whose blocking client needs none).
fn tracer_provider(
    config: &TelemetryConfig,
) -> Result<(SdkTracerProvider, Option<Arc<ExportRuntime>>), TelemetryError> {
    let (exporter, export_runtime) = match config.protocol {
        OtlpProtocol::Grpc => {
            let runtime = ExportRuntime::start()?;
            // The channel's tasks go to the runtime entered here.
            let exporter = {
                let _entered = runtime.handle.enter();
                SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(config.endpoint.clone())
                    .with_timeout(config.export_timeout)
                    .build()?
            };
            (exporter, Some(Arc::new(runtime)))
        }
        OtlpProtocol::HttpProtobuf => {
            let exporter = SpanExporter::builder()
                .with_http()
                .with_endpoint(format!(
                    "{}/v1/traces",
                    config.endpoint.trim_end_matches('/')
                ))
                .with_timeout(config.export_timeout)
                .build()?;
            (exporter, None)
        }
    };
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.batch.max_queue_size)
        .with_scheduled_delay(config.batch.scheduled_delay)
        .with_max_export_batch_size(config.batch.max_export_batch_size)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(config.sampler.to_sampler())
        .with_resource(resource)
        .build();
    Ok((provider, export_runtime))
}

/// One JSON object per line, with `trace_id` and `span_id` of the current
/// span so a log line leads straight to its trace.
fn json_logs<S, W>(
    writer: W,
    own_dispatch: Arc<OnceLock<WeakDispatch>>,
) -> json_subscriber::JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    let mut layer = json_subscriber::JsonLayer::new(writer);
    layer
        .with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
        .with_level("level")
        .with_target("target")
        .with_flattened_event()
        .with_current_span("span");
    layer.add_multiple_dynamic_fields(move |event, ctx, fields| {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let Some(dispatch) = own_dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        if let Some(cx) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) {
            let span_context = cx.span().span_context().clone();
            if span_context.is_valid() {
                let _ = fields.write_field("trace_id", span_context.trace_id().to_string());
                let _ = fields.write_field("span_id", span_context.span_id().to_string());
            }
        }
    });
    layer
}
