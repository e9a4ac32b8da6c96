//! The configuration table in docs/configuration.md is the services' own
//! settings: it is
//! generated from each service's `Settings` (the one place a default is
//! written), and each binary's `--help` lists every variable of it with the
//! same default.
//!
//! After changing a setting, `UPDATE_DOCS=1 cargo test -p e2e --test
//! configuration` rewrites the table in docs/configuration.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::process::Command;

use service::configuration::{Variable, variables};

const BEGIN: &str =
    "<!-- configuration: generated from each service's Settings by e2e/tests/configuration.rs -->";
const END: &str = "<!-- configuration: end -->";

/// Each service's variables, in the order its `--help` lists them.
fn services() -> [(&'static str, Vec<Variable>); 3] {
    [
        ("gateway", variables::<gateway::Settings>()),
        (
            "checkout-service",
            variables::<checkout_service::Settings>(),
        ),
        ("stock-service", variables::<stock_service::Settings>()),
    ]
}

/// One row per distinct variable, naming the services that read it.
fn table() -> String {
    let services = services();
    let mut rows: Vec<(Vec<&str>, &Variable)> = Vec::new();
    for (service, variables) in &services {
        for variable in variables {
            match rows.iter_mut().find(|(_, seen)| *seen == variable) {
                Some((readers, _)) => readers.push(service),
                None => rows.push((vec![service], variable)),
            }
        }
    }
    let mut table = String::from("| variable | default | meaning | read by |\n|---|---|---|---|\n");
    for (readers, variable) in rows {
        let readers = if readers.len() == services.len() {
            "all".to_owned()
        } else {
            readers.join(", ")
        };
        let default = if variable.default.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", variable.default)
        };
        table.push_str(&format!(
            "| `{}` | {default} | {} | {readers} |\n",
            variable.name,
            variable.meaning.replace('|', "\\|"),
        ));
    }
    table
}

/// The page that holds the table, between `BEGIN` and `END`.
const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");

#[test]
fn the_configuration_page_s_table_is_generated_from_the_settings() {
    let page = std::fs::read_to_string(PAGE).expect("docs/configuration.md");
    let start = page
        .find(BEGIN)
        .expect("docs/configuration.md has the table's begin marker")
        + BEGIN.len();
    let end = page
        .find(END)
        .expect("docs/configuration.md has the table's end marker");
    let expected = format!("\n{}", table());
    if page[start..end] != expected {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{expected}{}", &page[..start], &page[end..]);
            std::fs::write(PAGE, updated).expect("docs/configuration.md written");
            return;
        }
        panic!(
            "docs/configuration.md's configuration table is out of date; run \
             UPDATE_DOCS=1 cargo test -p e2e --test configuration, or paste:\n{expected}"
        );
    }
}

#[test]
fn every_binary_documents_its_variables_and_defaults_in_help() {
    for (service, variables) in services() {
        let output = Command::new(testkit::process::binary(service).unwrap())
            .arg("--help")
            .output()
            .expect("the binary runs");
        assert!(output.status.success(), "{service} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        for variable in variables {
            assert!(
                help.contains(&format!("env: {}]", variable.name)),
                "{service} --help does not name {}:\n{help}",
                variable.name
            );
            if !variable.default.is_empty() {
                assert!(
                    help.contains(&format!("default: {}]", variable.default)),
                    "{service} --help does not give {}'s default {}:\n{help}",
                    variable.name,
                    variable.default
                );
            }
        }
        let version = Command::new(testkit::process::binary(service).unwrap())
            .arg("--version")
            .output()
            .expect("the binary runs");
        assert!(
            String::from_utf8_lossy(&version.stdout).starts_with(service),
            "{service} --version"
        );
    }
}
