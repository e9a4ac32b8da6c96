//! `CHECKOUT_SERVICE_ADDRESS`: where checkout-service's replicas are to be
//! found, as a list of `http://host:port` entries.
//!
//! Each entry names a host, either an IP address (one replica) or a DNS name
//! whose every address is a replica (a Kubernetes headless service, or
//! `docker compose --scale`); [`super::replicas`] resolves the names. An
//! entry is checked here, at start, so that a typo stops the gateway with
//! the entry named instead of leaving it without replicas at run time.

use std::{fmt, net::SocketAddr};

use http::Uri;

/// The port of an entry that names none (the URL scheme's).
const HTTP_PORT: u16 = 80;

/// One `http://host:port` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// An IP address or a DNS name, without the brackets of an IPv6 address.
    host: String,
    port: u16,
}

impl Target {
    /// The host as configured: what the CLIENT spans report as
    /// `server.address`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address, when the host is an IP address (no name to resolve).
    pub fn ip_addr(&self) -> Option<SocketAddr> {
        self.host
            .parse()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// Parses one entry: `http://host:port`, `http://host` (port 80) or a
    /// bare `host:port`, nothing else (no path, no user, no `https`: the
    /// gateway is built without TLS).
    fn parse(entry: &str) -> Result<Self, String> {
        let url = if entry.contains("://") {
            entry.to_owned()
        } else {
            format!("http://{entry}")
        };
        let uri: Uri = url
            .parse()
            .map_err(|error| format!("`{entry}` is not a URL ({error})"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{entry}`: expected http://host:port (plain-text gRPC; TLS is not supported)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{entry}`: expected http://host:port"))?;
        let has_path = !matches!(uri.path(), "" | "/") || uri.query().is_some();
        if has_path || authority.as_str().contains('@') {
            return Err(format!(
                "`{entry}`: expected http://host:port, without a path or user"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{entry}`: the host is missing"));
        }
        // What follows the host: `:port` or nothing (`http` does not check
        // that a port is a number).
        let port = authority
            .as_str()
            .strip_prefix(authority.host())
            .and_then(|rest| rest.strip_prefix(':'));
        let port = match port {
            None => HTTP_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("`{entry}`: the port must be a number from 1 to 65535"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

/// The entries of `CHECKOUT_SERVICE_ADDRESS`: at least one, none twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutTargets(Vec<Target>);

impl CheckoutTargets {
    /// Parses a comma-separated list of entries (see [`Target`]); the error
    /// names the entry at fault.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut targets: Vec<Target> = Vec::new();
        for entry in raw.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(format!(
                    "an empty entry in `{}`: expected http://host:port,http://host:port,…",
                    raw.trim()
                ));
            }
            let target = Target::parse(entry)?;
            if targets.contains(&target) {
                return Err(format!("`{entry}` is listed twice"));
            }
            targets.push(target);
        }
        Ok(Self(targets))
    }

    /// One entry per address: a replica each.
    pub fn from_addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self(
            addrs
                .into_iter()
                .map(|addr| Target {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                })
                .collect(),
        )
    }

    /// The entries, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Target> {
        self.0.iter()
    }
}

impl fmt::Display for CheckoutTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, target) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{target}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(raw: &str) -> Vec<(String, u16)> {
        CheckoutTargets::parse(raw)
            .unwrap()
            .iter()
            .map(|target| (target.host().to_owned(), target.port()))
            .collect()
    }

    #[test]
    fn one_url_a_list_and_bare_host_ports() {
        assert_eq!(
            hosts("http://localhost:8080"),
            [("localhost".to_owned(), 8080)]
        );
        assert_eq!(
            hosts(" http://checkout-a:8080 , checkout-b:9090,http://10.0.0.7/ "),
            [
                ("checkout-a".to_owned(), 8080),
                ("checkout-b".to_owned(), 9090),
                ("10.0.0.7".to_owned(), 80),
            ]
        );
        assert_eq!(hosts("http://[::1]:8080"), [("::1".to_owned(), 8080)]);
    }

    #[test]
    fn ip_addresses_need_no_resolving() {
        let targets = CheckoutTargets::parse("http://127.0.0.1:1,http://[::1]:2,name:3").unwrap();
        let addrs: Vec<_> = targets.iter().map(Target::ip_addr).collect();
        assert_eq!(
            addrs,
            [
                Some("127.0.0.1:1".parse().unwrap()),
                Some("[::1]:2".parse().unwrap()),
                None
            ]
        );
    }

    #[test]
    fn displays_as_it_parses() {
        let raw = "http://checkout:8080,http://[::1]:8081,http://10.0.0.7:80";
        let targets = CheckoutTargets::parse(raw).unwrap();
        assert_eq!(targets.to_string(), raw);
        let from_addrs = CheckoutTargets::from_addrs(["127.0.0.1:5".parse().unwrap()]);
        assert_eq!(from_addrs, CheckoutTargets::parse("127.0.0.1:5").unwrap());
    }

    #[test]
    fn a_bad_entry_is_named_in_the_error() {
        for (raw, named) in [
            ("ftp://checkout", "`ftp://checkout`"),
            ("http://a:8080,https://b:8080", "`https://b:8080`"),
            (
                "http://a:8080,http://b:8080/checkout",
                "`http://b:8080/checkout`",
            ),
            ("http://a:8080,http://b:http", "`http://b:http`"),
            ("http://a:8080,b:0", "`b:0`"),
            ("http://a:8080,b:65536", "`b:65536`"),
            ("http://a:8080,http://user@b:8080", "`http://user@b:8080`"),
            ("http://a:8080,not a host", "`not a host`"),
            (
                "http://a:8080,http://a:8080",
                "`http://a:8080` is listed twice",
            ),
            ("http://a:8080,,http://b:8080", "an empty entry"),
            ("http://a:8080,", "an empty entry"),
            ("", "an empty entry"),
        ] {
            let error = CheckoutTargets::parse(raw).expect_err(raw);
            assert!(error.contains(named), "{raw}: {error}");
        }
    }
}
