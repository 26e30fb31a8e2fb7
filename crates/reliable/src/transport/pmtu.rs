//! [`PathMtu`]: datagram packetization layer path MTU discovery (DPLPMTUD, RFC 8899).
//!
//! How large may a datagram be on this path? 1,200 bytes of UDP payload get through almost every
//! path (QUIC's assumption, and ours: [`BASE_PLPMTU`]); a LAN carries 1,472, loopback 65,507,
//! a jumbo-frame network almost 9,000. Bigger datagrams mean fewer fragments and fewer packets
//! per byte. But a path may drop a datagram that is too large without a word (no ICMP reaches a
//! UDP socket we can trust, and many paths filter it), so the size must be *discovered*, by
//! sending probes and seeing which get through, as RFC 8899 describes for datagram transports:
//!
//! - **Probes.** A probe is a `Probe` packet padded to the size being tried; it carries no user
//!   data, so losing it costs nothing but itself, and it is not counted against the congestion
//!   window or as a loss (RFC 8899 section 3: a lost probe is not a congestion signal). The peer
//!   answers each with a `ProbeAck`. One probe is out at a time.
//! - **The search.** It starts from the base (confirmed by the handshake) and tries the cap
//!   (`--max-datagram`) first, since on a LAN or loopback it usually gets through at once; then
//!   a binary search between the largest size confirmed and the smallest size known to fail,
//!   until they are [`SEARCH_GRANULARITY`] bytes apart. A size fails after [`MAX_PROBES`] probes
//!   of it go unanswered, each given a retransmission timeout (RFC 8899's `MAX_PROBES` is 3).
//! - **Confirm on ack.** Only an answered probe raises the size in use (the PLPMTU), and from
//!   then on the sender cuts messages into fragments that fill it.
//! - **Black holes.** A path whose MTU shrinks later (a route change) drops the now too-large
//!   datagrams without telling anyone. [`BLACK_HOLE_LOSSES`] data packets larger than the base
//!   lost in a row, with none of that size acknowledged between them, raise the suspicion; but a
//!   full queue drops a run of full-size packets too, so the suspicion is checked first: probes
//!   of the PLPMTU itself go out, and only if [`MAX_PROBES`] of them go unanswered is it a black
//!   hole. Then the PLPMTU goes back to the base, and the search starts again
//!   [`BLACK_HOLE_RETRY`] later. Packets already cut for the larger
//!   size are carried across in pieces (`Packet::Piece`, see `conn.rs`), so no message is lost.
//! - **Raise timer.** A finished search is repeated every [`RAISE_INTERVAL`] (RFC 8899's
//!   `PMTU_RAISE_TIMER`, 600 s), in case the path grew.
//!
//! Sans-IO like everything here: time is passed in, and the one deadline goes through the
//! endpoint's timer table (`Timer::PathMtu`).

use std::time::{Duration, Instant};

use udpchat_core::DEFAULT_MAX_DATAGRAM;

/// The size every path is assumed to carry, and where the search starts: 1,200 bytes of UDP
/// payload (QUIC's minimum; IPv6's 1,280-byte minimum MTU less 80 bytes of headers and margin).
pub(crate) const BASE_PLPMTU: usize = DEFAULT_MAX_DATAGRAM;

/// Probes of one size that go unanswered before that size counts as too large (RFC 8899).
pub(crate) const MAX_PROBES: u32 = 3;

/// The search stops when the largest confirmed size and the smallest failed one are closer than
/// this: within 16 bytes of the path's MTU is close enough, and saves probes.
pub(crate) const SEARCH_GRANULARITY: usize = 16;

/// Data packets larger than the base lost in a row that mean a black hole.
pub(crate) const BLACK_HOLE_LOSSES: u32 = 3;

/// How long after a black hole the search starts again.
pub(crate) const BLACK_HOLE_RETRY: Duration = Duration::from_secs(60);

/// How long a finished search stands before it is tried again (RFC 8899's raise timer).
pub(crate) const RAISE_INTERVAL: Duration = Duration::from_secs(600);

/// A probe on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outstanding {
    id: u32,
    size: usize,
    /// When it counts as lost.
    deadline: Instant,
}

/// Where the search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The cap is the base (or below): there is nothing to discover.
    Disabled,
    /// No session yet: the search starts when the endpoint says so.
    NotStarted,
    /// Looking for the size between `lo` (confirmed) and `hi` (not known to fail).
    Searching {
        lo: usize,
        hi: usize,
        /// The size being tried and how many of its probes went unanswered.
        trying: Option<(usize, u32)>,
        probe: Option<Outstanding>,
        /// The next probe may not go before this (after a black hole, or a finished search).
        not_before: Option<Instant>,
    },
    /// Done: the PLPMTU stands until `again`.
    Complete { again: Instant },
}

/// DPLPMTUD's state for one path.
#[derive(Debug, Clone)]
pub(crate) struct PathMtu {
    cap: usize,
    /// The PLPMTU: the largest datagram size the sender uses now.
    current: usize,
    phase: Phase,
    next_id: u32,
    /// Consecutive losses of data packets larger than the base.
    big_losses: u32,
    /// A suspected black hole being checked: the PLPMTU's own probe and its unanswered count.
    confirming: Option<(Option<Outstanding>, u32)>,
    /// Black holes detected so far.
    black_holes: u64,
}

impl PathMtu {
    /// Discovery up to `cap` bytes (`ReliableConfig::max_datagram`); none if the cap is not
    /// above the base.
    pub(crate) fn new(cap: usize) -> Self {
        let base = BASE_PLPMTU.min(cap);
        PathMtu {
            cap,
            current: base,
            phase: if cap > BASE_PLPMTU {
                Phase::NotStarted
            } else {
                Phase::Disabled
            },
            next_id: 0,
            big_losses: 0,
            confirming: None,
            black_holes: 0,
        }
    }

    /// The PLPMTU: the largest datagram to send now.
    pub(crate) fn current(&self) -> usize {
        self.current
    }

    /// The smallest size the sender may ever fall back to.
    pub(crate) fn base(&self) -> usize {
        BASE_PLPMTU.min(self.cap)
    }

    /// Black holes detected.
    pub(crate) fn black_holes(&self) -> u64 {
        self.black_holes
    }

    /// The session is up (its handshake confirmed the base): start searching now.
    pub(crate) fn start(&mut self, now: Instant) {
        if self.phase == Phase::NotStarted {
            self.search_from(self.base(), Some(now));
        }
    }

    /// A new session: back to the base, and wait for [`PathMtu::start`].
    pub(crate) fn reset(&mut self) {
        *self = PathMtu {
            black_holes: self.black_holes,
            next_id: self.next_id,
            ..PathMtu::new(self.cap)
        };
    }

    fn search_from(&mut self, lo: usize, not_before: Option<Instant>) {
        self.phase = Phase::Searching {
            lo,
            hi: self.cap,
            trying: None,
            probe: None,
            not_before,
        };
    }

    /// When the search needs the clock next: a probe's deadline, or when the next may go.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let confirm = self.confirming.and_then(|(p, _)| p).map(|p| p.deadline);
        let search = match self.phase {
            Phase::Searching { probe: Some(p), .. } => Some(p.deadline),
            Phase::Searching { not_before, .. } => not_before,
            Phase::Complete { again } => Some(again),
            Phase::Disabled | Phase::NotStarted => None,
        };
        [confirm, search].into_iter().flatten().min()
    }

    /// Lets the timer fire: an unanswered probe counts against its size; a finished search or a
    /// black hole's wait ends.
    pub(crate) fn on_timeout(&mut self, now: Instant) {
        self.confirm_timeout(now);
        match &mut self.phase {
            Phase::Complete { again } if *again <= now => {
                let lo = self.current;
                self.search_from(lo, None);
            }
            Phase::Searching {
                hi, trying, probe, ..
            } => {
                if let Some(p) = probe.filter(|p| p.deadline <= now) {
                    *probe = None;
                    let attempts = trying.map_or(0, |(_, n)| n) + 1;
                    if attempts >= MAX_PROBES {
                        // Too large: the answer lies below.
                        *hi = p.size - 1;
                        *trying = None;
                    } else {
                        *trying = Some((p.size, attempts));
                    }
                }
                self.settle(now);
            }
            _ => {}
        }
    }

    /// A suspected black hole's probe went unanswered: after [`MAX_PROBES`], it is one.
    fn confirm_timeout(&mut self, now: Instant) {
        let Some((Some(probe), unanswered)) = self.confirming else {
            return;
        };
        if probe.deadline > now {
            return;
        }
        let unanswered = unanswered + 1;
        if unanswered < MAX_PROBES {
            self.confirming = Some((None, unanswered));
            return;
        }
        self.confirming = None;
        self.black_holes += 1;
        self.current = self.base();
        self.search_from(self.base(), Some(now + BLACK_HOLE_RETRY));
    }

    /// Takes the next probe id.
    fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// The next probe to send, if one is due: its id and datagram size. `timeout` is how long
    /// it is given (a retransmission timeout). A suspected black hole's check goes first.
    pub(crate) fn poll_probe(&mut self, now: Instant, timeout: Duration) -> Option<(u32, usize)> {
        if let Some((None, unanswered)) = self.confirming {
            let id = self.next_id();
            let probe = Outstanding {
                id,
                size: self.current,
                deadline: now + timeout,
            };
            self.confirming = Some((Some(probe), unanswered));
            return Some((id, self.current));
        }
        let Phase::Searching {
            lo,
            hi,
            trying,
            probe,
            not_before,
        } = &mut self.phase
        else {
            return None;
        };
        if probe.is_some() || not_before.is_some_and(|t| t > now) {
            return None;
        }
        *not_before = None;
        let size = match *trying {
            Some((size, _)) => size,
            // The cap first (a LAN or loopback takes it at once), then halve the gap.
            None if *hi == self.cap && *lo < *hi => *hi,
            None => *lo + (*hi - *lo).div_ceil(2),
        };
        *trying = Some((size, trying.map_or(0, |(_, n)| n)));
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        *probe = Some(Outstanding {
            id,
            size,
            deadline: now + timeout,
        });
        Some((id, size))
    }

    /// The peer answered probe `id`: its size gets through. Returns true if the PLPMTU rose.
    pub(crate) fn on_probe_ack(&mut self, now: Instant, id: u32) -> bool {
        if let Some((Some(probe), _)) = self.confirming {
            if probe.id == id {
                // The PLPMTU still gets through: those losses were something else (a full
                // queue, say).
                self.confirming = None;
                self.big_losses = 0;
                return false;
            }
        }
        let Phase::Searching {
            lo, trying, probe, ..
        } = &mut self.phase
        else {
            return false;
        };
        let Some(p) = probe.filter(|p| p.id == id) else {
            // An answer to a probe already given up on, or forged: the size it names is not
            // known here any more, so it proves nothing.
            return false;
        };
        *probe = None;
        *trying = None;
        *lo = p.size;
        let raised = p.size > self.current;
        self.current = self.current.max(p.size);
        self.big_losses = 0;
        self.settle(now);
        raised
    }

    /// Ends the search when the bounds have met.
    fn settle(&mut self, now: Instant) {
        if let Phase::Searching {
            lo,
            hi,
            probe: None,
            ..
        } = self.phase
        {
            if hi < lo + SEARCH_GRANULARITY {
                self.phase = Phase::Complete {
                    again: now + RAISE_INTERVAL,
                };
            }
        }
    }

    /// A data packet of `size` bytes (its datagram, at most) was declared lost. Returns true if
    /// that makes a black hole suspected: probes of the PLPMTU will check it.
    pub(crate) fn on_data_lost(&mut self, size: usize) -> bool {
        if size <= self.base() || self.current <= self.base() || self.confirming.is_some() {
            return false;
        }
        self.big_losses += 1;
        if self.big_losses < BLACK_HOLE_LOSSES {
            return false;
        }
        self.big_losses = 0;
        self.confirming = Some((None, 0));
        true
    }

    /// A data packet of `size` bytes was acknowledged: the path carries that size.
    pub(crate) fn on_data_acked(&mut self, size: usize) {
        if size > self.base() {
            self.big_losses = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RTO: Duration = Duration::from_millis(100);

    /// Runs the search against a path that carries `mtu` bytes, answering what fits at once;
    /// returns the PLPMTU it settles on and the probes it took.
    fn settle_on(cap: usize, mtu: usize) -> (usize, u32) {
        let mut now = Instant::now();
        let mut pmtu = PathMtu::new(cap);
        pmtu.start(now);
        let mut probes = 0;
        loop {
            if let Some((id, size)) = pmtu.poll_probe(now, RTO) {
                probes += 1;
                if size <= mtu {
                    pmtu.on_probe_ack(now, id);
                }
                continue;
            }
            match pmtu.deadline() {
                Some(deadline) if !matches!(pmtu.phase, Phase::Complete { .. }) => {
                    now = now.max(deadline);
                    pmtu.on_timeout(now);
                }
                _ => break,
            }
        }
        (pmtu.current(), probes)
    }

    #[test]
    fn the_search_settles_within_its_granularity_below_the_paths_mtu() {
        for (cap, mtu) in [(1452, 1280), (9000, 9000), (65_507, 9000), (65_507, 1500)] {
            let (found, _) = settle_on(cap, mtu);
            assert!(
                found <= mtu && found + SEARCH_GRANULARITY > mtu,
                "{cap} {mtu}: {found}"
            );
        }
        // A path that takes the cap: one probe.
        assert_eq!(settle_on(1452, 65_507), (1452, 1));
        // A path that takes nothing above the base: stays there.
        assert_eq!(settle_on(1452, 1200).0, BASE_PLPMTU);
    }

    #[test]
    fn a_size_fails_only_after_max_probes_unanswered() {
        let t0 = Instant::now();
        let mut pmtu = PathMtu::new(1452);
        pmtu.start(t0);
        let mut now = t0;
        for _ in 0..MAX_PROBES {
            assert_eq!(pmtu.poll_probe(now, RTO).map(|(_, s)| s), Some(1452));
            assert_eq!(pmtu.poll_probe(now, RTO), None, "one probe at a time");
            now += RTO;
            pmtu.on_timeout(now);
        }
        // Then the midpoint of what is left.
        assert_eq!(pmtu.poll_probe(now, RTO).map(|(_, s)| s), Some(1326));
        assert_eq!(pmtu.current(), BASE_PLPMTU);
    }

    #[test]
    fn an_answer_to_a_forgotten_probe_proves_nothing() {
        let t0 = Instant::now();
        let mut pmtu = PathMtu::new(1452);
        pmtu.start(t0);
        let (id, _) = pmtu.poll_probe(t0, RTO).unwrap();
        assert!(!pmtu.on_probe_ack(t0, id + 1));
        pmtu.on_timeout(t0 + RTO);
        assert!(!pmtu.on_probe_ack(t0 + RTO, id), "given up on");
        assert_eq!(pmtu.current(), BASE_PLPMTU);
    }

    #[test]
    fn consecutive_losses_of_large_packets_fall_back_to_the_base_and_search_again_later() {
        let t0 = Instant::now();
        let mut pmtu = PathMtu::new(9000);
        pmtu.start(t0);
        let (id, size) = pmtu.poll_probe(t0, RTO).unwrap();
        assert!(pmtu.on_probe_ack(t0, id));
        assert_eq!(pmtu.current(), size);
        // Small losses say nothing about the size; an ack of a large packet breaks the run.
        assert!(!pmtu.on_data_lost(1000));
        assert!(!pmtu.on_data_lost(8000));
        assert!(!pmtu.on_data_lost(8000));
        pmtu.on_data_acked(8000);
        assert!(!pmtu.on_data_lost(8000));
        assert!(!pmtu.on_data_lost(8000));
        assert!(pmtu.on_data_lost(8000), "suspected");
        // The check: probes of the PLPMTU itself, each given a timeout.
        let mut now = t0;
        for _ in 0..MAX_PROBES {
            assert_eq!(pmtu.poll_probe(now, RTO).map(|(_, s)| s), Some(size));
            assert_eq!(pmtu.current(), size, "not yet");
            now += RTO;
            pmtu.on_timeout(now);
        }
        assert_eq!(pmtu.current(), BASE_PLPMTU);
        assert_eq!(pmtu.black_holes(), 1);
        // No probe until the retry time, then the search starts from the base again.
        assert_eq!(pmtu.poll_probe(now, RTO), None);
        assert_eq!(pmtu.deadline(), Some(now + BLACK_HOLE_RETRY));
        assert!(pmtu.poll_probe(now + BLACK_HOLE_RETRY, RTO).is_some());
    }

    #[test]
    fn a_run_of_losses_the_plpmtu_probe_gets_through_is_no_black_hole() {
        let t0 = Instant::now();
        let mut pmtu = PathMtu::new(9000);
        pmtu.start(t0);
        let (id, size) = pmtu.poll_probe(t0, RTO).unwrap();
        pmtu.on_probe_ack(t0, id);
        for _ in 0..BLACK_HOLE_LOSSES {
            pmtu.on_data_lost(8000);
        }
        let (check, _) = pmtu.poll_probe(t0, RTO).unwrap();
        pmtu.on_probe_ack(t0, check);
        pmtu.on_timeout(t0 + RTO * 10);
        assert_eq!(pmtu.current(), size);
        assert_eq!(pmtu.black_holes(), 0);
    }

    #[test]
    fn a_cap_at_the_base_discovers_nothing() {
        let mut pmtu = PathMtu::new(BASE_PLPMTU);
        pmtu.start(Instant::now());
        assert_eq!(pmtu.deadline(), None);
        assert_eq!(pmtu.poll_probe(Instant::now(), RTO), None);
        assert_eq!(PathMtu::new(600).current(), 600);
    }
}
