//! What a pipeline run is given: whether the services trace ([`Tracing`]) and what
//! stays the same across runs ([`PipelineConfig`]). Kept apart from the run itself so
//! the command line can build them and the report can name them without the machinery.

use std::path::PathBuf;
use std::time::Duration;

use telemetry::BatchSettings;

use crate::postgres::PostgresServer;
use crate::wrk::WrkConfig;

/// Whether the services record and export spans (and, [`Tracing::Full`],
/// metrics and OTLP log records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tracing {
    /// `OTEL_TRACES_SAMPLER=always_off`.
    Off,
    /// `OTEL_TRACES_SAMPLER=always_on`.
    On,
    /// `OTEL_TRACES_SAMPLER=always_on`, and metrics and log records exported
    /// too (`OTEL_METRICS_EXPORTER=otlp`, `OTEL_LOGS_EXPORTER=otlp`).
    Full,
}

impl Tracing {
    /// The services' `OTEL_TRACES_SAMPLER`.
    pub(super) fn sampler(self) -> &'static str {
        match self {
            Self::Off => "always_off",
            Self::On | Self::Full => "always_on",
        }
    }

    /// The services' `OTEL_METRICS_EXPORTER` and `OTEL_LOGS_EXPORTER`.
    pub(super) fn other_signals(self) -> &'static str {
        match self {
            Self::Off | Self::On => "none",
            Self::Full => "otlp",
        }
    }

    /// Whether spans are exported (and traces checked).
    pub fn traces(self) -> bool {
        self != Self::Off
    }
}

/// What stays the same across pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where the release binaries are.
    pub binaries: PathBuf,
    /// The services' `AMQP_URL` (a cluster's node list).
    pub amqp_url: String,
    /// Processes of each service: the gateway's get the load in turn, each lists every
    /// checkout-service, the stock-services consume one queue.
    pub replicas: usize,
    /// stock-service's `AMQP_QUORUM_SIZE` (`None`: its default).
    pub quorum_size: Option<usize>,
    /// Where stock-service's database is created for each run (`None`: SQLite in a
    /// temporary directory).
    pub postgres: Option<PostgresServer>,
    /// A cluster node `rabbitmqctl` asks how many replicas the run's queue has (`None`:
    /// a single node, not asked).
    pub cluster_node: Option<String>,
    /// Unmeasured lead-in.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// `INITIAL_STOCK` of every item.
    pub initial_stock: u64,
    /// `OTEL_BSP_*`.
    pub batch: BatchSettings,
    /// stock-service's `AMQP_PREFETCH`.
    pub prefetch: u16,
    /// Longest wait for stock-service to apply the accepted orders.
    pub apply_timeout: Duration,
    /// Longest wait for complete traces.
    pub trace_timeout: Duration,
    /// Longest wait for a service to start (log its address, then be ready).
    pub start_timeout: Duration,
    /// Longest wait for a service to exit after SIGTERM.
    pub stop_timeout: Duration,
    /// wrk and its script, to drive the pipeline after the built-in load's window
    /// (`None`: `--no-wrk`).
    pub wrk: Option<WrkConfig>,
}
