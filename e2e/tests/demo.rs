//! `scripts/demo` as a newcomer runs it, beside any demo of the user's: its own
//! directory (`DEMO_DIR`), ports (`DEMO_PORT_OFFSET`) and broker names. Run in a
//! terminal that goes away when it ends (`script`, which gives it a
//! pseudo-terminal and hangs that up on exit), its services keep answering; run
//! again, it says it restarts them on the same database and builds nothing;
//! `scripts/demo stop` returns once they have exited, and says what it stopped,
//! or that nothing was running. Missing a prerequisite, it stops at once with the
//! README's sentence.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::Isolation;

const SERVICES: [&str; 3] = ["gateway", "checkout-service", "stock-service"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_outlives_its_terminal_restarts_on_its_database_and_stops() {
    let demo = Demo {
        isolation: Isolation::new(),
        offset: free_port_offset(),
    };
    let (dir, offset) = (&demo.isolation.dir, demo.offset);

    let first = run(demo.command("script", &["-qec", "scripts/demo", "/dev/null"]));
    assert!(first.contains("The services are still running"), "{first}");
    let pids: Vec<u32> = SERVICES.iter().map(|name| pid(dir, name)).collect();
    // `script` has returned: its terminal is gone and its hang-up was sent.
    let gateway = format!("http://127.0.0.1:{}/api/checkout", 8081 + offset);
    let response = reqwest::Client::new()
        .post(&gateway)
        .json(&serde_json::json!({"items": [{"id": 1, "quantity": 1}]}))
        .send()
        .await
        .expect("the gateway answers after its terminal closed");
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    assert!(pids.iter().all(|&pid| alive(pid)), "{pids:?}");

    let again = run(demo.command("scripts/demo", &[]));
    assert!(
        again.contains("already running: restarting its services"),
        "{again}"
    );
    assert!(again.contains("keeping the database"), "{again}");
    assert!(
        again.contains("the last run's, stock as it was left"),
        "{again}"
    );
    assert!(!again.contains("==> building"), "nothing to build: {again}");
    assert!(pids.iter().all(|&pid| !alive(pid)), "the old ones stopped");

    let pids: Vec<u32> = SERVICES.iter().map(|name| pid(dir, name)).collect();
    let stop = run(demo.command("scripts/demo", &["stop"]));
    assert!(
        stop.contains("stopped gateway checkout-service stock-service"),
        "{stop}"
    );
    assert!(
        pids.iter().all(|&pid| !alive(pid)),
        "exited once stop returned"
    );
    let nothing = run(demo.command("scripts/demo", &["stop"]));
    assert!(nothing.contains("nothing was running"), "{nothing}");
}

/// The test's demo: its directory, broker names and ports. Dropped, even by
/// a failing test, it stops the demo and removes them.
struct Demo {
    isolation: Isolation,
    offset: u16,
}

impl Demo {
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(workspace())
            .env("DEMO_DIR", &self.isolation.dir)
            .env("DEMO_PORT_OFFSET", self.offset.to_string())
            .env("AMQP_URL", &self.isolation.amqp_url)
            .env("AMQP_EXCHANGE", &self.isolation.exchange)
            .env("AMQP_QUEUE", &self.isolation.queue);
        command
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.command("scripts/demo", &["stop"]).output();
        self.isolation.clean_up_blocking();
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command to its end; its output, or the test fails with it.
fn run(mut command: Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("the command runs");
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.success(),
        "{command:?}: {status}\n{stdout}\n{stderr}"
    );
    stdout
}

fn pid(dir: &Path, name: &str) -> u32 {
    let file = dir.join(format!("{name}.pid"));
    std::fs::read_to_string(&file)
        .unwrap_or_else(|error| panic!("{}: {error}", file.display()))
        .trim()
        .parse()
        .expect("a process id")
}

/// Whether `pid` runs (an exited process not yet reaped does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim()
            .starts_with('Z')
    })
}

/// An offset that moves every port the demo uses (8080-8084, 4317-4318) onto
/// free ones, below the range the system hands out for port 0.
fn free_port_offset() -> u16 {
    let start = 20_000 + 10 * (std::process::id() % 300) as u16;
    (start..24_000)
        .step_by(10)
        .find(|offset| {
            [8080, 8081, 8082, 8083, 8084, 4317, 4318]
                .iter()
                .all(|port| std::net::TcpListener::bind(("0.0.0.0", port + offset)).is_ok())
        })
        .expect("free ports")
}

#[test]
fn the_demo_stops_at_once_with_the_readme_s_prerequisites_when_rust_is_too_old() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README");
    let sentence = readme
        .lines()
        .find(|line| line.starts_with("Prerequisites: "))
        .expect("a prerequisites line in the README");
    // A directory with an old `rustc` ahead of the real one, as Debian's.
    let bin = std::env::temp_dir().join(format!("demo-old-rustc-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    let rustc = bin.join("rustc");
    std::fs::write(
        &rustc,
        "#!/bin/sh\necho 'rustc 1.63.0 (4b91a6ea7 2022-08-08)'\n",
    )
    .unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&rustc, executable).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let output = Command::new("scripts/demo")
        .current_dir(workspace())
        .env("PATH", path)
        .env("DEMO_DIR", &bin)
        .output()
        .expect("the demo runs");
    let _ = std::fs::remove_dir_all(&bin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("this rustc is 1.63"), "{stderr}");
    assert!(stderr.contains(sentence), "{stderr}");
    assert!(output.stdout.is_empty(), "before anything else");
}
