//! The OTLP pipelines of the three signals: for each, an exporter, the SDK
//! component that batches for it, and its provider; all with one resource.
//!
//! - traces (`traces`): a batch span processor;
//! - metrics (`metrics`): a periodic reader, cumulative temporality;
//! - logs (`logs`): a batch log processor, fed by the `tracing` bridge in
//!   [`crate::logs`].
//!
//! Every batch goes out from an SDK thread of its own with a bounded queue,
//! so a slow or absent collector never blocks a request: when a queue is
//! full, spans or log records are dropped (the SDK logs the first drop and
//! the total at shutdown) rather than queued without limit, and each export
//! gives up after its timeout. Every exporter is counted (`tally`: what was
//! delivered and what was lost, as `otel.sdk.exporter.*` metrics), and a
//! collector that goes away is logged once, not once per batch (`outage`). The
//! gRPC exporters' channels run on one runtime of their own
//! ([`ExportRuntime`]). A signal that is off builds no exporter at all.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry_sdk::{
    Resource, logs::SdkLoggerProvider, metrics::SdkMeterProvider,
    resource::TelemetryResourceDetector, trace::SdkTracerProvider,
};
use opentelemetry_semantic_conventions::resource::{SERVICE_INSTANCE_ID, SERVICE_VERSION};

use crate::{OtlpProtocol, TelemetryConfig, TelemetryError};

pub(crate) mod forward;
mod logs;
mod metrics;
pub(crate) mod outage;
pub(crate) mod prometheus;
pub(crate) mod tally;
mod traces;

use tally::ExportTally;

/// The crates that carry telemetry to the collector. Their own (debug-level)
/// spans must never become OpenTelemetry spans, nor their events OTLP log
/// records: exporting them would create more to export, without end,
/// whenever `RUST_LOG` lets them through.
pub(crate) fn is_export_machinery(target: &str) -> bool {
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
/// exporters' channels (one per signal).
///
/// tonic spawns a channel's tasks (its request buffer and the HTTP/2
/// connection, which encodes every export) on the runtime it is built in.
/// Built in the service's runtime, a batch of up to 1024 spans would be
/// encoded and written on a worker that is meant to be serving requests, and
/// every request queued behind it waits: that showed as a higher p99 when
/// traced. On its own thread the export still uses CPU, but the OS shares it
/// out in slices instead of a request waiting for the whole batch.
pub(crate) struct ExportRuntime {
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
    pub(crate) fn stop(&self) {
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

/// The providers of the signals that are on, and what they need kept alive.
pub(crate) struct Pipelines {
    pub(crate) tracer: Option<SdkTracerProvider>,
    pub(crate) meter: Option<SdkMeterProvider>,
    pub(crate) logger: Option<SdkLoggerProvider>,
    /// Where the gRPC exporters' channels run; `None` without one.
    pub(crate) runtime: Option<Arc<ExportRuntime>>,
    /// What the exporters delivered and lost.
    pub(crate) tally: Arc<ExportTally>,
    /// The `/metrics` listener, with `METRICS_ADDRESS`.
    pub(crate) prometheus: Option<prometheus::PrometheusEndpoint>,
    /// Where spans recorded elsewhere are forwarded, with traces on.
    pub(crate) forwarder: Option<forward::SpanForwarder>,
}

/// Builds the pipelines `config` turns on, all with the same resource.
pub(crate) fn pipelines(config: &TelemetryConfig) -> Result<Pipelines, TelemetryError> {
    let any = config.traces_enabled || config.metrics.enabled || config.logs.enabled;
    let runtime = match config.protocol {
        OtlpProtocol::Grpc if any => Some(Arc::new(ExportRuntime::start()?)),
        _ => None,
    };
    let transport = Transport {
        config,
        runtime: runtime.as_deref(),
    };
    let resource = resource(config);
    let tally = Arc::new(ExportTally::new(&config.endpoint));
    let tracer = config
        .traces_enabled
        .then(|| traces::tracer_provider(&transport, resource.clone(), &tally))
        .transpose()?;
    let forwarder = config
        .traces_enabled
        .then(|| forward::SpanForwarder::build(&transport))
        .transpose()?;
    let (prometheus_reader, prometheus) = match config.metrics.prometheus_address {
        Some(address) => {
            let (reader, endpoint) = prometheus::endpoint(address)?;
            (Some(reader), Some(endpoint))
        }
        None => (None, None),
    };
    let meter = (config.metrics.enabled || prometheus_reader.is_some())
        .then(|| metrics::meter_provider(&transport, resource.clone(), &tally, prometheus_reader))
        .transpose()?;
    let logger = config
        .logs
        .enabled
        .then(|| logs::logger_provider(&transport, resource, &tally))
        .transpose()?;
    Ok(Pipelines {
        tracer,
        meter,
        logger,
        runtime,
        tally,
        prometheus,
        forwarder,
    })
}

/// Where and how every signal is sent: the collector's endpoint, protocol
/// and time limit, and the runtime the gRPC channels run on.
pub(crate) struct Transport<'a> {
    pub(crate) config: &'a TelemetryConfig,
    pub(crate) runtime: Option<&'a ExportRuntime>,
}

impl Transport<'_> {
    /// Builds a gRPC exporter with `build`, its channel's tasks spawned on
    /// the export runtime.
    pub(crate) fn in_runtime<T>(
        &self,
        build: impl FnOnce() -> Result<T, opentelemetry_otlp::ExporterBuildError>,
    ) -> Result<T, TelemetryError> {
        let _entered = self.runtime.map(|runtime| runtime.handle.enter());
        Ok(build()?)
    }

    /// The OTLP/HTTP URL of `signal` (`traces`, `metrics`, `logs`): the
    /// specification's `/v1/{signal}` under the endpoint.
    pub(crate) fn http_url(&self, signal: &str) -> String {
        format!("{}/v1/{signal}", self.config.endpoint.trim_end_matches('/'))
    }
}

/// The resource of every span, metric and log record, each source
/// overriding the ones before it: the SDK's `telemetry.sdk.*`, the service's
/// own `service.version` and a `service.instance.id`,
/// `OTEL_RESOURCE_ATTRIBUTES`, then `service.name` (`OTEL_SERVICE_NAME`, else
/// the one `OTEL_RESOURCE_ATTRIBUTES` gave, else the service's own: see
/// [`crate::TelemetryArgs::into_config`]).
///
/// The instance id is a random UUID made here, once per service's telemetry
/// ([`pipelines`] builds the resource once and gives the three signals the
/// same one), which is once per process in a binary (and once per service
/// when tests run several in one process), as the resource conventions
/// suggest when nothing better names the instance: it tells replicas of one
/// service apart (two checkout-service replicas behind one gateway, say), and
/// an instance id given in `OTEL_RESOURCE_ATTRIBUTES` (a pod name, say) wins.
///
/// Built from the configuration alone (not `Resource::builder()`, whose
/// detectors read `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` from the
/// process environment): the settings are read in one place, and services
/// sharing a process in tests keep each its own.
pub(crate) fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attribute(KeyValue::new(
            SERVICE_VERSION,
            config.service_version.clone(),
        ))
        .with_attribute(KeyValue::new(
            SERVICE_INSTANCE_ID,
            uuid::Uuid::new_v4().to_string(),
        ))
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.to_owned(), value.to_owned())),
        )
        .with_service_name(config.service_name.clone())
        .build()
}

#[cfg(test)]
mod tests {
    use clap::{FromArgMatches, Parser};
    use opentelemetry::{Key, Value};

    use super::*;
    use crate::TelemetryArgs;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    /// The resource a service at version 1.2.3 builds from these flags, the
    /// process environment left out.
    fn resource_from(flags: &[&str]) -> Resource {
        let matches = service::configuration::command::<Args>()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(std::iter::once("service").chain(flags.iter().copied()))
            .unwrap();
        let args = Args::from_arg_matches(&matches).unwrap();
        resource(&args.telemetry.into_config("built-in", "1.2.3").unwrap())
    }

    fn get(resource: &Resource, key: &'static str) -> Option<String> {
        resource
            .get(&Key::from_static_str(key))
            .map(|value| match value {
                Value::String(value) => value.to_string(),
                other => panic!("{key} is {other:?}"),
            })
    }

    #[test]
    fn built_in_values_without_settings() {
        let resource = resource_from(&[]);
        assert_eq!(get(&resource, "service.name").as_deref(), Some("built-in"));
        assert_eq!(get(&resource, "service.version").as_deref(), Some("1.2.3"));
        assert_eq!(
            get(&resource, "telemetry.sdk.language").as_deref(),
            Some("rust")
        );
    }

    #[test]
    fn each_resource_names_its_own_instance_unless_told() {
        let (first, second) = (resource_from(&[]), resource_from(&[]));
        let id = get(&first, "service.instance.id").expect("an instance id");
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_ne!(get(&second, "service.instance.id"), Some(id));

        let given = resource_from(&["--otel-resource-attributes", "service.instance.id=pod-7"]);
        assert_eq!(get(&given, "service.instance.id").as_deref(), Some("pod-7"));
    }

    #[test]
    fn resource_attributes_win_over_the_built_in_version() {
        let resource = resource_from(&[
            "--otel-resource-attributes",
            "service.version=2024.05-rc%201, deployment.environment.name=staging",
        ]);
        assert_eq!(
            get(&resource, "service.version").as_deref(),
            Some("2024.05-rc 1")
        );
        assert_eq!(
            get(&resource, "deployment.environment.name").as_deref(),
            Some("staging")
        );
        assert_eq!(get(&resource, "service.name").as_deref(), Some("built-in"));
    }

    #[test]
    fn service_name_comes_from_otel_service_name_then_resource_attributes() {
        let from_attributes = resource_from(&["--otel-resource-attributes", "service.name=shop"]);
        assert_eq!(
            get(&from_attributes, "service.name").as_deref(),
            Some("shop")
        );

        let both = resource_from(&[
            "--otel-resource-attributes",
            "service.name=shop,service.version=9",
            "--otel-service-name",
            "checkout-eu",
        ]);
        assert_eq!(get(&both, "service.name").as_deref(), Some("checkout-eu"));
        assert_eq!(get(&both, "service.version").as_deref(), Some("9"));
    }
}
