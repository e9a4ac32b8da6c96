//! What telemetry is configured with: the standard OpenTelemetry
//! environment variables and `RUST_LOG`.
//!
//! The spans' settings are here; those of metrics and OTLP logs, which share
//! the spans' endpoint, protocol and timeout, are in [`signals`].
//!
//! [`TelemetryArgs`] is flattened into every service's settings, so the
//! variables appear in each `--help` and in docs/configuration.md's table
//! with their defaults; [`TelemetryArgs::into_config`] turns them into a
//! [`TelemetryConfig`], which tests also build directly with
//! [`TelemetryConfig::new`].

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;
use percent_encoding::percent_decode_str;
use service::{
    configuration::{parse_bool, parse_endpoint_url, parse_millis, parse_ratio},
    secret::secret_parser,
};

use crate::propagation::Propagators;

pub mod headers;
pub mod signals;

pub use headers::OtlpHeaders;
pub use signals::{LogsConfig, MetricsConfig, SignalArgs, SignalExporter};

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

/// `OTEL_RESOURCE_ATTRIBUTES`: resource attributes the operator sets, as
/// `key=value` pairs, comma-separated, with `%`-encoded characters decoded
/// (the specification's format: W3C baggage without properties).
///
/// They win over the attributes a service sets itself (`service.version`),
/// and a `service.name` among them over the service's own name; only
/// `OTEL_SERVICE_NAME` wins over them. A malformed value stops the service
/// at start: the specification says to discard it whole, and a silently
/// discarded setting is one nobody notices is not applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes(Vec<(String, String)>);

impl ResourceAttributes {
    /// The pairs, in the order given (a key given twice: the last wins).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The value of `key`, the last one given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_str())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for ResourceAttributes {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(pairs: T) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

impl std::str::FromStr for ResourceAttributes {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let decode = |part: &str| {
            percent_decode_str(part.trim())
                .decode_utf8()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| format!("`{part}` is not UTF-8 once %-decoded"))
        };
        raw.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                let (key, value) = entry
                    .split_once('=')
                    .ok_or_else(|| format!("`{}` is not key=value", entry.trim()))?;
                let key = decode(key)?;
                if key.is_empty() {
                    return Err(format!("`{}` has no key", entry.trim()));
                }
                Ok((key, decode(value)?))
            })
            .collect()
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
// latency (docs/benchmark-history.md). A 1024-span export is far below the
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
    /// `true` exports no traces, metrics or logs (the JSON log lines stay on).
    #[arg(long, env = "OTEL_SDK_DISABLED", default_value = "false",
          value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub otel_sdk_disabled: bool,
    /// `otlp` sends spans to the OTLP collector; `none` records and sends none (the gateway's span relay for browsers then answers 404).
    #[arg(long, env = "OTEL_TRACES_EXPORTER", default_value = "otlp")]
    pub otel_traces_exporter: SignalExporter,
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
    /// Headers of every OTLP export, `key=value,…` with %-encoded values (secret), e.g. a collector's API key.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", value_parser = secret_parser(OtlpHeaders::parse))]
    pub otel_exporter_otlp_headers: Option<OtlpHeaders>,
    /// Headers of span exports, and of the gateway's relay of browser spans, in place of `OTEL_EXPORTER_OTLP_HEADERS` (secret).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS", value_parser = secret_parser(OtlpHeaders::parse))]
    pub otel_exporter_otlp_traces_headers: Option<OtlpHeaders>,
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
    /// Metrics and OTLP logs.
    #[command(flatten)]
    pub signals: SignalArgs,
    /// Trace-context formats read and written on every protocol: a comma list of tracecontext, baggage, b3, b3multi, jaeger, or none.
    #[arg(long, env = "OTEL_PROPAGATORS", default_value = "tracecontext,baggage")]
    pub otel_propagators: Propagators,
    /// Resource attributes of every span, `key=value,…` (they win over `service.version`; `OTEL_SERVICE_NAME` wins over a `service.name` here).
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES")]
    pub otel_resource_attributes: Option<ResourceAttributes>,
    /// Log filter directives (logs only: every span is traced whatever the filter).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
}

impl TelemetryArgs {
    /// The configuration of `default_service_name` at `service_version`.
    /// `service.name` is, first found: `OTEL_SERVICE_NAME`, a `service.name`
    /// in `OTEL_RESOURCE_ATTRIBUTES`, `default_service_name`.
    pub fn into_config(
        self,
        default_service_name: &str,
        service_version: &str,
    ) -> Result<TelemetryConfig, String> {
        let protocol = self.otel_exporter_otlp_protocol;
        let headers = self.otel_exporter_otlp_headers.unwrap_or_default();
        let trace_headers = self
            .otel_exporter_otlp_traces_headers
            .unwrap_or_else(|| headers.clone());
        let resource_attributes = self.otel_resource_attributes.unwrap_or_default();
        let (metrics, logs) = self.signals.into_configs(!self.otel_sdk_disabled);
        Ok(TelemetryConfig {
            service_name: self
                .otel_service_name
                .or_else(|| {
                    resource_attributes
                        .get(opentelemetry_semantic_conventions::resource::SERVICE_NAME)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| default_service_name.to_owned()),
            traces_enabled: !self.otel_sdk_disabled
                && self.otel_traces_exporter == SignalExporter::Otlp,
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
            headers,
            trace_headers,
            metrics,
            logs,
            log_filter: self.rust_log,
            service_version: service_version.to_owned(),
            resource_attributes,
            propagators: self.otel_propagators,
        })
    }
}

/// Everything telemetry needs, read from the environment or built by a test.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `service.name` on every span. It wins over a `service.name` in
    /// `resource_attributes` ([`TelemetryArgs::into_config`] puts that one
    /// here unless `OTEL_SERVICE_NAME` is set).
    pub service_name: String,
    /// False with `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`
    /// (which turns `metrics` and `logs` off too): no spans are exported;
    /// the JSON logs are still written.
    pub traces_enabled: bool,
    /// Collector endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: OtlpProtocol,
    /// `OTEL_TRACES_SAMPLER` and its argument.
    pub sampler: SamplerSetting,
    /// Batch processor bounds.
    pub batch: BatchSettings,
    /// Per-export time limit (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds),
    /// of every signal.
    pub export_timeout: Duration,
    /// Headers of every export (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: OtlpHeaders,
    /// Headers of span exports and the relay's forwards:
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else [`Self::headers`].
    pub trace_headers: OtlpHeaders,
    /// Metrics: on or off, export interval and timeout.
    pub metrics: MetricsConfig,
    /// OTLP logs: on or off, and the batch processor's bounds.
    pub logs: LogsConfig,
    /// `RUST_LOG` directives (default `info`).
    pub log_filter: String,
    /// `service.version` of every span: the service's crate version, unless
    /// `resource_attributes` has one.
    pub service_version: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`: they win over `service_version`.
    pub resource_attributes: ResourceAttributes,
    /// `OTEL_PROPAGATORS`: the trace-context formats on the wire.
    pub propagators: Propagators,
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
            headers: OtlpHeaders::default(),
            trace_headers: OtlpHeaders::default(),
            metrics: MetricsConfig::default(),
            logs: LogsConfig::default(),
            log_filter: "info".to_owned(),
            service_version: env!("CARGO_PKG_VERSION").to_owned(),
            resource_attributes: ResourceAttributes::default(),
            propagators: Propagators::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{FromArgMatches, Parser};

    use super::*;
    use crate::PropagatorName;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    /// `TelemetryArgs` from these flags, the process environment left out.
    fn args(flags: &[&str]) -> Result<TelemetryArgs, String> {
        let matches = service::configuration::command::<Args>()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(std::iter::once("service").chain(flags.iter().copied()))
            .map_err(|error| error.to_string())?;
        Ok(Args::from_arg_matches(&matches).unwrap().telemetry)
    }

    #[test]
    fn propagators_default_to_w3c_and_reach_the_config() {
        let config = args(&[]).unwrap().into_config("svc", "1").unwrap();
        assert_eq!(config.propagators, Propagators::default());

        let config = args(&["--otel-propagators", "b3multi,tracecontext,baggage,b3multi"])
            .unwrap()
            .into_config("svc", "1")
            .unwrap();
        assert_eq!(
            config.propagators.names(),
            [
                PropagatorName::B3Multi,
                PropagatorName::TraceContext,
                PropagatorName::Baggage
            ]
        );
    }

    #[test]
    fn traces_are_off_with_their_exporter_none_or_the_sdk_disabled() {
        let on = |flags: &[&str]| {
            args(flags)
                .unwrap()
                .into_config("svc", "1")
                .unwrap()
                .traces_enabled
        };
        assert!(on(&[]));
        assert!(!on(&["--otel-traces-exporter", "none"]));
        assert!(!on(&["--otel-sdk-disabled", "true"]));
        let metrics_stay = args(&["--otel-traces-exporter", "none"])
            .unwrap()
            .into_config("svc", "1")
            .unwrap();
        assert!(metrics_stay.metrics.enabled && metrics_stay.logs.enabled);
    }

    #[test]
    fn span_exports_take_their_own_headers_or_everyones() {
        let config = |flags: &[&str]| args(flags).unwrap().into_config("svc", "1").unwrap();
        let shared = config(&["--otel-exporter-otlp-headers", "api-key=a"]);
        assert_eq!(shared.trace_headers.header_map()["api-key"], "a");
        assert_eq!(shared.headers, shared.trace_headers);
        let own = config(&[
            "--otel-exporter-otlp-headers",
            "api-key=a",
            "--otel-exporter-otlp-traces-headers",
            "api-key=t",
        ]);
        assert_eq!(own.trace_headers.header_map()["api-key"], "t");
        assert_eq!(own.headers.header_map()["api-key"], "a");
        let error = args(&["--otel-exporter-otlp-headers", "k=v,hidden-value"]).unwrap_err();
        // (Named by its variable in a service; the flag here, the
        // environment being left out.)
        assert!(error.contains("otlp_headers"), "{error}");
        assert!(!error.contains("hidden-value"), "{error}");
    }

    #[test]
    fn an_unknown_propagator_stops_the_start_naming_the_variable() {
        let error = args(&["--otel-propagators", "tracecontext,b3mutli"]).unwrap_err();
        assert!(error.contains("OTEL_PROPAGATORS"), "{error}");
        assert!(error.contains("b3mutli"), "{error}");
    }

    #[test]
    fn resource_attributes_parse_as_the_specification_says() {
        let parsed: ResourceAttributes = " service.version = 1.0 ,team=a%2Cb%3Dc,, empty= ,k=v=w"
            .parse()
            .unwrap();
        assert_eq!(
            parsed.iter().collect::<Vec<_>>(),
            [
                ("service.version", "1.0"),
                ("team", "a,b=c"),
                ("empty", ""),
                ("k", "v=w")
            ]
        );
        let last: ResourceAttributes = "a=1,a=2".parse().unwrap();
        assert_eq!(last.get("a"), Some("2"));

        for bad in ["novalue", "=value", "a=1,b", "a=%FF"] {
            assert!(bad.parse::<ResourceAttributes>().is_err(), "{bad}");
        }
        let error = args(&["--otel-resource-attributes", "novalue"]).unwrap_err();
        assert!(error.contains("OTEL_RESOURCE_ATTRIBUTES"), "{error}");
    }
}
