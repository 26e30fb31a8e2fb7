//! The impairment model: what one direction of a bad network does to a stream of datagrams.
//!
//! [`Impairment`] is a pure state machine, like the transports: [`Impairment::offer`] hands it a
//! datagram at some instant and returns the datagram's fate ([`Verdict`]); [`Impairment::poll`]
//! returns datagrams whose time to leave has come, and [`Impairment::next_release`] says when
//! the next one will. It owns no socket and reads no clock, so the simulator drives it with
//! virtual time, the proxy and [`crate::ImpairedEndpoint`] with real time, and the same seed
//! gives the same fates to the same datagram sequence on every machine.
//!
//! A datagram goes through these stages, in this order (compare `tc netem`):
//! 1. **loss**: Gilbert–Elliott burst loss (if configured), then independent loss;
//! 2. **duplicate**: a surviving datagram may be copied once; each copy then goes on alone;
//! 3. **corrupt**: flips `corrupt_bits` distinct random bits (the receiver's CRC must catch it);
//! 4. **rate**: with a rate limit, the datagram waits in a finite FIFO queue for the link to be
//!    free and takes `bits / rate` to serialize; a full queue drops it (tail drop);
//! 5. **delay**: `delay` plus jitter drawn **uniformly from `[-jitter, +jitter]`** (netem's
//!    default distribution), never below zero. Jitter may reorder datagrams (as in netem) unless
//!    `jitter_reorders` is off, which keeps FIFO order by holding a datagram until the one before
//!    it has left;
//! 6. **reorder**: with probability `reorder` a datagram skips the delay and leaves as soon as it
//!    is serialized, ahead of those still delayed. Like netem, this needs a delay (or a rate
//!    backlog) to have any effect;
//! 7. **limit**: at most `limit` datagrams are held at once (memory stays bounded whatever the
//!    offered load); beyond that they are dropped.
//!
//! Each knob draws from its own ChaCha8 stream of one seed (`set_stream`), so turning jitter on
//! does not change which datagrams are lost: experiments that vary one knob keep the others' fates.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::gilbert::{ChannelState, GilbertElliott};
use crate::parse::{BitRate, QueueLimit};
use crate::probability::Probability;

/// The knobs of one direction. `ImpairmentConfig::default()` is a perfect link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImpairmentConfig {
    /// Independent (Bernoulli) loss probability. Default 0.
    pub loss: Probability,
    /// Burst loss, applied before `loss`. Default none.
    pub burst_loss: Option<GilbertElliott>,
    /// Fixed one-way delay. Default 0.
    pub delay: Duration,
    /// Jitter: each datagram's delay is `delay` plus a uniform draw from `[-jitter, +jitter]`,
    /// never below zero. Default 0.
    pub jitter: Duration,
    /// Whether jitter may reorder datagrams (netem does). If false, a datagram never leaves
    /// before the one offered before it. Default true.
    pub jitter_reorders: bool,
    /// Probability that a datagram skips the delay and overtakes those queued. Default 0.
    pub reorder: Probability,
    /// Probability that a datagram is sent twice. Default 0.
    pub duplicate: Probability,
    /// Probability that a datagram has bits flipped. Default 0.
    pub corrupt: Probability,
    /// How many distinct bits a corrupted datagram has flipped. Default 1.
    pub corrupt_bits: NonZeroU32,
    /// Link rate; datagrams are serialized at `bits / rate`. Default none (infinitely fast).
    pub rate: Option<BitRate>,
    /// The rate limiter's queue (including the datagram on the wire); tail drop when full.
    /// Default 1000 packets (netem's default limit). Only used with a `rate`.
    pub queue: QueueLimit,
    /// Most datagrams held at once across all stages, to bound memory. Default 10 000.
    pub limit: NonZeroUsize,
}

const DEFAULT_QUEUE_PACKETS: std::num::NonZeroU64 = match std::num::NonZeroU64::new(1000) {
    Some(n) => n,
    None => unreachable!(),
};
const DEFAULT_LIMIT: NonZeroUsize = match NonZeroUsize::new(10_000) {
    Some(n) => n,
    None => unreachable!(),
};

impl Default for ImpairmentConfig {
    fn default() -> Self {
        ImpairmentConfig {
            loss: Probability::ZERO,
            burst_loss: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_reorders: true,
            reorder: Probability::ZERO,
            duplicate: Probability::ZERO,
            corrupt: Probability::ZERO,
            corrupt_bits: NonZeroU32::MIN,
            rate: None,
            queue: QueueLimit::Packets(DEFAULT_QUEUE_PACKETS),
            limit: DEFAULT_LIMIT,
        }
    }
}

impl ImpairmentConfig {
    /// True if this config changes nothing: no loss, delay, duplication, reordering, corruption
    /// or rate limit.
    pub fn is_perfect(&self) -> bool {
        self.loss.is_zero()
            && self.burst_loss.is_none()
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.reorder.is_zero()
            && self.duplicate.is_zero()
            && self.corrupt.is_zero()
            && self.rate.is_none()
    }

    /// True if some knob of this config draws random numbers (so the seed matters).
    pub fn is_random(&self) -> bool {
        !(self.loss.is_zero()
            && self.burst_loss.is_none()
            && self.jitter.is_zero()
            && self.reorder.is_zero()
            && self.duplicate.is_zero()
            && self.corrupt.is_zero())
    }

    /// A short human description, e.g. `loss 30%, delay 20ms±5ms` (or `perfect`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.loss.is_zero() {
            parts.push(format!("loss {}", self.loss));
        }
        if let Some(ge) = &self.burst_loss {
            parts.push(format!(
                "burst loss {ge} (mean {:.2}%, bursts {:.1})",
                ge.mean_loss() * 100.0,
                ge.mean_bad_run()
            ));
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            let mut d = format!("delay {:?}", self.delay);
            if !self.jitter.is_zero() {
                d.push_str(&format!("±{:?}", self.jitter));
                if !self.jitter_reorders {
                    d.push_str(" (fifo)");
                }
            }
            parts.push(d);
        }
        for (name, p) in [
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
        ] {
            if !p.is_zero() {
                parts.push(format!("{name} {p}"));
            }
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate {rate}, queue {}", self.queue));
        }
        if parts.is_empty() {
            "perfect".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Why the model dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropCause {
    /// Independent loss.
    Loss,
    /// Gilbert–Elliott burst loss.
    BurstLoss,
    /// The rate limiter's queue was full (tail drop).
    QueueFull,
    /// The model already held `limit` datagrams.
    Limit,
}

impl fmt::Display for DropCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropCause::Loss => "loss",
            DropCause::BurstLoss => "burst_loss",
            DropCause::QueueFull => "queue_full",
            DropCause::Limit => "limit",
        })
    }
}

/// What became of one copy of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    /// Dropped, for this reason.
    Dropped {
        /// Why.
        cause: DropCause,
    },
    /// Held, to be released at `release`.
    Scheduled {
        /// When it will leave.
        #[serde(skip)]
        release: Instant,
        /// How many bits were flipped (0: intact).
        corrupted_bits: u32,
        /// True if the reorder knob sent it ahead of those queued.
        sent_ahead: bool,
    },
}

/// The fate of one offered datagram: the original and, if it was duplicated, its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Offer number, from 0, of this datagram in this direction.
    pub index: u64,
    /// What became of the datagram.
    pub original: Fate,
    /// What became of its copy, if the duplicate knob made one.
    pub duplicate: Option<Fate>,
}

/// A datagram leaving the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released<T> {
    /// The tag it was offered with (an address, a client id, a trace id...).
    pub tag: T,
    /// Its bytes (possibly corrupted).
    pub bytes: Vec<u8>,
    /// Its offer number.
    pub index: u64,
    /// True if a datagram offered after it left before it (it arrives reordered).
    pub late: bool,
}

/// Counters of one direction. Every field only grows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImpairmentStats {
    /// Datagrams offered.
    pub received: u64,
    /// Datagrams released (copies included).
    pub forwarded: u64,
    /// Dropped by independent loss.
    pub dropped_loss: u64,
    /// Dropped by burst loss.
    pub dropped_burst: u64,
    /// Dropped because the rate limiter's queue was full.
    pub dropped_queue: u64,
    /// Dropped because `limit` datagrams were already held.
    pub dropped_limit: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Copies with bits flipped.
    pub corrupted: u64,
    /// Datagrams the reorder knob sent ahead.
    pub sent_ahead: u64,
    /// Datagrams released after one offered later (reordered, by the knob or by jitter).
    pub reordered: u64,
}

impl ImpairmentStats {
    /// All drops, whatever the cause.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss + self.dropped_burst + self.dropped_queue + self.dropped_limit
    }

    fn count_drop(&mut self, cause: DropCause) {
        match cause {
            DropCause::Loss => self.dropped_loss += 1,
            DropCause::BurstLoss => self.dropped_burst += 1,
            DropCause::QueueFull => self.dropped_queue += 1,
            DropCause::Limit => self.dropped_limit += 1,
        }
    }
}

impl fmt::Display for ImpairmentStats {
    /// One line of `key=value` pairs, stable for scripts and tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received={} forwarded={} dropped_loss={} dropped_burst={} dropped_queue={} \
             dropped_limit={} duplicated={} reordered={} corrupted={}",
            self.received,
            self.forwarded,
            self.dropped_loss,
            self.dropped_burst,
            self.dropped_queue,
            self.dropped_limit,
            self.duplicated,
            self.reordered,
            self.corrupted
        )
    }
}

/// Derives an independent seed for a labelled part of an experiment (a direction, a link) from
/// one user seed, with SplitMix64, so `--seed 1` gives each direction its own stream.
pub fn derive_seed(seed: u64, label: u64) -> u64 {
    let mut z = seed ^ label.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One ChaCha8 stream per knob, all from the same seed.
#[derive(Debug, Clone)]
struct Streams {
    burst: ChaCha8Rng,
    loss: ChaCha8Rng,
    duplicate: ChaCha8Rng,
    corrupt: ChaCha8Rng,
    jitter: ChaCha8Rng,
    reorder: ChaCha8Rng,
}

impl Streams {
    fn new(seed: u64) -> Streams {
        let stream = |id: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(id);
            rng
        };
        Streams {
            burst: stream(1),
            loss: stream(2),
            duplicate: stream(3),
            corrupt: stream(4),
            jitter: stream(5),
            reorder: stream(6),
        }
    }
}

/// A datagram waiting in the model, ordered by release time, then by scheduling order so equal
/// release times leave first-in, first-out.
#[derive(Debug)]
struct Held<T> {
    release: Instant,
    order: u64,
    index: u64,
    tag: T,
    bytes: Vec<u8>,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.release == other.release && self.order == other.order
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest release on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.release, other.order).cmp(&(self.release, self.order))
    }
}

/// One direction of an impaired link. `T` tags each datagram (its address, a trace id...) and
/// comes back with it on release.
#[derive(Debug)]
pub struct Impairment<T = ()> {
    config: ImpairmentConfig,
    streams: Streams,
    channel: ChannelState,
    /// Held datagrams, in two lanes that together release in (release, order) order. Most
    /// datagrams leave no earlier than the one scheduled before them (a fixed delay, a rate, no
    /// reordering jitter): those join `in_order`, a queue already sorted, at O(1) each way.
    /// The rest (jitter that reorders, sent-ahead) go to the `reordered` heap. `poll` takes the
    /// earlier of the two heads, so the release order is exactly that of one heap.
    in_order: VecDeque<Held<T>>,
    reordered: BinaryHeap<Held<T>>,
    /// Departure times and sizes of datagrams in the rate limiter (queued or on the wire).
    backlog: VecDeque<(Instant, usize)>,
    backlog_bytes: usize,
    link_free_at: Option<Instant>,
    /// Latest release scheduled so far, for FIFO order when jitter must not reorder.
    last_release: Option<Instant>,
    next_index: u64,
    next_order: u64,
    highest_released: Option<u64>,
    stats: ImpairmentStats,
}

impl<T: Clone> Impairment<T> {
    /// A direction with these knobs, drawing all its randomness from `seed`.
    pub fn new(config: ImpairmentConfig, seed: u64) -> Impairment<T> {
        Impairment {
            config,
            streams: Streams::new(seed),
            channel: ChannelState::Good,
            in_order: VecDeque::new(),
            reordered: BinaryHeap::new(),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            link_free_at: None,
            last_release: None,
            next_index: 0,
            next_order: 0,
            highest_released: None,
            stats: ImpairmentStats::default(),
        }
    }

    /// The knobs.
    pub fn config(&self) -> &ImpairmentConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &ImpairmentStats {
        &self.stats
    }

    /// Datagrams held right now.
    pub fn len(&self) -> usize {
        self.in_order.len() + self.reordered.len()
    }

    /// True if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.in_order.is_empty() && self.reordered.is_empty()
    }

    /// When the next held datagram leaves, if any.
    pub fn next_release(&self) -> Option<Instant> {
        self.head().map(|h| h.release)
    }

    /// The held datagram that leaves next: the earlier of the two lanes' heads.
    fn head(&self) -> Option<&Held<T>> {
        match (self.in_order.front(), self.reordered.peek()) {
            // `Held`'s order is reversed (for the max-heap): greater means earlier.
            (Some(queued), Some(heaped)) => Some(if heaped > queued { heaped } else { queued }),
            (queued, heaped) => queued.or(heaped),
        }
    }

    /// Removes the held datagram that leaves next.
    fn pop_head(&mut self) -> Option<Held<T>> {
        let from_heap = match (self.in_order.front(), self.reordered.peek()) {
            (Some(queued), Some(heaped)) => heaped > queued,
            (queued, _) => queued.is_none(),
        };
        if from_heap {
            self.reordered.pop()
        } else {
            self.in_order.pop_front()
        }
    }

    fn hold(&mut self, held: Held<T>) {
        // Only behind an earlier-or-equal release: `order` grows, so the queue stays sorted.
        if self
            .in_order
            .back()
            .is_none_or(|last| last.release <= held.release)
        {
            self.in_order.push_back(held);
        } else {
            self.reordered.push(held);
        }
    }

    /// Takes in one datagram at `now` and decides its fate.
    pub fn offer(&mut self, now: Instant, tag: T, bytes: Vec<u8>) -> Verdict {
        self.offer_protecting(now, tag, bytes, 0)
    }

    /// Like [`Impairment::offer`], but corruption never flips a bit of the first `protected`
    /// bytes (all of them if the datagram is shorter). The TUN relay protects each IP packet's
    /// IP header this way, so a corrupted packet still reaches the receiver's transport layer,
    /// whose checksum then drops it, as udpchat's CRC drops a corrupted datagram. Everything else
    /// (fates, draws, rate) is exactly as with `offer`.
    pub fn offer_protecting(
        &mut self,
        now: Instant,
        tag: T,
        bytes: Vec<u8>,
        protected: usize,
    ) -> Verdict {
        let index = self.next_index;
        self.next_index += 1;
        self.stats.received += 1;

        if let Some(cause) = self.draw_loss() {
            self.stats.count_drop(cause);
            return Verdict {
                index,
                original: Fate::Dropped { cause },
                duplicate: None,
            };
        }
        let duplicated = draw(self.config.duplicate, &mut self.streams.duplicate);
        let copy = duplicated.then(|| (tag.clone(), bytes.clone()));
        let original = self.schedule(now, index, tag, bytes, protected);
        let duplicate = copy.map(|(tag, bytes)| {
            self.stats.duplicated += 1;
            self.schedule(now, index, tag, bytes, protected)
        });
        Verdict {
            index,
            original,
            duplicate,
        }
    }

    /// The next datagram whose release time is at or before `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Released<T>> {
        if self.head()?.release > now {
            return None;
        }
        let held = self.pop_head()?;
        self.stats.forwarded += 1;
        let late = match self.highest_released {
            Some(highest) if held.index < highest => true,
            _ => {
                self.highest_released = Some(held.index);
                false
            }
        };
        if late {
            self.stats.reordered += 1;
        }
        Some(Released {
            tag: held.tag,
            bytes: held.bytes,
            index: held.index,
            late,
        })
    }

    fn draw_loss(&mut self) -> Option<DropCause> {
        if let Some(ge) = &self.config.burst_loss {
            if ge.step(&mut self.channel, &mut self.streams.burst) {
                return Some(DropCause::BurstLoss);
            }
        }
        if draw(self.config.loss, &mut self.streams.loss) {
            return Some(DropCause::Loss);
        }
        None
    }

    /// Corruption, rate, delay, reorder and limit for one copy.
    fn schedule(
        &mut self,
        now: Instant,
        index: u64,
        tag: T,
        mut bytes: Vec<u8>,
        protected: usize,
    ) -> Fate {
        let corrupted_bits = if draw(self.config.corrupt, &mut self.streams.corrupt) {
            let start = protected.min(bytes.len());
            flip_bits(
                &mut bytes[start..],
                self.config.corrupt_bits.get(),
                &mut self.streams.corrupt,
            )
        } else {
            0
        };
        if corrupted_bits > 0 {
            self.stats.corrupted += 1;
        }

        if self.len() >= self.config.limit.get() {
            self.stats.count_drop(DropCause::Limit);
            return Fate::Dropped {
                cause: DropCause::Limit,
            };
        }

        let departure = match self.config.rate {
            None => now,
            Some(rate) => {
                while let Some(&(done, len)) = self.backlog.front() {
                    if done > now {
                        break;
                    }
                    self.backlog.pop_front();
                    self.backlog_bytes -= len;
                }
                if self
                    .config
                    .queue
                    .is_full(self.backlog.len(), self.backlog_bytes, bytes.len())
                {
                    self.stats.count_drop(DropCause::QueueFull);
                    return Fate::Dropped {
                        cause: DropCause::QueueFull,
                    };
                }
                let start = self.link_free_at.map_or(now, |free| free.max(now));
                let done = start + rate.transmission_time(bytes.len());
                self.link_free_at = Some(done);
                self.backlog.push_back((done, bytes.len()));
                self.backlog_bytes += bytes.len();
                done
            }
        };

        let sent_ahead = draw(self.config.reorder, &mut self.streams.reorder);
        let release = if sent_ahead {
            self.stats.sent_ahead += 1;
            departure
        } else {
            let mut release = departure + self.draw_delay();
            if !self.config.jitter_reorders {
                if let Some(last) = self.last_release {
                    release = release.max(last);
                }
            }
            self.last_release = Some(self.last_release.map_or(release, |l| l.max(release)));
            release
        };

        let order = self.next_order;
        self.next_order += 1;
        self.hold(Held {
            release,
            order,
            index,
            tag,
            bytes,
        });
        Fate::Scheduled {
            release,
            corrupted_bits,
            sent_ahead,
        }
    }

    /// `delay` plus a uniform draw from `[-jitter, +jitter]`, clamped at zero.
    fn draw_delay(&mut self) -> Duration {
        let jitter = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX / 2);
        if jitter == 0 {
            return self.config.delay;
        }
        let offset = self
            .streams
            .jitter
            .random_range(0..=jitter.saturating_mul(2));
        let delay = self.config.delay.as_nanos() as i128 + offset as i128 - jitter as i128;
        Duration::from_nanos(u64::try_from(delay.max(0)).unwrap_or(u64::MAX))
    }
}

/// True with probability `p`. A knob that is off draws nothing: each knob has its own stream, so
/// skipping draws cannot shift another knob's fates, and a perfect link costs no randomness.
fn draw(p: Probability, rng: &mut ChaCha8Rng) -> bool {
    !p.is_zero() && p.sample(rng)
}

/// Flips `count` distinct random bits of `bytes` (all of them if it is shorter). Returns how many.
fn flip_bits<R: Rng + ?Sized>(bytes: &mut [u8], count: u32, rng: &mut R) -> u32 {
    let total_bits = bytes.len() * 8;
    let count = (count as usize).min(total_bits);
    let mut flipped: Vec<usize> = Vec::with_capacity(count);
    while flipped.len() < count {
        let bit = rng.random_range(0..total_bits);
        if !flipped.contains(&bit) {
            flipped.push(bit);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
    }
    count as u32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::parse::{parse_probability, parse_rate};

    fn p(s: &str) -> Probability {
        parse_probability(s).unwrap()
    }

    fn drain(imp: &mut Impairment<u32>, now: Instant) -> Vec<Released<u32>> {
        std::iter::from_fn(|| imp.poll(now)).collect()
    }

    #[test]
    fn perfect_link_passes_everything_at_once_in_order() {
        let t0 = Instant::now();
        let mut imp = Impairment::new(ImpairmentConfig::default(), 1);
        for i in 0..10u32 {
            let v = imp.offer(t0, i, vec![i as u8; 10]);
            assert_eq!(v.index, u64::from(i));
            assert!(v.duplicate.is_none());
        }
        let out = drain(&mut imp, t0);
        assert_eq!(
            out.iter().map(|r| r.tag).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(out.iter().all(|r| !r.late));
        assert!(imp.is_empty());
        assert_eq!(imp.stats().forwarded, 10);
    }

    #[test]
    fn datagrams_leave_by_release_time_then_in_the_order_they_were_scheduled() {
        // Jitter that reorders and sent-ahead copies put datagrams in both lanes of `held`;
        // whatever the mix, they must leave exactly as one sorted queue would release them.
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            reorder: p("20%"),
            duplicate: p("10%"),
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 9);
        let mut scheduled = Vec::new();
        for i in 0..500u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 300);
            let verdict = imp.offer(now, i, vec![0; 8]);
            for fate in std::iter::once(verdict.original).chain(verdict.duplicate) {
                if let Fate::Scheduled { release, .. } = fate {
                    scheduled.push((release, i));
                }
            }
        }
        // A stable sort keeps equal release times in scheduling order.
        scheduled.sort_by_key(|&(release, _)| release);
        let mut released = Vec::new();
        while let Some(at) = imp.next_release() {
            for r in drain(&mut imp, at) {
                released.push((at, r.tag));
            }
        }
        assert_eq!(released, scheduled);
        assert!(imp.stats().reordered > 0 && imp.stats().sent_ahead > 0);
    }

    #[test]
    fn delay_holds_datagrams_until_due() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            delay: Duration::from_millis(30),
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 1);
        imp.offer(t0, 7u32, b"x".to_vec());
        assert_eq!(imp.next_release(), Some(t0 + Duration::from_millis(30)));
        assert!(imp.poll(t0 + Duration::from_millis(29)).is_none());
        let r = imp.poll(t0 + Duration::from_millis(30)).unwrap();
        assert_eq!((r.tag, r.bytes.as_slice()), (7, &b"x"[..]));
    }

    #[test]
    fn full_loss_drops_everything_and_counts_it() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            loss: Probability::ONE,
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 1);
        for i in 0..5u32 {
            let v = imp.offer(t0, i, vec![1]);
            assert_eq!(
                v.original,
                Fate::Dropped {
                    cause: DropCause::Loss
                }
            );
        }
        assert!(imp.poll(t0 + Duration::from_secs(9)).is_none());
        assert_eq!(imp.stats().dropped_loss, 5);
        assert_eq!(imp.stats().dropped(), 5);
    }

    #[test]
    fn duplicate_makes_two_identical_copies() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            duplicate: Probability::ONE,
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 1);
        let v = imp.offer(t0, 1u32, b"hello".to_vec());
        assert!(v.duplicate.is_some());
        let out = drain(&mut imp, t0);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|r| r.bytes == b"hello" && r.index == 0 && !r.late));
        assert_eq!(imp.stats().duplicated, 1);
    }

    #[test]
    fn corruption_flips_exactly_the_configured_number_of_bits() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            corrupt: Probability::ONE,
            corrupt_bits: NonZeroU32::new(3).unwrap(),
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 9);
        for i in 0..100u32 {
            imp.offer(t0, i, vec![0u8; 64]);
            let r = imp.poll(t0).unwrap();
            let ones: u32 = r.bytes.iter().map(|b| b.count_ones()).sum();
            assert_eq!(ones, 3);
        }
        // An empty datagram has no bits to flip.
        let v = imp.offer(t0, 0, Vec::new());
        assert!(matches!(
            v.original,
            Fate::Scheduled {
                corrupted_bits: 0,
                ..
            }
        ));
    }

    #[test]
    fn reorder_sends_ahead_of_delayed_datagrams() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            delay: Duration::from_millis(50),
            reorder: Probability::ONE,
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 1);
        let v = imp.offer(t0, 0u32, vec![0]);
        assert!(
            matches!(v.original, Fate::Scheduled { sent_ahead: true, release, .. } if release == t0)
        );
    }

    #[test]
    fn jitter_reorders_unless_told_not_to() {
        let t0 = Instant::now();
        let mut config = ImpairmentConfig {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(40),
            ..Default::default()
        };
        let run = |config: ImpairmentConfig| {
            let mut imp = Impairment::new(config, 3);
            for i in 0..200u32 {
                imp.offer(t0 + Duration::from_millis(u64::from(i)), i, vec![0]);
            }
            let out = drain(&mut imp, t0 + Duration::from_secs(10));
            (
                out.iter().map(|r| r.tag).collect::<Vec<_>>(),
                imp.stats().reordered,
            )
        };
        let (order, reordered) = run(config.clone());
        assert!(reordered > 0);
        assert_ne!(order, (0..200).collect::<Vec<_>>());
        config.jitter_reorders = false;
        let (order, reordered) = run(config);
        assert_eq!(reordered, 0);
        assert_eq!(order, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn rate_limit_serializes_and_tail_drops() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            rate: Some(parse_rate("1mbit").unwrap()),
            queue: QueueLimit::packets(3).unwrap(),
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 1);
        // Five 1250-byte datagrams at once: 10 ms each on the wire; the queue holds 3.
        let fates: Vec<Fate> = (0..5u32)
            .map(|i| imp.offer(t0, i, vec![0; 1250]).original)
            .collect();
        for (i, fate) in fates.iter().enumerate().take(3) {
            assert!(
                matches!(fate, Fate::Scheduled { release, .. } if *release == t0 + Duration::from_millis(10 * (i as u64 + 1)))
            );
        }
        assert_eq!(
            fates[3],
            Fate::Dropped {
                cause: DropCause::QueueFull
            }
        );
        assert_eq!(imp.stats().dropped_queue, 2);
        // Once the first has left the wire there is room again.
        let v = imp.offer(t0 + Duration::from_millis(10), 9, vec![0; 1250]);
        assert!(
            matches!(v.original, Fate::Scheduled { release, .. } if release == t0 + Duration::from_millis(40))
        );
    }

    #[test]
    fn limit_bounds_what_is_held() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            delay: Duration::from_secs(1),
            limit: NonZeroUsize::new(4).unwrap(),
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 1);
        for i in 0..10u32 {
            imp.offer(t0, i, vec![0]);
        }
        assert_eq!(imp.len(), 4);
        assert_eq!(imp.stats().dropped_limit, 6);
    }

    #[test]
    fn same_seed_same_fates_and_knobs_do_not_disturb_each_other() {
        let t0 = Instant::now();
        let lossy = ImpairmentConfig {
            loss: p("30%"),
            ..Default::default()
        };
        let fates = |config: ImpairmentConfig, seed: u64| {
            let mut imp = Impairment::new(config, seed);
            (0..500u32)
                .map(|i| matches!(imp.offer(t0, i, vec![0; 20]).original, Fate::Dropped { .. }))
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(lossy.clone(), 5), fates(lossy.clone(), 5));
        assert_ne!(fates(lossy.clone(), 5), fates(lossy.clone(), 6));
        let with_jitter = ImpairmentConfig {
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(5),
            corrupt: p("10%"),
            ..lossy.clone()
        };
        assert_eq!(fates(lossy, 5), fates(with_jitter, 5));
    }

    #[test]
    fn a_protected_prefix_is_never_corrupted() {
        let t0 = Instant::now();
        let config = ImpairmentConfig {
            corrupt: Probability::ONE,
            corrupt_bits: NonZeroU32::new(3).unwrap(),
            ..Default::default()
        };
        let mut imp = Impairment::new(config, 9);
        for i in 0..200u32 {
            imp.offer_protecting(t0, i, vec![0u8; 24], 20);
        }
        for released in drain(&mut imp, t0) {
            assert!(released.bytes[..20].iter().all(|&b| b == 0));
            let flipped: u32 = released.bytes[20..].iter().map(|b| b.count_ones()).sum();
            assert_eq!(flipped, 3);
        }
        assert_eq!(imp.stats().corrupted, 200);
    }

    #[test]
    fn derived_seeds_differ_by_label() {
        assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
        assert_eq!(derive_seed(1, 0), derive_seed(1, 0));
    }

    #[test]
    fn describe_names_the_knobs() {
        assert_eq!(ImpairmentConfig::default().describe(), "perfect");
        assert!(ImpairmentConfig::default().is_perfect());
        let c = ImpairmentConfig {
            loss: p("30%"),
            delay: Duration::from_millis(20),
            ..Default::default()
        };
        assert_eq!(c.describe(), "loss 30%, delay 20ms");
        assert!(!c.is_perfect());
    }
}
