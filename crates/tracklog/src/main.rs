//! The `tracklog` command: runs the server and manages a data directory.
//!
//! `main` only parses the command line and calls into the library crates.
//! Management subcommands open the same data directory as a running server;
//! SQLite orders their writes with the server's, and the server reads
//! policies on every request, so a change takes effect at once.

mod cli;
mod cli_audit;
mod cli_manage;
mod contacts;
mod doctor;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::execute(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
