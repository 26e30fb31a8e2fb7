//! The deterministic simulator: two endpoints, two impaired links, one virtual clock.
//!
//! This is quinn-proto's test `Pair`, grown up. Endpoint A (at [`ADDR_A`]) and endpoint B (at
//! [`ADDR_B`]) are any sans-IO [`Endpoint`]s; A's datagrams cross the `a_to_b` [`Impairment`]
//! and B's the `b_to_a` one. A [`Scenario`] says which messages to send from which side at which
//! (virtual) times. [`Simulator::run`] jumps the clock straight to the next thing that can happen
//! (a scheduled send, an endpoint timer, a datagram leaving a link), so a simulated minute takes
//! milliseconds, and it records everything in a [`Trace`]: sends, transmissions, drops with their
//! cause, duplicates, corruption, deliveries, timers (named, where the endpoint names them) and
//! application events.
//!
//! This is the one driver of virtual time in the workspace outside the transport crate (whose
//! test pair cannot depend on the lab). A workload whose sends depend on what arrives (an echo, a
//! benchmark) drives the same machine step by step: [`Simulator::advance`],
//! [`Simulator::take_events`], [`Simulator::send`]. The trace is optional
//! ([`Simulator::without_trace`]): without it a step decodes nothing and allocates nothing per
//! datagram, which is what lets the simulator run millions of datagram events per second.
//!
//! Nothing here reads the clock except once, for an arbitrary epoch that only offsets from it are
//! ever measured against, and all randomness comes from the scenario's seed (one derived stream
//! per link), so the same scenario and seed give the same trace, byte for byte, on every machine.
//! Endpoints with randomness of their own should be seeded from [`Scenario::seed`] too.
//!
//! [`Simulator::with_capture`] hands every datagram to a callback as a [`Datagram`] for a pcap
//! file ([`crate::pcap`]), stamped with virtual time since the start: once when it is sent (its
//! comment says what the link does with it: dropped and why, delayed by how much, duplicated,
//! corrupted) and once more for each copy that arrives ("delivered"). Both records name the
//! trace's datagram number (`d17`), so the two can be matched. Capturing draws nothing from the
//! seed, so a captured run is the same run.
//!
//! The run stops when nothing more can happen (no timer, nothing in flight, nothing left to send),
//! when both endpoints have closed and the links are empty, or at the scenario's time limit.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Serialize, Serializer};
use udpchat_core::Packet;
use udpchat_reliable::{Endpoint, Event, MessageId, SendError};

use crate::impairment::{
    derive_seed, DropCause, Fate, Impairment, ImpairmentConfig, ImpairmentStats, Verdict,
};
use crate::pcap::{Datagram, PacketFate};
use crate::tcp::segment::SegmentSummary;

/// Where [`Simulator::with_capture`] sends each datagram.
pub type CaptureFn = Box<dyn FnMut(&Datagram<'_>) + Send>;

/// The capture callback, with a `Debug` of its own (closures have none).
struct CaptureHook(CaptureFn);

impl fmt::Debug for CaptureHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaptureHook")
    }
}

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

    /// This side's (virtual) address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
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

impl Link {
    /// 0 for A->B, 1 for B->A: where per-link bookkeeping sits in arrays.
    fn index(self) -> usize {
        match self {
            Link::AToB => 0,
            Link::BToA => 1,
        }
    }
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
    /// Largest datagram the path carries, in bytes: a larger one is dropped, as a router does
    /// with "don't fragment" set. Default none (no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<usize>,
    /// From this time after the start, both links are dark: every datagram on them is lost
    /// (the peer vanished). Default never.
    #[serde(serialize_with = "opt_nanos", skip_serializing_if = "Option::is_none")]
    pub dark_after: Option<Duration>,
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
            mtu: None,
            dark_after: None,
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
        /// Its cumulative ack: every sequence number below it was received.
        cumulative: u64,
        /// Its selective acks above `cumulative`: inclusive `(first, last)` ranges, as sent.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ranges: Vec<(u64, u64)>,
    },
    /// Handshake, first half.
    Hello,
    /// Handshake, second half.
    Welcome,
    /// Keepalive probe.
    Ping,
    /// Keepalive answer.
    Pong,
    /// A path MTU probe (padding, no user data), with its datagram's size.
    Probe {
        /// The datagram's size in bytes: the path MTU being tried.
        size: usize,
    },
    /// The answer to a path MTU probe.
    ProbeAck,
    /// A piece of a data packet too large for the path now (after a path MTU black hole).
    Piece {
        /// Which piece, from 0.
        index: u32,
        /// Of how many.
        count: u32,
    },
    /// Close.
    Close,
    /// An encrypted datagram (`--secret`): only its kind (`init`, `reply`, `reject`, `sealed`)
    /// is in clear.
    Encrypted {
        /// The encrypted kind's name.
        kind: &'static str,
    },
    /// A TCP segment (the simulator's TCP mode, [`crate::tcp`]).
    Tcp(SegmentSummary),
    /// Neither a valid udpchat datagram nor a TCP segment (plain mode, or corrupted).
    Opaque,
}

impl PacketSummary {
    /// Decodes `datagram` as far as a summary needs.
    pub fn of(datagram: &[u8]) -> PacketSummary {
        if let Some(kind) = udpchat_core::sealed::sealed_kind(datagram) {
            return PacketSummary::Encrypted { kind: kind.name() };
        }
        match udpchat_core::decode(datagram) {
            Ok(Packet::Raw(m)) => PacketSummary::Raw { seq: m.seq },
            // A Fin or Nick is a packet of the data stream under its own kind (its message is
            // the transport's, not a line): summarised as the data it is sequenced with.
            Ok(Packet::Data(d) | Packet::Fin(d) | Packet::Nick(d)) => PacketSummary::data(&d),
            Ok(Packet::Ack { ack, .. }) => PacketSummary::Ack {
                cumulative: ack.cumulative.0,
                ranges: ack.ranges.iter().map(|r| (r.first.0, r.last.0)).collect(),
            },
            Ok(Packet::Hello(_)) => PacketSummary::Hello,
            Ok(Packet::Welcome(_)) => PacketSummary::Welcome,
            Ok(Packet::Ping { .. }) => PacketSummary::Ping,
            Ok(Packet::Pong { .. }) => PacketSummary::Pong,
            Ok(Packet::Probe { .. }) => PacketSummary::Probe {
                size: datagram.len(),
            },
            Ok(Packet::ProbeAck { .. }) => PacketSummary::ProbeAck,
            Ok(Packet::Piece { index, count, .. }) => PacketSummary::Piece { index, count },
            Ok(Packet::Close { .. }) => PacketSummary::Close,
            // A bundle leads with its new packet; the copies behind it are not summarised.
            Ok(Packet::Bundle(items)) => items
                .first()
                .map_or(PacketSummary::Opaque, PacketSummary::data),
            Err(_) => crate::tcp::segment::parse(datagram)
                .map_or(PacketSummary::Opaque, PacketSummary::Tcp),
        }
    }

    fn data(d: &udpchat_core::Data) -> PacketSummary {
        PacketSummary::Data {
            seq: d.seq.0,
            message: d.message,
            fragment: d.fragment,
            fragments: d.fragments,
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
            PacketSummary::Ack { cumulative, ranges } => {
                write!(f, "ack cum={cumulative}")?;
                for (i, (first, last)) in ranges.iter().enumerate() {
                    let sep = if i == 0 { " sack=" } else { "," };
                    if first == last {
                        write!(f, "{sep}{first}")?;
                    } else {
                        write!(f, "{sep}{first}-{last}")?;
                    }
                }
                Ok(())
            }
            PacketSummary::Hello => f.write_str("hello"),
            PacketSummary::Welcome => f.write_str("welcome"),
            PacketSummary::Ping => f.write_str("ping"),
            PacketSummary::Pong => f.write_str("pong"),
            PacketSummary::Probe { size } => write!(f, "probe {size}B"),
            PacketSummary::ProbeAck => f.write_str("probe-ack"),
            PacketSummary::Piece { index, count } => write!(f, "piece {index}/{count}"),
            PacketSummary::Close => f.write_str("close"),
            PacketSummary::Encrypted { kind } => write!(f, "encrypted {kind}"),
            PacketSummary::Tcp(segment) => write!(f, "{segment}"),
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
        /// Which timer, where the endpoint names it ([`Endpoint::timer_name`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        timer: Option<&'static str>,
    },
    /// The path MTU ([`Scenario::mtu`]) stopped a datagram larger than it.
    TooLarge {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
        /// Its size in bytes.
        len: usize,
        /// The path MTU.
        mtu: usize,
    },
    /// The link was dark ([`Scenario::dark_after`]): the datagram is lost.
    Dark {
        /// Which link.
        link: Link,
        /// Which datagram.
        datagram: u64,
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
            TraceEvent::Timer { side, timer } => match timer {
                Some(timer) => write!(f, "{side} timer {timer}"),
                None => write!(f, "{side} timer"),
            },
            TraceEvent::TooLarge {
                link,
                datagram,
                len,
                mtu,
            } => write!(f, "{link} too-large d{datagram} ({len}B > mtu {mtu}B)"),
            TraceEvent::Dark { link, datagram } => write!(f, "{link} dark d{datagram}"),
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
///
/// Messages are kept by index, in sending order. A delivery names its message only by its text,
/// so the text → index lookup is built at the first delivery of a message, from the texts kept
/// until then: a run whose endpoints deliver no messages (a datagram-level benchmark) never
/// hashes a text, and a text is never copied.
#[derive(Debug, Default)]
struct Tally {
    /// Accepted messages, in sending order: send time, first delivery time.
    messages: Vec<(Duration, Option<Duration>)>,
    /// The texts of the accepted messages, by index, until `by_text` is built (then empty).
    texts: Vec<String>,
    /// Per text, the accepted messages not yet delivered, oldest first. Every text ever accepted
    /// keeps its entry (empty once delivered), which tells a duplicate from a stranger.
    by_text: Option<HashMap<String, VecDeque<usize>>>,
    send_failed: u64,
    duplicated: u64,
    reordered: u64,
    unmatched: u64,
    highest_delivered: Option<usize>,
}

impl Tally {
    fn sent(&mut self, text: String, at: Duration) {
        let index = self.messages.len();
        self.messages.push((at, None));
        match &mut self.by_text {
            Some(by_text) => by_text.entry(text).or_default().push_back(index),
            None => self.texts.push(text),
        }
    }

    fn delivered(&mut self, text: &str, at: Duration) {
        let texts = &mut self.texts;
        let by_text = self.by_text.get_or_insert_with(|| {
            let mut by_text: HashMap<String, VecDeque<usize>> = HashMap::new();
            for (index, text) in texts.drain(..).enumerate() {
                by_text.entry(text).or_default().push_back(index);
            }
            by_text
        });
        match by_text.get_mut(text).map(VecDeque::pop_front) {
            Some(Some(index)) => {
                self.messages[index].1 = Some(at);
                match self.highest_delivered {
                    Some(highest) if index < highest => self.reordered += 1,
                    _ => self.highest_delivered = Some(index),
                }
            }
            Some(None) => self.duplicated += 1,
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

/// Counters of one direction, as the wire sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WireCounters {
    /// Datagrams the sending endpoint handed out (unroutable ones included).
    pub datagrams: u64,
    /// Their bytes (UDP payload; IP and UDP headers are not counted).
    pub bytes: u64,
    /// Datagrams larger than the path MTU ([`Scenario::mtu`]), dropped.
    pub dropped_mtu: u64,
    /// Datagrams lost because the link was dark ([`Scenario::dark_after`]).
    pub dropped_dark: u64,
    /// Datagrams handed to the receiving endpoint (copies included).
    pub delivered: u64,
}

/// Most spare datagram buffers kept for reuse: enough for any burst the links release at once
/// in practice, and a bound on what a burst can leave allocated.
const SPARE_BUFFERS: usize = 1024;

/// Two endpoints, two impaired links and one virtual clock: the one driver of virtual time.
///
/// Run a [`Scenario`] to its end with [`Simulator::run`], or drive it step by step when the
/// application's actions depend on what arrives (an echo, say): [`Simulator::advance`] (or
/// [`Simulator::advance_within`]) moves the clock to the next thing that can happen,
/// [`Simulator::take_events`] hands out what the applications were told, and
/// [`Simulator::send`] sends from the application side at the current time. Both ways share the
/// same steps, in the same order, so a scenario gives the same trace either way.
#[derive(Debug)]
pub struct Simulator<A, B> {
    a: A,
    b: B,
    a_to_b: Impairment<u64>,
    b_to_a: Impairment<u64>,
    mtu: Option<usize>,
    dark_at: Option<Instant>,
    epoch: Instant,
    now: Instant,
    pending: VecDeque<ScheduledMessage>,
    close_at: Option<Duration>,
    closed_called: bool,
    time_limit: Duration,
    max_steps: u64,
    steps: u64,
    next_datagram: u64,
    /// `None` when tracing is off: nothing is then decoded or recorded per datagram.
    trace: Option<Trace>,
    /// Application events not yet taken, when someone can take them (not in [`Simulator::run`]).
    events: Vec<(Side, Event)>,
    keep_events: bool,
    /// Spare datagram buffers: a datagram's bytes come back here once delivered, so the steady
    /// state allocates nothing per datagram.
    spare: Vec<Vec<u8>>,
    /// Per link ([`Link::index`]): wire counters and message tallies.
    wire: [WireCounters; 2],
    tally: [Tally; 2],
    /// Every datagram and its fate, for a pcap file; `None` unless asked for.
    capture: Option<CaptureHook>,
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
            mtu: scenario.mtu,
            dark_at: scenario.dark_after.map(|d| epoch + d),
            epoch,
            now: epoch,
            pending: messages.into(),
            close_at: scenario.close_at,
            closed_called: false,
            time_limit: scenario.time_limit,
            max_steps: scenario.max_steps,
            steps: 0,
            next_datagram: 0,
            trace: Some(Trace::default()),
            events: Vec::new(),
            keep_events: true,
            spare: Vec::new(),
            wire: [WireCounters::default(); 2],
            tally: [Tally::default(), Tally::default()],
            capture: None,
        }
    }

    /// Hands every datagram to `capture`, with virtual time since the start, when it is sent
    /// (its fate on the link as comment) and when each copy arrives (see the module
    /// documentation). The run itself is unchanged.
    pub fn with_capture(mut self, capture: CaptureFn) -> Simulator<A, B> {
        self.capture = Some(CaptureHook(capture));
        self
    }

    /// Writes one datagram to the capture, if there is one.
    fn capture(&mut self, link: Link, payload: &[u8], fate: Option<PacketFate>, note: &str) {
        let time = self.now - self.epoch;
        if let Some(CaptureHook(capture)) = &mut self.capture {
            let (from, to) = match link {
                Link::AToB => (ADDR_A, ADDR_B),
                Link::BToA => (ADDR_B, ADDR_A),
            };
            capture(&Datagram {
                time,
                from,
                to,
                payload,
                fate,
                note: Some(note),
            });
        }
    }

    /// Turns the trace off: nothing is decoded or recorded per datagram, and the outcome's trace
    /// is empty. The summary, the counters and the application events are unaffected.
    pub fn without_trace(mut self) -> Simulator<A, B> {
        self.trace = None;
        self
    }

    /// Endpoint A.
    pub fn a(&self) -> &A {
        &self.a
    }

    /// Endpoint B.
    pub fn b(&self) -> &B {
        &self.b
    }

    /// Endpoint A, to act on it directly (what it sends is picked up at the next step).
    pub fn a_mut(&mut self) -> &mut A {
        &mut self.a
    }

    /// Endpoint B, to act on it directly.
    pub fn b_mut(&mut self) -> &mut B {
        &mut self.b
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// The instant `offset` after the start.
    pub fn at(&self, offset: Duration) -> Instant {
        self.epoch + offset
    }

    /// Clock steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Changes the path MTU from now on ([`Scenario::mtu`]), as a route change would: a
    /// datagram already on a link keeps its fate; the next ones larger than `mtu` are dropped.
    pub fn set_mtu(&mut self, mtu: Option<usize>) {
        self.mtu = mtu;
    }

    /// What went over the wire from `side`.
    pub fn wire(&self, side: Side) -> WireCounters {
        self.wire[side.outgoing().index()]
    }

    /// The trace so far, if tracing is on.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// The application events that came out since the last call, in order.
    pub fn take_events(&mut self) -> Vec<(Side, Event)> {
        std::mem::take(&mut self.events)
    }

    /// Sends `text` from `side`'s application now, exactly as a scheduled message would be sent:
    /// traced, and counted in the summary.
    pub fn send(&mut self, side: Side, text: &str) -> Result<MessageId, SendError> {
        self.send_owned(side, text.to_owned())
    }

    /// When the next thing can happen (a scheduled send or close, an endpoint timer, a datagram
    /// leaving a link), after putting what the endpoints want to send on the links; `None` if
    /// nothing ever will unless an application acts.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        self.flush();
        self.wakeup()
    }

    /// One step of virtual time, no further than `until`: puts what the endpoints want to send
    /// on the links, then, if something can happen at or before `until`, jumps the clock there,
    /// does everything due (in the order of [`Simulator::run`]), collects what the endpoints
    /// produce and returns true. Otherwise the clock stops at `until` (it never goes backwards),
    /// what the endpoints hand out at that time is collected, and it returns false.
    pub fn advance(&mut self, until: Instant) -> bool {
        self.flush();
        match self.wakeup().filter(|&next| next <= until) {
            Some(next) => {
                self.step_and_flush(next);
                true
            }
            None => {
                self.steps += 1;
                self.now = self.now.max(until);
                self.flush();
                false
            }
        }
    }

    /// The step of a workload that reacts to what arrives: advances to the earlier of
    /// `next_action` (the application's own next move, if any) and the next thing that can
    /// happen, but never past `limit`. Returns true if the clock moved to a time for the
    /// application to look at; false if nothing could happen by `limit` (the clock is then at
    /// `limit`) or ever (the clock stays).
    pub fn advance_within(&mut self, next_action: Option<Instant>, limit: Instant) -> bool {
        if let Some(at) = next_action.filter(|&at| at <= limit) {
            self.advance(at);
            return true;
        }
        self.flush();
        match self.wakeup() {
            Some(next) if next <= limit => {
                self.step_and_flush(next);
                true
            }
            None if next_action.is_none() => false,
            _ => {
                self.now = self.now.max(limit);
                false
            }
        }
    }

    /// Runs until idle, closed, or a limit; returns the trace and summary. It may follow steps
    /// taken by hand (the summary then counts them too); application events not yet taken are
    /// dropped (the trace, if on, has them).
    pub fn run(mut self) -> Outcome<A, B> {
        // Nobody can take events from a run to the end: do not keep them.
        self.keep_events = false;
        self.events.clear();
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
            let Some(next) = self.wakeup() else {
                break StopReason::Idle;
            };
            if next > self.epoch + self.time_limit {
                self.now = self.epoch + self.time_limit;
                break StopReason::TimeLimit;
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                break StopReason::StepLimit;
            }
            self.step(next);
        };
        let summary = Summary {
            duration: self.now - self.epoch,
            stop,
            a_to_b: self.tally[0].summary(self.a_to_b.stats().clone()),
            b_to_a: self.tally[1].summary(self.b_to_a.stats().clone()),
        };
        Outcome {
            trace: self.trace.unwrap_or_default(),
            summary,
            a: self.a,
            b: self.b,
        }
    }

    fn record(&mut self, event: TraceEvent) {
        if let Some(trace) = &mut self.trace {
            let at = self.now - self.epoch;
            trace.entries.push(TraceEntry { at, event });
        }
    }

    fn is_dark(&self) -> bool {
        self.dark_at.is_some_and(|at| self.now >= at)
    }

    /// The earliest wake-up, as things stand (what the endpoints want to send must already be on
    /// the links).
    fn wakeup(&self) -> Option<Instant> {
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

    fn step_and_flush(&mut self, next: Instant) {
        self.steps += 1;
        self.step(next);
        self.flush();
    }

    /// Jumps the clock to `next` (a timer in the past fires now: the clock never goes backwards)
    /// and does everything due, in a fixed order so runs are reproducible: link deliveries
    /// (A->B, then B->A), timers (A, then B), scheduled sends, then closing.
    fn step(&mut self, next: Instant) {
        self.now = self.now.max(next);
        self.deliver(Link::AToB);
        self.deliver(Link::BToA);
        self.fire_timer(Side::A);
        self.fire_timer(Side::B);
        let now = self.now;
        while self
            .pending
            .front()
            .is_some_and(|m| self.epoch + m.at <= now)
        {
            let Some(message) = self.pending.pop_front() else {
                break;
            };
            // A refusal is recorded in the trace and the summary; the scenario goes on.
            let _ = self.send_owned(message.from, message.text);
        }
        if !self.closed_called && self.close_at.is_some_and(|at| self.epoch + at <= now) {
            self.closed_called = true;
            self.record(TraceEvent::Close { side: Side::A });
            self.a.close(now);
            self.record(TraceEvent::Close { side: Side::B });
            self.b.close(now);
        }
    }

    /// Hands every datagram due out of `link` to the endpoint at its end.
    fn deliver(&mut self, link: Link) {
        let now = self.now;
        let dark = self.is_dark();
        loop {
            let released = match link {
                Link::AToB => self.a_to_b.poll(now),
                Link::BToA => self.b_to_a.poll(now),
            };
            let Some(released) = released else { break };
            let datagram = released.tag;
            if self.capture.is_some() {
                let (fate, note) = match (dark, released.late) {
                    (true, _) => (None, format!("dropped (the link went dark); d{datagram}")),
                    (false, true) => (
                        Some(PacketFate::Delivered),
                        format!("d{datagram} arrived late (after one sent later)"),
                    ),
                    (false, false) => (Some(PacketFate::Delivered), format!("d{datagram} arrived")),
                };
                self.capture(link, &released.bytes, fate, &note);
            }
            if dark {
                self.wire[link.index()].dropped_dark += 1;
                self.record(TraceEvent::Dark { link, datagram });
            } else {
                self.wire[link.index()].delivered += 1;
                self.record(TraceEvent::Delivered {
                    link,
                    datagram,
                    late: released.late,
                });
                match link {
                    Link::AToB => self.b.handle_datagram(now, ADDR_A, &released.bytes),
                    Link::BToA => self.a.handle_datagram(now, ADDR_B, &released.bytes),
                }
            }
            self.recycle(released.bytes);
        }
    }

    /// Calls `side`'s `handle_timeout` if its timer is due, naming the timer in the trace.
    fn fire_timer(&mut self, side: Side) {
        let now = self.now;
        let due = match side {
            Side::A => self.a.poll_timeout(),
            Side::B => self.b.poll_timeout(),
        }
        .is_some_and(|t| t <= now);
        if !due {
            return;
        }
        if self.trace.is_some() {
            let timer = match side {
                Side::A => self.a.timer_name(),
                Side::B => self.b.timer_name(),
            };
            self.record(TraceEvent::Timer { side, timer });
        }
        match side {
            Side::A => self.a.handle_timeout(now),
            Side::B => self.b.handle_timeout(now),
        }
    }

    /// Sends `text` from `side` now; traces and tallies the attempt.
    fn send_owned(&mut self, side: Side, text: String) -> Result<MessageId, SendError> {
        let now = self.now;
        let result = match side {
            Side::A => self.a.send(now, &text),
            Side::B => self.b.send(now, &text),
        };
        let at = self.elapsed();
        let traced = self.trace.is_some().then(|| text.clone());
        let tally = &mut self.tally[side.outgoing().index()];
        match &result {
            Ok(_) => tally.sent(text, at),
            Err(_) => tally.send_failed += 1,
        }
        if let Some(text) = traced {
            self.record(TraceEvent::Send {
                side,
                text,
                result: result.as_ref().map(|id| id.0).map_err(|e| e.to_string()),
            });
        }
        result
    }

    fn recycle(&mut self, buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buffer);
        }
    }

    /// Moves every datagram the endpoints want to send onto the links and collects their events.
    fn flush(&mut self) {
        self.flush_side(Side::A);
        self.flush_side(Side::B);
    }

    fn flush_side(&mut self, side: Side) {
        loop {
            let now = self.now;
            let mut buffer = self.spare.pop().unwrap_or_default();
            let to = match side {
                Side::A => self.a.poll_transmit(now, &mut buffer),
                Side::B => self.b.poll_transmit(now, &mut buffer),
            };
            let Some(to) = to else {
                self.recycle(buffer);
                break;
            };
            self.carry(side, to, buffer);
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
                self.tally[side.other().outgoing().index()].delivered(text, at);
            }
            if !self.keep_events {
                self.record(TraceEvent::App { side, event });
            } else {
                if self.trace.is_some() {
                    self.record(TraceEvent::App {
                        side,
                        event: event.clone(),
                    });
                }
                self.events.push((side, event));
            }
        }
    }

    /// Puts one datagram from `side` on its link and records its fate.
    fn carry(&mut self, side: Side, to: SocketAddr, payload: Vec<u8>) {
        let datagram = self.next_datagram;
        self.next_datagram += 1;
        let link = side.outgoing();
        let wire = &mut self.wire[link.index()];
        wire.datagrams += 1;
        wire.bytes += payload.len() as u64;
        if self.trace.is_some() {
            self.record(TraceEvent::Transmit {
                side,
                datagram,
                len: payload.len(),
                packet: PacketSummary::of(&payload),
            });
        }
        if to != side.other().addr() {
            // Not on either link: it shows nowhere in a capture between A and B.
            self.record(TraceEvent::Unroutable { side, datagram, to });
            self.recycle(payload);
            return;
        }
        if let Some(mtu) = self.mtu.filter(|&mtu| payload.len() > mtu) {
            if self.capture.is_some() {
                let note = format!("dropped (larger than the path MTU, {mtu} B); d{datagram} sent");
                self.capture(link, &payload, None, &note);
            }
            self.wire[link.index()].dropped_mtu += 1;
            self.record(TraceEvent::TooLarge {
                link,
                datagram,
                len: payload.len(),
                mtu,
            });
            self.recycle(payload);
            return;
        }
        if self.is_dark() {
            if self.capture.is_some() {
                let note = format!("dropped (the link is dark); d{datagram} sent");
                self.capture(link, &payload, None, &note);
            }
            self.wire[link.index()].dropped_dark += 1;
            self.record(TraceEvent::Dark { link, datagram });
            self.recycle(payload);
            return;
        }
        let now = self.now;
        // The capture needs the bytes after the link has them: a copy, only when capturing.
        let captured = self.capture.is_some().then(|| payload.clone());
        let verdict = match link {
            Link::AToB => self.a_to_b.offer(now, datagram, payload),
            Link::BToA => self.b_to_a.offer(now, datagram, payload),
        };
        if let Some(bytes) = captured {
            let (fate, note) = verdict_words(now, &format!("d{datagram} sent"), &verdict);
            self.capture(link, &bytes, Some(fate), &note);
        }
        if self.trace.is_some() {
            self.record_verdict(link, datagram, verdict);
        }
    }

    fn record_verdict(&mut self, link: Link, datagram: u64, verdict: Verdict) {
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

/// A link's verdict on a datagram offered at `now` as a capture's fate and note: the original's
/// fate, then `label`, then what else happened (corruption, reordering, the copy's fate). The
/// proxy words its verdicts the same way.
pub(crate) fn verdict_words(now: Instant, label: &str, verdict: &Verdict) -> (PacketFate, String) {
    let mut note = label.to_owned();
    let fate = |f: &Fate, note: &mut String| match *f {
        Fate::Dropped { cause } => PacketFate::Dropped(cause),
        Fate::Scheduled {
            release,
            corrupted_bits,
            sent_ahead,
        } => {
            if corrupted_bits > 0 {
                note.push_str(&format!("; corrupted ({corrupted_bits} bits flipped)"));
            }
            if sent_ahead {
                note.push_str("; sent ahead of those queued (reordered)");
            }
            PacketFate::Delayed(release.saturating_duration_since(now))
        }
    };
    let original = fate(&verdict.original, &mut note);
    if let Some(copy) = &verdict.duplicate {
        let mut copy_note = String::new();
        let copy_fate = fate(copy, &mut copy_note);
        note.push_str(&format!(
            "; {}: copy {copy_fate}{copy_note}",
            PacketFate::Duplicated
        ));
    }
    (original, note)
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
    fn a_capture_sees_every_datagram_with_its_fate_and_changes_nothing() {
        use std::sync::{Arc, Mutex};
        let scenario = Scenario::new(4)
            .links(ImpairmentConfig {
                loss: Probability::new(0.3).unwrap(),
                duplicate: Probability::new(0.2).unwrap(),
                delay: ms(10),
                ..Default::default()
            })
            .messages_every(Side::A, "m", Duration::ZERO, ms(5), 40);
        let (a, b) = pair();
        let plain = Simulator::new(scenario.clone(), a, b).run();
        let seen: Arc<Mutex<Vec<(Duration, SocketAddr, String)>>> = Arc::default();
        let sink = Arc::clone(&seen);
        let (a, b) = pair();
        let captured = Simulator::new(scenario, a, b)
            .with_capture(Box::new(move |d| {
                let comment = d.comment().unwrap();
                sink.lock().unwrap().push((d.time, d.from, comment));
            }))
            .run();
        assert_eq!(plain.trace, captured.trace, "capturing changes nothing");
        let count = |f: &dyn Fn(&TraceEvent) -> bool| plain.trace.events().filter(|e| f(e)).count();
        let transmitted = count(&|e| matches!(e, TraceEvent::Transmit { .. }));
        let delivered = count(&|e| matches!(e, TraceEvent::Delivered { .. }));
        let dropped = count(&|e| matches!(e, TraceEvent::Dropped { .. }));
        let duplicated = count(&|e| matches!(e, TraceEvent::Duplicated { .. }));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), transmitted + delivered);
        let with = |word: &str| seen.iter().filter(|(_, _, c)| c.contains(word)).count();
        assert_eq!(with(" sent"), transmitted);
        assert_eq!(with("delivered; d"), delivered);
        assert_eq!(with("dropped (loss)"), dropped);
        assert_eq!(with("duplicated"), duplicated);
        assert!(dropped > 0 && duplicated > 0);
        // Virtual time, in order; every datagram here goes from A to B or back.
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(seen
            .iter()
            .all(|(_, from, _)| *from == ADDR_A || *from == ADDR_B));
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

    #[test]
    fn advance_stops_at_until_and_the_clock_never_goes_back() {
        let scenario = Scenario::new(1).links(ImpairmentConfig {
            delay: ms(30),
            ..Default::default()
        });
        let (a, b) = pair();
        let epoch = Instant::now();
        let mut sim = Simulator::starting_at(epoch, scenario, a, b);
        sim.send(Side::A, "hello").unwrap();
        // The datagram is on the link until 30 ms: nothing is due by 10 ms.
        assert!(!sim.advance(epoch + ms(10)));
        assert_eq!(sim.elapsed(), ms(10));
        assert!(sim.take_events().is_empty());
        // An earlier `until` does not move the clock back.
        assert!(!sim.advance(epoch + ms(5)));
        assert_eq!(sim.elapsed(), ms(10));
        // The arrival is due before 100 ms: the clock stops there, not at `until`.
        assert!(sim.advance(epoch + ms(100)));
        assert_eq!(sim.elapsed(), ms(30));
        assert_eq!(sim.wire(Side::A).delivered, 1);
        // Nothing more can happen.
        assert_eq!(sim.next_wakeup(), None);
        assert!(!sim.advance_within(None, epoch + ms(1000)));
        assert_eq!(
            sim.elapsed(),
            ms(30),
            "an idle run does not jump to the limit"
        );
    }

    #[test]
    fn events_are_taken_once_in_the_order_they_happened() {
        let scenario = Scenario::new(1)
            .links(ImpairmentConfig {
                delay: ms(10),
                ..Default::default()
            })
            .messages_every(Side::A, "a", ms(0), ms(1), 3)
            .message(ms(2), Side::B, "b-0");
        let (a, b) = pair();
        let epoch = Instant::now();
        let mut sim = Simulator::starting_at(epoch, scenario, a, b);
        let mut seen = Vec::new();
        while sim.advance(epoch + Duration::from_secs(1)) {
            for (side, event) in sim.take_events() {
                if let Event::Message { text, .. } = event {
                    seen.push((side, text, sim.elapsed()));
                }
            }
        }
        let expected = [
            (Side::B, "a-0", ms(10)),
            (Side::B, "a-1", ms(11)),
            // Both arrive at 12 ms; A's events are collected before B's.
            (Side::A, "b-0", ms(12)),
            (Side::B, "a-2", ms(12)),
        ];
        let expected: Vec<(Side, String, Duration)> = expected
            .iter()
            .map(|(side, text, at)| (*side, (*text).to_owned(), *at))
            .collect();
        assert_eq!(seen, expected);
        assert!(sim.take_events().is_empty());
    }

    #[test]
    fn application_sends_are_traced_and_counted_like_scheduled_ones() {
        let epoch = Instant::now();
        let scenario = Scenario::new(1).message(ms(0), Side::A, "scheduled");
        let a = LineEndpoint::new(Some(ADDR_B));
        let b = LineEndpoint::new(Some(ADDR_A)).echoing();
        let mut sim = Simulator::starting_at(epoch, scenario, a, b);
        // B answers each message it gets from its application, at the time it gets it.
        while sim.advance_within(None, epoch + ms(1000)) {
            for (side, event) in sim.take_events() {
                if let (Side::B, Event::Message { text, .. }) = (side, event) {
                    sim.send(Side::B, &format!("re: {text}")).unwrap();
                }
            }
        }
        let out = sim.run();
        assert_eq!(out.summary.a_to_b.delivered, 1);
        assert_eq!(
            (out.summary.b_to_a.sent, out.summary.b_to_a.delivered),
            (1, 1)
        );
        // The endpoint's own echo is a message nobody's application sent.
        assert_eq!(out.summary.b_to_a.unmatched, 1);
        let text = out.trace.to_text();
        assert!(text.contains("B send #1 \"re: scheduled\""), "{text}");
        assert!(text.contains("A send #0 \"scheduled\""), "{text}");
    }

    #[test]
    fn stepping_by_hand_gives_the_same_trace_as_run() {
        let scenario = || {
            Scenario::new(5)
                .links(ImpairmentConfig {
                    loss: Probability::new(0.2).unwrap(),
                    delay: ms(10),
                    jitter: ms(8),
                    duplicate: Probability::new(0.1).unwrap(),
                    ..Default::default()
                })
                .messages_every(Side::A, "a", ms(0), ms(3), 50)
                .messages_every(Side::B, "b", ms(1), ms(7), 20)
        };
        let epoch = Instant::now();
        let endpoints = || {
            (
                LineEndpoint::new(Some(ADDR_B)),
                LineEndpoint::new(Some(ADDR_A))
                    .echoing()
                    .heartbeat(epoch, ms(40), 5),
            )
        };
        let (a, b) = endpoints();
        let whole = Simulator::starting_at(epoch, scenario(), a, b).run();
        let (a, b) = endpoints();
        let mut sim = Simulator::starting_at(epoch, scenario(), a, b);
        let mut steps = 0;
        while sim.advance_within(None, epoch + Duration::from_secs(60)) {
            steps += 1;
        }
        let stepped = sim.run();
        assert_eq!(stepped.trace.to_text(), whole.trace.to_text());
        assert_eq!(stepped.summary, whole.summary);
        assert!(steps > 50);
    }

    #[test]
    fn timers_are_named_in_the_trace_where_the_endpoint_names_them() {
        let epoch = Instant::now();
        let mut scenario = Scenario::new(1);
        scenario.time_limit = ms(2500);
        let a = LineEndpoint::new(Some(ADDR_B)).heartbeat(epoch, ms(1000), 2);
        let b = LineEndpoint::new(Some(ADDR_A));
        let trace = Simulator::starting_at(epoch, scenario, a, b).run().trace;
        let text = trace.to_text();
        assert_eq!(text.matches("A timer heartbeat\n").count(), 2, "{text}");
        let json = trace.to_json_lines();
        assert_eq!(json.matches(r#""timer":"heartbeat""#).count(), 2, "{json}");
    }

    #[test]
    fn without_a_trace_the_summary_and_counters_are_the_same() {
        let scenario = || {
            Scenario::new(9)
                .links(ImpairmentConfig {
                    loss: Probability::new(0.3).unwrap(),
                    delay: ms(5),
                    jitter: ms(5),
                    ..Default::default()
                })
                .messages_every(Side::A, "a", ms(0), ms(1), 200)
        };
        let (a, b) = pair();
        let traced = Simulator::new(scenario(), a, b).run();
        let (a, b) = pair();
        let bare = Simulator::new(scenario(), a, b).without_trace().run();
        assert!(bare.trace.entries.is_empty());
        assert!(!traced.trace.entries.is_empty());
        assert_eq!(bare.summary, traced.summary);
    }

    #[test]
    fn the_path_mtu_and_a_dark_link_drop_what_they_should() {
        let epoch = Instant::now();
        let mut scenario = Scenario::new(1)
            .message(ms(0), Side::A, "fits")
            .message(ms(0), Side::A, "x".repeat(300))
            .message(ms(20), Side::A, "too late");
        scenario.mtu = Some(200);
        scenario.dark_after = Some(ms(10));
        let (a, b) = pair();
        let out = Simulator::starting_at(epoch, scenario, a, b).run();
        let text = out.trace.to_text();
        assert!(
            text.contains("A->B too-large d1 (302B > mtu 200B)"),
            "{text}"
        );
        assert!(text.contains("A->B dark d2"), "{text}");
        assert_eq!(out.summary.a_to_b.delivered, 1);
        assert_eq!(out.summary.a_to_b.lost, 2);
    }
}
