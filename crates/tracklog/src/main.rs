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
    if !args.uses_sockets() {
        end_quietly_on_a_closed_pipe();
    }
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

/// Lets a command whose output is piped into `head` end when the reader
/// goes, as Unix tools do, instead of panicking in `println!`. Rust ignores
/// SIGPIPE by default, so a write to a closed pipe fails and `println!`
/// panics on the failure; restoring the default disposition ends the
/// process quietly. The server and the benchmark keep Rust's default, for
/// their sockets. No library does this: it is one call into libc.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called before any thread starts; it only restores the
    // signal's default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
