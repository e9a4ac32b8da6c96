//! The metric pipeline: OTLP metric exporter (cumulative temporality, the
//! SDK's default), a periodic reader on its own thread, the meter provider.
//!
//! The reader collects and exports every `OTEL_METRIC_EXPORT_INTERVAL`;
//! recording a measurement only updates the instrument's aggregate in
//! memory, so a request never waits on an export. The SDK's reader does not
//! bound an export's duration itself, so the exporter does: it gives up after
//! `OTEL_METRIC_EXPORT_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`, the shorter,
//! and the next interval's export carries the (cumulative) values again.

use std::sync::Arc;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_prometheus::PrometheusExporter;
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
};
use tonic::metadata::MetadataMap;

use super::{
    Transport,
    tally::{Counted, ExportTally},
};
use crate::{OtlpProtocol, TelemetryError};

/// The meter provider, exporting through `transport` (when the OTLP export
/// is on) and read by `prometheus` (the `/metrics` endpoint's reader, if
/// any); it also carries the exporters' own counts (`otel.sdk.exporter.*`).
pub(crate) fn meter_provider(
    transport: &Transport<'_>,
    resource: Resource,
    tally: &Arc<ExportTally>,
    prometheus: Option<PrometheusExporter>,
) -> Result<SdkMeterProvider, TelemetryError> {
    let config = transport.config;
    let mut builder = SdkMeterProvider::builder().with_resource(resource);
    if let Some(prometheus) = prometheus {
        builder = builder.with_reader(prometheus);
    }
    if config.metrics.enabled {
        builder = builder.with_reader(otlp_reader(transport, tally)?);
    }
    let provider = builder.build();
    tally.observe_on(&provider.meter(env!("CARGO_PKG_NAME")), config.protocol);
    Ok(provider)
}

/// The periodic OTLP reader.
fn otlp_reader(
    transport: &Transport<'_>,
    tally: &Arc<ExportTally>,
) -> Result<PeriodicReader<Counted<MetricExporter>>, TelemetryError> {
    let config = transport.config;
    let timeout = config.export_timeout.min(config.metrics.timeout);
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => transport.in_runtime(|| {
            MetricExporter::builder()
                .with_tonic()
                .with_metadata(MetadataMap::from_headers(config.headers.header_map()))
                .with_endpoint(config.endpoint.clone())
                .with_timeout(timeout)
                .build()
        })?,
        OtlpProtocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_headers(config.headers.string_map())
            .with_endpoint(transport.http_url("metrics"))
            .with_timeout(timeout)
            .build()?,
    };
    Ok(
        PeriodicReader::builder(Counted::new(exporter, tally.clone()))
            .with_interval(config.metrics.interval)
            .build(),
    )
}
