//! The ladder (sequence) diagram of a run's first messages, drawn in the terminal from its trace.
//!
//! The picture from a networking textbook: A on the left, B on the right, time going down, each
//! datagram an arrow with its kind and numbers. It is drawn from the real trace of a simulator
//! run, so it shows exactly what happened, and the same seed draws the same diagram.
//!
//! What is drawn, for the first N messages ("the chosen messages"), from the start of the run
//! until they were all delivered and acknowledged (or given up on):
//!
//! - every datagram of theirs: first sends, retransmissions labelled with the sender's own reason
//!   (`timeout` or `fast`: [`CauseRecorder`] reads the sender's retransmission counters around
//!   each datagram it hands out, so the label is the transport's account, not a guess from
//!   timings), and the copies a link made (`dup`);
//! - the acks that *answer* them. An ack answers the chosen messages if it acknowledges one of
//!   their sequence numbers (below its cumulative number or in a selective range) that no earlier
//!   ack which reached A had acknowledged. So the drawn acks are the first one to tell A about each
//!   packet, and any lost or corrupted before it: the ack whose loss leads to a retransmission is
//!   drawn, and the dozens of acks answering later messages are not;
//! - the handshake and keepalives (`hello`, `welcome`, `ping`, `pong`, `close`), since the
//!   messages wait for the first and the second keep the session alive meanwhile;
//! - each named timer ([`Endpoint::timer_name`]) whose side hands out a drawn datagram at the
//!   instant it fires, so every resend is preceded by the timer that caused it ("A timer rto");
//! - each chosen message reaching B's application, so head-of-line blocking is visible as a
//!   delivery that waits for a resend, and A giving up on one.
//!
//! Runs of four or more similar rows (acks with the same cumulative number and fate, or
//! keepalives) are collapsed to their first and last, with "… 12 more acks" between. Under the
//! diagram a legend explains every mark and label it used, and only those.
//!
//! Standalone acks are read; an ack piggybacked on data or on a close is not (in the lab only A
//! sends messages). A bundle (redundancy) is drawn by its leading packet, as the trace summarises
//! it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats};

use crate::sim::{PacketSummary, Side, Trace, TraceEntry, TraceEvent};
use crate::tcp::segment::SegmentSummary;

/// Width of the arrow between the two columns, in characters.
const ARROW: usize = 46;

/// Runs of at least this many similar rows are collapsed to their first and last.
const COLLAPSE_FROM: usize = 4;

/// Width of the legend's first column, and of its lines.
const LEGEND_KEY: usize = 16;
const LEGEND_WIDTH: usize = 96;

/// Selective-ack ranges spelled out in an ack's label; the rest are elided with `…`.
const SHOWN_RANGES: usize = 3;

/// Why the sender resent a datagram, by its own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendCause {
    /// The retransmission timer expired.
    Timeout,
    /// Selective-ack evidence (fast retransmit).
    Fast,
}

/// Wraps an endpoint and records, for every datagram it hands out, whether it was a
/// retransmission and why: the difference in its `retransmits_timeout` / `retransmits_fast`
/// counters across the `poll_transmit` call that produced it.
#[derive(Debug)]
pub struct CauseRecorder<E> {
    inner: E,
    causes: Vec<Option<ResendCause>>,
}

impl<E: Endpoint> CauseRecorder<E> {
    /// Starts recording around `inner`.
    pub fn new(inner: E) -> CauseRecorder<E> {
        CauseRecorder {
            inner,
            causes: Vec::new(),
        }
    }

    /// One entry per datagram handed out, in order.
    pub fn causes(&self) -> &[Option<ResendCause>] {
        &self.causes
    }
}

impl<E: Endpoint> Endpoint for CauseRecorder<E> {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        self.inner.send(now, text)
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.inner.handle_datagram(now, from, datagram);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let before = self.inner.stats();
        let transmit = self.inner.poll_transmit(now, buf)?;
        let after = self.inner.stats();
        let cause = if after.retransmits_timeout > before.retransmits_timeout {
            Some(ResendCause::Timeout)
        } else if after.retransmits_fast > before.retransmits_fast {
            Some(ResendCause::Fast)
        } else {
            None
        };
        self.causes.push(cause);
        Some(transmit)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn timer_name(&self) -> Option<&'static str> {
        self.inner.timer_name()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.inner.poll_event()
    }
    fn close(&mut self, now: Instant) {
        self.inner.close(now);
    }
    fn finish(&mut self, now: Instant) {
        self.inner.finish(now);
    }
    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
    fn peer(&self) -> Option<SocketAddr> {
        self.inner.peer()
    }
    fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

/// Draws the first `messages` messages A sent in `trace` (see the module doc for what is drawn),
/// followed by the legend of the marks used. `causes` is A's [`CauseRecorder`] record (empty if
/// there is none: resends are then labelled without a cause).
pub fn render(trace: &Trace, messages: u64, causes: &[Option<ResendCause>]) -> String {
    let study = Study::of(trace, messages);
    let rows = collapse(rows(trace, &study, causes));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>10}  A{}B  what happened",
        "time",
        " ".repeat(ARROW)
    );
    for row in &rows {
        let _ = writeln!(out, "{}", row.line());
    }
    out.push_str(&legend(&rows));
    out
}

/// What became of one datagram: every copy the links made of it.
#[derive(Debug, Default)]
struct Copies {
    /// When each copy came out of the link, and whether it was late.
    arrivals: Vec<(Duration, bool)>,
    /// Why each copy that never came out was lost.
    drops: Vec<String>,
    /// Copies whose bits were flipped: they come out, and the receiver's checksum drops them.
    corrupted: usize,
    /// The link made a second copy.
    duplicated: bool,
}

impl Copies {
    /// Whether at least one copy arrived as it was sent.
    fn intact(&self) -> bool {
        self.arrivals.len() > self.corrupted
    }

    /// The arrow's tip. The trace does not say which copy was corrupted, so a datagram counts as
    /// corrupted only if every copy that arrived was.
    fn tip(&self) -> Tip {
        match self.arrivals.first() {
            None => Tip::Lost,
            Some(_) if !self.intact() => Tip::Corrupt,
            Some(&(_, late)) if late => Tip::Late,
            Some(_) => Tip::Arrived,
        }
    }

    /// What the link did to it, for the right-hand column: `+15.3ms`, `dropped (loss)`,
    /// `dup: +15.3ms and dropped (loss)`.
    fn describe(&self, sent: Duration) -> String {
        let mut fates: Vec<String> = self
            .arrivals
            .iter()
            .map(|&(at, _)| format!("+{:.1}ms", at.saturating_sub(sent).as_secs_f64() * 1e3))
            .collect();
        fates.extend(self.drops.iter().map(|cause| format!("dropped ({cause})")));
        let mut text = fates.join(" and ");
        if self.corrupted > 0 {
            let which = if self.arrivals.len() > 1 {
                "a copy"
            } else {
                "it"
            };
            text.push_str(&format!(
                ", corrupted: the receiver's checksum drops {which}"
            ));
        }
        if self.duplicated {
            text = format!("dup: {text}");
        }
        text
    }
}

/// How an arrow ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tip {
    /// `->`: arrived in the order sent.
    Arrived,
    /// `~>`: arrived after a datagram sent later on the same link.
    Late,
    /// `#>`: arrived with flipped bits.
    Corrupt,
    /// `X`: never arrived.
    Lost,
}

/// What the first pass over the trace learns.
struct Study {
    /// How many messages are drawn (ids below this).
    messages: u64,
    /// What became of each datagram, by trace id.
    copies: HashMap<u64, Copies>,
    /// The message id of each text A sent, to recognise its delivery at B.
    texts: HashMap<String, u64>,
    /// The sequence numbers A's data of the chosen messages used.
    chosen: BTreeSet<u64>,
    /// When the chosen messages were all settled: nothing later is drawn.
    end: Duration,
    /// TCP: each side's initial sequence number (from its SYN), so segments are labelled with
    /// sequence numbers relative to it, as Wireshark shows them.
    isn: HashMap<Side, u32>,
}

impl Study {
    fn of(trace: &Trace, messages: u64) -> Study {
        let mut study = Study {
            messages,
            copies: HashMap::new(),
            texts: HashMap::new(),
            chosen: BTreeSet::new(),
            end: Duration::ZERO,
            isn: HashMap::new(),
        };
        for entry in &trace.entries {
            study.learn(entry.at, &entry.event);
        }
        study.end = end_of_interest(trace, &study.texts, messages);
        study
    }

    fn learn(&mut self, at: Duration, event: &TraceEvent) {
        fn copies<'s>(datagram: &u64, study: &'s mut Study) -> &'s mut Copies {
            study.copies.entry(*datagram).or_default()
        }
        match event {
            TraceEvent::Delivered { datagram, late, .. } => {
                copies(datagram, self).arrivals.push((at, *late));
            }
            TraceEvent::Dropped {
                datagram, cause, ..
            } => copies(datagram, self).drops.push(cause.to_string()),
            TraceEvent::TooLarge { datagram, mtu, .. } => copies(datagram, self)
                .drops
                .push(format!("larger than the path MTU of {mtu} bytes")),
            TraceEvent::Dark { datagram, .. } => {
                copies(datagram, self).drops.push("link dark".to_owned());
            }
            TraceEvent::Corrupted { datagram, .. } => copies(datagram, self).corrupted += 1,
            TraceEvent::Duplicated { datagram, .. } => copies(datagram, self).duplicated = true,
            TraceEvent::Send {
                side: Side::A,
                text,
                result: Ok(id),
            } => {
                self.texts.insert(text.clone(), *id);
            }
            TraceEvent::Transmit {
                side: Side::A,
                packet: PacketSummary::Data { seq, message, .. },
                ..
            } if *message < self.messages => {
                self.chosen.insert(*seq);
            }
            TraceEvent::Transmit {
                side,
                packet: PacketSummary::Tcp(segment),
                ..
            } if segment.flags.contains('S') => {
                self.isn.entry(*side).or_insert(segment.seq);
            }
            _ => {}
        }
    }

    /// The trace entries up to the end of interest, with their index in the trace.
    fn window<'t>(&self, trace: &'t Trace) -> impl Iterator<Item = (usize, &'t TraceEntry)> {
        let end = self.end;
        trace
            .entries
            .iter()
            .enumerate()
            .take_while(move |(_, e)| e.at <= end)
    }

    /// Whether B's ack of `datagram` answers the chosen messages: it acknowledges one of their
    /// sequence numbers that no earlier ack which reached A (`learnt`) acknowledged. If it
    /// does and reaches A intact, what it acknowledges is learnt.
    fn answers(
        &self,
        datagram: u64,
        cumulative: u64,
        ranges: &[(u64, u64)],
        learnt: &mut HashSet<u64>,
    ) -> bool {
        let acked =
            |seq: u64| seq < cumulative || ranges.iter().any(|&(a, b)| a <= seq && seq <= b);
        let news: Vec<u64> = self
            .chosen
            .iter()
            .copied()
            .filter(|&seq| acked(seq) && !learnt.contains(&seq))
            .collect();
        if news.is_empty() {
            return false;
        }
        if self.copies.get(&datagram).is_some_and(Copies::intact) {
            learnt.extend(news);
        }
        true
    }
}

/// Which trace entries (by index) are the `Transmit`s to draw: the chosen messages' datagrams,
/// the acks that answer them, and the handshake and keepalives, within the window.
fn picked_transmits(trace: &Trace, study: &Study) -> HashSet<usize> {
    let mut picked = HashSet::new();
    let mut learnt = HashSet::new();
    for (index, entry) in study.window(trace) {
        let TraceEvent::Transmit {
            side,
            datagram,
            packet,
            ..
        } = &entry.event
        else {
            continue;
        };
        let wanted = match packet {
            PacketSummary::Data { message: id, .. } | PacketSummary::Raw { seq: id } => {
                *side == Side::A && *id < study.messages
            }
            PacketSummary::Ack { cumulative, ranges } => {
                *side == Side::B && study.answers(*datagram, *cumulative, ranges, &mut learnt)
            }
            // The ladder reads numbers an encrypted datagram hides: never picked.
            PacketSummary::Opaque | PacketSummary::Encrypted { .. } => false,
            // TCP: every segment until the chosen messages are settled. Which bytes belong to
            // which message is the application's framing, not the segment's; the window ends
            // with the first segment from B after the last chosen delivery (its ACK).
            PacketSummary::Tcp(_) => true,
            PacketSummary::Hello
            | PacketSummary::Welcome
            | PacketSummary::Ping
            | PacketSummary::Pong
            | PacketSummary::Probe { .. }
            | PacketSummary::ProbeAck
            | PacketSummary::Piece { .. }
            | PacketSummary::Close => true,
        };
        if wanted {
            picked.insert(index);
        }
    }
    picked
}

/// Whether the timer that fired at trace entry `index`, on `side`, is drawn: `side` hands out a
/// drawn datagram at the same instant, before its next timer.
fn timer_acts(trace: &Trace, index: usize, side: Side, picked: &HashSet<usize>) -> bool {
    let Some(at) = trace.entries.get(index).map(|e| e.at) else {
        return false;
    };
    for (i, entry) in trace.entries.iter().enumerate().skip(index + 1) {
        if entry.at != at {
            break;
        }
        match &entry.event {
            TraceEvent::Timer { side: s, .. } if *s == side => break,
            TraceEvent::Transmit { side: s, .. } if *s == side && picked.contains(&i) => {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// One row of the diagram.
struct Row {
    at: Duration,
    what: What,
}

/// What a row shows.
enum What {
    /// A datagram's arrow.
    Arrow(Arrow),
    /// A named timer fired.
    Timer { side: Side, name: &'static str },
    /// Something an application was told.
    App(String),
    /// Similar rows not drawn, the last of them at `until`.
    More {
        count: usize,
        noun: &'static str,
        until: Duration,
    },
}

/// A datagram, and what became of it.
struct Arrow {
    side: Side,
    packet: PacketSummary,
    /// The text on the arrow.
    label: String,
    /// `Some` if it is a retransmission, with the sender's reason where known.
    resend: Option<Option<ResendCause>>,
    tip: Tip,
    /// The right-hand column.
    fate: String,
    /// Some copy arrived.
    arrived: bool,
    duplicated: bool,
    /// Some copy arrived corrupted.
    corrupted: bool,
}

/// The rows of the window, before collapsing.
fn rows(trace: &Trace, study: &Study, causes: &[Option<ResendCause>]) -> Vec<Row> {
    let picked = picked_transmits(trace, study);
    let mut sent_seqs = HashSet::new();
    let mut tcp_high: HashMap<Side, u32> = HashMap::new();
    let mut a_sent = 0;
    let mut rows = Vec::new();
    for (index, entry) in study.window(trace) {
        let at = entry.at;
        let what = match &entry.event {
            TraceEvent::Transmit {
                side,
                datagram,
                packet,
                ..
            } => {
                // `causes` has one entry per datagram A handed out, drawn or not.
                let cause = match side {
                    Side::A => {
                        a_sent += 1;
                        causes.get(a_sent - 1).copied().flatten()
                    }
                    Side::B => None,
                };
                let resent = match packet {
                    PacketSummary::Tcp(segment) => tcp_resent(study, *side, segment, &mut tcp_high),
                    _ => seq_of(packet).is_some_and(|seq| !sent_seqs.insert((*side, seq))),
                };
                if !picked.contains(&index) {
                    continue;
                }
                let empty = Copies::default();
                let copies = study.copies.get(datagram).unwrap_or(&empty);
                What::Arrow(Arrow {
                    side: *side,
                    packet: packet.clone(),
                    label: match packet {
                        PacketSummary::Tcp(segment) => tcp_label(study, *side, segment, resent),
                        _ => label(packet, resent, study.chosen.last().copied()),
                    },
                    resend: resent.then_some(cause),
                    tip: copies.tip(),
                    fate: copies.describe(at),
                    arrived: !copies.arrivals.is_empty(),
                    duplicated: copies.duplicated,
                    corrupted: copies.corrupted > 0,
                })
            }
            TraceEvent::Timer {
                side,
                timer: Some(name),
            } if timer_acts(trace, index, *side, &picked) => What::Timer { side: *side, name },
            TraceEvent::App { side, event } => match app_note(study, *side, event) {
                Some(text) => What::App(text),
                None => continue,
            },
            _ => continue,
        };
        rows.push(Row { at, what });
    }
    rows
}

/// The sequence number a retransmission would reuse.
fn seq_of(packet: &PacketSummary) -> Option<u64> {
    match packet {
        PacketSummary::Data { seq, .. } | PacketSummary::Raw { seq } => Some(*seq),
        _ => None,
    }
}

/// What an application was told about a chosen message, if anything.
fn app_note(study: &Study, side: Side, event: &Event) -> Option<String> {
    match (side, event) {
        (Side::B, Event::Message { text, .. }) => study
            .texts
            .get(text)
            .filter(|&&id| id < study.messages)
            .map(|id| format!("B's app gets message #{id}")),
        (Side::A, Event::Lost { id }) if id.0 < study.messages => {
            Some(format!("A gives up on message #{}", id.0))
        }
        _ => None,
    }
}

impl Row {
    /// The rows that may be collapsed together share a group: acks from one side with the same
    /// cumulative number and the same fate, or keepalives with the same fate.
    fn group(&self) -> Option<(&'static str, String)> {
        let What::Arrow(arrow) = &self.what else {
            return None;
        };
        match &arrow.packet {
            PacketSummary::Ack { cumulative, .. } => Some((
                "acks",
                format!(
                    "{} {cumulative} {:?} {}",
                    arrow.side, arrow.tip, arrow.duplicated
                ),
            )),
            PacketSummary::Tcp(segment) if segment.flags == "A" && segment.len == 0 => Some((
                "acks",
                format!(
                    "{} {:?} {:?} {}",
                    arrow.side, segment.ack, arrow.tip, arrow.duplicated
                ),
            )),
            PacketSummary::Ping
            | PacketSummary::Pong
            | PacketSummary::Probe { .. }
            | PacketSummary::ProbeAck => Some((
                "keepalives",
                format!("{:?} {}", arrow.tip, arrow.duplicated),
            )),
            _ => None,
        }
    }

    /// The row as one line of text.
    fn line(&self) -> String {
        let time = format!("{:>9.3}s", self.at.as_secs_f64());
        let blank = " ".repeat(ARROW);
        match &self.what {
            What::Arrow(arrow) => {
                let mut notes = Vec::new();
                match arrow.resend {
                    Some(Some(ResendCause::Timeout)) => notes.push("resent after a timeout"),
                    Some(Some(ResendCause::Fast)) => notes.push("fast resend"),
                    Some(None) => notes.push("resent"),
                    None => {}
                }
                notes.push(&arrow.fate);
                let drawn = draw_arrow(arrow.side, &arrow.label, arrow.tip);
                format!("{time}  {drawn}  {}", notes.join(", "))
            }
            What::Timer { side, name } => format!("{time}  |{blank}|  {side} timer {name}"),
            What::App(text) => format!("{time}  |{blank}|  {text}"),
            What::More { count, noun, until } => format!(
                "{time}  |{blank}|  … {count} more {noun} like these, until {:.3}s",
                until.as_secs_f64()
            ),
        }
    }
}

/// Collapses each run of [`COLLAPSE_FROM`] or more consecutive rows of one group to its first
/// and last row, with a [`What::More`] row between.
fn collapse(rows: Vec<Row>) -> Vec<Row> {
    let mut out = Vec::with_capacity(rows.len());
    let mut run: Vec<Row> = Vec::new();
    for row in rows {
        let group = row.group();
        if run.first().is_some_and(|first| first.group() != group) {
            flush_run(&mut run, &mut out);
        }
        match group {
            Some(_) => run.push(row),
            None => out.push(row),
        }
    }
    flush_run(&mut run, &mut out);
    out
}

fn flush_run(run: &mut Vec<Row>, out: &mut Vec<Row>) {
    let noun = run.first().and_then(Row::group).map(|(noun, _)| noun);
    match (noun, run.len() >= COLLAPSE_FROM) {
        (Some(noun), true) => {
            let mut rows = std::mem::take(run).into_iter();
            let (first, last) = (rows.next(), rows.next_back());
            let hidden: Vec<Row> = rows.collect();
            out.extend(first);
            if let (Some(from), Some(to)) = (hidden.first(), hidden.last()) {
                out.push(Row {
                    at: from.at,
                    what: What::More {
                        count: hidden.len(),
                        noun,
                        until: to.at,
                    },
                });
            }
            out.extend(last);
        }
        _ => out.append(run),
    }
}

/// The text on an arrow: `data s5 m4`, `data s9 m4 2/3 RESEND`, `ack 4 sack 6-7,9 …`,
/// `raw #3`. An ack's selective ranges are shown up to `last_chosen`, the highest sequence number
/// of the chosen messages.
fn label(packet: &PacketSummary, resent: bool, last_chosen: Option<u64>) -> String {
    let mut label = match packet {
        PacketSummary::Raw { seq } => format!("raw #{seq}"),
        PacketSummary::Data {
            seq,
            message,
            fragment,
            fragments,
        } if *fragments > 1 => format!("data s{seq} m{message} {}/{fragments}", fragment + 1),
        PacketSummary::Data { seq, message, .. } => format!("data s{seq} m{message}"),
        PacketSummary::Ack { cumulative, ranges } => {
            ack_label(*cumulative, ranges, last_chosen.unwrap_or(0))
        }
        other => other.to_string(),
    };
    if resent {
        label.push_str(" RESEND");
    }
    label
}

/// `ack 4`, or `ack 4 sack 6-7,9 …`: the selective ranges clipped to `up_to` (at most
/// [`SHOWN_RANGES`] of them), then ` …` if the ack says more, about later packets.
fn ack_label(cumulative: u64, ranges: &[(u64, u64)], up_to: u64) -> String {
    let mut label = format!("ack {cumulative}");
    let shown: Vec<(u64, u64)> = ranges
        .iter()
        .filter(|&&(first, _)| first <= up_to)
        .map(|&(first, last)| (first, last.min(up_to)))
        .take(SHOWN_RANGES)
        .collect();
    for (i, &(first, last)) in shown.iter().enumerate() {
        label.push_str(if i == 0 { " sack " } else { "," });
        if first == last {
            let _ = write!(label, "{first}");
        } else {
            let _ = write!(label, "{first}-{last}");
        }
    }
    let clipped = ranges.iter().any(|&(_, last)| last > up_to);
    let elided = ranges.iter().filter(|&&(first, _)| first <= up_to).count() > SHOWN_RANGES;
    if clipped || elided {
        label.push_str(" …");
    }
    label
}

/// `|--- label ------->|`, `|<----- label ---|`, late `~>`, corrupted `#>`, or a drop that stops
/// short: `|--- label ---X    |`.
fn draw_arrow(side: Side, label: &str, tip: Tip) -> String {
    let body = format!(" {label} ");
    let head = 3;
    // Tail, label and tip (2 characters) fill the arrow exactly.
    let inner = ARROW.saturating_sub(head + body.chars().count() + 2).max(2);
    let line = match side {
        Side::A => {
            let shaft = format!("---{body}{}", "-".repeat(inner));
            match tip {
                Tip::Lost => {
                    // Stop three quarters of the way across.
                    let keep = (shaft.chars().count() * 3 / 4).max(head + body.chars().count());
                    let cut: String = shaft.chars().take(keep).collect();
                    format!("{cut}X")
                }
                Tip::Arrived => format!("{shaft}->"),
                Tip::Late => format!("{shaft}~>"),
                Tip::Corrupt => format!("{shaft}#>"),
            }
        }
        Side::B => {
            let shaft = format!("{}{body}---", "-".repeat(inner));
            match tip {
                Tip::Lost => {
                    let total = shaft.chars().count() + 2;
                    let keep = (total * 3 / 4).max(body.chars().count() + 3);
                    let skip = shaft.chars().count().saturating_sub(keep - 1);
                    let cut: String = shaft.chars().skip(skip).collect();
                    format!("{:>ARROW$}", format!("X{cut}"))
                }
                Tip::Arrived => format!("<-{shaft}"),
                Tip::Late => format!("<~{shaft}"),
                Tip::Corrupt => format!("<#{shaft}"),
            }
        }
    };
    let line: String = line.chars().take(ARROW).collect();
    format!("|{line:<ARROW$}|")
}

/// The time by which the first `messages` messages were all settled: delivered to B's
/// application and, where the mode acknowledges, acknowledged to A (or given up on). A raw
/// message that was lost settles when it was sent.
fn end_of_interest(trace: &Trace, texts: &HashMap<String, u64>, messages: u64) -> Duration {
    let mut end = Duration::ZERO;
    for entry in &trace.entries {
        let relevant = match &entry.event {
            TraceEvent::Transmit {
                side: Side::A,
                packet: PacketSummary::Data { message: m, .. } | PacketSummary::Raw { seq: m },
                ..
            } => *m < messages,
            TraceEvent::App {
                side: Side::B,
                event: Event::Message { text, .. },
            } => texts.get(text).is_some_and(|&id| id < messages),
            TraceEvent::App {
                side: Side::A,
                event: Event::Delivered { id, .. } | Event::Lost { id },
            } => id.0 < messages,
            _ => false,
        };
        if relevant {
            end = end.max(entry.at);
        }
    }
    tcp_ack_after(trace, end).unwrap_or(end)
}

/// TCP: the first segment B sends at or after `end` (the ACK of the last chosen bytes), where the
/// trace holds TCP segments; `None` otherwise.
fn tcp_ack_after(trace: &Trace, end: Duration) -> Option<Duration> {
    trace.entries.iter().find_map(|e| match &e.event {
        TraceEvent::Transmit {
            side: Side::B,
            packet: PacketSummary::Tcp(_),
            ..
        } if e.at >= end => Some(e.at),
        _ => None,
    })
}

/// The sequence number `seq` of `side` relative to its initial one (0 until its SYN is seen).
fn relative(study: &Study, side: Side, seq: u32) -> u32 {
    seq.wrapping_sub(study.isn.get(&side).copied().unwrap_or(seq))
}

/// Whether a TCP segment resends sequence space `side` has sent before (its start is below the
/// highest end so far, kept in `high`).
fn tcp_resent(
    study: &Study,
    side: Side,
    segment: &SegmentSummary,
    high: &mut HashMap<Side, u32>,
) -> bool {
    if !segment.occupies_sequence() {
        return false;
    }
    let start = relative(study, side, segment.seq);
    let syn_fin = u32::from(segment.flags.contains('S')) + u32::from(segment.flags.contains('F'));
    let end = start.wrapping_add(segment.len as u32 + syn_fin);
    let top = high.entry(side).or_insert(0);
    let resent = start < *top;
    *top = (*top).max(end);
    resent
}

/// A TCP segment's text on its arrow: `SYN`, `SYN ACK`, `seq 1-67 ack 1`, `ack 67 sack
/// 133-199`, `FIN seq 67 ack 1`, with sequence numbers relative to each side's initial one.
fn tcp_label(study: &Study, side: Side, segment: &SegmentSummary, resent: bool) -> String {
    let other = match side {
        Side::A => Side::B,
        Side::B => Side::A,
    };
    let flag = |c| segment.flags.contains(c);
    let mut parts = Vec::new();
    if flag('R') {
        parts.push("RST".to_owned());
    }
    if flag('S') {
        parts.push(if flag('A') { "SYN ACK" } else { "SYN" }.to_owned());
    }
    if flag('F') {
        parts.push("FIN".to_owned());
    }
    let seq = relative(study, side, segment.seq);
    if segment.len > 0 {
        parts.push(format!(
            "seq {seq}-{}",
            seq.wrapping_add(segment.len as u32)
        ));
    } else if flag('F') {
        parts.push(format!("seq {seq}"));
    }
    if let Some(ack) = segment.ack.filter(|_| !flag('S')) {
        parts.push(format!("ack {}", relative(study, other, ack)));
    }
    for (i, (left, right)) in segment.sack.iter().enumerate() {
        let (left, right) = (
            relative(study, other, *left),
            relative(study, other, *right),
        );
        parts.push(format!(
            "{}{left}-{right}",
            if i == 0 { "sack " } else { "," }
        ));
    }
    let mut label = parts.join(" ");
    if resent {
        label.push_str(" RESEND");
    }
    label
}

/// The legend entry of a TCP segment.
fn tcp_mark(segment: &SegmentSummary) -> Mark {
    if segment.flags.contains('S') {
        Mark::TcpSyn
    } else if segment.flags.contains('F') {
        Mark::TcpFin
    } else if segment.len > 0 {
        Mark::TcpData
    } else {
        Mark::TcpAck
    }
}

/// A mark or label the legend can explain, in the legend's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mark {
    Data,
    Raw,
    Ack,
    TcpSyn,
    TcpData,
    TcpAck,
    TcpFin,
    Handshake,
    Keepalive,
    Probe,
    Piece,
    Close,
    Arrived,
    Late,
    Lost,
    Corrupt,
    Transit,
    Dup,
    Resend,
    More,
}

impl Mark {
    /// The mark as drawn, and what it means.
    fn explain(self) -> (&'static str, &'static str) {
        match self {
            Mark::Data => (
                "data s5 m4 1/2",
                "A's data packet: sequence number 5, message #4 (fragment 1 of 2, when split)",
            ),
            Mark::Raw => (
                "raw #3",
                "a raw-mode datagram with message #3 (sent once, never acknowledged)",
            ),
            Mark::Ack => (
                "ack 4 sack 6-7 …",
                "B's ack: it has every packet below s4, and s6 to s7 (… and later packets, not \
                 drawn); drawn only if it is the first to tell A about a packet of these \
                 messages, or was lost or corrupted before that one",
            ),
            Mark::TcpSyn => (
                "SYN, SYN ACK",
                "TCP's handshake: A's SYN and B's SYN-ACK (the ACK that completes it follows); \
                 A's bytes wait for it",
            ),
            Mark::TcpData => (
                "seq 1-67 ack 1",
                "a TCP segment with stream bytes 1 to 67 (numbers relative to the sender's \
                 initial sequence number, as Wireshark shows them; the message framing is not \
                 visible in a segment), acknowledging the other side's bytes below 1",
            ),
            Mark::TcpAck => (
                "ack 67 sack x-y",
                "a TCP acknowledgement: every byte below 67 arrived, and bytes x to y-1 (a SACK \
                 block: smoltcp sends one, and its sender ignores them)",
            ),
            Mark::TcpFin => ("FIN", "TCP's half-close: this side has sent everything"),
            Mark::Handshake => (
                "hello, welcome",
                "the handshake: A's hello and B's answer; A's messages wait for it",
            ),
            Mark::Keepalive => (
                "ping, pong",
                "a keepalive probe from a side that has been quiet, and its answer",
            ),
            Mark::Probe => (
                "probe 1452B",
                "a path MTU probe (padding, no data) of that many bytes, and its answer                  (probe-ack): does the path carry datagrams that large?",
            ),
            Mark::Piece => (
                "piece 0/2",
                "piece 0 of 2 of a data packet cut for a larger path MTU than the path now \
                 carries (after a black hole), resent in pieces",
            ),
            Mark::Close => ("close", "the session ends"),
            Mark::Arrived => (
                "->  <-",
                "arrived, after every datagram sent before it on that link",
            ),
            Mark::Late => (
                "~>  <~",
                "arrived late: a datagram sent after it on the same link arrived first (the \
                 link's delay varies by its jitter, or its reorder knob sent one ahead)",
            ),
            Mark::Lost => ("X", "lost on the link, for the reason in brackets"),
            Mark::Corrupt => (
                "#>  <#",
                "arrived with bits flipped on the link: the receiver's checksum drops it",
            ),
            Mark::Transit => ("+15.3ms", "time on the link, from sending to arrival"),
            Mark::Dup => (
                "dup",
                "the link delivered two copies; the fate of each follows",
            ),
            Mark::Resend => (
                "RESEND",
                "sent again under the same sequence number: after a timeout (the rto timer) or \
                 fast (selective acks showed it missing; TCP: three duplicate ACKs)",
            ),
            Mark::More => (
                "…",
                "rows like those either side, not drawn: acks with the same cumulative number \
                 and fate, or keepalives",
            ),
        }
    }
}

/// What a named timer firing means, for the legend.
fn timer_meaning(name: &str) -> &'static str {
    match name {
        "handshake" => "A's hello went unanswered: send it again",
        "welcome" => "B's welcome went unconfirmed: send it again",
        "rto" => "the retransmission timeout (RFC 6298): resend the oldest unacknowledged packet",
        "loss" => "packets that selective acks show missing are now old enough to count as lost",
        "delayed ack" => "an acknowledgement has waited long enough: send it",
        "tail copy" => "the newest packet is still out after half a round trip: send a copy",
        "keepalive" => "this side has been quiet: send a ping",
        "restart probe" => "the peer claims to have restarted: check with a ping",
        "linger" => "closing gave up waiting for acknowledgements",
        "idle" => "nothing heard for too long: the peer is unreachable",
        _ => "the endpoint's timer of that name fired",
    }
}

impl Row {
    /// The marks and labels this row shows, and the timer it names.
    fn marks(&self, marks: &mut BTreeSet<Mark>, timers: &mut BTreeSet<&'static str>) {
        match &self.what {
            What::Arrow(arrow) => {
                marks.insert(match arrow.packet {
                    PacketSummary::Data { .. } => Mark::Data,
                    PacketSummary::Raw { .. } => Mark::Raw,
                    PacketSummary::Ack { .. } => Mark::Ack,
                    PacketSummary::Hello | PacketSummary::Welcome => Mark::Handshake,
                    PacketSummary::Ping | PacketSummary::Pong => Mark::Keepalive,
                    PacketSummary::Probe { .. } | PacketSummary::ProbeAck => Mark::Probe,
                    PacketSummary::Piece { .. } => Mark::Piece,
                    // An opaque or encrypted datagram is never picked; it would share the close's entry.
                    PacketSummary::Close
                    | PacketSummary::Opaque
                    | PacketSummary::Encrypted { .. } => Mark::Close,
                    PacketSummary::Tcp(ref segment) => tcp_mark(segment),
                });
                marks.insert(match arrow.tip {
                    Tip::Arrived => Mark::Arrived,
                    Tip::Late => Mark::Late,
                    Tip::Corrupt => Mark::Corrupt,
                    Tip::Lost => Mark::Lost,
                });
                let extra = [
                    (arrow.arrived, Mark::Transit),
                    (arrow.duplicated, Mark::Dup),
                    (arrow.corrupted, Mark::Corrupt),
                    (arrow.resend.is_some(), Mark::Resend),
                ];
                marks.extend(extra.into_iter().filter(|(on, _)| *on).map(|(_, m)| m));
            }
            What::Timer { name, .. } => {
                timers.insert(name);
            }
            What::App(_) => {}
            What::More { .. } => {
                marks.insert(Mark::More);
            }
        }
    }
}

/// The legend of every mark, label and timer `rows` use, and of no other.
fn legend(rows: &[Row]) -> String {
    let mut marks = BTreeSet::new();
    let mut timers = BTreeSet::new();
    for row in rows {
        row.marks(&mut marks, &mut timers);
    }
    let mut entries: Vec<(String, &str)> = marks
        .into_iter()
        .map(|mark| {
            let (shown, meaning) = mark.explain();
            (shown.to_owned(), meaning)
        })
        .collect();
    entries.extend(
        timers
            .into_iter()
            .map(|name| (format!("timer {name}"), timer_meaning(name))),
    );
    let mut out = String::from("legend:\n");
    for (shown, meaning) in entries {
        let mut key = format!("{shown:<LEGEND_KEY$}");
        for line in wrap(meaning, LEGEND_WIDTH - LEGEND_KEY - 3) {
            let _ = writeln!(out, "  {key} {line}");
            key = " ".repeat(LEGEND_KEY);
        }
    }
    out
}

/// `text` in lines of at most `width` characters, broken at spaces (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::experiment::config::{ExperimentConfig, LossPattern, Mode, SweepPoint};
    use crate::experiment::run::{endpoints, simulate_with};
    use crate::impairment::{DropCause, ImpairmentConfig};
    use crate::probability::Probability;
    use crate::sim::{Link, TraceEntry, ADDR_A};

    /// Draws the first `n` messages of a real simulated run of 20 messages.
    fn ladder_with(mode: Mode, link: ImpairmentConfig, loss: f64, seed: u64, n: u64) -> String {
        let config = ExperimentConfig {
            messages: 20,
            link,
            ..ExperimentConfig::default()
        };
        let point = SweepPoint {
            loss: Probability::new(loss).unwrap(),
            pattern: LossPattern::Independent,
        };
        let (a, b) = endpoints(mode, seed).unwrap();
        let (outcome, metrics) =
            simulate_with(&config, &point, seed, CauseRecorder::new(a), b).unwrap();
        let text = render(&outcome.trace, n, outcome.a.causes());
        // Every resend of the whole run is attributed, and the counts agree with the sender's.
        let causes = outcome.a.causes();
        let count = |c| causes.iter().filter(|x| **x == Some(c)).count() as u64;
        assert_eq!(count(ResendCause::Timeout), metrics.retransmits_timeout);
        assert_eq!(count(ResendCause::Fast), metrics.retransmits_fast);
        text
    }

    fn ladder(mode: Mode, loss: f64, seed: u64, n: u64) -> String {
        ladder_with(mode, ExperimentConfig::default().link, loss, seed, n)
    }

    /// The diagram's lines (without the header and the legend).
    fn diagram(text: &str) -> Vec<&str> {
        text.lines()
            .skip(1)
            .take_while(|l| *l != "legend:")
            .collect()
    }

    /// The keys the legend explains (its first column).
    fn legend_keys(text: &str) -> BTreeSet<String> {
        text.lines()
            .skip_while(|l| *l != "legend:")
            .skip(1)
            .filter(|l| !l[2..].starts_with(' '))
            .map(|l| l.chars().skip(2).take(LEGEND_KEY).collect::<String>())
            .map(|key| key.trim_end().to_owned())
            .collect()
    }

    /// The legend keys that the diagram's lines call for, found by reading them.
    fn marks_seen(text: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for line in diagram(text) {
            let column: String = line.chars().skip(12).take(ARROW + 2).collect();
            let notes: String = line.chars().skip(12 + ARROW + 4).collect();
            let mut see = |on: bool, key: &str| {
                if on {
                    seen.insert(key.to_owned());
                }
            };
            see(column.contains("->|") || column.contains("|<-"), "->  <-");
            see(column.contains("~>|") || column.contains("|<~"), "~>  <~");
            see(column.contains("#>|") || column.contains("|<#"), "#>  <#");
            see(column.contains('X'), "X");
            see(column.contains(" data s"), "data s5 m4 1/2");
            see(column.contains(" raw #"), "raw #3");
            see(column.contains(" ack "), "ack 4 sack 6-7 …");
            see(
                column.contains(" hello ") || column.contains(" welcome "),
                "hello, welcome",
            );
            see(
                column.contains(" ping ") || column.contains(" pong "),
                "ping, pong",
            );
            see(
                column.contains(" probe ") || column.contains(" probe-ack "),
                "probe 1452B",
            );
            see(column.contains(" piece "), "piece 0/2");
            see(column.contains("RESEND"), "RESEND");
            see(notes.contains("ms"), "+15.3ms");
            see(notes.starts_with("dup:"), "dup");
            see(notes.contains("corrupted"), "#>  <#");
            see(notes.starts_with("… "), "…");
            if let Some(name) = notes
                .strip_prefix("A timer ")
                .or(notes.strip_prefix("B timer "))
            {
                seen.insert(format!("timer {name}"));
            }
        }
        seen
    }

    fn entry(ms: u64, event: TraceEvent) -> TraceEntry {
        TraceEntry {
            at: Duration::from_millis(ms),
            event,
        }
    }

    fn send(text: &str, id: u64) -> TraceEvent {
        TraceEvent::Send {
            side: Side::A,
            text: text.to_owned(),
            result: Ok(id),
        }
    }

    fn transmit(side: Side, datagram: u64, packet: PacketSummary) -> TraceEvent {
        TraceEvent::Transmit {
            side,
            datagram,
            len: 40,
            packet,
        }
    }

    fn data(seq: u64) -> PacketSummary {
        PacketSummary::Data {
            seq,
            message: seq,
            fragment: 0,
            fragments: 1,
        }
    }

    fn ack(cumulative: u64, ranges: &[(u64, u64)]) -> PacketSummary {
        PacketSummary::Ack {
            cumulative,
            ranges: ranges.to_vec(),
        }
    }

    fn deliver(link: Link, datagram: u64, late: bool) -> TraceEvent {
        TraceEvent::Delivered {
            link,
            datagram,
            late,
        }
    }

    fn drop(link: Link, datagram: u64) -> TraceEvent {
        TraceEvent::Dropped {
            link,
            datagram,
            cause: DropCause::Loss,
        }
    }

    fn timer(side: Side, name: &'static str) -> TraceEvent {
        TraceEvent::Timer {
            side,
            timer: Some(name),
        }
    }

    fn app(side: Side, event: Event) -> TraceEvent {
        TraceEvent::App { side, event }
    }

    fn got(text: &str) -> Event {
        Event::Message {
            from: ADDR_A,
            nick: "a".to_owned(),
            seq: None,
            text: text.to_owned(),
        }
    }

    /// Messages 0 and 1 are drawn, 2 to 4 are not. s0 is lost and resent after a timeout; B
    /// answers s1 once, then acks packets of undrawn messages only (not drawn), then five acks
    /// telling of s0 are lost (collapsed) before one gets through.
    fn handcrafted() -> (Trace, Vec<Option<ResendCause>>) {
        use Link::{AToB, BToA};
        let (a, b) = (Side::A, Side::B);
        let mut entries = vec![
            entry(0, send("m0", 0)),
            entry(0, send("m1", 1)),
            entry(0, send("m2", 2)),
            entry(0, send("m3", 3)),
            entry(0, transmit(a, 0, data(0))),
            entry(0, drop(AToB, 0)),
            entry(0, transmit(a, 1, data(1))),
            entry(0, transmit(a, 2, data(2))),
            entry(0, transmit(a, 3, data(3))),
            entry(20, deliver(AToB, 1, false)),
            entry(20, app(b, got("m1"))),
            entry(20, transmit(b, 4, ack(0, &[(1, 1)]))),
            entry(21, deliver(AToB, 3, false)),
            entry(21, transmit(b, 5, ack(0, &[(1, 1), (3, 3)]))),
            entry(22, deliver(AToB, 2, true)),
            entry(22, transmit(b, 6, ack(0, &[(1, 3)]))),
            entry(30, timer(b, "delayed ack")),
            entry(40, deliver(BToA, 4, false)),
            entry(41, deliver(BToA, 5, false)),
            entry(42, deliver(BToA, 6, false)),
            entry(100, timer(a, "rto")),
            entry(100, transmit(a, 7, data(0))),
            entry(120, deliver(AToB, 7, true)),
            entry(120, app(b, got("m0"))),
        ];
        for datagram in 8..13 {
            entries.push(entry(120, transmit(b, datagram, ack(4, &[]))));
            entries.push(entry(120, drop(BToA, datagram)));
        }
        entries.extend([
            entry(125, timer(a, "loss")),
            entry(130, transmit(b, 13, ack(4, &[]))),
            entry(150, deliver(BToA, 13, false)),
            entry(
                150,
                app(
                    a,
                    Event::Delivered {
                        id: MessageId(0),
                        rtt: None,
                    },
                ),
            ),
            entry(
                150,
                app(
                    a,
                    Event::Delivered {
                        id: MessageId(1),
                        rtt: None,
                    },
                ),
            ),
            entry(500, timer(a, "rto")),
            entry(500, transmit(a, 14, data(4))),
        ]);
        let causes = vec![None, None, None, None, Some(ResendCause::Timeout), None];
        (Trace { entries }, causes)
    }

    #[test]
    fn a_handcrafted_trace_draws_the_chosen_packets_and_the_acks_that_answer_them() {
        let (trace, causes) = handcrafted();
        let text = render(&trace, 2, &causes);
        let lines = diagram(&text);
        let arrows: Vec<&str> = lines.iter().copied().filter(|l| l.contains("--")).collect();
        let label = |l: &str| {
            l[13..13 + ARROW]
                .trim_matches(|c| "-<>~#X ".contains(c))
                .to_owned()
        };
        let labels: Vec<String> = arrows.iter().map(|l| label(l)).collect();
        assert_eq!(
            labels,
            [
                "data s0 m0",
                "data s1 m1",
                "ack 0 sack 1",
                "data s0 m0 RESEND",
                "ack 4",
                "ack 4",
                "ack 4",
            ],
            "{text}"
        );
        // s0 first sent, lost; the resend arrives late, after a timeout.
        assert!(
            arrows[0].contains("X ") && arrows[0].ends_with("dropped (loss)"),
            "{text}"
        );
        assert!(arrows[3].contains("~>|"), "{text}");
        assert!(
            arrows[3].ends_with("resent after a timeout, +20.0ms"),
            "{text}"
        );
        // The acks of s2 and s3 alone are not drawn; neither are packets of messages 2 to 4.
        let drawn = lines.concat();
        assert!(!drawn.contains("sack 1,3") && !drawn.contains(" s2") && !drawn.contains(" m4"));
        // The five lost acks of s0: the first, "… 3 more", the last; then the one that got through.
        assert!(
            arrows[4].contains("X-") && arrows[5].contains("X-"),
            "{text}"
        );
        assert!(arrows[6].contains("|<-"), "{text}");
        assert_eq!(
            text.matches("… 3 more acks like these").count(),
            1,
            "{text}"
        );
        // Only the timer that caused a drawn datagram, inside the window, is drawn.
        assert_eq!(drawn.matches("timer").count(), 1, "{text}");
        assert!(
            lines.iter().any(|l| l.ends_with("|  A timer rto")),
            "{text}"
        );
        assert!(text.contains("B's app gets message #0") && text.contains("message #1"));
    }

    #[test]
    fn the_legend_lists_exactly_the_marks_that_appear() {
        let (trace, causes) = handcrafted();
        let text = render(&trace, 2, &causes);
        let keys = legend_keys(&text);
        let expected: BTreeSet<String> = [
            "data s5 m4 1/2",
            "ack 4 sack 6-7 …",
            "->  <-",
            "~>  <~",
            "X",
            "+15.3ms",
            "RESEND",
            "…",
            "timer rto",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(keys, expected, "{text}");
        assert_eq!(marks_seen(&text), expected, "{text}");
    }

    #[test]
    fn on_real_runs_the_legend_matches_what_is_drawn() {
        let rough = ImpairmentConfig {
            duplicate: Probability::new(0.15).unwrap(),
            corrupt: Probability::new(0.15).unwrap(),
            ..ExperimentConfig::default().link
        };
        for mode in [Mode::Raw, Mode::Reliable] {
            for seed in 1..4 {
                let text = ladder_with(mode, rough.clone(), 0.3, seed, 6);
                assert_eq!(
                    legend_keys(&text),
                    marks_seen(&text),
                    "{mode} {seed}: {text}"
                );
            }
        }
    }

    #[test]
    fn collapsing_keeps_short_runs_and_counts_what_it_hides() {
        let ack_row = |ms: u64, cumulative: u64| Row {
            at: Duration::from_millis(ms),
            what: What::Arrow(Arrow {
                side: Side::B,
                packet: ack(cumulative, &[]),
                label: format!("ack {cumulative}"),
                resend: None,
                tip: Tip::Arrived,
                fate: "+20.0ms".to_owned(),
                arrived: true,
                duplicated: false,
                corrupted: false,
            }),
        };
        let mut rows: Vec<Row> = (0..3).map(|i| ack_row(i, 1)).collect();
        rows.extend((3..10).map(|i| ack_row(i, 2)));
        let lines: Vec<String> = collapse(rows).iter().map(Row::line).collect();
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(
            lines[4].ends_with("… 5 more acks like these, until 0.008s"),
            "{lines:#?}"
        );
        assert!(lines[3].starts_with("    0.003s") && lines[5].starts_with("    0.009s"));
    }

    #[test]
    fn a_clean_raw_run_shows_one_arrow_and_one_delivery_per_message_and_no_acks() {
        let text = ladder(Mode::Raw, 0.0, 1, 3);
        assert_eq!(text.matches("raw #").count(), 4, "{text}"); // three arrows and the legend
        assert_eq!(text.matches("B's app gets message").count(), 3, "{text}");
        assert!(!diagram(&text).concat().contains("raw #3"), "{text}");
        assert!(!diagram(&text).concat().contains("ack"), "{text}");
        assert!(text.contains("->|"), "{text}");
    }

    #[test]
    fn losses_and_resends_are_marked_and_labelled() {
        // At 40% loss the first five messages see drops, and reliable mode resends them.
        let text = ladder(Mode::Reliable, 0.4, 3, 5);
        assert!(text.contains("dropped (loss)"), "{text}");
        assert!(text.contains("RESEND"), "{text}");
        assert!(text.contains("fast resend") || text.contains("resent after a timeout"));
        assert!(text.contains("hello"), "{text}");
        for id in 0..5 {
            assert!(
                text.contains(&format!("B's app gets message #{id}\n")),
                "{id}: {text}"
            );
        }
        assert!(!text.contains(" m5 "), "{text}");
    }

    #[test]
    fn every_arrow_line_has_both_columns() {
        let text = ladder(Mode::Reliable, 0.3, 2, 4);
        for line in diagram(&text) {
            assert_eq!(line.matches('|').count(), 2, "{line}");
        }
    }

    #[test]
    fn the_same_run_draws_the_same_ladder() {
        assert_eq!(
            ladder(Mode::Reliable, 0.3, 5, 6),
            ladder(Mode::Reliable, 0.3, 5, 6)
        );
    }
}
