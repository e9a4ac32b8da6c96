//! The fault-injection admin endpoint, `GET`/`PUT /admin/faults`, and what
//! guards it.
//!
//! Whoever reaches this endpoint can make a service fail every call, so it is
//! closed three ways:
//!
//! - **off unless asked for**: without `FAULT_ADMIN_TOKEN` nothing is bound
//!   and nothing is served ([`AdminEndpoint::bind`] returns `None`); the
//!   `FAULT_*` start values still apply;
//! - **a port of its own**: `ADMIN_ADDRESS`, loopback by default, never the
//!   service's public API port;
//! - **a bearer token**: every request must carry
//!   `Authorization: Bearer <FAULT_ADMIN_TOKEN>`, compared in constant time
//!   (`subtle`); anything else is a 401 `unauthorized` with
//!   `WWW-Authenticate: Bearer`, for every path on the port, so an
//!   unauthenticated caller learns nothing about it.
//!
//! The token is never logged: [`AdminToken`]'s `Debug` hides it, and a
//! rejected value is not echoed in the start-up error.

use std::{fmt, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use contracts::error::ApiError;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use super::{FaultSettings, Faults};
use crate::{shutdown::CancellationToken, startup::bind};

/// The bearer token that opens the admin endpoint (`FAULT_ADMIN_TOKEN`).
///
/// Its `Debug` prints `***`, so a logged `Settings` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// The shortest token accepted: long enough that guessing is hopeless
    /// (16 random characters), short enough for any secret generator.
    pub const MIN_LEN: usize = 16;

    /// A token of at least [`Self::MIN_LEN`] visible ASCII characters (what
    /// fits in an `Authorization` header as is: no spaces or control
    /// characters). The error never repeats the value.
    pub fn new(raw: &str) -> Result<Self, String> {
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("expected visible ASCII characters only (no spaces)".to_owned());
        }
        if raw.len() < Self::MIN_LEN {
            return Err(format!(
                "expected at least {} characters, got {}",
                Self::MIN_LEN,
                raw.len()
            ));
        }
        Ok(Self(raw.into()))
    }

    /// The token as it goes in the header, for clients of the endpoint (the
    /// tests, a demo script).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where the two differ (it does depend on whether their lengths match,
    /// which tells an attacker nothing worth the guess).
    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// `GET`/`PUT /admin/faults` for `faults`, answering only requests that carry
/// `token` as their bearer credential.
pub fn router(faults: Faults, token: AdminToken) -> Router {
    Router::new()
        .route("/admin/faults", get(current).put(replace))
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(faults)
        // Around everything, fallbacks included: without the token every
        // path is a 401.
        .layer(middleware::from_fn_with_state(token, require_bearer))
}

/// Lets the request through only with `Authorization: Bearer <token>`.
async fn require_bearer(State(token): State<AdminToken>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| crate::secret::bearer_credential(value.as_bytes()));
    if presented.is_some_and(|presented| token.matches(presented)) {
        return next.run(request).await;
    }
    tracing::warn!(
        method = %request.method(),
        path = request.uri().path(),
        "fault admin request refused: missing or wrong bearer token"
    );
    let mut response =
        ApiError::unauthorized("this endpoint needs Authorization: Bearer <FAULT_ADMIN_TOKEN>")
            .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn current(State(faults): State<Faults>) -> Json<FaultSettings> {
    Json(faults.settings())
}

async fn replace(
    State(faults): State<Faults>,
    body: Result<Json<FaultSettings>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<FaultSettings>, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_faults", message);
    let Json(settings) = body.map_err(|rejection| invalid(rejection.body_text()))?;
    faults.set(settings).map_err(invalid)?;
    tracing::warn!(?settings, "fault injection changed");
    Ok(Json(settings))
}

/// A service's admin endpoint, bound and ready to serve.
#[derive(Debug)]
pub struct AdminEndpoint {
    listener: TcpListener,
    addr: SocketAddr,
    router: Router,
}

impl AdminEndpoint {
    /// Binds `address` (port 0 picks a free port) for `faults`' admin
    /// endpoint when `token` is set. Without a token it binds nothing and
    /// returns `None`: the endpoint is off.
    pub async fn bind(
        address: SocketAddr,
        token: Option<AdminToken>,
        faults: &Faults,
    ) -> anyhow::Result<Option<Self>> {
        let Some(token) = token else {
            return Ok(None);
        };
        let (listener, addr) = bind(address).await?;
        Ok(Some(Self {
            listener,
            addr,
            router: faults.admin_router(token),
        }))
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on a task of its own until `shutdown` is cancelled. A failure
    /// is logged, not fatal: the service's own API does not depend on its
    /// demonstration switch.
    pub fn spawn(self, shutdown: CancellationToken) {
        // The admin endpoint has no settings of its own: the default bounds.
        tokio::spawn(crate::http::serve(
            self.listener,
            self.router,
            crate::http::HttpLimits::default(),
            shutdown,
        ));
    }
}

#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{Method, StatusCode},
    };
    use clap::Parser;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    const TOKEN: &str = "s3cret-admin-token-for-tests";

    fn token() -> AdminToken {
        AdminToken::new(TOKEN).unwrap()
    }

    async fn send(
        faults: &Faults,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Option<HeaderValue>, Value) {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = router(faults.clone(), token())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response.headers().get(header::WWW_AUTHENTICATE).cloned();
        let bytes = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        (
            status,
            challenge,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn assert_refused((status, challenge, body): (StatusCode, Option<HeaderValue>, Value)) {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(
            challenge.as_ref().and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }

    #[tokio::test]
    async fn without_the_token_every_request_is_a_401_and_changes_nothing() {
        let faults = Faults::new(FaultSettings::default()).unwrap();
        let wrong_length = &TOKEN[..TOKEN.len() - 1];
        let wrong_last = format!("{wrong_length}X");
        for authorization in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer wrong-token-of-some-length"),
            Some(&format!("Bearer {wrong_length}")),
            Some(&format!("Bearer {wrong_last}")),
            Some(&format!("Basic {TOKEN}")),
            Some(TOKEN),
        ] {
            assert_refused(send(&faults, Method::GET, "/admin/faults", authorization, None).await);
            assert_refused(
                send(
                    &faults,
                    Method::PUT,
                    "/admin/faults",
                    authorization,
                    Some(json!({"failureRate": 1.0})),
                )
                .await,
            );
            // Unknown paths too: the port says nothing without the token.
            assert_refused(send(&faults, Method::GET, "/admin/other", authorization, None).await);
        }
        assert_eq!(faults.settings(), FaultSettings::default());
    }

    #[tokio::test]
    async fn with_the_token_the_settings_are_read_and_changed() {
        let faults = Faults::new(FaultSettings::default()).unwrap();
        let bearer = format!("Bearer {TOKEN}");
        let (status, _, body) =
            send(&faults, Method::GET, "/admin/faults", Some(&bearer), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"failureRate": 0.0, "delayMs": 0, "delayRate": 0.0})
        );

        // The scheme is case-insensitive.
        let (status, _, body) = send(
            &faults,
            Method::PUT,
            "/admin/faults",
            Some(&format!("bearer {TOKEN}")),
            Some(json!({"failureRate": 0.5})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(faults.settings().failure_rate, 0.5);

        let (status, _, body) = send(
            &faults,
            Method::PUT,
            "/admin/faults",
            Some(&bearer),
            Some(json!({"failureRate": 2})),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_faults");

        let (status, _, body) =
            send(&faults, Method::GET, "/admin/nothing", Some(&bearer), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"]["code"], "not_found");
    }

    #[tokio::test]
    async fn without_a_configured_token_nothing_is_bound() {
        let faults = Faults::new(FaultSettings::default()).unwrap();
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        assert!(
            AdminEndpoint::bind(any_port, None, &faults)
                .await
                .unwrap()
                .is_none()
        );
        let endpoint = AdminEndpoint::bind(any_port, Some(token()), &faults)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(endpoint.addr().port(), 0);
    }

    #[test]
    fn tokens_are_long_visible_ascii_and_never_shown() {
        assert!(AdminToken::new(TOKEN).is_ok());
        for bad in [
            "short",
            "with a space in it, long enough",
            "tab\there-long-enough-x",
            "é-long-enough-token-xx",
        ] {
            let error = AdminToken::new(bad).unwrap_err();
            assert!(!error.contains(bad), "{error}");
        }
        assert_eq!(format!("{:?}", token()), "AdminToken(***)");
        assert_eq!(token().expose(), TOKEN);
    }

    #[derive(Debug, Parser)]
    #[command(name = "example")]
    struct Example {
        #[command(flatten)]
        faults: crate::faults::FaultArgs,
    }

    #[test]
    fn a_bad_token_stops_the_service_naming_the_variable_not_the_value() {
        let bad = "too-short";
        let error = crate::configuration::command::<Example>()
            .try_get_matches_from(["example", "--fault-admin-token", bad])
            .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("FAULT_ADMIN_TOKEN"), "{message}");
        assert!(!message.contains(bad), "{message}");

        let example: Example = crate::configuration::defaults();
        assert!(example.faults.fault_admin_token.is_none());
        let example = Example::try_parse_from(["example", "--fault-admin-token", TOKEN]).unwrap();
        assert_eq!(example.faults.fault_admin_token, Some(token()));
        let logged = format!("{example:?}");
        assert!(!logged.contains(TOKEN), "{logged}");
    }
}
