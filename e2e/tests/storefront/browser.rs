//! A real headless Chromium driven over WebDriver, for the storefront test.
//!
//! [`Browser::start`] runs the Debian `chromedriver` (package
//! `chromium-driver`, installed by `scripts/ensure-chromium`) as a child
//! process on a free port, and opens a session of `/usr/bin/chromium`
//! through `fantoccini`, headless, with a fresh profile in a temporary
//! directory and the browser's console log kept (`goog:loggingPrefs`), so a
//! test can see what the page logged, CSP violations included. Dropping it
//! kills chromedriver and any browser process of the session, and removes
//! the profile.
//!
//! A missing Chromium is a failure, not a skip: CI installs it, and a test
//! that silently skips proves nothing.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, wd::WebDriverCompatibleCommand};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use testkit::poll;

/// The Debian package's browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The Debian package's WebDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium session and the chromedriver serving it.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    chromedriver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics, naming
    /// the way out, if either is not installed.
    pub async fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: run scripts/ensure-chromium \
                 (apt-get install chromium chromium-driver)"
            );
        }
        let port = free_port();
        let chromedriver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("e2e-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let mut browser = Self {
            client: connect(port, &profile).await,
            chromedriver,
            profile,
        };
        browser.check_alive();
        browser
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.chromedriver.try_wait() {
            panic!("chromedriver exited: {status}");
        }
    }

    /// The entries of the browser's console log since the last call, as
    /// chromedriver gives them (`level`, `message`, `source`).
    pub async fn console_log(&self) -> Vec<Value> {
        match self.client.issue_cmd(BrowserLog).await {
            Ok(Value::Array(entries)) => entries,
            Ok(other) => panic!("the browser log is not a list: {other}"),
            Err(error) => panic!("cannot read the browser log: {error}"),
        }
    }

    /// Ends the session (the browser exits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
        // A test that panics never reaches `close`, and killing chromedriver
        // leaves its browser running; every process of this session has the
        // profile directory on its command line.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(&self.profile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A session with chromedriver on `port`, once it answers.
async fn connect(port: u16, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1100,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let url = format!("http://127.0.0.1:{port}");
    poll::until(
        "chromedriver opens a Chromium session",
        Duration::from_secs(60),
        || {
            let capabilities = capabilities.clone();
            let url = url.clone();
            async move {
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities)
                    .connect(&url)
                    .await
                    .ok()
            }
        },
    )
    .await
}

/// chromedriver's `POST /session/{id}/se/log` for the `browser` log: the
/// console entries since the last read (not part of W3C WebDriver;
/// `goog:loggingPrefs` turns it on).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}
