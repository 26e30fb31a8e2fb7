//! The deterministic simulator: two endpoints, two impaired links, one virtual clock.
//!
//! This is quinn-proto's test `Pair`, grown up. Endpoint A (at [`ADDR_A`]) and endpoint B (at
//! [`ADDR_B`]) are any sans-IO [`Endpoint`]s; A's datagrams cross the `a_to_b` [`Impairment`]
//! and B's the `b_to_a` one. A [`Scenario`] says which messages to send from which side at which
//! (virtual) times. [`Simulator::run`] jumps the clock straight to the next thing that can happen
//! (a scheduled send, an endpoint timer, a datagram leaving a link), so a simulated minute takes
//! milliseconds, and it records everything in a [`Trace`]: sends, transmissions, drops with their
//! cause, duplicates, corruption, deliveries, timers and application events.
//!
//! Nothing here reads the clock except once, for an arbitrary epoch that only offsets from it are
//! ever measured against, and all randomness comes from the scenario's seed (one derived stream
//! per link), so the same scenario and seed give the same trace, byte for byte, on every machine.
//! Endpoints with randomness of their own should be seeded from [`Scenario::seed`] too.
//!
//! The run stops when nothing more can happen (no timer, nothing in flight, nothing left to send),
//! when both endpoints have closed and the links are empty, or at the scenario's time limit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use udpchat_core::Packet;
use udpchat_reliable::{Endpoint, Event};

use crate::impairment::{
    derive_seed, DropCause, Fate, Impairment, ImpairmentConfig, ImpairmentStats,
};

/// Endpoint A's (virtual) address.
pub const ADDR_A: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 2323);
/// Endpoint B's (virtual) address.
pub const ADDR_B: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 2323);

/// One of the two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Side {
    /// Endpoint A, at [`ADDR_A`].
    A,
    /// Endpoint B, at [`ADDR_B`].
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// The link this side's datagrams travel on.
    pub fn outgoing(self) -> Link {
        match self {
            Side::A => Link::AToB,
            Side::B => Link::BToA,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// One of the two links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// From A to B.
    AToB,
    /// From B to A.
    BToA,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::AToB => "A->B",
            Link::BToA => "B->A",
        })
    }
}

/// A message the scenario sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledMessage {
    /// When, after the start.
    #[serde(serialize_with = "nanos")]
    pub at: Duration,
    /// From which side.
    pub from: Side,
    /// The text. Deliveries are matched to sends by text, so give messages distinct texts.
    pub text: String,
}

/// What to simulate: messages, links, seed and limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Messages to send, in any order (they are sorted by time; ties keep their order).
    pub messages: Vec<ScheduledMessage>,
    /// The link from A to B.
    pub a_to_b: ImpairmentConfig,
    /// The link from B to A.
    pub b_to_a: ImpairmentConfig,
    /// Seed of all the links' randomness.
    pub seed: u64,
    /// If set, both endpoints are told to close at this time. Default none.
    #[serde(serialize_with = "opt_nanos")]
    pub close_at: Option<Duration>,
    /// Virtual time at which the run stops whatever is going on. Default 10 minutes.
    #[serde(serialize_with = "nanos")]
    pub time_limit: Duration,
    /// Most clock steps before the run is stopped (guards against an endpoint whose timer never
    /// moves forward). Default 10 million.
    pub max_steps: u64,
}

impl Scenario {
    /// An empty scenario with perfect links and this seed.
    pub fn new(seed: u64) -> Scenario {
        Scenario {
            messages: Vec::new(),
            a_to_b: ImpairmentConfig::default(),
            b_to_a: ImpairmentConfig::default(),
            seed,
            close_at: None,
            time_limit: Duration::from_secs(600),
            max_steps: 10_000_000,
        }
    }

    /// The same impairment on both links.
    pub fn links(mut self, config: ImpairmentConfig) -> Scenario {
        self.a_to_b = config.clone();
        self.b_to_a = config;
        self
    }

    /// Adds one message.
    pub fn message(mut self, at: Duration, from: Side, text: impl Into<String>) -> Scenario {
        self.messages.push(ScheduledMessage {
            at,
            from,
            text: text.into(),
        });
        self
    }

    /// Adds `count` messages `"<prefix>-0"`, `"<prefix>-1"`... from `from`, one every `interval`
    /// starting at `start`.
    pub fn messages_every(
        mut self,
        from: Side,
        prefix: &str,
        start: Duration,
        interval: Duration,
        count: u32,
    ) -> Scenario {
        for i in 0..count {
            self.messages.push(ScheduledMessage {
                at: start + interval * i,
                from,
                text: format!("{prefix}-{i}"),
            });
        }
        self
    }
}

/// A short description of a datagram, decoded when it is a udpchat datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "packet", rename_all = "snake_case")]
pub enum PacketSummary {
    /// A raw-mode message.
    Raw {
        /// Its per-sender sequence number.
        seq: u64,
    },
    /// A reliable-mode fragment.
    Data {
        /// Packet sequence number.
        seq: u64,
        /// Message number.
        message: u64,
        /// Fragment index.
        fragment: u32,
        /// Fragment count.
        fragments: u32,
    },
    /// A standalone acknowledgement.
    Ack {
        /// Its cumulative ack.
        cumulative: u64,
    },
    /// Handshake, first half.
    Hello,
    /// Handshake, second half.
    Welcome,
    /// Keepalive probe.
    Ping,
    /// Keepalive answer.
    Pong,
    /// Close.
    Close,
    /// Not a valid udpchat datagram (plain mode, or corrupted).
    Opaque,
}

impl PacketSummary {
    /// Decodes `datagram` as far as a summary needs.
    pub fn of(datagram: &[u8]) -> PacketSummary {
        match udpchat_core::decode(datagram) {
            Ok(Packet::Raw(m)) => PacketSummary::Raw { seq: m.seq },
            Ok(Packet::Data(d)) => PacketSummary::Data {
                seq: d.seq.0,
                message: d.message,
                fragment: d.fragment,
                fragments: d.fragments,
            },
            Ok(Packet::Ack { ack, .. }) => PacketSummary::Ack {
                cumulative: ack.cumulative.0,
            },
            Ok(Packet::Hello(_)) => PacketSummary::Hello,
            Ok(Packet::Welcome(_)) => PacketSummary::Welcome,
            Ok(Packet::Ping { .. }) => PacketSummary::Ping,
            Ok(Packet::Pong { .. }) => PacketSummary::Pong,
            Ok(Packet::Close { .. }) => PacketSummary::Close,
            // A bundle leads with its new packet; the copies behind it are not summarised.
            Ok(Packet::Bundle(items)) => match items.first() {
                Some(d) => PacketSummary::Data {
                    seq: d.seq.0,
                    message: d.message,
                    fragment: d.fragment,
                    fragments: d.fragments,
                },
                None => PacketSummary::Opaque,
            },
            Err(_) => PacketSummary::Opaque,
        }
    }
}

impl fmt::Display for PacketSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketSummary::Raw { seq } => write!(f, "raw seq={seq}"),
            PacketSummary::Data {
                seq,
                message,
                fragment,
                fragments,
            } => write!(
                f,
                "data seq={seq} msg={message} frag={fragment}/{fragments}"
            ),
            PacketSummary::Ack { cumulative } => write!(f, "ack cum={cumulative}"),
            PacketSummary::Hello => f.write_str("hello"),
            PacketSummary::Welcome => f.write_str("welcome"),
            PacketSummary::Ping => f.write_str("ping"),
            PacketSummary::Pong => f.write_str("pong"),
            PacketSummary::Close => f.write_str("close"),
            PacketSummary::Opaque => f.write_str("opaque"),
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TraceEvent {
    /// The scenario asked `side` to send `text`.
    Send {
        /// Who.
        side: Side,
        /// What.
        text: String,
        /// The message id it got, or the error.
        result: Result<u64, String>,
    },
    /// `side` handed out a datagram.
    Transmit {
        /// Who sent it.
        side: Side,
        /// Its id in this trace (copies keep the id).
        datagram: u64,
        /// Its size in bytes.
        len: usize,
        /// What it is.
        packet: PacketSummary,
    },
    /// A datagram was addressed to neither endpoint; it goes nowhere.
    Unroutable {
        /// Who sent it.
        side: Side,
        /// Its id.
        datagram: u64,
        /// Where it was addressed.
        to: SocketAddr,
    },
    /// A link dropped a datagram.
    Dropped {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
        /// Why.
        cause: DropCause,
    },
    /// A link made a second copy of a datagram.
    Duplicated {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
    },
    /// A link flipped bits of a copy of a datagram.
    Corrupted {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
        /// How many bits.
        bits: u32,
    },
    /// A link's reorder knob sent a datagram ahead of those queued.
    SentAhead {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
    },
    /// A datagram came out of a link and was handed to the receiving endpoint.
    Delivered {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
        /// True if a datagram sent after it came out first.
        late: bool,
    },
    /// `side`'s timer fired.
    Timer {
        /// Whose.
        side: Side,
    },
    /// The scenario told `side` to close.
    Close {
        /// Who.
        side: Side,
    },
    /// `side` told its application something.
    App {
        /// Whose application.
        side: Side,
        /// What.
        event: Event,
    },
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceEvent::Send { side, text, result } => match result {
                Ok(id) => write!(f, "{side} send #{id} {text:?}"),
                Err(e) => write!(f, "{side} send-failed {text:?}: {e}"),
            },
            TraceEvent::Transmit {
                side,
                datagram,
                len,
                packet,
            } => write!(f, "{side} transmit d{datagram} {len}B {packet}"),
            TraceEvent::Unroutable { side, datagram, to } => {
                write!(f, "{side} unroutable d{datagram} to {to}")
            }
            TraceEvent::Dropped {
                link,
                datagram,
                cause,
            } => write!(f, "{link} drop d{datagram} ({cause})"),
            TraceEvent::Duplicated { link, datagram } => write!(f, "{link} duplicate d{datagram}"),
            TraceEvent::Corrupted {
                link,
                datagram,
                bits,
            } => write!(f, "{link} corrupt d{datagram} ({bits} bits)"),
            TraceEvent::SentAhead { link, datagram } => write!(f, "{link} send-ahead d{datagram}"),
            TraceEvent::Delivered {
                link,
                datagram,
                late,
            } => {
                write!(f, "{link} deliver d{datagram}")?;
                if *late {
                    f.write_str(" (late)")?;
                }
                Ok(())
            }
            TraceEvent::Timer { side } => write!(f, "{side} timer"),
            TraceEvent::Close { side } => write!(f, "{side} close"),
            TraceEvent::App { side, event } => {
                // Event's JSON form is stable and complete; reuse it rather than a second format.
                let json = serde_json::to_string(event).map_err(|_| fmt::Error)?;
                write!(f, "{side} event {json}")
            }
        }
    }
}

/// One trace line: when, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceEntry {
    /// Virtual time since the start.
    #[serde(rename = "at_ns", serialize_with = "nanos")]
    pub at: Duration,
    /// What happened.
    #[serde(flatten)]
    pub event: TraceEvent,
}

/// Everything that happened in a run, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Trace {
    /// The entries, in the order they happened.
    pub entries: Vec<TraceEntry>,
}

impl Trace {
    /// One line per entry: `<seconds with 9 decimals>s <event>`. Stable: the same run renders
    /// to the same bytes.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            let _ = writeln!(
                out,
                "{}.{:09}s {}",
                entry.at.as_secs(),
                entry.at.subsec_nanos(),
                entry.event
            );
        }
        out
    }

    /// One JSON object per line (`at_ns`, `kind`, and the event's fields).
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            if let Ok(line) = serde_json::to_string(entry) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    /// The events alone, for tests that look for a pattern.
    pub fn events(&self) -> impl Iterator<Item = &TraceEvent> {
        self.entries.iter().map(|e| &e.event)
    }
}

/// Why the run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Nothing more could happen.
    Idle,
    /// Both endpoints closed and the links emptied.
    Closed,
    /// The scenario's time limit was reached.
    TimeLimit,
    /// The scenario's step limit was reached (an endpoint's timer did not move forward?).
    StepLimit,
}

/// What one direction's application saw, message by message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DirectionSummary {
    /// Messages the sender's endpoint accepted.
    pub sent: u64,
    /// Messages the sender's endpoint refused (`SendError`).
    pub send_failed: u64,
    /// Distinct messages the receiver's application got.
    pub delivered: u64,
    /// Accepted messages never delivered.
    pub lost: u64,
    /// Deliveries of a message already delivered.
    pub duplicated: u64,
    /// Messages delivered after one sent later.
    pub reordered: u64,
    /// Deliveries that matched no message the scenario sent (e.g. an endpoint's own traffic).
    pub unmatched: u64,
    /// Per accepted message, in sending order: time from send to first delivery, if delivered.
    #[serde(serialize_with = "opt_nanos_vec")]
    pub latencies: Vec<Option<Duration>>,
    /// The link's datagram counters.
    pub link: ImpairmentStats,
}

impl DirectionSummary {
    /// Mean latency of the delivered messages.
    pub fn mean_latency(&self) -> Option<Duration> {
        let delivered: Vec<Duration> = self.latencies.iter().flatten().copied().collect();
        let count = u32::try_from(delivered.len()).ok().filter(|&n| n > 0)?;
        Some(delivered.iter().sum::<Duration>() / count)
    }

    /// Largest latency of the delivered messages.
    pub fn max_latency(&self) -> Option<Duration> {
        self.latencies.iter().flatten().max().copied()
    }
}

/// The outcome of a run in numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Virtual time the run lasted.
    #[serde(serialize_with = "nanos")]
    pub duration: Duration,
    /// Why it stopped.
    pub stop: StopReason,
    /// Messages from A to B.
    pub a_to_b: DirectionSummary,
    /// Messages from B to A.
    pub b_to_a: DirectionSummary,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "simulated {:?}, stopped: {:?}", self.duration, self.stop)?;
        writeln!(
            f,
            "{:<5} {:>6} {:>9} {:>6} {:>10} {:>9} {:>12} {:>12}",
            "dir",
            "sent",
            "delivered",
            "lost",
            "duplicated",
            "reordered",
            "mean latency",
            "max latency"
        )?;
        for (name, d) in [("A->B", &self.a_to_b), ("B->A", &self.b_to_a)] {
            let show = |l: Option<Duration>| l.map_or_else(|| "-".to_owned(), |l| format!("{l:?}"));
            writeln!(
                f,
                "{:<5} {:>6} {:>9} {:>6} {:>10} {:>9} {:>12} {:>12}",
                name,
                d.sent,
                d.delivered,
                d.lost,
                d.duplicated,
                d.reordered,
                show(d.mean_latency()),
                show(d.max_latency())
            )?;
        }
        Ok(())
    }
}

/// A finished run: its trace, its summary, and the endpoints as they ended.
#[derive(Debug)]
pub struct Outcome<A, B> {
    /// Everything that happened.
    pub trace: Trace,
    /// The numbers.
    pub summary: Summary,
    /// Endpoint A.
    pub a: A,
    /// Endpoint B.
    pub b: B,
}

/// Per-direction bookkeeping that turns application events into a [`DirectionSummary`].
#[derive(Debug, Default)]
struct Tally {
    /// Accepted messages, in sending order: send time, first delivery time.
    messages: Vec<(Duration, Option<Duration>)>,
    /// Per text, the accepted messages not yet delivered, oldest first.
    undelivered: HashMap<String, VecDeque<usize>>,
    /// Every text accepted, to tell a duplicate from a stranger.
    texts: HashSet<String>,
    send_failed: u64,
    duplicated: u64,
    reordered: u64,
    unmatched: u64,
    highest_delivered: Option<usize>,
}

impl Tally {
    fn sent(&mut self, text: &str, at: Duration) {
        let index = self.messages.len();
        self.messages.push((at, None));
        self.undelivered
            .entry(text.to_owned())
            .or_default()
            .push_back(index);
        self.texts.insert(text.to_owned());
    }

    fn delivered(&mut self, text: &str, at: Duration) {
        let index = self.undelivered.get_mut(text).and_then(VecDeque::pop_front);
        match index {
            Some(index) => {
                self.messages[index].1 = Some(at);
                match self.highest_delivered {
                    Some(highest) if index < highest => self.reordered += 1,
                    _ => self.highest_delivered = Some(index),
                }
            }
            None if self.texts.contains(text) => self.duplicated += 1,
            None => self.unmatched += 1,
        }
    }

    fn summary(&self, link: ImpairmentStats) -> DirectionSummary {
        let latencies: Vec<Option<Duration>> = self
            .messages
            .iter()
            .map(|(sent, first)| first.map(|f| f.saturating_sub(*sent)))
            .collect();
        let delivered = latencies.iter().flatten().count() as u64;
        DirectionSummary {
            sent: self.messages.len() as u64,
            send_failed: self.send_failed,
            delivered,
            lost: self.messages.len() as u64 - delivered,
            duplicated: self.duplicated,
            reordered: self.reordered,
            unmatched: self.unmatched,
            latencies,
            link,
        }
    }
}

/// Runs a [`Scenario`] between two endpoints.
#[derive(Debug)]
pub struct Simulator<A, B> {
    a: A,
    b: B,
    a_to_b: Impairment<u64>,
    b_to_a: Impairment<u64>,
    epoch: Instant,
    now: Instant,
    pending: VecDeque<ScheduledMessage>,
    close_at: Option<Duration>,
    closed_called: bool,
    time_limit: Duration,
    max_steps: u64,
    next_datagram: u64,
    trace: Trace,
    tally_a_to_b: Tally,
    tally_b_to_a: Tally,
}

impl<A: Endpoint, B: Endpoint> Simulator<A, B> {
    /// Sets up `scenario` between `a` (which lives at [`ADDR_A`]) and `b` (at [`ADDR_B`]).
    pub fn new(scenario: Scenario, a: A, b: B) -> Simulator<A, B> {
        // An arbitrary origin for virtual time: only offsets from it are ever used or recorded.
        Simulator::starting_at(Instant::now(), scenario, a, b)
    }

    /// Like [`Simulator::new`], with virtual time starting at `epoch`: for endpoints that were
    /// built with instants of their own (a first timer, say), which must then come from `epoch`.
    pub fn starting_at(epoch: Instant, scenario: Scenario, a: A, b: B) -> Simulator<A, B> {
        let mut messages = scenario.messages;
        // Stable sort: messages at the same instant keep the order the scenario gave them.
        messages.sort_by_key(|m| m.at);
        Simulator {
            a,
            b,
            a_to_b: Impairment::new(scenario.a_to_b, derive_seed(scenario.seed, 0)),
            b_to_a: Impairment::new(scenario.b_to_a, derive_seed(scenario.seed, 1)),
            epoch,
            now: epoch,
            pending: messages.into(),
            close_at: scenario.close_at,
            closed_called: false,
            time_limit: scenario.time_limit,
            max_steps: scenario.max_steps,
            next_datagram: 0,
            trace: Trace::default(),
            tally_a_to_b: Tally::default(),
            tally_b_to_a: Tally::default(),
        }
    }

    /// Runs until idle, closed, or a limit; returns the trace and summary.
    pub fn run(mut self) -> Outcome<A, B> {
        let mut steps = 0u64;
        let stop = loop {
            self.flush();
            if self.closed_called
                && self.a.is_closed()
                && self.b.is_closed()
                && self.a_to_b.is_empty()
                && self.b_to_a.is_empty()
            {
                break StopReason::Closed;
            }
            let Some(next) = self.next_wakeup() else {
                break StopReason::Idle;
            };
            if next > self.epoch + self.time_limit {
                self.now = self.epoch + self.time_limit;
                break StopReason::TimeLimit;
            }
            steps += 1;
            if steps > self.max_steps {
                break StopReason::StepLimit;
            }
            // A timer in the past fires now: the clock never goes backwards.
            self.now = self.now.max(next);
            self.step();
        };
        let summary = Summary {
            duration: self.now - self.epoch,
            stop,
            a_to_b: self.tally_a_to_b.summary(self.a_to_b.stats().clone()),
            b_to_a: self.tally_b_to_a.summary(self.b_to_a.stats().clone()),
        };
        Outcome {
            trace: self.trace,
            summary,
            a: self.a,
            b: self.b,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    fn record(&mut self, event: TraceEvent) {
        let at = self.elapsed();
        self.trace.entries.push(TraceEntry { at, event });
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let close = match (self.closed_called, self.close_at) {
            (false, Some(at)) => Some(self.epoch + at),
            _ => None,
        };
        [
            self.pending.front().map(|m| self.epoch + m.at),
            close,
            self.a.poll_timeout(),
            self.b.poll_timeout(),
            self.a_to_b.next_release(),
            self.b_to_a.next_release(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does everything due at `self.now`, in a fixed order so runs are reproducible: link
    /// deliveries (A->B, then B->A), timers (A, then B), scheduled sends, then closing.
    fn step(&mut self) {
        let now = self.now;
        while let Some(released) = self.a_to_b.poll(now) {
            self.record(TraceEvent::Delivered {
                link: Link::AToB,
                datagram: released.tag,
                late: released.late,
            });
            self.b.handle_datagram(now, ADDR_A, &released.bytes);
        }
        while let Some(released) = self.b_to_a.poll(now) {
            self.record(TraceEvent::Delivered {
                link: Link::BToA,
                datagram: released.tag,
                late: released.late,
            });
            self.a.handle_datagram(now, ADDR_B, &released.bytes);
        }
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.record(TraceEvent::Timer { side: Side::A });
            self.a.handle_timeout(now);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.record(TraceEvent::Timer { side: Side::B });
            self.b.handle_timeout(now);
        }
        while self
            .pending
            .front()
            .is_some_and(|m| self.epoch + m.at <= now)
        {
            let Some(message) = self.pending.pop_front() else {
                break;
            };
            let result = match message.from {
                Side::A => self.a.send(now, &message.text),
                Side::B => self.b.send(now, &message.text),
            };
            let elapsed = self.elapsed();
            let tally = self.tally_mut(message.from.outgoing());
            match &result {
                Ok(_) => tally.sent(&message.text, elapsed),
                Err(_) => tally.send_failed += 1,
            }
            self.record(TraceEvent::Send {
                side: message.from,
                text: message.text,
                result: result.map(|id| id.0).map_err(|e| e.to_string()),
            });
        }
        if !self.closed_called && self.close_at.is_some_and(|at| self.epoch + at <= now) {
            self.closed_called = true;
            self.record(TraceEvent::Close { side: Side::A });
            self.a.close(now);
            self.record(TraceEvent::Close { side: Side::B });
            self.b.close(now);
        }
    }

    fn tally_mut(&mut self, link: Link) -> &mut Tally {
        match link {
            Link::AToB => &mut self.tally_a_to_b,
            Link::BToA => &mut self.tally_b_to_a,
        }
    }

    /// Moves every datagram the endpoints want to send onto the links and collects their events.
    fn flush(&mut self) {
        for side in [Side::A, Side::B] {
            loop {
                let now = self.now;
                let transmit = match side {
                    Side::A => self.a.poll_transmit_owned(now),
                    Side::B => self.b.poll_transmit_owned(now),
                };
                let Some(transmit) = transmit else { break };
                self.carry(side, transmit.destination, transmit.payload);
            }
            loop {
                let event = match side {
                    Side::A => self.a.poll_event(),
                    Side::B => self.b.poll_event(),
                };
                let Some(event) = event else { break };
                if let Event::Message { text, .. } = &event {
                    let at = self.elapsed();
                    // A message seen by `side` travelled on the other side's outgoing link.
                    let text = text.clone();
                    self.tally_mut(side.other().outgoing()).delivered(&text, at);
                }
                self.record(TraceEvent::App { side, event });
            }
        }
    }

    /// Puts one datagram from `side` on its link and records its fate.
    fn carry(&mut self, side: Side, to: SocketAddr, payload: Vec<u8>) {
        let datagram = self.next_datagram;
        self.next_datagram += 1;
        self.record(TraceEvent::Transmit {
            side,
            datagram,
            len: payload.len(),
            packet: PacketSummary::of(&payload),
        });
        let expected = match side {
            Side::A => ADDR_B,
            Side::B => ADDR_A,
        };
        if to != expected {
            self.record(TraceEvent::Unroutable { side, datagram, to });
            return;
        }
        let link = side.outgoing();
        let now = self.now;
        let verdict = match link {
            Link::AToB => self.a_to_b.offer(now, datagram, payload),
            Link::BToA => self.b_to_a.offer(now, datagram, payload),
        };
        if verdict.duplicate.is_some() {
            self.record(TraceEvent::Duplicated { link, datagram });
        }
        for fate in std::iter::once(verdict.original).chain(verdict.duplicate) {
            match fate {
                Fate::Dropped { cause } => self.record(TraceEvent::Dropped {
                    link,
                    datagram,
                    cause,
                }),
                Fate::Scheduled {
                    corrupted_bits,
                    sent_ahead,
                    ..
                } => {
                    if corrupted_bits > 0 {
                        self.record(TraceEvent::Corrupted {
                            link,
                            datagram,
                            bits: corrupted_bits,
                        });
                    }
                    if sent_ahead {
                        self.record(TraceEvent::SentAhead { link, datagram });
                    }
                }
            }
        }
    }
}

fn nanos<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_nanos())
}

fn opt_nanos<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_nanos()),
        None => s.serialize_none(),
    }
}

fn opt_nanos_vec<S: Serializer>(v: &[Option<Duration>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|d| d.map(|d| d.as_nanos())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::probability::Probability;
    use crate::test_endpoint::LineEndpoint;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pair() -> (LineEndpoint, LineEndpoint) {
        (
            LineEndpoint::new(Some(ADDR_B)),
            LineEndpoint::new(Some(ADDR_A)),
        )
    }

    #[test]
    fn perfect_links_deliver_everything_with_the_configured_delay() {
        let scenario = Scenario::new(1)
            .links(ImpairmentConfig {
                delay: ms(20),
                ..Default::default()
            })
            .messages_every(Side::A, "a", ms(0), ms(10), 5)
            .messages_every(Side::B, "b", ms(5), ms(10), 3);
        let (a, b) = pair();
        let out = Simulator::new(scenario, a, b).run();
        let s = &out.summary;
        assert_eq!(s.stop, StopReason::Idle);
        assert_eq!(
            (s.a_to_b.sent, s.a_to_b.delivered, s.a_to_b.lost),
            (5, 5, 0)
        );
        assert_eq!((s.b_to_a.sent, s.b_to_a.delivered), (3, 3));
        assert!(s.a_to_b.latencies.iter().all(|l| *l == Some(ms(20))));
        // A's last message leaves at 40 ms and arrives 20 ms later.
        assert_eq!(s.duration, ms(60));
    }

    #[test]
    fn the_clock_jumps_so_long_scenarios_cost_nothing() {
        // An hour of virtual time, one message a minute, a timer every second.
        let mut scenario = Scenario::new(1).messages_every(Side::A, "m", ms(0), ms(60_000), 60);
        scenario.time_limit = Duration::from_secs(7200);
        let epoch = Instant::now();
        let a = LineEndpoint::new(Some(ADDR_B));
        let b = LineEndpoint::new(Some(ADDR_A)).heartbeat(epoch, ms(1000), 3);
        let out = Simulator::starting_at(epoch, scenario, a, b).run();
        assert_eq!(out.summary.a_to_b.delivered, 60);
        assert_eq!(out.summary.stop, StopReason::Idle);
        assert_eq!(out.summary.duration, ms(59 * 60_000));
        assert_eq!(
            out.summary.b_to_a.unmatched, 3,
            "three heartbeats reached A"
        );
    }

    #[test]
    fn losses_in_the_trace_are_the_messages_missing_in_the_summary() {
        let scenario = Scenario::new(42)
            .links(ImpairmentConfig {
                loss: Probability::new(0.3).unwrap(),
                ..Default::default()
            })
            .messages_every(Side::A, "a", ms(0), ms(1), 300);
        let (a, b) = pair();
        let out = Simulator::new(scenario, a, b).run();
        let dropped = out
            .trace
            .events()
            .filter(|e| {
                matches!(
                    e,
                    TraceEvent::Dropped {
                        link: Link::AToB,
                        ..
                    }
                )
            })
            .count() as u64;
        assert!(dropped > 0);
        assert_eq!(out.summary.a_to_b.lost, dropped);
        assert_eq!(out.summary.a_to_b.link.dropped_loss, dropped);
        assert_eq!(out.summary.a_to_b.delivered + dropped, 300);
    }

    #[test]
    fn same_seed_same_trace_bytes_other_seed_other_trace() {
        let scenario = |seed| {
            Scenario::new(seed)
                .links(ImpairmentConfig {
                    loss: Probability::new(0.2).unwrap(),
                    delay: ms(10),
                    jitter: ms(8),
                    duplicate: Probability::new(0.1).unwrap(),
                    ..Default::default()
                })
                .messages_every(Side::A, "a", ms(0), ms(3), 100)
        };
        let run = |seed| {
            let a = LineEndpoint::new(Some(ADDR_B));
            let b = LineEndpoint::new(Some(ADDR_A)).echoing();
            let out = Simulator::new(scenario(seed), a, b).run();
            (out.trace.to_text(), out.trace.to_json_lines())
        };
        let (text1, json1) = run(7);
        let (text2, json2) = run(7);
        assert_eq!(text1, text2);
        assert_eq!(json1, json2);
        assert_ne!(text1, run(8).0);
        assert!(text1.contains("A send #0 \"a-0\""));
        assert!(json1
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }

    #[test]
    fn jitter_reorders_and_duplicates_show_in_the_summary() {
        let scenario = Scenario::new(3)
            .links(ImpairmentConfig {
                delay: ms(50),
                jitter: ms(30),
                duplicate: Probability::new(0.2).unwrap(),
                ..Default::default()
            })
            .messages_every(Side::A, "a", ms(0), ms(2), 200);
        let (a, b) = pair();
        let out = Simulator::new(scenario, a, b).run();
        let s = &out.summary.a_to_b;
        assert_eq!(s.delivered, 200);
        assert_eq!(s.duplicated, s.link.duplicated);
        assert!(s.duplicated > 0);
        assert!(s.reordered > 0);
        assert!(s.max_latency().unwrap() <= ms(80));
        assert!(s.latencies.iter().flatten().all(|l| *l >= ms(20)));
    }

    #[test]
    fn closing_stops_the_run_and_a_time_limit_bounds_it() {
        let epoch = Instant::now();
        let mut scenario = Scenario::new(1).message(ms(0), Side::A, "x");
        scenario.close_at = Some(ms(5));
        let a = LineEndpoint::new(Some(ADDR_B)).heartbeat(epoch, ms(1000), 1000);
        let b = LineEndpoint::new(Some(ADDR_A));
        let out = Simulator::starting_at(epoch, scenario, a, b).run();
        assert_eq!(out.summary.stop, StopReason::Closed);
        assert_eq!(out.summary.duration, ms(5));

        let mut scenario = Scenario::new(1);
        scenario.time_limit = ms(10_500);
        let a = LineEndpoint::new(Some(ADDR_B)).heartbeat(epoch, ms(1000), 1000);
        let b = LineEndpoint::new(Some(ADDR_A));
        let out = Simulator::starting_at(epoch, scenario, a, b).run();
        assert_eq!(out.summary.stop, StopReason::TimeLimit);
        assert_eq!(
            out.summary.a_to_b.unmatched, 10,
            "heartbeats at 1 s .. 10 s"
        );
        assert_eq!(out.summary.duration, ms(10_500));
    }

    #[test]
    fn summary_renders_a_table() {
        let scenario = Scenario::new(1).message(ms(0), Side::A, "x");
        let (a, b) = pair();
        let text = Simulator::new(scenario, a, b).run().summary.to_string();
        assert!(text.contains("A->B"), "{text}");
        assert!(text.contains("delivered"), "{text}");
    }
}
