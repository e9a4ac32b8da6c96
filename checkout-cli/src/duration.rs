//! Durations on the command line (`10s`, `500ms`, `1m30s`), for every
//! subcommand that takes one.
//!
//! Its own module so that the subcommands' argument definitions can use it
//! without depending on [`crate::cli`], which depends on them.

use std::time::Duration;

/// Parses a duration such as `10s`, `500ms`, `2m` or `1m30s` (a unit is required).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|error| format!("{error} (e.g. 10s, 500ms, 2m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
