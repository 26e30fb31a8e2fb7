//! Line-mode output: what the chat prints, in text or JSON.
//!
//! stdout carries what was received, so it can be piped: in `text` format one `<nick> text` line
//! per message line (`<address> text` in plain mode, where there is no nick), in `json` format
//! one JSON object per line for *every* event (`message`, `gap`, `duplicate`, `reordered`,
//! `peer`, `dropped`, ...), tagged by its `event` field. stderr carries diagnostics, always as
//! text lines starting `udpchat:`, worded by [`crate::notice`] as the chat screen words them;
//! in `text` format that includes the gap, duplicate and reordered reports, so stdout stays
//! exactly what the other side wrote. `delivered` reports only come with `--verbose`: a line
//! each would bury everything else.
//!
//! Text from the network is shown safely ([`crate::untrusted`]): control, bidi and invisible
//! format characters are printed escaped, nicknames are cut to 32 characters, and a message with
//! several lines prints each under the sender's name, so no datagram can fake a line from
//! someone else. JSON numbers messages from 0 as the transport does; text counts from 1.
//!
//! Counters (`/stats`, `--stats`) are printed as a small table of what the mode has
//! ([`crate::stats`]). In reliable mode the line UI also says what the handshake does: each retry
//! is the transport's `NoAnswer` event ("no answer from ADDR yet, retrying (N)"), and
//! [`HandshakeWatch`] adds how an attempt that needed retries ended and "opening a new session
//! to ADDR" for a line sent after a session ended (see "How a chat ends" in the README).
//!
//! The network decides how many notices there are, so the text notices go through the
//! [`Limiter`]: ten of a kind per ten seconds, then a count. JSON keeps every gap, duplicate and
//! reordered event (a script may count them; each is one line for one datagram, like a message),
//! and only its ignored-datagram reports are limited, with the counts on stderr.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use clap::ValueEnum;
use udpchat_driver::tcp::{Ending, TcpSink, TcpStats};
use udpchat_driver::Sink;
use udpchat_reliable::{Event, MessageId, NickError, SendError, Stats};

use crate::chat::Mode;
use crate::notice::{
    self, canonical, Context, Flood, HandshakeWatch, Limiter, Notice, NoticeKind, Verdict,
};
use crate::untrusted;

/// How received messages are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `<nick> text`, one line per message line.
    Text,
    /// One JSON object per event per line.
    Json,
}

/// Prints the chat's events; the driver's [`Sink`] for line mode.
#[derive(Debug)]
pub struct Output {
    format: Format,
    mode: Mode,
    peer_given: bool,
    verbose: bool,
    /// Raw mode's `--plain` (no sequence numbers, so fewer counters to show).
    plain: bool,
    limiter: Limiter,
    /// Reliable mode: the handshakes, followed from the transport's events (see
    /// [`Output::watching`]).
    handshake: Option<HandshakeWatch>,
    /// The peer's address, once known, for the handshake notices.
    peer: Option<SocketAddr>,
    /// Encryption: the handshake failed (the chat then exits with its own code).
    handshake_failed: bool,
}

impl Output {
    /// Output in `format` for a chat in `mode`; `peer_given` if `--peer` was, `verbose` to
    /// report every delivery.
    pub fn new(format: Format, mode: Mode, peer_given: bool, verbose: bool) -> Self {
        Output {
            format,
            mode,
            peer_given,
            verbose,
            plain: false,
            limiter: Limiter::default(),
            handshake: None,
            peer: None,
            handshake_failed: false,
        }
    }

    /// Whether an encrypted handshake failed (`Event::HandshakeFailed`).
    pub fn handshake_failed(&self) -> bool {
        self.handshake_failed
    }

    /// Reliable mode: says how a handshake that needed retries ended ("ADDR answered after N
    /// retries"; each retry is the transport's `NoAnswer` event), and "opening a new session"
    /// for a line sent after the session ended. `peer` is `--peer`, if given (a session opens
    /// at once).
    pub fn watching(self, peer: Option<SocketAddr>) -> Self {
        Output {
            handshake: Some(HandshakeWatch::new(peer.is_some())),
            peer,
            ..self
        }
    }

    fn peer_text(&self) -> String {
        self.peer
            .map_or_else(|| "the peer".into(), |a| canonical(a).to_string())
    }

    /// What a line accepted by the transport prints: a note if it opens a new session.
    fn accepted_lines(&mut self) -> Printed {
        let mut out = Printed::default();
        if self
            .handshake
            .as_mut()
            .is_some_and(HandshakeWatch::accepted)
        {
            out.err(notice::reopen_text(&self.peer_text()));
        }
        out
    }

    /// The same, for raw mode's `--plain` if `plain`.
    pub fn plain(self, plain: bool) -> Self {
        Output { plain, ..self }
    }

    /// Prints the counters the mode has to stderr, as a small table (see [`crate::stats`]).
    pub fn print_stats(&self, stats: &Stats) {
        print_stats_table(stats, self.mode, self.plain);
    }

    /// Says how many notices were held back and not yet counted aloud (at the end of the chat).
    pub fn flush(&mut self) {
        let mut out = Printed::default();
        self.flush_into(&mut out);
        out.print();
    }

    fn flush_into(&mut self, out: &mut Printed) {
        for summary in self.limiter.flush() {
            out.err(summary.text());
        }
    }

    /// What `event`, arriving at `now`, prints.
    fn lines(&mut self, event: Event, now: Instant) -> Printed {
        let mut out = Printed::default();
        if let Event::Peer { addr, .. } = event {
            self.peer = Some(addr);
        }
        if let Event::HandshakeFailed { .. } = event {
            self.handshake_failed = true;
        }
        if let Some((answered, retries)) = self.handshake.as_mut().and_then(|w| w.event(&event)) {
            out.err(notice::attempt_end_text(
                &self.peer_text(),
                retries,
                answered,
            ));
        }
        match self.format {
            Format::Text => self.text(event, now, &mut out),
            Format::Json => self.json(event, now, &mut out),
        }
        out
    }

    /// Whether to show a notice of `flood` at `now`; adds what the [`Limiter`] has to say.
    fn admit(&mut self, flood: Flood, now: Instant, out: &mut Printed) -> bool {
        let (summary, verdict) = self.limiter.admit(flood, now);
        if let Some(summary) = summary {
            out.err(summary.text());
        }
        match verdict {
            Verdict::Show => true,
            Verdict::Held { count } => {
                if count == 1 {
                    out.err(flood.first_held_text());
                }
                false
            }
        }
    }

    fn describe(&self, event: &Event) -> Option<Notice> {
        let cx = Context {
            mode: self.mode,
            peer_given: self.peer_given,
            name: &|addr| canonical(addr).to_string(),
        };
        notice::describe(event, &cx)
    }

    fn text(&mut self, event: Event, now: Instant, out: &mut Printed) {
        if let Event::Message {
            from, nick, text, ..
        } = &event
        {
            let who = if nick.is_empty() {
                canonical(*from).to_string()
            } else {
                untrusted::nick(nick)
            };
            for line in text.split('\n') {
                out.lines.push((
                    Stream::Stdout,
                    format!("<{who}> {}", untrusted::escape(line)),
                ));
            }
            return;
        }
        let Some(notice) = self.describe(&event) else {
            return;
        };
        let shown = match (&event, notice.kind) {
            // The chat's end needs no line of its own, only the counts still owed.
            (Event::Closed, _) => {
                self.flush_into(out);
                false
            }
            (_, NoticeKind::Delivered) => self.verbose,
            _ => notice.flood.is_none_or(|flood| self.admit(flood, now, out)),
        };
        if shown {
            out.err(line_text(&notice));
        }
    }

    fn json(&mut self, event: Event, now: Instant, out: &mut Printed) {
        if matches!(event, Event::Dropped { .. }) && !self.admit(Flood::Dropped, now, out) {
            return;
        }
        if matches!(event, Event::Closed) {
            self.flush_into(out);
        }
        match serde_json::to_string(&canonical_event(event)) {
            Ok(line) => out
                .lines
                .push((Stream::Stdout, untrusted::escape_json(line))),
            Err(e) => out.err(format!("cannot print an event as JSON: {e}")),
        }
    }
}

/// Which stream a line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// The lines one event prints, in order; kept apart from the printing so tests can read them.
#[derive(Debug, Default)]
struct Printed {
    lines: Vec<(Stream, String)>,
}

impl Printed {
    /// A diagnostic: `udpchat: ` and the text, on stderr.
    fn err(&mut self, text: String) {
        self.lines
            .push((Stream::Stderr, format!("udpchat: {text}")));
    }

    fn print(self) {
        for (stream, line) in self.lines {
            // A closed stdout or stderr (the reader went away) must not end or crash the chat.
            let _ = match stream {
                Stream::Stdout => writeln!(io::stdout().lock(), "{line}"),
                Stream::Stderr => writeln!(io::stderr().lock(), "{line}"),
            };
        }
    }
}

/// Names the messages reliable mode did not deliver, on stderr, and returns the exit code: 3 if
/// there were any (a reliable chat never exits 0 having lost a message), else success. The line
/// UI and the chat screen (after restoring the terminal) say it in these same words.
pub fn report_undelivered(undelivered: &[(MessageId, String)]) -> ExitCode {
    if undelivered.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "udpchat: {} message(s) were not delivered:",
        undelivered.len()
    );
    for (id, text) in undelivered {
        eprintln!(
            "udpchat: undelivered: message #{}: {}",
            notice::number(id.0),
            untrusted::escape(text)
        );
    }
    ExitCode::from(EXIT_UNDELIVERED)
}

/// Exit code when messages were left undelivered in reliable mode.
pub const EXIT_UNDELIVERED: u8 = 3;

/// A notice as the line UI prints it after `udpchat: `.
pub fn line_text(notice: &Notice) -> String {
    match notice.kind.tag() {
        Some(tag) => format!("{tag}: {}", notice.text),
        None => notice.text.clone(),
    }
}

impl Sink for Output {
    fn event(&mut self, event: Event) {
        self.lines(event, Instant::now()).print();
    }

    fn accepted(&mut self, _id: MessageId, _line: &str) {
        self.accepted_lines().print();
    }

    fn refused(&mut self, _line: &str, error: &SendError) {
        eprintln!("udpchat: not sent: {}", notice::refusal(self.mode, error));
    }

    fn nick(&mut self, nick: &str, result: Result<(), NickError>) {
        match result {
            Ok(()) => eprintln!("udpchat: you are now {nick}: your next lines carry that name"),
            Err(e) => eprintln!("udpchat: nickname not changed: {e}"),
        }
    }

    fn socket_error(&mut self, error: &io::Error) {
        eprintln!("udpchat: socket error (the chat goes on): {error}");
    }

    fn stats(&mut self, stats: &Stats) {
        self.print_stats(stats);
    }
}

/// TCP mode's reports: the counters with the kernel's figures, and how the connection ended
/// (on stderr; in `json` format also as `tcp_stats` and `tcp_ended` events on stdout).
impl TcpSink for Output {
    fn tcp_stats(&mut self, stats: &TcpStats) {
        self.print_tcp_stats(stats);
        // JSON also gets the figures as an event, for scripts (the table is for people).
        if self.format == Format::Json {
            let mut value = serde_json::to_value(stats).unwrap_or_default();
            value["event"] = "tcp_stats".into();
            let mut out = Printed::default();
            out.lines.push((Stream::Stdout, value.to_string()));
            out.print();
        }
    }

    fn ended(&mut self, ending: &Ending) {
        let mut out = Printed::default();
        if self.format == Format::Json {
            let mut value = serde_json::to_value(ending).unwrap_or_default();
            value["event"] = "tcp_ended".into();
            out.lines.push((Stream::Stdout, value.to_string()));
        }
        out.err(notice::tcp_ending_text(ending));
        out.print();
    }
}

impl Output {
    /// Prints TCP mode's counters and the kernel's figures to stderr, as a table.
    pub fn print_tcp_stats(&self, stats: &TcpStats) {
        print_tcp_stats_table(stats, self.plain);
    }
}

/// Prints TCP mode's counters and the kernel's figures to stderr, as a table.
pub fn print_tcp_stats_table(stats: &TcpStats, plain: bool) {
    write_table(crate::stats::tcp_lines(stats, plain));
}

/// Prints the counters `mode` has to stderr as a table, each line starting `udpchat: `, in one
/// write so that nothing else printed meanwhile can land inside it.
pub fn print_stats_table(stats: &Stats, mode: Mode, plain: bool) {
    write_table(crate::stats::lines(stats, mode, plain));
}

/// Prints the lines of a table to stderr, each starting `udpchat: `, in one write so that
/// nothing else printed meanwhile can land inside it.
fn write_table(lines: Vec<String>) {
    let mut text = String::new();
    for line in lines {
        let _ = writeln!(text, "udpchat: {line}");
    }
    // A closed stderr must not end the chat.
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

fn canonical_event(event: Event) -> Event {
    match event {
        Event::Message {
            from,
            nick,
            seq,
            text,
        } => Event::Message {
            from: canonical(from),
            nick: untrusted::truncate_nick(&nick).into_owned(),
            seq,
            text,
        },
        Event::Gap { from, first, last } => Event::Gap {
            from: canonical(from),
            first,
            last,
        },
        Event::Duplicate { from, seq } => Event::Duplicate {
            from: canonical(from),
            seq,
        },
        Event::Reordered { from, seq } => Event::Reordered {
            from: canonical(from),
            seq,
        },
        Event::Peer { addr, nick } => Event::Peer {
            addr: canonical(addr),
            nick: nick.map(|n| untrusted::truncate_nick(&n).into_owned()),
        },
        Event::NickChanged { old, new } => Event::NickChanged {
            old: untrusted::truncate_nick(&old).into_owned(),
            new: untrusted::truncate_nick(&new).into_owned(),
        },
        Event::NoAnswer { to, tries, next_in } => Event::NoAnswer {
            to: canonical(to),
            tries,
            next_in,
        },
        Event::TalkingToSelf { from } => Event::TalkingToSelf {
            from: canonical(from),
        },
        Event::TurnedAway { from, peer } => Event::TurnedAway {
            from: canonical(from),
            peer: canonical(peer),
        },
        Event::Dropped {
            from,
            cause,
            detail,
        } => Event::Dropped {
            from: canonical(from),
            cause,
            detail,
        },
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn mapped_ipv4_addresses_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:2323".parse().unwrap();
        assert_eq!(canonical(mapped).to_string(), "10.0.0.1:2323");
        let v6: SocketAddr = "[::1]:2323".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn a_message_serializes_with_the_promised_fields() {
        let event = Event::Message {
            from: "[::ffff:127.0.0.1]:9".parse().unwrap(),
            nick: "bob".into(),
            seq: Some(4),
            text: "hi".into(),
        };
        let json = serde_json::to_value(canonical_event(event)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event": "message", "from": "127.0.0.1:9", "nick": "bob", "seq": 4, "text": "hi"
            })
        );
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// What `events` print, one `(stdout?, line)` per line, all at the same instant.
    fn printed(output: &mut Output, events: Vec<Event>) -> Vec<(bool, String)> {
        let now = Instant::now();
        events
            .into_iter()
            .flat_map(|event| output.lines(event, now).lines)
            .map(|(stream, line)| (stream == Stream::Stdout, line))
            .collect()
    }

    fn message(nick: &str, text: &str) -> Event {
        Event::Message {
            from: addr(9),
            nick: nick.into(),
            seq: Some(0),
            text: text.into(),
        }
    }

    #[test]
    fn text_from_the_network_is_escaped_and_long_nicknames_are_cut() {
        let mut out = Output::new(Format::Text, Mode::Raw, true, false);
        let long = "n".repeat(40);
        let lines = printed(
            &mut out,
            vec![
                message("alice", "abc\u{202e}dcba"),
                message("alice", "x\u{2028}<bob> after LS\n<bob> second line"),
                message(&long, "\u{1b}[31mred\u{9b}"),
            ],
        );
        let expected = [
            "<alice> abc\\u{202e}dcba".to_owned(),
            "<alice> x\\u{2028}<bob> after LS".to_owned(),
            "<alice> <bob> second line".to_owned(),
            format!("<{}…> \\u{{1b}}[31mred\\u{{9b}}", "n".repeat(32)),
        ];
        assert_eq!(
            lines,
            expected.map(|line| (true, line)).to_vec(),
            "each line under the sender's name, nothing raw"
        );
    }

    #[test]
    fn json_escapes_c1_controls_and_keeps_the_text() {
        let mut out = Output::new(Format::Json, Mode::Raw, true, false);
        let text = "a\u{85}<bob> after NEL \u{9b}31m";
        let lines = printed(&mut out, vec![message(&"é".repeat(40), text)]);
        assert_eq!(lines.len(), 1);
        let (stdout, line) = &lines[0];
        assert!(stdout);
        assert!(
            !line.contains('\u{85}') && !line.contains('\u{9b}'),
            "{line}"
        );
        assert!(
            line.contains("\\u0085") && line.contains("\\u009b"),
            "{line}"
        );
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["text"], text);
        assert_eq!(value["nick"], format!("{}…", "é".repeat(32)));
    }

    #[test]
    fn deliveries_are_reported_only_when_verbose_and_numbered_from_one() {
        let delivered = || Event::Delivered {
            id: MessageId(22),
            rtt: Some(std::time::Duration::from_micros(18_200)),
        };
        let mut quiet = Output::new(Format::Text, Mode::Reliable, true, false);
        assert_eq!(printed(&mut quiet, vec![delivered()]), vec![]);
        let lost = printed(&mut quiet, vec![Event::Lost { id: MessageId(0) }]);
        assert_eq!(
            lost,
            vec![(false, "udpchat: lost: message #1 was not delivered".into())]
        );
        let mut verbose = Output::new(Format::Text, Mode::Reliable, true, true);
        assert_eq!(
            printed(&mut verbose, vec![delivered()]),
            vec![(
                false,
                "udpchat: delivered: message #23 (round trip 18.2 ms)".into()
            )]
        );
    }

    #[test]
    fn the_peer_is_announced_once_and_in_the_words_of_the_mode() {
        let peer = || Event::Peer {
            addr: addr(7),
            nick: None,
        };
        let mut with_peer = Output::new(Format::Text, Mode::Reliable, true, false);
        assert_eq!(
            printed(&mut with_peer, vec![peer()]),
            vec![(false, "udpchat: connected to 127.0.0.1:7".into())]
        );
        let mut listener = Output::new(Format::Text, Mode::Raw, false, false);
        assert_eq!(
            printed(&mut listener, vec![peer()]),
            vec![(
                false,
                "udpchat: talking to 127.0.0.1:7 (they wrote first)".into()
            )]
        );
    }

    #[test]
    fn a_flood_of_notices_prints_ten_of_each_kind_then_counts() {
        let mut out = Output::new(Format::Text, Mode::Raw, true, false);
        let mut events = Vec::new();
        for seq in 0..1000u64 {
            events.push(Event::Gap {
                from: addr(9),
                first: seq * 3,
                last: seq * 3,
            });
            events.push(Event::Duplicate { from: addr(9), seq });
            events.push(Event::Reordered { from: addr(9), seq });
            events.push(Event::PeerRestarted);
            events.push(Event::Dropped {
                from: addr(9),
                cause: udpchat_reliable::DropCause::Malformed,
                detail: "junk".into(),
            });
        }
        events.push(Event::Closed);
        let lines = printed(&mut out, events);
        let shown = crate::notice::SHOWN_PER_WINDOW as usize;
        // Per kind: the shown ones, the line saying the rest are counted, the count at the end.
        assert_eq!(lines.len(), 5 * (shown + 2), "{lines:#?}");
        let has = |text: &str| lines.iter().any(|(_, line)| line == text);
        assert!(has(
            "udpchat: more gap notices are counted, not shown, for up to 10 s (/stats has the \
             counts)"
        ));
        assert!(has(
            "udpchat: 990 more gap notices were not shown (/stats has the counts)"
        ));
        assert!(has(
            "udpchat: 990 more ignored datagrams were not shown (/stats has the counts)"
        ));
        assert!(lines.iter().all(|(stdout, _)| !stdout));
    }

    #[test]
    fn json_keeps_every_gap_event_and_limits_only_ignored_datagrams() {
        let mut out = Output::new(Format::Json, Mode::Raw, true, false);
        let mut events = Vec::new();
        for seq in 0..100u64 {
            events.push(Event::Gap {
                from: addr(9),
                first: seq * 2,
                last: seq * 2,
            });
            events.push(Event::Dropped {
                from: addr(9),
                cause: udpchat_reliable::DropCause::Malformed,
                detail: "junk".into(),
            });
        }
        let lines = printed(&mut out, events);
        let stdout = |kind: &str| {
            lines
                .iter()
                .filter(|(out, line)| *out && line.contains(&format!("\"event\":\"{kind}\"")))
                .count()
        };
        assert_eq!(stdout("gap"), 100);
        assert_eq!(stdout("dropped"), crate::notice::SHOWN_PER_WINDOW as usize);
        let notes: Vec<_> = lines.iter().filter(|(out, _)| !out).collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let mut end = Printed::default();
        out.flush_into(&mut end);
        assert_eq!(
            end.lines,
            vec![(
                Stream::Stderr,
                "udpchat: 90 more ignored datagrams were not shown (/stats has the counts)".into()
            )]
        );
    }

    #[test]
    fn the_line_ui_reports_handshake_retries_and_says_how_they_ended() {
        let peer = addr(4000);
        let mut out = Output::new(Format::Text, Mode::Reliable, true, false).watching(Some(peer));
        let retry = |tries| Event::NoAnswer {
            to: peer,
            tries,
            next_in: std::time::Duration::from_secs(2),
        };
        assert_eq!(
            printed(&mut out, vec![retry(1), retry(2)]),
            vec![
                (
                    false,
                    "udpchat: no answer from 127.0.0.1:4000 yet, retrying (1)".into()
                ),
                (
                    false,
                    "udpchat: no answer from 127.0.0.1:4000 yet, retrying (2)".into()
                ),
            ]
        );
        let answered = printed(
            &mut out,
            vec![Event::Peer {
                addr: peer,
                nick: Some("bob".into()),
            }],
        );
        assert_eq!(
            answered,
            vec![
                (
                    false,
                    "udpchat: 127.0.0.1:4000 answered after 2 retries".into()
                ),
                (false, "udpchat: connected to bob at 127.0.0.1:4000".into())
            ]
        );
        // The peer leaves; the next line opens a new session.
        let left = printed(&mut out, vec![Event::PeerClosed]);
        assert!(
            left[0]
                .1
                .contains("a line you send now opens a new session"),
            "{left:?}"
        );
        let reopened: Vec<_> = out
            .accepted_lines()
            .lines
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert_eq!(
            reopened,
            vec![format!(
                "udpchat: {}",
                notice::reopen_text("127.0.0.1:4000")
            )]
        );
        assert!(
            out.accepted_lines().lines.is_empty(),
            "only the first line reopens"
        );
        let gave_up = printed(
            &mut out,
            vec![
                retry(1),
                Event::Lost { id: MessageId(3) },
                Event::PeerUnreachable,
            ],
        );
        assert_eq!(
            gave_up[2],
            (
                false,
                "udpchat: no answer from 127.0.0.1:4000: gave up after 1 retry".into()
            )
        );
        assert!(gave_up[3].1.contains("stopped answering"), "{gave_up:?}");
    }

    #[test]
    fn raw_mode_watches_no_handshake() {
        let mut out = Output::new(Format::Text, Mode::Raw, true, false);
        assert!(out.accepted_lines().lines.is_empty());
    }
}
