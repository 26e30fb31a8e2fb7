//! [`Sender`]: the sending half of a session — what is in flight, what to resend, and when.
//!
//! Messages are split into fragments and queued; each fragment gets the next sequence number the
//! first time it is sent and keeps it when resent (as in TCP), so the receiver's duplicate filter
//! is a set of sequence numbers. The in-flight packets sit in a ring indexed by sequence number
//! from the cumulative ack, so an ack costs O(acked packets), and memory is bounded by the peer's
//! receive window.
//!
//! Loss is found two ways. Fast retransmit: every transmission (first or repeat) gets a
//! transmission number; once a packet transmitted `reorder_threshold` transmissions later has been
//! acknowledged, and the unacknowledged earlier one has been out for 9/8 of an RTT, it is declared
//! lost without waiting for the timeout (RACK-style: both a packet and a time threshold, so that
//! jitter which reorders packets sent together is not mistaken for loss). Because a resend gets a
//! fresh transmission number, the same evidence cannot fire twice for one transmission. The
//! reordering allowance learned from spurious resends is only waited for while data is queued
//! behind the window: an application-limited sender (a chat) loses more by holding every later
//! message behind a hole than by resending a small packet needlessly. The retransmission timeout
//! is the last resort; `max_retries` consecutive timeouts without progress end the session.
//!
//! What is in flight is counted twice: in packets against the peer's receive window, and in
//! bytes against the congestion window, so a 100-byte chat line costs the congestion window 100
//! bytes (plus its header), not a full datagram.
//!
//! Acks of resent packets are ambiguous (Karn's rule): no RTT sample is taken from them. If such
//! an ack arrives sooner than the smallest RTT ever measured after the resend, it must have been
//! triggered by the original, so the resend is counted as spurious.
//!
//! Redundancy (`ReliableConfig::redundancy`: by default only while loss is measured, see
//! `redundancy.rs`) trades wire bytes for latency where a chat lives: a repair by resend costs a round trip or more, so an application-limited sender may
//! put copies of its newest unacknowledged packets, under their own sequence numbers, in the
//! datagram of each new packet ([`Sender::redundant_copies`]), and, when no new packet follows
//! within half a round trip, in datagrams of their own ([`Sender::tail_copies`]). Copies count
//! against the congestion window like any bytes in flight, but are not retransmissions: they do
//! not touch a packet's transmission count or loss-detection clock. They do make its ack
//! ambiguous, so Karn's rule is extended to them (see [`Sender::on_ack`]).
//!
//! Received is not delivered. The ack's cumulative part and ranges say what the peer received:
//! those packets are not resent, and they drive RTT samples and congestion control. Only the
//! ack's delivered point (and, from an unordered receiver, its ranges) says what the peer's
//! application has, and only that reports a message delivered; a message still undelivered when
//! the session ends is reported lost. Every packet carries an unpredictable token, and an ack
//! counts only if its echo is the sum of the tokens of what it acknowledges
//! ([`Sender::on_ack`]), so someone who knows the connection id but never saw the data cannot
//! forge one (`docs/protocol.md`, "What the echo proves").
//!
//! The ARQ scheme changes only this module: go-back-n ignores selective acks and, on a timeout,
//! resends everything from the first hole; stop-and-wait keeps a single packet in flight.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use udpchat_core::{Ack, SeqNum};

use super::config::{Arq, CongestionControl, ReliableConfig};
use super::congestion::{Acked, CongestionEvent, Controller};
use super::fragment::{split, Fragment};
use super::pacer::{window_rate, Pacer};
use super::pmtu::PathMtu;
use super::rate::{DeliveryRate, RateStamp};
use super::redundancy::RedundancyPolicy;
use super::rtt::RttEstimator;
use crate::endpoint::{MessageId, SendError};

/// Longest ack delay we believe from a peer; anything above is a lie or a bug, and would let the
/// peer shrink our RTT samples to nothing.
const MAX_TRUSTED_ACK_DELAY: Duration = Duration::from_secs(1);

/// How many packets back from the newest the search for packets to copy looks.
const MAX_COPY_SCAN: usize = 64;

/// The reordering allowance grows to at most this many quarters of the minimum RTT.
const MAX_REORDER_STEPS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    InFlight,
    Lost,
    Acked,
}

/// How a packet's redundant copies travelled, for Karn's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copies {
    None,
    WithNewer,
    Alone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LossCause {
    Timeout,
    Fast,
}

#[derive(Debug, Clone)]
struct Slot {
    fragment: Fragment,
    /// The packet's unpredictable token (`Data::token`), kept by its resends and copies.
    token: u32,
    state: SlotState,
    cause: LossCause,
    last_sent: Instant,
    transmissions: u32,
    last_tx: u64,
    /// What it costs the congestion window: payload plus the largest header.
    size: u64,
    /// What it counts in `bytes_in_flight` now: `size` once sent, plus `size` for every
    /// redundant copy sent since; zero once acknowledged or declared lost.
    flight_bytes: u64,
    /// Redundant copies sent of it (see [`Sender::redundant_copies`]).
    copies: u32,
    /// One of them went without a newer packet (a tail copy).
    copied_alone: bool,
    /// When the last copy went out.
    last_copy: Option<Instant>,
    /// Under `--redundancy auto`, its latest resend has had no copy yet. Losing a resend costs
    /// a second loss detection, and a resend means loss may be happening now, so a resend gets
    /// one copy (with the next line, or as a tail copy) even while the redundancy policy, which
    /// learns only from proven losses, still says none. Cleared when the copy goes.
    resend_uncopied: bool,
    /// The delivery state when it was last sent, for its delivery-rate sample.
    stamp: Option<RateStamp>,
}

impl Slot {
    /// True if this is a resend due its copy (see [`Slot::resend_uncopied`]): not in the very
    /// instant it went out, when the copy would share its datagram.
    fn needs_resend_copy(&self, now: Instant) -> bool {
        self.resend_uncopied && self.state == SlotState::InFlight && self.last_sent < now
    }
}

#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Fragments the peer's delivered point has not yet passed.
    undelivered: u32,
    first_sent: Option<Instant>,
}

/// A packet sent but not yet passed by the peer's delivered point: what checking an ack's echo,
/// and reporting its message delivered, need of it once its slot is gone.
#[derive(Debug, Clone, Copy)]
struct Undelivered {
    token: u32,
    message: u64,
    /// Already counted delivered: a verified ack with `ranges_delivered` listed it (an
    /// unordered receiver has it, above a hole).
    counted: bool,
}

/// The largest packet one ack newly acknowledged: the candidate for its RTT sample.
#[derive(Debug, Clone, Copy)]
struct LargestAcked {
    seq: SeqNum,
    transmissions: u32,
    last_sent: Instant,
    /// How its redundant copies travelled (`Copies::None` also when a copy went out too
    /// recently to have triggered this ack).
    copies: Copies,
}

/// What walking one ack's cumulative part and ranges found.
#[derive(Debug, Default)]
struct AckScan {
    /// Bytes newly acknowledged (congestion cost).
    newly: u64,
    largest: Option<LargestAcked>,
}

/// One packet the sender wants on the wire now.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// Its sequence number.
    pub(crate) seq: SeqNum,
    /// What it carries.
    pub(crate) fragment: Fragment,
    /// Its token (`Data::token`).
    pub(crate) token: u32,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AckOutcome {
    /// Messages the peer's application now has (the ack's delivered point passed their last
    /// fragment), with the time from their first send to the ack, less the time the peer held
    /// the ack back.
    pub(crate) delivered: Vec<(MessageId, Option<Duration>)>,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadAck {
    /// It acknowledges sequence numbers never sent, or claims more delivered than received.
    Impossible,
    /// Its echo is not the sum of our tokens over what it acknowledges, or a range cannot be
    /// checked: whoever wrote it did not receive that data (a forgery by someone who knows only
    /// the connection id).
    WrongEcho,
}

/// What a retransmission timeout did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeoutOutcome {
    /// Nothing was due.
    NotDue,
    /// Packets were marked for resending.
    Retransmit,
    /// `max_retries` consecutive timeouts: the session is over.
    GiveUp,
}

/// The shortest wait between tail copies (RFC 9002's `kGranularity`).
const TAIL_GRANULARITY: Duration = Duration::from_millis(1);

/// Counters the sender keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SenderCounters {
    /// Resends after a timeout.
    pub(crate) retransmits_timeout: u64,
    /// Resends on SACK evidence.
    pub(crate) retransmits_fast: u64,
    /// Resends whose original turned out to have arrived.
    pub(crate) retransmits_spurious: u64,
    /// Redundant copies sent alongside new packets.
    pub(crate) redundant_copies: u64,
}

/// The sending half of one session.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    arq: Arq,
    reorder_threshold: u64,
    max_retries: u32,
    max_message: usize,
    window_cap: u64,
    /// Most fragments one message has (`ReliableConfig::max_fragments`).
    max_fragments: u64,
    /// A full-size datagram, in bytes: the congestion controller's unit.
    mss: u64,
    /// The most bytes a data packet's header takes (`udpchat_core::max_data_overhead`): a
    /// packet costs the congestion window its payload plus this.
    data_overhead: u64,
    congestion_kind: CongestionControl,
    /// Messages accepted but not yet cut into fragments: a message is cut when its first
    /// fragment is about to go, so it fills the datagram size discovered by then
    /// ([`Sender::cut_next`]).
    queued: VecDeque<(u64, Vec<u8>)>,
    /// Fragments of the message being sent, not yet given sequence numbers.
    unsent: VecDeque<Fragment>,
    /// How large a datagram the path carries (DPLPMTUD).
    pmtu: PathMtu,
    /// Sequence number of `slots[0]`: everything below it is cumulatively acknowledged.
    base: SeqNum,
    slots: VecDeque<Slot>,
    lost: BTreeSet<SeqNum>,
    in_flight: u64,
    /// The bytes of the packets counted in `in_flight`, for the congestion window.
    bytes_in_flight: u64,
    tx_counter: u64,
    largest_acked_tx: u64,
    messages: BTreeMap<u64, Progress>,
    /// The peer's verified delivered point: every packet below it reached its application.
    delivered_base: SeqNum,
    /// The wrapping sum of the tokens of the packets below `delivered_base`.
    delivered_sum: u32,
    /// The highest cumulative ack taken from a verified ack: one below it is older.
    acked_through: SeqNum,
    /// The packets from `delivered_base` on, in sequence order (as long as `base + slots`).
    undelivered: VecDeque<Undelivered>,
    /// Draws each packet's token: seeded by the endpoint (randomness is passed in).
    tokens: ChaCha8Rng,
    peer_window: u64,
    rto_deadline: Option<Instant>,
    /// When packets with SACK evidence against them become old enough to count as lost.
    loss_deadline: Option<Instant>,
    /// A timeout fired and its resend may bypass the windows.
    timeout_credit: bool,
    /// Extra reordering allowance, in quarters of the minimum RTT (RACK's `reo_wnd` steps).
    reorder_steps: u32,
    /// Fast retransmits since the last spurious one.
    fast_since_spurious: u32,
    consecutive_timeouts: u32,
    /// Copies per datagram (`ReliableConfig::redundancy`): fixed, or following measured loss.
    redundancy: RedundancyPolicy,
    /// When a tail copy goes out if no new packet has gone out by then.
    tail_deadline: Option<Instant>,
    /// The tail-copy timer fired: the next datagram may be a tail copy.
    tail_due: bool,
    /// Tail copies still allowed since the last new packet.
    tail_left: usize,
    /// Delivery-rate samples for the congestion controller.
    delivery_rate: DeliveryRate,
    /// Spreads packets out at the pacing rate.
    pacer: Pacer,
    /// When the pacer lets the next packet go, while one waits for it.
    pacing_deadline: Option<Instant>,
    /// RTT estimator for this path.
    pub(crate) rtt: RttEstimator,
    /// Congestion controller.
    pub(crate) congestion: Box<dyn Controller>,
    /// Counters.
    pub(crate) counters: SenderCounters,
}

impl Sender {
    /// A sender with nothing queued; `token_seed` seeds the packets' tokens (give each endpoint
    /// an unpredictable one: the tokens are what an off-path forger would have to guess).
    pub(crate) fn new(config: &ReliableConfig, token_seed: u64) -> Self {
        // The congestion controller's unit is the base datagram, whatever the path turns out to
        // carry: its windows then mean the same on every path.
        let mss = (config.base_datagram() as u64).max(1);
        let window_cap = u64::from(config.window);
        Sender {
            arq: config.arq,
            reorder_threshold: u64::from(config.reorder_threshold),
            max_retries: config.max_retries,
            max_message: config.max_message,
            window_cap,
            max_fragments: u64::from(config.max_fragments()),
            mss,
            data_overhead: udpchat_core::max_data_overhead() as u64,
            congestion_kind: config.congestion,
            queued: VecDeque::new(),
            unsent: VecDeque::new(),
            pmtu: PathMtu::new(config.max_datagram),
            base: SeqNum(0),
            slots: VecDeque::new(),
            lost: BTreeSet::new(),
            in_flight: 0,
            bytes_in_flight: 0,
            tx_counter: 0,
            largest_acked_tx: 0,
            messages: BTreeMap::new(),
            delivered_base: SeqNum(0),
            delivered_sum: 0,
            acked_through: SeqNum(0),
            undelivered: VecDeque::new(),
            tokens: ChaCha8Rng::seed_from_u64(token_seed),
            peer_window: window_cap,
            rto_deadline: None,
            loss_deadline: None,
            timeout_credit: false,
            reorder_steps: 0,
            fast_since_spurious: 0,
            consecutive_timeouts: 0,
            redundancy: RedundancyPolicy::new(config.redundancy),
            tail_deadline: None,
            tail_due: false,
            tail_left: 0,
            delivery_rate: DeliveryRate::new(),
            pacer: Pacer::new(mss),
            pacing_deadline: None,
            rtt: RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto)
                .with_ack_delay(config.max_ack_delay),
            congestion: config.congestion.build(mss, window_cap * mss),
            counters: SenderCounters::default(),
        }
    }

    /// Queues message `id`.
    pub(crate) fn push(&mut self, id: MessageId, bytes: &[u8]) -> Result<(), SendError> {
        if bytes.len() > self.max_message {
            return Err(SendError::TooLong {
                len: bytes.len(),
                max: self.max_message,
            });
        }
        // Its fragment count is set when it is cut (`cut_next`).
        self.messages.insert(
            id.0,
            Progress {
                undelivered: 0,
                first_sent: None,
            },
        );
        self.queued.push_back((id.0, bytes.to_vec()));
        Ok(())
    }

    /// Cuts the next queued message into fragments, once those of the previous one all have
    /// sequence numbers: each fragment fills the PLPMTU as it is now (less the widest data
    /// header), so a message sent after discovery travels in as few datagrams as the path allows.
    fn cut_next(&mut self) {
        if !self.unsent.is_empty() {
            return;
        }
        let Some((message, bytes)) = self.queued.pop_front() else {
            return;
        };
        let payload = self
            .pmtu
            .current()
            .saturating_sub(self.data_overhead as usize)
            .max(1);
        let fragments = split(message, &bytes, payload);
        if let Some(p) = self.messages.get_mut(&message) {
            p.undelivered = u32::try_from(fragments.len()).unwrap_or(u32::MAX);
        }
        self.unsent.extend(fragments);
    }

    /// Nothing waits to be sent for the first time (application-limited, in RFC 7661's terms).
    fn nothing_queued(&self) -> bool {
        self.unsent.is_empty() && self.queued.is_empty()
    }

    /// The path MTU discovery of this path.
    pub(crate) fn path_mtu(&self) -> &PathMtu {
        &self.pmtu
    }

    /// The path MTU discovery of this path, to feed it probes' fates.
    pub(crate) fn path_mtu_mut(&mut self) -> &mut PathMtu {
        &mut self.pmtu
    }

    /// The first sequence number not yet used.
    pub(crate) fn next_seq(&self) -> SeqNum {
        SeqNum(self.base.0 + self.slots.len() as u64)
    }

    /// True when every queued message has been delivered to the peer's application.
    pub(crate) fn all_delivered(&self) -> bool {
        self.messages.is_empty()
    }

    /// Packets currently counted in flight.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The receive window the peer last advertised.
    pub(crate) fn peer_window(&self) -> u64 {
        self.peer_window
    }

    /// Sets the peer's window (from its handshake packet).
    pub(crate) fn set_peer_window(&mut self, window: u32) {
        self.peer_window = u64::from(window);
    }

    /// Bytes counted against the congestion window right now.
    #[cfg(test)]
    pub(crate) fn bytes_in_flight(&self) -> u64 {
        self.bytes_in_flight
    }

    /// The congestion window in full-size datagrams (rounded down, at least one), for counters.
    pub(crate) fn window_packets(&self) -> u64 {
        (self.congestion.window() / self.mss).max(1)
    }

    /// Where the slot of `seq` sits in `slots`, if it is still there.
    fn index_of(&self, seq: SeqNum) -> Option<usize> {
        seq.0
            .checked_sub(self.base.0)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.slots.len())
    }

    fn seq_at(&self, index: usize) -> SeqNum {
        SeqNum(self.base.0 + index as u64)
    }

    /// Whether one more packet may go in flight: the congestion window counts bytes (a chat line
    /// costs its size, not a full datagram), the peer's window counts packets.
    fn window_open(&self) -> bool {
        match self.arq {
            Arq::StopAndWait => self.in_flight == 0,
            // A window of 0 would stall forever (we have no window probes): treat it as 1.
            _ => {
                self.in_flight < self.peer_window.max(1)
                    && self.bytes_in_flight < self.congestion.window()
            }
        }
    }

    fn may_send_new(&self) -> bool {
        if self.unsent.is_empty() {
            return false;
        }
        if self.arq == Arq::StopAndWait && !self.slots.is_empty() {
            return false;
        }
        // Flow control: never beyond what the peer said it can buffer past its cumulative ack.
        let window = self.peer_window.min(self.window_cap).max(1);
        // And never more undelivered than an honest receiver can hold: its window, plus the
        // fragments of the one message it may be assembling. A peer that acknowledges but never
        // delivers (broken, or hostile) cannot make `undelivered` grow without bound.
        let undelivered_cap = self.window_cap.saturating_add(self.max_fragments);
        self.next_seq().0 < self.base.0.saturating_add(window)
            && self.next_seq().0 < self.delivered_base.0.saturating_add(undelivered_cap)
    }

    /// The next packet to put on the wire, resends first, if the windows allow one.
    pub(crate) fn next_packet(&mut self, now: Instant) -> Option<Outgoing> {
        self.pacing_deadline = None;
        self.cut_next();
        let credit = self.timeout_credit && !self.lost.is_empty();
        if !self.window_open() && !credit {
            return None;
        }
        // The timeout's own resend is not paced: it is the one packet the timer was for.
        if !credit && self.wait_for_pacer(now) {
            return None;
        }
        let (outgoing, size) = if !self.lost.is_empty() {
            self.resend_lost(now)?
        } else if self.may_send_new() {
            self.send_new(now)?
        } else {
            if self.unsent.is_empty() {
                self.delivery_rate.on_app_limited(self.bytes_in_flight);
            }
            return None;
        };
        self.stamp_sent(now, outgoing.seq, size);
        self.congestion.on_sent(now, size);
        self.in_flight += 1;
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + self.rtt.rto());
        }
        Some(outgoing)
    }

    /// The pacing rate, bytes per second: the controller's own if it has one, else its window
    /// per smoothed RTT with the pacer's gains (`None` before any RTT sample: nothing paced).
    pub(crate) fn pacing_rate(&self) -> Option<u64> {
        if let Some(rate) = self.congestion.pacing_rate() {
            return Some(rate);
        }
        let window = self.congestion.window();
        let slow_start = self.congestion.ssthresh().is_some_and(|s| window < s);
        window_rate(window, self.rtt.srtt()?, slow_start)
    }

    /// The size of the packet `next_packet` would send: the lowest lost one, else the next
    /// queued fragment.
    fn next_size(&self) -> Option<u64> {
        if let Some(&seq) = self.lost.first() {
            return self
                .index_of(seq)
                .and_then(|i| self.slots.get(i))
                .map(|s| s.size);
        }
        self.unsent
            .front()
            .map(|f| f.payload.len() as u64 + self.data_overhead)
    }

    /// True if the pacer holds the next packet back; then the pacing deadline says until when.
    fn wait_for_pacer(&mut self, now: Instant) -> bool {
        let Some(size) = self.next_size() else {
            return false;
        };
        let rate = self.pacing_rate();
        self.pacing_deadline = self.pacer.delay(now, rate, size);
        self.pacing_deadline.is_some()
    }

    /// Packet `seq` of `size` bytes went on the wire: the pacer spends its tokens, and the
    /// packet is stamped for its delivery-rate sample.
    fn stamp_sent(&mut self, now: Instant, seq: SeqNum, size: u64) {
        self.pacer.on_sent(size);
        let before = self.bytes_in_flight.saturating_sub(size);
        let stamp = self.delivery_rate.on_send(now, before);
        if let Some(slot) = self.index_of(seq).and_then(|i| self.slots.get_mut(i)) {
            slot.stamp = Some(stamp);
        }
    }

    /// When the pacer lets the next packet go, if one is waiting for it.
    pub(crate) fn pacing_deadline(&self) -> Option<Instant> {
        self.pacing_deadline
    }

    /// Takes the lowest packet declared lost back in flight; with its congestion cost.
    fn resend_lost(&mut self, now: Instant) -> Option<(Outgoing, u64)> {
        let seq = self.lost.pop_first()?;
        self.timeout_credit = false;
        let protect = self.redundancy.protects_resends();
        let index = self.index_of(seq)?;
        let slot = self.slots.get_mut(index)?;
        match slot.cause {
            LossCause::Timeout => self.counters.retransmits_timeout += 1,
            LossCause::Fast => self.counters.retransmits_fast += 1,
        }
        self.tx_counter += 1;
        slot.state = SlotState::InFlight;
        slot.transmissions += 1;
        slot.last_sent = now;
        slot.resend_uncopied = protect;
        slot.last_tx = self.tx_counter;
        let size = slot.size;
        self.bytes_in_flight += size;
        slot.flight_bytes += size;
        let outgoing = Outgoing {
            seq,
            fragment: slot.fragment.clone(),
            token: slot.token,
        };
        if protect {
            // If no new packet follows to carry the resend's copy, a tail copy will.
            self.tail_deadline = Some(now + self.tail_delay());
            self.tail_due = false;
            self.tail_left = self.tail_left.max(1);
        }
        Some((outgoing, size))
    }

    /// Gives the next queued fragment its sequence number; with its congestion cost.
    fn send_new(&mut self, now: Instant) -> Option<(Outgoing, u64)> {
        let fragment = self.unsent.pop_front()?;
        let seq = self.next_seq();
        if let Some(p) = self.messages.get_mut(&fragment.message) {
            p.first_sent.get_or_insert(now);
        }
        self.tx_counter += 1;
        let size = fragment.payload.len() as u64 + self.data_overhead;
        self.bytes_in_flight += size;
        let token = self.tokens.next_u32();
        self.undelivered.push_back(Undelivered {
            token,
            message: fragment.message,
            counted: false,
        });
        self.slots.push_back(Slot {
            fragment: fragment.clone(),
            token,
            state: SlotState::InFlight,
            cause: LossCause::Timeout,
            last_sent: now,
            transmissions: 1,
            last_tx: self.tx_counter,
            size,
            flight_bytes: size,
            copies: 0,
            copied_alone: false,
            last_copy: None,
            resend_uncopied: false,
            stamp: None,
        });
        let copies = self.redundancy.copies(now);
        if copies > 0 {
            self.tail_deadline = Some(now + self.tail_delay());
            self.tail_due = false;
            self.tail_left = copies;
        }
        Some((
            Outgoing {
                seq,
                fragment,
                token,
            },
            size,
        ))
    }

    /// Copies of recent unacknowledged packets to ride in the same datagram as the new packet
    /// `new_seq`, newest first: at most `redundancy` of them, together costing at most `room`
    /// bytes (each counted at its worst-case encoded size, payload plus
    /// `udpchat_core::max_data_overhead`). Call [`Sender::copies_sent`] with the ones that went
    /// out.
    ///
    /// Only for an application-limited sender: `new_seq` must be the first transmission of the
    /// newest sequence number with nothing else queued, and the copies must keep what is in
    /// flight within half the congestion window (RFC 7661's test for application-limited). A
    /// sender with a backlog keeps its datagrams full; copies would only crowd out new data.
    /// Only packets sent within the last two round trips are copied: an older one is overdue,
    /// and loss detection is already repairing it.
    pub(crate) fn redundant_copies(
        &self,
        now: Instant,
        new_seq: SeqNum,
        room: usize,
    ) -> Vec<Outgoing> {
        let is_new = new_seq.next() == self.next_seq()
            && self.slots.back().is_some_and(|s| s.transmissions == 1);
        if !is_new {
            return Vec::new();
        }
        self.pick_copies(now, 1, room)
    }

    /// A tail copy, when its timer has fired: copies of the newest unacknowledged packets, sent
    /// in a datagram of their own. The last line before a pause has no next line to carry its
    /// copy, and no later packet to reveal its loss; without this its loss waits for the
    /// retransmission timeout. The timer fires half a smoothed RTT after the last new packet,
    /// then every half RTT while the newest packet is unacknowledged, at most `redundancy`
    /// times. Same limits as [`Sender::redundant_copies`].
    pub(crate) fn tail_copies(&mut self, now: Instant, room: usize) -> Vec<Outgoing> {
        if !std::mem::take(&mut self.tail_due) {
            return Vec::new();
        }
        self.pick_copies(now, 0, room)
    }

    /// Half a round trip: long enough that a steady conversation's next line usually comes
    /// first (and carries the copies), short next to a retransmission timeout. At least a
    /// millisecond (RFC 9002's timer granularity): a round trip measured as zero (a `Welcome` at
    /// the instant the `Hello` left, in virtual time) would otherwise re-arm the timer at `now`,
    /// and a driver would spin on it without time passing (found by the `reliable_endpoint`
    /// fuzz target).
    fn tail_delay(&self) -> Duration {
        (self.rtt.srtt().unwrap_or_else(|| self.rtt.rto()) / 2).max(TAIL_GRANULARITY)
    }

    /// The newest packets get `redundancy` copies each; under `--redundancy auto` a resent
    /// packet gets one ([`Slot::needs_resend_copy`]) even while the estimate says none.
    fn pick_copies(&self, now: Instant, skip: usize, room: usize) -> Vec<Outgoing> {
        let mut copies = Vec::new();
        let limit = self.redundancy.copies(now);
        if !self.nothing_queued() || (limit == 0 && !self.redundancy.protects_resends()) {
            return copies;
        }
        let recent = match (self.rtt.srtt(), self.rtt.latest()) {
            (Some(s), Some(l)) => s.max(l) * 2,
            _ => self.rtt.rto(),
        };
        let mut room = room as u64;
        let mut window = (self.congestion.window() / 2).saturating_sub(self.bytes_in_flight);
        // Newest first, and only so far back: an application-limited sender has few packets in
        // flight, and this bounds the work per datagram.
        for (offset, slot) in self.slots.iter().enumerate().rev().skip(skip) {
            if self.slots.len() - offset > MAX_COPY_SCAN {
                break;
            }
            if copies.len() >= limit && !slot.needs_resend_copy(now) {
                continue;
            }
            let fresh = now.saturating_duration_since(slot.last_sent) < recent;
            if !fresh || slot.state != SlotState::InFlight || slot.size > room || slot.size > window
            {
                continue;
            }
            room -= slot.size;
            window -= slot.size;
            copies.push(Outgoing {
                seq: self.seq_at(offset),
                fragment: slot.fragment.clone(),
                token: slot.token,
            });
        }
        copies
    }

    /// Records that copies of `seqs` went out; `alone` if they went without a newer packet (a
    /// tail copy). Each counts against the congestion window until its packet is acknowledged
    /// or declared lost, like any bytes on the wire; none is a retransmission (the packet keeps
    /// its transmission count and its loss-detection clock), and none earns window when
    /// acknowledged.
    pub(crate) fn copies_sent(&mut self, now: Instant, seqs: &[SeqNum], alone: bool) {
        for &seq in seqs {
            let Some(slot) = self.index_of(seq).and_then(|i| self.slots.get_mut(i)) else {
                continue;
            };
            if slot.state == SlotState::InFlight {
                slot.copies += 1;
                slot.copied_alone |= alone;
                slot.last_copy = Some(now);
                slot.resend_uncopied = false;
                slot.flight_bytes += slot.size;
                let size = slot.size;
                self.bytes_in_flight += size;
                self.counters.redundant_copies += 1;
                self.congestion.on_sent(now, size);
            }
        }
    }

    /// Processes an acknowledgement that arrived at `now`: checks its echo, marks what it
    /// covers, reports the messages its delivered point passed, takes an RTT sample if the ack
    /// allows one, feeds the congestion controller, re-arms the timers and looks for losses the
    /// new evidence reveals.
    ///
    /// Two kinds of progress, kept apart: the cumulative ack and the ranges say what the peer
    /// *received* (no need to resend it: they drive retransmission, RTT and congestion control);
    /// the delivered point says what its application *has* (only that makes a message
    /// `Delivered`). A packet waiting behind a hole at the receiver is received, not delivered.
    pub(crate) fn on_ack(&mut self, now: Instant, ack: &Ack) -> Result<AckOutcome, BadAck> {
        let next = self.next_seq();
        if ack.cumulative > next || ack.delivered > ack.cumulative {
            return Err(BadAck::Impossible);
        }
        let Some(sum) = self.verify_echo(ack)? else {
            // Older than an ack already taken (acks overtook each other): its echo can no longer
            // be checked, and it says nothing new.
            return Ok(AckOutcome::default());
        };
        self.acked_through = ack.cumulative;
        self.peer_window = u64::from(ack.window);
        let flight_before = self.bytes_in_flight;
        let scan = self.mark_acknowledged(now, ack);
        let delay = Duration::from_micros(ack.delay_us).min(MAX_TRUSTED_ACK_DELAY);
        let outcome = self.advance_delivered(now, ack, sum, delay);
        if scan.newly > 0 {
            self.on_progress(now, ack, &scan, flight_before, delay);
        }
        Ok(outcome)
    }

    /// Checks `ack.echo` against the tokens we sent: the sum over every packet the ack
    /// acknowledges (below its cumulative ack, and in its ranges). Returns the sum below its
    /// delivered point, or `None` for an ack older than one already taken (its cumulative ack
    /// is behind: a genuine receiver's state only grows, so it says nothing new).
    fn verify_echo(&self, ack: &Ack) -> Result<Option<u32>, BadAck> {
        if ack.cumulative < self.acked_through {
            return Ok(None);
        }
        // `on_ack` checked delivered <= cumulative <= next_seq, and `undelivered` runs from
        // `delivered_base` (<= acked_through) to next_seq: both prefixes lie within it.
        let offset = |seq: SeqNum| usize::try_from(seq.0.saturating_sub(self.delivered_base.0));
        let to_delivered = offset(ack.delivered).map_err(|_| BadAck::Impossible)?;
        let to_cumulative = offset(ack.cumulative).map_err(|_| BadAck::Impossible)?;
        if to_cumulative > self.undelivered.len() {
            return Err(BadAck::Impossible);
        }
        let mut below_delivered = self.delivered_sum;
        let mut echo = self.delivered_sum;
        for (i, packet) in self.undelivered.iter().take(to_cumulative).enumerate() {
            echo = echo.wrapping_add(packet.token);
            if i < to_delivered {
                below_delivered = echo;
            }
        }
        for range in &ack.ranges {
            let packets = self
                .acked_span(ack.cumulative, range.first, range.last)
                .ok_or(BadAck::WrongEcho)?;
            echo = packets.fold(echo, |sum, u| sum.wrapping_add(u.token));
        }
        if echo != ack.echo {
            return Err(BadAck::WrongEcho);
        }
        Ok(Some(below_delivered))
    }

    /// The packets `first..=last`, if that range lies between the cumulative ack `cumulative`
    /// and the first sequence number not yet sent (an honest receiver's ranges do).
    fn acked_span(
        &self,
        cumulative: SeqNum,
        first: SeqNum,
        last: SeqNum,
    ) -> Option<impl Iterator<Item = &Undelivered>> {
        if first < cumulative || first > last || last >= self.next_seq() {
            return None;
        }
        let start = usize::try_from(first.0.checked_sub(self.delivered_base.0)?).ok()?;
        let count = usize::try_from(last.0 - first.0).ok()?.checked_add(1)?;
        Some(self.undelivered.iter().skip(start).take(count))
    }

    /// Moves the verified delivered point to `delivered` (whose token sum is `sum`), and reports
    /// every message whose last fragment it passed; with `ranges_delivered`, also every message
    /// whose fragments the ranges complete.
    fn advance_delivered(
        &mut self,
        now: Instant,
        ack: &Ack,
        sum: u32,
        delay: Duration,
    ) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        while self.delivered_base < ack.delivered {
            let Some(packet) = self.undelivered.pop_front() else {
                break;
            };
            self.delivered_base = self.delivered_base.next();
            if !packet.counted {
                self.count_delivered(now, packet.message, delay, &mut outcome);
            }
        }
        self.delivered_sum = sum;
        if ack.ranges_delivered {
            for range in &ack.ranges {
                // Verified by `verify_echo`: within the undelivered packets.
                let start = range.first.0.saturating_sub(self.delivered_base.0);
                for offset in start..=range.last.0.saturating_sub(self.delivered_base.0) {
                    let Some(packet) = usize::try_from(offset)
                        .ok()
                        .and_then(|i| self.undelivered.get_mut(i))
                    else {
                        break;
                    };
                    if !std::mem::replace(&mut packet.counted, true) {
                        let message = packet.message;
                        self.count_delivered(now, message, delay, &mut outcome);
                    }
                }
            }
        }
        outcome
    }

    /// One more fragment of `message` is known delivered; reports the message once all are.
    fn count_delivered(
        &mut self,
        now: Instant,
        message: u64,
        delay: Duration,
        outcome: &mut AckOutcome,
    ) {
        let Some(p) = self.messages.get_mut(&message) else {
            return;
        };
        p.undelivered = p.undelivered.saturating_sub(1);
        if p.undelivered == 0 {
            // A message's delivery time is what the network and the resends took: the time the
            // peer sat on its ack (a delayed ack, up to 25 ms) is not the path's.
            let rtt = p
                .first_sent
                .map(|t| now.saturating_duration_since(t).saturating_sub(delay));
            self.messages.remove(&message);
            outcome.delivered.push((MessageId(message), rtt));
        }
    }

    /// The ack acknowledged new data: an RTT sample if it allows one, the congestion
    /// controller, the timers, and loss detection on the new evidence.
    fn on_progress(
        &mut self,
        now: Instant,
        ack: &Ack,
        scan: &AckScan,
        flight_before: u64,
        delay: Duration,
    ) {
        let sample = self.rtt_sample(now, ack, scan.largest, delay);
        self.consecutive_timeouts = 0;
        self.rtt.reset_backoff();
        // Application-limited (RFC 7661): nothing waited for the window and less than half of it
        // was in use, so these acks say nothing about whether a larger window would be safe. A
        // chat that grew its window on every ack would hold the right to send a window's worth
        // of data at once after a quiet hour.
        let app_limited = self.nothing_queued() && flight_before < self.congestion.window() / 2;
        let acked = Acked {
            bytes: scan.newly,
            cumulative: self.base,
            app_limited,
            rtt: sample,
            min_rtt: self.rtt.min_rtt(),
            smoothed_rtt: self.rtt.srtt(),
            bytes_in_flight: self.bytes_in_flight,
            delivery: self
                .delivery_rate
                .take_sample(now, self.rtt.min_rtt(), self.bytes_in_flight),
        };
        self.congestion.on_ack(now, &acked);
        self.rto_deadline =
            (self.in_flight > 0 || !self.lost.is_empty()).then(|| now + self.rtt.rto());
        if self.in_flight == 0 {
            self.tail_deadline = None;
        }
        if self.arq == Arq::SelectiveRepeat {
            self.detect_lost_by_evidence(now);
        }
    }

    /// Marks every packet `ack` covers as acknowledged (its cumulative part, then its ranges,
    /// which go-back-n ignores), and slides the window past the acknowledged prefix.
    fn mark_acknowledged(&mut self, now: Instant, ack: &Ack) -> AckScan {
        let next = self.next_seq();
        let mut scan = AckScan::default();
        for seq in self.base.0..ack.cumulative.0 {
            self.mark_acked(now, SeqNum(seq), &mut scan);
        }
        // Go-back-n is the cumulative-ack-only scheme: it ignores the selective ranges.
        if self.arq != Arq::GoBackN {
            for range in &ack.ranges {
                if range.first > range.last || range.last >= next {
                    continue;
                }
                for seq in range.first.max(self.base).0..=range.last.0 {
                    self.mark_acked(now, SeqNum(seq), &mut scan);
                }
            }
        }
        while self
            .slots
            .front()
            .is_some_and(|s| s.state == SlotState::Acked)
        {
            self.slots.pop_front();
            self.base = self.base.next();
        }
        scan
    }

    /// Feeds the RTT estimator from the largest newly acknowledged packet, if its ack is
    /// unambiguous: never resent (Karn's rule), and either never copied, or its copies cannot
    /// have triggered this ack. Returns the sample taken.
    ///
    /// Karn's rule, with redundant copies: a copy that travels with a newer packet cannot have
    /// triggered an ack that covers no sequence number above its own; any other ack of a copied
    /// packet (a tail copy travels alone) is ambiguous — original or copy? — and gives no
    /// sample, unless it came too soon after the copy to be the copy's (`mark_acked` files that
    /// case as `Copies::None`).
    fn rtt_sample(
        &mut self,
        now: Instant,
        ack: &Ack,
        largest: Option<LargestAcked>,
        delay: Duration,
    ) -> Option<Duration> {
        let largest = largest.filter(|l| l.transmissions == 1)?;
        let clean = match largest.copies {
            Copies::None => true,
            Copies::WithNewer => Some(largest.seq) == highest_in(ack, self.next_seq()),
            Copies::Alone => false,
        };
        if !clean {
            return None;
        }
        let rtt = now.saturating_duration_since(largest.last_sent);
        self.rtt.on_sample(rtt, delay);
        Some(rtt)
    }

    fn mark_acked(&mut self, now: Instant, seq: SeqNum, scan: &mut AckScan) {
        let Some(index) = self.index_of(seq) else {
            return;
        };
        let min_rtt = self.rtt.min_rtt();
        let slot = &mut self.slots[index];
        match slot.state {
            SlotState::Acked => return,
            SlotState::InFlight => {
                self.in_flight -= 1;
                self.bytes_in_flight = self.bytes_in_flight.saturating_sub(slot.flight_bytes);
                slot.flight_bytes = 0;
            }
            SlotState::Lost => {
                self.lost.remove(&seq);
            }
        }
        slot.state = SlotState::Acked;
        scan.newly += slot.size;
        if let Some(stamp) = slot.stamp {
            self.delivery_rate
                .on_acked(now, stamp, slot.last_sent, slot.size);
        }
        self.pmtu.on_data_acked(slot.size as usize);
        if scan.largest.is_none_or(|l| seq > l.seq) {
            // An ack that arrives sooner than the minimum RTT after the last copy went out was
            // not triggered by a copy (the rule that finds spurious resends, below).
            let copy_too_recent = slot
                .last_copy
                .zip(min_rtt)
                .is_some_and(|(t, min)| now.saturating_duration_since(t) < min);
            let copies = match (slot.copies, slot.copied_alone) {
                (0, _) => Copies::None,
                _ if copy_too_recent => Copies::None,
                (_, false) => Copies::WithNewer,
                (_, true) => Copies::Alone,
            };
            scan.largest = Some(LargestAcked {
                seq,
                transmissions: slot.transmissions,
                last_sent: slot.last_sent,
                copies,
            });
        }
        let mut spurious = false;
        if slot.transmissions == 1 {
            self.largest_acked_tx = self.largest_acked_tx.max(slot.last_tx);
        } else {
            let since_resend = now.saturating_duration_since(slot.last_sent);
            match min_rtt {
                Some(min) if since_resend < min => spurious = true,
                // Plausibly the resend's own ack: it is evidence about the resend.
                _ => self.largest_acked_tx = self.largest_acked_tx.max(slot.last_tx),
            }
        }
        let transmissions = slot.transmissions;
        if spurious {
            self.on_spurious();
        }
        self.redundancy.on_acked(now, transmissions, spurious);
    }

    /// How long after its transmission a packet with SACK evidence against it counts as lost:
    /// 9/8 of the RTT (as QUIC and RACK), so that reordering by jitter shorter than an eighth of
    /// the RTT is not mistaken for loss, plus the reordering allowance learned from spurious
    /// resends — but only while the sender has data waiting for the window. Zero before the first
    /// RTT sample.
    ///
    /// Why the allowance depends on the backlog: it trades resends for waiting, and what each
    /// costs depends on whether the sender is application-limited (RFC 7661's term). With data
    /// queued behind the window, a needless resend takes the place of new data and (until undone)
    /// halves the window, so waiting is cheaper. With nothing queued (a chat), a needless resend
    /// costs only its own bytes, while waiting holds every later message behind the hole
    /// (ordered delivery) for the whole allowance: on a link that reorders by jitter the allowance
    /// climbs to its cap and put a quarter of the minimum RTT or more on most recoveries. This is
    /// Linux's thin-stream argument (fast retransmit on the first duplicate ack for streams with
    /// little in flight), stated in terms of the backlog.
    fn loss_delay(&self) -> Duration {
        let steps = if self.nothing_queued() {
            0
        } else {
            self.reorder_steps
        };
        let extra = self.rtt.min_rtt().map_or(Duration::ZERO, |m| m / 4 * steps);
        match (self.rtt.srtt(), self.rtt.latest()) {
            (Some(s), Some(l)) => (s.max(l) * 9 / 8).max(Duration::from_millis(1)) + extra,
            _ => Duration::ZERO,
        }
    }

    /// A resend turned out needless: the path reorders more than we allowed for. As RACK does
    /// (RFC 8985 7.2), widen the reordering window by a quarter of the minimum RTT (up to a whole
    /// one), and undo the congestion response to the loss that was not one (as Eifel, RFC 4015).
    fn on_spurious(&mut self) {
        self.counters.retransmits_spurious += 1;
        self.reorder_steps = (self.reorder_steps + 1).min(MAX_REORDER_STEPS);
        self.fast_since_spurious = 0;
        self.congestion.on_spurious_loss();
    }

    /// Takes the in-flight packet at `index` out of flight, to be resent: the one place a packet
    /// is declared lost, whatever found the loss.
    fn declare_lost(&mut self, index: usize, cause: LossCause) {
        let seq = self.seq_at(index);
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        // Black-hole detection (DPLPMTUD) watches the losses of packets above the base size.
        self.pmtu.on_data_lost(slot.size as usize);
        slot.state = SlotState::Lost;
        slot.cause = cause;
        self.in_flight -= 1;
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(slot.flight_bytes);
        slot.flight_bytes = 0;
        self.lost.insert(seq);
    }

    fn detect_lost_by_evidence(&mut self, now: Instant) -> bool {
        let delay = self.loss_delay();
        let mut found = false;
        let mut lost_bytes = 0;
        self.loss_deadline = None;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.state != SlotState::InFlight
                || slot.last_tx.saturating_add(self.reorder_threshold) > self.largest_acked_tx
            {
                continue;
            }
            let due = slot.last_sent + delay;
            if due <= now {
                lost_bytes += slot.size;
                // Sixteen fast retransmits with no spurious one: narrow the window again.
                self.fast_since_spurious += 1;
                if self.fast_since_spurious >= 16 {
                    self.fast_since_spurious = 0;
                    self.reorder_steps = self.reorder_steps.saturating_sub(1);
                }
                self.declare_lost(index, LossCause::Fast);
                found = true;
            } else if self.loss_deadline.is_none_or(|d| due < d) {
                // Evidence, but too soon to tell loss from reordering: look again then.
                self.loss_deadline = Some(due);
            }
        }
        if found {
            let next = self.next_seq();
            self.congestion.on_packets_lost(now, lost_bytes);
            self.congestion
                .on_congestion_event(now, CongestionEvent::Loss, next);
        }
        found
    }

    /// When the sender's next timer fires, if armed. Only tests ask: the endpoint's timer table
    /// takes the three deadlines apart ([`Sender::deadlines`]).
    #[cfg(test)]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines().into_iter().flatten().min()
    }

    /// The retransmission, loss-detection and tail-copy deadlines, in that order, each if armed:
    /// the endpoint's timer table keeps them apart, so traces can name the one that fires.
    pub(crate) fn deadlines(&self) -> [Option<Instant>; 3] {
        [self.rto_deadline, self.loss_deadline, self.tail_deadline]
    }

    /// Lets the sender's timers fire if they are due: the tail copy, loss detection, and the
    /// retransmission timeout.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> TimeoutOutcome {
        // The pacer's wait is over: the next `next_packet` sends (or sets a new deadline).
        if self.pacing_deadline.is_some_and(|d| d <= now) {
            self.pacing_deadline = None;
        }
        if self.tail_deadline.is_some_and(|d| d <= now) {
            self.on_tail_timer(now);
        }
        if self.loss_deadline.is_some_and(|d| d <= now) && self.detect_lost_by_evidence(now) {
            return TimeoutOutcome::Retransmit;
        }
        match self.rto_deadline {
            Some(deadline) if deadline <= now => {}
            _ => return TimeoutOutcome::NotDue,
        }
        self.rto_deadline = None;
        self.consecutive_timeouts += 1;
        if self.consecutive_timeouts > self.max_retries {
            return TimeoutOutcome::GiveUp;
        }
        let rto = self.rtt.rto();
        self.rtt.on_timeout();
        let next = self.next_seq();
        self.congestion
            .on_congestion_event(now, CongestionEvent::Timeout, next);
        self.declare_timed_out(now, rto);
        // The first resend after a timeout goes out whatever the window says (as TCP's does):
        // newer packets still counted in flight must not block the one the timer was for.
        self.timeout_credit = true;
        self.loss_deadline = None;
        // Armed again now, not only when the resend goes out, so a stall can never disarm it.
        if !self.slots.is_empty() {
            self.rto_deadline = Some(now + self.rtt.rto());
        }
        TimeoutOutcome::Retransmit
    }

    /// The tail-copy timer fired. Only worth a datagram if the newest packet is still out, or a
    /// resend still waits for its copy. The newest packet gets as many copies as the others:
    /// alone, half a round trip apart, until acknowledged.
    fn on_tail_timer(&mut self, now: Instant) {
        self.tail_deadline = None;
        self.tail_due = self.tail_left > 0
            && (self
                .slots
                .back()
                .is_some_and(|s| s.state == SlotState::InFlight)
                || self.slots.iter().any(|s| s.needs_resend_copy(now)));
        if self.tail_due {
            self.tail_left -= 1;
            if self.tail_left > 0 {
                self.tail_deadline = Some(now + self.tail_delay());
            }
        }
    }

    /// A retransmission timeout (of `rto`) fired: declares lost what it covers. Go-back-n resends
    /// everything from the hole on. The others resend what has been out a whole timeout (at
    /// least the oldest packet); newer packets keep their chance to be acknowledged, which
    /// matters when the congestion window does not throttle the resends.
    fn declare_timed_out(&mut self, now: Instant, rto: Duration) {
        let go_back = self.arq == Arq::GoBackN;
        let mut oldest: Option<(usize, Instant)> = None;
        let mut marked = false;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.state != SlotState::InFlight {
                continue;
            }
            if go_back || slot.last_sent + rto <= now {
                self.declare_lost(index, LossCause::Timeout);
                marked = true;
            } else if oldest.is_none_or(|(_, t)| slot.last_sent < t) {
                oldest = Some((index, slot.last_sent));
            }
        }
        if let (false, Some((index, _))) = (marked, oldest) {
            self.declare_lost(index, LossCause::Timeout);
        }
    }

    /// Ends the session: every message not yet delivered, in order (those the peer received but
    /// had not delivered included: a closing receiver discards what waits behind a hole), and
    /// nothing left queued.
    pub(crate) fn take_unacknowledged(&mut self) -> Vec<MessageId> {
        let ids = self.messages.keys().map(|&m| MessageId(m)).collect();
        self.messages.clear();
        self.queued.clear();
        self.unsent.clear();
        self.reset_sequence_space();
        ids
    }

    /// A new session replaces the old one: messages that had started to be sent are reported
    /// (they may or may not have reached the old peer); messages never sent move to the new
    /// session untouched.
    pub(crate) fn restart_session(&mut self) -> Vec<MessageId> {
        let started: Vec<u64> = self
            .messages
            .iter()
            .filter(|(_, p)| p.first_sent.is_some())
            .map(|(&m, _)| m)
            .collect();
        for m in &started {
            self.messages.remove(m);
        }
        self.unsent.retain(|f| !started.contains(&f.message));
        self.queued.retain(|(m, _)| !started.contains(m));
        self.reset_sequence_space();
        started.into_iter().map(MessageId).collect()
    }

    fn reset_sequence_space(&mut self) {
        // The next session may be with another peer, over another path.
        self.pmtu.reset();
        self.base = SeqNum(0);
        self.slots.clear();
        self.delivered_base = SeqNum(0);
        self.delivered_sum = 0;
        self.acked_through = SeqNum(0);
        self.undelivered.clear();
        self.lost.clear();
        self.in_flight = 0;
        self.bytes_in_flight = 0;
        self.tx_counter = 0;
        self.largest_acked_tx = 0;
        self.rto_deadline = None;
        self.loss_deadline = None;
        self.timeout_credit = false;
        self.consecutive_timeouts = 0;
        self.tail_deadline = None;
        self.tail_due = false;
        self.tail_left = 0;
        self.delivery_rate = DeliveryRate::new();
        self.pacer = Pacer::new(self.mss);
        self.pacing_deadline = None;
        self.congestion = self
            .congestion_kind
            .build(self.mss, self.window_cap * self.mss);
    }
}

/// The highest sequence number `ack` acknowledges, counting only ranges the sender will trust
/// (below `next`, not inverted).
fn highest_in(ack: &Ack, next: SeqNum) -> Option<SeqNum> {
    let ranges = ack
        .ranges
        .iter()
        .filter(|r| r.first <= r.last && r.last < next)
        .map(|r| r.last);
    ack.cumulative
        .0
        .checked_sub(1)
        .map(SeqNum)
        .into_iter()
        .chain(ranges)
        .max()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::config::Redundancy;
    use super::*;
    use udpchat_core::AckRange;

    fn config(arq: Arq) -> ReliableConfig {
        ReliableConfig {
            arq,
            ..ReliableConfig::default()
        }
    }

    fn sender(config: &ReliableConfig) -> Sender {
        Sender::new(config, 7)
    }

    #[test]
    fn the_tail_copy_timer_moves_past_now_even_with_a_zero_round_trip() {
        let mut s = sender(&ReliableConfig {
            redundancy: Redundancy::Fixed(2),
            ..ReliableConfig::default()
        });
        s.rtt.on_sample(Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        s.push(MessageId(0), b"hi").unwrap();
        assert!(s.next_packet(now).is_some());
        let [_, _, tail] = s.deadlines();
        assert_eq!(tail, Some(now + TAIL_GRANULARITY));
        s.on_timeout(now + TAIL_GRANULARITY);
        let [_, _, tail] = s.deadlines();
        assert!(
            tail.is_some_and(|t| t > now + TAIL_GRANULARITY),
            "the timer fired and stayed due: {tail:?}"
        );
    }

    /// The ack an honest receiver would send after receiving everything below `cumulative`
    /// and in `ranges` (and delivering everything below `cumulative`): its echo is the sum of our
    /// tokens over all of it.
    fn ack(s: &Sender, cumulative: u64, ranges: &[(u64, u64)]) -> Ack {
        let token = |seq: u64| {
            let i = seq.checked_sub(s.delivered_base.0)? as usize;
            s.undelivered.get(i).map(|u| u.token)
        };
        let listed = ranges.iter().flat_map(|&(f, l)| f..=l);
        let echo = (s.delivered_base.0..cumulative)
            .chain(listed)
            .filter_map(token)
            .fold(s.delivered_sum, u32::wrapping_add);
        Ack {
            cumulative: SeqNum(cumulative),
            ranges: ranges
                .iter()
                .map(|&(f, l)| AckRange {
                    first: SeqNum(f),
                    last: SeqNum(l),
                })
                .collect(),
            delay_us: 0,
            window: 256,
            delivered: SeqNum(cumulative),
            echo,
            ranges_delivered: false,
        }
    }

    fn send_all(s: &mut Sender, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| s.next_packet(now))
            .map(|o| o.seq.0)
            .collect()
    }

    #[test]
    fn a_cumulative_ack_delivers_and_samples_rtt() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::SelectiveRepeat));
        s.push(MessageId(0), b"hi").unwrap();
        assert_eq!(send_all(&mut s, t0), vec![0]);
        let out = s
            .on_ack(t0 + Duration::from_millis(80), &ack(&s, 1, &[]))
            .unwrap();
        assert_eq!(
            out.delivered,
            vec![(MessageId(0), Some(Duration::from_millis(80)))]
        );
        assert_eq!(s.rtt.srtt(), Some(Duration::from_millis(80)));
        assert!(s.all_delivered());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn the_peers_ack_delay_is_not_counted_in_the_delivery_time() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::SelectiveRepeat));
        s.push(MessageId(0), b"hi").unwrap();
        send_all(&mut s, t0);
        let mut a = ack(&s, 1, &[]);
        a.delay_us = 20_000;
        let out = s.on_ack(t0 + Duration::from_millis(80), &a).unwrap();
        assert_eq!(
            out.delivered,
            vec![(MessageId(0), Some(Duration::from_millis(60)))]
        );
        // The estimator is more careful: a first sample is its own minimum RTT, and taking the
        // delay out would go below it, so it keeps the raw 80 ms.
        assert_eq!(s.rtt.latest(), Some(Duration::from_millis(80)));
    }

    #[test]
    fn sack_evidence_triggers_fast_retransmit_of_the_hole_only() {
        let t0 = Instant::now();
        let mut s = sender(&ReliableConfig {
            reorder_threshold: 3,
            ..config(Arq::SelectiveRepeat)
        });
        for i in 0..6 {
            s.push(MessageId(i), b"x").unwrap();
        }
        assert_eq!(send_all(&mut s, t0).len(), 6);
        let t1 = t0 + Duration::from_millis(50);
        // 1 lost; 2..=3 acked: only two later transmissions, below the threshold of 3.
        s.on_ack(t1, &ack(&s, 1, &[(2, 3)])).unwrap();
        assert_eq!(send_all(&mut s, t1), Vec::<u64>::new());
        s.on_ack(t1, &ack(&s, 1, &[(2, 4)])).unwrap();
        // Evidence, but sent only one RTT ago: reordering is still possible for RTT/8.
        assert_eq!(send_all(&mut s, t1), Vec::<u64>::new());
        let due = s.poll_timeout().unwrap();
        assert_eq!(due, t0 + Duration::from_millis(50) * 9 / 8);
        assert_eq!(s.on_timeout(due), TimeoutOutcome::Retransmit);
        let t1 = due;
        assert_eq!(send_all(&mut s, t1), vec![1]);
        assert_eq!(s.counters.retransmits_fast, 1);
        // The same evidence does not fire again for the resend.
        s.on_ack(t1, &ack(&s, 1, &[(2, 5)])).unwrap();
        assert_eq!(send_all(&mut s, t1), Vec::<u64>::new());
    }

    #[test]
    fn go_back_n_ignores_sack_and_resends_from_the_hole_on_timeout() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::GoBackN));
        for i in 0..5 {
            s.push(MessageId(i), b"x").unwrap();
        }
        send_all(&mut s, t0);
        let t1 = t0 + Duration::from_millis(50);
        let out = s.on_ack(t1, &ack(&s, 1, &[(2, 4)])).unwrap();
        assert_eq!(out.delivered.len(), 1, "ranges are ignored");
        assert_eq!(send_all(&mut s, t1), Vec::<u64>::new());
        let deadline = s.poll_timeout().unwrap();
        assert_eq!(s.on_timeout(deadline), TimeoutOutcome::Retransmit);
        // After a timeout the congestion window is one packet; let each resend be acked.
        // Everything from the hole goes again, though 2..=4 were selectively acked.
        let mut resent: Vec<u64> = Vec::new();
        let mut now = deadline;
        while resent.len() < 4 {
            let seqs = send_all(&mut s, now);
            assert!(!seqs.is_empty(), "resends stalled after {resent:?}");
            resent.extend(&seqs);
            now += Duration::from_millis(60);
            let top = seqs.iter().max().unwrap() + 1;
            s.on_ack(now, &ack(&s, top, &[])).unwrap();
        }
        assert_eq!(resent, vec![1, 2, 3, 4]);
        assert_eq!(s.counters.retransmits_timeout, 4);
    }

    #[test]
    fn stop_and_wait_keeps_one_packet_in_flight() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::StopAndWait));
        for i in 0..3 {
            s.push(MessageId(i), b"x").unwrap();
        }
        assert_eq!(send_all(&mut s, t0), vec![0]);
        s.on_ack(t0, &ack(&s, 1, &[])).unwrap();
        assert_eq!(send_all(&mut s, t0), vec![1]);
    }

    #[test]
    fn the_peer_window_bounds_new_sequence_numbers() {
        let t0 = Instant::now();
        let mut s = sender(&ReliableConfig {
            congestion: CongestionControl::None,
            ..ReliableConfig::default()
        });
        s.set_peer_window(4);
        for i in 0..10 {
            s.push(MessageId(i), b"x").unwrap();
        }
        assert_eq!(send_all(&mut s, t0), vec![0, 1, 2, 3]);
        // Acking 2 and 3 selectively does not move the window's left edge.
        let mut a = ack(&s, 0, &[(2, 3)]);
        a.window = 4;
        s.on_ack(t0, &a).unwrap();
        // 0 is resent on that evidence, but no new sequence number may be used.
        assert!(send_all(&mut s, t0).iter().all(|&seq| seq < 4));
        let mut a = ack(&s, 4, &[]);
        a.window = 4;
        s.on_ack(t0, &a).unwrap();
        assert_eq!(send_all(&mut s, t0), vec![4, 5, 6, 7]);
    }

    #[test]
    fn consecutive_timeouts_give_up_after_max_retries() {
        let t0 = Instant::now();
        let mut s = sender(&ReliableConfig {
            max_retries: 2,
            ..ReliableConfig::default()
        });
        s.push(MessageId(0), b"x").unwrap();
        let mut now = t0;
        send_all(&mut s, now);
        let mut outcomes = Vec::new();
        while let Some(deadline) = s.poll_timeout() {
            now = deadline;
            let o = s.on_timeout(now);
            // Each resend's tail copy has a timer of its own, which retransmits nothing.
            if o != TimeoutOutcome::NotDue {
                outcomes.push(o);
            }
            if o == TimeoutOutcome::GiveUp {
                break;
            }
            send_all(&mut s, now);
        }
        assert_eq!(
            outcomes,
            vec![
                TimeoutOutcome::Retransmit,
                TimeoutOutcome::Retransmit,
                TimeoutOutcome::GiveUp
            ]
        );
        assert_eq!(s.take_unacknowledged(), vec![MessageId(0)]);
    }

    #[test]
    fn an_ack_beyond_what_was_sent_is_refused() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::SelectiveRepeat));
        s.push(MessageId(0), b"x").unwrap();
        send_all(&mut s, t0);
        assert_eq!(s.on_ack(t0, &ack(&s, 5, &[])), Err(BadAck::Impossible));
        // A range beyond what was sent cannot be checked against our tokens: refused too.
        assert_eq!(s.on_ack(t0, &ack(&s, 0, &[(0, 9)])), Err(BadAck::WrongEcho));
    }

    /// A sender that learned (from one spurious resend) that the path reorders, then sent
    /// packets 2 and 3 at `t1` and got an ack for 3 only, 100 ms later. With `backlog`, more
    /// messages wait behind a receive window of four packets.
    fn evidence_after_a_spurious_resend(backlog: bool) -> (Sender, Instant) {
        let t0 = Instant::now();
        let mut s = sender(&ReliableConfig {
            congestion: CongestionControl::None,
            ..ReliableConfig::default()
        });
        s.set_peer_window(4);
        s.push(MessageId(0), b"x").unwrap();
        s.push(MessageId(1), b"y").unwrap();
        send_all(&mut s, t0);
        let mut a = ack(&s, 1, &[]);
        a.window = 4;
        s.on_ack(t0 + Duration::from_millis(100), &a).unwrap();
        let deadline = s.poll_timeout().unwrap();
        s.on_timeout(deadline);
        assert_eq!(send_all(&mut s, deadline), vec![1]);
        let mut a = ack(&s, 2, &[]);
        a.window = 4;
        s.on_ack(deadline + Duration::from_millis(10), &a).unwrap();
        assert_eq!(s.counters.retransmits_spurious, 1);
        let t1 = deadline + Duration::from_millis(20);
        let count = if backlog { 10 } else { 4 };
        for i in 0..count {
            s.push(MessageId(2 + i), b"z").unwrap();
        }
        assert_eq!(send_all(&mut s, t1), vec![2, 3, 4, 5]);
        let mut a = ack(&s, 2, &[(3, 3)]);
        a.window = 4;
        assert_eq!(s.nothing_queued(), !backlog);
        s.on_ack(t1 + Duration::from_millis(100), &a).unwrap();
        (s, t1)
    }

    #[test]
    fn an_application_limited_sender_does_not_wait_the_learned_reordering_allowance() {
        // 9/8 of the 100 ms RTT; the allowance learned from the spurious resend is a quarter of
        // the minimum RTT more, and applies only while data waits for the window.
        let (chat, t1) = evidence_after_a_spurious_resend(false);
        assert_eq!(
            chat.poll_timeout(),
            Some(t1 + Duration::from_micros(112_500))
        );
        let (bulk, t1) = evidence_after_a_spurious_resend(true);
        assert_eq!(
            bulk.poll_timeout(),
            Some(t1 + Duration::from_micros(137_500))
        );
    }

    #[test]
    fn the_congestion_window_counts_bytes_so_small_lines_fit_a_collapsed_window() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::SelectiveRepeat));
        for i in 0..40 {
            s.push(MessageId(i), b"a chat line").unwrap();
        }
        assert_eq!(
            send_all(&mut s, t0).len(),
            40,
            "forty lines are far below IW10"
        );
        let deadline = s.poll_timeout().unwrap();
        assert_eq!(s.on_timeout(deadline), TimeoutOutcome::Retransmit);
        // The loss window is one full-size datagram (1,200 bytes): in packets it would let one
        // resend out; in bytes it holds nineteen lines (11 + 54 bytes of worst-case header each;
        // a packet goes while the flight is below the window).
        let line = 11 + udpchat_core::max_data_overhead() as u64;
        let resent = send_all(&mut s, deadline);
        assert_eq!(resent.len() as u64, 1200u64.div_ceil(line), "{resent:?}");
        assert_eq!(resent.len(), 19);
        assert!(s.bytes_in_flight() <= 1200 + line);
    }

    #[test]
    fn a_chat_does_not_grow_its_congestion_window_but_a_backlog_does() {
        let t0 = Instant::now();
        // RFC 7661's rule, as the window-based controllers apply it.
        let config = |arq: Arq| ReliableConfig {
            arq,
            congestion: CongestionControl::NewReno,
            ..ReliableConfig::default()
        };
        let mut chat = sender(&config(Arq::SelectiveRepeat));
        let initial = chat.congestion.window();
        let mut now = t0;
        for i in 0..200u64 {
            chat.push(MessageId(i), b"a line").unwrap();
            assert_eq!(send_all(&mut chat, now), vec![i]);
            now += Duration::from_millis(20);
            chat.on_ack(now, &ack(&chat, i + 1, &[])).unwrap();
        }
        assert_eq!(
            chat.congestion.window(),
            initial,
            "one line at a time earns no window"
        );
        let mut bulk = sender(&config(Arq::SelectiveRepeat));
        for i in 0..200u64 {
            bulk.push(MessageId(i), &[b'x'; 1000]).unwrap();
        }
        let sent = send_all(&mut bulk, t0);
        bulk.on_ack(
            t0 + Duration::from_millis(20),
            &ack(&bulk, sent.len() as u64, &[]),
        )
        .unwrap();
        assert!(bulk.congestion.window() > initial);
    }

    #[test]
    fn the_pacer_spreads_a_burst_at_the_pacing_rate_in_virtual_time() {
        let t0 = Instant::now();
        // No congestion window (the receive window's 1,024 datagrams), so only the pacer can
        // hold packets back; one round trip of 100 ms measured, so it paces at 1.25 windows per
        // 100 ms (no slow start without a controller): 15.36 MB/s.
        let mut s = sender(&ReliableConfig {
            congestion: CongestionControl::None,
            ..ReliableConfig::default()
        });
        s.push(MessageId(0), b"x").unwrap();
        send_all(&mut s, t0);
        let t1 = t0 + Duration::from_millis(100);
        s.on_ack(t1, &ack(&s, 1, &[])).unwrap();
        let rate = s.pacing_rate().unwrap();
        assert!(
            rate.abs_diff(s.congestion.window() * 125 / 10) <= 1,
            "{rate}"
        );
        for i in 1..40 {
            s.push(MessageId(i), &[b'x'; 1100]).unwrap();
        }
        // The burst allowance goes at once (the window allows more than it).
        let mut now = t1;
        let mut times = Vec::new();
        while times.len() < 20 {
            if let Some(out) = s.next_packet(now) {
                times.push((now, out.seq));
                continue;
            }
            let deadline = s
                .pacing_deadline()
                .expect("held back by the pacer, not the window");
            assert!(deadline > now);
            now = deadline;
            s.on_timeout(now);
        }
        let burst = times.iter().filter(|(t, _)| *t == t1).count();
        assert!((9..=11).contains(&burst), "{burst} went at once");
        // After the allowance, one packet per its size at the rate: 1,154 bytes, 75 µs apart.
        let size = 1100 + udpchat_core::max_data_overhead() as u64;
        let gap = Duration::from_nanos((size * 1_000_000_000).div_ceil(rate));
        for pair in times[burst..].windows(2) {
            let d = pair[1].0 - pair[0].0;
            assert!(
                d + Duration::from_micros(5) >= gap && d <= gap + Duration::from_micros(5),
                "{d:?} vs {gap:?}"
            );
        }
    }

    #[test]
    fn a_resend_acked_sooner_than_min_rtt_is_spurious() {
        let t0 = Instant::now();
        let mut s = sender(&config(Arq::SelectiveRepeat));
        s.push(MessageId(0), b"x").unwrap();
        s.push(MessageId(1), b"y").unwrap();
        send_all(&mut s, t0);
        s.on_ack(t0 + Duration::from_millis(100), &ack(&s, 1, &[]))
            .unwrap();
        let deadline = s.poll_timeout().unwrap();
        s.on_timeout(deadline);
        assert_eq!(send_all(&mut s, deadline), vec![1]);
        let out = s
            .on_ack(deadline + Duration::from_millis(10), &ack(&s, 2, &[]))
            .unwrap();
        assert_eq!(out.delivered.len(), 1);
        assert_eq!(s.counters.retransmits_spurious, 1);
        assert_eq!(
            s.rtt.srtt(),
            Some(Duration::from_millis(100)),
            "Karn's rule"
        );
    }
    #[test]
    fn a_peer_that_acknowledges_but_never_delivers_bounds_what_we_send() {
        let t0 = Instant::now();
        let config = ReliableConfig {
            window: 4,
            max_message: 10,
            congestion: CongestionControl::None,
            ..ReliableConfig::default()
        };
        assert_eq!(config.max_fragments(), 1);
        let mut s = sender(&config);
        for i in 0..20 {
            s.push(MessageId(i), b"x").unwrap();
        }
        let mut sent = 0u64;
        for round in 0..10 {
            let now = t0 + Duration::from_millis(10 * round);
            sent += send_all(&mut s, now).len() as u64;
            // Everything received, nothing delivered.
            let mut a = ack(&s, sent, &[]);
            a.delivered = SeqNum(0);
            a.window = 4;
            s.on_ack(now, &a).unwrap();
        }
        assert_eq!(sent, 4 + 1, "window plus one message's fragments");
        assert!(s.undelivered.len() <= 5);
        assert!(!s.all_delivered());
    }

    fn redundant(copies: u8) -> Sender {
        sender(&ReliableConfig {
            redundancy: Redundancy::Fixed(copies),
            ..ReliableConfig::default()
        })
    }

    fn seqs_of(copies: &[Outgoing]) -> Vec<u64> {
        copies.iter().map(|c| c.seq.0).collect()
    }

    #[test]
    fn copies_are_the_newest_unacknowledged_packets_up_to_the_redundancy() {
        let t0 = Instant::now();
        let mut s = redundant(2);
        for i in 0..4u64 {
            s.push(MessageId(i), b"a line").unwrap();
            assert_eq!(send_all(&mut s, t0), vec![i]);
        }
        assert_eq!(
            seqs_of(&s.redundant_copies(t0, SeqNum(3), 1200)),
            vec![2, 1]
        );
        // Only with the newest packet's first transmission.
        assert!(s.redundant_copies(t0, SeqNum(2), 1200).is_empty());
        // Acknowledged packets are not copied (and 0 and 1 are not yet overdue: 10 ms RTT).
        let t1 = t0 + Duration::from_millis(10);
        s.on_ack(t1, &ack(&s, 0, &[(2, 2)])).unwrap();
        assert_eq!(
            seqs_of(&s.redundant_copies(t1, SeqNum(3), 1200)),
            vec![1, 0]
        );
        // Room is a hard limit: each copy is budgeted at its worst-case size.
        let one = 6 + udpchat_core::max_data_overhead();
        assert_eq!(
            seqs_of(&s.redundant_copies(t1, SeqNum(3), 2 * one - 1)),
            vec![1]
        );
        // Packets sent two round trips ago are overdue: loss detection has them.
        let t2 = t0 + Duration::from_millis(20);
        assert!(s.redundant_copies(t2, SeqNum(3), 1200).is_empty());
        assert!(redundant(0)
            .redundant_copies(t0, SeqNum(0), 1200)
            .is_empty());
    }

    /// A sender under `policy` that sent lines 0 to 3 at `t0`, got an ack of 1 to 3 at
    /// `t0 + 10 ms`, and resent 0 when the loss-detection timer declared it lost; no loss was
    /// proven yet (no resend acknowledged). With the time of the resend.
    fn resent_zero(policy: Redundancy, t0: Instant) -> (Sender, Instant) {
        let mut s = sender(&ReliableConfig {
            redundancy: policy,
            ..ReliableConfig::default()
        });
        for i in 0..4u64 {
            s.push(MessageId(i), b"a line").unwrap();
            assert_eq!(send_all(&mut s, t0), vec![i]);
        }
        let t1 = t0 + Duration::from_millis(10);
        s.on_ack(t1, &ack(&s, 0, &[(1, 3)])).unwrap();
        let due = s.loss_deadline.unwrap();
        assert_eq!(s.on_timeout(due), TimeoutOutcome::Retransmit);
        assert_eq!(send_all(&mut s, due), vec![0]);
        (s, due)
    }

    #[test]
    fn under_auto_a_resend_gets_one_copy_before_any_loss_is_proven() {
        let t0 = Instant::now();
        let (mut s, resent) = resent_zero(Redundancy::Auto, t0);
        assert_eq!(s.redundancy.copies(resent), 0);
        // Not in the resend's own datagram...
        s.push(MessageId(4), b"a line").unwrap();
        assert_eq!(send_all(&mut s, resent), vec![4]);
        assert!(s.redundant_copies(resent, SeqNum(4), 1200).is_empty());
        // ...but with the next line, though the estimate says none...
        let next = resent + Duration::from_millis(1);
        s.push(MessageId(5), b"a line").unwrap();
        assert_eq!(send_all(&mut s, next), vec![5]);
        assert_eq!(seqs_of(&s.redundant_copies(next, SeqNum(5), 1200)), vec![0]);
        s.copies_sent(next, &[SeqNum(0)], false);
        // ...once.
        s.push(MessageId(6), b"a line").unwrap();
        assert_eq!(send_all(&mut s, next), vec![6]);
        assert!(s.redundant_copies(next, SeqNum(6), 1200).is_empty());

        // With no line to carry it, the tail-copy timer sends it alone, half the 10 ms round
        // trip later.
        let (mut s, resent) = resent_zero(Redundancy::Auto, t0);
        let half = Duration::from_millis(5);
        assert_eq!(s.poll_timeout(), Some(resent + half));
        assert_eq!(s.on_timeout(resent + half), TimeoutOutcome::NotDue);
        assert_eq!(seqs_of(&s.tail_copies(resent + half, 1200)), vec![0]);

        // `--redundancy 0` means none, resends included.
        let (mut s, resent) = resent_zero(Redundancy::Fixed(0), t0);
        s.push(MessageId(4), b"a line").unwrap();
        assert_eq!(send_all(&mut s, resent + half), vec![4]);
        assert!(s
            .redundant_copies(resent + half, SeqNum(4), 1200)
            .is_empty());
        let deadline = s.poll_timeout().unwrap();
        assert!(deadline > resent + half);
        s.on_timeout(deadline);
        assert!(s.tail_copies(deadline, 1200).is_empty());
    }

    #[test]
    fn a_sender_with_a_backlog_or_half_its_window_in_use_sends_no_copies() {
        let t0 = Instant::now();
        let mut s = redundant(3);
        for i in 0..20u64 {
            s.push(MessageId(i), &[b'x'; 1000]).unwrap();
        }
        // Ten full datagrams fill the initial window; the rest wait: window-limited.
        let sent = send_all(&mut s, t0);
        assert!(sent.len() < 20);
        let newest = *sent.last().unwrap();
        assert!(s
            .redundant_copies(t0, SeqNum(newest), usize::MAX)
            .is_empty());
        // Application-limited, but a copy would take the flight past half the window.
        let mut s = redundant(3);
        for i in 0..5u64 {
            s.push(MessageId(i), &[b'x'; 1000]).unwrap();
        }
        assert_eq!(send_all(&mut s, t0).len(), 5);
        assert!(s.congestion.window() / 2 < s.bytes_in_flight() + 1000);
        assert!(s.redundant_copies(t0, SeqNum(4), usize::MAX).is_empty());
        // With two in flight there is room under half the window for one copy.
        let mut s = redundant(3);
        for i in 0..2u64 {
            s.push(MessageId(i), &[b'x'; 1000]).unwrap();
        }
        send_all(&mut s, t0);
        assert_eq!(
            seqs_of(&s.redundant_copies(t0, SeqNum(1), usize::MAX)),
            vec![0]
        );
    }

    #[test]
    fn copies_count_against_the_congestion_window_until_acknowledged() {
        let t0 = Instant::now();
        let mut s = redundant(3);
        s.push(MessageId(0), b"one").unwrap();
        s.push(MessageId(1), b"two").unwrap();
        send_all(&mut s, t0);
        let before = s.bytes_in_flight();
        s.copies_sent(t0, &[SeqNum(0)], false);
        assert_eq!(
            s.bytes_in_flight(),
            before + (3 + udpchat_core::max_data_overhead()) as u64
        );
        assert_eq!(s.counters.redundant_copies, 1);
        s.on_ack(t0 + Duration::from_millis(50), &ack(&s, 2, &[]))
            .unwrap();
        assert_eq!(s.bytes_in_flight(), 0);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn karns_rule_takes_no_sample_a_copy_could_have_triggered() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = redundant(3);
        s.push(MessageId(0), b"zero").unwrap();
        send_all(&mut s, t0);
        s.push(MessageId(1), b"one").unwrap();
        send_all(&mut s, t0 + ms(20));
        s.copies_sent(t0 + ms(20), &[SeqNum(0)], false);
        // Seq 0 acked alone: its copy rode with seq 1, which this ack does not cover, so the
        // original triggered it. A clean sample.
        s.on_ack(t0 + ms(60), &ack(&s, 1, &[])).unwrap();
        assert_eq!(s.rtt.latest(), Some(ms(60)));
        // A new pair: seq 2, then seq 3 carrying a copy of 2; one ack covers both. Seq 2 may
        // have arrived only as the copy: no sample from it; seq 3 (never copied) gives one.
        let t1 = t0 + ms(100);
        s.push(MessageId(2), b"two").unwrap();
        send_all(&mut s, t1);
        s.push(MessageId(3), b"three").unwrap();
        send_all(&mut s, t1 + ms(20));
        s.copies_sent(t1 + ms(20), &[SeqNum(2)], false);
        s.on_ack(t1 + ms(90), &ack(&s, 4, &[])).unwrap();
        assert_eq!(s.rtt.latest(), Some(ms(70)));
        // A tail copy travels alone: an ack of its packet is ambiguous...
        let t2 = t1 + ms(200);
        s.push(MessageId(4), b"four").unwrap();
        send_all(&mut s, t2);
        s.copies_sent(t2 + ms(30), &[SeqNum(4)], true);
        s.on_ack(t2 + ms(100), &ack(&s, 5, &[])).unwrap();
        assert_eq!(s.rtt.latest(), Some(ms(70)));
        // ...unless it comes sooner than the minimum RTT (60 ms) after the copy went out.
        let t3 = t2 + ms(200);
        s.push(MessageId(5), b"five").unwrap();
        send_all(&mut s, t3);
        s.copies_sent(t3 + ms(50), &[SeqNum(5)], true);
        s.on_ack(t3 + ms(80), &ack(&s, 6, &[])).unwrap();
        assert_eq!(s.rtt.latest(), Some(ms(80)));
        assert_eq!(s.counters.retransmits_spurious, 0);
    }
}
