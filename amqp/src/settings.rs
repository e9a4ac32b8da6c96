//! Where the broker is, and what the order is published with.

use clap::Args;
use contracts::amqp::{DEFAULT_EXCHANGE, DEFAULT_ROUTING_KEY};

/// The broker and the names both services must agree on.
#[derive(Clone, Debug, Args)]
pub struct AmqpSettings {
    /// The broker, amqp://user:password@host:port/vhost (the password is never logged).
    #[arg(long = "amqp-url", env = "AMQP_URL",
          default_value = "amqp://guest:guest@localhost:5672/%2f", value_parser = parse_amqp_url)]
    pub url: String,
    /// The durable topic exchange orders are published to.
    #[arg(long = "amqp-exchange", env = "AMQP_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// The routing key of `checkout.processed`.
    #[arg(long = "amqp-routing-key", env = "AMQP_ROUTING_KEY", default_value = DEFAULT_ROUTING_KEY)]
    pub routing_key: String,
}

impl AmqpSettings {
    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        service::configuration::redact_url(&self.url)
    }

    /// The broker's host and port, for the `server.*` span attributes
    /// (empty and 0 if the URL does not parse).
    pub fn server(&self) -> (String, u16) {
        match self.url.parse::<lapin::uri::AMQPUri>() {
            Ok(uri) => (uri.authority.host, uri.authority.port),
            Err(_) => (String::new(), 0),
        }
    }
}

/// Checks that `raw` is an AMQP URL.
pub fn parse_amqp_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if (raw.starts_with("amqp://") || raw.starts_with("amqps://"))
        && raw.parse::<lapin::uri::AMQPUri>().is_ok()
    {
        Ok(raw.to_owned())
    } else {
        Err("expected amqp://user:password@host:port/vhost".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amqp_urls_are_accepted() {
        assert!(parse_amqp_url("amqps://rabbit").is_ok());
        assert!(parse_amqp_url("amqp://guest:guest@localhost:5672/%2f").is_ok());
        assert!(parse_amqp_url("http://rabbit").is_err());
    }
}
