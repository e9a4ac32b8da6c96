//! `OTEL_PROPAGATORS`: the wire formats a service reads the caller's trace
//! context from and writes its own into, on every protocol it speaks.
//!
//! The value is the OpenTelemetry SDK specification's comma list of
//! `tracecontext`, `baggage`, `b3` (the single `b3` header), `b3multi` (the
//! `X-B3-*` headers), `jaeger` (`uber-trace-id`, `uberctx-*`) or `none`;
//! the default is `tracecontext,baggage`; a name given twice counts once.
//! On the way out every listed format is written; on the way in each is read
//! in the listed order, so when a caller sends several, the last one listed
//! that it sent wins.
//!
//! An unknown name stops the service at start, naming the variable, where
//! the specification also allows a warning: a misspelt propagator would
//! otherwise break every trace through this service with nothing to show
//! why, and every other setting of these services fails the same way. So
//! does `none` mixed with other names, which could mean either.

use std::fmt;

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_propagator_b3::{B3Encoding, Propagator as B3Propagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use super::jaeger::JaegerPropagator;

/// One propagator `OTEL_PROPAGATORS` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagatorName {
    /// `tracecontext`: W3C `traceparent` and `tracestate`.
    TraceContext,
    /// `baggage`: the W3C `baggage` header.
    Baggage,
    /// `b3`: Zipkin's single `b3` header.
    B3,
    /// `b3multi`: Zipkin's `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`
    /// (and `X-B3-Flags`) headers.
    B3Multi,
    /// `jaeger`: `uber-trace-id` and `uberctx-{key}` baggage.
    Jaeger,
}

impl PropagatorName {
    const ALL: [Self; 5] = [
        Self::TraceContext,
        Self::Baggage,
        Self::B3,
        Self::B3Multi,
        Self::Jaeger,
    ];

    /// The name as `OTEL_PROPAGATORS` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TraceContext => "tracecontext",
            Self::Baggage => "baggage",
            Self::B3 => "b3",
            Self::B3Multi => "b3multi",
            Self::Jaeger => "jaeger",
        }
    }

    fn propagator(self) -> Box<dyn TextMapPropagator + Send + Sync> {
        match self {
            Self::TraceContext => Box::new(TraceContextPropagator::new()),
            Self::Baggage => Box::new(BaggagePropagator::new()),
            Self::B3 => Box::new(B3Propagator::with_encoding(B3Encoding::SingleHeader)),
            Self::B3Multi => Box::new(B3Propagator::with_encoding(B3Encoding::MultipleHeader)),
            Self::Jaeger => Box::new(JaegerPropagator::new()),
        }
    }
}

/// The propagators of `OTEL_PROPAGATORS`, in order, each once; none for
/// `none`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagators(Vec<PropagatorName>);

impl Default for Propagators {
    /// `tracecontext,baggage`, the specification's default.
    fn default() -> Self {
        Self(vec![PropagatorName::TraceContext, PropagatorName::Baggage])
    }
}

impl Propagators {
    /// `none`: no context is read or written.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// These propagators, in order (a name given twice appears once).
    pub fn from_names(names: impl IntoIterator<Item = PropagatorName>) -> Self {
        let mut unique = Vec::new();
        for name in names {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Self(unique)
    }

    /// The names, in the order they run.
    pub fn names(&self) -> &[PropagatorName] {
        &self.0
    }

    /// One propagator running all of them: injecting writes every format,
    /// extracting reads each in turn.
    pub fn composite(&self) -> TextMapCompositePropagator {
        TextMapCompositePropagator::new(
            self.0
                .iter()
                .map(|name| name.propagator() as Box<dyn TextMapPropagator + Send + Sync>)
                .collect(),
        )
    }
}

impl std::str::FromStr for Propagators {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let entries: Vec<String> = raw
            .split(',')
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(Self::default());
        }
        if entries.iter().any(|entry| entry == "none") {
            return if entries.iter().all(|entry| entry == "none") {
                Ok(Self::none())
            } else {
                Err("`none` cannot be combined with other propagators".to_owned())
            };
        }
        let names = entries
            .iter()
            .map(|entry| {
                PropagatorName::ALL
                    .into_iter()
                    .find(|name| name.as_str() == entry)
                    .ok_or_else(|| {
                        format!(
                            "unknown propagator `{entry}` (expected a comma list of tracecontext, baggage, b3, b3multi, jaeger, or none)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_names(names))
    }
}

impl fmt::Display for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.0.iter().map(|name| name.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::{PropagatorName::*, *};

    fn parse(raw: &str) -> Result<Propagators, String> {
        raw.parse()
    }

    #[test]
    fn parses_the_specification_names() {
        assert_eq!(
            parse("tracecontext,baggage").unwrap(),
            Propagators::default()
        );
        assert_eq!(
            parse(" b3multi , tracecontext,baggage ").unwrap().names(),
            [B3Multi, TraceContext, Baggage]
        );
        assert_eq!(parse("b3").unwrap().names(), [B3]);
        assert_eq!(parse("JAEGER").unwrap().names(), [Jaeger]);
        assert_eq!(parse("none").unwrap(), Propagators::none());
        assert_eq!(parse("none,none").unwrap(), Propagators::none());
        // Empty (as unset) and empty entries are the default / skipped.
        assert_eq!(parse("").unwrap(), Propagators::default());
        assert_eq!(parse("b3,,jaeger,").unwrap().names(), [B3, Jaeger]);
    }

    #[test]
    fn duplicates_count_once_in_first_place() {
        assert_eq!(
            parse("b3,tracecontext,b3,baggage,tracecontext")
                .unwrap()
                .names(),
            [B3, TraceContext, Baggage]
        );
    }

    #[test]
    fn unknown_names_and_none_with_others_are_errors() {
        let error = parse("tracecontext,b3mutli").unwrap_err();
        assert!(error.contains("`b3mutli`"), "{error}");
        assert!(parse("xray").is_err());
        assert!(parse("none,b3").unwrap_err().contains("none"));
    }

    #[test]
    fn displays_as_written() {
        for raw in ["tracecontext,baggage", "b3multi,jaeger", "none"] {
            assert_eq!(parse(raw).unwrap().to_string(), raw);
        }
        assert_eq!(parse("none").unwrap().composite().fields().count(), 0);
    }
}
