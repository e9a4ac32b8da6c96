//! Loopback ports free a moment ago, for servers that cannot be told to pick
//! their own (port 0) and say which they got, such as RabbitMQ nodes.

use std::net::TcpListener;

use anyhow::Context;

/// A loopback port free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Two ranges of `count` consecutive loopback ports, all free a moment ago
/// (a cluster's AMQP and distribution ports: `scripts/rabbitmq-cluster`
/// numbers the nodes' ports from a base). Drawn at random below the kernel's
/// ephemeral ports (32768 and up), where nothing else picks ports on its own.
pub fn free_port_ranges(count: usize) -> anyhow::Result<(u16, u16)> {
    let count = u16::try_from(count).context("too many ports")?;
    for _ in 0..100 {
        let random = uuid::Uuid::new_v4().as_u128();
        let amqp = 20_000 + (random % 6_000) as u16;
        let dist = 26_000 + ((random >> 64) % 6_000) as u16;
        let free = (0..count).all(|i| {
            TcpListener::bind(("127.0.0.1", amqp + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", dist + i)).is_ok()
        });
        if free {
            return Ok((amqp, dist));
        }
    }
    anyhow::bail!("no {count} consecutive free ports found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_free_and_apart() {
        let (amqp, dist) = free_port_ranges(3).unwrap();
        assert!(amqp + 3 <= dist, "{amqp} {dist}");
        assert_ne!(free_port().unwrap(), 0);
    }
}
