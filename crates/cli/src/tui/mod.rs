//! The chat screen: a terminal UI for `udpchat chat` when a person is at the keyboard.
//!
//! Split so that almost all of it is testable without a terminal: `model` holds the state and
//! its update rules, `input` the line editor, `commands` the slash-command parser, `keys` the
//! key bindings, `wrap` the width-exact line wrapping and `view` the ratatui drawing (tested on
//! ratatui's `TestBackend`). Only `app` touches the real terminal. This file is the door from
//! `chat.rs`: [`Ui`] (`--ui line|tui`), the choice between them, and [`chat`], which runs the
//! screen and turns its end into the chat's exit code.

pub mod app;
pub mod commands;
pub mod input;
pub mod keys;
pub mod model;
pub mod view;
pub mod wrap;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use clap::ValueEnum;
use tokio::net::UdpSocket;
use udpchat_driver::tcp::{Listening, TcpConfig, TcpStats};
use udpchat_reliable::Endpoint;

use crate::output::{print_stats_table, report_undelivered, Format};

pub use model::SessionInfo;

/// Which interface `udpchat chat` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ui {
    /// Plain lines: stdin lines go out, received messages come out on stdout. For pipes.
    Line,
    /// A chat screen: history, input line and status bar, each message marked with its fate.
    Tui,
}

/// Settles `--ui`: as given, else the chat screen when stdin and stdout are both terminals
/// (a person is typing and reading) and the output format is text, else lines. An impossible
/// combination is a usage error (`error.exit()` prints it and exits with code 2).
pub fn choose(ui: Option<Ui>, format: Format) -> Result<Ui, clap::Error> {
    choose_for(
        ui,
        format,
        std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    )
}

fn choose_for(ui: Option<Ui>, format: Format, terminals: bool) -> Result<Ui, clap::Error> {
    let usage = |message: &str| {
        clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            message.to_string(),
        )
    };
    match (ui, format) {
        (Some(Ui::Tui), Format::Json) => Err(usage(
            "--format json is for the line interface; use --ui line (or leave out --ui)",
        )),
        (Some(Ui::Tui), _) if !terminals => Err(usage(
            "--ui tui needs a terminal on stdin and stdout; use --ui line for pipes",
        )),
        (Some(ui), _) => Ok(ui),
        (None, Format::Text) if terminals => Ok(Ui::Tui),
        (None, _) => Ok(Ui::Line),
    }
}

/// Runs the chat screen until the session ends, then, on the restored terminal, lists the
/// messages that were not delivered (reliable mode) and the counters if `print_stats`.
/// Returns exit code 4 if the encrypted handshake failed, else 3 if any message was not
/// delivered, else success.
pub async fn chat<E>(
    endpoint: &mut E,
    socket: &UdpSocket,
    info: SessionInfo,
    print_stats: bool,
) -> Result<ExitCode>
where
    E: Endpoint + ?Sized,
{
    let (mode, plain) = (info.mode, info.plain);
    let summary = app::run(endpoint, socket, info).await?;
    if print_stats {
        print_stats_table(&endpoint.stats(), mode, plain);
    }
    // Raw mode waits for no acknowledgement, so it has nothing undelivered to name.
    let code = report_undelivered(&summary.undelivered);
    if summary.handshake_failed {
        return Ok(ExitCode::from(crate::secret::EXIT_HANDSHAKE_FAILED));
    }
    Ok(code)
}

/// The chat screen for TCP mode: as [`chat`], then how the connection ended and, if the
/// encrypted handshake failed, exit code 4, else if lines written may not have arrived, 3.
pub async fn tcp_chat(
    listening: Listening,
    config: TcpConfig,
    info: SessionInfo,
    print_stats: bool,
) -> Result<ExitCode> {
    let plain = info.plain;
    let summary = app::run_tcp(listening, config, info).await?;
    if summary.handshake_failed {
        if let Some(ending) = &summary.tcp_ending {
            eprintln!("udpchat: {}", crate::notice::tcp_ending_text(ending));
        }
        return Ok(ExitCode::from(crate::secret::EXIT_HANDSHAKE_FAILED));
    }
    // The user left before the connection ended (Ctrl-C twice): all there is to go on is the
    // kernel's last figures, from the status bar's last refresh.
    let Some(ending) = summary.tcp_ending else {
        let (sent, kernel) = summary.tcp_last;
        let settled = kernel.info().is_some_and(|info| info.send_queue == 0);
        if sent == 0 || settled {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "udpchat: you left before the connection ended: of the {sent} line(s) you wrote, \
             some may not have arrived (the kernel had not said all were acknowledged)"
        );
        return Ok(ExitCode::from(crate::output::EXIT_UNDELIVERED));
    };
    eprintln!("udpchat: {}", crate::notice::tcp_ending_text(&ending));
    if print_stats {
        let stats = TcpStats {
            counters: ending.counters.clone(),
            kernel: ending.kernel.clone(),
        };
        crate::output::print_tcp_stats_table(&stats, plain);
    }
    Ok(crate::tcp_chat::report(&ending))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_screen_is_the_default_only_at_a_terminal_with_text_output() {
        assert_eq!(choose_for(None, Format::Text, true).unwrap(), Ui::Tui);
        assert_eq!(choose_for(None, Format::Text, false).unwrap(), Ui::Line);
        assert_eq!(choose_for(None, Format::Json, true).unwrap(), Ui::Line);
        assert_eq!(
            choose_for(Some(Ui::Line), Format::Text, true).unwrap(),
            Ui::Line
        );
        assert_eq!(
            choose_for(Some(Ui::Tui), Format::Text, true).unwrap(),
            Ui::Tui
        );
    }

    #[test]
    fn impossible_choices_are_refused_with_a_reason() {
        let err = choose_for(Some(Ui::Tui), Format::Json, true).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--format json"));
        let err = choose_for(Some(Ui::Tui), Format::Text, false).unwrap_err();
        assert!(err.to_string().contains("needs a terminal"));
    }
}
