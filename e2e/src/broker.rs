//! Private RabbitMQ brokers, for the tests that stop, crash or restart one:
//! a test never touches the machine's default node, which other tests and
//! people use.
//!
//! - [`PrivateBroker`]: one node (`scripts/rabbitmq-node`), for stopping and
//!   starting the broker application.
//! - [`PrivateCluster`]: N clustered nodes (`scripts/rabbitmq-cluster`), for
//!   crashing the node a service is connected to, or the one holding a
//!   queue's leader, and asking the cluster where things are.
//!
//! Both are stopped and their directories removed when dropped, however the
//! test ends. Everything here runs `rabbitmqctl` and the scripts and blocks:
//! call it from `tokio::task::spawn_blocking`. It needs what `rabbitmqctl`
//! needs: root or the rabbitmq user (CI runs as root).

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::Instant,
};

use serde_json::Value;

/// `scripts/NAME` of this repository.
fn script(name: &str) -> String {
    format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/NAME ARGS`; its standard output if it succeeded.
fn run_script(name: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(script(name))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `rabbitmqctl -q -n NODE ARGS` (this node only); its standard output.
fn rabbitmqctl(node: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new("rabbitmqctl")
        .args(["-q", "-n", node])
        .args(args)
        .output()
        .map_err(|error| {
            format!("rabbitmqctl does not run (is rabbitmq-server installed?): {error}")
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl -n {node} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A name no other test uses: `e2e-LABEL-<12 hex digits>`.
fn unique_name(label: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("e2e-{label}-{}", &id[..12])
}

/// `amqp://` URL of a private node's listener.
fn node_url(amqp_port: u16) -> String {
    format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f")
}

/// A private RabbitMQ node, stopped and removed when dropped.
pub struct PrivateBroker {
    /// `NAME` of `NAME@localhost`.
    name: String,
    amqp_url: String,
    amqp_port: u16,
    dist_port: u16,
}

impl PrivateBroker {
    /// Starts a node named after `label` on free ports and waits until it
    /// has started.
    pub fn start(label: &str) -> Self {
        let broker = Self::unstarted(label);
        broker.start_node();
        broker
    }

    /// A node named after `label` on free ports, not started yet (for a
    /// test of services that start before their broker): see
    /// [`PrivateBroker::start_node`].
    pub fn unstarted(label: &str) -> Self {
        let [amqp_port, dist_port] = free_ports();
        Self {
            name: unique_name(label),
            amqp_url: node_url(amqp_port),
            amqp_port,
            dist_port,
        }
    }

    /// Starts the node and waits until it has started.
    pub fn start_node(&self) {
        let started = Instant::now();
        let ports = [self.amqp_port.to_string(), self.dist_port.to_string()];
        run_script(
            "rabbitmq-node",
            &["start", &self.name, &ports[0], &ports[1]],
        )
        .expect("scripts/rabbitmq-node start succeeds");
        eprintln!("private RabbitMQ node started in {:?}", started.elapsed());
    }

    /// `amqp://` URL of its listener.
    pub fn amqp_url(&self) -> &str {
        &self.amqp_url
    }

    /// `rabbitmqctl -n NAME@localhost COMMAND`: this node only.
    pub fn rabbitmqctl(&self, args: &[&str]) -> String {
        rabbitmqctl(&format!("{}@localhost", self.name), args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Stops this node's RabbitMQ application; its VM stays up.
    pub fn take_down(&self) {
        self.rabbitmqctl(&["stop_app"]);
    }

    /// Starts the application again and waits until it has.
    pub fn bring_back(&self) {
        self.rabbitmqctl(&["start_app"]);
        self.rabbitmqctl(&["await_startup"]);
    }
}

impl Drop for PrivateBroker {
    /// Never panics: it may run while a failed assertion unwinds.
    fn drop(&mut self) {
        if run_script("rabbitmq-node", &["stop", &self.name]).is_none() {
            eprintln!("could not stop the private RabbitMQ node {}", self.name);
        }
    }
}

/// A private RabbitMQ cluster, stopped and removed when dropped. Nodes are
/// numbered from 0 here (`PREFIX-1` is node 0).
pub struct PrivateCluster {
    prefix: String,
    /// `(AMQP port, distribution port)` of each node.
    ports: Vec<(u16, u16)>,
}

impl PrivateCluster {
    /// Starts `nodes` clustered nodes named after `label` on free ports and
    /// waits until all of them run.
    pub fn start(label: &str, nodes: usize) -> Self {
        let (amqp_base, dist_base) = free_port_ranges(nodes);
        let cluster = Self {
            prefix: unique_name(label),
            ports: (0..nodes)
                .map(|i| (amqp_base + i as u16, dist_base + i as u16))
                .collect(),
        };
        let started = Instant::now();
        let args = [
            nodes.to_string(),
            amqp_base.to_string(),
            dist_base.to_string(),
        ];
        let printed = run_script(
            "rabbitmq-cluster",
            &["start", &cluster.prefix, &args[0], &args[1], &args[2]],
        )
        .expect("scripts/rabbitmq-cluster start succeeds");
        assert_eq!(
            printed.trim(),
            cluster.amqp_url(),
            "the AMQP_URL the script printed"
        );
        eprintln!(
            "private RabbitMQ cluster of {nodes} nodes started in {:?}",
            started.elapsed()
        );
        cluster
    }

    /// The cluster's `AMQP_URL`: every node's URL, comma-separated.
    pub fn amqp_url(&self) -> String {
        self.node_urls().join(",")
    }

    /// Each node's `amqp://` URL.
    pub fn node_urls(&self) -> Vec<String> {
        self.ports.iter().map(|(amqp, _)| node_url(*amqp)).collect()
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Always false: a cluster has a node.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// `NAME` of node `index`'s `NAME@localhost`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{}", self.prefix, index + 1)
    }

    /// The index of node `NAME@localhost`, if it is one of this cluster's.
    fn index_of(&self, node: &str) -> Option<usize> {
        (0..self.len()).find(|&i| node == format!("{}@localhost", self.node_name(i)))
    }

    /// Crashes node `index`: SIGKILL to its VM (`scripts/rabbitmq-node
    /// kill`). Its data stays, for [`PrivateCluster::restart`].
    pub fn kill(&self, index: usize) {
        run_script("rabbitmq-node", &["kill", &self.node_name(index)])
            .expect("scripts/rabbitmq-node kill succeeds");
    }

    /// Starts killed node `index` again on its data; it rejoins the cluster.
    pub fn restart(&self, index: usize) {
        let (amqp, dist) = self.ports[index];
        let ports = [amqp.to_string(), dist.to_string()];
        run_script(
            "rabbitmq-node",
            &["start", &self.node_name(index), &ports[0], &ports[1]],
        )
        .expect("scripts/rabbitmq-node start (again) succeeds");
    }

    /// `rabbitmqctl ARGS --formatter json` on the first node that answers,
    /// parsed.
    fn ask(&self, args: &[&str]) -> Value {
        let mut errors = Vec::new();
        for index in 0..self.len() {
            let node = format!("{}@localhost", self.node_name(index));
            match rabbitmqctl(&node, &[args, &["--formatter", "json"]].concat()) {
                Ok(json) => {
                    return serde_json::from_str(&json)
                        .unwrap_or_else(|error| panic!("rabbitmqctl's JSON: {error}: {json}"));
                }
                Err(error) => errors.push(error),
            }
        }
        panic!("no node of {} answers: {errors:#?}", self.prefix)
    }

    /// The nodes running, as the cluster sees them.
    pub fn running_nodes(&self) -> Vec<usize> {
        let status = self.ask(&["cluster_status"]);
        let mut running: Vec<usize> = status["running_nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|node| self.index_of(node.as_str()?))
            .collect();
        running.sort_unstable();
        running
    }

    /// The node holding the leader of quorum queue `queue` (in vhost `/`),
    /// if the queue exists and has one.
    pub fn leader_of(&self, queue: &str) -> Option<usize> {
        let queues = self.ask(&["list_queues", "name", "leader"]);
        let found = queues.as_array()?.iter().find(|q| q["name"] == queue)?;
        self.index_of(found["leader"].as_str()?)
    }

    /// The nodes quorum queue `queue` (in vhost `/`) is replicated on.
    pub fn members_of(&self, queue: &str) -> Vec<usize> {
        let queues = self.ask(&["list_queues", "name", "members"]);
        let mut members: Vec<usize> = queues
            .as_array()
            .into_iter()
            .flatten()
            .filter(|q| q["name"] == queue)
            .flat_map(|q| q["members"].as_array().cloned().unwrap_or_default())
            .filter_map(|node| self.index_of(node.as_str()?))
            .collect();
        members.sort_unstable();
        members
    }

    /// The nodes the open connections named `connection_name` (the name a
    /// client gives its connection: `checkout-service`, `stock-service`)
    /// are on, one entry per connection.
    pub fn nodes_of_connection(&self, connection_name: &str) -> Vec<usize> {
        let connections = self.ask(&["list_connections", "port", "client_properties"]);
        connections
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                client_property(&c["client_properties"], "connection_name") == Some(connection_name)
            })
            .filter_map(|c| {
                let port = u16::try_from(c["port"].as_u64()?).ok()?;
                self.ports.iter().position(|(amqp, _)| *amqp == port)
            })
            .collect()
    }
}

impl Drop for PrivateCluster {
    /// Never panics: it may run while a failed assertion unwinds.
    fn drop(&mut self) {
        let count = self.len().to_string();
        if run_script("rabbitmq-cluster", &["stop", &self.prefix, &count]).is_none() {
            eprintln!(
                "could not stop the private RabbitMQ cluster {}",
                self.prefix
            );
        }
    }
}

/// The value of `key` among a connection's client properties as
/// `rabbitmqctl --formatter json` shows them: a list of `[key, type,
/// value]`, or an object.
fn client_property<'a>(properties: &'a Value, key: &str) -> Option<&'a str> {
    match properties {
        Value::Object(map) => map.get(key)?.as_str(),
        Value::Array(entries) => entries.iter().find_map(|entry| {
            let entry = entry.as_array()?;
            (entry.first()?.as_str()? == key).then(|| entry.last()?.as_str())?
        }),
        _ => None,
    }
}

/// Two loopback ports free a moment ago (the AMQP and distribution ports).
pub fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0").expect("a free port"));
    listeners.map(|listener| listener.local_addr().expect("local address").port())
}

/// Two ranges of `count` consecutive loopback ports, all free a moment ago:
/// `scripts/rabbitmq-cluster` numbers the nodes' ports from a base. Drawn
/// at random below the kernel's ephemeral ports (32768 and up), where
/// nothing else picks ports on its own.
fn free_port_ranges(count: usize) -> (u16, u16) {
    let count = u16::try_from(count).expect("a handful of nodes");
    for _ in 0..100 {
        let random = uuid::Uuid::new_v4().as_u128();
        let amqp = 20_000 + (random % 6_000) as u16;
        let dist = 26_000 + ((random >> 64) % 6_000) as u16;
        let free = (0..count).all(|i| {
            TcpListener::bind(("127.0.0.1", amqp + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", dist + i)).is_ok()
        });
        if free {
            return (amqp, dist);
        }
    }
    panic!("no {count} consecutive free ports found")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn client_properties_in_either_shape() {
        let listed = json!([
            ["product", "longstr", "lapin"],
            ["connection_name", "longstr", "stock-service"]
        ]);
        assert_eq!(
            client_property(&listed, "connection_name"),
            Some("stock-service")
        );
        let object = json!({"connection_name": "checkout-service"});
        assert_eq!(
            client_property(&object, "connection_name"),
            Some("checkout-service")
        );
        assert_eq!(client_property(&json!([]), "connection_name"), None);
    }
}
