//! The results as data: one topology's latest run, as `bench/results/<topology>.json`
//! holds it: when and where it ran, with what settings, and every figure the rendered
//! tables show, nothing formatted.
//!
//! Why a file of its own: the documents quote the figures, they do not hold them. Kept
//! in the repository, the data says which run a table comes from, lets both topologies'
//! runs be shown side by side although each run measures one, and lets the tables be
//! re-rendered (and checked) without running anything. A figure a run did not measure
//! is `null`, and shows as `–`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One topology's run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    /// `single` or `cluster`.
    pub topology: String,
    /// Where and with what it ran.
    #[serde(flatten)]
    pub environment: Environment,
    /// What was asked of it.
    pub settings: Settings,
    /// Raw broker runs, by C.
    pub raw: Vec<Raw>,
    /// Pipeline runs: untraced, traced (and full) by C.
    pub pipeline: Vec<Pipeline>,
    /// What in the run is worth a look: failed runs, spreads of repeated runs, disturbed
    /// windows, warnings of the services.
    pub notes: Vec<String>,
}

/// When, on which machine, and with which code and versions a run ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Environment {
    /// `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// `git rev-parse --short HEAD`, and whether the tree had changes.
    pub commit: String,
    /// CPUs.
    pub cpus: usize,
    /// From /proc/cpuinfo.
    pub cpu: String,
    /// MemTotal, human readable.
    pub memory: String,
    /// `uname -r`.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `rabbitmqctl version`.
    pub rabbitmq: String,
    /// PostgreSQL's `server_version` (`None` without PostgreSQL).
    pub postgres: Option<String>,
    /// How the broker's processes were found.
    pub broker_found_by: String,
    /// `getconf CLK_TCK`.
    pub clock_ticks: u64,
}

/// The settings of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Measured window per run, seconds.
    pub duration_s: f64,
    /// Unmeasured lead-in per run, seconds.
    pub warmup_s: f64,
    /// Concurrency levels (closed loop).
    pub concurrency: Vec<usize>,
    /// Runs of each (kind, C), interleaved; the median is kept.
    pub repeat: usize,
    /// `INITIAL_STOCK` of every item.
    pub initial_stock: u64,
    /// stock-service's `AMQP_PREFETCH`, and the raw consumer's.
    pub prefetch: u16,
    /// The services' `RUST_LOG`.
    pub rust_log: String,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`.
    pub bsp_max_queue_size: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY`, ms.
    pub bsp_schedule_delay_ms: u64,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
    pub bsp_max_export_batch_size: usize,
    /// Whether each pipeline run had a wrk window.
    pub wrk: bool,
    /// The raw broker's message: JSON body and header bytes.
    pub message: String,
}

/// One raw-broker run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Raw {
    /// Publishes in flight.
    pub c: usize,
    /// Confirmed messages per second.
    pub per_s: f64,
    /// Publish → confirm, ms.
    pub p50_ms: f64,
    /// Publish → confirm, ms.
    pub p99_ms: f64,
    /// Publish → confirm, ms.
    pub max_ms: Option<f64>,
    /// CPU per confirmed message, µs: `broker` (all its nodes) and `bench` (the
    /// publisher and the consumer).
    pub cpu_us: BTreeMap<String, f64>,
    /// Share of all CPUs busy over the window.
    pub machine_busy: Option<f64>,
    /// Confirmed messages the consumer did not get within the drain timeout.
    pub unconsumed: Option<u64>,
    /// In a cluster: the nodes the queue had a replica on.
    pub queue_on: Option<usize>,
}

/// One pipeline run: the built-in load's window and, unless `--no-wrk`, wrk's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    /// `untraced`, `traced` or `full` (traced, with metrics and logs).
    pub kind: String,
    /// Requests in flight.
    pub c: usize,
    /// The built-in load generator's window.
    pub bench: Window,
    /// wrk's window.
    pub wrk: Option<Window>,
    /// Spans the services' exporters dropped (over both windows).
    pub dropped_spans: Option<u64>,
    /// Peak RSS of each service, MB (the worse replica).
    pub rss_mb: BTreeMap<String, f64>,
}

/// One load generator's window of a pipeline run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Window {
    /// Accepted checkouts per second.
    pub per_s: f64,
    /// Response latency, ms.
    pub p50_ms: f64,
    /// Response latency, ms.
    pub p99_ms: f64,
    /// Response latency, ms.
    pub max_ms: Option<f64>,
    /// Requests not accepted (errors and failed connections).
    pub failed: Option<u64>,
    /// Accepted orders stock-service had not applied within the wait.
    pub unapplied: Option<u64>,
    /// Traced: accepted checkouts whose trace was complete (wrk: traces completed)…
    pub traces_complete: Option<u64>,
    /// …of these.
    pub traces_expected: Option<u64>,
    /// CPU per accepted checkout, µs, by component (summed over its processes):
    /// `gateway`, `checkout-service`, `stock-service`, `broker`, `postgres`, `bench`
    /// (the load generator and span sink in the bench process), `wrk`.
    pub cpu_us: BTreeMap<String, f64>,
    /// Share of all CPUs busy over the window.
    pub machine_busy: Option<f64>,
}

impl Window {
    /// The three services' CPU per checkout together, µs.
    pub fn services_us(&self) -> Option<f64> {
        SERVICES.iter().map(|s| self.cpu_us.get(*s).copied()).sum()
    }
}

/// The three services, as their CPU and RSS are labelled.
pub const SERVICES: [&str; 3] = ["gateway", "checkout-service", "stock-service"];

impl Run {
    /// `Single node` or `Cluster`.
    pub fn title(&self) -> &'static str {
        if self.topology == "cluster" {
            "Cluster"
        } else {
            "Single node"
        }
    }

    /// The raw run at `c`.
    pub fn raw_at(&self, c: usize) -> Option<&Raw> {
        self.raw.iter().find(|r| r.c == c)
    }

    /// The pipeline run of `kind` at `c`.
    pub fn at(&self, kind: &str, c: usize) -> Option<&Pipeline> {
        self.pipeline.iter().find(|p| p.kind == kind && p.c == c)
    }

    /// The concurrency levels of any run, ascending.
    pub fn levels(&self) -> Vec<usize> {
        let mut levels: Vec<usize> = self.raw.iter().map(|r| r.c).collect();
        levels.extend(self.pipeline.iter().map(|p| p.c));
        levels.sort_unstable();
        levels.dedup();
        levels
    }

    /// `<dir>/<topology>.json`.
    pub fn path(dir: &Path, topology: &str) -> PathBuf {
        dir.join(format!("{topology}.json"))
    }

    /// The run of `topology` in `dir`, `None` if it has none.
    pub fn read(dir: &Path, topology: &str) -> anyhow::Result<Option<Self>> {
        let path = Self::path(dir, topology);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("cannot read {}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the run to `<dir>/<topology>.json`, pretty-printed (so a diff shows what
    /// changed), creating `dir` if needed.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = Self::path(dir, &self.topology);
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}
