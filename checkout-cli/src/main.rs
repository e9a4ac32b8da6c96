//! The `checkout` command-line tool (placeholder; the CLI is built on [`checkout_cli`] later).

fn main() {}
