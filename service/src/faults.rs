//! Fault injection for demonstrations, in the spirit of the OpenTelemetry
//! demo's feature flags: make a share of requests fail or slow down, so a
//! user can see what a failing or slow trace looks like.
//!
//! Off by default. A service reads its starting settings from
//! [`FaultArgs`] (`FAULT_FAILURE_RATE`, `FAULT_DELAY_MS`,
//! `FAULT_DELAY_RATE`). Changing them at run time, through
//! `GET`/`PUT /admin/faults` with a [`FaultSettings`] body, is a switch that
//! makes a service fail on purpose, so it is off unless the operator sets
//! `FAULT_ADMIN_TOKEN`, and then served on a port of its own (loopback by
//! default) to callers that present that token ([`admin`]). Every injected
//! fault is marked on the span it happens in: `fault.injected` = `failure`
//! or `delay`, with `fault.delay_ms`.

pub mod admin;

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

pub use admin::{AdminEndpoint, AdminToken};
pub use contracts::http::FaultSettings;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::configuration::parse_ratio;

/// The starting fault settings, and the token that guards changing them,
/// from the environment.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct FaultArgs {
    /// Share of calls that fail, 0 to 1 (demo fault injection; checkout-service only).
    #[arg(long, env = "FAULT_FAILURE_RATE", default_value = "0", value_parser = parse_ratio)]
    pub fault_failure_rate: f64,
    /// How long a delayed call waits, in milliseconds (demo fault injection).
    #[arg(long, env = "FAULT_DELAY_MS", default_value = "0")]
    pub fault_delay_ms: u64,
    /// Share of calls that are delayed, 0 to 1 (demo fault injection).
    #[arg(long, env = "FAULT_DELAY_RATE", default_value = "0", value_parser = parse_ratio)]
    pub fault_delay_rate: f64,
    /// Bearer token of the fault-injection admin endpoint (`/admin/faults`); unset, the endpoint is not served (at least 16 visible ASCII characters; never logged).
    #[arg(long, env = "FAULT_ADMIN_TOKEN", value_parser = crate::secret::secret_parser(admin::AdminToken::new))]
    pub fault_admin_token: Option<AdminToken>,
}

impl From<&FaultArgs> for FaultSettings {
    fn from(args: &FaultArgs) -> Self {
        Self {
            failure_rate: args.fault_failure_rate,
            delay_ms: args.fault_delay_ms,
            delay_rate: args.fault_delay_rate,
        }
    }
}

/// The live fault settings of one service; clones share them.
#[derive(Clone, Debug)]
pub struct Faults {
    settings: Arc<RwLock<FaultSettings>>,
    can_fail: bool,
}

impl Faults {
    /// Faults that may include failures (checkout-service).
    pub fn new(settings: FaultSettings) -> Result<Self, String> {
        Self::build(settings, true)
    }

    /// Faults limited to delays (stock-service: a failed delivery would be
    /// retried and dead-lettered, which is not a demonstration).
    pub fn delays_only(settings: FaultSettings) -> Result<Self, String> {
        Self::build(settings, false)
    }

    fn build(settings: FaultSettings, can_fail: bool) -> Result<Self, String> {
        settings.check(can_fail)?;
        Ok(Self {
            settings: Arc::new(RwLock::new(settings)),
            can_fail,
        })
    }

    /// The current settings.
    pub fn settings(&self) -> FaultSettings {
        *self.settings.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the settings, if valid.
    pub fn set(&self, settings: FaultSettings) -> Result<(), String> {
        settings.check(self.can_fail)?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(())
    }

    /// Waits on a `delay_rate` share of calls, marking the current span.
    pub async fn maybe_delay(&self) {
        let settings = self.settings();
        if settings.delay_ms > 0 && chance(settings.delay_rate) {
            let span = tracing::Span::current();
            span.set_attribute("fault.injected", "delay");
            span.set_attribute(
                "fault.delay_ms",
                i64::try_from(settings.delay_ms).unwrap_or(i64::MAX),
            );
            tokio::time::sleep(Duration::from_millis(settings.delay_ms)).await;
        }
    }

    /// True on a `failure_rate` share of calls, marking the current span.
    pub fn should_fail(&self) -> bool {
        let fail = chance(self.settings().failure_rate);
        if fail {
            tracing::Span::current().set_attribute("fault.injected", "failure");
        }
        fail
    }

    /// `GET`/`PUT /admin/faults`, answering only callers that present
    /// `token` (see [`admin`]).
    pub fn admin_router(&self, token: AdminToken) -> axum::Router {
        admin::router(self.clone(), token)
    }
}

fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_validated() {
        let faults = Faults::new(FaultSettings::default()).unwrap();
        assert!(!faults.should_fail());
        assert!(
            faults
                .set(FaultSettings {
                    failure_rate: 1.5,
                    ..Default::default()
                })
                .is_err()
        );
        faults
            .set(FaultSettings {
                failure_rate: 1.0,
                ..Default::default()
            })
            .unwrap();
        assert!(faults.should_fail());

        let delays = Faults::delays_only(FaultSettings::default()).unwrap();
        assert!(
            delays
                .set(FaultSettings {
                    failure_rate: 0.5,
                    ..Default::default()
                })
                .is_err()
        );
        assert!(
            delays
                .set(FaultSettings {
                    delay_ms: 10,
                    delay_rate: 1.0,
                    ..Default::default()
                })
                .is_ok()
        );
    }
}
