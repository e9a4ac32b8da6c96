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
use opentelemetry_otlp::{MetricExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
};

use super::{
    Transport,
    tally::{Counted, ExportTally},
};
use crate::{OtlpProtocol, TelemetryError};

/// The meter provider, exporting through `transport`; it also carries the
/// exporters' own counts (`otel.sdk.exporter.*`).
pub(crate) fn meter_provider(
    transport: &Transport<'_>,
    resource: Resource,
    tally: &Arc<ExportTally>,
) -> Result<SdkMeterProvider, TelemetryError> {
    let config = transport.config;
    let timeout = config.export_timeout.min(config.metrics.timeout);
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => transport.in_runtime(|| {
            MetricExporter::builder()
                .with_tonic()
                .with_endpoint(config.endpoint.clone())
                .with_timeout(timeout)
                .build()
        })?,
        OtlpProtocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_endpoint(transport.http_url("metrics"))
            .with_timeout(timeout)
            .build()?,
    };
    let reader = PeriodicReader::builder(Counted::new(exporter, tally.clone()))
        .with_interval(config.metrics.interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    tally.observe_on(&provider.meter(env!("CARGO_PKG_NAME")), config.protocol);
    Ok(provider)
}
