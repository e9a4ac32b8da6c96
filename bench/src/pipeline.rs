//! The pipeline runs: the three release binaries as child processes against the
//! broker (the local RabbitMQ node, or the private cluster of `--topology cluster`, with
//! two processes of each service), loaded closed-loop through the gateway(s), untraced
//! (`always_off`) or traced (`always_on`, exported over OTLP/gRPC to a receiver in this
//! process).
//!
//! One run, at one concurrency C:
//!
//! 1. fresh names (exchange, queue, their dead-letter pair), a fresh SQLite file in a
//!    temporary directory (cluster: a fresh PostgreSQL database), an OTLP receiver on
//!    127.0.0.1 (untraced runs have one too, to show that nothing is exported);
//! 2. stock-service, then checkout-service, then the gateway (each as many times as
//!    there are replicas), each on 127.0.0.1:0, their addresses read from their start-up
//!    log lines; then every stock-service's and gateway's `/readyz` must answer 200;
//! 3. warmup: `run_load` for the warmup time, then wait until stock-service applied
//!    everything accepted so far (stock of item 1 = initial − applied orders);
//! 4. CPU snapshot (PostgreSQL's processes included); the measured `run_load` (spread
//!    over the gateways in turn); wait until every accepted order is applied;
//!    traced: wait (bounded) until every accepted checkout's trace is complete; CPU
//!    snapshot. The CPU window thus covers the work each checkout causes, downstream and
//!    span export included;
//! 5. unless `--no-wrk`, the same again with wrk as the load generator, at the same C
//!    for the same duration: CPU snapshot; wrk; wait until stock-service applied wrk's
//!    accepted orders too; traced: wait (bounded) until as many more traces are
//!    complete; CPU snapshot;
//! 6. peak RSS; in a cluster, the nodes the queue is replicated on; SIGTERM to every
//!    service (they flush their spans), their logs scanned for dropped spans; the
//!    receiver's spans counted; broker objects, database and receiver removed.
//!
//! The parts: `config` (what a run is given), `processes` (starting and stopping the
//! services), `measure` (the load window and what is read around it), `wrk_window`
//! (the same with wrk), `applied` (asking stock-service what it applied) and `result`
//! (what a run hands back); everything public is re-exported here.

use anyhow::Context;

use crate::cleanup::Cleanup;
use crate::tally::SpanTally;

mod applied;
mod config;
mod measure;
mod processes;
mod result;
mod wrk_window;

pub use config::{PipelineConfig, Tracing};
pub use processes::RUST_LOG;
pub use result::{PipelineResult, ServiceFigures, WrkFigures};

use measure::measure;
use processes::Pipeline;

/// Runs the pipeline at `concurrency`, untraced or traced.
pub async fn run_pipeline(
    config: &PipelineConfig,
    tracing: Tracing,
    concurrency: usize,
    broker: &[(String, u32)],
    clock_ticks: u64,
    cleanup: &Cleanup,
) -> anyhow::Result<PipelineResult> {
    let receiver = SpanTally::start()
        .await
        .context("cannot start the OTLP receiver")?;
    let result = async {
        let pipeline = Pipeline::start(config, tracing, &receiver.endpoint(), cleanup).await?;
        measure(
            config,
            tracing,
            concurrency,
            broker,
            clock_ticks,
            pipeline,
            &receiver,
        )
        .await
    }
    .await;
    receiver.shutdown().await;
    if let Err(error) = cleanup.run().await {
        eprintln!("warning: {error:#}");
    }
    result
}
