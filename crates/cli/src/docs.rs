//! `udpchat completions SHELL` and `udpchat man`: the shell completion scripts and the manual
//! page, generated from the same clap definitions that parse the command line, so neither can
//! fall behind a flag (clap_complete and clap_mangen do the writing).
//!
//! Both print to stdout, to be redirected where the shell or `man` looks (the README has the
//! lines). `udpchat man` is udpchat(1), which lists the subcommands as `udpchat-chat(1)` and so
//! on, as git does; `udpchat man chat` prints that page, with every flag of the subcommand.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Command};
use clap_complete::Shell;

/// The flags of `udpchat completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: &CompletionsArgs, mut command: Command) -> Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "udpchat", &mut script);
    write_stdout(&script)
}

/// The flags of `udpchat man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (chat, proxy, lab, ...); without it, udpchat(1).
    #[arg(value_name = "SUBCOMMAND")]
    pub subcommand: Option<String>,
}

/// Writes the manual page (roff) asked for to stdout.
pub fn man(args: &ManArgs, mut command: Command) -> Result<ExitCode> {
    // Building gives each subcommand its full name (`udpchat chat`) for its synopsis.
    command.build();
    let page_of = match &args.subcommand {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) if name != "help" => sub
                .clone()
                .display_name(format!("udpchat-{name}"))
                .version(env!("CARGO_PKG_VERSION")),
            _ => {
                let known: Vec<_> = command
                    .get_subcommands()
                    .map(Command::get_name)
                    .filter(|n| *n != "help")
                    .collect();
                crate::usage_error(
                    "man",
                    &format!("no subcommand {name:?}; one of: {}", known.join(", ")),
                )
                .exit()
            }
        },
    };
    let mut page = Vec::new();
    clap_mangen::Man::new(page_of)
        .render(&mut page)
        .context("cannot write the manual page")?;
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
