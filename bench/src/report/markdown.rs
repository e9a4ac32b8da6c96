//! `BENCHMARKS.md`: the generated part (header, tables, targets, notes, how to run and
//! read it) and the `## History` section kept across rewrites.
//!
//! The prose lives in Markdown files next to this one (`intro.md`, `last-run.md`,
//! `how-to-run.md`), included as they are; their `{placeholders}` are filled in here.

use std::fmt::{Display, Write as _};
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
    let repeat = if settings.repeat > 1 {
        format!(
            "each run {} times, interleaved, the median shown",
            settings.repeat
        )
    } else {
        "each run once".to_owned()
    };
    // Each Markdown file ends with one newline; a blank line follows each section.
    md.push_str(&fill(INTRO, &[("history_heading", &HISTORY_HEADING)]));
    md.push('\n');
    md.push_str(&fill(
        LAST_RUN,
        &[
            ("date", &env.date),
            ("commit", &env.commit),
            ("nproc", &env.nproc),
            ("cpu", &env.cpu_model),
            ("memory", &env.memory),
            ("kernel", &env.kernel),
            ("rustc", &env.rustc),
            ("rabbitmq", &env.rabbitmq),
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
        ],
    ));
    md.push('\n');
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
    md.push('\n');
    md
}

/// The title and opening paragraph of `BENCHMARKS.md`; `{history_heading}` is filled in.
const INTRO: &str = include_str!("intro.md");

/// The `## Last run` section: where and with what the benchmark ran, with a
/// `{placeholder}` for each value (see [`render_markdown`]).
const LAST_RUN: &str = include_str!("last-run.md");

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

/// The whole file: the generated part, then the history (kept as it was).
pub fn compose(generated: &str, existing: Option<&str>) -> String {
    let mut out = generated.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(&history_of(existing));
    out
}
