//! Reading the compose files for the consistency tests, which check
//! `docker-compose.yaml` and its scaled-out override
//! `docker-compose.cluster.yaml` against the code without Docker.
//!
//! [`cluster`] merges the override onto the base the way `docker compose -f
//! docker-compose.yaml -f docker-compose.cluster.yaml` does for what these
//! files use: mappings merge key by key, lists are appended. YAML tags
//! (`!override`, `!reset`) are refused: docker-compose 1.29 and Compose v2
//! before 2.24 cannot read them.

use std::{collections::BTreeSet, fs, path::Path};

use serde_yaml_ng::{Mapping, Value};
use service::configuration::variables;

/// The workspace root.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The three services built from this workspace: (compose name, crate).
pub const SERVICES: [(&str, &str); 3] = [
    ("gateway", "gateway"),
    ("checkout-service", "checkout-service"),
    ("stock-service", "stock-service"),
];

/// A YAML file of the workspace, with its merge keys (`<<: *anchor`) applied.
pub fn load(file: &str) -> Value {
    let text = fs::read_to_string(Path::new(ROOT).join(file))
        .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let mut value: Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{file}: bad merge key: {e}"));
    value
}

/// `docker-compose.yaml`: the single-node demo.
pub fn base() -> Value {
    load("docker-compose.yaml")
}

/// `docker-compose.yaml` with `docker-compose.cluster.yaml` merged onto it.
pub fn cluster() -> Value {
    let mut merged = base();
    merge(&mut merged, load("docker-compose.cluster.yaml"));
    merged
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, untagged(value));
                    }
                }
            }
        }
        (Value::Sequence(base), Value::Sequence(over)) => base.extend(over),
        (base, over) => *base = untagged(over),
    }
}

/// The value, which must not be tagged.
fn untagged(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => panic!(
            "a YAML tag ({}) in a compose file: older Compose versions refuse it",
            tagged.tag
        ),
        other => other,
    }
}

/// The service called `name`.
pub fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let service = &compose["services"][name];
    assert!(!service.is_null(), "no service {name}");
    service
}

/// Variable `key` of a service's `environment`.
pub fn env<'a>(service: &'a Value, key: &str) -> &'a str {
    service["environment"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not set"))
}

/// The variables a service's `environment` sets.
pub fn env_keys(service: &Value) -> Vec<String> {
    service["environment"]
        .as_mapping()
        .map(Mapping::keys)
        .into_iter()
        .flatten()
        .map(|key| key.as_str().expect("a variable name").to_owned())
        .collect()
}

/// Variables a service reads: every one its `Settings` declares.
pub fn variables_read_by(krate: &str) -> BTreeSet<String> {
    let variables = match krate {
        "gateway" => variables::<gateway::Settings>(),
        "checkout-service" => variables::<checkout_service::Settings>(),
        "stock-service" => variables::<stock_service::Settings>(),
        other => panic!("no service {other}"),
    };
    variables
        .into_iter()
        .map(|variable| variable.name)
        .collect()
}

/// Fails unless every variable each of [`SERVICES`] sets in `compose` is
/// one its `Settings` reads: a misspelt variable would be silently ignored.
pub fn assert_every_variable_set_is_read(compose: &Value) {
    for (name, krate) in SERVICES {
        let read = variables_read_by(krate);
        for key in env_keys(service(compose, name)) {
            assert!(
                read.contains(&key),
                "{name} sets {key}, which {krate} never reads"
            );
        }
    }
}

/// The port of `host:port` or `scheme://host:port/`.
pub fn port_of(address: &str) -> &str {
    address
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("an address")
}

/// `"A=B"` for every published port of every service, sorted.
pub fn published_ports(compose: &Value) -> Vec<String> {
    let mut published = Vec::new();
    for (name, service) in compose["services"].as_mapping().expect("services") {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            published.push(format!(
                "{}={}",
                name.as_str().expect("a service name"),
                port.as_str().expect("a port mapping")
            ));
        }
    }
    published.sort();
    published
}

/// The condition `service_name` waits for on `dependency`.
pub fn condition(compose: &Value, service_name: &str, dependency: &str) -> String {
    service(compose, service_name)["depends_on"][dependency]["condition"]
        .as_str()
        .unwrap_or_else(|| panic!("{service_name} does not wait for {dependency}"))
        .to_owned()
}
