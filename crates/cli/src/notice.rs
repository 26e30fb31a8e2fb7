//! One description of what happened, for the line UI and the chat screen alike.
//!
//! [`describe`] turns a transport [`Event`] into a [`Notice`]: its kind and one sentence. The
//! line UI prints it on stderr (`udpchat: gap: ...`), the chat screen puts it in its history
//! (`[gap] ...`), and both say the same thing in the same words. Message numbers are shown as
//! people count, from 1 (`#1` is the first line), while the transport and the JSON output
//! number from 0 as the wire does; [`number`] is the one place that converts.
//!
//! The network decides how many events arrive, so a flood of crafted datagrams could bury the
//! screen and the terminal in notices. The [`Limiter`] is the one rule both interfaces apply to
//! every kind the network can repeat (gaps, duplicates, reordering, restarts, new peers, ignored
//! datagrams): at most [`SHOWN_PER_WINDOW`] of a kind in each [`WINDOW`], then a count of what
//! was held back. Nothing is lost: the transport's counters (`/stats`) count every one.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_reliable::{Event, HandshakeFailure};

use crate::chat::Mode;

/// What a notice is about, for its mark, its colour and whether an interface shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// News about the session, or something the user asked for.
    Info,
    /// Raw mode: peer messages that have not arrived (yet).
    Gap,
    /// Raw mode: a peer message that arrived twice.
    Duplicate,
    /// Raw mode: a peer message that arrived after a later one.
    Reordered,
    /// The peer restarted: a new session.
    Restart,
    /// Datagrams that were ignored (junk, foreign, stale).
    Dropped,
    /// Reliable mode: one of my messages was delivered (the line UI shows these with `-v`).
    Delivered,
    /// Reliable mode: one of my messages was given up on.
    Lost,
    /// Something went wrong.
    Error,
}

impl NoticeKind {
    /// The word that starts the line UI's notice of this kind (`udpchat: gap: ...`), for the
    /// kinds whose sentence needs it.
    pub fn tag(self) -> Option<&'static str> {
        match self {
            NoticeKind::Gap => Some("gap"),
            NoticeKind::Duplicate => Some("duplicate"),
            NoticeKind::Reordered => Some("reordered"),
            NoticeKind::Delivered => Some("delivered"),
            NoticeKind::Lost => Some("lost"),
            _ => None,
        }
    }
}

/// One event, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What it is about.
    pub kind: NoticeKind,
    /// One sentence, without a final full stop.
    pub text: String,
    /// Which flood it belongs to, if the network can repeat it at will.
    pub flood: Option<Flood>,
}

/// What [`describe`] needs to know about the chat.
pub struct Context<'a> {
    /// The transport.
    pub mode: Mode,
    /// Whether `--peer` was given, so a `Peer` event is the awaited answer, not a stranger
    /// writing first.
    pub peer_given: bool,
    /// How to name whoever sent a datagram: the screen uses the peer's nickname once known, the
    /// line UI the address. Must return text already made safe (see `crate::untrusted`).
    pub name: &'a dyn Fn(SocketAddr) -> String,
}

/// A message number as people count: the transport's number plus one (`u128`, so the largest
/// number a crafted datagram can carry still reads right).
pub fn number(n: u64) -> u128 {
    u128::from(n) + 1
}

/// The words for `event`; `None` for a message (shown as itself, not as a notice).
pub fn describe(event: &Event, cx: &Context<'_>) -> Option<Notice> {
    let notice = |kind, text: String, flood| Some(Notice { kind, text, flood });
    match event {
        Event::Message { .. } => None,
        Event::Gap { from, first, last } => notice(
            NoticeKind::Gap,
            gap_text(&(cx.name)(*from), *first, *last, 0),
            Some(Flood::Gap),
        ),
        Event::Duplicate { from, seq } => notice(
            NoticeKind::Duplicate,
            format!(
                "message #{} from {} arrived twice (a duplicate datagram; shown once)",
                number(*seq),
                (cx.name)(*from)
            ),
            Some(Flood::Duplicate),
        ),
        Event::Reordered { from, seq } => notice(
            NoticeKind::Reordered,
            format!(
                "message #{} from {} arrived late, after a later one: it is no longer missing",
                number(*seq),
                (cx.name)(*from)
            ),
            Some(Flood::Reordered),
        ),
        Event::Peer { addr, nick } => notice(
            NoticeKind::Info,
            peer_text(*addr, nick.as_deref(), cx),
            Some(Flood::Peer),
        ),
        // TCP mode: a connect attempt was refused or went unanswered; retried with backoff.
        Event::NoAnswer { to, tries, .. } if cx.mode == Mode::Tcp => notice(
            NoticeKind::Info,
            format!(
                "cannot connect to {} yet (refused or unanswered), retrying ({tries})",
                canonical(*to)
            ),
            None,
        ),
        // A handshake is retried at most `max_retries` times per attempt: no flood.
        Event::NoAnswer { to, tries, .. } => notice(
            NoticeKind::Info,
            no_answer_text(&canonical(*to).to_string(), u64::from(*tries)),
            None,
        ),
        Event::Delivered { id, rtt } => notice(
            NoticeKind::Delivered,
            match rtt {
                Some(rtt) => format!(
                    "message #{} (round trip {:.1} ms)",
                    number(id.0),
                    rtt.as_secs_f64() * 1000.0
                ),
                None => format!("message #{}", number(id.0)),
            },
            None,
        ),
        Event::Lost { id } => notice(
            NoticeKind::Lost,
            format!("message #{} was not delivered", number(id.0)),
            None,
        ),
        // TCP mode: a frame (or a --plain line) was skipped; the stream has no datagrams.
        Event::Dropped { from, detail, .. } if cx.mode == Mode::Tcp => notice(
            NoticeKind::Dropped,
            format!(
                "ignored a frame from {}: {}",
                canonical(*from),
                crate::untrusted::escape(detail)
            ),
            Some(Flood::Dropped),
        ),
        // TCP mode: the peer's Close frame; the connection ends with it (no new session).
        Event::PeerClosed if cx.mode == Mode::Tcp => notice(
            NoticeKind::Info,
            "the peer left: it said goodbye and closes the connection".to_owned(),
            None,
        ),
        _ => describe_session(event),
    }
}

/// The session-wide events: the peer left, restarted or went silent; drops; the end.
fn describe_session(event: &Event) -> Option<Notice> {
    let (kind, text, flood) = match event {
        // The transport keeps the peer's address after a session ends, and `send` opens a new
        // session to it: the words say what the next line will do (README: "How a chat ends").
        Event::PeerUnreachable => (
            NoticeKind::Error,
            "the peer stopped answering, so the session ended (what it had not acknowledged is \
             reported lost); a line you send now tries a new session"
                .to_owned(),
            None,
        ),
        Event::PeerRestarted => (
            NoticeKind::Restart,
            "the peer restarted: a new session began, numbered from #1 again".to_owned(),
            Some(Flood::Restart),
        ),
        Event::PeerClosed => (
            NoticeKind::Info,
            "the peer left the chat, so the session ended; a line you send now opens a new \
             session, delivered if the peer comes back, reported lost if it never answers"
                .to_owned(),
            None,
        ),
        Event::Closed => (NoticeKind::Info, "the session closed".to_owned(), None),
        // Once per session: the peer sends one Fin.
        Event::PeerFinished => (
            NoticeKind::Info,
            "the peer finished sending: everything it sent has arrived; you can go on sending \
             until your own input ends"
                .to_owned(),
            None,
        ),
        // Each change is one the peer made and sent in its session, acknowledged like a line.
        Event::NickChanged { old, new } => (
            NoticeKind::Info,
            format!(
                "{} is now known as {}",
                crate::untrusted::nick(old),
                crate::untrusted::nick(new)
            ),
            None,
        ),
        // Once per attempt of ours given up, else once.
        Event::TalkingToSelf { from } => (
            NoticeKind::Error,
            format!(
                "this chat is talking to itself: its own datagrams come back from {} (is --peer \
                 this chat's own address, or does a relay point back at it?)",
                canonical(*from)
            ),
            None,
        ),
        // The transport names each refused address once (and at most 16), so no flood limit.
        Event::TurnedAway { from, peer } => (
            NoticeKind::Error,
            format!(
                "turned away {}: already talking to {}",
                canonical(*from),
                canonical(*peer)
            ),
            None,
        ),
        // Once per session: the handshake happens once (a restarted peer's new one aside).
        Event::Secured { peer, sas } => (NoticeKind::Info, secured_text(*peer, sas), None),
        // Once: the endpoint closes after it.
        Event::HandshakeFailed { peer, reason } => (
            NoticeKind::Error,
            handshake_failed_text(*peer, *reason),
            None,
        ),
        Event::Dropped { from, detail, .. } => (
            NoticeKind::Dropped,
            format!(
                "ignored a datagram from {}: {}",
                canonical(*from),
                crate::untrusted::escape(detail)
            ),
            Some(Flood::Dropped),
        ),
        _ => return None,
    };
    Some(Notice { kind, text, flood })
}

/// An encrypted session began: the code to compare. The code is ours (digits and a space), not
/// the network's, so it needs no escaping.
pub fn secured_text(peer: SocketAddr, sas: &str) -> String {
    format!(
        "encrypted: {} holds the same passphrase; compare this code with theirs (by voice): {sas}",
        canonical(peer)
    )
}

/// Why an encrypted handshake failed, in the words README's exit-code table uses.
pub fn handshake_failed_text(peer: SocketAddr, reason: HandshakeFailure) -> String {
    match reason {
        HandshakeFailure::WrongPassphrase => {
            "the handshake failed: the peer uses a different passphrase (or is not udpchat)"
                .to_owned()
        }
        HandshakeFailure::NotEncrypted => format!(
            "the handshake failed: the peer is not encrypted ({} runs without --secret)",
            canonical(peer)
        ),
        HandshakeFailure::NoAnswer => format!(
            "the handshake failed: no answer from {} (is udpchat running there, with --secret?)",
            canonical(peer)
        ),
    }
}

fn peer_text(addr: SocketAddr, nick: Option<&str>, cx: &Context<'_>) -> String {
    let addr = canonical(addr);
    // Reliable mode learns the nickname in the handshake: name the peer at once.
    let who = match nick.filter(|n| !n.is_empty()) {
        Some(nick) => format!("{} at {addr}", crate::untrusted::nick(nick)),
        None => addr.to_string(),
    };
    match (cx.mode, cx.peer_given) {
        (Mode::Reliable, true) => format!("connected to {who}"),
        (Mode::Reliable, false) => format!("connected to {who} (they wrote first)"),
        (Mode::Raw, _) => format!("talking to {who} (they wrote first)"),
        (Mode::Tcp, true) => format!("connected to {who} (one TCP connection)"),
        (Mode::Tcp, false) => format!("{who} connected (one TCP connection)"),
    }
}

/// Why a line was not sent, in the words of the mode: TCP mode has nobody to send to until
/// someone connects (nobody "writes first" there).
pub fn refusal(mode: Mode, error: &udpchat_reliable::SendError) -> String {
    match (mode, error) {
        (Mode::Tcp, udpchat_reliable::SendError::NoPeer) => {
            "nobody has connected yet: give --peer, or wait until someone connects".to_owned()
        }
        _ => error.to_string(),
    }
}

/// What TCP mode can and cannot say about a line, for the banner, the greeting and `/mode`.
pub const TCP_HONESTY: &str =
    "tcp mode: a line you write is handed to the kernel (· sent to the kernel); TCP delivers \
     in order or breaks the connection, and never says when the peer's program read a line, \
     so no line is marked delivered or lost. /stats shows what the kernel knows (TCP_INFO)";

/// How a TCP session ended, in one sentence.
pub fn tcp_ending_text(ending: &udpchat_driver::tcp::Ending) -> String {
    use udpchat_driver::tcp::EndReason;
    match &ending.reason {
        EndReason::NeverConnected => "the chat ended before anyone connected".to_owned(),
        EndReason::Closed => {
            "the connection closed: we said goodbye and the peer closed its side".to_owned()
        }
        EndReason::LingerExpired => format!(
            "the connection closed without the peer closing its side within {} s",
            udpchat_driver::tcp::LINGER.as_secs()
        ),
        EndReason::PeerLeft => "the peer left, and the connection closed".to_owned(),
        EndReason::BothFinished => {
            "both sides finished sending, and the connection closed".to_owned()
        }
        EndReason::LeftEarly => {
            "we left before the peer finished sending (what it sends now is not read)".to_owned()
        }
        EndReason::PeerVanished => "the peer's side of the connection closed without a \
         goodbye: its program ended or was killed (its kernel closed the connection for it)"
            .to_owned(),
        EndReason::Reset => "the peer's kernel reset the connection: its program ended with \
         data unread, or the host restarted, and what it had not read was thrown away"
            .to_owned(),
        EndReason::TimedOut => "the kernel gave the connection up: what we wrote stayed \
         unacknowledged too long (--tcp-user-timeout, or the kernel's own retransmission \
         limit)"
            .to_owned(),
        EndReason::Failed { error } => format!("the connection failed: {error}"),
        EndReason::BadStream { error } => format!(
            "the peer sent something that is not udpchat's TCP framing ({error}), so the \
             connection was dropped (is it a --plain peer? then use --plain here too)"
        ),
        EndReason::HandshakeFailed { .. } => {
            "the encrypted handshake failed, so the connection was closed".to_owned()
        }
        EndReason::Unauthenticated { error } => format!(
            "the encrypted stream was tampered with ({}): a byte stream cannot be \
             resynchronised securely, so the connection was dropped and nothing after it was \
             shown",
            crate::untrusted::escape(error)
        ),
    }
}

/// Which lines written may not have arrived, and why; `None` if none (see `Ending::at_risk`).
pub fn tcp_at_risk_text(ending: &udpchat_driver::tcp::Ending) -> Option<String> {
    if !ending.at_risk() {
        return None;
    }
    let mut why = Vec::new();
    if ending.lines_unwritten > 0 {
        why.push(format!(
            "{} line(s) never left udpchat (the kernel had not taken them)",
            ending.lines_unwritten
        ));
    }
    if let Some(bytes) = ending.unacked_bytes.filter(|&b| b > 0) {
        why.push(format!(
            "the kernel still had {bytes} byte(s) we wrote unacknowledged by the peer"
        ));
    }
    if why.is_empty() {
        why.push("the connection broke after they were written".to_owned());
    }
    Some(format!(
        "{} line(s) written may not have arrived: {}",
        ending.lines_written + ending.lines_unwritten,
        why.join("; ")
    ))
}

/// A gap of messages `first..=last` from `who`, of which `arrived` turned up late since: raw
/// mode cannot know whether a missing message is lost or only late, so a gap is news that may
/// still change, and the words say so.
pub fn gap_text(who: &str, first: u64, last: u64, arrived: u128) -> String {
    let count = u128::from(last.saturating_sub(first)) + 1;
    let (a, b) = (number(first), number(last));
    let which = if count == 1 {
        format!("#{a}")
    } else {
        format!("#{a}–#{b}")
    };
    match (count, arrived) {
        (1, 0) => format!("message {which} from {who} has not arrived yet"),
        (_, 0) => format!("{count} messages from {who} have not arrived yet ({which})"),
        (1, _) => format!("message {which} from {who} was missing, and arrived late"),
        _ if arrived >= count => {
            format!("{count} messages from {who} were missing ({which}), and all arrived late")
        }
        _ => {
            let left = count - arrived;
            let verb = if left == 1 { "has" } else { "have" };
            format!(
                "{count} messages from {who} were missing ({which}): {arrived} arrived late, \
                 {left} {verb} not arrived yet"
            )
        }
    }
}

/// Opening a session to `to` (an address, or "the peer") for a line sent after the last one
/// ended: the transport keeps the peer's address and `send` starts a new handshake.
pub fn reopen_text(to: &str) -> String {
    format!(
        "opening a new session to {to} for this line: it is delivered if they answer, marked \
         lost if they never do"
    )
}

/// A handshake to `to` that has gone unanswered: resent `retries` times so far (the transport's
/// [`Event::NoAnswer`]).
pub fn no_answer_text(to: &str, retries: u64) -> String {
    format!("no answer from {to} yet, retrying ({retries})")
}

/// How a handshake that needed retries ended: `to` `answered`, or the transport gave up.
pub fn attempt_end_text(to: &str, retries: u64, answered: bool) -> String {
    let times = if retries == 1 { "retry" } else { "retries" };
    if answered {
        format!("{to} answered after {retries} {times}")
    } else {
        format!("no answer from {to}: gave up after {retries} {times}")
    }
}

/// Reliable mode: follows the handshakes from the transport's events: [`Event::NoAnswer`] for
/// each retry, `Peer` when the peer answered, `PeerUnreachable` when the transport gave up.
/// It also remembers that a session ended, so that the next line accepted is known to open a
/// new one (the transport keeps the peer's address and `send` starts a new handshake).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeWatch {
    /// An attempt is in progress.
    connecting: bool,
    /// Its retries so far.
    retries: u64,
    /// A session ended and no line has reopened one since.
    ended: bool,
}

impl HandshakeWatch {
    /// A watch for a reliable chat; `connecting` if it opens a session at once (`--peer`).
    pub fn new(connecting: bool) -> Self {
        HandshakeWatch {
            connecting,
            ..HandshakeWatch::default()
        }
    }

    /// Retries of the attempt in progress (0 when none is).
    pub fn retries(&self) -> u64 {
        if self.connecting {
            self.retries
        } else {
            0
        }
    }

    /// A line was accepted; true if it opens a new session (the last one had ended).
    pub fn accepted(&mut self) -> bool {
        if !std::mem::take(&mut self.ended) {
            return false;
        }
        self.connecting = true;
        self.retries = 0;
        true
    }

    /// An event; returns how the attempt in progress ended (whether the peer answered, and
    /// after how many retries) if it had needed retries.
    pub fn event(&mut self, event: &Event) -> Option<(bool, u64)> {
        let answered = match event {
            Event::NoAnswer { tries, .. } => {
                self.connecting = true;
                self.retries = u64::from(*tries);
                return None;
            }
            Event::Peer { .. } => true,
            // Our own Hello came back: the transport gave the attempt up.
            Event::PeerUnreachable | Event::PeerClosed | Event::TalkingToSelf { .. } => {
                self.ended = true;
                false
            }
            Event::Closed => {
                self.connecting = false;
                return None;
            }
            _ => return None,
        };
        let retries = std::mem::take(&mut self.retries);
        (std::mem::take(&mut self.connecting) && retries > 0).then_some((answered, retries))
    }
}

/// `addr` as people write it: an IPv4 peer reached through an IPv6 socket (`[::ffff:1.2.3.4]`)
/// is shown as plain IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Notices of a kind shown in one [`WINDOW`]; the rest of the window's are counted.
pub const SHOWN_PER_WINDOW: u32 = 10;

/// How long a window of notices lasts, from the first notice of its kind.
pub const WINDOW: Duration = Duration::from_secs(10);

/// A kind of notice the network can repeat as often as it likes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flood {
    /// Gaps.
    Gap,
    /// Duplicates.
    Duplicate,
    /// Late arrivals.
    Reordered,
    /// Peer restarts.
    Restart,
    /// A new peer.
    Peer,
    /// Ignored datagrams.
    Dropped,
}

impl Flood {
    const ALL: [Flood; 6] = [
        Flood::Gap,
        Flood::Duplicate,
        Flood::Reordered,
        Flood::Restart,
        Flood::Peer,
        Flood::Dropped,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn noun(self) -> &'static str {
        match self {
            Flood::Gap => "gap notices",
            Flood::Duplicate => "duplicate notices",
            Flood::Reordered => "reordering notices",
            Flood::Restart => "restart notices",
            Flood::Peer => "new-peer notices",
            Flood::Dropped => "ignored datagrams",
        }
    }

    /// The kind of notice that reports held-back notices of this flood.
    pub fn kind(self) -> NoticeKind {
        match self {
            Flood::Gap => NoticeKind::Gap,
            Flood::Duplicate => NoticeKind::Duplicate,
            Flood::Reordered => NoticeKind::Reordered,
            Flood::Restart => NoticeKind::Restart,
            Flood::Peer => NoticeKind::Info,
            Flood::Dropped => NoticeKind::Dropped,
        }
    }

    /// Said once when notices of this kind start being held back.
    pub fn first_held_text(self) -> String {
        format!(
            "more {} are counted, not shown, for up to {} s (/stats has the counts)",
            self.noun(),
            WINDOW.as_secs()
        )
    }

    /// How many were held back.
    pub fn held_text(self, count: u64) -> String {
        format!(
            "{count} more {} were not shown (/stats has the counts)",
            self.noun()
        )
    }
}

/// What to do with one notice of a flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Show it.
    Show,
    /// Hold it back: it is the `count`th held back in this window.
    Held {
        /// How many of this kind were held back in this window so far, this one included.
        count: u64,
    },
}

/// A window that ended with notices held back: `count` of `flood`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Which kind.
    pub flood: Flood,
    /// How many were not shown.
    pub count: u64,
}

impl Summary {
    /// The sentence.
    pub fn text(self) -> String {
        self.flood.held_text(self.count)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: Option<Instant>,
    shown: u32,
    held: u64,
}

/// At most [`SHOWN_PER_WINDOW`] notices of each [`Flood`] per [`WINDOW`]. Time comes in as an
/// argument, so tests move it by hand; the windows start at a kind's first notice, so a quiet
/// chat shows every notice.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    windows: [Window; Flood::ALL.len()],
}

impl Limiter {
    /// Decides about one notice of `flood` at `now`; if that ends a window with notices held
    /// back, also returns its summary (to be said first).
    pub fn admit(&mut self, flood: Flood, now: Instant) -> (Option<Summary>, Verdict) {
        let window = &mut self.windows[flood.index()];
        let mut summary = None;
        let expired = window
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if expired {
            if window.held > 0 {
                summary = Some(Summary {
                    flood,
                    count: window.held,
                });
            }
            *window = Window {
                start: Some(now),
                shown: 0,
                held: 0,
            };
        }
        if window.shown < SHOWN_PER_WINDOW {
            window.shown += 1;
            return (summary, Verdict::Show);
        }
        window.held = window.held.saturating_add(1);
        (summary, Verdict::Held { count: window.held })
    }

    /// The summaries of the windows still holding notices back (at the end of the chat).
    pub fn flush(&mut self) -> Vec<Summary> {
        Flood::ALL
            .into_iter()
            .filter_map(|flood| {
                let window = &mut self.windows[flood.index()];
                let count = std::mem::take(&mut window.held);
                (count > 0).then_some(Summary { flood, count })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use udpchat_reliable::{DropCause, MessageId};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn by_address(addr: SocketAddr) -> String {
        canonical(addr).to_string()
    }

    fn cx(mode: Mode, peer_given: bool) -> Context<'static> {
        Context {
            mode,
            peer_given,
            name: &by_address,
        }
    }

    fn text(event: Event, cx: &Context<'_>) -> String {
        describe(&event, cx).unwrap().text
    }

    #[test]
    fn numbers_count_from_one_in_every_notice() {
        let raw = cx(Mode::Raw, true);
        let from = addr(9);
        assert_eq!(
            text(
                Event::Gap {
                    from,
                    first: 1,
                    last: 2
                },
                &raw
            ),
            "2 messages from 127.0.0.1:9 have not arrived yet (#2–#3)"
        );
        assert_eq!(
            text(
                Event::Gap {
                    from,
                    first: 0,
                    last: 0
                },
                &raw
            ),
            "message #1 from 127.0.0.1:9 has not arrived yet"
        );
        assert!(text(Event::Duplicate { from, seq: 4 }, &raw).starts_with("message #5 "));
        assert!(text(Event::Reordered { from, seq: 0 }, &raw).starts_with("message #1 "));
        let delivered = Event::Delivered {
            id: MessageId(22),
            rtt: Some(Duration::from_micros(18_240)),
        };
        assert_eq!(text(delivered, &raw), "message #23 (round trip 18.2 ms)");
        assert_eq!(
            text(Event::Lost { id: MessageId(0) }, &raw),
            "message #1 was not delivered"
        );
        let huge = Event::Gap {
            from,
            first: u64::MAX,
            last: u64::MAX,
        };
        assert!(text(huge, &raw).contains("#18446744073709551616 "));
        let all = Event::Gap {
            from,
            first: 0,
            last: u64::MAX,
        };
        assert!(text(all, &raw).starts_with("18446744073709551616 messages"));
    }

    #[test]
    fn a_gap_says_not_yet_and_is_rewritten_as_late_ones_arrive() {
        assert_eq!(
            gap_text("al", 1, 2, 0),
            "2 messages from al have not arrived yet (#2–#3)"
        );
        assert_eq!(
            gap_text("al", 1, 2, 1),
            "2 messages from al were missing (#2–#3): 1 arrived late, 1 has not arrived yet"
        );
        assert_eq!(
            gap_text("al", 1, 2, 2),
            "2 messages from al were missing (#2–#3), and all arrived late"
        );
        assert_eq!(
            gap_text("al", 4, 4, 1),
            "message #5 from al was missing, and arrived late"
        );
    }

    #[test]
    fn the_peer_is_announced_once_in_words_that_fit_the_mode() {
        let from = addr(7);
        let event = || Event::Peer {
            addr: from,
            nick: None,
        };
        assert_eq!(
            text(event(), &cx(Mode::Reliable, true)),
            "connected to 127.0.0.1:7"
        );
        // Reliable mode names the peer as soon as the handshake is done.
        let named = Event::Peer {
            addr: from,
            nick: Some("bob".into()),
        };
        assert_eq!(
            text(named, &cx(Mode::Reliable, true)),
            "connected to bob at 127.0.0.1:7"
        );
        assert_eq!(
            text(event(), &cx(Mode::Reliable, false)),
            "connected to 127.0.0.1:7 (they wrote first)"
        );
        assert_eq!(
            text(event(), &cx(Mode::Raw, false)),
            "talking to 127.0.0.1:7 (they wrote first)"
        );
    }

    #[test]
    fn half_close_nickname_retry_and_self_talk_notices() {
        let reliable = cx(Mode::Reliable, true);
        assert!(text(Event::PeerFinished, &reliable).starts_with("the peer finished sending"));
        assert_eq!(
            text(
                Event::NickChanged {
                    old: "alice".into(),
                    new: "al".into()
                },
                &reliable
            ),
            "alice is now known as al"
        );
        assert_eq!(
            text(
                Event::NoAnswer {
                    to: addr(9),
                    tries: 3,
                    next_in: Duration::from_secs(8)
                },
                &reliable
            ),
            "no answer from 127.0.0.1:9 yet, retrying (3)"
        );
        assert!(text(Event::TalkingToSelf { from: addr(9) }, &reliable)
            .starts_with("this chat is talking to itself"));
    }

    #[test]
    fn the_handshake_watch_follows_the_transport_s_retries() {
        let mut watch = HandshakeWatch::new(true);
        let retry = |tries| Event::NoAnswer {
            to: addr(9),
            tries,
            next_in: Duration::from_secs(1),
        };
        assert_eq!(watch.event(&retry(1)), None);
        assert_eq!(watch.event(&retry(2)), None);
        assert_eq!(watch.retries(), 2);
        let peer = Event::Peer {
            addr: addr(9),
            nick: None,
        };
        assert_eq!(watch.event(&peer), Some((true, 2)));
        assert_eq!(watch.retries(), 0);
        // The session ends; the next line opens a new one, which the transport gives up on.
        assert_eq!(watch.event(&Event::PeerClosed), None);
        assert!(watch.accepted());
        assert!(!watch.accepted());
        assert_eq!(watch.event(&retry(1)), None);
        assert_eq!(watch.event(&Event::PeerUnreachable), Some((false, 1)));
    }

    #[test]
    fn session_events_and_drops_are_one_sentence_each() {
        let raw = cx(Mode::Raw, true);
        assert!(describe(
            &Event::Message {
                from: addr(1),
                nick: "a".into(),
                seq: None,
                text: "x".into()
            },
            &raw
        )
        .is_none());
        let restarted = describe(&Event::PeerRestarted, &raw).unwrap();
        assert_eq!(restarted.kind, NoticeKind::Restart);
        assert_eq!(restarted.flood, Some(Flood::Restart));
        let dropped = Event::Dropped {
            from: "[::ffff:127.0.0.1]:5".parse().unwrap(),
            cause: DropCause::Malformed,
            detail: "bad magic [68, 69]: not a udpchat datagram\u{1b}".into(),
        };
        assert_eq!(
            text(dropped, &raw),
            "ignored a datagram from 127.0.0.1:5: bad magic [68, 69]: not a udpchat \
             datagram\\u{1b}"
        );
        // The end of a session says what the next line does, since the chat goes on.
        assert!(text(Event::PeerClosed, &raw)
            .starts_with("the peer left the chat, so the session ended; a line you send now"));
        assert!(text(Event::PeerUnreachable, &raw).contains("a line you send now tries a new"));
        let turned = Event::TurnedAway {
            from: "127.0.0.1:9".parse().unwrap(),
            peer: "127.0.0.1:7".parse().unwrap(),
        };
        assert_eq!(
            text(turned, &raw),
            "turned away 127.0.0.1:9: already talking to 127.0.0.1:7"
        );
    }

    #[test]
    fn the_limiter_shows_a_burst_then_counts_then_summarises_each_window() {
        let mut limiter = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..SHOWN_PER_WINDOW {
            assert_eq!(limiter.admit(Flood::Gap, t0), (None, Verdict::Show));
        }
        assert_eq!(
            limiter.admit(Flood::Gap, t0),
            (None, Verdict::Held { count: 1 })
        );
        assert_eq!(
            limiter.admit(Flood::Gap, t0),
            (None, Verdict::Held { count: 2 })
        );
        // Another kind has its own window.
        assert_eq!(limiter.admit(Flood::Dropped, t0), (None, Verdict::Show));
        // Still inside the window: held.
        let later = t0 + WINDOW - Duration::from_millis(1);
        assert_eq!(
            limiter.admit(Flood::Gap, later),
            (None, Verdict::Held { count: 3 })
        );
        // The next window starts with the summary of the last one, and shows again.
        let next = t0 + WINDOW;
        let summary = Summary {
            flood: Flood::Gap,
            count: 3,
        };
        assert_eq!(
            limiter.admit(Flood::Gap, next),
            (Some(summary), Verdict::Show)
        );
        assert_eq!(
            summary.text(),
            "3 more gap notices were not shown (/stats has the counts)"
        );
        for _ in 1..SHOWN_PER_WINDOW + 5 {
            limiter.admit(Flood::Gap, next);
        }
        assert_eq!(
            limiter.flush(),
            vec![Summary {
                flood: Flood::Gap,
                count: 5
            }]
        );
        assert_eq!(limiter.flush(), vec![], "said once");
    }

    #[test]
    fn tcp_mode_words_retries_endings_and_what_may_be_missing() {
        use udpchat_driver::tcp::{EndReason, Ending, KernelView};
        let tcp = cx(Mode::Tcp, true);
        let retry = Event::NoAnswer {
            to: "[::ffff:127.0.0.1]:2323".parse().unwrap(),
            tries: 2,
            next_in: Duration::from_millis(500),
        };
        assert_eq!(
            text(retry, &tcp),
            "cannot connect to 127.0.0.1:2323 yet (refused or unanswered), retrying (2)"
        );
        let ending = |reason, written, unwritten, unacked| Ending {
            reason,
            lines_written: written,
            lines_unwritten: unwritten,
            unacked_bytes: unacked,
            kernel: KernelView::Closed,
            counters: Default::default(),
        };
        // Clean: nothing to say, whatever was written.
        assert_eq!(
            tcp_at_risk_text(&ending(EndReason::Closed, 5, 0, Some(0))),
            None
        );
        assert_eq!(
            tcp_at_risk_text(&ending(EndReason::LingerExpired, 5, 1, Some(30))),
            Some(
                "6 line(s) written may not have arrived: 1 line(s) never left udpchat (the \
                 kernel had not taken them); the kernel still had 30 byte(s) we wrote \
                 unacknowledged by the peer"
                    .to_owned()
            )
        );
        let reset = ending(EndReason::Reset, 2, 0, None);
        assert!(tcp_at_risk_text(&reset)
            .unwrap()
            .ends_with("the connection broke after they were written"));
        // A reset with nothing written of ours: nothing of ours can be missing.
        assert_eq!(
            tcp_at_risk_text(&ending(EndReason::Reset, 0, 0, None)),
            None
        );
        assert!(tcp_ending_text(&reset).contains("reset the connection"));
        // --secret: a tampered stream is named, with the peer's part escaped.
        let tampered = ending(
            EndReason::Unauthenticated {
                error: "a sealed frame out of sequence\u{1b}[2J".into(),
            },
            1,
            0,
            None,
        );
        let words = tcp_ending_text(&tampered);
        assert!(
            words.starts_with("the encrypted stream was tampered with"),
            "{words}"
        );
        assert!(!words.contains('\u{1b}'), "{words}");
        assert!(
            tcp_at_risk_text(&tampered).is_some(),
            "the connection broke"
        );
        let failed = ending(
            EndReason::HandshakeFailed {
                failure: udpchat_reliable::HandshakeFailure::WrongPassphrase,
            },
            0,
            2,
            None,
        );
        assert!(tcp_ending_text(&failed).contains("handshake failed"));
    }
}
