//! `udpchat chat --mode tcp`: the binary's side of TCP mode.
//!
//! The flags are checked here (what TCP mode refuses, and why), the listening socket is opened,
//! and the session is handed to the TCP driver (`udpchat_driver::tcp`) with the line interface
//! ([`crate::output::Output`]) or the chat screen as its sink. At the end it reports how the
//! connection ended and returns the exit code: 4 when the encrypted handshake (`--secret`)
//! failed, else 3 when lines written may not have arrived (see `Ending::at_risk`), as reliable
//! mode does for undelivered lines.

use std::process::ExitCode;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use udpchat_driver::tcp::{self, Ending, TcpConfig, TcpStats};
use udpchat_driver::Input;

use crate::chat::{
    close_on_ctrl_c, default_nick, interrupts, print_secret_banner, refuse_self_talk, resolve_peer,
    ChatArgs, Mode,
};
use crate::output::{Output, EXIT_UNDELIVERED};
use crate::reliable_args::usage;
use crate::secret::EXIT_HANDSHAKE_FAILED;
use crate::{lines, notice, tui};

/// Why the impairment flags are refused in TCP mode.
pub const IMPAIRMENT_REFUSED: &str =
    "the impairment flags (--loss, --delay, ...) act on udpchat's own datagrams, and in tcp \
     mode the kernel's TCP makes the segments, out of udpchat's reach. To see TCP under loss, \
     run `udpchat lab --modes tcp` (the simulator), or put the kernel's TCP behind the TUN \
     relay, `udpchat netem`";

/// Refuses what TCP mode cannot do (exit code 2), each with the reason.
pub fn check(args: &ChatArgs) -> Result<(), clap::Error> {
    let mut reliable = args.reliable.clone();
    reliable.half_close = false;
    if reliable.any_given() {
        return Err(usage(
            "the reliable-mode flags (--arq, --cc, ...) need --mode reliable; the kernel's TCP \
             has its own (see sysctl net.ipv4.tcp_*). Of them, tcp mode takes only --half-close",
        ));
    }
    if impairment_given(args) {
        return Err(usage(IMPAIRMENT_REFUSED));
    }
    if args.max_datagram.is_some() {
        return Err(usage(
            "--max-datagram sizes udpchat's UDP datagrams; in tcp mode the kernel cuts the \
             stream into segments itself, and a line may be up to 65507 bytes in one frame",
        ));
    }
    if args.pcap.is_some() {
        return Err(usage(
            "--pcap records udpchat's UDP datagrams; in tcp mode the segments are the \
             kernel's: capture them with tcpdump -w FILE tcp port PORT",
        ));
    }
    if args.verbose > 0 {
        return Err(usage(
            "-v and -vv report deliveries and trace udpchat's datagrams, and tcp mode has \
             neither: the kernel says nothing per line (`ss -ti` and tcpdump show the segments)",
        ));
    }
    match args.tcp_user_timeout {
        Some(t) if t.is_zero() => Err(usage("--tcp-user-timeout must be more than 0")),
        Some(_) if !cfg!(target_os = "linux") => Err(usage(
            "--tcp-user-timeout is TCP_USER_TIMEOUT, which only Linux has",
        )),
        _ => Ok(()),
    }
}

fn impairment_given(args: &ChatArgs) -> bool {
    let imp = &args.impairment;
    imp.resolve().is_some()
        || imp.impair_incoming
        || imp.link.seed.is_some()
        || !imp.link.up.is_empty()
        || !imp.link.down.is_empty()
        || !imp.warnings().is_empty()
}

/// Runs a TCP chat until it ends; returns the exit code.
pub async fn run(args: ChatArgs, ui: tui::Ui) -> Result<ExitCode> {
    let peer = match &args.peer {
        Some(text) => Some(resolve_peer(text, args.bind)?),
        None => None,
    };
    // Asked for (and derived) before the socket exists, so no peer waits on a person typing.
    let secret = args.secret.config()?;
    refuse_self_talk(args.bind, peer);
    let listening = tcp::listen(args.bind, peer.is_some())
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listening.local_addr();
    refuse_self_talk(local, peer);
    let config = TcpConfig {
        peer,
        nick: args.nick.clone().unwrap_or_else(default_nick),
        plain: args.plain,
        user_timeout: args.tcp_user_timeout,
        secret,
    };
    if ui == tui::Ui::Tui {
        let info = tui::SessionInfo {
            mode: Mode::Tcp,
            nick: config.nick.clone(),
            local,
            peer,
            plain: args.plain,
            impairment: None,
            encrypted: args.secret.enabled(),
        };
        return tui::tcp_chat(listening, config, info, args.stats).await;
    }

    let (input, mut inputs) = mpsc::channel(64);
    tokio::spawn(close_on_ctrl_c(interrupts()?, input.clone()));
    print_banner(&args, &config, local);
    let mut output = Output::new(args.format, Mode::Tcp, peer.is_some(), false).plain(args.plain);
    if peer.is_some() {
        output = output.watching(peer);
    }
    let at_end = if args.reliable.half_close {
        Input::Finish
    } else {
        Input::Close
    };
    lines::spawn_stdin_reader(input, at_end);
    let ending = tcp::run(listening, &config, &mut inputs, &mut output)
        .await
        .with_context(|| format!("the listening socket on {local} failed"))?;
    output.flush();
    if args.stats {
        output.print_tcp_stats(&TcpStats {
            counters: ending.counters.clone(),
            kernel: ending.kernel.clone(),
        });
    }
    let code = report(&ending);
    if output.handshake_failed() {
        return Ok(ExitCode::from(EXIT_HANDSHAKE_FAILED));
    }
    Ok(code)
}

fn print_banner(args: &ChatArgs, config: &TcpConfig, local: std::net::SocketAddr) {
    let flavour = if args.plain { ", plain" } else { "" };
    eprintln!("udpchat: listening on {local} (tcp mode{flavour})");
    match config.peer {
        Some(peer) => eprintln!("udpchat: connecting to {}", notice::canonical(peer)),
        None => eprintln!("udpchat: no --peer: waiting for someone to connect"),
    }
    eprintln!("udpchat: {}", notice::TCP_HONESTY);
    print_secret_banner(args);
    if let Some(timeout) = config.user_timeout {
        eprintln!(
            "udpchat: --tcp-user-timeout {timeout:?}: the kernel gives the connection up when \
             what we wrote stays unacknowledged that long"
        );
    }
}

/// Says which lines may not have arrived, on stderr; returns exit code 3 if any may not have,
/// else success.
pub fn report(ending: &Ending) -> ExitCode {
    match notice::tcp_at_risk_text(ending) {
        Some(text) => {
            eprintln!("udpchat: {text}");
            ExitCode::from(EXIT_UNDELIVERED)
        }
        None => ExitCode::SUCCESS,
    }
}
