//! The `checkout` command. Parsing and all behaviour live in the library
//! ([`checkout_cli::cli`]), so the binary only wires them to the process.

use std::process::ExitCode;

use checkout_cli::cli::{self, Cli};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
