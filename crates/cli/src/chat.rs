//! `udpchat chat`: two people, one UDP socket each, full duplex.
//!
//! This module turns flags into a socket and an endpoint and then gets out of the way: the
//! mode-agnostic driver (`udpchat_driver`) moves datagrams and lines, [`crate::lines`]
//! reads stdin on its own thread, and [`crate::output`] prints what happens. Choosing a mode is
//! one `match` arm that builds a `Box<dyn Endpoint>`; everything after it is shared, so a new
//! mode or a wrapper around the endpoint (such as the lab's impairment) changes nothing else.
//!
//! A `--peer` that is the chat's own socket (the default `--bind 0.0.0.0:2323` with
//! `--peer 127.0.0.1:2323`) is refused as a usage error: every line would come straight back
//! and read as if the peer had written it.
//!
//! On stderr, the first line is always `udpchat: listening on ADDR (MODE mode)` with the address
//! actually bound, so scripts and tests that bind port 0 learn the port from it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use udpchat_core::{DEFAULT_MAX_DATAGRAM, MAX_UDP_PAYLOAD};
use udpchat_driver::{self as driver, Input};
use udpchat_reliable::{Endpoint, RawConfig, RawEndpoint};
use udpchat_secure::{SecureConfig, Secured, OVERHEAD};

use crate::address::{check_families, dual_stack, parse_destination};
use crate::lines;
use crate::link_args::{ChatImpairment, ChatImpairmentArgs};
use crate::notice::canonical;
use crate::output::{report_undelivered, Format, Output};
use crate::reliable_args::{usage, ReliableArgs, Undelivered};
use crate::secret::{SecretArgs, EXIT_HANDSHAKE_FAILED};
use crate::tui;

/// The flags of `udpchat chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Local address to listen on, IPv4 or IPv6 (e.g. 0.0.0.0:2323, [::]:2323, 127.0.0.1:0).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:2323")]
    pub bind: SocketAddr,

    /// Who to talk to, as HOST:PORT (names such as localhost are resolved; port 1-65535). Without
    /// it, udpchat waits for someone to write first and then answers them.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_destination)]
    pub peer: Option<String>,

    /// Transport: raw sends each line as one datagram and never resends; reliable delivers every
    /// line exactly once and in order, or says which ones it could not (exit code 3); tcp uses the
    /// kernel's TCP, which says only that a line was handed to the kernel (see README, TCP mode).
    #[arg(long, value_enum, default_value_t = Mode::Raw)]
    pub mode: Mode,

    /// Your nickname, shown to the other side [default: $USER, else "anon"].
    #[arg(long, value_name = "NAME", value_parser = parse_nick, conflicts_with = "plain")]
    pub nick: Option<String>,

    /// Bare UTF-8 datagrams, no framing and no sequence numbers: talks to `nc -u`, socat or a
    /// Python socket. Received datagrams are shown as `<address> text`. With --mode tcp: bare
    /// newline-terminated lines, so `nc HOST 2323` can join.
    #[arg(long)]
    pub plain: bool,

    /// How received messages are printed on stdout: text (`<nick> text`) or json (one object per
    /// line, and gap/duplicate/reordered events too).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Largest datagram to send, in bytes (64-65507). Raw mode: longer lines are refused
    /// [default: 1200]. Reliable mode: the cap of path MTU discovery, which starts at 1200 and
    /// probes up to this (1200 or less turns discovery off); longer lines are cut into fragments
    /// [default: 1452]. UDP modes only (refused in tcp mode, which sends each line as one frame
    /// of up to 65507 bytes). With --secret, the encryption's overhead is taken from it.
    #[arg(long, value_name = "BYTES", value_parser = parse_max_datagram,
          allow_negative_numbers = true)]
    pub max_datagram: Option<usize>,

    /// Print the counters to stderr when the chat ends (a `/stats` line prints them any time).
    #[arg(long)]
    pub stats: bool,

    /// The interface: tui (a chat screen) or line (plain lines on stdin/stdout, for pipes)
    /// [default: tui when stdin and stdout are terminals and --format is text, else line].
    #[arg(long, value_enum, value_name = "UI")]
    pub ui: Option<tui::Ui>,

    /// The reliable transport's tuning flags (--arq, --cc, ...; need --mode reliable).
    #[command(flatten)]
    pub reliable: ReliableArgs,

    /// The lab's impairment flags (--loss, --delay, ...; see docs/lab.md).
    #[command(flatten)]
    pub impairment: ChatImpairmentArgs,

    /// Encryption: --secret and --secret-file (see README, "Encrypted chat").
    #[command(flatten)]
    pub secret: SecretArgs,

    /// Line interface: also report each delivered message on stderr (reliable mode), with its
    /// round-trip time. Twice (-vv): also trace every datagram sent and received on stderr, one
    /// line each (kind, numbers, size; dropped ones with the reason). RUST_LOG, when set, filters
    /// the trace instead (e.g. RUST_LOG=udpchat::wire=debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// TCP mode, Linux: give the connection up when written data stays unacknowledged this long
    /// (TCP_USER_TIMEOUT, e.g. 30s). Without it the kernel retransmits for about 15 minutes
    /// before a write fails; with keepalive off, an idle chat never notices a dead peer.
    #[arg(long, value_name = "DURATION", value_parser = udpchat_lab::parse::parse_duration)]
    pub tcp_user_timeout: Option<std::time::Duration>,

    /// Write every datagram sent and received to FILE, a pcapng capture for Wireshark (wall-clock
    /// times; the udpchat dissector is in wireshark/). A disk error stops the capture with one
    /// warning; the chat goes on.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,
}

impl ChatArgs {
    /// `--max-datagram` for reliable mode: the cap of path MTU discovery, by default the
    /// transport's own ([`udpchat_reliable::transport::config::DEFAULT_PMTU_CAP`]).
    pub fn reliable_max_datagram(&self) -> usize {
        self.max_datagram
            .unwrap_or(udpchat_reliable::transport::config::DEFAULT_PMTU_CAP)
    }

    /// Refuses flags that are fine one by one but not together (exit code 2, with chat's usage):
    /// a `--peer` the `--bind` socket cannot reach, a passphrase on the command line or
    /// `--secret` with `--plain`, what tcp mode cannot do, reliable-mode flags in raw mode,
    /// reliable-mode values that contradict each other, an interface that cannot show the format.
    pub fn check(&self) -> Result<(), clap::Error> {
        if let Some(peer) = &self.peer {
            check_families("--bind", self.bind, "--peer", peer).map_err(|m| usage(&m))?;
        }
        self.secret.check(self.plain)?;
        if self.mode == Mode::Tcp {
            crate::tcp_chat::check(self)?;
        } else if self.tcp_user_timeout.is_some() {
            return Err(usage("--tcp-user-timeout needs --mode tcp"));
        }
        match self.mode {
            Mode::Raw if self.reliable.any_given() => {
                return Err(usage(
                    "the reliable-mode flags (--arq, --cc, ...) need --mode reliable",
                ))
            }
            Mode::Reliable if self.plain => {
                return Err(usage("--plain is for raw and tcp mode, not reliable"))
            }
            Mode::Reliable => {
                self.reliable
                    .config(String::new(), self.reliable_max_datagram())?;
            }
            Mode::Raw | Mode::Tcp => {}
        }
        let ui = tui::choose(self.ui, self.format).map_err(|e| crate::with_usage("chat", e))?;
        check_half_close(ui, self.reliable.half_close).map_err(usage)
    }
}

/// `--half-close` acts at the end of input, which only the line interface has: the chat screen
/// ends with /quit or Ctrl-D, both a full close. Refused there rather than parsed and ignored.
fn check_half_close(ui: tui::Ui, half_close: bool) -> Result<(), &'static str> {
    if half_close && ui == tui::Ui::Tui {
        return Err(
            "--half-close is for the line interface (--ui line, or piped input): the chat \
             screen has no end of input, only /quit and Ctrl-D, which close at once",
        );
    }
    Ok(())
}

/// How the chat's messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Each line is one UDP datagram, never acknowledged or resent; loss, duplication and
    /// reordering are reported, not repaired.
    Raw,
    /// Our own transport on UDP: handshake, acks, retransmission, ordering, flow and congestion
    /// control, fragmentation. Every line arrives exactly once, in order, or is reported lost.
    Reliable,
    /// The kernel's TCP: one connection, each line a length-prefixed frame. The kernel delivers
    /// in order or the connection breaks, and tells the application nothing per line.
    Tcp,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Reliable => "reliable",
            Mode::Tcp => "tcp",
        }
    }
}

/// Runs a chat until stdin ends, `/quit` or Ctrl-C, and returns the exit code.
pub fn run(args: ChatArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let tracing = crate::trace::init("udpchat", args.verbose >= 2);
    let screen = tui::choose(args.ui, args.format).is_ok_and(|ui| ui == tui::Ui::Tui);
    crate::trace::check_screen(screen, tracing);
    runtime.block_on(chat(args))
}

async fn chat(args: ChatArgs) -> Result<ExitCode> {
    let ui = tui::choose(args.ui, args.format).unwrap_or_else(|usage| usage.exit());
    match args.mode {
        Mode::Raw if args.reliable.any_given() => {
            usage("the reliable-mode flags (--arq, --cc, ...) need --mode reliable").exit()
        }
        Mode::Reliable if args.plain => {
            usage("--plain is for raw and tcp mode, not reliable").exit()
        }
        Mode::Tcp => return crate::tcp_chat::run(args, ui).await,
        _ => {}
    }
    args.secret
        .check(args.plain)
        .unwrap_or_else(|usage| usage.exit());
    let peer = match &args.peer {
        Some(text) => Some(resolve_peer(text, args.bind)?),
        None => None,
    };
    // Asked for (and derived) before the socket exists, so no datagram waits on a person typing.
    let secure = args.secret.config()?;
    // Checked before binding (a fixed port) and after (port 0 becomes a real port).
    refuse_self_talk(args.bind, peer);
    let socket = UdpSocket::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = socket
        .local_addr()
        .context("cannot read the bound address")?;
    refuse_self_talk(local, peer);
    // Settled once: the endpoint sends it and the screen shows it.
    let nick = args.nick.clone().unwrap_or_else(default_nick);
    let impairment = args.impairment.resolve();
    let (mut endpoint, capture) = crate::trace::tap(
        endpoint(&args, nick.clone(), peer, impairment.as_ref(), secure),
        local,
        args.pcap.as_deref(),
        ui == tui::Ui::Tui,
    )?;

    // A person at a terminal gets the chat screen (crate::tui), which shows the addresses itself
    // and takes Ctrl-C as a key; everything else is the line interface.
    if ui == tui::Ui::Tui {
        let info = tui::SessionInfo {
            mode: args.mode,
            nick,
            local,
            peer,
            plain: args.plain,
            impairment: impairment.as_ref().map(ChatImpairment::label),
            encrypted: args.secret.enabled(),
        };
        let result = tui::chat(&mut endpoint, &socket, info, args.stats).await;
        // Dropping the endpoint finishes the capture; its warnings waited for the screen to go.
        drop(endpoint);
        crate::trace::show_warnings(capture);
        return result;
    }
    let session = LineSession {
        local,
        peer,
        impairment,
    };
    line_chat(&args, endpoint, &socket, session).await
}

/// The endpoint for `args.mode`, sealed with `secure` if given (so its datagrams leave
/// `secure`'s overhead of room), and wrapped in the lab's impairment if one was asked for (which
/// then acts on the sealed datagrams, as a network would).
fn endpoint(
    args: &ChatArgs,
    nick: String,
    peer: Option<SocketAddr>,
    impairment: Option<&ChatImpairment>,
    secure: Option<SecureConfig>,
) -> Box<dyn Endpoint> {
    // Sealing adds `OVERHEAD` bytes to each datagram: the endpoint leaves room for them.
    let shrink = |bytes: usize| match secure {
        Some(_) => bytes.saturating_sub(OVERHEAD),
        None => bytes,
    };
    let endpoint: Box<dyn Endpoint> = match args.mode {
        Mode::Raw => Box::new(RawEndpoint::new(RawConfig {
            nick,
            peer,
            max_datagram: shrink(args.max_datagram.unwrap_or(DEFAULT_MAX_DATAGRAM)),
            plain: args.plain,
        })),
        // TCP mode never builds an endpoint: `chat` hands it to `tcp_chat` first.
        Mode::Reliable | Mode::Tcp => Box::new(
            args.reliable
                .endpoint(nick, peer, shrink(args.reliable_max_datagram()))
                .unwrap_or_else(|usage| usage.exit()),
        ),
    };
    let endpoint: Box<dyn Endpoint> = match secure {
        Some(config) => Box::new(Secured::new(endpoint, config)),
        None => endpoint,
    };
    match impairment {
        Some(impairment) => Box::new(impairment.wrap(endpoint)),
        None => endpoint,
    }
}

/// What the line interface says about the session before the first line.
struct LineSession {
    local: SocketAddr,
    peer: Option<SocketAddr>,
    impairment: Option<ChatImpairment>,
}

/// The line interface: stdin lines out, messages on stdout, notices on stderr.
async fn line_chat(
    args: &ChatArgs,
    mut endpoint: Box<dyn Endpoint>,
    socket: &UdpSocket,
    session: LineSession,
) -> Result<ExitCode> {
    // Ctrl-C is caught from here on: before the first line, so whoever reads it may interrupt.
    let (input, mut inputs) = mpsc::channel(64);
    tokio::spawn(close_on_ctrl_c(interrupts()?, input.clone()));
    print_banner(args, &session);

    let mut output = Output::new(
        args.format,
        args.mode,
        session.peer.is_some(),
        args.verbose > 0,
    )
    .plain(args.plain);
    if args.mode == Mode::Reliable {
        output = output.watching(session.peer);
    }
    // End of input closes the chat, or with --half-close only finishes our side of it.
    let at_end = if args.reliable.half_close {
        Input::Finish
    } else {
        Input::Close
    };
    lines::spawn_stdin_reader(input, at_end);
    let mut tracked = Undelivered::new(&mut output);
    let local = session.local;
    driver::run(&mut endpoint, socket, &mut inputs, &mut tracked)
        .await
        .with_context(|| format!("the socket on {local} keeps failing"))?;
    let lost = tracked.lost().to_vec();
    output.flush();
    if args.stats {
        output.print_stats(&endpoint.stats());
    }
    let code = report_undelivered(&lost);
    if output.handshake_failed() {
        return Ok(ExitCode::from(EXIT_HANDSHAKE_FAILED));
    }
    Ok(code)
}

/// The first lines on stderr: the address bound (scripts read the port from it), the peer,
/// the impairment.
fn print_banner(args: &ChatArgs, session: &LineSession) {
    let flavour = if args.plain { ", plain" } else { "" };
    eprintln!(
        "udpchat: listening on {} ({} mode{flavour})",
        session.local,
        args.mode.name()
    );
    match (session.peer, args.mode) {
        // Reliable mode says "connected to" once the handshake is done.
        (Some(peer), Mode::Reliable) => eprintln!("udpchat: connecting to {peer}"),
        (Some(peer), Mode::Raw | Mode::Tcp) => eprintln!("udpchat: talking to {peer}"),
        (None, _) => eprintln!("udpchat: no --peer: waiting for someone to write first"),
    }
    print_secret_banner(args);
    for line in session.impairment.iter().flat_map(ChatImpairment::describe) {
        eprintln!("udpchat: {line}");
    }
    for warning in args.impairment.warnings() {
        eprintln!("udpchat: warning: {warning}");
    }
}

/// The banner's encryption lines, in every mode: encrypted, or a passphrase in the environment
/// that is not used.
pub(crate) fn print_secret_banner(args: &ChatArgs) {
    if args.secret.enabled() {
        eprintln!(
            "udpchat: encrypted (--secret): nothing is shown until the handshake proves the \
             peer holds the same passphrase"
        );
    }
    if let Some(warning) = args.secret.warning() {
        eprintln!("udpchat: warning: {warning}");
    }
}

/// Ctrl-C, as a stream of signals. Both kinds have `recv() -> Option<()>`.
#[cfg(unix)]
pub(crate) type Interrupts = tokio::signal::unix::Signal;
#[cfg(windows)]
pub(crate) type Interrupts = tokio::signal::windows::CtrlC;

/// Catches Ctrl-C from now on: registered at once, unlike `tokio::signal::ctrl_c()`, which only
/// registers when first polled, so a Ctrl-C right after start-up is not missed.
pub(crate) fn interrupts() -> Result<Interrupts> {
    #[cfg(unix)]
    let interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    #[cfg(windows)]
    let interrupts = tokio::signal::windows::ctrl_c();
    interrupts.context("cannot catch Ctrl-C")
}

/// First Ctrl-C: close like end of input. A second one: leave at once.
pub(crate) async fn close_on_ctrl_c(mut interrupts: Interrupts, input: mpsc::Sender<Input>) {
    if interrupts.recv().await.is_none() {
        return;
    }
    eprintln!("udpchat: interrupted, closing (Ctrl-C again to leave at once)");
    // If the driver is already gone, there is nothing left to close.
    let _ = input.send(Input::Close).await;
    if interrupts.recv().await.is_some() {
        std::process::exit(130);
    }
}

/// Resolves `text` (HOST:PORT) to an address the socket bound at `bind` can send to.
pub(crate) fn resolve_peer(text: &str, bind: SocketAddr) -> Result<SocketAddr> {
    let candidates: Vec<SocketAddr> = text
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve --peer {text} (expected HOST:PORT)"))?
        .collect();
    let v4 = candidates.iter().copied().find(SocketAddr::is_ipv4);
    let v6 = candidates.iter().copied().find(SocketAddr::is_ipv6);
    match (bind.is_ipv4(), v4, v6) {
        (true, Some(addr), _) => Ok(addr),
        (true, None, _) => Err(anyhow!(
            "--peer {text} has no IPv4 address but --bind {bind} is IPv4; bind IPv6 instead, \
             e.g. --bind [::]:2323"
        )),
        (false, _, Some(addr)) => Ok(addr),
        // An IPv6 socket reaches IPv4 peers through IPv4-mapped addresses (dual stack), and
        // their datagrams arrive from that same mapped form, so the peer filter matches.
        // Only the unspecified address `[::]` is dual-stack: a socket bound to `[::1]` cannot.
        (false, Some(_), None) if !dual_stack(bind) => Err(anyhow!(
            "--peer {text} has no IPv6 address but --bind {bind} is IPv6 and not dual-stack; \
             bind IPv4 instead, e.g. --bind 0.0.0.0:2323, or bind [::]:2323"
        )),
        (false, Some(addr), None) => Ok(SocketAddr::new(
            IpAddr::V6(match addr.ip() {
                IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                IpAddr::V6(ip) => ip,
            }),
            addr.port(),
        )),
        (false, None, None) => Err(anyhow!("--peer {text} resolved to no address")),
    }
}

/// Exits with a usage error (code 2) if `peer` is the socket bound at `bind` itself: every line
/// would come straight back and be shown as if a peer had written it.
pub(crate) fn refuse_self_talk(bind: SocketAddr, peer: Option<SocketAddr>) {
    let Some(peer) = peer else { return };
    if is_own_address(bind, peer, is_local_ip) {
        let (peer, port) = (canonical(peer), bind.port());
        usage(&format!(
            "--peer {peer} is this chat's own address (--bind {bind}), so your lines would \
             come back to you as if from a peer; give the other side's address. To try udpchat \
             on one machine, give each side its own port: --bind 127.0.0.1:{other} --peer \
             127.0.0.1:{port} here, --bind 127.0.0.1:{port} --peer 127.0.0.1:{other} there",
            other = port.wrapping_add(1).max(1),
        ))
        .exit()
    }
}

/// True if datagrams sent to `peer` arrive at a socket bound to `bind`: the same port, and the
/// same address or, when `bind` is the unspecified address (which receives on every address of
/// the machine), an address of this machine (`is_local` decides; IPv4-mapped addresses count
/// as IPv4). Port 0 is never a peer's port, so an unbound port 0 matches nothing.
fn is_own_address(bind: SocketAddr, peer: SocketAddr, is_local: impl Fn(IpAddr) -> bool) -> bool {
    if bind.port() != peer.port() || bind.port() == 0 {
        return false;
    }
    let (ours, theirs) = (bind.ip().to_canonical(), peer.ip().to_canonical());
    ours == theirs || (ours.is_unspecified() && (theirs.is_loopback() || is_local(theirs)))
}

/// Whether `ip` is an address of this machine: only then can a socket be bound to it. Binding
/// port 0 there sends nothing and the probe socket is closed at once.
fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The login name, as chat programs have always defaulted to.
pub(crate) fn default_nick() -> String {
    ["USER", "USERNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find_map(|name| parse_nick(&name).ok())
        .unwrap_or_else(|| "anon".to_owned())
}

/// Longest nickname, in bytes: long enough for names, short enough to leave room for text.
const MAX_NICK: usize = 32;

pub(crate) fn parse_nick(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > MAX_NICK {
        return Err(format!("a nickname is 1 to {MAX_NICK} bytes"));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("a nickname has no spaces or control characters".to_owned());
    }
    Ok(text.to_owned())
}

/// Smallest datagram limit: room for the framing and a short line.
const MIN_DATAGRAM: usize = 64;

fn parse_max_datagram(text: &str) -> Result<usize, String> {
    let value: usize = text
        .parse()
        .map_err(|_| format!("expected a number of bytes, got {text:?}"))?;
    if (MIN_DATAGRAM..=MAX_UDP_PAYLOAD).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "must be between {MIN_DATAGRAM} and {MAX_UDP_PAYLOAD} bytes"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn half_close_is_refused_on_the_chat_screen_only() {
        assert!(check_half_close(tui::Ui::Tui, true).is_err());
        assert!(check_half_close(tui::Ui::Line, true).is_ok());
        assert!(check_half_close(tui::Ui::Tui, false).is_ok());
    }

    #[test]
    fn a_peer_name_resolves_to_the_family_of_the_socket() {
        let v4 = resolve_peer("localhost:2323", "0.0.0.0:0".parse().unwrap()).unwrap();
        assert_eq!(v4, "127.0.0.1:2323".parse().unwrap());
        let mapped = resolve_peer("127.0.0.1:9", "[::]:0".parse().unwrap()).unwrap();
        assert_eq!(mapped, "[::ffff:127.0.0.1]:9".parse().unwrap());
        assert!(resolve_peer("[::1]:9", "0.0.0.0:0".parse().unwrap()).is_err());
        assert!(resolve_peer("127.0.0.1:9", "[::1]:0".parse().unwrap()).is_err());
        assert!(resolve_peer("no-port-here", "0.0.0.0:0".parse().unwrap()).is_err());
    }

    #[test]
    fn talking_to_yourself_is_recognised() {
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let local = |ip: IpAddr| ip == a("192.0.2.7:0").ip();
        let own = |bind: &str, peer: &str| is_own_address(a(bind), a(peer), local);
        assert!(own("0.0.0.0:2323", "127.0.0.1:2323"));
        assert!(own("0.0.0.0:2323", "127.0.0.2:2323"));
        assert!(own("0.0.0.0:2323", "192.0.2.7:2323"));
        assert!(own("127.0.0.1:2323", "127.0.0.1:2323"));
        assert!(own("[::]:2323", "[::ffff:127.0.0.1]:2323"));
        assert!(own("[::]:2323", "[::1]:2323"));
        // Another port, another machine, or a socket bound to one address only: someone else.
        assert!(!own("0.0.0.0:2323", "127.0.0.1:2324"));
        assert!(!own("0.0.0.0:2323", "192.0.2.8:2323"));
        assert!(!own("127.0.0.1:2323", "127.0.0.2:2323"));
        assert!(!own("0.0.0.0:0", "127.0.0.1:0"));
        // The real probe: loopback is ours, a documentation address is not.
        assert!(is_local_ip(a("127.0.0.1:0").ip()));
        assert!(!is_local_ip(a("192.0.2.1:0").ip()));
    }

    #[test]
    fn nicknames_are_checked() {
        assert_eq!(parse_nick("alice").unwrap(), "alice");
        assert!(parse_nick("").is_err());
        assert!(parse_nick("a b").is_err());
        assert!(parse_nick("a\u{1b}[31m").is_err());
        assert!(parse_nick(&"x".repeat(MAX_NICK + 1)).is_err());
        assert!(parse_nick(&default_nick()).is_ok());
    }

    #[test]
    fn the_datagram_limit_is_checked() {
        assert_eq!(parse_max_datagram("1200").unwrap(), 1200);
        assert!(parse_max_datagram("10").is_err());
        assert!(parse_max_datagram("70000").is_err());
        assert!(parse_max_datagram("big").is_err());
    }
}
