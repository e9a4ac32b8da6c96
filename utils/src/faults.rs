//! Fault injection for demonstrations, in the spirit of the OpenTelemetry
//! demo's feature flags: make a share of requests fail or slow down, so a
//! user can see what a failing or slow trace looks like.
//!
//! Off by default. A service reads its starting settings from
//! `FAULT_FAILURE_RATE` (0–1), `FAULT_DELAY_MS` and `FAULT_DELAY_RATE` (0–1),
//! and changes them at run time through `GET`/`PUT /admin/faults`
//! (`{"failureRate":0.2,"delayMs":300,"delayRate":0.5}`). Every injected
//! fault is marked on the span it happens in: `fault.injected` = `failure`
//! or `delay`, with `fault.delay_ms`.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::{Deserialize, Serialize};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{ConfigError, env_parse};

/// What to inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Share of requests that fail (0 to 1).
    pub failure_rate: f64,
    /// How long a delayed request waits, in milliseconds.
    pub delay_ms: u64,
    /// Share of requests that are delayed (0 to 1).
    pub delay_rate: f64,
}

impl FaultSettings {
    /// Reads `FAULT_FAILURE_RATE`, `FAULT_DELAY_MS` and `FAULT_DELAY_RATE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let rate = |raw: &str| match raw.parse::<f64>() {
            Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
            _ => Err("expected a share between 0 and 1"),
        };
        Ok(Self {
            failure_rate: env_parse("FAULT_FAILURE_RATE", rate)?.unwrap_or(0.0),
            delay_ms: env_parse("FAULT_DELAY_MS", str::parse::<u64>)?.unwrap_or(0),
            delay_rate: env_parse("FAULT_DELAY_RATE", rate)?.unwrap_or(0.0),
        })
    }

    fn check(&self, can_fail: bool) -> Result<(), String> {
        for (name, rate) in [
            ("failureRate", self.failure_rate),
            ("delayRate", self.delay_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if self.delay_ms > 60_000 {
            return Err("delayMs must be at most 60000".to_owned());
        }
        if !can_fail && self.failure_rate > 0.0 {
            return Err("this service only injects delays".to_owned());
        }
        Ok(())
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
            span.set_attribute("fault.delay_ms", settings.delay_ms as i64);
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

    /// `GET`/`PUT /admin/faults`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route("/admin/faults", get(current).put(replace))
            .with_state(self.clone())
    }
}

fn chance(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

async fn current(State(faults): State<Faults>) -> Json<FaultSettings> {
    Json(faults.settings())
}

async fn replace(
    State(faults): State<Faults>,
    body: Result<Json<FaultSettings>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<FaultSettings>, (StatusCode, Json<serde_json::Value>)> {
    let bad_request = |message: String| {
        let body = serde_json::json!({"error": {"code": "invalid_faults", "message": message}});
        (StatusCode::BAD_REQUEST, Json(body))
    };
    let Json(settings) = body.map_err(|rejection| bad_request(rejection.body_text()))?;
    faults.set(settings).map_err(bad_request)?;
    tracing::warn!(?settings, "fault injection changed");
    Ok(Json(settings))
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
