//! What the benchmark runs against (`--topology`): the [`Topology`] chosen on the
//! command line and the [`Deployment`] it was set up as.
//!
//! - `single` (the default): the machine's RabbitMQ node, one process of each service,
//!   stock-service on SQLite: the pipeline at its leanest, as the earlier entries of
//!   docs/benchmark-history.md measured it.
//! - `cluster`: a private cluster of three RabbitMQ nodes started for the benchmark
//!   ([`crate::cluster`]), quorum queues replicated on all three, two processes of each
//!   service, stock-service on a PostgreSQL database of the run's own
//!   ([`crate::postgres`]): the same runs, with what a highly available deployment
//!   adds, so the two can be compared.

use clap::ValueEnum;

use crate::cluster::{CLUSTER_NODES, PrivateCluster};
use crate::postgres::PostgresServer;
use crate::procfs;

/// What the runs are pointed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Topology {
    /// The local RabbitMQ node, one process per service, SQLite.
    Single,
    /// A private 3-node RabbitMQ cluster, two processes per service, PostgreSQL.
    Cluster,
}

impl Topology {
    /// `single` or `cluster`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Cluster => "cluster",
        }
    }

    /// Processes of each service.
    pub fn replicas(self) -> usize {
        match self {
            Self::Single => 1,
            Self::Cluster => 2,
        }
    }
}

/// The broker (and database server) the runs use, set up once for the benchmark.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Which topology this is.
    pub topology: Topology,
    /// The services' `AMQP_URL` (a cluster's node list).
    pub amqp_url: String,
    /// The node the raw broker's publisher and consumer use, and broker objects are
    /// deleted through.
    pub node_url: String,
    /// The broker's Erlang VMs, each labelled `broker` (their CPU time is summed).
    pub broker: Vec<(String, u32)>,
    /// How the broker's pids were found, for the report.
    pub broker_found_by: String,
    /// Quorum queues' replicas (`None`: RabbitMQ's default, on a single node one).
    pub quorum_size: Option<usize>,
    /// A cluster node `rabbitmqctl` asks where a queue's replicas are.
    pub cluster_node: Option<String>,
    /// Where stock-service's databases are created (`None`: SQLite).
    pub postgres: Option<PostgresServer>,
}

impl Deployment {
    /// The machine's RabbitMQ node at `node_url`, found by its pid.
    pub fn single(node_url: &str) -> anyhow::Result<Self> {
        let broker = procfs::find_broker()?;
        Ok(Self {
            topology: Topology::Single,
            amqp_url: node_url.to_owned(),
            node_url: node_url.to_owned(),
            broker: vec![("broker".to_owned(), broker.pid)],
            broker_found_by: broker.found_by.to_owned(),
            quorum_size: None,
            cluster_node: None,
            postgres: None,
        })
    }

    /// The started `cluster`, and the PostgreSQL server at `postgres_url`.
    pub async fn cluster(cluster: &PrivateCluster, postgres_url: &str) -> anyhow::Result<Self> {
        let postgres = PostgresServer::connect(postgres_url).await?;
        let broker = cluster
            .pids()?
            .into_iter()
            .map(|pid| ("broker".to_owned(), pid))
            .collect();
        Ok(Self {
            topology: Topology::Cluster,
            amqp_url: cluster.amqp_url(),
            node_url: cluster.node_urls().swap_remove(0),
            broker,
            broker_found_by: format!(
                "the pid files of the {CLUSTER_NODES} nodes {}",
                cluster.describe()
            ),
            quorum_size: Some(CLUSTER_NODES),
            cluster_node: Some(cluster.node(0)),
            postgres: Some(postgres),
        })
    }

    /// Processes of each service.
    pub fn replicas(&self) -> usize {
        self.topology.replicas()
    }

    /// The broker processes' pids, for messages.
    pub fn broker_pids(&self) -> String {
        let pids: Vec<String> = self.broker.iter().map(|(_, pid)| pid.to_string()).collect();
        pids.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_have_names_titles_and_replicas() {
        assert_eq!(Topology::Single.name(), "single");
        assert_eq!(
            (Topology::Single.replicas(), Topology::Cluster.replicas()),
            (1, 2)
        );
        assert_eq!(
            Topology::from_str("cluster", false),
            Ok(Topology::Cluster),
            "what --topology accepts"
        );
    }
}
