//! The results as data, and the documents rendered from them.
//!
//! A benchmark run collects its measurements in [`Results`], keeps the median of
//! repeated runs, and turns them into a [`Run`] record: plain figures, written to
//! `bench/results/<topology>.json` (the latest run of each topology, kept in the
//! repository). [`render_docs`] turns the records into the generated parts of
//! `BENCHMARKS.md` and `SCALING.md` (between their `<!-- bench render: … -->` markers;
//! everything else in them is hand-written), and [`summary`] into what a run prints.
//!
//! Why this split: the bench measures and people write. The data says which run a
//! figure comes from and re-renders without a run, both documents quote the same
//! figures, and a test checks that the committed documents show the committed data.
//!
//! The parts: `data` (the record, read and written as JSON), `record` (from
//! measurements to a record), `table` (a Markdown table and the cells' format),
//! `targets` (the targets judged on a record) and `render` (the documents).

use anyhow::Context;

mod data;
mod record;
mod render;
mod table;
mod targets;

pub use data::{Environment, Pipeline, Raw, Run, Settings, Window};
pub use record::{Results, message};
pub use render::{GO_ORIGINAL_WRK_TRACED, Rendered, render_docs, splice, summary};
pub use targets::targets_table;

/// Rewrites the generated parts of the documents in `docs` from the results in
/// `results`, printing which files changed.
pub fn render(results: &std::path::Path, docs: &std::path::Path) -> anyhow::Result<()> {
    for doc in render_docs(results, docs)? {
        if doc.rendered != doc.current {
            std::fs::write(&doc.path, &doc.rendered)
                .with_context(|| format!("cannot write {}", doc.path.display()))?;
            eprintln!("bench: rendered {}", doc.path.display());
        }
    }
    Ok(())
}
