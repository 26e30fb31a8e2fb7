//! [`Receiver`]: the receiving half of a session — duplicates out, order restored, acks out.
//!
//! Every data packet is first checked against [`SackRanges`] (seen before? inside our window?),
//! then either waits in the [`ReorderBuffer`] for the packets before it (ordered delivery) or goes
//! straight to reassembly (unordered). What we hold is what the next acknowledgement says.
//!
//! Every ack also says how far the application has the data (`Ack::delivered`: in ordered
//! delivery the end of the last message handed over in order, in unordered delivery the
//! cumulative ack, and the listed ranges too, `Ack::ranges_delivered`), and carries the sum of
//! the tokens of every packet it acknowledges (`Ack::echo`), so the sender takes its word only
//! if it comes from whoever received the data.
//!
//! Acknowledgement timing follows TCP's delayed acks (RFC 1122/5681): ack at once when two data
//! packets are waiting for an ack, when a packet arrives out of order or twice (the sender needs
//! that evidence quickly), and otherwise within `max_ack_delay`, hoping to piggyback the ack on
//! data of our own. The ack carries how long it was held so the sender's RTT samples stay honest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use udpchat_core::{Ack, ConnectionId, Packet, SeqNum};

use super::config::{Delivery, ReliableConfig};
use super::fragment::{Fragment, Limits, OrderedAssembler, UnorderedAssembler};
use super::reorder::{Placed, ReorderBuffer};
use super::sack::{Insert, SackRanges};

/// What one arriving data packet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// New. `messages` are the `(number, bytes)` of messages it completed, in delivery order;
    /// `reordered` says it arrived after a later packet; `malformed` counts fragments found
    /// inconsistent while reassembling (their partial message was dropped).
    New {
        /// Completed messages.
        messages: Vec<(u64, Vec<u8>)>,
        /// Arrived after a higher sequence number.
        reordered: bool,
        /// Fragments dropped as inconsistent.
        malformed: u32,
    },
    /// Already received: dropped.
    Duplicate,
    /// Beyond our window (or our range bookkeeping): dropped; the sender will resend it.
    Refused,
    /// The fragment header is invalid: dropped.
    Malformed,
}

/// A received packet waiting in the reorder buffer.
#[derive(Debug, Clone)]
struct Held {
    seq: SeqNum,
    fragment: Fragment,
}

#[derive(Debug, Clone)]
enum Store {
    Ordered {
        buffer: ReorderBuffer<Held>,
        assembler: OrderedAssembler,
    },
    Unordered(UnorderedAssembler),
}

/// The receiving half of one session.
#[derive(Debug, Clone)]
pub struct Receiver {
    received: SackRanges,
    store: Store,
    limits: Limits,
    window: u32,
    max_ack_delay: Duration,
    max_ack_ranges: usize,
    /// The most bytes an ack may take so that its packet, standalone or in a `Close`, fits
    /// `max_datagram`.
    ack_budget: usize,
    unacked_packets: u32,
    ack_now: bool,
    ack_deadline: Option<Instant>,
    largest_received_at: Option<Instant>,
    any_received: bool,
    /// Every packet below this has been delivered to the application (`Ack::delivered`).
    delivered: SeqNum,
    /// The wrapping sum of the tokens of every packet below the cumulative ack.
    cumulative_echo: u32,
    /// Tokens of the packets received at or above the cumulative ack, folded into
    /// `cumulative_echo` as the cumulative ack passes them. Bounded by the window.
    tokens_above: BTreeMap<SeqNum, u32>,
}

impl Receiver {
    /// A receiver that has received nothing.
    pub fn new(config: &ReliableConfig) -> Self {
        let limits = Limits {
            max_message: config.max_message,
            max_fragments: config.max_fragments(),
        };
        let store = match config.delivery {
            Delivery::Ordered => Store::Ordered {
                buffer: ReorderBuffer::new(config.window as usize),
                assembler: OrderedAssembler::new(limits),
            },
            Delivery::Unordered => Store::Unordered(UnorderedAssembler::new(limits)),
        };
        Receiver {
            // A window of w packets can hold at most w/2 + 1 separate ranges: this bound never refuses
            // an honest sender, and still caps the bookkeeping.
            received: SackRanges::new(u64::from(config.window), config.window as usize / 2 + 1),
            store,
            limits,
            window: config.window,
            max_ack_delay: config.max_ack_delay,
            max_ack_ranges: config.max_ack_ranges,
            ack_budget: ack_budget(config.base_datagram()),
            unacked_packets: 0,
            ack_now: false,
            ack_deadline: None,
            largest_received_at: None,
            any_received: false,
            delivered: SeqNum(0),
            cumulative_echo: 0,
            tokens_above: BTreeMap::new(),
        }
    }

    /// Takes in data packet `seq` with token `token` carrying `fragment`, at `now`.
    pub fn on_data(
        &mut self,
        now: Instant,
        seq: SeqNum,
        token: u32,
        fragment: Fragment,
    ) -> Arrival {
        self.take(now, seq, token, fragment, false)
    }

    /// Takes in a redundant copy of data packet `seq` (one carried behind a new packet in a
    /// bundle): the same, except that a duplicate copy is expected, not a sign that the sender
    /// missed our ack, so it does not call for an immediate ack.
    pub fn on_copy(
        &mut self,
        now: Instant,
        seq: SeqNum,
        token: u32,
        fragment: Fragment,
    ) -> Arrival {
        self.take(now, seq, token, fragment, true)
    }

    fn take(
        &mut self,
        now: Instant,
        seq: SeqNum,
        token: u32,
        fragment: Fragment,
        copy: bool,
    ) -> Arrival {
        if self.limits.check(&fragment).is_err() {
            return Arrival::Malformed;
        }
        let largest_before = self.received.largest();
        match self.received.insert(seq) {
            Insert::Duplicate => {
                // The sender resent it, so it may have missed our ack: answer at once.
                self.ack_now |= !copy;
                return Arrival::Duplicate;
            }
            Insert::Refused => {
                self.ack_now = true;
                return Arrival::Refused;
            }
            Insert::New => {}
        }
        self.any_received = true;
        let reordered = largest_before.is_some_and(|l| seq < l);
        if largest_before.is_none_or(|l| seq > l) {
            self.largest_received_at = Some(now);
        }
        let out_of_order = match largest_before {
            None => seq.0 != 0,
            Some(l) => seq.0 != l.0.saturating_add(1),
        };
        self.unacked_packets += 1;
        if out_of_order || self.unacked_packets >= 2 || self.received.range_count() > 0 {
            self.ack_now = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + self.max_ack_delay);
        }
        self.tokens_above.insert(seq, token);
        let cumulative = self.received.cumulative();
        while let Some(entry) = self.tokens_above.first_entry() {
            if *entry.key() >= cumulative {
                break;
            }
            self.cumulative_echo = self.cumulative_echo.wrapping_add(entry.remove());
        }
        let (messages, malformed) = self.store(seq, fragment);
        Arrival::New {
            messages,
            reordered,
            malformed,
        }
    }

    /// Files a new packet: ordered, into the reorder buffer, releasing what is now in order to
    /// the assembler; unordered, straight to the assembler. Moves the delivered point past
    /// every message handed over. Returns the completed messages and the count of fragments
    /// found inconsistent.
    fn store(&mut self, seq: SeqNum, fragment: Fragment) -> (Vec<(u64, Vec<u8>)>, u32) {
        let mut messages = Vec::new();
        let mut malformed = 0;
        match &mut self.store {
            Store::Ordered { buffer, assembler } => {
                if buffer.insert(seq, Held { seq, fragment }) != Placed::Stored {
                    // Cannot happen while SackRanges and the buffer share one window; if it
                    // did, the fragment is simply not delivered rather than delivered twice.
                    malformed += 1;
                }
                while let Some(ready) = buffer.pop_ready() {
                    match assembler.push(ready.fragment) {
                        Ok(Some(message)) => {
                            messages.push(message);
                            // A message is delivered with its last fragment: every packet up
                            // to this one has now reached the application.
                            self.delivered = ready.seq.next();
                        }
                        Ok(None) => {}
                        Err(_) => malformed += 1,
                    }
                }
            }
            Store::Unordered(assembler) => {
                match assembler.push(seq.0, fragment) {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => {}
                    Err(_) => malformed += 1,
                }
                let cumulative = self.received.cumulative();
                assembler.prune_below(cumulative.0);
                // Unordered, a message is delivered as soon as it is complete, so every message
                // whose fragments are all below the cumulative ack has been delivered.
                self.delivered = cumulative;
            }
        }
        (messages, malformed)
    }

    /// Every sequence number below this has arrived.
    #[cfg(test)]
    pub fn cumulative(&self) -> SeqNum {
        self.received.cumulative()
    }

    /// Every packet below this has been delivered to the application (what `Ack::delivered`
    /// says): a control message of the peer's counts once everything before it is delivered.
    pub fn delivered(&self) -> SeqNum {
        self.delivered
    }

    /// True when an acknowledgement should go out now.
    pub fn wants_ack_now(&self) -> bool {
        self.ack_now
    }

    /// True once any data has arrived (so acks are worth piggybacking).
    pub fn has_received(&self) -> bool {
        self.any_received
    }

    /// Makes the next transmission include an ack (e.g. before closing).
    pub fn request_ack(&mut self) {
        if self.any_received {
            self.ack_now = true;
        }
    }

    /// When the delayed-ack timer fires, if armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ack_deadline
    }

    /// Lets the delayed-ack timer fire if due.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.ack_deadline.is_some_and(|d| d <= now) {
            self.ack_deadline = None;
            self.ack_now = true;
        }
    }

    /// The acknowledgement describing what we hold, as of `now`. Does not reset the ack timers:
    /// call [`Receiver::ack_sent`] once it is on its way.
    pub fn ack(&self, now: Instant) -> Ack {
        let delay = self
            .largest_received_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let mut ack = Ack {
            cumulative: self.received.cumulative(),
            ranges: self.received.ack_ranges(self.max_ack_ranges),
            delay_us: u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            window: self.window,
            delivered: self.delivered,
            // The widest value while the ranges are fitted to the datagram.
            echo: u32::MAX,
            // Unordered, every complete message is delivered, the ones above a hole included:
            // the ranges count as delivered too.
            ranges_delivered: matches!(self.store, Store::Unordered(_)),
        };
        // The echo must cover exactly the ranges sent, so they are fitted here, before it is
        // computed (the highest kept: the newest evidence), never trimmed later.
        ack.trim_ranges_to(self.ack_budget);
        // The echo covers every packet this ack acknowledges: below the cumulative ack and in
        // the ranges it lists.
        ack.echo = ack
            .ranges
            .iter()
            .filter(|r| r.first <= r.last)
            .flat_map(|r| self.tokens_above.range(r.first..=r.last))
            .fold(self.cumulative_echo, |sum, (_, &token)| {
                sum.wrapping_add(token)
            });
        ack
    }

    /// An ack built by [`Receiver::ack`] has been sent.
    pub fn ack_sent(&mut self) {
        self.ack_now = false;
        self.ack_deadline = None;
        self.unacked_packets = 0;
    }
}

/// The most bytes an ack may take so that it fits a `max_datagram` datagram in its largest
/// carrier, a `Close` (an `Ack` packet is one byte smaller: no option tag).
fn ack_budget(max_datagram: usize) -> usize {
    let ack = Ack {
        cumulative: SeqNum(0),
        ranges: Vec::new(),
        delay_us: 0,
        window: 0,
        delivered: SeqNum(0),
        echo: 0,
        ranges_delivered: false,
    };
    let carrier = Packet::Close {
        dst: ConnectionId(u64::MAX),
        ack: Some(ack.clone()),
    };
    max_datagram.saturating_sub(carrier.encoded_len() - ack.encoded_len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::transport::fragment::split;

    fn frag(message: u64, text: &str) -> Fragment {
        split(message, text.as_bytes(), 1000).remove(0)
    }

    #[test]
    fn ordered_holds_back_until_the_hole_fills() {
        let t = Instant::now();
        let mut r = Receiver::new(&ReliableConfig::default());
        let a = r.on_data(t, SeqNum(1), 0, frag(1, "b"));
        assert!(
            matches!(a, Arrival::New { ref messages, reordered: false, .. } if messages.is_empty())
        );
        assert!(r.wants_ack_now(), "out of order: ack at once");
        let a = r.on_data(t, SeqNum(0), 0, frag(0, "a"));
        let Arrival::New {
            messages,
            reordered,
            ..
        } = a
        else {
            panic!("{a:?}")
        };
        assert!(reordered);
        assert_eq!(messages, vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
        assert_eq!(r.on_data(t, SeqNum(1), 0, frag(1, "b")), Arrival::Duplicate);
    }

    #[test]
    fn unordered_delivers_at_once() {
        let t = Instant::now();
        let mut r = Receiver::new(&ReliableConfig {
            delivery: Delivery::Unordered,
            ..ReliableConfig::default()
        });
        let a = r.on_data(t, SeqNum(1), 0, frag(1, "b"));
        assert!(
            matches!(a, Arrival::New { ref messages, .. } if messages == &vec![(1, b"b".to_vec())])
        );
    }

    #[test]
    fn in_order_data_is_acked_every_second_packet_or_after_the_delay() {
        let t = Instant::now();
        let config = ReliableConfig::default();
        let mut r = Receiver::new(&config);
        r.on_data(t, SeqNum(0), 0, frag(0, "a"));
        assert!(!r.wants_ack_now());
        assert_eq!(r.poll_timeout(), Some(t + config.max_ack_delay));
        r.on_data(t, SeqNum(1), 0, frag(1, "b"));
        assert!(r.wants_ack_now());
        let ack = r.ack(t + Duration::from_millis(3));
        assert_eq!(ack.cumulative, SeqNum(2));
        assert_eq!(ack.delay_us, 3000);
        r.ack_sent();
        r.on_data(t, SeqNum(2), 0, frag(2, "c"));
        assert!(!r.wants_ack_now());
        r.on_timeout(t + config.max_ack_delay);
        assert!(r.wants_ack_now());
    }

    #[test]
    fn packets_beyond_the_window_are_refused() {
        let t = Instant::now();
        let mut r = Receiver::new(&ReliableConfig {
            window: 8,
            ..ReliableConfig::default()
        });
        assert_eq!(r.on_data(t, SeqNum(8), 0, frag(8, "x")), Arrival::Refused);
        assert!(matches!(
            r.on_data(t, SeqNum(7), 0, frag(7, "x")),
            Arrival::New { .. }
        ));
    }

    #[test]
    fn invalid_fragment_headers_are_malformed() {
        let t = Instant::now();
        let mut r = Receiver::new(&ReliableConfig::default());
        let bad = Fragment {
            message: 0,
            index: 3,
            count: 2,
            payload: vec![],
        };
        assert_eq!(r.on_data(t, SeqNum(0), 0, bad), Arrival::Malformed);
        let huge = Fragment {
            message: 0,
            index: 0,
            count: u32::MAX,
            payload: vec![],
        };
        assert_eq!(r.on_data(t, SeqNum(0), 0, huge), Arrival::Malformed);
    }
}
