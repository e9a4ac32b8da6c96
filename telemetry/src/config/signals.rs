//! The settings of the two signals besides traces: metrics and OTLP logs.
//!
//! Both go to the collector the spans go to, over the same protocol and with
//! the same per-request time limit (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `_PROTOCOL`, `_TIMEOUT`) and headers (`OTEL_EXPORTER_OTLP_HEADERS`,
//! resolved in [`super::headers`]); a signal's own `_METRICS_`/`_LOGS_`
//! headers and compression (`_COMPRESSION`) come from the exporter's own
//! reading of those variables.
//! Each signal can be turned off on its own (`OTEL_METRICS_EXPORTER=none`,
//! `OTEL_LOGS_EXPORTER=none`): then no exporter is built and nothing of it
//! is sent. `OTEL_SDK_DISABLED=true` turns off all three.
//!
//! The defaults are the specification's. Two of its settings are not
//! enforced by the SDK's thread-based processors (`OTEL_METRIC_EXPORT_TIMEOUT`,
//! `OTEL_BLRP_EXPORT_TIMEOUT`), so they bound the signal's exporter instead:
//! it gives up on a request after the shorter of that and
//! `OTEL_EXPORTER_OTLP_TIMEOUT`.

use std::{net::SocketAddr, time::Duration};

use service::configuration::{parse_listen_addr, parse_millis_at_least_one, parse_positive};

/// `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER`: where a signal goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalExporter {
    /// `otlp`: to the OTLP collector, like the spans (the default).
    Otlp,
    /// `none`: not recorded for export at all.
    None,
}

impl std::str::FromStr for SignalExporter {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "otlp" => Ok(Self::Otlp),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown exporter `{other}` (expected otlp or none; prometheus and console are not built in)"
            )),
        }
    }
}

/// How metrics are exported: a periodic reader pushing cumulative sums and
/// histograms over OTLP.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsConfig {
    /// False with `OTEL_METRICS_EXPORTER=none` or `OTEL_SDK_DISABLED=true`:
    /// instruments record nothing and no exporter is built.
    pub enabled: bool,
    /// Time between two exports (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub interval: Duration,
    /// Time limit of one export (`OTEL_METRIC_EXPORT_TIMEOUT`).
    pub timeout: Duration,
    /// Where to serve the metrics on `/metrics` for Prometheus to scrape
    /// (`METRICS_ADDRESS`); `None`: no listener. Independent of `enabled`
    /// (the OTLP export).
    pub prometheus_address: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    /// The specification's defaults: every 60 s, at most 30 s each.
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_millis(DEFAULT_METRIC_EXPORT_INTERVAL_MS),
            timeout: Duration::from_millis(DEFAULT_METRIC_EXPORT_TIMEOUT_MS),
            prometheus_address: None,
        }
    }
}

/// How log records are exported: a batch processor with a bounded queue,
/// on its own thread.
#[derive(Clone, Debug, PartialEq)]
pub struct LogsConfig {
    /// False with `OTEL_LOGS_EXPORTER=none` or `OTEL_SDK_DISABLED=true`: no
    /// log record is made or sent (the JSON lines on stdout stay).
    pub enabled: bool,
    /// Log records held before new ones are dropped (`OTEL_BLRP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Time between two exports (`OTEL_BLRP_SCHEDULE_DELAY`).
    pub scheduled_delay: Duration,
    /// Log records per export request (`OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
    /// Time limit of one export (`OTEL_BLRP_EXPORT_TIMEOUT`).
    pub export_timeout: Duration,
}

impl Default for LogsConfig {
    /// The specification's defaults.
    fn default() -> Self {
        Self {
            enabled: true,
            max_queue_size: DEFAULT_BLRP_MAX_QUEUE_SIZE,
            scheduled_delay: Duration::from_millis(DEFAULT_BLRP_SCHEDULE_DELAY_MS),
            max_export_batch_size: DEFAULT_BLRP_MAX_EXPORT_BATCH_SIZE,
            export_timeout: Duration::from_millis(DEFAULT_BLRP_EXPORT_TIMEOUT_MS),
        }
    }
}

// The specification's defaults; the flags' `default_value`s say the same
// (a test holds them together).
const DEFAULT_METRIC_EXPORT_INTERVAL_MS: u64 = 60_000;
const DEFAULT_METRIC_EXPORT_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_BLRP_MAX_QUEUE_SIZE: usize = 2_048;
const DEFAULT_BLRP_SCHEDULE_DELAY_MS: u64 = 1_000;
const DEFAULT_BLRP_MAX_EXPORT_BATCH_SIZE: usize = 512;
const DEFAULT_BLRP_EXPORT_TIMEOUT_MS: u64 = 30_000;

/// The metrics and logs variables, flattened into [`crate::TelemetryArgs`].
#[derive(Clone, Debug, clap::Args)]
pub struct SignalArgs {
    /// `otlp` sends metrics to the OTLP collector; `none` records and sends none.
    #[arg(long, env = "OTEL_METRICS_EXPORTER", default_value = "otlp")]
    pub otel_metrics_exporter: SignalExporter,
    /// Milliseconds between two metric exports.
    #[arg(long, env = "OTEL_METRIC_EXPORT_INTERVAL",
          default_value = "60000",
          value_parser = parse_millis_at_least_one)]
    pub otel_metric_export_interval: Duration,
    /// Time limit of one metric export, in milliseconds (the exporter gives up after this or `OTEL_EXPORTER_OTLP_TIMEOUT`, the shorter).
    #[arg(long, env = "OTEL_METRIC_EXPORT_TIMEOUT",
          default_value = "30000",
          value_parser = parse_millis_at_least_one)]
    pub otel_metric_export_timeout: Duration,
    /// Where to serve the service's metrics in the Prometheus text format, on `/metrics` (host:port or :port); unset: no listener. Independent of OTEL_METRICS_EXPORTER.
    #[arg(long, env = "METRICS_ADDRESS", value_parser = parse_listen_addr)]
    pub metrics_address: Option<SocketAddr>,
    /// `otlp` sends each log event, with its trace and span ids, to the OTLP collector too; `none` only writes the JSON lines.
    #[arg(long, env = "OTEL_LOGS_EXPORTER", default_value = "otlp")]
    pub otel_logs_exporter: SignalExporter,
    /// Log records queued for export before new ones are dropped.
    #[arg(long, env = "OTEL_BLRP_MAX_QUEUE_SIZE",
          default_value = "2048",
          value_parser = parse_positive)]
    pub otel_blrp_max_queue_size: usize,
    /// Milliseconds between two log exports.
    #[arg(long, env = "OTEL_BLRP_SCHEDULE_DELAY",
          default_value = "1000",
          value_parser = parse_millis_at_least_one)]
    pub otel_blrp_schedule_delay: Duration,
    /// Log records per export (at most the queue size).
    #[arg(long, env = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
          default_value = "512",
          value_parser = parse_positive)]
    pub otel_blrp_max_export_batch_size: usize,
    /// Time limit of one log export, in milliseconds (the exporter gives up after this or `OTEL_EXPORTER_OTLP_TIMEOUT`, the shorter).
    #[arg(long, env = "OTEL_BLRP_EXPORT_TIMEOUT",
          default_value = "30000",
          value_parser = parse_millis_at_least_one)]
    pub otel_blrp_export_timeout: Duration,
}

impl SignalArgs {
    /// The two signals' configurations; `sdk_enabled` is false with
    /// `OTEL_SDK_DISABLED=true`, which turns both off.
    pub fn into_configs(self, sdk_enabled: bool) -> (MetricsConfig, LogsConfig) {
        (
            MetricsConfig {
                enabled: sdk_enabled && self.otel_metrics_exporter == SignalExporter::Otlp,
                interval: self.otel_metric_export_interval,
                timeout: self.otel_metric_export_timeout,
                prometheus_address: self.metrics_address,
            },
            LogsConfig {
                enabled: sdk_enabled && self.otel_logs_exporter == SignalExporter::Otlp,
                max_queue_size: self.otel_blrp_max_queue_size,
                scheduled_delay: self.otel_blrp_schedule_delay,
                max_export_batch_size: self
                    .otel_blrp_max_export_batch_size
                    .min(self.otel_blrp_max_queue_size),
                export_timeout: self.otel_blrp_export_timeout,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::{FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        signals: SignalArgs,
    }

    fn configs(flags: &[&str]) -> Result<(MetricsConfig, LogsConfig), String> {
        let matches = service::configuration::command::<Args>()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(std::iter::once("service").chain(flags.iter().copied()))
            .map_err(|error| error.to_string())?;
        Ok(Args::from_arg_matches(&matches)
            .unwrap()
            .signals
            .into_configs(true))
    }

    #[test]
    fn the_defaults_are_the_specification_s() {
        let (metrics, logs) = configs(&[]).unwrap();
        assert_eq!(metrics, MetricsConfig::default());
        assert_eq!(logs, LogsConfig::default());
        assert_eq!(metrics.interval, Duration::from_secs(60));
        assert_eq!(logs.max_queue_size, 2048);
        assert_eq!(logs.max_export_batch_size, 512);
    }

    #[test]
    fn none_turns_a_signal_off_and_so_does_the_sdk_switch() {
        let (metrics, logs) = configs(&["--otel-metrics-exporter", "none"]).unwrap();
        assert!(!metrics.enabled);
        assert!(logs.enabled);
        let (metrics, logs) = configs(&["--otel-logs-exporter", "NONE"]).unwrap();
        assert!(metrics.enabled);
        assert!(!logs.enabled);

        let matches = service::configuration::command::<Args>()
            .mut_args(|arg| arg.env(None::<&str>))
            .try_get_matches_from(["service"])
            .unwrap();
        let (metrics, logs) = Args::from_arg_matches(&matches)
            .unwrap()
            .signals
            .into_configs(false);
        assert!(!metrics.enabled && !logs.enabled);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (flag, value, variable) in [
            (
                "--otel-metrics-exporter",
                "prometheus",
                "OTEL_METRICS_EXPORTER",
            ),
            ("--otel-logs-exporter", "console", "OTEL_LOGS_EXPORTER"),
            (
                "--otel-metric-export-interval",
                "0",
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                "--otel-blrp-max-queue-size",
                "0",
                "OTEL_BLRP_MAX_QUEUE_SIZE",
            ),
            (
                "--otel-blrp-schedule-delay",
                "1s",
                "OTEL_BLRP_SCHEDULE_DELAY",
            ),
        ] {
            let error = configs(&[flag, value]).unwrap_err();
            assert!(error.contains(variable), "{flag} {value}: {error}");
        }
    }

    #[test]
    fn a_batch_is_never_larger_than_the_queue() {
        let (_, logs) = configs(&[
            "--otel-blrp-max-queue-size",
            "100",
            "--otel-blrp-max-export-batch-size",
            "512",
        ])
        .unwrap();
        assert_eq!(logs.max_export_batch_size, 100);
    }
}
