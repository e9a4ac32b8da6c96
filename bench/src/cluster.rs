//! The private RabbitMQ cluster of `--topology cluster`: [`CLUSTER_NODES`] nodes of the
//! test kit's [`testkit::rabbitmq::PrivateCluster`], started for the benchmark on free
//! ports, never the machine's default node; their Erlang VMs' pids (for their CPU
//! time), and how many replicas a quorum queue has.
//!
//! A cluster that is dropped without `stop` (an error, Ctrl-C) stops the nodes in its
//! `Drop`, blocking: a benchmark that ends must not leave three Erlang VMs running.

use std::ops::{Deref, DerefMut};

use testkit::rabbitmq;

/// Nodes in the cluster, and the replicas of each quorum queue.
pub const CLUSTER_NODES: usize = 3;

/// A private cluster of [`CLUSTER_NODES`] RabbitMQ nodes; stopped when dropped.
#[derive(Debug)]
pub struct PrivateCluster(rabbitmq::PrivateCluster);

impl PrivateCluster {
    /// A cluster on free ports with a fresh name, not started yet.
    pub fn new() -> anyhow::Result<Self> {
        rabbitmq::PrivateCluster::new("bench", CLUSTER_NODES).map(Self)
    }

    /// The Erlang VM (`beam.smp`) pid of every node, from the nodes' pid files.
    pub fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let pids = self.0.pids()?;
        if let Some(pid) = pids.iter().find(|&&pid| !crate::procfs::is_beam(pid)) {
            anyhow::bail!(
                "pid {pid} of a node of {} is not a beam.smp",
                self.describe()
            );
        }
        Ok(pids)
    }
}

impl Deref for PrivateCluster {
    type Target = rabbitmq::PrivateCluster;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for PrivateCluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// How many nodes quorum queue `queue` (vhost `/`) has a replica on, as cluster node
/// `node` (`NAME@localhost`) sees it; `None` if it cannot be told.
pub async fn queue_members(node: &str, queue: &str) -> Option<usize> {
    let queues = rabbitmq::rabbitmqctl_json(node, &["list_queues", "name", "members"]).await;
    Some(rabbitmq::queue_nodes(&queues.ok()?, queue, "members")?.len())
}
