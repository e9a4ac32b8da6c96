//! BENCHMARKS.md's and SCALING.md's tables are the committed results: rendered from
//! `bench/results/*.json`, between the documents' `<!-- bench render: … -->` markers.
//!
//! After changing the renderer or the results by hand, `UPDATE_DOCS=1 cargo test -p
//! bench --test docs` rewrites the generated parts (a benchmark run does it too).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::path::Path;

#[test]
fn the_documents_show_the_committed_results() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docs = bench::report::render_docs(&root.join(bench::RESULTS_DIR), &root)
        .expect("the results and the documents' markers are readable");
    for doc in docs {
        if doc.rendered == doc.current {
            continue;
        }
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&doc.path, &doc.rendered).expect("the document is written");
            continue;
        }
        panic!(
            "{}'s generated parts differ from bench/results; run UPDATE_DOCS=1 cargo test -p \
             bench --test docs, or paste:\n{}",
            doc.path.display(),
            doc.rendered
        );
    }
}
