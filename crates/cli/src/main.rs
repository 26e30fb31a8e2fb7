//! `udpchat`: the binary. Parses the command line and hands each subcommand to its module.
//!
//! Every subcommand's `run` returns the process's exit code, or an error that is printed here as
//! one line (`udpchat: what failed: why`) with exit code 1. Usage errors never get this far:
//! clap prints them and exits with code 2.

mod chat;
mod lab;
mod lines;
mod notice;
mod output;
mod proxy;
mod reliable_args;
mod tui;
mod untrusted;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Chat between two machines over UDP, raw or reliable, and a lab for lossy networks.
#[derive(Debug, Parser)]
#[command(name = "udpchat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once and matched once: a few hundred bytes on the stack do not matter, so the variants
// hold their flag structs directly instead of boxing them.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Chat with another machine: stdin lines go out, received messages come out on stdout.
    Chat(chat::ChatArgs),
    /// Relay UDP between a client and --forward, impaired like a bad network (a userspace netem).
    Proxy(proxy::ProxyArgs),
    /// Lossy-network experiments: raw vs reliable over a loss sweep, with tables, charts, theory.
    Lab(lab::LabArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chat(args) => chat::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Lab(args) => lab::run(args),
    };
    result.unwrap_or_else(|error| {
        // `{:#}` puts the whole context chain on one line.
        eprintln!("udpchat: {error:#}");
        ExitCode::FAILURE
    })
}
