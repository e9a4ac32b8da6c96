//! The log pipeline: OTLP log exporter, batch log processor, logger
//! provider. The records come from the `tracing` bridge in [`crate::logs`].
//!
//! The SDK's thread-based batch processor does not apply
//! `OTEL_BLRP_EXPORT_TIMEOUT` itself, so the exporter does: it gives up
//! after that or `OTEL_EXPORTER_OTLP_TIMEOUT`, the shorter.

use std::sync::Arc;

use opentelemetry_otlp::{LogExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    logs::{BatchConfigBuilder, BatchLogProcessor, SdkLoggerProvider},
};
use tonic::metadata::MetadataMap;

use super::{
    Transport,
    tally::{Counted, ExportTally},
};
use crate::{OtlpProtocol, TelemetryError};

/// The logger provider, exporting through `transport`.
pub(crate) fn logger_provider(
    transport: &Transport<'_>,
    resource: Resource,
    tally: &Arc<ExportTally>,
) -> Result<SdkLoggerProvider, TelemetryError> {
    let config = transport.config;
    let timeout = config.export_timeout.min(config.logs.export_timeout);
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => transport.in_runtime(|| {
            LogExporter::builder()
                .with_tonic()
                .with_metadata(MetadataMap::from_headers(config.headers.header_map()))
                .with_endpoint(config.endpoint.clone())
                .with_timeout(timeout)
                .build()
        })?,
        OtlpProtocol::HttpProtobuf => LogExporter::builder()
            .with_http()
            .with_headers(config.headers.string_map())
            .with_endpoint(transport.http_url("logs"))
            .with_timeout(timeout)
            .build()?,
    };
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.logs.max_queue_size)
        .with_scheduled_delay(config.logs.scheduled_delay)
        .with_max_export_batch_size(config.logs.max_export_batch_size)
        .build();
    let processor = BatchLogProcessor::builder(Counted::new(exporter, tally.clone()))
        .with_batch_config(batch)
        .build();
    Ok(SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .with_resource(resource)
        .build())
}
