//! The scaled-out demo, `docker-compose.cluster.yaml` merged onto
//! `docker-compose.yaml`, checked against the code and against itself: every
//! variable set is one the service reads, the three RabbitMQ nodes are the
//! ones peer discovery lists, every service reaches every node, stock lives
//! in the PostgreSQL the file runs, and each service has two or more
//! replicas that agree on what they must share.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{fs, path::Path};

use e2e::compose::{
    ROOT, assert_every_variable_set_is_read, cluster, condition, env, port_of, published_ports,
    service,
};

const NODES: [&str; 3] = ["rabbitmq", "rabbitmq-2", "rabbitmq-3"];

/// `rabbit@host` of every node peer discovery lists.
fn discovery_nodes() -> Vec<String> {
    let conf = fs::read_to_string(Path::new(ROOT).join("deploy/rabbitmq/cluster.conf")).unwrap();
    conf.lines()
        .filter_map(|line| line.strip_prefix("cluster_formation.classic_config.nodes."))
        .map(|entry| entry.split('=').nth(1).unwrap().trim().to_owned())
        .collect()
}

#[test]
fn every_variable_set_is_one_the_service_reads() {
    assert_every_variable_set_is_read(&cluster());
}

#[test]
fn the_three_nodes_are_the_ones_peer_discovery_lists_and_share_a_cookie() {
    let compose = cluster();
    let listed = discovery_nodes();
    let conf_mount = "./deploy/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro";
    let mut named = Vec::new();
    let mut cookies = Vec::new();
    for node in NODES {
        let node = service(&compose, node);
        let hostname = node["hostname"].as_str().unwrap();
        assert_eq!(env(node, "RABBITMQ_NODENAME"), format!("rabbit@{hostname}"));
        named.push(format!("rabbit@{hostname}"));
        assert!(
            node["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|volume| volume.as_str() == Some(conf_mount)),
            "{hostname} reads the cluster configuration"
        );
        cookies.push(env(node, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS").to_owned());
        assert_eq!(
            env(node, "RABBITMQ_CTL_ERL_ARGS"),
            env(node, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"),
            "{hostname}: the CLI tools (its health check) use the node's cookie"
        );
    }
    assert_eq!(named, listed);
    assert!(
        cookies.windows(2).all(|pair| pair[0] == pair[1]),
        "{cookies:?}"
    );
    assert!(cookies[0].contains("-setcookie ${RABBITMQ_ERLANG_COOKIE"));
    let example = fs::read_to_string(Path::new(ROOT).join(".env.example")).unwrap();
    for variable in [
        "RABBITMQ_ERLANG_COOKIE=",
        "POSTGRES_PASSWORD=",
        "ORDER_ID_SECRET=",
    ] {
        assert!(example.contains(variable), "{variable} in .env.example");
    }
}

#[test]
fn both_amqp_services_reach_every_node_and_the_queue_is_replicated_on_all() {
    let compose = cluster();
    let hostnames: Vec<&str> = NODES
        .iter()
        .map(|node| service(&compose, node)["hostname"].as_str().unwrap())
        .collect();
    for name in ["checkout-service", "stock-service"] {
        let urls: Vec<&str> = env(service(&compose, name), "AMQP_URL")
            .split(',')
            .collect();
        assert_eq!(urls.len(), NODES.len(), "{name}: {urls:?}");
        for (url, hostname) in urls.iter().zip(&hostnames) {
            assert!(url.contains(&format!("@{hostname}:5672/")), "{name}: {url}");
            assert!(!url.contains("guest:guest"), "no default credentials");
        }
        for node in NODES {
            assert_eq!(condition(&compose, name, node), "service_healthy");
        }
    }
    let quorum: usize = env(service(&compose, "stock-service"), "AMQP_QUORUM_SIZE")
        .parse()
        .unwrap();
    assert_eq!(quorum, NODES.len());
}

#[test]
fn stock_lives_in_the_postgresql_the_file_runs() {
    let compose = cluster();
    let postgres = service(&compose, "postgres");
    let url = env(service(&compose, "stock-service"), "DATABASE_URL");
    let expected = format!(
        "postgres://{}:{}@postgres:5432/{}",
        env(postgres, "POSTGRES_USER"),
        env(postgres, "POSTGRES_PASSWORD"),
        env(postgres, "POSTGRES_DB")
    );
    assert_eq!(url, expected);
    assert_eq!(
        condition(&compose, "stock-service", "postgres"),
        "service_healthy"
    );
}

#[test]
fn every_service_runs_two_or_more_replicas_that_agree_on_what_they_share() {
    let compose = cluster();
    for name in ["checkout-service", "stock-service"] {
        let replicas = service(&compose, name)["deploy"]["replicas"]
            .as_u64()
            .unwrap_or(1);
        assert!(replicas >= 2, "{name} has {replicas} replica(s)");
    }
    // The second gateway is the first one again, but for its published port.
    let (first, second) = (service(&compose, "gateway"), service(&compose, "gateway-2"));
    for key in [
        "build",
        "environment",
        "expose",
        "healthcheck",
        "depends_on",
    ] {
        assert_eq!(first[key], second[key], "gateway-2's {key}");
    }
    assert_eq!(
        second["networks"]["default"]["aliases"][0].as_str(),
        Some("gateway"),
        "Prometheus scrapes both gateways under one name"
    );
    // A retry reaching the other replica gets the same order id: one key
    // for all, the user's secret if set, else one key file on one volume
    // that every replica mounts; no key written in the repository.
    let checkout = service(&compose, "checkout-service");
    assert_eq!(env(checkout, "ORDER_ID_SECRET"), "${ORDER_ID_SECRET:-}");
    let key_file = env(checkout, "ORDER_ID_SECRET_FILE");
    let mounts: Vec<&str> = checkout["volumes"]
        .as_sequence()
        .expect("checkout-service mounts a volume")
        .iter()
        .filter_map(|mount| mount.as_str())
        .collect();
    let volume = mounts
        .iter()
        .find_map(|mount| {
            let (volume, target) = mount.split_once(':')?;
            key_file
                .starts_with(&format!("{target}/"))
                .then_some(volume)
        })
        .unwrap_or_else(|| panic!("{key_file} is on no volume: {mounts:?}"));
    assert!(
        compose["volumes"].get(volume).is_some(),
        "{volume} is a named volume, shared by the replicas"
    );
    // The gateway finds every checkout-service replica by the service name.
    let grpc_port = port_of(env(service(&compose, "checkout-service"), "GRPC_ADDRESS"));
    assert_eq!(
        env(service(&compose, "gateway"), "CHECKOUT_SERVICE_ADDRESS"),
        format!("http://checkout-service:{grpc_port}")
    );
}

#[test]
fn each_gateway_gets_its_own_published_port_and_nothing_else_is_added() {
    let compose = cluster();
    let port = port_of(env(service(&compose, "gateway"), "HTTP_ADDRESS"));
    let next: u16 = port.parse::<u16>().unwrap() + 1;
    let on = "${PUBLISH_ADDRESS:-127.0.0.1}";
    assert_eq!(
        published_ports(&compose),
        [
            format!("gateway-2={on}:{next}:{port}"),
            format!("gateway={on}:{port}:{port}"),
            format!("jaeger={on}:16686:16686"),
            format!("prometheus={on}:9090:9090"),
            format!("rabbitmq={on}:15672:15672"),
        ]
    );
}
