//! `BENCHMARKS.md`: the generated part (header, tables, targets, notes, how to run and
//! read it) and the `## History` section kept across rewrites.

use std::fmt::Write as _;
use std::time::Duration;

use super::tables::{pipeline_table, ratios_table, raw_table, resources_table};
use super::targets::{targets, targets_table};
use super::{Environment, HISTORY_HEADING, Results, Settings, notes};

fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// `BENCHMARKS.md` without its history section.
pub fn render_markdown(
    env: &Environment,
    settings: &Settings,
    results: &Results,
    message_size: &str,
) -> String {
    let mut md = String::new();
    let concurrency: Vec<String> = settings
        .concurrency
        .iter()
        .map(ToString::to_string)
        .collect();
    let batch = &settings.batch;
    let _ = write!(
        md,
        "# Benchmarks\n\n\
         Issue 5's benchmark of the checkout pipeline: the broker alone, the pipeline untraced, \
         and the pipeline traced, on one machine in one run. Everything above `{HISTORY_HEADING}` \
         is rewritten by `scripts/bench`; the history section is kept.\n\n\
         ## Last run\n\n\
         - **Date**: {date}\n\
         - **Commit**: {commit}\n\
         - **Machine**: {nproc} CPUs, {cpu}, {memory} RAM, Linux {kernel}\n\
         - **Versions**: {rustc}; RabbitMQ {rabbitmq}\n\
         - **Settings**: {duration} measured per run after a {warmup} warmup; concurrency (closed loop) \
         {concurrency}; {repeat}; one unit of item 1 per checkout; `INITIAL_STOCK={stock}`\n\
         - **Services**: release binaries, one process each, on 127.0.0.1; `RUST_LOG={rust_log}` \
         (warn, plus the start-up module's info line carrying the bound address); SQLite in a \
         fresh temporary directory; their own exchange and quorum queue per run; \
         `AMQP_PREFETCH={prefetch}`\n\
         - **Batch span processor**: `OTEL_BSP_MAX_QUEUE_SIZE={queue}`, \
         `OTEL_BSP_SCHEDULE_DELAY={delay}` ms, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch_size}`; \
         OTLP/gRPC to an in-process sink that tallies spans per trace (`bench/src/tally.rs`)\n\
         - **Raw broker**: {message_size}; one confirm-mode channel shared by C publishers; \
         consumer on its own connection with prefetch {prefetch}, manual acks\n\
         - **CPU**: `/proc/<pid>/stat` utime+stime, `CLK_TCK`={clk}; broker = RabbitMQ's beam.smp \
         (found by {broker_pid})\n\n",
        date = env.date,
        commit = env.commit,
        nproc = env.nproc,
        cpu = env.cpu_model,
        memory = env.memory,
        kernel = env.kernel,
        rustc = env.rustc,
        rabbitmq = env.rabbitmq,
        duration = duration_text(settings.duration),
        warmup = duration_text(settings.warmup),
        concurrency = concurrency.join(", "),
        stock = settings.initial_stock,
        repeat = if settings.repeat > 1 {
            format!(
                "each run {} times, interleaved, the median shown",
                settings.repeat
            )
        } else {
            "each run once".to_owned()
        },
        rust_log = settings.rust_log,
        queue = batch.max_queue_size,
        delay = batch.scheduled_delay.as_millis(),
        batch_size = batch.max_export_batch_size,
        prefetch = settings.prefetch,
        clk = env.clock_ticks,
        broker_pid = env.broker_pid,
    );
    let _ = write!(
        md,
        "## Results\n\n\
         ### Raw broker (the ceiling)\n\n{}\n\
         ### Pipeline, untraced (`OTEL_TRACES_SAMPLER=always_off`)\n\n{}\n\
         ### Pipeline, traced (`OTEL_TRACES_SAMPLER=always_on`)\n\n{}\n\
         ### CPU seconds per 1,000 checkouts, and peak RSS\n\n{}\n\
         ### Ratios\n\n{}\n\
         ## Targets\n\n{}\n",
        raw_table(results).render(),
        pipeline_table(&results.untraced, false).render(),
        pipeline_table(&results.traced, true).render(),
        resources_table(results).render(),
        ratios_table(results).render(),
        targets_table(&targets(results)).render(),
    );
    let notes = notes(results);
    if !notes.is_empty() {
        md.push_str("### Notes\n\n");
        for note in notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push('\n');
    }
    md.push_str(HOW_TO);
    md
}

const HOW_TO: &str = "## How to run\n\n\
```sh\n\
scripts/bench                                             # --duration 10s --concurrency 1,16,64 --repeat 3\n\
scripts/bench --duration 3s --concurrency 1,16 --repeat 1 # a quick check\n\
target/release/bench --help                               # every option (warmup, sample size, OTEL_BSP_*, …)\n\
```\n\n\
`scripts/bench` makes sure RabbitMQ runs, builds the release binaries \
(`cargo build --release --locked --bins`) and runs `target/release/bench`, which prints the \
tables and rewrites this file (`--output`, or `--no-write` to leave it alone). Nothing else \
should run on the machine meanwhile: the services, the broker and the load generator share its \
CPUs. It takes about (warmup + duration + ~6 s) × 3 kinds × the repeats, per concurrency \
level: ~8 minutes with the defaults.\n\n\
## How to read\n\n\
- **C** is the number of requests (raw: publishes) in flight: closed loop, each of C workers \
sends its next request when the previous one is answered. Figures cover the measured window \
only; the warmup is excluded.\n\
- **Raw broker** is RabbitMQ alone doing what the pipeline asks of it: persistent, confirmed, \
`mandatory` publishes of a `checkout.processed`-sized message through a durable topic exchange \
into a quorum queue, consumed and acked one by one. It is the ceiling the pipeline can approach. \
*confirm* latency is publish → `basic.ack`.\n\
- **req/s** counts accepted checkouts (202) per second; latencies are of all responses, \
from the moment the request was sent (HDR histogram, µs). **failed** is non-2xx plus transport \
errors. **applied** says whether stock-service applied every accepted order (stock of item 1 \
fell by exactly the number of 202s); **drain** is how long after the window that took: \
stock-service applies orders one batch at a time from a single consumer, so when it is slower \
than the gateway accepts them a backlog builds up in the queue and drains afterwards. \
**applied/s** is then the end-to-end rate: orders applied over window + drain — what the \
pipeline sustains, whereas req/s is how fast it *accepts* while the queue absorbs the \
difference.\n\
- **202→applied** is `processedAt` (stock-service's commit time, Unix ms) minus the time the \
202 reached the load generator, over an evenly spread sample of the accepted orders: 1 ms \
resolution, and it can be ≤ 0 because the consumer often commits before the 202 travels back \
through checkout-service and the gateway.\n\
- **CPU s/1k** is the CPU time (user + system, all threads) a process used over the window \
divided by the accepted checkouts, × 1,000: **0.150 s per 1,000 = 150 µs per checkout**. The \
window runs from the start of the measured load until every accepted order is applied and, when \
traced, every trace is complete, so downstream work and span export are included. *bench* is \
the load generator (and, when traced, the OTLP span sink) in this process; *machine busy* is \
the share of all CPUs busy over the window — near 100 % means the machine, not a service, is \
the limit — and *other busy* the part of it spent outside the measured processes (kernel \
threads, and anything else running): a few percent is normal, more than 10 % flags the run \
as disturbed in the notes. **RSS** is each service's peak resident set (VmHWM).\n\
- **Traces**: each request carries its own `traceparent`, so the accepted checkouts' trace ids \
are known; a trace is complete when it has the six spans of README's table (at least six \
spans, stock-service's database spans being one or more). **dropped spans** is the total the \
OpenTelemetry SDK's batch span processor logs at shutdown (`dropped_span_count` of its \
`BatchSpanProcessor.SpansDropped` warning, found in the services' JSON logs after SIGTERM; \
`≥1` if only its first-drop warning appeared); 0 when neither was logged.\n\
- **Ratios**: *untraced / raw* is how close the pipeline gets to the broker's ceiling; \
*traced / untraced* and the p99 difference are the cost of tracing; the last column is that \
cost in the services alone (their CPU per checkout), without the span sink and the broker, which \
share the same CPUs.\n\
- **Noise**: on a small machine one run of each is noisy (the services, the broker and the \
load generator compete for the same CPUs, and the queue backlog changes how they share them), \
so a ratio near its limit can flip between runs. `--repeat N` runs every (kind, C) N times, \
interleaved, shows the run of median throughput and lists the spread in the notes.\n\n";

/// The `## History` section of an existing `BENCHMARKS.md` (from its heading to the end),
/// or a fresh one.
pub fn history_of(existing: Option<&str>) -> String {
    let found = existing.and_then(|text| {
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line.trim_end() == HISTORY_HEADING {
                return Some(text[offset..].to_owned());
            }
            offset += line.len();
        }
        None
    });
    match found {
        Some(history) if history.ends_with('\n') => history,
        Some(history) => history + "\n",
        None => format!(
            "{HISTORY_HEADING}\n\n\
             Before/after records of optimisations, newest first. `bench` keeps everything from \
             this heading to the end of the file when it rewrites BENCHMARKS.md.\n"
        ),
    }
}

/// The whole file: the generated part, then the history (kept as it was).
pub fn compose(generated: &str, existing: Option<&str>) -> String {
    let mut out = generated.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(&history_of(existing));
    out
}
