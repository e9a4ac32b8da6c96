//! Settings from flags and environment variables, the same way in every
//! service.
//!
//! Each service declares its settings once, as a `clap` struct in which every
//! field names its environment variable, its default and, in its doc
//! comment, its meaning. From that one declaration come:
//!
//! - [`load`]: the values, from flags, then the environment, then the
//!   defaults; `--help` lists every variable with its default and meaning,
//!   `--version` prints the version, and a value that does not parse stops
//!   the service with a message naming the variable;
//! - [`defaults`]: the documented defaults alone, ignoring the environment,
//!   which tests start from;
//! - [`variables`]: the table of variables, which a test checks
//!   docs/configuration.md against.
//!
//! An environment variable set to an empty string counts as unset, as the
//! OpenTelemetry specification asks for its `OTEL_*` variables.

use std::{net::SocketAddr, time::Duration};

use clap::{CommandFactory, Parser};

/// [`load`] and [`defaults`] as associated functions of every settings type:
/// `Settings::load()`, `Settings::defaults()`.
pub trait Configuration: Parser {
    /// See [`load`].
    fn load() -> Self {
        load()
    }

    /// See [`defaults`].
    fn defaults() -> Self {
        defaults()
    }
}

impl<T: Parser> Configuration for T {}

/// Reads `T` from the command line and the environment. Prints help or the
/// version and exits when asked to; exits with a message naming the variable
/// when a value is unusable.
pub fn load<T: Parser>() -> T {
    let command = command::<T>().mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|value| value.to_string_lossy().trim().is_empty());
        if empty { arg.env(None::<&str>) } else { arg }
    });
    let matches = command.get_matches();
    T::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// The defaults of `T`, as documented, whatever the environment holds.
pub fn defaults<T: Parser>() -> T {
    let command = command::<T>().mut_args(|arg| arg.env(None::<&str>));
    let name = command.get_name().to_owned();
    let matches = command
        .try_get_matches_from([name])
        .unwrap_or_else(|error| error.exit());
    T::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// `T`'s command, with each value named after its environment variable, so
/// `--help` and every error message name the variable
/// (`--http-address <HTTP_ADDRESS>`). `--help` never prints a variable's
/// current value: some hold passwords.
pub fn command<T: CommandFactory>() -> clap::Command {
    T::command().mut_args(|arg| match arg.get_env() {
        Some(env) => {
            let name = env.to_string_lossy().into_owned();
            arg.value_name(name).hide_env_values(true)
        }
        None => arg,
    })
}

/// One environment variable a service reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// Its name, e.g. `HTTP_ADDRESS`.
    pub name: String,
    /// Its default as written in the settings, or empty when it has none.
    pub default: String,
    /// What it means: the first line of the setting's help.
    pub meaning: String,
}

/// Every environment variable `T` reads, in declaration order.
pub fn variables<T: CommandFactory>() -> Vec<Variable> {
    command::<T>()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .iter()
                .map(|value| value.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            let meaning = arg
                .get_help()
                .map(|help| help.to_string())
                .unwrap_or_default();
            Some(Variable {
                name,
                default,
                meaning,
            })
        })
        .collect()
}

/// Parses a listen address. Besides `host:port`, the Go-style `:8081` means
/// every interface (`0.0.0.0:8081`), so the original project's settings work
/// unchanged.
pub fn parse_listen_addr(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    let candidate = match raw.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => raw.to_owned(),
    };
    candidate
        .parse()
        .map_err(|_| "expected host:port (for example 0.0.0.0:8080) or :port".to_owned())
}

/// Parses the usual spellings of a boolean.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Parses a whole number of milliseconds.
pub fn parse_millis(raw: &str) -> Result<Duration, String> {
    raw.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| "expected a whole number of milliseconds".to_owned())
}

/// Parses a whole number of milliseconds, at least 1 (a timeout of zero
/// would close everything at once).
pub fn parse_millis_at_least_one(raw: &str) -> Result<Duration, String> {
    match parse_millis(raw) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err("expected a whole number of milliseconds, at least 1".to_owned()),
    }
}

/// Parses a share between 0 and 1.
pub fn parse_ratio(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err("expected a number between 0 and 1".to_owned()),
    }
}

/// Parses a whole number of at least 1.
pub fn parse_positive(raw: &str) -> Result<usize, String> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a whole number of at least 1".to_owned())
}

/// Makes a gRPC/HTTP endpoint URL from either a URL or a bare `host:port`
/// (the Go version's `localhost:8080`).
pub fn parse_endpoint_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let url = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("http://{raw}")
    };
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(url.trim_end_matches('/').to_owned()),
        _ => Err("expected http://host:port".to_owned()),
    }
}

/// Removes the password from a URL (for example an AMQP URL) before it is
/// logged, recorded on a span or printed in an error.
///
/// The user information is taken to end at the *last* `@`, not at the first
/// `/`: a generated password may hold an unencoded `/`, `@`, `?` or `#`, and
/// cutting at one of those would print the rest of it. When in doubt more is
/// hidden, never less.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host_and_path)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host_and_path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser, Debug)]
    #[command(name = "example")]
    struct Example {
        /// Where to listen.
        #[arg(long, env = "EXAMPLE_ADDRESS", default_value = "127.0.0.1:9",
              value_parser = parse_listen_addr)]
        address: SocketAddr,
        /// How long to wait.
        #[arg(long, env = "EXAMPLE_TIMEOUT_MS", default_value = "250",
              value_parser = parse_millis)]
        timeout: Duration,
    }

    #[test]
    fn defaults_come_from_the_declaration() {
        let example: Example = defaults();
        assert_eq!(example.address, "127.0.0.1:9".parse().unwrap());
        assert_eq!(example.timeout, Duration::from_millis(250));
    }

    #[test]
    fn variables_list_name_default_and_meaning() {
        let variables = variables::<Example>();
        assert_eq!(
            variables[0],
            Variable {
                name: "EXAMPLE_ADDRESS".into(),
                default: "127.0.0.1:9".into(),
                meaning: "Where to listen".into(),
            }
        );
        assert_eq!(variables[1].name, "EXAMPLE_TIMEOUT_MS");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = command::<Example>()
            .try_get_matches_from(["example", "--address", "nope"])
            .unwrap_err();
        assert!(error.to_string().contains("EXAMPLE_ADDRESS"), "{error}");
    }

    #[test]
    fn go_style_listen_address_means_all_interfaces() {
        assert_eq!(
            parse_listen_addr(":8081").unwrap(),
            "0.0.0.0:8081".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert!(parse_listen_addr("localhost").is_err());
    }

    #[test]
    fn endpoint_urls_accept_bare_host_port() {
        assert_eq!(
            parse_endpoint_url("localhost:8080").unwrap(),
            "http://localhost:8080"
        );
        assert_eq!(
            parse_endpoint_url("http://checkout:8080/").unwrap(),
            "http://checkout:8080"
        );
        assert!(parse_endpoint_url("ftp://x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:secret@rabbit:5672/%2f"),
            "amqp://guest:***@rabbit:5672/%2f"
        );
        assert_eq!(redact_url("amqp://rabbit:5672"), "amqp://rabbit:5672");
    }

    #[test]
    fn passwords_with_the_characters_generators_use_are_redacted() {
        // What password generators emit besides letters and digits.
        for password in [
            "a/b",
            "a//b",
            "a@b",
            "a:b",
            "a?b",
            "a#b",
            "a%2Fb",
            "a+b=",
            "/ab",
            "ab/",
            "p@ss/w:rd?#",
            "a/b@c",
        ] {
            let url = format!("amqp://user:{password}@rabbit:5672/%2f");
            let redacted = redact_url(&url);
            assert_eq!(redacted, "amqp://user:***@rabbit:5672/%2f", "{url}");
            let url = format!("postgres://user:{password}@db/stock");
            assert_eq!(redact_url(&url), "postgres://user:***@db/stock", "{url}");
        }
    }

    #[test]
    fn shares_and_counts_are_bounded() {
        assert_eq!(parse_ratio("0.5"), Ok(0.5));
        assert!(parse_ratio("1.5").is_err());
        assert_eq!(parse_positive("3"), Ok(3));
        assert_eq!(parse_millis_at_least_one("5"), Ok(Duration::from_millis(5)));
        assert!(parse_millis_at_least_one("0").is_err());
        assert!(parse_positive("0").is_err());
        assert_eq!(parse_bool("ON"), Ok(true));
        assert!(parse_bool("maybe").is_err());
    }
}
