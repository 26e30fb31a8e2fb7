//! The ladder (sequence) diagram of a run's first messages, drawn in the terminal from its trace.
//!
//! The picture from a networking textbook: A on the left, B on the right, time going down, each
//! datagram an arrow with its kind and number. An arrow that the link dropped stops short with an
//! `X` and the cause; a corrupted copy arrives as `~>` (the receiver's CRC rejects it); a
//! duplicated one says so. Retransmissions are labelled with what triggered them (`timeout` or
//! `fast`), which the trace alone cannot tell: [`CauseRecorder`] wraps the sender and reads its
//! retransmission counters around each datagram it hands out, so the label is the transport's own
//! account, not a guess from timings.
//! Each message reaching B's application is shown on B's side, so head-of-line blocking is
//! visible as a delivery that waits for a resend.
//!
//! It is drawn from the real trace of a simulator run, so it shows exactly what happened, and the
//! same seed draws the same diagram.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats};

use crate::sim::{PacketSummary, Side, Trace, TraceEvent};

/// Width of the arrow between the two columns, in characters.
const ARROW: usize = 46;

/// What became of one datagram (all its copies).
#[derive(Debug, Default)]
struct Fates {
    arrivals: Vec<(Duration, bool)>,
    drops: Vec<String>,
    corrupted: bool,
    duplicated: bool,
}

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

/// Draws the first `messages` messages A sent in `trace` (and everything on the wire until they
/// were all delivered and acknowledged, or given up on). `causes` is A's [`CauseRecorder`]
/// record (empty if there is none: resends are then labelled without a cause). Timers that the
/// endpoint names ([`Endpoint::timer_name`]) are shown as they fire ("A timer rto").
pub fn render(trace: &Trace, messages: u64, causes: &[Option<ResendCause>]) -> String {
    let (fates, texts) = fates_and_texts(trace);
    let end = end_of_interest(trace, &texts, messages);
    let mut ladder = Ladder {
        messages,
        causes,
        fates: &fates,
        texts: &texts,
        sent_seqs: HashSet::new(),
        a_sent: 0,
        out: String::new(),
    };
    let _ = writeln!(
        ladder.out,
        "{:>10}  A{}B  what happened",
        "time",
        " ".repeat(ARROW)
    );
    for entry in trace.entries.iter().take_while(|e| e.at <= end) {
        ladder.entry(entry.at, &entry.event);
    }
    ladder.out
}

/// What became of each datagram, by trace id, and the message id of each text A sent.
fn fates_and_texts(trace: &Trace) -> (HashMap<u64, Fates>, HashMap<String, u64>) {
    let mut fates: HashMap<u64, Fates> = HashMap::new();
    let mut texts: HashMap<String, u64> = HashMap::new();
    for entry in &trace.entries {
        match &entry.event {
            TraceEvent::Delivered { datagram, late, .. } => fates
                .entry(*datagram)
                .or_default()
                .arrivals
                .push((entry.at, *late)),
            TraceEvent::Dropped {
                datagram, cause, ..
            } => fates
                .entry(*datagram)
                .or_default()
                .drops
                .push(cause.to_string()),
            TraceEvent::Corrupted { datagram, .. } => {
                fates.entry(*datagram).or_default().corrupted = true;
            }
            TraceEvent::Duplicated { datagram, .. } => {
                fates.entry(*datagram).or_default().duplicated = true;
            }
            TraceEvent::Send {
                side: Side::A,
                text,
                result: Ok(id),
            } => {
                texts.insert(text.clone(), *id);
            }
            _ => {}
        }
    }
    (fates, texts)
}

/// The drawing in progress: what the first pass learnt, and the lines so far.
struct Ladder<'a> {
    messages: u64,
    causes: &'a [Option<ResendCause>],
    fates: &'a HashMap<u64, Fates>,
    texts: &'a HashMap<String, u64>,
    /// Sequence numbers already drawn, per side: a second one is a resend.
    sent_seqs: HashSet<(Side, u64)>,
    /// Index of the next A datagram in `causes`.
    a_sent: usize,
    out: String,
}

impl Ladder<'_> {
    /// Draws the line (if any) of one trace entry at `at`.
    fn entry(&mut self, at: Duration, event: &TraceEvent) {
        let cause = match event {
            TraceEvent::Transmit { side: Side::A, .. } => {
                self.a_sent += 1;
                self.causes.get(self.a_sent - 1).copied().flatten()
            }
            _ => None,
        };
        match event {
            TraceEvent::Transmit {
                side,
                datagram,
                packet,
                ..
            } if self.wanted(packet) => self.transmit(at, *side, *datagram, packet, cause),
            TraceEvent::App {
                side: Side::B,
                event: Event::Message { text, .. },
            } => {
                let messages = self.messages;
                if let Some(&id) = self.texts.get(text).filter(|&&id| id < messages) {
                    self.note(at, &format!("B's app gets message #{id}"));
                }
            }
            TraceEvent::App {
                side: Side::A,
                event: Event::Lost { id },
            } if id.0 < self.messages => {
                self.note(at, &format!("A gives up on message #{}", id.0));
            }
            TraceEvent::Timer {
                side,
                timer: Some(timer),
            } => self.note(at, &format!("{side} timer {timer}")),
            _ => {}
        }
    }

    /// Datagrams of the first `messages` messages, and every datagram that is not data.
    fn wanted(&self, packet: &PacketSummary) -> bool {
        match packet {
            PacketSummary::Data { message, .. } => *message < self.messages,
            PacketSummary::Raw { seq } => *seq < self.messages,
            _ => true,
        }
    }

    /// A line with no arrow: something an application or a timer did.
    fn note(&mut self, at: Duration, what: &str) {
        let _ = writeln!(
            self.out,
            "{:>9.3}s  |{}|  {what}",
            at.as_secs_f64(),
            " ".repeat(ARROW)
        );
    }

    /// One datagram's arrow, with what became of it.
    fn transmit(
        &mut self,
        at: Duration,
        side: Side,
        datagram: u64,
        packet: &PacketSummary,
        cause: Option<ResendCause>,
    ) {
        let mut label = label(packet);
        let mut notes = Vec::new();
        let seq = match packet {
            PacketSummary::Data { seq, .. } | PacketSummary::Raw { seq } => Some(*seq),
            _ => None,
        };
        if seq.is_some_and(|seq| !self.sent_seqs.insert((side, seq))) {
            label = format!("{label} RESEND");
            notes.push(match cause {
                Some(ResendCause::Timeout) => "retransmit (timeout)".to_owned(),
                Some(ResendCause::Fast) => "retransmit (fast)".to_owned(),
                None => "retransmit".to_owned(),
            });
        }
        let empty = Fates::default();
        let fate = self.fates.get(&datagram).unwrap_or(&empty);
        if let Some(&(arrived, late)) = fate.arrivals.first() {
            let mut note = format!("+{:.1}ms", (arrived - at).as_secs_f64() * 1000.0);
            if late {
                note.push_str(" late");
            }
            notes.push(note);
        }
        if fate.duplicated {
            notes.push("duplicated".to_owned());
        }
        if fate.corrupted {
            notes.push("corrupted: CRC drop".to_owned());
        }
        for cause in &fate.drops {
            notes.push(format!("dropped ({cause})"));
        }
        let arrow = arrow(
            side,
            &label,
            fate.arrivals.is_empty(),
            fate.corrupted && fate.arrivals.len() == 1,
        );
        let _ = writeln!(
            self.out,
            "{:>9.3}s  {}  {}",
            at.as_secs_f64(),
            arrow,
            notes.join(", ")
        );
    }
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
    end
}

fn label(packet: &PacketSummary) -> String {
    match packet {
        PacketSummary::Raw { seq } => format!("raw #{seq}"),
        PacketSummary::Data {
            seq,
            message,
            fragment,
            fragments,
        } => {
            if *fragments > 1 {
                format!("data s{seq} m{message} {}/{fragments}", fragment + 1)
            } else {
                format!("data s{seq} m{message}")
            }
        }
        PacketSummary::Ack { cumulative } => format!("ack {cumulative}"),
        other => other.to_string(),
    }
}

/// `|--- label ------->|`, `|<----- label ---|`, a drop `|--- label ---X    |`, or a corrupted
/// arrival `|--- label ------~>|`.
fn arrow(side: Side, label: &str, lost: bool, corrupted: bool) -> String {
    let body = format!(" {label} ");
    let head = 3;
    // Tail, label and tip (2 characters) fill the arrow exactly.
    let inner = ARROW.saturating_sub(head + body.chars().count() + 2).max(2);
    let mut line = String::new();
    match side {
        Side::A => {
            line.push_str("---");
            line.push_str(&body);
            line.push_str(&"-".repeat(inner));
            if lost {
                // Stop two thirds of the way across.
                let keep = (line.chars().count() * 3 / 4).max(head + body.chars().count());
                let mut cut: String = line.chars().take(keep).collect();
                cut.push('X');
                line = format!("{cut:<ARROW$}");
            } else if corrupted {
                line.push_str("~>");
            } else {
                line.push_str("->");
            }
        }
        Side::B => {
            let tip = if corrupted { "<~" } else { "<-" };
            let mut core = String::new();
            core.push_str(&"-".repeat(inner));
            core.push_str(&body);
            core.push_str("---");
            if lost {
                let total = core.chars().count() + 2;
                let keep = (total * 3 / 4).max(body.chars().count() + 3);
                let cut: String = core
                    .chars()
                    .skip(core.chars().count().saturating_sub(keep - 1))
                    .collect();
                line = format!("{:>ARROW$}", format!("X{cut}"));
            } else {
                line.push_str(tip);
                line.push_str(&core);
            }
        }
    }
    let line: String = line.chars().take(ARROW).collect();
    format!("|{line:<ARROW$}|")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::experiment::config::{ExperimentConfig, LossPattern, Mode, SweepPoint};
    use crate::experiment::run::{endpoints, simulate_with};
    use crate::probability::Probability;
    use crate::sim::TraceEntry;

    fn ladder(mode: Mode, loss: f64, seed: u64, n: u64) -> String {
        let config = ExperimentConfig {
            messages: 20,
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

    #[test]
    fn a_clean_raw_run_shows_one_arrow_and_one_delivery_per_message() {
        let text = ladder(Mode::Raw, 0.0, 1, 3);
        assert_eq!(text.matches("raw #").count(), 3, "{text}");
        assert_eq!(text.matches("B's app gets message").count(), 3, "{text}");
        assert!(!text.contains("raw #3"), "{text}");
        assert!(text.contains("->|"), "{text}");
    }

    #[test]
    fn losses_and_resends_are_marked_and_labelled() {
        // At 40% loss the first five messages see drops, and reliable mode resends them.
        let text = ladder(Mode::Reliable, 0.4, 3, 5);
        assert!(text.contains("X"), "{text}");
        assert!(text.contains("dropped (loss)"), "{text}");
        assert!(text.contains("RESEND"), "{text}");
        assert!(text.contains("retransmit ("), "{text}");
        assert!(text.contains("hello"), "{text}");
        assert!(text.contains("<-"), "{text}");
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
        for line in text.lines().skip(1) {
            assert_eq!(line.matches('|').count(), 2, "{line}");
        }
    }

    #[test]
    fn named_timers_get_a_line_and_unnamed_ones_none() {
        let at = Duration::from_millis(5);
        let entry = |event| TraceEntry { at, event };
        let trace = Trace {
            entries: vec![
                entry(TraceEvent::Timer {
                    side: Side::A,
                    timer: Some("rto"),
                }),
                entry(TraceEvent::Timer {
                    side: Side::B,
                    timer: None,
                }),
                entry(TraceEvent::App {
                    side: Side::A,
                    event: Event::Lost { id: MessageId(0) },
                }),
            ],
        };
        let text = render(&trace, 1, &[]);
        assert!(text.contains("|  A timer rto\n"), "{text}");
        assert!(!text.contains("B timer"), "{text}");
        assert!(text.contains("A gives up on message #0"), "{text}");
    }
}
