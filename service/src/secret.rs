//! Settings that hold secrets (API keys, the order-id key), kept out of
//! logs and error messages.
//!
//! `--help` never prints a variable's value ([`crate::configuration::command`]),
//! but two other paths would: a settings struct printed with `{:?}`, and
//! clap's own message for a value that does not parse, which quotes the value
//! (`invalid value 'the-secret' for …`). [`Secret`] prints as `***`;
//! [`secret_parser`] reports a bad value by the variable's name and the
//! reason alone, and [`secret_url_parser`] (for a URL with credentials, such
//! as `AMQP_URL` or `DATABASE_URL`) shows the URL with its password redacted.

use std::ffi::OsStr;

use clap::{Arg, Command, builder::TypedValueParser, error::ErrorKind};

use crate::configuration::redact_url;

/// A secret string. `Debug` prints `Secret(***)`; there is no `Display`, so
/// the value is only reachable through [`Secret::expose`], where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A clap value parser for a setting that holds a secret: `parse` turns the
/// text into the value, and its error, which must not quote the value, is
/// what the user sees, after the variable's name. Use as
/// `#[arg(value_parser = secret_parser(parse_fn))]`.
pub fn secret_parser<T>(parse: fn(&str) -> Result<T, String>) -> SecretParser<T> {
    SecretParser {
        parse,
        shown: |_| "the value is a secret and is not shown".to_owned(),
    }
}

/// Like [`secret_parser`], for a URL that may hold a password: a refused
/// value is shown with its password redacted ([`redact_url`]), so the
/// operator sees which URL is wrong without the log seeing the password.
pub fn secret_url_parser(parse: fn(&str) -> Result<String, String>) -> SecretParser<String> {
    SecretParser {
        parse,
        shown: redact_url,
    }
}

/// Like [`secret_url_parser`], for a value of any type (a list of URLs,
/// say): a refused value is shown as `shown` makes it, which must hide every
/// password in it.
pub fn secret_parser_shown_as<T>(
    parse: fn(&str) -> Result<T, String>,
    shown: fn(&str) -> String,
) -> SecretParser<T> {
    SecretParser { parse, shown }
}

/// See [`secret_parser`], [`secret_url_parser`] and [`secret_parser_shown_as`].
#[derive(Clone)]
pub struct SecretParser<T> {
    parse: fn(&str) -> Result<T, String>,
    /// What the error says in place of the value.
    shown: fn(&str) -> String,
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for SecretParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        command: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_str();
        let parsed = match text {
            Some(text) => (self.parse)(text),
            None => Err("not valid UTF-8".to_owned()),
        };
        let shown = text.map_or_else(String::new, self.shown);
        parsed.map_err(|reason| {
            let name = arg
                .and_then(|arg| arg.get_env().map(|env| env.to_string_lossy().into_owned()))
                .or_else(|| arg.map(|arg| arg.get_id().to_string()))
                .unwrap_or_else(|| "a secret setting".to_owned());
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("invalid {name}: {reason} ({shown})\n"),
            )
            .with_cmd(command)
        })
    }
}

/// The credential of an `Authorization: Bearer <credential>` header value
/// (the scheme is case-insensitive, RFC 9110 §11.1); `None` for another
/// scheme or an empty credential. Compare what it returns in constant time.
pub fn bearer_credential(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    let scheme = value.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let credential = value[SCHEME.len()..].trim_ascii();
    (!credential.is_empty()).then_some(credential)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::configuration::command;

    fn parse_long(raw: &str) -> Result<Secret, String> {
        if raw.len() >= 8 {
            Ok(Secret::new(raw))
        } else {
            Err("expected at least 8 characters".to_owned())
        }
    }

    #[derive(Parser, Debug)]
    #[command(name = "example")]
    struct Example {
        /// A secret.
        #[arg(long, env = "EXAMPLE_SECRET", value_parser = secret_parser(parse_long))]
        secret: Option<Secret>,
    }

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2-hunter2");
        let example = Example::try_parse_from(["example", "--secret", "hunter2-hunter2"]).unwrap();
        assert!(!format!("{example:?}").contains("hunter2"), "{example:?}");
    }

    #[test]
    fn a_refused_url_is_shown_with_its_password_redacted() {
        #[derive(Parser, Debug)]
        struct WithUrl {
            #[arg(long, env = "EXAMPLE_URL", value_parser = secret_url_parser(|raw| {
                if raw.starts_with("amqp://") { Ok(raw.to_owned()) } else { Err("expected amqp://".to_owned()) }
            }))]
            url: String,
        }
        let error = command::<WithUrl>()
            .try_get_matches_from(["example", "--url", "http://user:hunter2/x@host"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("EXAMPLE_URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("user:***@host"), "{error}");
    }

    #[test]
    fn a_bad_secret_names_the_variable_and_not_the_value() {
        let error = command::<Example>()
            .try_get_matches_from(["example", "--secret", "hunter2"])
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("EXAMPLE_SECRET"), "{message}");
        assert!(message.contains("at least 8"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
