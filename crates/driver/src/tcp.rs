//! TCP mode: the chat over the kernel's TCP, for the contrast with raw and reliable mode.
//!
//! There is no sans-IO endpoint here: the transport *is* the kernel's, so this driver owns a
//! `TcpStream` and does what the kernel leaves to applications: cutting messages out of the
//! byte stream ([`frame`]), and telling the user what is known about delivery, which is little.
//! A `write` returns once the kernel has the bytes, so a line is "sent to the kernel", never
//! "delivered"; what the kernel knows about the connection (RTT, congestion window,
//! retransmissions, bytes not yet acknowledged) is read from `TCP_INFO` ([`kernel`]).
//!
//! The driver reports through the same [`Sink`] as the UDP modes, with the same [`Event`]s
//! where the meaning is the same (`Message`, `Peer`, `NickChanged`, `PeerFinished`,
//! `PeerClosed`, `TurnedAway`, `Dropped`, `Closed`; `NoAnswer` for a connect attempt that was
//! refused), plus two TCP-only reports ([`TcpSink`]): the counters with the kernel's figures,
//! and how the connection ended ([`Ending`], with what the kernel still held).
//!
//! **Who connects.** Every side listens on `--bind`. A side with `--peer` also connects to it,
//! from the same address and port as it listens on (`SO_REUSEPORT`), retrying while the peer is
//! not up yet (each retry is a `NoAnswer` event). So when both sides have `--peer`, as in the
//! tutorial, both attempts are the same TCP connection (the same four-tuple of addresses and
//! ports): whichever SYN arrives first makes it, or both cross and TCP's simultaneous open joins
//! them. There is never a second connection to choose from or close. A side without `--peer`
//! takes the first connection and turns later ones away (`TurnedAway`); a side with `--peer`
//! takes only a connection from that address.
//!
//! **On the wire.** Each message is one frame ([`frame`]): a length, then one `core` datagram.
//! A line is a `Data` packet (one fragment; no connection id, token or ack: TCP does their
//! work), the nickname a `Nick` packet (sent first, and again on `/nick`), the end of our
//! sending a `Fin` (half-close) or a `Close` (we leave). `--plain` sends bare lines instead.
//!
//! **Encryption** (`--secret`). Once connected, the two sides run the Noise handshake of the UDP
//! modes as the first frames of the stream, and from then on every frame's datagram is sealed
//! (`udpchat_secure::SecureStream`; roles and rules in its module doc). Lines typed meanwhile
//! wait as plain datagrams and are sealed once the peer has proved the passphrase. Over TCP a
//! frame that does not authenticate, or comes out of sequence, is an attack on the stream, not
//! loss: the connection ends ([`EndReason::Unauthenticated`]). A handshake that fails, or is not
//! done within `udpchat_secure::stream::HANDSHAKE_TIMEOUT`, ends it too
//! ([`EndReason::HandshakeFailed`], after `Event::HandshakeFailed`).
//!
//! **How it ends.** End of input closes: a `Close` frame, then the write side is shut down
//! (FIN), and we keep reading until the peer closes its side too, at most [`LINGER`]. With a
//! half-close ([`Input::Finish`]) we send a `Fin` frame and shut down the write side, and keep
//! reading (and showing) what the peer sends until it finishes too. The [`Ending`] says why the
//! connection ended and whether lines we wrote may not have arrived: bytes the kernel had not
//! had acknowledged (from `TCP_INFO`), lines still queued here, or a reset or a failed write.

pub mod frame;
pub mod kernel;

mod connect;
mod session;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use udpchat_reliable::{HandshakeFailure, Stats};
use udpchat_secure::SecureConfig;

use crate::{Input, Sink};
pub use connect::{listen, Listening};
pub use kernel::{KernelInfoError, TcpInfo};

/// How long a close waits for the peer to close its side too, as reliable mode's default
/// linger: past it, what the kernel still holds unacknowledged is reported at risk.
pub const LINGER: Duration = Duration::from_secs(3);

/// The first wait before connecting again after a refused attempt; it doubles up to
/// [`MAX_RETRY_WAIT`].
pub const FIRST_RETRY_WAIT: Duration = Duration::from_millis(250);

/// The longest wait between two connect attempts.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(4);

/// How long one connect attempt may take before it counts as unanswered (a SYN into a void
/// would otherwise wait for the kernel's own give-up, about two minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes queued here, not yet taken by the kernel, above which no more lines are read: the
/// kernel's send buffer is full because the peer does not read, and TCP's flow control pushes
/// back on us as it does on the peer's kernel.
pub const MAX_QUEUED: usize = 1 << 20;

/// The settings of a TCP chat.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// The peer to connect to, if any.
    pub peer: Option<SocketAddr>,
    /// Our nickname, sent in a `Nick` frame first.
    pub nick: String,
    /// Bare lines instead of frames.
    pub plain: bool,
    /// Linux `TCP_USER_TIMEOUT`: how long written data may stay unacknowledged before the
    /// kernel gives the connection up. `None`: the kernel's default (about 15 minutes of
    /// retransmissions).
    pub user_timeout: Option<Duration>,
    /// `--secret`: the handshake's key and randomness; every frame is then sealed (see
    /// "Encryption" in the module doc). Not with `plain`.
    pub secret: Option<SecureConfig>,
}

/// Counters and the kernel's figures, for `/stats` and the status bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcpStats {
    /// Our counters in the shape every mode shares: messages, frames (`datagrams_*`), bytes
    /// handed to and taken from the kernel, frames dropped (`dropped_*`).
    pub counters: Stats,
    /// What the kernel knows, or why it cannot say.
    pub kernel: KernelView,
}

/// The kernel's figures, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum KernelView {
    /// Read from `TCP_INFO`.
    Known(TcpInfo),
    /// No connection yet.
    NotConnected,
    /// The kernel no longer has the connection: it closed with everything acknowledged.
    Closed,
    /// Could not be read: the reason.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl KernelView {
    /// The figures, if known.
    pub fn info(&self) -> Option<&TcpInfo> {
        match self {
            KernelView::Known(info) => Some(info),
            _ => None,
        }
    }

    fn read(local: SocketAddr, peer: SocketAddr) -> KernelView {
        match kernel::tcp_info(local, peer) {
            Ok(info) => KernelView::Known(info),
            Err(KernelInfoError::Gone) => KernelView::Closed,
            Err(e) => KernelView::Unavailable {
                reason: e.to_string(),
            },
        }
    }
}

/// Why the TCP session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EndReason {
    /// Our input ended (or Ctrl-C, `/quit`) before anyone connected.
    NeverConnected,
    /// We closed, and the peer closed its side too.
    Closed,
    /// We closed, and the peer had not closed its side within [`LINGER`].
    LingerExpired,
    /// The peer said goodbye (a `Close` frame; with `--plain`, the end of its stream).
    PeerLeft,
    /// Both sides finished sending (half-close each), and the connection closed.
    BothFinished,
    /// We had finished sending (half-close), then closed (Ctrl-C) before the peer finished.
    LeftEarly,
    /// The peer's side closed with no goodbye frame: its program ended or was killed.
    PeerVanished,
    /// The peer's kernel reset the connection: it discarded data its program never read (the
    /// program died with our lines unread, or the host restarted).
    Reset,
    /// The kernel gave up: data stayed unacknowledged too long (`--tcp-user-timeout`, or the
    /// kernel's own retransmission limit).
    TimedOut,
    /// Another socket error.
    Failed {
        /// What the kernel said.
        error: String,
    },
    /// The peer sent something that is not a udpchat TCP stream (a frame length above the
    /// limit), so nothing after it could be read.
    BadStream {
        /// What was wrong.
        error: String,
    },
    /// `--secret`: the encrypted handshake failed (a different passphrase, an unencrypted
    /// peer, no answer in time), so the connection was closed.
    HandshakeFailed {
        /// Why.
        failure: HandshakeFailure,
    },
    /// `--secret`: after the handshake, a frame did not authenticate or was out of sequence
    /// (replayed, reordered, deleted, forged): someone is tampering with the stream, which
    /// cannot be resynchronised securely, so the connection was dropped.
    Unauthenticated {
        /// What was wrong.
        error: String,
    },
}

/// How the TCP session ended, and what may not have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// Why.
    #[serde(flatten)]
    pub reason: EndReason,
    /// Lines we handed to the kernel.
    pub lines_written: u64,
    /// Lines never handed to the kernel: queued here when it ended, or typed and not yet taken.
    pub lines_unwritten: u64,
    /// Bytes we handed to the kernel that the peer had not acknowledged at the end, where the
    /// kernel says (`TCP_INFO`); `None` where it cannot.
    pub unacked_bytes: Option<u64>,
    /// The kernel's figures at the end.
    pub kernel: KernelView,
    /// Our counters at the end.
    pub counters: Stats,
}

impl Ending {
    /// True if lines we wrote may not have arrived: some were never handed to the kernel, the
    /// kernel still held unacknowledged bytes at the end, or the connection broke (reset, time
    /// out, error) after lines were written. Exit code 3, as reliable mode's undelivered lines.
    /// Where the kernel's figures are not available, a clean ending is taken at its word, and
    /// a vanished peer is not (nobody can say what it read).
    pub fn at_risk(&self) -> bool {
        let unacked = self.unacked_bytes.is_some_and(|n| n > 0);
        let broke = matches!(
            self.reason,
            EndReason::Reset
                | EndReason::TimedOut
                | EndReason::Failed { .. }
                | EndReason::BadStream { .. }
                | EndReason::HandshakeFailed { .. }
                | EndReason::Unauthenticated { .. }
        );
        // A peer that vanished, when the kernel cannot say what it acknowledged: unknown.
        let unknown = self.reason == EndReason::PeerVanished && self.unacked_bytes.is_none();
        self.lines_unwritten > 0 || (self.lines_written > 0 && (unacked || broke || unknown))
    }
}

/// The TCP-only reports, beside the [`Sink`] the UDP modes share.
pub trait TcpSink: Sink {
    /// The counters and the kernel's figures, as asked for with [`Input::Stats`].
    fn tcp_stats(&mut self, stats: &TcpStats);
    /// The session ended (reported once, before `Event::Closed`).
    fn ended(&mut self, ending: &Ending);
}

/// Lines that were typed but never taken (they wait in the channel when the connection ends):
/// they never left udpchat either.
fn untaken_lines(input: &mut mpsc::Receiver<Input>) -> u64 {
    let mut lines = 0;
    while let Ok(command) = input.try_recv() {
        if matches!(command, Input::Line(_)) {
            lines += 1;
        }
    }
    lines
}

/// Runs a TCP chat on `listening` until it ends, taking lines and commands from `input` and
/// reporting to `sink`. Returns how it ended; an error only if the listening socket fails.
pub async fn run<S>(
    listening: Listening,
    config: &TcpConfig,
    input: &mut mpsc::Receiver<Input>,
    sink: &mut S,
) -> io::Result<Ending>
where
    S: TcpSink + ?Sized,
{
    let mut early = session::Early::new(config);
    let connection = connect::establish(&listening, config, input, sink, &mut early).await?;
    let mut ending = match connection {
        Some(connection) => {
            session::Session::new(connection, config, early, listening)
                .run(input, sink)
                .await
        }
        None => Ending {
            reason: EndReason::NeverConnected,
            lines_written: 0,
            lines_unwritten: early.queued_lines(),
            unacked_bytes: None,
            kernel: KernelView::NotConnected,
            counters: early.stats.clone(),
        },
    };
    ending.lines_unwritten += untaken_lines(input);
    sink.ended(&ending);
    sink.event(udpchat_reliable::Event::Closed);
    Ok(ending)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use udpchat_reliable::{Event, MessageId, SendError};

    #[derive(Default)]
    struct Collect {
        events: Vec<Event>,
        accepted: Vec<MessageId>,
        stats: Vec<TcpStats>,
        endings: Vec<Ending>,
    }

    impl Collect {
        fn texts(&self) -> Vec<String> {
            self.events
                .iter()
                .filter_map(|e| match e {
                    Event::Message { text, .. } => Some(text.clone()),
                    _ => None,
                })
                .collect()
        }
    }

    impl Sink for Collect {
        fn event(&mut self, event: Event) {
            self.events.push(event);
        }
        fn accepted(&mut self, id: MessageId, _line: &str) {
            self.accepted.push(id);
        }
        fn refused(&mut self, line: &str, error: &SendError) {
            panic!("refused {line}: {error}");
        }
        fn socket_error(&mut self, error: &io::Error) {
            panic!("{error}");
        }
        fn stats(&mut self, _stats: &Stats) {}
    }

    impl TcpSink for Collect {
        fn tcp_stats(&mut self, stats: &TcpStats) {
            self.stats.push(stats.clone());
        }
        fn ended(&mut self, ending: &Ending) {
            self.endings.push(ending.clone());
        }
    }

    fn config(nick: &str, peer: Option<SocketAddr>) -> TcpConfig {
        TcpConfig {
            peer,
            nick: nick.into(),
            plain: false,
            user_timeout: None,
            secret: None,
        }
    }

    /// Runs both sides to the end with these inputs queued; returns their sinks and endings.
    async fn pair(
        a: (Listening, TcpConfig, Vec<Input>),
        b: (Listening, TcpConfig, Vec<Input>),
    ) -> ((Collect, Ending), (Collect, Ending)) {
        let side = |(listening, config, inputs): (Listening, TcpConfig, Vec<Input>)| async move {
            let (tx, mut rx) = mpsc::channel(64);
            for input in inputs {
                tx.send(input).await.unwrap();
            }
            let mut sink = Collect::default();
            let ending = run(listening, &config, &mut rx, &mut sink).await.unwrap();
            drop(tx);
            (sink, ending)
        };
        let both = async { tokio::join!(side(a), side(b)) };
        tokio::time::timeout(Duration::from_secs(20), both)
            .await
            .expect("both sides should end")
    }

    fn line(text: &str) -> Input {
        Input::Line(text.into())
    }

    /// The nickname the first message `sink` got came under.
    fn first_nick(sink: &Collect) -> Option<String> {
        sink.events.iter().find_map(|e| match e {
            Event::Message { nick, .. } => Some(nick.clone()),
            _ => None,
        })
    }

    #[tokio::test]
    async fn both_sides_with_a_peer_share_one_connection_and_half_close_cleanly() {
        let la = listen("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let lb = listen("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let (a_addr, b_addr) = (la.local_addr(), lb.local_addr());
        let ((a, a_end), (b, b_end)) = pair(
            (
                la,
                config("alice", Some(b_addr)),
                vec![line("hi bob"), Input::Stats, line("two"), Input::Finish],
            ),
            (
                lb,
                config("bob", Some(a_addr)),
                vec![line("hi alice"), Input::Finish],
            ),
        )
        .await;
        assert_eq!(b.texts(), vec!["hi bob", "two"]);
        assert_eq!(a.texts(), vec!["hi alice"]);
        // One connection: each side's peer is the other's listening address.
        assert!(a.events.contains(&Event::Peer {
            addr: b_addr,
            nick: None
        }));
        assert!(b.events.contains(&Event::Peer {
            addr: a_addr,
            nick: None
        }));
        assert_eq!(first_nick(&b).as_deref(), Some("alice"));
        assert_eq!(a_end.reason, EndReason::BothFinished);
        assert_eq!(b_end.reason, EndReason::BothFinished);
        assert_eq!(a_end.lines_written, 2);
        assert!(!a_end.at_risk() && !b_end.at_risk(), "{a_end:?} {b_end:?}");
        assert_eq!(a.stats[0].counters.messages_sent, 1);
        #[cfg(target_os = "linux")]
        assert_eq!(a_end.unacked_bytes, Some(0));
        // Asked before the connection existed: the kernel had nothing to say yet.
        assert_eq!(a.stats[0].kernel, KernelView::NotConnected);
        assert_eq!(a.events.last(), Some(&Event::Closed));
    }

    fn secret(config: TcpConfig, pass: &str, seed: u8) -> TcpConfig {
        let psk =
            udpchat_secure::Psk::derive(pass, udpchat_secure::KdfParams::insecure_for_tests())
                .unwrap();
        TcpConfig {
            secret: Some(SecureConfig {
                psk,
                seed: [seed; 32],
            }),
            ..config
        }
    }

    fn sas(sink: &Collect) -> Option<String> {
        sink.events.iter().find_map(|e| match e {
            Event::Secured { sas, .. } => Some(sas.clone()),
            _ => None,
        })
    }

    fn failure(sink: &Collect) -> Option<HandshakeFailure> {
        sink.events.iter().find_map(|e| match e {
            Event::HandshakeFailed { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    #[tokio::test]
    async fn encrypted_sides_show_one_code_and_lines_typed_before_the_handshake_arrive() {
        // Both with a peer (one connection, the handshake's tie-break picks the initiator),
        // and a listener with a connecting peer.
        for both in [true, false] {
            let la = listen("127.0.0.1:0".parse().unwrap(), true).unwrap();
            let lb = listen("127.0.0.1:0".parse().unwrap(), both).unwrap();
            let (a_addr, b_addr) = (la.local_addr(), lb.local_addr());
            let ((a, a_end), (b, b_end)) = pair(
                (
                    la,
                    secret(config("alice", Some(b_addr)), "pw", 1),
                    vec![line("hi bob"), line("two"), Input::Finish],
                ),
                (
                    lb,
                    secret(config("bob", both.then_some(a_addr)), "pw", 2),
                    // A listener refuses lines until someone connects.
                    if both {
                        vec![line("hi alice"), Input::Finish]
                    } else {
                        vec![Input::Finish]
                    },
                ),
            )
            .await;
            assert_eq!(b.texts(), vec!["hi bob", "two"], "both: {both}");
            let expected: &[&str] = if both { &["hi alice"] } else { &[] };
            assert_eq!(a.texts(), expected);
            assert!(sas(&a).is_some());
            assert_eq!(sas(&a), sas(&b));
            assert_eq!(first_nick(&b).as_deref(), Some("alice"));
            assert_eq!(a_end.reason, EndReason::BothFinished);
            assert_eq!(b_end.reason, EndReason::BothFinished);
            assert!(!a_end.at_risk() && !b_end.at_risk(), "{a_end:?} {b_end:?}");
        }
    }

    #[tokio::test]
    async fn a_different_passphrase_closes_both_sides_with_lines_never_sent() {
        let la = listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let lb = listen("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let a_addr = la.local_addr();
        let ((a, a_end), (b, b_end)) = pair(
            (la, secret(config("alice", None), "one", 1), vec![]),
            (
                lb,
                secret(config("bob", Some(a_addr)), "two", 2),
                vec![line("can you read this?")],
            ),
        )
        .await;
        let wrong = HandshakeFailure::WrongPassphrase;
        assert_eq!(failure(&a), Some(wrong));
        assert_eq!(failure(&b), Some(wrong));
        assert_eq!(a_end.reason, EndReason::HandshakeFailed { failure: wrong });
        assert_eq!(b_end.reason, EndReason::HandshakeFailed { failure: wrong });
        assert!(a.texts().is_empty());
        assert_eq!(
            b_end.lines_unwritten, 1,
            "the line never left, not even sealed"
        );
        assert!(sas(&a).is_none() && sas(&b).is_none());
    }

    #[tokio::test]
    async fn a_close_is_seen_as_the_peer_leaving() {
        let la = listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let lb = listen("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let a_addr = la.local_addr();
        // Alice only listens and never types; Bob writes, then leaves.
        let ((a, a_end), (_b, b_end)) = pair(
            (la, config("alice", None), vec![]),
            (
                lb,
                config("bob", Some(a_addr)),
                vec![line("bye soon"), Input::Close],
            ),
        )
        .await;
        assert_eq!(a.texts(), vec!["bye soon"]);
        assert!(a.events.contains(&Event::PeerClosed));
        assert_eq!(a_end.reason, EndReason::PeerLeft);
        assert_eq!(b_end.reason, EndReason::Closed);
        assert!(!b_end.at_risk());
    }
}
