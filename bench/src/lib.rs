//! `bench`: the benchmark of the checkout pipeline — figures, not tests.
//!
//! # What
//!
//! In one run on one machine, for each concurrency level C (closed loop: C requests or
//! publishes in flight), for a fixed measured window after a short warmup:
//!
//! 1. **raw broker** ([`broker`]): RabbitMQ alone, publishing persistent
//!    `checkout.processed`-sized messages with publisher confirms into a durable quorum
//!    queue while a consumer acks them: throughput, publish → confirm latency, broker
//!    CPU. This is the ceiling for the pipeline;
//! 2. **pipeline, untraced** ([`pipeline`]): the three release binaries as child
//!    processes with `OTEL_TRACES_SAMPLER=always_off`, loaded through the gateway with
//!    [`checkout_cli::load::run_load`]; every accepted order must be applied;
//! 3. **pipeline, traced**: the same with `always_on`, spans exported over OTLP/gRPC to
//!    a [`SpanTally`](tally::SpanTally) in this process (a real OTLP endpoint that
//!    tallies spans per trace instead of keeping them, so the sink costs the shared CPU
//!    little), and every accepted checkout's trace checked for completeness.
//!
//! Each pipeline run is then loaded a second time, by [`wrk`] at the same C for the
//! same window (unless `--no-wrk`), so its figures compare with those measured
//! elsewhere with wrk, and the report shows the two load generators side by side.
//!
//! For each: throughput, latency p50/p99/max, CPU time per operation of every process
//! (services, broker, this process) from `/proc/<pid>/stat` ([`procfs`]), peak RSS of
//! the services, orders applied, traces complete and spans dropped. The figures are
//! written as data, `bench/results/<topology>.json` ([`report`]); `BENCHMARKS.md`'s
//! and `SCALING.md`'s tables are rendered from that data (`bench render`, also run at
//! the end of a benchmark), with the targets marked met or missed, and the same
//! tables are printed.
//!
//! All of this in one of two topologies ([`topology`]): `--topology single` (the
//! default: the machine's RabbitMQ node, one process per service, SQLite) or
//! `--topology cluster` (a private 3-node RabbitMQ cluster with every queue on the three
//! nodes, two processes of each service, stock on PostgreSQL, whose server processes
//! are measured too). Each topology's run rewrites its own JSON file; the documents
//! show the latest run of each side by side.
//!
//! # Why
//!
//! Tracing has a cost, and a pipeline has overhead over the broker it is built on; the
//! targets set budgets for both (traced ≥ 95 % of untraced throughput at C=16 and 64
//! with p99 within 10 %, pipeline ≥ 75 % of the raw broker at C=64, no lost spans, small
//! services, little CPU per checkout, and at C=1 traced the latency and throughput the
//! Go original of this pipeline reached under wrk). The tests prove the pipeline is
//! correct; this tool measures what it costs, in the same conditions each time, so an
//! optimisation can be recorded as a before/after pair.
//!
//! # Safety of the run
//!
//! Everything is bounded (start-up, readiness, waits for stragglers, shutdown) and local
//! (127.0.0.1 only). Each run has its own exchange, queues and SQLite file or
//! PostgreSQL database, removed afterwards — also on error or Ctrl-C — child processes
//! are killed and a private cluster is stopped if the benchmark stops early.
//!
//! # Layout
//!
//! - [`topology`], [`cluster`], [`postgres`]: what the runs are pointed at;
//! - [`broker`]: the raw broker runs; [`pipeline`]: the pipeline runs, with [`services`]
//!   (the child processes), [`wrk`] (the second load generator), [`tally`] and
//!   [`discard`] (the OTLP sink);
//! - [`procfs`], [`stats`], [`machine`]: CPU and memory, the arithmetic, the machine;
//! - [`cleanup`]: the broker objects removed whatever happens;
//! - [`report`]: the results as data, and the documents rendered from them.

pub mod broker;
pub mod cleanup;
pub mod cluster;
pub mod discard;
pub mod machine;
pub mod pipeline;
pub mod postgres;
pub mod procfs;
pub mod report;
pub mod services;
pub mod stats;
pub mod tally;
pub mod topology;
pub mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use checkout_cli::duration::parse_duration;
use clap::{Parser, ValueEnum};
use telemetry::BatchSettings;

use crate::broker::RawConfig;
use crate::cleanup::{AMQP_URL, Cleanup};
use crate::cluster::PrivateCluster;
use crate::pipeline::{PipelineConfig, Tracing};
use crate::report::{Results, Settings};
use crate::topology::{Deployment, Topology};
use crate::wrk::WrkConfig;

/// `--postgres-url`'s default: the role and database `scripts/ensure-postgres` sets up
/// for the tests (a role that may create databases).
pub const DEFAULT_POSTGRES_URL: &str =
    "postgres://checkout_test:checkout_test@127.0.0.1:5432/checkout_test";

/// Which measurements to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunKind {
    /// RabbitMQ alone.
    Raw,
    /// The pipeline with `OTEL_TRACES_SAMPLER=always_off`.
    Untraced,
    /// The pipeline with `OTEL_TRACES_SAMPLER=always_on`.
    Traced,
    /// Traced, and exporting metrics and OTLP log records too.
    Full,
}

/// The benchmark's command line.
#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmark the checkout pipeline: raw broker, untraced and traced pipeline; writes \
             bench/results/<topology>.json and renders BENCHMARKS.md's and SCALING.md's tables from it",
    long_about = None
)]
pub struct Cli {
    /// `render`: re-render the documents from the results, without running anything
    #[command(subcommand)]
    pub command: Option<Command>,
    /// What to run against: `single` (the local RabbitMQ node, one process per service,
    /// SQLite) or `cluster` (a private 3-node RabbitMQ cluster started for the benchmark,
    /// queues on all three nodes, two processes per service, stock on PostgreSQL)
    #[arg(long, value_enum, default_value_t = Topology::Single, value_name = "TOPOLOGY")]
    pub topology: Topology,
    /// `--topology cluster`: the PostgreSQL server stock-service's database is created on
    /// for each run (and dropped after); the role must be allowed to create databases
    #[arg(
        long,
        env = "TEST_POSTGRES_URL",
        hide_env_values = true,
        default_value = DEFAULT_POSTGRES_URL,
        value_parser = service::secret::secret_url_parser(postgres::parse_postgres_url),
        value_name = "URL"
    )]
    pub postgres_url: String,
    /// Measured window of each run, e.g. 10s
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub duration: Duration,
    /// Unmeasured load before each window
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Concurrency levels (closed loop), comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,16,64",
        value_name = "C,.."
    )]
    pub concurrency: Vec<usize>,
    /// Run every (kind, C) this many times, interleaved; the median run is shown
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub repeat: usize,
    /// Which runs to make, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "raw,untraced,traced",
        value_name = "KIND,.."
    )]
    pub runs: Vec<RunKind>,
    /// Directory the results are written to, as `<topology>.json` (replacing that
    /// topology's previous run)
    #[arg(long, default_value = RESULTS_DIR, value_name = "DIR")]
    pub output: PathBuf,
    /// Directory whose BENCHMARKS.md and SCALING.md get their tables re-rendered from
    /// `--output` after the run [default: the working directory when `--output` is the
    /// default, else none]
    #[arg(long, value_name = "DIR")]
    pub docs: Option<PathBuf>,
    /// Print the results only; write no file
    #[arg(long)]
    pub no_write: bool,
    /// Directory of the service binaries [default: this executable's directory]
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// `INITIAL_STOCK` of every item (large, so no order is rejected)
    #[arg(long, default_value_t = 1_000_000_000, value_name = "N")]
    pub initial_stock: u64,
    /// `AMQP_PREFETCH` of stock-service, and the raw broker consumer's prefetch (the same,
    /// so the two compare); the default is stock-service's
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub prefetch: u16,
    /// OTEL_BSP_MAX_QUEUE_SIZE of the services
    #[arg(long, default_value_t = BatchSettings::default().max_queue_size, value_name = "N")]
    pub bsp_max_queue_size: usize,
    /// OTEL_BSP_SCHEDULE_DELAY of the services, in milliseconds
    #[arg(long, default_value_t = BatchSettings::default().scheduled_delay.as_millis() as u64, value_name = "MS")]
    pub bsp_schedule_delay: u64,
    /// OTEL_BSP_MAX_EXPORT_BATCH_SIZE of the services
    #[arg(long, default_value_t = BatchSettings::default().max_export_batch_size, value_name = "N")]
    pub bsp_max_export_batch_size: usize,
    /// Longest wait for stock-service to apply the accepted orders after a window
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    pub apply_timeout: Duration,
    /// Longest wait for every accepted checkout's trace to be complete
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub trace_timeout: Duration,
    /// Load the pipeline with the built-in load generator only. By default each pipeline
    /// run is loaded a second time by `wrk` (Debian's package), at the same C for the
    /// same duration, and the report shows the two side by side
    #[arg(long)]
    pub no_wrk: bool,
    /// The Lua script wrk runs [default: bench/wrk/checkout.lua in this repository]
    #[arg(long, value_name = "PATH")]
    pub wrk_script: Option<PathBuf>,
}

/// What `bench` does besides running the benchmark.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Re-render the generated parts of BENCHMARKS.md and SCALING.md (between their
    /// `<!-- bench render: … -->` markers) from the results; the rest is left alone
    Render {
        /// Directory of the results (`single.json`, `cluster.json`)
        #[arg(long, default_value = RESULTS_DIR, value_name = "DIR")]
        results: PathBuf,
        /// Directory of BENCHMARKS.md and SCALING.md
        #[arg(long, default_value = ".", value_name = "DIR")]
        docs: PathBuf,
    },
}

/// Where the results are kept, relative to the repository's root.
pub const RESULTS_DIR: &str = "bench/results";

impl Cli {
    fn batch(&self) -> BatchSettings {
        BatchSettings {
            max_queue_size: self.bsp_max_queue_size,
            scheduled_delay: Duration::from_millis(self.bsp_schedule_delay),
            max_export_batch_size: self.bsp_max_export_batch_size,
        }
    }
}

/// Runs the benchmark: sets up the topology, measures, prints, writes the file, tears
/// the topology down. Fails only if the benchmark itself could not run or a run
/// failed; missed targets are figures, not failures.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Render { results, docs }) = &cli.command {
        report::render(results, docs)?;
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        !cli.concurrency.is_empty() && cli.concurrency.iter().all(|&c| c > 0),
        "--concurrency needs positive numbers"
    );
    anyhow::ensure!(!cli.duration.is_zero(), "--duration must be positive");
    anyhow::ensure!(cli.repeat > 0, "--repeat must be at least 1");
    let pipelines = cli.runs.iter().any(|kind| *kind != RunKind::Raw);
    let binaries = if pipelines {
        Some(services::binary_dir(cli.bin_dir.clone())?)
    } else {
        None
    };
    // Looked for now, so a missing wrk stops the benchmark before its first run.
    let wrk = if pipelines && !cli.no_wrk {
        let script = cli.wrk_script.clone().unwrap_or_else(wrk::default_script);
        Some(WrkConfig::find(script)?)
    } else {
        None
    };
    let clock_ticks = procfs::clock_ticks_per_second();
    // The cluster's ports are chosen now, so the node broker objects are deleted through
    // is known before anything is declared.
    let mut cluster = match cli.topology {
        Topology::Single => None,
        Topology::Cluster => Some(PrivateCluster::new()?),
    };
    let node_url = cluster
        .as_ref()
        .and_then(|cluster| cluster.node_urls().into_iter().next())
        .unwrap_or_else(|| AMQP_URL.to_owned());
    let cleanup = Cleanup::new(&node_url);
    let mut results = Results::default();

    let work = async {
        let deployment = match &mut cluster {
            None => Deployment::single(&node_url)?,
            Some(cluster) => {
                eprintln!(
                    "bench: starting a private RabbitMQ cluster {} …",
                    cluster.describe()
                );
                cluster.start().await?;
                Deployment::cluster(cluster, &cli.postgres_url).await?
            }
        };
        eprintln!(
            "bench: {} topology; broker beam.smp pid(s) {} (via {}), CLK_TCK {clock_ticks}",
            cli.topology.name(),
            deployment.broker_pids(),
            deployment.broker_found_by
        );
        let environment = machine::describe(&deployment, clock_ticks);
        measure_all(
            &cli,
            binaries,
            wrk,
            &deployment,
            clock_ticks,
            &cleanup,
            &mut results,
        )
        .await;
        anyhow::Ok(environment)
    };
    let outcome = tokio::select! {
        outcome = work => Some(outcome),
        () = stop_signal() => None,
    };
    // Whatever happened, the broker objects go (services and files went with their
    // runs), and then the cluster.
    if let Err(error) = cleanup.run().await {
        eprintln!("warning: {error:#}");
    }
    if let Some(cluster) = &mut cluster
        && let Err(error) = cluster.stop().await
    {
        eprintln!("warning: {error:#}");
    }
    let environment = match outcome {
        None => {
            eprintln!("bench: interrupted; nothing written");
            return Ok(ExitCode::from(130));
        }
        Some(outcome) => outcome?,
    };
    results.keep_medians();

    let batch = cli.batch();
    let settings = Settings {
        duration_s: cli.duration.as_secs_f64(),
        warmup_s: cli.warmup.as_secs_f64(),
        concurrency: cli.concurrency.clone(),
        repeat: cli.repeat,
        initial_stock: cli.initial_stock,
        prefetch: cli.prefetch,
        rust_log: pipeline::RUST_LOG.to_owned(),
        bsp_max_queue_size: batch.max_queue_size,
        bsp_schedule_delay_ms: batch.scheduled_delay.as_millis() as u64,
        bsp_max_export_batch_size: batch.max_export_batch_size,
        wrk: !cli.no_wrk,
        message: report::message(),
    };
    let run = results.record(cli.topology, environment, settings);
    println!("{}", report::summary(&run));
    if !cli.no_write {
        let path = run.write(&cli.output)?;
        eprintln!("bench: wrote {}", path.display());
        let repository = (cli.output.as_os_str() == RESULTS_DIR).then(|| PathBuf::from("."));
        if let Some(docs) = cli.docs.clone().or(repository) {
            report::render(&cli.output, &docs)?;
        }
    }
    Ok(if results.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every run, C by C (raw, untraced, traced at each C, so slow drifts of the machine
/// affect all three alike). A failed run is recorded and the others go on.
async fn measure_all(
    cli: &Cli,
    binaries: Option<PathBuf>,
    wrk: Option<WrkConfig>,
    deployment: &Deployment,
    clock_ticks: u64,
    cleanup: &Cleanup,
    results: &mut Results,
) {
    let broker = &deployment.broker;
    let pipeline_config = binaries.map(|binaries| PipelineConfig {
        binaries,
        amqp_url: deployment.amqp_url.clone(),
        replicas: deployment.replicas(),
        quorum_size: deployment.quorum_size,
        postgres: deployment.postgres.clone(),
        cluster_node: deployment.cluster_node.clone(),
        warmup: cli.warmup,
        duration: cli.duration,
        initial_stock: cli.initial_stock,
        batch: cli.batch(),
        prefetch: cli.prefetch,
        apply_timeout: cli.apply_timeout,
        trace_timeout: cli.trace_timeout,
        start_timeout: Duration::from_secs(30),
        stop_timeout: Duration::from_secs(20),
        wrk,
    });
    let rounds = cli
        .concurrency
        .iter()
        .flat_map(|&c| std::iter::repeat_n(c, cli.repeat));
    for c in rounds {
        if cli.runs.contains(&RunKind::Raw) {
            eprintln!("bench: raw broker, C={c} …");
            let config = RawConfig {
                node_url: deployment.node_url.clone(),
                quorum_size: deployment.quorum_size,
                cluster_node: deployment.cluster_node.clone(),
                concurrency: c,
                warmup: cli.warmup,
                duration: cli.duration,
                prefetch: cli.prefetch,
                drain_timeout: Duration::from_secs(30),
            };
            match broker::run_raw(&config, broker, clock_ticks, cleanup).await {
                Ok(raw) => {
                    eprintln!(
                        "bench:   {:.0} msgs/s, confirm p99 {:.2} ms",
                        raw.throughput(),
                        raw.latency.p99.as_secs_f64() * 1e3
                    );
                    results.raw.push(raw);
                }
                Err(error) => {
                    eprintln!("bench:   failed: {error:#}");
                    results.failures.push(format!("raw C={c}: {error:#}"));
                }
            }
        }
        let Some(config) = &pipeline_config else {
            continue;
        };
        for (kind, tracing) in [
            (RunKind::Untraced, Tracing::Off),
            (RunKind::Traced, Tracing::On),
            (RunKind::Full, Tracing::Full),
        ] {
            if !cli.runs.contains(&kind) {
                continue;
            }
            let name = format!("{kind:?}").to_lowercase();
            eprintln!("bench: pipeline {name}, C={c} …");
            match pipeline::run_pipeline(config, tracing, c, broker, clock_ticks, cleanup).await {
                Ok(run) => {
                    eprintln!(
                        "bench:   {:.0} req/s, p99 {:.2} ms, {} accepted, {} applied",
                        run.throughput(),
                        run.latency().p99.as_secs_f64() * 1e3,
                        run.accepted(),
                        run.applied
                    );
                    if let Some(wrk) = &run.wrk {
                        eprintln!(
                            "bench:   wrk: {:.0} req/s, p99 {:.2} ms, {} accepted, {} applied{}",
                            wrk.report.throughput(),
                            wrk.report.latency.p99.as_secs_f64() * 1e3,
                            wrk.report.ok(),
                            wrk.applied,
                            wrk.complete_traces
                                .map(|n| format!(", {n} traces complete"))
                                .unwrap_or_default()
                        );
                    }
                    results.pipeline.push(run);
                }
                Err(error) => {
                    eprintln!("bench:   failed: {error:#}");
                    results.failures.push(format!("{name} C={c}: {error:#}"));
                }
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_has_the_documented_defaults() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["bench"]);
        assert_eq!(cli.duration, Duration::from_secs(10));
        assert_eq!(cli.warmup, Duration::from_secs(2));
        assert_eq!(cli.concurrency, [1, 16, 64]);
        assert_eq!(cli.runs, [RunKind::Raw, RunKind::Untraced, RunKind::Traced]);
        assert_eq!(cli.batch(), BatchSettings::default());
        assert!(!cli.no_wrk, "wrk runs by default");
        assert_eq!(cli.wrk_script, None);
        assert!(Cli::parse_from(["bench", "--no-wrk"]).no_wrk);
        assert_eq!(cli.output, PathBuf::from("bench/results"));
        assert!(cli.command.is_none());
        let render = Cli::parse_from(["bench", "render", "--docs", "/tmp"]);
        let Some(Command::Render { results, docs }) = render.command else {
            panic!("render is a command");
        };
        assert_eq!(
            (results.to_str(), docs.to_str()),
            (Some("bench/results"), Some("/tmp"))
        );
        let cli = Cli::parse_from(["bench", "--duration", "3s", "--concurrency", "1,16"]);
        assert_eq!(
            (cli.duration, cli.concurrency),
            (Duration::from_secs(3), vec![1, 16])
        );
    }
}
