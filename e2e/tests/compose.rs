//! `docker-compose.yaml` checked against the code, without Docker (the
//! compose test, `compose_up.rs`, runs it for real): every variable it sets
//! is one the service reads (a typo would be silently ignored), every
//! address points at a real service and port, every binary exists, and only
//! the gateway and the three UIs are published, on the loopback interface
//! unless the user says otherwise. The Jaeger and Prometheus configurations
//! under `deploy/` are checked the same way: they parse, and the ports and
//! names in them match what the services send and what the other side reads.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{fs, path::Path};

use e2e::compose::{
    ROOT, SERVICES, assert_every_variable_set_is_read, base as compose, condition, env, port_of,
    published_ports, service,
};
use serde_yaml_ng::Value;

/// `[[bin]]` names (or the package name) of a workspace crate.
fn binaries_of(krate: &str) -> Vec<String> {
    let manifest = fs::read_to_string(Path::new(ROOT).join(krate).join("Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
            names.push(name.trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn every_variable_set_is_one_the_service_reads() {
    let compose = compose();
    assert_every_variable_set_is_read(&compose);
    for (name, _) in SERVICES {
        assert_eq!(env(service(&compose, name), "OTEL_SERVICE_NAME"), name);
    }
}

#[test]
fn every_service_is_built_from_the_one_dockerfile_with_a_real_binary() {
    let compose = compose();
    assert!(Path::new(ROOT).join("Dockerfile").exists());
    for (name, krate) in SERVICES {
        let build = &service(&compose, name)["build"];
        assert_eq!(build["context"].as_str(), Some("."), "{name}");
        let binary = build["args"]["BINARY"].as_str().unwrap();
        assert!(
            binaries_of(krate).iter().any(|b| b == binary),
            "{name} builds binary {binary}, which {krate} does not have"
        );
    }
}

#[test]
fn addresses_point_at_the_right_services_and_ports() {
    let compose = compose();
    let gateway = service(&compose, "gateway");
    let checkout = service(&compose, "checkout-service");
    let stock = service(&compose, "stock-service");

    // The gateway calls checkout-service on the port it listens on.
    let grpc_port = port_of(env(checkout, "GRPC_ADDRESS"));
    assert_eq!(
        env(gateway, "CHECKOUT_SERVICE_ADDRESS"),
        format!("http://checkout-service:{grpc_port}")
    );
    assert!(
        checkout["expose"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some(grpc_port))
    );

    // Both AMQP services reach the broker and agree on the names.
    for service in [checkout, stock] {
        assert!(env(service, "AMQP_URL").contains("@rabbitmq:5672/"));
        assert_eq!(
            env(service, "AMQP_EXCHANGE"),
            env(checkout, "AMQP_EXCHANGE")
        );
        assert_eq!(
            env(service, "AMQP_ROUTING_KEY"),
            env(checkout, "AMQP_ROUTING_KEY")
        );
    }
    assert!(
        !env(stock, "AMQP_URL").contains("guest:guest"),
        "no default credentials"
    );

    let probe = checkout["healthcheck"]["test"].as_sequence().unwrap();
    assert!(probe.iter().any(|arg| arg.as_str() == Some("health-check")));

    // Every service exports to Jaeger's OTLP/gRPC port.
    for service in [gateway, checkout, stock] {
        assert_eq!(
            env(service, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            "http://jaeger:4317"
        );
        assert_eq!(env(service, "OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc");
    }

    // Health checks ask whether the service is ready, on the port it
    // listens on.
    for service in [gateway, stock] {
        let port = port_of(env(service, "HTTP_ADDRESS"));
        let probe = service["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            probe.contains(&format!("localhost:{port}/readyz")),
            "{probe}"
        );
    }
}

#[test]
fn the_fault_admin_endpoints_are_on_inside_the_network_with_a_token_from_the_environment() {
    let compose = compose();
    let example = fs::read_to_string(Path::new(ROOT).join(".env.example")).unwrap();
    assert!(example.contains("FAULT_ADMIN_TOKEN="), "{example}");
    for name in ["checkout-service", "stock-service"] {
        let service = service(&compose, name);
        assert!(
            env(service, "FAULT_ADMIN_TOKEN").starts_with("${FAULT_ADMIN_TOKEN"),
            "{name}: the token comes from the environment (.env)"
        );
        let address = env(service, "ADMIN_ADDRESS");
        assert!(address.starts_with("0.0.0.0:"), "{name}: {address}");
        assert!(
            service["expose"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|p| p.as_str() == Some(port_of(address))),
            "{name} exposes its admin port to the network"
        );
    }
}

#[test]
fn only_the_gateway_and_the_three_uis_are_published_on_loopback() {
    let compose = compose();
    let published = published_ports(&compose);
    let gateway_port = port_of(env(service(&compose, "gateway"), "HTTP_ADDRESS"));
    let on = "${PUBLISH_ADDRESS:-127.0.0.1}";
    assert_eq!(
        published,
        [
            format!("gateway={on}:{gateway_port}:{gateway_port}"),
            format!("jaeger={on}:16686:16686"),
            format!("prometheus={on}:9090:9090"),
            format!("rabbitmq={on}:15672:15672"),
        ]
    );
}

#[test]
fn services_start_only_when_their_dependencies_are_up() {
    let compose = compose();
    let condition = |service: &str, dependency: &str| condition(&compose, service, dependency);
    assert_eq!(condition("stock-service", "rabbitmq"), "service_healthy");
    assert_eq!(condition("checkout-service", "rabbitmq"), "service_healthy");
    assert_eq!(
        condition("checkout-service", "stock-service"),
        "service_healthy"
    );
    assert_eq!(condition("gateway", "checkout-service"), "service_healthy");
    for name in ["jaeger", "prometheus", "rabbitmq"] {
        assert!(service(&compose, name)["image"].as_str().is_some());
    }
    assert!(
        service(&compose, "jaeger")["image"]
            .as_str()
            .unwrap()
            .starts_with("jaegertracing/jaeger:2")
    );
}

/// The file under `deploy/` that `service` mounts at `target`, parsed.
fn mounted(compose: &Value, service_name: &str, target: &str) -> Value {
    let volumes = service(compose, service_name)["volumes"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{service_name} mounts nothing"));
    let source = volumes
        .iter()
        .filter_map(Value::as_str)
        .find_map(|volume| {
            let mut parts = volume.split(':');
            let source = parts.next()?;
            (parts.next()? == target).then_some(source)
        })
        .unwrap_or_else(|| panic!("{service_name} mounts nothing at {target}: {volumes:?}"));
    let file = source.strip_prefix("./").unwrap_or(source);
    assert!(file.starts_with("deploy/"), "{file}");
    e2e::compose::load(file)
}

fn jaeger_config(compose: &Value) -> Value {
    let command: Vec<&str> = service(compose, "jaeger")["command"]
        .as_sequence()
        .expect("jaeger runs with a command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = command.iter().position(|arg| *arg == "--config").unwrap();
    mounted(compose, "jaeger", command[at + 1])
}

fn names(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("not a list: {value:?}"))
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

fn exposed(compose: &Value, service_name: &str, port: &str) -> bool {
    service(compose, service_name)["expose"]
        .as_sequence()
        .is_some_and(|ports| ports.iter().any(|p| p.as_str() == Some(port)))
}

#[test]
fn jaeger_receives_the_traces_the_services_send_and_keeps_them() {
    let compose = compose();
    let config = jaeger_config(&compose);
    let pipelines = &config["service"]["pipelines"];

    // The services' OTLP endpoint is the receiver's gRPC port, exposed.
    let grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .unwrap();
    for (name, _) in SERVICES {
        let service = service(&compose, name);
        let endpoint = env(service, "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert_eq!(
            endpoint,
            format!("http://jaeger:{}", port_of(grpc)),
            "{name}"
        );
        assert!(exposed(&compose, "jaeger", port_of(grpc)));
        // Metrics are scraped by Prometheus, not pushed; no logs pipeline:
        // a log export would be refused.
        assert_eq!(env(service, "OTEL_METRICS_EXPORTER"), "none", "{name}");
        assert_eq!(env(service, "OTEL_LOGS_EXPORTER"), "none", "{name}");
    }
    assert!(pipelines["logs"].is_null());
    assert!(pipelines["metrics"].is_null());

    // Traces: stored, and turned into span metrics.
    assert_eq!(names(&pipelines["traces"]["receivers"]), ["otlp"]);
    let traces_to = names(&pipelines["traces"]["exporters"]);
    assert!(
        traces_to.contains(&"jaeger_storage_exporter"),
        "{traces_to:?}"
    );
    assert!(traces_to.contains(&"spanmetrics"), "{traces_to:?}");
    // Span metrics reach the Prometheus exporter.
    assert_eq!(
        names(&pipelines["metrics/spanmetrics"]["receivers"]),
        ["spanmetrics"]
    );
    assert_eq!(
        names(&pipelines["metrics/spanmetrics"]["exporters"]),
        ["prometheus"]
    );

    // Every component a pipeline names is defined (the collector refuses to
    // start otherwise).
    for (_, pipeline) in pipelines.as_mapping().unwrap() {
        for (role, sections) in [
            ("receivers", &["receivers", "connectors"][..]),
            ("processors", &["processors"][..]),
            ("exporters", &["exporters", "connectors"][..]),
        ] {
            if pipeline[role].is_null() {
                continue;
            }
            for component in names(&pipeline[role]) {
                assert!(
                    sections
                        .iter()
                        .any(|section| config[*section].get(component).is_some()),
                    "{component} ({role}) is not defined"
                );
            }
        }
    }
    let extensions = names(&config["service"]["extensions"]);
    for extension in &extensions {
        assert!(
            config["extensions"].get(*extension).is_some(),
            "{extension}"
        );
    }
    // The stored traces are the ones the UI reads.
    let trace_storage = config["exporters"]["jaeger_storage_exporter"]["trace_storage"]
        .as_str()
        .unwrap();
    assert_eq!(
        config["extensions"]["jaeger_query"]["storage"]["traces"].as_str(),
        Some(trace_storage)
    );
    assert!(
        config["extensions"]["jaeger_storage"]["backends"]
            .get(trace_storage)
            .is_some()
    );
}

#[test]
fn prometheus_scrapes_every_service_and_jaeger_and_the_monitor_tab_reads_prometheus() {
    let compose = compose();
    let jaeger = jaeger_config(&compose);
    let prometheus = mounted(&compose, "prometheus", "/etc/prometheus/prometheus.yml");
    assert!(
        service(&compose, "prometheus")["image"]
            .as_str()
            .unwrap()
            .starts_with("prom/prometheus:v3")
    );

    // Prometheus scrapes the port Jaeger's Prometheus exporter listens on.
    let exporter_port = port_of(
        jaeger["exporters"]["prometheus"]["endpoint"]
            .as_str()
            .unwrap(),
    );
    assert!(exposed(&compose, "jaeger", exporter_port));
    let jobs = prometheus["scrape_configs"].as_sequence().unwrap();
    let targets: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job["static_configs"].as_sequence().into_iter().flatten())
        .flat_map(|config| names(&config["targets"]))
        .collect();
    assert!(
        targets.contains(&format!("jaeger:{exporter_port}").as_str()),
        "{targets:?}"
    );
    // Every service (each replica: the name resolves to all of them) on the
    // port of its /metrics.
    for (name, _) in SERVICES {
        let port = port_of(env(service(&compose, name), "METRICS_ADDRESS"));
        assert!(exposed(&compose, name, port), "{name} exposes {port}");
        let job = jobs
            .iter()
            .find(|job| job["job_name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no scrape job for {name}"));
        let discovery = &job["dns_sd_configs"][0];
        assert_eq!(names(&discovery["names"]), [name]);
        assert_eq!(discovery["port"].as_u64(), port.parse().ok());
    }

    // The Monitor tab's metrics backend is that Prometheus, on its port.
    let backend = jaeger["extensions"]["jaeger_query"]["storage"]["metrics"]
        .as_str()
        .expect("the query extension has a metrics storage");
    let endpoint = jaeger["extensions"]["jaeger_storage"]["metric_backends"][backend]["prometheus"]
        ["endpoint"]
        .as_str()
        .expect("a Prometheus metrics backend");
    let published = published_ports(&compose);
    let prometheus_port = published
        .iter()
        .find_map(|port| port.strip_prefix("prometheus="))
        .and_then(|ports| ports.rsplit(':').next())
        .expect("Prometheus listens on a published port");
    assert_eq!(endpoint, format!("http://prometheus:{prometheus_port}"));
}
