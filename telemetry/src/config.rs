//! What telemetry is configured with: the standard OpenTelemetry
//! environment variables and `RUST_LOG`.
//!
//! [`TelemetryArgs`] is flattened into every service's settings, so the
//! variables appear in each `--help` and README table with their defaults;
//! [`TelemetryArgs::into_config`] turns them into a [`TelemetryConfig`],
//! which tests also build directly with [`TelemetryConfig::new`].

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;
use service::configuration::{parse_bool, parse_endpoint_url, parse_millis, parse_ratio};

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
        match raw.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            _ => Err("expected grpc or http/protobuf".to_owned()),
        }
    }
}

impl OtlpProtocol {
    /// The collector's default endpoint for this protocol.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Self::Grpc => "http://localhost:4317",
            Self::HttpProtobuf => "http://localhost:4318",
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
    /// The sampler named `name`, with `ratio` for the ratio-based ones.
    pub fn parse(name: &str, ratio: f64) -> Result<Self, String> {
        Ok(match name.trim() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(ratio),
            "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(ratio),
            _ => {
                return Err(
                    "expected always_on, always_off, traceidratio or parentbased_*".to_owned(),
                );
            }
        })
    }

    pub(crate) fn to_sampler(&self) -> Sampler {
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
    /// The defaults of [`TelemetryArgs`].
    fn default() -> Self {
        Self {
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            scheduled_delay: Duration::from_millis(DEFAULT_SCHEDULE_DELAY_MS),
            max_export_batch_size: DEFAULT_MAX_EXPORT_BATCH_SIZE,
        }
    }
}

// The specification's delay, with a larger queue and larger batches. At a
// few thousand checkouts a second (seven spans each) the specification's
// 2048-span queue fills between two exports. And the batch processor exports
// one batch at a time, so its throughput is the batch size over one export's
// round trip: on a busy machine 512 spans per round trip fell behind
// stock-service applying ~6,000 orders a second and the queue overflowed.
// 1024 keeps up; larger batches did too but, encoded in one go, cost request
// latency (BENCHMARKS.md, history). A 1024-span export is far below the
// 4 MiB a gRPC server accepts by default.
const DEFAULT_MAX_QUEUE_SIZE: usize = 16_384;
const DEFAULT_SCHEDULE_DELAY_MS: u64 = 1_000;
const DEFAULT_MAX_EXPORT_BATCH_SIZE: usize = 1_024;

/// The telemetry variables every service reads.
#[derive(Clone, Debug, clap::Args)]
pub struct TelemetryArgs {
    /// `service.name` of every span (default: the service's own name).
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
    /// `true` turns tracing off (logs stay on).
    #[arg(long, env = "OTEL_SDK_DISABLED", default_value = "false",
          value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub otel_sdk_disabled: bool,
    /// The OTLP collector (default: http://localhost:4317 for grpc, :4318 for http/protobuf).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = parse_endpoint_url)]
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "grpc")]
    pub otel_exporter_otlp_protocol: OtlpProtocol,
    /// Time limit of one export, in milliseconds.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", default_value = "10000",
          value_parser = parse_millis)]
    pub otel_exporter_otlp_timeout: Duration,
    /// always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio.
    #[arg(
        long,
        env = "OTEL_TRACES_SAMPLER",
        default_value = "parentbased_always_on"
    )]
    pub otel_traces_sampler: String,
    /// The ratio of the ratio-based samplers, 0 to 1.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", default_value = "1", value_parser = parse_ratio)]
    pub otel_traces_sampler_arg: f64,
    /// Spans queued for export before new ones are dropped (the specification's default is 2048).
    #[arg(long, env = "OTEL_BSP_MAX_QUEUE_SIZE", default_value_t = DEFAULT_MAX_QUEUE_SIZE)]
    pub otel_bsp_max_queue_size: usize,
    /// Milliseconds between two exports.
    #[arg(long, env = "OTEL_BSP_SCHEDULE_DELAY", default_value_t = DEFAULT_SCHEDULE_DELAY_MS)]
    pub otel_bsp_schedule_delay: u64,
    /// Spans per export (the specification's default is 512).
    #[arg(long, env = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", default_value_t = DEFAULT_MAX_EXPORT_BATCH_SIZE)]
    pub otel_bsp_max_export_batch_size: usize,
    /// Log filter directives (logs only: every span is traced whatever the filter).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
}

impl TelemetryArgs {
    /// The configuration of `default_service_name` at `service_version`
    /// (`OTEL_SERVICE_NAME` names another service).
    pub fn into_config(
        self,
        default_service_name: &str,
        service_version: &str,
    ) -> Result<TelemetryConfig, String> {
        let protocol = self.otel_exporter_otlp_protocol;
        Ok(TelemetryConfig {
            service_name: self
                .otel_service_name
                .unwrap_or_else(|| default_service_name.to_owned()),
            traces_enabled: !self.otel_sdk_disabled,
            endpoint: self
                .otel_exporter_otlp_endpoint
                .unwrap_or_else(|| protocol.default_endpoint().to_owned()),
            protocol,
            sampler: SamplerSetting::parse(&self.otel_traces_sampler, self.otel_traces_sampler_arg)
                .map_err(|reason| format!("invalid OTEL_TRACES_SAMPLER: {reason}"))?,
            batch: BatchSettings {
                max_queue_size: self.otel_bsp_max_queue_size,
                scheduled_delay: Duration::from_millis(self.otel_bsp_schedule_delay),
                max_export_batch_size: self.otel_bsp_max_export_batch_size,
            },
            export_timeout: self.otel_exporter_otlp_timeout,
            log_filter: self.rust_log,
            service_version: service_version.to_owned(),
        })
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
    /// `service.version` of every span: the service's crate version.
    pub service_version: String,
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
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
