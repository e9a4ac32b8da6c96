//! Where the broker is, and what the order is published with.
//!
//! The broker may be one node or a cluster: `AMQP_URL` lists one URL per
//! node, and [`crate::connection::connect`] uses whichever answers. Each URL
//! may hold a password, so [`Node`] and [`Nodes`] print redacted (`Debug`
//! included) and a refused entry is shown redacted too.

use std::{fmt, str::FromStr};

use clap::Args;
use contracts::amqp::{DEFAULT_EXCHANGE, DEFAULT_ROUTING_KEY};
use service::{configuration::redact_url, secret::secret_parser_shown_as};

/// The broker and the names both services must agree on.
#[derive(Clone, Args)]
pub struct AmqpSettings {
    /// The broker: one URL, or for a cluster a comma-separated list of its nodes' URLs, each amqp://user:password@host:port/vhost; a node that answers is picked at random, another one when it is lost (a `,` in a password is written %2C; passwords are never logged).
    #[arg(long = "amqp-url", env = "AMQP_URL",
          default_value = "amqp://guest:guest@localhost:5672/%2f",
          value_parser = secret_parser_shown_as(Nodes::parse, redact_node_list))]
    pub nodes: Nodes,
    /// The durable topic exchange orders are published to.
    #[arg(long = "amqp-exchange", env = "AMQP_EXCHANGE", default_value = DEFAULT_EXCHANGE)]
    pub exchange: String,
    /// The routing key of `checkout.processed`.
    #[arg(long = "amqp-routing-key", env = "AMQP_ROUTING_KEY", default_value = DEFAULT_ROUTING_KEY)]
    pub routing_key: String,
}

/// Shows the URLs without their passwords.
impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("nodes", &self.nodes)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .finish()
    }
}

impl AmqpSettings {
    /// The nodes' URLs, comma-separated, with their passwords replaced by
    /// `***`, for logs and errors.
    pub fn redacted_urls(&self) -> String {
        self.nodes.redacted()
    }
}

/// One broker node: its URL (which may hold a password) and where it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Node {
    url: String,
    host: String,
    port: u16,
}

impl Node {
    /// Parses one URL ([`parse_amqp_url`]).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = parse_amqp_url(raw)?;
        let uri = url
            .parse::<lapin::uri::AMQPUri>()
            .map_err(|error| format!("not an AMQP URL: {error}"))?;
        Ok(Self {
            host: uri.authority.host,
            port: uri.authority.port,
            url,
        })
    }

    /// The URL, password included: only for connecting.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The host, for the `server.address` span attribute.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default if the URL has none), for
    /// `server.port`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Shows the URL without its password.
impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

/// `host:port`, for logs.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The broker's nodes (at least one), in the order configured.
#[derive(Clone, PartialEq, Eq)]
pub struct Nodes(Vec<Node>);

impl Nodes {
    /// Parses a comma-separated list of node URLs, each checked by
    /// [`parse_amqp_url`]. A refused entry is named by its position and its
    /// redacted URL; empty entries (a trailing comma) are ignored.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let entries: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.is_empty() {
            return Err("expected at least one amqp://user:password@host:port/vhost".to_owned());
        }
        let count = entries.len();
        // A piece without a scheme is most likely the rest of a password
        // that held a `,`; said first, since it also breaks the piece before.
        let is_url = |entry: &&str| entry.starts_with("amqp://") || entry.starts_with("amqps://");
        if let Some(index) = entries.iter().position(|entry| !is_url(entry)) {
            let entry = entries[index];
            let hint = if entry.contains("://") {
                "expected amqp://user:password@host:port/vhost"
            } else {
                "entries are separated by `,`: write a `,` in a password as %2C"
            };
            return Err(format!(
                "entry {} of {count}, {}, is not an amqp:// URL ({hint})",
                index + 1,
                redact_entry(entry)
            ));
        }
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                Node::parse(entry).map_err(|reason| {
                    format!(
                        "entry {} of {count}, {}: {reason}",
                        index + 1,
                        redact_entry(entry)
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The nodes, in the order configured.
    pub fn as_slice(&self) -> &[Node] {
        &self.0
    }

    /// The URLs, comma-separated, passwords replaced by `***`.
    pub fn redacted(&self) -> String {
        self.0
            .iter()
            .map(Node::redacted_url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl FromStr for Nodes {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// Shows the URLs without their passwords.
impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// One entry of `AMQP_URL` as an error may show it: redacted when it is a
/// URL with credentials, as it is when it is an AMQP URL without them, and
/// not at all otherwise. An entry that is neither may be the piece of a password that
/// held a `,`, which a plain redaction would print.
fn redact_entry(entry: &str) -> String {
    if entry.contains("://") && entry.contains('@') {
        redact_url(entry)
    } else if entry.parse::<lapin::uri::AMQPUri>().is_ok() {
        entry.to_owned()
    } else {
        "(not shown: it may hold part of a password)".to_owned()
    }
}

/// A refused `AMQP_URL` as its error shows it: each entry as
/// [`redact_entry`] shows it.
fn redact_node_list(raw: &str) -> String {
    raw.split(',')
        .map(|entry| redact_entry(entry.trim()))
        .collect::<Vec<_>>()
        .join(",")
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
             (`/` as %2F, `@` as %40, `:` as %3A, `?` as %3F, `#` as %23, `%` as %25, `,` as %2C)"
        ));
    }
    raw.parse::<lapin::uri::AMQPUri>()
        .map(|_| raw.to_owned())
        .map_err(|error| format!("{EXPECTED}: {error}"))
}

#[cfg(test)]
mod tests {
    use service::configuration::command;

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
    fn one_url_or_a_list_of_nodes_with_where_each_is() {
        let one = Nodes::parse("amqp://guest:guest@rabbit/%2f").unwrap();
        assert_eq!(one.as_slice().len(), 1);
        assert_eq!(
            (one.as_slice()[0].host(), one.as_slice()[0].port()),
            ("rabbit", 5672)
        );

        let three =
            Nodes::parse("amqp://u:p@r1:5701/%2f, amqp://u:p@r2:5702/%2f,amqps://u:p@r3/%2f,")
                .unwrap();
        let places: Vec<String> = three.as_slice().iter().map(Node::to_string).collect();
        assert_eq!(places, ["r1:5701", "r2:5702", "r3:5671"]);
        assert_eq!(three.as_slice()[1].url(), "amqp://u:p@r2:5702/%2f");
        assert!(Nodes::parse(" , ").is_err());
    }

    #[test]
    fn a_bad_entry_is_refused_by_position_and_redacted_url() {
        let error =
            Nodes::parse("amqp://guest:s3cret@r1:5672/%2f,amqp://guest:s3cret@r2:99999/%2f")
                .unwrap_err();
        assert!(error.contains("entry 2 of 2"), "{error}");
        assert!(error.contains("amqp://guest:***@r2:99999/%2f"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");

        // An unencoded `,` splits a password: neither piece is shown.
        let error = Nodes::parse("amqp://guest:pw1,pw2@r1:5672/%2f").unwrap_err();
        assert!(!error.contains("pw"), "{error}");
        assert!(error.contains("%2C"), "{error}");
    }

    #[test]
    fn amqp_url_names_the_variable_and_the_redacted_entry() {
        #[derive(clap::Parser, Debug)]
        struct WithAmqp {
            #[command(flatten)]
            amqp: AmqpSettings,
        }
        let error = command::<WithAmqp>()
            .try_get_matches_from([
                "example",
                "--amqp-url",
                "amqp://guest:s3cret@r1/%2f,http://guest:s3cret@r2/",
            ])
            .unwrap_err()
            .to_string();
        assert!(error.contains("AMQP_URL"), "{error}");
        assert!(error.contains("entry 2 of 2"), "{error}");
        assert!(error.contains("http://guest:***@r2/"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn debug_output_hides_the_passwords() {
        let settings = AmqpSettings {
            nodes: "amqp://guest:s3cret@rabbit:5672/%2f,amqp://guest:s3cret@r2/%2f"
                .parse()
                .unwrap(),
            exchange: "checkout".to_owned(),
            routing_key: "checkout.processed".to_owned(),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("r2"), "{shown}");
        assert!(!settings.redacted_urls().contains("s3cret"));
    }
}
