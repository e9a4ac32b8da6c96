//! The span pipeline: OTLP span exporter, batch span processor, tracer
//! provider with the configured sampler.

use std::sync::Arc;

use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::{
    Resource,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
};
use tonic::metadata::MetadataMap;

use super::{
    Transport,
    tally::{Counted, ExportTally},
};
use crate::{OtlpProtocol, TelemetryError};

/// The tracer provider, exporting through `transport`.
pub(crate) fn tracer_provider(
    transport: &Transport<'_>,
    resource: Resource,
    tally: &Arc<ExportTally>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let config = transport.config;
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => transport.in_runtime(|| {
            SpanExporter::builder()
                .with_tonic()
                .with_metadata(MetadataMap::from_headers(config.trace_headers.header_map()))
                .with_endpoint(config.endpoint.clone())
                .with_timeout(config.export_timeout)
                .build()
        })?,
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_headers(config.trace_headers.string_map())
            .with_endpoint(transport.http_url("traces"))
            .with_timeout(config.export_timeout)
            .build()?,
    };
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(config.batch.max_queue_size)
        .with_scheduled_delay(config.batch.scheduled_delay)
        .with_max_export_batch_size(config.batch.max_export_batch_size)
        .build();
    let processor = BatchSpanProcessor::builder(Counted::new(exporter, tally.clone()))
        .with_batch_config(batch)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(config.sampler.to_sampler())
        .with_resource(resource)
        .build())
}
