//! No Docker engine runs here, so `docker-compose.yaml` is checked against
//! the code instead: every variable it sets is one the service reads (a typo
//! would be silently ignored), every address points at a real service and
//! port, every binary exists, and only the gateway and the two UIs are
//! published.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{fs, path::Path};

use e2e::compose::{
    ROOT, SERVICES, base as compose, condition, env, env_keys, port_of, published_ports, service,
    variables_read_by,
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
    for (name, krate) in SERVICES {
        let read = variables_read_by(krate);
        for key in env_keys(service(&compose, name)) {
            assert!(
                read.contains(&key),
                "{name} sets {key}, which {krate} never reads"
            );
        }
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

    // Health checks probe the port the service listens on.
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
            probe.contains(&format!("localhost:{port}/healthz")),
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
fn only_the_gateway_and_the_two_uis_are_published() {
    let compose = compose();
    let published = published_ports(&compose);
    let gateway_port = port_of(env(service(&compose, "gateway"), "HTTP_ADDRESS"));
    assert_eq!(
        published,
        [
            format!("gateway={gateway_port}:{gateway_port}"),
            "jaeger=16686:16686".to_owned(),
            "rabbitmq=15672:15672".to_owned(),
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
    for name in ["jaeger", "rabbitmq"] {
        assert!(service(&compose, name)["image"].as_str().is_some());
    }
    assert!(
        service(&compose, "jaeger")["image"]
            .as_str()
            .unwrap()
            .starts_with("jaegertracing/jaeger:2")
    );
}
