//! checkout-service settings, read from the environment.
//!
//! | variable | default |
//! |---|---|
//! | `GRPC_ADDRESS` | `0.0.0.0:8080` (Go-style `:8080` accepted) |
//! | `AMQP_URL` | `amqp://guest:guest@localhost:5672/%2f` |
//! | `AMQP_EXCHANGE` | `checkout` |
//! | `AMQP_ROUTING_KEY` | `checkout.processed` |
//! | `CATALOG` | `1=100,2=250,3=399,4=1250` (item id = price) |
//! | `ADMIN_ADDRESS` | `0.0.0.0:8083`: HTTP `GET`/`PUT /admin/faults` |
//! | `FAULT_FAILURE_RATE`, `FAULT_DELAY_MS`, `FAULT_DELAY_RATE` | off: demo fault injection |
//!
//! plus the telemetry variables of [`utils::telemetry::TelemetryConfig`].

use std::net::SocketAddr;

use utils::{
    config::{ConfigError, env_or, env_parse, env_socket_addr},
    faults::FaultSettings,
    message,
};

use crate::catalog::Catalog;

/// Where to reach RabbitMQ and where to publish.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost` (never logged with its password).
    pub url: String,
    /// Durable topic exchange the order is published to.
    pub exchange: String,
    /// Routing key of `checkout.processed`.
    pub routing_key: String,
}

impl AmqpSettings {
    /// Local RabbitMQ with the default names.
    pub fn local() -> Self {
        Self {
            url: "amqp://guest:guest@localhost:5672/%2f".to_owned(),
            exchange: message::DEFAULT_EXCHANGE.to_owned(),
            routing_key: message::DEFAULT_ROUTING_KEY.to_owned(),
        }
    }
}

/// Everything checkout-service needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// gRPC listen address; port 0 picks a free port.
    pub grpc_address: SocketAddr,
    /// The broker.
    pub amqp: AmqpSettings,
    /// Item prices.
    pub catalog: Catalog,
    /// HTTP listen address of the fault-injection admin endpoint.
    pub admin_address: SocketAddr,
    /// Demo fault injection (off by default).
    pub faults: FaultSettings,
}

impl Settings {
    /// Local defaults: gRPC on `grpc_address`, admin on any free port, the
    /// local broker, the default catalog, no faults.
    pub fn local(grpc_address: SocketAddr, amqp: AmqpSettings) -> Self {
        Self {
            grpc_address,
            amqp,
            catalog: Catalog::default(),
            admin_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: FaultSettings::default(),
        }
    }
}

impl Settings {
    /// Reads the settings; an unusable value names its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let local = AmqpSettings::local();
        Ok(Self {
            grpc_address: env_socket_addr("GRPC_ADDRESS", "0.0.0.0:8080")?,
            amqp: AmqpSettings {
                url: env_or("AMQP_URL", local.url)?,
                exchange: env_or("AMQP_EXCHANGE", local.exchange)?,
                routing_key: env_or("AMQP_ROUTING_KEY", local.routing_key)?,
            },
            catalog: env_parse("CATALOG", str::parse)?.unwrap_or_default(),
            admin_address: env_socket_addr("ADMIN_ADDRESS", "0.0.0.0:8083")?,
            faults: FaultSettings::from_env()?,
        })
    }
}
