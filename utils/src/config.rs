//! Typed configuration from environment variables.
//!
//! Each service describes its settings as a plain struct and fills it with
//! [`env_or`]/[`env_opt`]. A value that does not parse fails at start with an
//! error naming the variable, instead of a surprising default later.

use std::{fmt::Display, net::SocketAddr, str::FromStr};

/// A setting that is present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub variable: String,
    /// The value it had.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

impl ConfigError {
    /// Builds an error for `variable` holding `value`.
    pub fn new(variable: &str, value: &str, reason: impl Display) -> Self {
        Self {
            variable: variable.to_owned(),
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Reads `name` and parses it with `parse`; `None` when unset or empty.
pub fn env_parse<T, E: Display>(
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, ConfigError> {
    match std::env::var(name) {
        Ok(raw) if raw.trim().is_empty() => Ok(None),
        Ok(raw) => parse(raw.trim())
            .map(Some)
            .map_err(|e| ConfigError::new(name, &raw, e)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(ConfigError::new(
            name,
            &raw.to_string_lossy(),
            "not valid UTF-8",
        )),
    }
}

/// Reads `name` with [`FromStr`]; `None` when unset or empty.
pub fn env_opt<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    env_parse(name, str::parse)
}

/// Reads `name` with [`FromStr`], or `default` when unset or empty.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(env_opt(name)?.unwrap_or(default))
}

/// Reads `name` as a listen address, or `default`.
pub fn env_socket_addr(name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
    let default = parse_listen_addr(default).map_err(|e| ConfigError::new(name, default, e))?;
    Ok(env_parse(name, parse_listen_addr)?.unwrap_or(default))
}

/// Reads `name` as a boolean (`true/false/1/0/yes/no/on/off`), or `default`.
pub fn env_bool(name: &str, default: bool) -> Result<bool, ConfigError> {
    Ok(env_parse(name, parse_bool)?.unwrap_or(default))
}

/// Reads `name` as a duration in milliseconds, or `default`.
pub fn env_millis(
    name: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    Ok(env_parse(name, |raw| {
        raw.parse::<u64>().map(std::time::Duration::from_millis)
    })?
    .unwrap_or(default))
}

/// Parses a listen address. Besides `host:port`, the Go-style `:8081` means
/// every interface (`0.0.0.0:8081`), so the original project's settings work
/// unchanged.
pub fn parse_listen_addr(raw: &str) -> Result<SocketAddr, String> {
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
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// Makes a gRPC/HTTP endpoint URL from either a URL or a bare `host:port`
/// (the Go version's `localhost:8080`).
pub fn parse_endpoint_url(raw: &str) -> Result<String, String> {
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
/// logged or recorded on a span.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn errors_name_the_variable() {
        let err = ConfigError::new("HTTP_ADDRESS", "nope", "expected host:port");
        assert!(err.to_string().contains("HTTP_ADDRESS"));
    }
}
