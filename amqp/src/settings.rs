//! Where the broker is, and what the order is published with.

use std::fmt;

use clap::Args;
use contracts::amqp::{DEFAULT_EXCHANGE, DEFAULT_ROUTING_KEY};
use service::{configuration::redact_url, secret::secret_url_parser};

/// The broker and the names both services must agree on.
#[derive(Clone, Args)]
pub struct AmqpSettings {
    /// The broker, amqp://user:password@host:port/vhost (the password is never logged).
    #[arg(long = "amqp-url", env = "AMQP_URL",
          default_value = "amqp://guest:guest@localhost:5672/%2f",
          value_parser = secret_url_parser(parse_amqp_url))]
    pub url: String,
    /// The durable topic exchange orders are published to.
    #[arg(long = "amqp-exchange", env = "AMQP_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// The routing key of `checkout.processed`.
    #[arg(long = "amqp-routing-key", env = "AMQP_ROUTING_KEY", default_value = DEFAULT_ROUTING_KEY)]
    pub routing_key: String,
}

/// Shows the URL without its password.
impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &self.redacted_url())
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .finish()
    }
}

impl AmqpSettings {
    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
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

/// Checks that `raw` is an AMQP URL that means what it says.
///
/// A user name or password holding a reserved character must be
/// percent-encoded. Unencoded, a `/` ends the host part early:
/// `amqp://guest:12/34@rabbit/` is a valid URL for host `guest`, port 12,
/// and the rest is a path. Such a URL is refused, with what to do.
pub fn parse_amqp_url(raw: &str) -> Result<String, String> {
    const EXPECTED: &str = "expected amqp://user:password@host:port/vhost";
    let raw = raw.trim();
    let Some(rest) = raw
        .strip_prefix("amqp://")
        .or_else(|| raw.strip_prefix("amqps://"))
    else {
        return Err(EXPECTED.to_owned());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if rest.contains('@') && !authority.contains('@') {
        return Err(format!(
            "{EXPECTED}; percent-encode the user name and password \
             (`/` as %2F, `@` as %40, `:` as %3A, `?` as %3F, `#` as %23, `%` as %25)"
        ));
    }
    raw.parse::<lapin::uri::AMQPUri>()
        .map(|_| raw.to_owned())
        .map_err(|error| format!("{EXPECTED}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_amqp_urls_are_accepted() {
        assert!(parse_amqp_url("amqps://rabbit").is_ok());
        assert!(parse_amqp_url("amqp://guest:guest@localhost:5672/%2f").is_ok());
        assert!(parse_amqp_url("amqp://guest:a%2Fb%40c@localhost:5672/%2f").is_ok());
        assert!(parse_amqp_url("http://rabbit").is_err());
    }

    #[test]
    fn an_unencoded_slash_in_the_password_is_refused_with_what_to_do() {
        for url in [
            "amqp://guest:12/34@rabbit:5672/%2f",
            "amqp://guest:ab/cd@rabbit:5672/%2f",
        ] {
            let error = parse_amqp_url(url).unwrap_err();
            assert!(error.contains("percent-encode"), "{url}: {error}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let settings = AmqpSettings {
            url: "amqp://guest:s3cret@rabbit:5672/%2f".to_owned(),
            exchange: "checkout".to_owned(),
            routing_key: "checkout.processed".to_owned(),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
