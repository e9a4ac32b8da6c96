//! The `checkout` command. Parsing and all behaviour live in the library
//! ([`checkout_cli::cli`]), so the binary only wires them to the process.

use std::process::ExitCode;

use checkout_cli::cli;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run(cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
