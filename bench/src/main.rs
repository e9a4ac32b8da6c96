//! The `bench` binary: parses the command line and runs [`bench::run`]; see the
//! library's docs for what it measures and why.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match bench::run(bench::Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
