//! `BENCHMARKS.md`: the part each topology's run writes (its run, tables, targets and
//! notes), the parts every run writes (intro, the comparison of the topologies, how to
//! run and read it), and the `## History` section kept across rewrites.
//!
//! The file is, in order: the intro; the single node's part (from `## Last run`); the
//! cluster's (from `## Cluster`); `## What replication costs per checkout`; `## How to
//! run` and `## How to read`; `## History`. A run of one topology replaces its own part
//! and keeps the other's as it was, so both show their latest run, and the comparison
//! is recomputed from the [`Figures`] comment at the end of each part.
//!
//! The prose lives in Markdown files next to this one (`intro.md`, `last-run.md`,
//! `cluster-run.md`, `how-to-run.md`), included as they are; their `{placeholders}` are
//! filled in here.

use std::fmt::{Display, Write as _};
use std::time::Duration;

use super::figures::{Figures, replication_section};
use super::generators::{generators_lines, generators_table, has_wrk};
use super::tables::{pipeline_table, ratios_table, raw_table, resources_table};
use super::targets::{targets, targets_table};
use super::{Environment, HISTORY_HEADING, Results, Settings, notes};
use crate::topology::Topology;

fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// The part of `BENCHMARKS.md` a run of `settings.topology` writes: its run's
/// description, tables, targets and notes, ending with the [`Figures`] comment the
/// comparison of the topologies is computed from.
pub fn render_section(
    env: &Environment,
    settings: &Settings,
    results: &Results,
    message_size: &str,
) -> String {
    let concurrency: Vec<String> = settings
        .concurrency
        .iter()
        .map(ToString::to_string)
        .collect();
    let batch = &settings.batch;
    let repeat = if settings.repeat > 1 {
        format!(
            "each run {} times, interleaved, the median shown",
            settings.repeat
        )
    } else {
        "each run once".to_owned()
    };
    let values: [(&str, &dyn Display); 22] = [
        ("date", &env.date),
        ("commit", &env.commit),
        ("nproc", &env.nproc),
        ("cpu", &env.cpu_model),
        ("memory", &env.memory),
        ("kernel", &env.kernel),
        ("rustc", &env.rustc),
        ("rabbitmq", &env.rabbitmq),
        ("postgres", &env.postgres),
        ("duration", &duration_text(settings.duration)),
        ("warmup", &duration_text(settings.warmup)),
        ("concurrency", &concurrency.join(", ")),
        ("stock", &settings.initial_stock),
        ("repeat", &repeat),
        ("rust_log", &settings.rust_log),
        ("queue", &batch.max_queue_size),
        ("delay", &batch.scheduled_delay.as_millis()),
        ("batch_size", &batch.max_export_batch_size),
        ("message_size", &message_size),
        ("prefetch", &settings.prefetch),
        ("clk", &env.clock_ticks),
        ("broker_pid", &env.broker_pid),
    ];
    let mut md = String::new();
    // Each Markdown file ends with one newline; a blank line follows each section.
    let headings = match settings.topology {
        Topology::Single => {
            md.push_str(&fill(LAST_RUN, &values));
            md.push_str("\n## Results (single node)\n\n");
            [
                "### Raw broker (the ceiling)",
                "### Pipeline, untraced (`OTEL_TRACES_SAMPLER=always_off`)",
                "### Pipeline, traced (`OTEL_TRACES_SAMPLER=always_on`)",
                "### CPU seconds per 1,000 checkouts, and peak RSS",
                "### Ratios",
                "### Load generators side by side",
                "## Targets (single node)",
                "### Notes",
            ]
        }
        Topology::Cluster => {
            md.push_str(&fill(CLUSTER_RUN, &values));
            md.push('\n');
            [
                "### Cluster: raw broker (the ceiling)",
                "### Cluster: pipeline, untraced (`OTEL_TRACES_SAMPLER=always_off`)",
                "### Cluster: pipeline, traced (`OTEL_TRACES_SAMPLER=always_on`)",
                "### Cluster: CPU seconds per 1,000 checkouts, and peak RSS",
                "### Cluster: ratios",
                "### Cluster: load generators side by side",
                "### Cluster: targets",
                "### Cluster: notes",
            ]
        }
    };
    // Each section's body; the side-by-side one only when wrk ran, with its lines.
    let generators = has_wrk(results).then(|| {
        let mut body = generators_table(results).render();
        for line in generators_lines(results) {
            let _ = write!(body, "\n{line}\n");
        }
        body
    });
    let sections = [
        Some(raw_table(results).render()),
        Some(pipeline_table(&results.untraced, false).render()),
        Some(pipeline_table(&results.traced, true).render()),
        Some(resources_table(results).render()),
        Some(ratios_table(results).render()),
        generators,
        Some(targets_table(&targets(results)).render()),
    ];
    for (heading, body) in headings.iter().zip(&sections) {
        if let Some(body) = body {
            let _ = write!(md, "{heading}\n\n{body}\n");
        }
    }
    let notes = notes(results);
    if !notes.is_empty() {
        let _ = write!(md, "{}\n\n", headings[7]);
        for note in notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push('\n');
    }
    md.push_str(&Figures::of(env, settings, results).to_comment());
    md
}

/// The title and opening paragraph of `BENCHMARKS.md`; `{history_heading}` is filled in.
const INTRO: &str = include_str!("intro.md");

/// The single node's `## Last run` section: where and with what the benchmark ran,
/// with a `{placeholder}` for each value (see [`render_section`]).
const LAST_RUN: &str = include_str!("last-run.md");

/// The cluster's `## Cluster` heading, what it is, and its last run, with
/// `{placeholders}` as [`LAST_RUN`].
const CLUSTER_RUN: &str = include_str!("cluster-run.md");

/// The `## How to run` and `## How to read` sections, as they are.
const HOW_TO: &str = include_str!("how-to-run.md");

/// `template` with every `{name}` of `values` replaced by its value. One pass, so a
/// value that happens to contain a `{name}` is kept as it is; other braces are left alone.
fn fill(template: &str, values: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let placeholder = values.iter().find_map(|(name, value)| {
            let after = rest
                .strip_prefix('{')?
                .strip_prefix(name)?
                .strip_prefix('}')?;
            Some((after, value))
        });
        match placeholder {
            Some((after, value)) => {
                let _ = write!(out, "{value}");
                rest = after;
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

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

/// What stands for a topology's part before its first run.
fn placeholder(topology: Topology) -> String {
    match topology {
        Topology::Single => {
            "## Last run (single node)\n\nNot run yet: `scripts/bench`.\n".to_owned()
        }
        Topology::Cluster => {
            "## Cluster\n\nNot run yet: `scripts/bench --topology cluster`.\n".to_owned()
        }
    }
}

/// Which part of `BENCHMARKS.md` a line starts, if it starts one: a topology's, or
/// one of those every run writes (`None` inside a part).
fn part_starting_at(line: &str) -> Option<Option<Topology>> {
    let line = line.trim_end();
    if line.starts_with("## Last run") {
        Some(Some(Topology::Single))
    } else if line == "## Cluster" || line.starts_with("## Cluster ") {
        Some(Some(Topology::Cluster))
    } else if line.starts_with("## What replication costs")
        || line.starts_with("## How to run")
        || line == HISTORY_HEADING
    {
        Some(None)
    } else {
        None
    }
}

/// The part of `topology` in an existing `BENCHMARKS.md`: from the line that starts it
/// to the line that starts another part.
pub fn part_of(existing: &str, topology: Topology) -> Option<&str> {
    let mut start = None;
    let mut offset = 0;
    for line in existing.split_inclusive('\n') {
        match (start, part_starting_at(line)) {
            (None, Some(Some(t))) if t == topology => start = Some(offset),
            (Some(from), Some(_)) => return Some(&existing[from..offset]),
            _ => {}
        }
        offset += line.len();
    }
    start.map(|from| &existing[from..])
}

/// The whole file after a run of `topology` that rendered `section`: the intro, the
/// single node's part and the cluster's (the other topology's kept from `existing`),
/// their comparison, how to run and read it, and the history (kept as it was).
pub fn compose(topology: Topology, section: &str, existing: Option<&str>) -> String {
    let part = |t: Topology| {
        if t == topology {
            section.to_owned()
        } else {
            existing
                .and_then(|text| part_of(text, t))
                .map_or_else(|| placeholder(t), str::to_owned)
        }
    };
    let (single, cluster) = (part(Topology::Single), part(Topology::Cluster));
    let mut out = fill(INTRO, &[("history_heading", &HISTORY_HEADING)]);
    for text in [&single, &cluster] {
        out.push('\n');
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&replication_section(
        Figures::find_in(&single).as_ref(),
        Figures::find_in(&cluster).as_ref(),
    ));
    out.push('\n');
    out.push_str(HOW_TO);
    out.push('\n');
    out.push_str(&history_of(existing));
    out
}
