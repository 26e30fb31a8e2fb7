//! The chat screen's state and how it changes, with no terminal attached.
//!
//! The [`Model`] is everything the screen shows: the history (my messages with their delivery
//! state, the peer's messages, notices about what the network did), the status-bar figures, the
//! scroll position and the input line. It changes in exactly two ways: the user acts
//! ([`Model::handle`], which may ask the runtime to do something by returning an [`Effect`]), or
//! the transport reports ([`Model::apply_event`], [`Model::record_send`], [`Model::set_stats`]).
//! Keeping it pure means the whole UI logic is tested here with plain values, and the drawing in
//! `view.rs` only reads it.
//!
//! The one subtle part is delivery: `Endpoint::send` returns a [`MessageId`], and the later
//! `Event::Delivered{id}` / `Event::Lost{id}` must update *that* line in place. The model maps
//! each outstanding id to the absolute index of its history entry; absolute indexes survive the
//! history being trimmed at the front or cleared, so a late ack for a line no longer on screen
//! is recognised and only counted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_driver::tcp::{Ending, KernelView, TcpStats};
use udpchat_reliable::{Event, MessageId, NickError, SendError, Stats};

use super::commands::{self, Command, Input, COMMAND_SUMMARY};
use super::input::LineEditor;
use crate::chat::Mode;
use crate::notice::{self, Context, Flood, HandshakeWatch, Limiter, Notice, Verdict};
pub use crate::notice::{canonical, NoticeKind};
use crate::untrusted;

/// The most history entries kept; older ones are dropped, so a long chat uses bounded memory.
pub const HISTORY_LIMIT: usize = 5_000;

/// The most bytes of text the history keeps (messages can be up to 1 MiB each in reliable
/// mode, so the entry count alone would not bound memory); older entries go first.
pub const HISTORY_BYTES: usize = 8 << 20;

/// Gap notices kept open to be rewritten when a late message turns up; the oldest is
/// forgotten first (its notice stays as it was).
pub const OPEN_GAPS: usize = 64;

/// Lines moved per mouse-wheel step.
pub const WHEEL_LINES: usize = 3;

/// The name of `mode` in the status bar and the greeting.
pub fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Raw => "RAW",
        Mode::Reliable => "RELIABLE",
        Mode::Tcp => "TCP",
    }
}

/// What the screen is told when the chat starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The transport mode.
    pub mode: Mode,
    /// Our nickname.
    pub nick: String,
    /// The address our socket is bound to.
    pub local: SocketAddr,
    /// The peer given with `--peer`, if any.
    pub peer: Option<SocketAddr>,
    /// Raw mode with `--plain`: bare datagrams, no nicknames and no sequence numbers.
    pub plain: bool,
    /// The impairment applied inside this chat, as a short string (`loss 20%, delay 50ms`), or
    /// `None` when the network is left alone.
    pub impairment: Option<String>,
    /// `--secret`: the session is encrypted once the handshake succeeds.
    pub encrypted: bool,
}

/// Where the session stands, for the status bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// No peer known yet: waiting for someone to write first.
    Waiting,
    /// A peer address is known (reliable mode: the handshake has not finished).
    Connecting,
    /// Talking to the peer (raw mode: its address is known; reliable: the handshake finished).
    Connected,
    /// Closing: waiting for outstanding messages to be acknowledged.
    Closing,
    /// The peer stopped answering: the session ended. The next line opens a new one.
    Unreachable,
    /// Reliable mode: the peer closed the session (it left). The next line opens a new one.
    PeerLeft,
    /// Our side closed: the chat is over.
    Closed,
}

impl ConnState {
    /// The words shown in the status bar for this state in `mode`.
    pub fn label(self, mode: Mode) -> &'static str {
        match (self, mode) {
            (ConnState::Waiting, _) => "waiting for a peer",
            (ConnState::Connecting, _) => "connecting",
            (ConnState::Connected, Mode::Raw) => "no connection (raw UDP)",
            (ConnState::Connected, Mode::Reliable) => "connected",
            (ConnState::Connected, Mode::Tcp) => "connected (kernel TCP)",
            (ConnState::Closing, _) => "closing",
            (ConnState::Unreachable, _) => "peer unreachable",
            (ConnState::PeerLeft, _) => "peer left",
            (ConnState::Closed, _) => "closed",
        }
    }

    /// The same in as few letters as still read well, for a narrow status bar.
    pub fn short_label(self, mode: Mode) -> &'static str {
        match (self, mode) {
            (ConnState::Waiting, _) => "waiting",
            (ConnState::Connected, Mode::Raw) => "raw UDP",
            (ConnState::Unreachable, _) => "unreachable",
            (state, mode) => state.label(mode),
        }
    }
}

/// The state of one of my messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Raw mode: the datagram left; UDP will never say whether it arrived.
    Unconfirmed,
    /// Reliable mode: sent, not yet acknowledged (possibly being retransmitted).
    Sending,
    /// Reliable mode: the peer acknowledged it.
    Delivered {
        /// From first send to acknowledgement, when known.
        rtt: Option<Duration>,
    },
    /// Reliable mode: the transport gave up on it.
    Lost,
    /// TCP mode: handed to the kernel; TCP never says more about one line.
    Kernel,
}

/// One entry of the history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Entry {
    /// A message I sent.
    Mine {
        /// The nickname I had when I sent it.
        nick: String,
        /// Our transport's id for it.
        id: MessageId,
        /// What I wrote.
        text: String,
        /// What became of it.
        delivery: Delivery,
    },
    /// A message from the peer.
    Peer {
        /// Their nickname.
        nick: String,
        /// Their sequence number for it, where the mode has one.
        seq: Option<u64>,
        /// What they wrote.
        text: String,
    },
    /// A notice.
    Notice {
        /// What kind.
        kind: NoticeKind,
        /// The words.
        text: String,
        /// How many times in a row it happened (identical notices are folded into one line).
        repeat: u32,
    },
    /// A two-column table, for `/stats` and `/help`.
    Table {
        /// Its heading.
        title: String,
        /// Name and value of each row.
        rows: Vec<(String, String)>,
    },
}

/// Something the user did, already translated from keys and mouse (see `keys.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Type a character.
    Char(char),
    /// Paste text.
    Paste(String),
    /// Send the input line, or run it as a command.
    Submit,
    /// Delete before the cursor.
    Backspace,
    /// Delete under the cursor.
    Delete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor one word left.
    WordLeft,
    /// Cursor one word right.
    WordRight,
    /// Cursor to the start.
    Home,
    /// Cursor to the end.
    End,
    /// Delete the word before the cursor.
    DeleteWord,
    /// Delete to the start of the line.
    DeleteToStart,
    /// Delete to the end of the line.
    DeleteToEnd,
    /// Previous line of the sent-lines history.
    HistoryUp,
    /// Next line of the sent-lines history.
    HistoryDown,
    /// Scroll the history one page up.
    PageUp,
    /// Scroll the history one page down.
    PageDown,
    /// Scroll the history this many lines up (mouse wheel).
    ScrollUp(usize),
    /// Scroll the history this many lines down (mouse wheel).
    ScrollDown(usize),
    /// Jump to the newest line and follow it again.
    ScrollToBottom,
    /// Ctrl-C: leave gracefully, or at once if already leaving.
    Interrupt,
    /// Ctrl-D: leave if the input line is empty, else delete under the cursor.
    EndOfInput,
}

/// What the model asks the runtime to do; the result comes back through the model's methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this message; report with [`Model::record_send`].
    Send(String),
    /// Use this nickname from now on; report with [`Model::record_nick`].
    SetNick(String),
    /// Fetch fresh counters; give them to [`Model::set_stats`], which then shows the table.
    RefreshStats,
    /// Close the session gracefully (reliable mode waits for acks), then leave.
    Close,
    /// Leave now, without waiting.
    Exit,
}

/// How the history is scrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scroll {
    /// Show the newest lines, and keep showing them as more arrive.
    Follow,
    /// Show the history from this wrapped line (0 = the oldest) down.
    Top(usize),
}

/// What the last drawing found out about the history area, so scrolling can be clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Viewport {
    /// Rows of the history area.
    pub height: usize,
    /// Wrapped lines the whole history takes at the current width.
    pub total_lines: usize,
}

impl Viewport {
    /// The largest top line that still fills the area.
    pub fn max_top(self) -> usize {
        self.total_lines.saturating_sub(self.height)
    }
}

/// The chat screen's state.
#[derive(Debug)]
pub struct Model {
    info: SessionInfo,
    conn: ConnState,
    /// Encryption: the short authentication string of the session, once secured.
    sas: Option<String>,
    /// Encryption: the handshake failed; the chat exits with its own code.
    handshake_failed: bool,
    peer: Option<SocketAddr>,
    peer_nick: Option<String>,
    history: VecDeque<Entry>,
    /// Absolute index of `history[0]`: how many entries were ever removed from the front.
    first_index: u64,
    /// My messages still waiting for `Delivered`/`Lost`, by absolute history index.
    outstanding: HashMap<MessageId, u64>,
    sent: u64,
    delivered: u64,
    lost: u64,
    last_rtt: Option<Duration>,
    stats: Stats,
    scroll: Scroll,
    viewport: Viewport,
    input: LineEditor,
    leaving: bool,
    /// `/stats` was asked for: show the table when the fresh counters arrive.
    stats_wanted: bool,
    /// Reliable mode: the text of each of my messages not delivered (yet), for the exit report.
    undelivered: BTreeMap<MessageId, String>,
    /// Bytes of text in `history` (see [`HISTORY_BYTES`]).
    history_bytes: usize,
    /// The time, as the runtime last said (see [`Model::set_now`]), for the [`Limiter`].
    now: Instant,
    limiter: Limiter,
    /// For each flood being held back: the absolute index of the notice that counts it.
    held: HashMap<Flood, u64>,
    /// Gap notices that a late message may still make untrue, oldest first.
    open_gaps: VecDeque<OpenGap>,
    /// Reliable mode: what the handshakes are doing, from the transport's events.
    handshake: HandshakeWatch,
    /// The notice counting the retries of the handshake in progress, by absolute index.
    retry_notice: Option<u64>,
    /// TCP mode: what the kernel last said about the connection.
    kernel: KernelView,
    /// TCP mode: how the connection ended, once it has.
    tcp_ending: Option<Ending>,
}

/// A gap notice still open: which messages it names and how many of them turned up since.
#[derive(Debug, Clone)]
struct OpenGap {
    from: SocketAddr,
    first: u64,
    last: u64,
    arrived: u128,
    /// The name the notice used, so its rewrites use the same.
    who: String,
    /// Absolute history index of the notice.
    index: u64,
}

impl Model {
    /// A fresh screen for a session, with a greeting that says what to do.
    pub fn new(info: SessionInfo) -> Self {
        let conn = match (info.peer, info.mode) {
            (None, _) => ConnState::Waiting,
            (Some(_), Mode::Raw) => ConnState::Connected,
            (Some(_), Mode::Reliable | Mode::Tcp) => ConnState::Connecting,
        };
        let greeting = match info.peer {
            Some(peer) => format!(
                "{} mode, sending to {peer}. Type a message and press Enter; /help for commands.",
                mode_label(info.mode)
            ),
            None => format!(
                "{} mode, listening on {}: waiting for someone to write first. /help for commands.",
                mode_label(info.mode),
                info.local
            ),
        };
        let mut model = Model {
            peer: info.peer,
            info,
            conn,
            sas: None,
            handshake_failed: false,
            peer_nick: None,
            history: VecDeque::new(),
            first_index: 0,
            outstanding: HashMap::new(),
            sent: 0,
            delivered: 0,
            lost: 0,
            last_rtt: None,
            stats: Stats::default(),
            scroll: Scroll::Follow,
            viewport: Viewport::default(),
            input: LineEditor::new(),
            leaving: false,
            stats_wanted: false,
            undelivered: BTreeMap::new(),
            history_bytes: 0,
            now: Instant::now(),
            limiter: Limiter::default(),
            held: HashMap::new(),
            open_gaps: VecDeque::new(),
            handshake: HandshakeWatch::new(conn == ConnState::Connecting),
            retry_notice: None,
            kernel: KernelView::NotConnected,
            tcp_ending: None,
        };
        model.notice(NoticeKind::Info, greeting);
        if model.info.mode == Mode::Tcp {
            model.notice(NoticeKind::Info, notice::TCP_HONESTY.to_owned());
        }
        model
    }

    // ---- reading, for the view and the runtime ----

    /// The session as given at the start.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Our current nickname.
    pub fn nick(&self) -> &str {
        &self.info.nick
    }

    /// Where the session stands.
    pub fn conn(&self) -> ConnState {
        self.conn
    }

    /// The peer's address, once known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The peer's nickname, once a message told us.
    pub fn peer_nick(&self) -> Option<&str> {
        self.peer_nick.as_deref()
    }

    /// The history, oldest first.
    #[cfg(test)]
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.history.iter()
    }

    /// The history, oldest first, each entry with its absolute index: a number that stays
    /// the entry's own while older entries are trimmed or cleared away.
    pub fn indexed_history(&self) -> impl Iterator<Item = (u64, &Entry)> {
        (self.first_index..).zip(self.history.iter())
    }

    /// Messages I sent (accepted by the transport).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// My messages the peer acknowledged.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// My messages the transport gave up on.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// My messages neither delivered nor lost yet (reliable mode).
    pub fn unconfirmed(&self) -> usize {
        self.outstanding.len()
    }

    /// Encryption: the session's short authentication string, once the handshake succeeded.
    pub fn sas(&self) -> Option<&str> {
        self.sas.as_deref()
    }

    /// Encryption: whether the handshake failed.
    pub fn handshake_failed(&self) -> bool {
        self.handshake_failed
    }

    /// While connecting: how many times the handshake was resent without an answer.
    pub fn handshake_retries(&self) -> u64 {
        match self.conn {
            ConnState::Connecting => self.handshake.retries(),
            _ => 0,
        }
    }

    /// The round-trip time to show: the transport's smoothed RTT, else the last sample.
    pub fn rtt(&self) -> Option<Duration> {
        self.stats.rtt_smoothed.or(self.last_rtt)
    }

    /// Retransmissions so far (timeout and fast).
    pub fn retransmissions(&self) -> u64 {
        self.stats.retransmits_timeout + self.stats.retransmits_fast
    }

    /// The transport's latest counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How the history is scrolled.
    pub fn scroll(&self) -> Scroll {
        self.scroll
    }

    /// The input line.
    pub fn input(&self) -> &LineEditor {
        &self.input
    }

    /// True once the user asked to leave.
    pub fn leaving(&self) -> bool {
        self.leaving
    }

    /// The name to show for messages and notices from `addr`.
    pub fn name_of(&self, addr: SocketAddr) -> String {
        match &self.peer_nick {
            Some(nick) if self.peer == Some(addr) && !nick.is_empty() => nick.clone(),
            _ => canonical(addr).to_string(),
        }
    }

    // ---- the user ----

    /// Applies one user action; returns what the runtime must do, if anything.
    pub fn handle(&mut self, action: Action) -> Option<Effect> {
        match action {
            Action::Char(c) => {
                if !self.input.insert_char(c) {
                    self.input_full();
                }
            }
            Action::Paste(text) => {
                if !self.input.insert_str(&text) {
                    self.input_full();
                }
            }
            Action::Submit => return self.submit(),
            Action::Backspace => self.input.backspace(),
            Action::Delete => self.input.delete(),
            Action::Left => self.input.left(),
            Action::Right => self.input.right(),
            Action::WordLeft => self.input.word_left(),
            Action::WordRight => self.input.word_right(),
            Action::Home => self.input.home(),
            Action::End => self.input.end(),
            Action::DeleteWord => self.input.delete_word_back(),
            Action::DeleteToStart => self.input.delete_to_start(),
            Action::DeleteToEnd => self.input.delete_to_end(),
            Action::HistoryUp => self.input.history_up(),
            Action::HistoryDown => self.input.history_down(),
            Action::PageUp => self.scroll_up(self.page()),
            Action::PageDown => self.scroll_down(self.page()),
            Action::ScrollUp(n) => self.scroll_up(n),
            Action::ScrollDown(n) => self.scroll_down(n),
            Action::ScrollToBottom => self.scroll = Scroll::Follow,
            Action::Interrupt => return Some(self.leave()),
            Action::EndOfInput if self.input.is_empty() => return Some(self.leave()),
            Action::EndOfInput => self.input.delete(),
        }
        None
    }

    fn submit(&mut self) -> Option<Effect> {
        let line = self.input.submit()?;
        self.scroll = Scroll::Follow;
        match commands::parse(&line) {
            Ok(Input::Message(_)) if self.leaving => {
                self.notice(
                    NoticeKind::Error,
                    "not sent: the chat is closing (Ctrl-C again to leave now)".into(),
                );
                None
            }
            Ok(Input::Message(text)) => Some(Effect::Send(text)),
            Ok(Input::Command(command)) => self.run(command),
            Err(e) => {
                self.notice(NoticeKind::Error, e.to_string());
                None
            }
        }
    }

    fn run(&mut self, command: Command) -> Option<Effect> {
        match command {
            Command::Help => {
                self.push(help_table(self.info.mode));
                None
            }
            Command::Quit => Some(self.leave()),
            Command::Nick(nick) => Some(Effect::SetNick(nick)),
            Command::Stats => {
                self.stats_wanted = true;
                Some(Effect::RefreshStats)
            }
            Command::Mode => {
                let text = self.mode_explanation();
                self.notice(NoticeKind::Info, text);
                None
            }
            Command::Clear => {
                self.first_index += self.history.len() as u64;
                self.history.clear();
                self.history_bytes = 0;
                self.scroll = Scroll::Follow;
                None
            }
        }
    }

    /// The first request to leave closes gracefully; a second one (Ctrl-C again) leaves at once.
    fn leave(&mut self) -> Effect {
        if self.leaving {
            return Effect::Exit;
        }
        self.leaving = true;
        let waiting = self.unconfirmed();
        if self.info.mode == Mode::Reliable && waiting > 0 {
            self.conn = ConnState::Closing;
            self.notice(
                NoticeKind::Info,
                format!(
                    "closing: waiting for {waiting} message(s) to be acknowledged \
                     (Ctrl-C again to leave now)"
                ),
            );
        }
        Effect::Close
    }

    fn mode_explanation(&self) -> String {
        let (now, what, other) = match self.info.mode {
            Mode::Raw => (
                "raw",
                "each line is one plain UDP datagram, never acknowledged or resent, so you see \
                 what the network loses, duplicates and reorders",
                "reliable",
            ),
            Mode::Reliable => (
                "reliable",
                "udpchat's own transport over UDP: every message is acknowledged, resent if \
                 needed, and delivered once and in order, or reported lost",
                "raw",
            ),
            Mode::Tcp => (
                "tcp",
                "the kernel's TCP: it delivers in order or breaks the connection, and never \
                 says when a line was read, so a line is only marked as handed to the kernel",
                "reliable",
            ),
        };
        format!(
            "mode: {now}: {what}. Switching mid-session would need both peers to agree, and the \
             two modes do not share a handshake, so it is not done: to try {other} mode, /quit \
             and both restart with `udpchat chat --mode {other} ...`."
        )
    }

    fn input_full(&mut self) {
        self.notice(
            NoticeKind::Error,
            format!(
                "the input line is full ({} bytes at most); the rest was not pasted",
                super::input::MAX_INPUT_BYTES
            ),
        );
    }

    // ---- scrolling ----

    /// Records what the last drawing measured, and keeps the scroll position inside it.
    pub fn set_viewport(&mut self, viewport: Viewport) {
        self.viewport = viewport;
        if let Scroll::Top(top) = self.scroll {
            if top >= viewport.max_top() {
                self.scroll = Scroll::Follow;
            }
        }
    }

    fn page(&self) -> usize {
        self.viewport.height.saturating_sub(1).max(1)
    }

    fn scroll_up(&mut self, lines: usize) {
        let max_top = self.viewport.max_top();
        if max_top == 0 {
            return;
        }
        let top = match self.scroll {
            Scroll::Follow => max_top,
            Scroll::Top(top) => top.min(max_top),
        };
        self.scroll = Scroll::Top(top.saturating_sub(lines));
    }

    fn scroll_down(&mut self, lines: usize) {
        if let Scroll::Top(top) = self.scroll {
            let top = top.saturating_add(lines);
            self.scroll = if top >= self.viewport.max_top() {
                Scroll::Follow
            } else {
                Scroll::Top(top)
            };
        }
    }

    // ---- the transport ----

    /// Records what became of a message the runtime tried to send.
    pub fn record_send(&mut self, text: String, result: Result<MessageId, SendError>) {
        match result {
            Ok(id) => {
                self.sent += 1;
                let delivery = match self.info.mode {
                    Mode::Raw => Delivery::Unconfirmed,
                    Mode::Reliable => Delivery::Sending,
                    Mode::Tcp => Delivery::Kernel,
                };
                if self.info.mode == Mode::Reliable {
                    self.undelivered.insert(id, text.clone());
                }
                let index = self.push(Entry::Mine {
                    nick: self.info.nick.clone(),
                    id,
                    text,
                    delivery,
                });
                if self.info.mode == Mode::Reliable {
                    self.outstanding.insert(id, index);
                    if self.handshake.accepted() {
                        self.reopen();
                    }
                }
            }
            Err(e) => self.notice(
                NoticeKind::Error,
                format!(
                    "not sent: {} (↑ brings the line back)",
                    notice::refusal(self.info.mode, &e)
                ),
            ),
        }
    }

    /// A line was accepted after the session ended: the transport opens a new session to the
    /// same address for it (see "How a chat ends" in the README).
    fn reopen(&mut self) {
        self.conn = ConnState::Connecting;
        self.retry_notice = None;
        let text = notice::reopen_text(&self.peer_text());
        self.notice(NoticeKind::Info, text);
    }

    /// A handshake retry (the transport's `NoAnswer`, worded by `notice`): one notice, updated
    /// in place, says how many times the handshake was retried without an answer.
    fn count_retry(&mut self, text: String) {
        let updated = self
            .retry_notice
            .is_some_and(|index| self.set_notice_text(index, text.clone()));
        if !updated {
            self.retry_notice = Some(self.add_notice(NoticeKind::Info, text));
        }
    }

    /// The peer's address as the notices write it.
    fn peer_text(&self) -> String {
        self.peer
            .map_or_else(|| "the peer".into(), |a| canonical(a).to_string())
    }

    /// Records the outcome of a nickname change.
    pub fn record_nick(&mut self, nick: &str, result: Result<(), NickError>) {
        match result {
            Ok(()) => {
                self.info.nick = nick.to_owned();
                self.notice(
                    NoticeKind::Info,
                    format!("you are now {nick}: your next messages carry that name"),
                );
            }
            Err(NickError::Unsupported) => {
                self.notice(
                    NoticeKind::Error,
                    format!(
                        "cannot change the nickname: plain datagrams carry no nickname; restart \
                         without --plain and with --nick {nick}"
                    ),
                );
            }
        }
    }

    /// Replaces the transport's counters with a newer snapshot; shows them as a table if
    /// `/stats` asked for them.
    pub fn set_stats(&mut self, stats: Stats) {
        self.stats = stats;
        if std::mem::take(&mut self.stats_wanted) {
            let table = self.stats_table();
            self.push(table);
        }
    }

    /// TCP mode: the counters and the kernel's figures; shows them as a table if `/stats`
    /// asked for them.
    pub fn set_tcp_stats(&mut self, stats: TcpStats) {
        self.kernel = stats.kernel;
        self.set_stats(stats.counters);
    }

    /// TCP mode: what the kernel last said.
    pub fn kernel(&self) -> &KernelView {
        &self.kernel
    }

    /// TCP mode: how the connection ended, and which lines may not have arrived.
    pub fn tcp_ended(&mut self, ending: Ending) {
        self.notice(NoticeKind::Info, notice::tcp_ending_text(&ending));
        if let Some(text) = notice::tcp_at_risk_text(&ending) {
            self.notice(NoticeKind::Error, text);
        }
        self.kernel = ending.kernel.clone();
        self.stats = ending.counters.clone();
        self.tcp_ending = Some(ending);
    }

    /// TCP mode: the ending, once known.
    pub fn tcp_ending(&self) -> Option<&Ending> {
        self.tcp_ending.as_ref()
    }

    /// Reliable mode: my messages that were lost or are still unacknowledged, by id; kept
    /// apart from the history, which may have trimmed them away.
    pub fn undelivered(&self) -> Vec<(MessageId, String)> {
        self.undelivered
            .iter()
            .map(|(id, text)| (*id, text.clone()))
            .collect()
    }

    /// Shows a notice in the history (for the runtime's own news, such as an I/O error).
    pub fn notice(&mut self, kind: NoticeKind, text: String) {
        self.add_notice(kind, text);
    }

    /// Adds a notice, folding it into the last entry if that is the same notice; returns the
    /// absolute index of the entry that shows it.
    fn add_notice(&mut self, kind: NoticeKind, text: String) -> u64 {
        if let Some(Entry::Notice {
            kind: last_kind,
            text: last_text,
            repeat,
        }) = self.history.back_mut()
        {
            if *last_kind == kind && *last_text == text {
                *repeat = repeat.saturating_add(1);
                return self.first_index + self.history.len() as u64 - 1;
            }
        }
        self.push(Entry::Notice {
            kind,
            text,
            repeat: 1,
        })
    }

    /// Tells the model the time, for limiting notices; the runtime calls it before applying
    /// what the transport reported.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Applies one event from the transport: first what it changes ([`Model::update`]), then
    /// what it says, in the words [`notice::describe`] gives the line UI too.
    pub fn apply_event(&mut self, event: Event) {
        let Event::Message {
            from,
            nick,
            seq,
            text,
        } = event
        else {
            let notice = self.describe(&event);
            self.update(&event);
            if let (Event::NoAnswer { .. }, Some(notice)) = (&event, &notice) {
                self.count_retry(notice.text.clone());
                return;
            }
            if let Some(index) = notice.and_then(|notice| self.show(notice)) {
                if let Event::Gap { from, first, last } = event {
                    self.open_gap(from, first, last, index);
                }
            }
            return;
        };
        if self.peer.is_none() {
            self.peer = Some(from);
        }
        let nick = if nick.is_empty() {
            canonical(from).to_string()
        } else {
            let nick = untrusted::nick(&nick);
            if self.peer == Some(from) {
                self.peer_nick = Some(nick.clone());
            }
            nick
        };
        if matches!(self.conn, ConnState::Waiting | ConnState::Connecting) {
            self.conn = ConnState::Connected;
        }
        self.push(Entry::Peer { nick, seq, text });
    }

    fn describe(&self, event: &Event) -> Option<Notice> {
        let name = |addr| self.name_of(addr);
        let cx = Context {
            mode: self.info.mode,
            peer_given: self.info.peer.is_some(),
            name: &name,
        };
        notice::describe(event, &cx)
    }

    /// What an event other than a message changes: the session's state, the counts, the marks
    /// of my messages, and the gap notices a late message makes untrue.
    fn update(&mut self, event: &Event) {
        if let Some((answered, retries)) = self.handshake.event(event) {
            // The retry notice says how the handshake ended instead of "retrying".
            if let Some(index) = self.retry_notice.take() {
                let text = notice::attempt_end_text(&self.peer_text(), retries, answered);
                self.set_notice_text(index, text);
            }
        }
        match *event {
            Event::Peer { addr, ref nick } => {
                if self.peer != Some(addr) {
                    self.peer_nick = None;
                }
                // Reliable mode knows the nickname from the handshake: the status bar shows it
                // at once, not only with the first message.
                if let Some(nick) = nick.as_deref().filter(|n| !n.is_empty()) {
                    self.peer_nick = Some(untrusted::nick(nick));
                }
                self.peer = Some(addr);
                if !matches!(self.conn, ConnState::Closing | ConnState::Closed) {
                    self.conn = ConnState::Connected;
                }
            }
            Event::Delivered { id, rtt } => {
                self.delivered += 1;
                self.undelivered.remove(&id);
                if rtt.is_some() {
                    self.last_rtt = rtt;
                }
                self.settle(id, Delivery::Delivered { rtt });
            }
            Event::Lost { id } => {
                self.lost += 1;
                self.settle(id, Delivery::Lost);
            }
            Event::Reordered { from, seq } => self.late_arrival(from, seq),
            Event::PeerUnreachable => {
                if self.conn != ConnState::Closed {
                    self.conn = ConnState::Unreachable;
                }
            }
            Event::PeerRestarted => {
                self.peer_nick = None;
                // The numbers start again: the old gaps can no longer be matched.
                self.open_gaps.clear();
            }
            Event::PeerClosed if self.conn != ConnState::Closed => {
                self.conn = ConnState::PeerLeft;
            }
            Event::PeerClosed => {}
            Event::Closed => self.conn = ConnState::Closed,
            Event::NickChanged { ref new, .. } => self.peer_nick = Some(untrusted::nick(new)),
            // The notice says it; the session goes on (we may still send), or was given up.
            // The transport gave the handshake up: nobody is there but us.
            Event::TalkingToSelf { .. } if self.conn == ConnState::Connecting => {
                self.conn = ConnState::Unreachable;
            }
            Event::PeerFinished | Event::NoAnswer { .. } | Event::TalkingToSelf { .. } => {}
            Event::Message { .. }
            | Event::Gap { .. }
            | Event::Duplicate { .. }
            | Event::TurnedAway { .. }
            | Event::Dropped { .. } => {}
            Event::Secured { ref sas, .. } => self.sas = Some(sas.clone()),
            Event::HandshakeFailed { .. } => {
                self.handshake_failed = true;
                self.conn = ConnState::Unreachable;
            }
        }
    }

    /// Puts a notice in the history unless the [`Limiter`] holds it back (then the flood's
    /// counting notice goes up by one instead); returns the index of a notice shown.
    /// Deliveries and losses are not notices here: the message's own mark shows them.
    fn show(&mut self, notice: Notice) -> Option<u64> {
        if matches!(notice.kind, NoticeKind::Delivered | NoticeKind::Lost) {
            return None;
        }
        if let Some(flood) = notice.flood {
            let (summary, verdict) = self.limiter.admit(flood, self.now);
            if summary.is_some() {
                // The last window's counting notice already shows its final count: leave it.
                self.held.remove(&flood);
            }
            if let Verdict::Held { count } = verdict {
                self.count_held(flood, count);
                return None;
            }
        }
        Some(self.add_notice(notice.kind, notice.text))
    }

    /// Shows that `count` notices of `flood` were held back in this window, updating one
    /// notice in place rather than adding a line per notice.
    fn count_held(&mut self, flood: Flood, count: u64) {
        let text = flood.held_text(count);
        let updated = match self.held.get(&flood) {
            Some(&index) => self.set_notice_text(index, text.clone()),
            None => false,
        };
        if !updated {
            let index = self.add_notice(flood.kind(), text);
            self.held.insert(flood, index);
        }
    }

    /// Replaces the words of the notice at absolute `index`; false if it is gone.
    fn set_notice_text(&mut self, index: u64, new: String) -> bool {
        let Some(offset) = index
            .checked_sub(self.first_index)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return false;
        };
        let Some(Entry::Notice { text, .. }) = self.history.get_mut(offset) else {
            return false;
        };
        self.history_bytes = self.history_bytes - text.len() + new.len();
        *text = new;
        true
    }

    fn open_gap(&mut self, from: SocketAddr, first: u64, last: u64, index: u64) {
        if self.open_gaps.len() >= OPEN_GAPS {
            self.open_gaps.pop_front();
        }
        self.open_gaps.push_back(OpenGap {
            from,
            first,
            last,
            arrived: 0,
            who: self.name_of(from),
            index,
        });
    }

    /// A message that a gap notice said had not arrived did: rewrite that notice, so the
    /// history never states what is no longer true.
    fn late_arrival(&mut self, from: SocketAddr, seq: u64) {
        let Some(at) = self
            .open_gaps
            .iter()
            .position(|g| g.from == from && (g.first..=g.last).contains(&seq))
        else {
            return;
        };
        let gap = &mut self.open_gaps[at];
        gap.arrived += 1;
        let text = notice::gap_text(&gap.who, gap.first, gap.last, gap.arrived);
        let complete = gap.arrived > u128::from(gap.last.saturating_sub(gap.first));
        let index = gap.index;
        if !self.set_notice_text(index, text) || complete {
            self.open_gaps.remove(at);
        }
    }

    /// Updates one of my messages in place once its fate is known.
    fn settle(&mut self, id: MessageId, outcome: Delivery) {
        let Some(index) = self.outstanding.remove(&id) else {
            return;
        };
        // The entry may have been trimmed or cleared away meanwhile; then only the counts change.
        let Some(offset) = index.checked_sub(self.first_index) else {
            return;
        };
        let entry = usize::try_from(offset)
            .ok()
            .and_then(|i| self.history.get_mut(i));
        if let Some(Entry::Mine { delivery, .. }) = entry {
            *delivery = outcome;
        }
    }

    /// Appends an entry, trimming the oldest beyond [`HISTORY_LIMIT`] entries or
    /// [`HISTORY_BYTES`] bytes (the newest entry always stays); returns its absolute index.
    fn push(&mut self, entry: Entry) -> u64 {
        self.history_bytes += entry_bytes(&entry);
        self.history.push_back(entry);
        while self.history.len() > HISTORY_LIMIT
            || (self.history_bytes > HISTORY_BYTES && self.history.len() > 1)
        {
            let Some(gone) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= entry_bytes(&gone);
            self.first_index += 1;
            if let Scroll::Top(top) = self.scroll {
                self.scroll = Scroll::Top(top.saturating_sub(1));
            }
        }
        self.first_index + self.history.len() as u64 - 1
    }

    /// The counters the mode has, as the line UI shows them (see [`crate::stats`]).
    fn stats_table(&self) -> Entry {
        let rows = if self.info.mode == Mode::Tcp {
            let stats = TcpStats {
                counters: self.stats.clone(),
                kernel: self.kernel.clone(),
            };
            crate::stats::tcp_rows(&stats, self.info.plain)
        } else {
            crate::stats::rows(&self.stats, self.info.mode, self.info.plain)
        };
        let rows = rows
            .into_iter()
            .map(|(label, cells)| (label.to_owned(), crate::stats::cells(&cells)))
            .collect();
        Entry::Table {
            title: format!("stats ({} mode)", mode_label(self.info.mode).to_lowercase()),
            rows,
        }
    }
}

/// The bytes of text an entry holds, for [`HISTORY_BYTES`].
fn entry_bytes(entry: &Entry) -> usize {
    match entry {
        Entry::Mine { nick, text, .. } | Entry::Peer { nick, text, .. } => nick.len() + text.len(),
        Entry::Notice { text, .. } => text.len(),
        Entry::Table { title, rows } => {
            title.len() + rows.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
        }
    }
}

fn help_table(mode: Mode) -> Entry {
    let mut rows = vec![
        ("Enter", "send the line (or run the /command)"),
        ("←/→ Home/End", "move in the line (Ctrl/Alt+←/→: by word)"),
        (
            "Backspace/Del",
            "delete (Ctrl-W word, Ctrl-U/Ctrl-K to start/end)",
        ),
        ("↑/↓", "earlier lines you sent"),
        (
            "PgUp/PgDn, wheel",
            "scroll the history (Ctrl-End: back to newest)",
        ),
        ("Ctrl-C, Ctrl-D", "quit (twice: without waiting for acks)"),
        ("/help", "this table"),
        ("/quit", "leave (reliable mode first waits for acks)"),
        ("/nick NAME", "change your nickname"),
        ("/stats", "the transport's counters"),
        ("/mode", "the mode, and how to use the other one"),
        ("/clear", "empty the history"),
        ("//text", "send a line that starts with /"),
    ];
    if mode == Mode::Tcp {
        rows.push((
            "· sent to the kernel",
            "tcp mode's only mark: TCP never says when a line was read",
        ));
    }
    Entry::Table {
        title: format!("help — {COMMAND_SUMMARY}"),
        rows: rows
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A duration in milliseconds as people read it: `0.4 ms`, `12 ms`, `1530 ms`.
pub fn format_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    let mut out = String::new();
    if ms < 10.0 {
        let _ = write!(out, "{ms:.1} ms");
    } else {
        let _ = write!(out, "{ms:.0} ms");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use udpchat_reliable::DropCause;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn model(mode: Mode) -> Model {
        Model::new(SessionInfo {
            mode,
            nick: "bob".into(),
            local: addr(2323),
            peer: Some(addr(4000)),
            plain: false,
            impairment: None,
            encrypted: false,
        })
    }

    fn type_line(m: &mut Model, line: &str) -> Option<Effect> {
        m.handle(Action::Paste(line.into()));
        m.handle(Action::Submit)
    }

    fn mine(m: &Model) -> Vec<(String, Delivery)> {
        m.history()
            .filter_map(|e| match e {
                Entry::Mine { text, delivery, .. } => Some((text.clone(), *delivery)),
                _ => None,
            })
            .collect()
    }

    fn last_notice(m: &Model) -> (NoticeKind, String, u32) {
        match m.history().last().unwrap() {
            Entry::Notice { kind, text, repeat } => (*kind, text.clone(), *repeat),
            other => panic!("expected a notice, got {other:?}"),
        }
    }

    #[test]
    fn typing_a_line_asks_to_send_it() {
        let mut m = model(Mode::Raw);
        assert_eq!(
            type_line(&mut m, "hello"),
            Some(Effect::Send("hello".into()))
        );
        assert!(m.input().is_empty());
        assert_eq!(type_line(&mut m, "   "), None);
    }

    #[test]
    fn raw_messages_stay_unconfirmed() {
        let mut m = model(Mode::Raw);
        m.record_send("hi".into(), Ok(MessageId(0)));
        assert_eq!(mine(&m), vec![("hi".into(), Delivery::Unconfirmed)]);
        assert_eq!(m.sent(), 1);
        assert_eq!(m.unconfirmed(), 0, "raw mode waits for nothing");
    }

    #[test]
    fn reliable_messages_update_in_place_when_acked_or_lost() {
        let mut m = model(Mode::Reliable);
        m.record_send("one".into(), Ok(MessageId(0)));
        m.record_send("two".into(), Ok(MessageId(1)));
        m.record_send("three".into(), Ok(MessageId(2)));
        assert_eq!(m.unconfirmed(), 3);
        let rtt = Duration::from_millis(42);
        m.apply_event(Event::Delivered {
            id: MessageId(1),
            rtt: Some(rtt),
        });
        m.apply_event(Event::Lost { id: MessageId(2) });
        assert_eq!(
            mine(&m),
            vec![
                ("one".into(), Delivery::Sending),
                ("two".into(), Delivery::Delivered { rtt: Some(rtt) }),
                ("three".into(), Delivery::Lost),
            ]
        );
        assert_eq!((m.sent(), m.delivered(), m.lost()), (3, 1, 1));
        assert_eq!(m.unconfirmed(), 1);
        // Lost, and never acknowledged, both count as not delivered.
        assert_eq!(
            m.undelivered(),
            vec![(MessageId(0), "one".into()), (MessageId(2), "three".into())]
        );
        assert_eq!(m.rtt(), Some(rtt));
    }

    #[test]
    fn an_ack_for_a_cleared_line_only_counts() {
        let mut m = model(Mode::Reliable);
        m.record_send("one".into(), Ok(MessageId(7)));
        assert_eq!(type_line(&mut m, "/clear"), None);
        assert_eq!(m.history().len(), 0);
        m.record_send("two".into(), Ok(MessageId(8)));
        m.apply_event(Event::Delivered {
            id: MessageId(7),
            rtt: None,
        });
        assert_eq!(mine(&m), vec![("two".into(), Delivery::Sending)]);
        assert_eq!(m.delivered(), 1);
        // An id we never sent changes no line.
        m.apply_event(Event::Delivered {
            id: MessageId(99),
            rtt: None,
        });
        assert_eq!(mine(&m), vec![("two".into(), Delivery::Sending)]);
    }

    #[test]
    fn acks_find_their_line_after_the_history_was_trimmed() {
        let mut m = model(Mode::Reliable);
        m.record_send("kept".into(), Ok(MessageId(0)));
        for i in 0..HISTORY_LIMIT - 1 {
            m.apply_event(Event::Message {
                from: addr(4000),
                nick: "alice".into(),
                seq: Some(i as u64),
                text: format!("line {i}"),
            });
        }
        assert_eq!(m.history().len(), HISTORY_LIMIT);
        assert!(matches!(m.history().next(), Some(Entry::Mine { .. })));
        m.apply_event(Event::Delivered {
            id: MessageId(0),
            rtt: None,
        });
        assert_eq!(
            mine(&m),
            vec![("kept".into(), Delivery::Delivered { rtt: None })]
        );
        // One more pushes it out; the history stays bounded.
        m.record_send("new".into(), Ok(MessageId(1)));
        assert_eq!(m.history().len(), HISTORY_LIMIT);
        m.apply_event(Event::Lost { id: MessageId(1) });
        assert_eq!(mine(&m), vec![("new".into(), Delivery::Lost)]);
    }

    #[test]
    fn a_refused_send_is_a_notice_not_a_message() {
        let mut m = model(Mode::Raw);
        m.record_send(
            "x".repeat(2000),
            Err(SendError::TooLong {
                len: 2000,
                max: 1100,
            }),
        );
        assert!(mine(&m).is_empty());
        let (kind, text, _) = last_notice(&m);
        assert_eq!(kind, NoticeKind::Error);
        assert!(text.contains("not sent") && text.contains("2000"), "{text}");
        assert_eq!(m.sent(), 0);
    }

    #[test]
    fn peer_messages_teach_us_the_peer() {
        let mut m = Model::new(SessionInfo {
            mode: Mode::Raw,
            nick: "bob".into(),
            local: addr(2323),
            peer: None,
            plain: false,
            impairment: None,
            encrypted: false,
        });
        assert_eq!(m.conn(), ConnState::Waiting);
        m.apply_event(Event::Message {
            from: addr(5000),
            nick: "alice".into(),
            seq: Some(0),
            text: "hi".into(),
        });
        assert_eq!(m.peer(), Some(addr(5000)));
        assert_eq!(m.peer_nick(), Some("alice"));
        assert_eq!(m.conn(), ConnState::Connected);
        assert_eq!(
            m.history().last(),
            Some(&Entry::Peer {
                nick: "alice".into(),
                seq: Some(0),
                text: "hi".into()
            })
        );
    }

    #[test]
    fn gaps_duplicates_and_reordering_become_notices_naming_the_peer() {
        let mut m = model(Mode::Raw);
        m.apply_event(Event::Message {
            from: addr(4000),
            nick: "alice".into(),
            seq: Some(0),
            text: "a".into(),
        });
        m.apply_event(Event::Gap {
            from: addr(4000),
            first: 1,
            last: 2,
        });
        assert_eq!(
            last_notice(&m),
            (
                NoticeKind::Gap,
                "2 messages from alice have not arrived yet (#2–#3)".into(),
                1
            )
        );
        m.apply_event(Event::Gap {
            from: addr(4000),
            first: 5,
            last: 5,
        });
        assert_eq!(
            last_notice(&m).1,
            "message #6 from alice has not arrived yet"
        );
        m.apply_event(Event::Duplicate {
            from: addr(4000),
            seq: 3,
        });
        let (kind, text, _) = last_notice(&m);
        assert_eq!(kind, NoticeKind::Duplicate);
        assert!(text.contains("#4") && text.contains("alice") && text.contains("twice"));
        m.apply_event(Event::Reordered {
            from: addr(4000),
            seq: 1,
        });
        let (kind, text, _) = last_notice(&m);
        assert_eq!(kind, NoticeKind::Reordered);
        assert!(text.contains("#2") && text.contains("late"));
        // A stranger is named by address.
        m.apply_event(Event::Gap {
            from: addr(6000),
            first: 0,
            last: 0,
        });
        assert!(last_notice(&m).1.contains("127.0.0.1:6000"));
    }

    #[test]
    fn repeated_identical_notices_fold_into_one_line() {
        let mut m = model(Mode::Raw);
        for _ in 0..1000 {
            m.notice(NoticeKind::Error, "socket: no route".into());
        }
        assert_eq!(m.history().len(), 2, "greeting + one folded notice");
        assert_eq!(
            last_notice(&m),
            (NoticeKind::Error, "socket: no route".into(), 1000)
        );
    }

    fn dropped(port: u16) -> Event {
        Event::Dropped {
            from: addr(port),
            cause: DropCause::Checksum,
            detail: format!("bad checksum {port}"),
        }
    }

    #[test]
    fn a_flood_of_notices_shows_ten_then_counts_the_rest_in_one_line() {
        let mut m = model(Mode::Raw);
        let t0 = Instant::now();
        m.set_now(t0);
        for i in 0..1000 {
            m.apply_event(dropped(i));
            m.apply_event(Event::Gap {
                from: addr(4000),
                first: u64::from(i) * 2,
                last: u64::from(i) * 2,
            });
        }
        let count = |m: &Model, kind| {
            m.history()
                .filter(|e| matches!(e, Entry::Notice { kind: k, .. } if *k == kind))
                .count()
        };
        let shown = notice::SHOWN_PER_WINDOW as usize;
        assert_eq!(count(&m, NoticeKind::Dropped), shown + 1);
        assert_eq!(count(&m, NoticeKind::Gap), shown + 1);
        let texts: Vec<String> = m
            .history()
            .filter_map(|e| match e {
                Entry::Notice { text, .. } if text.contains("were not shown") => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            [
                "990 more ignored datagrams were not shown (/stats has the counts)",
                "990 more gap notices were not shown (/stats has the counts)"
            ]
        );
        // A new window shows again, and counts in a new line.
        m.set_now(t0 + notice::WINDOW);
        for i in 0..(shown as u16 + 3) {
            m.apply_event(dropped(i));
        }
        assert_eq!(count(&m, NoticeKind::Dropped), 2 * (shown + 1));
        assert_eq!(
            last_notice(&m).1,
            "3 more ignored datagrams were not shown (/stats has the counts)"
        );
    }

    #[test]
    fn the_history_is_bounded_in_bytes_too() {
        let mut m = model(Mode::Raw);
        let big = "x".repeat(1 << 20);
        for seq in 0..20 {
            m.apply_event(Event::Message {
                from: addr(4000),
                nick: "alice".into(),
                seq: Some(seq),
                text: big.clone(),
            });
        }
        let kept = m.history().len();
        assert!(kept < 10, "{kept} entries of 1 MiB kept");
        assert!(m.history_bytes <= HISTORY_BYTES);
        let Some(Entry::Peer { seq, .. }) = m.history().last() else {
            panic!("the newest message stays");
        };
        assert_eq!(*seq, Some(19));
        // A message larger than the whole budget is still shown, alone.
        m.apply_event(Event::Message {
            from: addr(4000),
            nick: "alice".into(),
            seq: Some(20),
            text: "y".repeat(HISTORY_BYTES + 1),
        });
        assert_eq!(m.history().len(), 1);
    }

    #[test]
    fn a_gap_notice_is_rewritten_when_late_messages_turn_up() {
        let mut m = model(Mode::Raw);
        m.apply_event(Event::Gap {
            from: addr(4000),
            first: 1,
            last: 2,
        });
        let gap_at = m.history().len() - 1;
        let gap_text = |m: &Model| match m.history().nth(gap_at) {
            Some(Entry::Notice { text, .. }) => text.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            gap_text(&m),
            "2 messages from 127.0.0.1:4000 have not arrived yet (#2–#3)"
        );
        // A late message from someone else, or outside the gap, changes nothing.
        m.apply_event(Event::Reordered {
            from: addr(5000),
            seq: 1,
        });
        m.apply_event(Event::Reordered {
            from: addr(4000),
            seq: 7,
        });
        assert!(gap_text(&m).ends_with("have not arrived yet (#2–#3)"));
        m.apply_event(Event::Reordered {
            from: addr(4000),
            seq: 2,
        });
        assert_eq!(
            gap_text(&m),
            "2 messages from 127.0.0.1:4000 were missing (#2–#3): 1 arrived late, \
             1 has not arrived yet"
        );
        assert!(last_notice(&m)
            .1
            .contains("#3 from 127.0.0.1:4000 arrived late"));
        m.apply_event(Event::Reordered {
            from: addr(4000),
            seq: 1,
        });
        assert_eq!(
            gap_text(&m),
            "2 messages from 127.0.0.1:4000 were missing (#2–#3), and all arrived late"
        );
        assert!(m.open_gaps.is_empty());
    }

    #[test]
    fn nicknames_from_the_network_are_cut_and_escaped() {
        let mut m = model(Mode::Raw);
        m.apply_event(Event::Message {
            from: addr(4000),
            nick: format!("\u{202e}{}", "n".repeat(40)),
            seq: Some(0),
            text: "hi".into(),
        });
        let shown = format!("\\u{{202e}}{}…", "n".repeat(31));
        assert_eq!(m.peer_nick(), Some(shown.as_str()));
        assert!(matches!(m.history().last(), Some(Entry::Peer { nick, .. }) if *nick == shown));
        m.apply_event(Event::Duplicate {
            from: addr(4000),
            seq: 0,
        });
        assert!(last_notice(&m).1.contains(&shown));
    }

    #[test]
    fn undelivered_messages_are_remembered_after_the_history_trimmed_them() {
        let mut m = model(Mode::Reliable);
        m.record_send("early".into(), Ok(MessageId(0)));
        m.record_send("acked".into(), Ok(MessageId(1)));
        m.apply_event(Event::Delivered {
            id: MessageId(1),
            rtt: None,
        });
        type_line(&mut m, "/clear");
        assert_eq!(m.history().len(), 0);
        assert_eq!(m.undelivered(), vec![(MessageId(0), "early".into())]);
    }

    #[test]
    fn connection_state_follows_the_events() {
        let mut m = model(Mode::Reliable);
        assert_eq!(m.conn(), ConnState::Connecting);
        m.apply_event(Event::Peer {
            addr: addr(4000),
            nick: None,
        });
        assert_eq!(m.conn(), ConnState::Connected);
        m.apply_event(Event::PeerUnreachable);
        assert_eq!(m.conn(), ConnState::Unreachable);
        m.apply_event(Event::Closed);
        assert_eq!(m.conn(), ConnState::Closed);
        assert_eq!(last_notice(&m).1, "the session closed");
    }

    #[test]
    fn after_the_peer_left_the_next_line_opens_a_new_session_and_says_so() {
        let mut m = model(Mode::Reliable);
        m.apply_event(Event::Peer {
            addr: addr(4000),
            nick: None,
        });
        m.apply_event(Event::PeerClosed);
        assert_eq!(m.conn(), ConnState::PeerLeft);
        let (kind, text, _) = last_notice(&m);
        assert_eq!(kind, NoticeKind::Info);
        assert!(
            text.contains("a line you send now opens a new session"),
            "{text}"
        );
        m.record_send("anyone?".into(), Ok(MessageId(0)));
        assert_eq!(m.conn(), ConnState::Connecting);
        assert!(last_notice(&m)
            .1
            .starts_with("opening a new session to 127.0.0.1:4000 for this line"));
        assert_eq!(mine(&m), vec![("anyone?".into(), Delivery::Sending)]);
        // The transport reports each retry.
        assert_eq!(m.handshake_retries(), 0);
        for tries in 1..=3 {
            m.apply_event(no_answer(tries));
        }
        assert_eq!(m.handshake_retries(), 3);
        assert_eq!(
            last_notice(&m).1,
            "no answer from 127.0.0.1:4000 yet, retrying (3)"
        );
        m.apply_event(no_answer(4));
        let notices = m
            .history()
            .filter(|e| matches!(e, Entry::Notice { text, .. } if text.starts_with("no answer")))
            .count();
        assert_eq!(notices, 1, "one notice, updated in place");
        assert_eq!(
            last_notice(&m).1,
            "no answer from 127.0.0.1:4000 yet, retrying (4)"
        );
        // The transport gives up: the line is lost, the notice says how it ended.
        m.apply_event(Event::Lost { id: MessageId(0) });
        m.apply_event(Event::PeerUnreachable);
        assert_eq!(m.conn(), ConnState::Unreachable);
        assert_eq!(mine(&m), vec![("anyone?".into(), Delivery::Lost)]);
        assert!(m.history().any(|e| matches!(e, Entry::Notice { text, .. }
            if text == "no answer from 127.0.0.1:4000: gave up after 4 retries")));
        assert_eq!(m.handshake_retries(), 0);
    }

    #[test]
    fn a_peer_that_answers_late_is_reported_as_such() {
        let mut m = model(Mode::Reliable);
        m.apply_event(no_answer(1));
        m.apply_event(no_answer(2));
        assert_eq!(m.handshake_retries(), 2);
        m.apply_event(Event::Peer {
            addr: addr(4000),
            nick: Some("bob".into()),
        });
        assert_eq!(m.conn(), ConnState::Connected);
        assert_eq!(m.handshake_retries(), 0);
        // Named as soon as the handshake is done, before any message.
        assert_eq!(m.peer_nick.as_deref(), Some("bob"));
        assert!(m.history().any(|e| matches!(e, Entry::Notice { text, .. }
            if text == "127.0.0.1:4000 answered after 2 retries")));
        // The peer renames itself mid-session.
        m.apply_event(Event::NickChanged {
            old: "bob".into(),
            new: "robert".into(),
        });
        assert_eq!(m.peer_nick.as_deref(), Some("robert"));
        assert_eq!(last_notice(&m).1, "bob is now known as robert");
    }

    fn no_answer(tries: u32) -> Event {
        Event::NoAnswer {
            to: addr(4000),
            tries,
            next_in: Duration::from_secs(1),
        }
    }

    #[test]
    fn after_our_own_close_the_session_stays_closed() {
        let mut m = model(Mode::Reliable);
        m.apply_event(Event::Closed);
        m.apply_event(Event::PeerClosed);
        assert_eq!(m.conn(), ConnState::Closed);
    }

    #[test]
    fn quitting_closes_gracefully_then_exits_on_a_second_request() {
        let mut m = model(Mode::Reliable);
        m.record_send("pending".into(), Ok(MessageId(0)));
        assert_eq!(type_line(&mut m, "/quit"), Some(Effect::Close));
        assert!(m.leaving());
        assert_eq!(m.conn(), ConnState::Closing);
        assert!(last_notice(&m).1.contains("waiting for 1 message"));
        assert_eq!(
            type_line(&mut m, "too late"),
            None,
            "nothing is sent while closing"
        );
        assert!(last_notice(&m).1.starts_with("not sent"));
        assert_eq!(m.handle(Action::Interrupt), Some(Effect::Exit));
    }

    #[test]
    fn ctrl_d_quits_only_on_an_empty_line() {
        let mut m = model(Mode::Raw);
        m.handle(Action::Paste("ab".into()));
        m.handle(Action::Home);
        assert_eq!(m.handle(Action::EndOfInput), None);
        assert_eq!(m.input().text(), "b");
        m.handle(Action::Backspace);
        m.handle(Action::Delete);
        assert_eq!(m.handle(Action::EndOfInput), Some(Effect::Close));
    }

    #[test]
    fn commands_run_locally() {
        let mut m = model(Mode::Raw);
        assert_eq!(type_line(&mut m, "/help"), None);
        assert!(
            matches!(m.history().last(), Some(Entry::Table { title, .. }) if title.contains("help"))
        );
        assert_eq!(
            type_line(&mut m, "/nick carol"),
            Some(Effect::SetNick("carol".into()))
        );
        m.record_nick("carol", Ok(()));
        assert_eq!(m.nick(), "carol");
        m.record_send("hi".into(), Ok(MessageId(0)));
        assert!(matches!(m.history().last(), Some(Entry::Mine { nick, .. }) if nick == "carol"));
        assert_eq!(type_line(&mut m, "/bogus"), None);
        let (kind, text, _) = last_notice(&m);
        assert_eq!(kind, NoticeKind::Error);
        assert!(text.contains("unknown command /bogus"));
        assert_eq!(
            type_line(&mut m, "//bogus"),
            Some(Effect::Send("/bogus".into()))
        );
    }

    #[test]
    fn mode_explains_how_to_switch() {
        let mut m = model(Mode::Raw);
        type_line(&mut m, "/mode");
        let text = last_notice(&m).1;
        assert!(text.starts_with("mode: raw"));
        assert!(text.contains("--mode reliable"));
        assert!(text.contains("both peers"));
    }

    #[test]
    fn stats_table_shows_the_counters_for_the_mode() {
        let mut m = model(Mode::Reliable);
        m.set_stats(Stats {
            messages_sent: 12,
            retransmits_timeout: 3,
            retransmits_fast: 2,
            rtt_smoothed: Some(Duration::from_micros(12_400)),
            ..Stats::default()
        });
        assert_eq!(m.retransmissions(), 5);
        assert_eq!(type_line(&mut m, "/stats"), Some(Effect::RefreshStats));
        assert!(
            !matches!(m.history().last(), Some(Entry::Table { .. })),
            "the table waits for fresh counters"
        );
        m.set_stats(m.stats().clone());
        let Some(Entry::Table { rows, .. }) = m.history().last() else {
            panic!("no table");
        };
        let get = |name: &str| {
            rows.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("messages"), "sent 12  received 0  delivered 0  lost 0");
        assert_eq!(get("retransmits"), "timeout 3  fast 2  spurious 0");
        assert_eq!(get("rtt"), "min -  smoothed 12.4ms  variation -");
        let mut raw = model(Mode::Raw);
        type_line(&mut raw, "/stats");
        raw.set_stats(Stats::default());
        let Some(Entry::Table { rows, .. }) = raw.history().last() else {
            panic!("no table");
        };
        assert!(rows
            .iter()
            .all(|(k, _)| k != "retransmits" && k != "rtt" && k != "windows"));
        assert!(rows
            .iter()
            .any(|(k, v)| k == "arrivals" && v.starts_with("gaps 0")));
    }

    #[test]
    fn scrolling_is_clamped_to_the_history() {
        let mut m = model(Mode::Raw);
        m.handle(Action::PageUp);
        assert_eq!(m.scroll(), Scroll::Follow, "nothing to scroll yet");
        m.set_viewport(Viewport {
            height: 10,
            total_lines: 35,
        });
        m.handle(Action::PageUp);
        assert_eq!(m.scroll(), Scroll::Top(16));
        m.handle(Action::PageUp);
        m.handle(Action::PageUp);
        assert_eq!(m.scroll(), Scroll::Top(0));
        m.handle(Action::ScrollDown(WHEEL_LINES));
        assert_eq!(m.scroll(), Scroll::Top(3));
        m.handle(Action::PageDown);
        m.handle(Action::PageDown);
        assert_eq!(m.scroll(), Scroll::Top(21));
        m.handle(Action::PageDown);
        assert_eq!(m.scroll(), Scroll::Follow);
        m.handle(Action::ScrollUp(1));
        assert_eq!(m.scroll(), Scroll::Top(24));
        // Sending a line jumps back to the newest.
        type_line(&mut m, "hi");
        assert_eq!(m.scroll(), Scroll::Follow);
        // A narrower history (e.g. after /clear) releases the scroll.
        m.handle(Action::ScrollUp(5));
        m.set_viewport(Viewport {
            height: 10,
            total_lines: 4,
        });
        assert_eq!(m.scroll(), Scroll::Follow);
    }

    #[test]
    fn mapped_ipv4_addresses_read_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:9".parse().unwrap();
        assert_eq!(canonical(mapped), addr(9));
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(canonical(v6), v6);
        let mut m = model(Mode::Raw);
        m.apply_event(Event::Gap {
            from: mapped,
            first: 0,
            last: 0,
        });
        assert!(last_notice(&m).1.contains("from 127.0.0.1:9 "));
    }

    #[test]
    fn durations_read_as_milliseconds() {
        assert_eq!(format_ms(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(format_ms(Duration::from_micros(12_400)), "12 ms");
        assert_eq!(format_ms(Duration::from_millis(1530)), "1530 ms");
    }
}
