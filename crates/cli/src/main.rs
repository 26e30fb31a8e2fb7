//! `udpchat`: the binary. Parses the command line and hands each subcommand to its module.
//!
//! Every subcommand's `run` returns the process's exit code, or an error that is printed here as
//! one line (`udpchat: what failed: why`) with exit code 1. Usage errors never get this far:
//! clap prints them, with the subcommand's usage line, and exits with code 2. That covers a bad
//! value (clap's value parsers refuse it) and a combination of flags that cannot work together
//! (each subcommand's `check`, run right after parsing; see [`usage_error`]).

mod address;
mod chat;
mod docs;
mod lab;
mod lines;
mod link_args;
#[cfg(target_os = "linux")]
mod netem;
mod notice;
mod output;
mod proxy;
mod reliable_args;
mod secret;
mod stats;
mod tcp_chat;
mod trace;
mod tui;
mod untrusted;

use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Join two network namespaces (or two TUN devices) through an impaired relay of IP packets:
    /// a userspace tc netem, for kernel TCP or any program. Needs root (Linux).
    #[cfg(target_os = "linux")]
    Netem(netem::NetemArgs),
    /// Print a shell completion script for udpchat (bash, zsh, fish, powershell or elvish).
    Completions(docs::CompletionsArgs),
    /// Print a manual page (roff, for `man`): udpchat(1), or udpchat-SUBCOMMAND(1).
    Man(docs::ManArgs),
}

impl Command {
    /// Checks what clap cannot check one flag at a time: values that are fine alone but not
    /// together (e.g. an IPv6 `--bind` and an IPv4 `--peer`).
    fn check(&self) -> Result<(), clap::Error> {
        match self {
            Command::Chat(args) => args.check(),
            Command::Proxy(args) => args.check(),
            Command::Lab(args) => args.check(),
            #[cfg(target_os = "linux")]
            Command::Netem(args) => args.check(),
            Command::Completions(_) | Command::Man(_) => Ok(()),
        }
    }
}

/// A usage error of `udpchat SUBCOMMAND` (exit code 2), printed as clap prints its own: the
/// message, then the subcommand's usage line (`Usage: udpchat chat [OPTIONS]`), not the
/// top-level one.
pub fn usage_error(subcommand: &str, message: &str) -> clap::Error {
    with_usage(
        subcommand,
        clap::Error::raw(ErrorKind::ValueValidation, message),
    )
}

/// `error`, printed with the usage line of `udpchat SUBCOMMAND`.
pub fn with_usage(subcommand: &str, error: clap::Error) -> clap::Error {
    let mut command = Cli::command();
    // Building gives every subcommand its full name (`udpchat chat`) for the usage line.
    command.build();
    match command.find_subcommand_mut(subcommand) {
        Some(sub) => error.format(sub),
        None => error.format(&mut command),
    }
}

/// Adds the subcommand's usage line to a parse error that has none: clap prints one for an
/// unknown flag but not for a bad value (`--window 0`), and a usage error should always show
/// how the command it belongs to is used.
fn with_subcommand_usage(mut error: clap::Error) -> clap::Error {
    if error.use_stderr() && error.get(ContextKind::Usage).is_none() {
        let mut command = Cli::command();
        command.build();
        // Only global flags (--help, --version) come before a subcommand, and they do not get
        // here; so the first argument names the subcommand whose flag was wrong.
        let name = std::env::args().nth(1).unwrap_or_default();
        if let Some(sub) = command.find_subcommand_mut(&name) {
            error.insert(
                ContextKind::Usage,
                ContextValue::StyledStr(sub.render_usage()),
            );
        }
    }
    error
}

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|error| with_subcommand_usage(error).exit());
    if let Err(usage) = cli.command.check() {
        usage.exit();
    }
    let result = match cli.command {
        Command::Chat(args) => chat::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Lab(args) => lab::run(args),
        #[cfg(target_os = "linux")]
        Command::Netem(args) => netem::run(args),
        Command::Completions(args) => docs::completions(&args, Cli::command()),
        Command::Man(args) => docs::man(&args, Cli::command()),
    };
    result.unwrap_or_else(|error| {
        // `{:#}` puts the whole context chain on one line.
        eprintln!("udpchat: {error:#}");
        ExitCode::FAILURE
    })
}
