//! Head-of-line blocking, measured from a run's trace: how often a message had *arrived* at B
//! (every byte of it in B's endpoint) but was not yet handed to B's application because an
//! earlier one was still missing, and for how long.
//!
//! A message's **arrival** is the first moment every piece of it had come out of the link
//! intact: for reliable mode, the last of its fragments (`Data` datagrams, by message and
//! fragment number); for TCP, the last of its bytes (the frame's range of the stream, from the
//! segments' sequence numbers relative to A's SYN, and the frame lengths of what B's application
//! got). Its **delivery** is B's `Event::Message`. The wait is delivery minus arrival; in the
//! simulator both happen within the same step when nothing blocks, so a wait above zero is
//! exactly head-of-line blocking (by a loss, or by jitter that reordered datagrams).
//!
//! Raw mode hands each datagram over as it comes: nothing waits, and the measure does not apply
//! (`None`). Runs over real sockets (`--real`) record no arrivals, so they have no figure either. Caveats, both conservative: a datagram that had a copy corrupted on the link counts
//! as never arrived (the trace does not say which copy was hit), and a redundancy bundle counts
//! only its leading packet (as the trace summarises it). Either can make an arrival later than
//! it was, so a wait shorter; the lab's modes use neither corruption nor redundancy by default.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use udpchat_reliable::Event;

use crate::sim::{Link, PacketSummary, Side, Trace, TraceEvent};
use crate::tcp::frame;

/// What head-of-line blocking cost in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadOfLine {
    /// Messages whose arrival and delivery are both known.
    pub measured: u64,
    /// Of those, the ones that waited after arriving.
    pub blocked: u64,
    /// How long each blocked message waited, in milliseconds, sorted.
    pub waits_ms: Vec<f64>,
}

/// The head-of-line blocking of the run in `trace`; `None` when A sent no reliable data or TCP
/// segments (raw mode: nothing is ever held back), or when the trace does not record arrivals
/// (`--real`: the proxy's deliveries happen in another task, unseen, so nothing can be said).
pub fn measure(trace: &Trace) -> Option<HeadOfLine> {
    let arrivals_recorded = trace
        .events()
        .any(|e| matches!(e, TraceEvent::Delivered { .. }));
    if !arrivals_recorded {
        return None;
    }
    let kind = trace.events().find_map(|e| match e {
        TraceEvent::Transmit {
            side: Side::A,
            packet: p @ (PacketSummary::Data { .. } | PacketSummary::Tcp(_)),
            ..
        } => Some(matches!(p, PacketSummary::Tcp(_))),
        _ => None,
    })?;
    let pairs = if kind { tcp(trace) } else { reliable(trace) };
    let mut hol = HeadOfLine::default();
    for (arrival, delivery) in pairs {
        hol.measured += 1;
        let wait = delivery.saturating_sub(arrival);
        if !wait.is_zero() {
            hol.blocked += 1;
            hol.waits_ms.push(wait.as_secs_f64() * 1000.0);
        }
    }
    hol.waits_ms.sort_unstable_by(f64::total_cmp);
    Some(hol)
}

/// Datagrams (by trace id) that had a copy corrupted on the A-to-B link.
fn corrupted(trace: &Trace) -> HashSet<u64> {
    trace
        .events()
        .filter_map(|e| match e {
            TraceEvent::Corrupted {
                link: Link::AToB,
                datagram,
                ..
            } => Some(*datagram),
            _ => None,
        })
        .collect()
}

/// Reliable mode: (arrival, delivery) of each delivered message whose fragments all arrived.
fn reliable(trace: &Trace) -> Vec<(Duration, Duration)> {
    let corrupted = corrupted(trace);
    let mut fragment_of: HashMap<u64, (u64, u32, u32)> = HashMap::new();
    let mut pieces: HashMap<u64, HashSet<u32>> = HashMap::new();
    let mut arrival: HashMap<u64, Duration> = HashMap::new();
    let mut ids: HashMap<&str, u64> = HashMap::new();
    let mut pairs = Vec::new();
    for entry in &trace.entries {
        match &entry.event {
            TraceEvent::Send {
                side: Side::A,
                text,
                result: Ok(id),
            } => {
                ids.insert(text, *id);
            }
            TraceEvent::Transmit {
                side: Side::A,
                datagram,
                packet:
                    PacketSummary::Data {
                        message,
                        fragment,
                        fragments,
                        ..
                    },
                ..
            } => {
                fragment_of.insert(*datagram, (*message, *fragment, *fragments));
            }
            TraceEvent::Delivered {
                link: Link::AToB,
                datagram,
                ..
            } if !corrupted.contains(datagram) => {
                if let Some(&(message, fragment, fragments)) = fragment_of.get(datagram) {
                    let got = pieces.entry(message).or_default();
                    got.insert(fragment);
                    if got.len() as u32 >= fragments {
                        arrival.entry(message).or_insert(entry.at);
                    }
                }
            }
            TraceEvent::App {
                side: Side::B,
                event: Event::Message { text, .. },
            } => {
                // The first delivery of each message: a later one would be a duplicate.
                if let Some(id) = ids.remove(text.as_str()) {
                    if let Some(&at) = arrival.get(&id) {
                        pairs.push((at, entry.at));
                    }
                }
            }
            _ => {}
        }
    }
    pairs
}

/// TCP: (arrival, delivery) of each frame B's application got, in stream order.
fn tcp(trace: &Trace) -> Vec<(Duration, Duration)> {
    let corrupted = corrupted(trace);
    let mut base: Option<u32> = None;
    let mut ranges: HashMap<u64, (u64, u64)> = HashMap::new();
    // Bytes of the stream B had, with the time each range was complete: (start, end, at).
    let mut arrivals: Vec<(u64, u64, Duration)> = Vec::new();
    let mut offset = 0u64;
    let mut pairs = Vec::new();
    for entry in &trace.entries {
        match &entry.event {
            TraceEvent::Transmit {
                side: Side::A,
                datagram,
                packet: PacketSummary::Tcp(segment),
                ..
            } => {
                if segment.flags.contains('S') {
                    // Data starts one past the SYN's sequence number.
                    base.get_or_insert(segment.seq.wrapping_add(1));
                } else if let (Some(base), true) = (base, segment.len > 0) {
                    let start = u64::from(segment.seq.wrapping_sub(base));
                    ranges.insert(*datagram, (start, start + segment.len as u64));
                }
            }
            TraceEvent::Delivered {
                link: Link::AToB,
                datagram,
                ..
            } if !corrupted.contains(datagram) => {
                if let Some(&(start, end)) = ranges.get(datagram) {
                    arrivals.push((start, end, entry.at));
                }
            }
            TraceEvent::App {
                side: Side::B,
                event: Event::Message {
                    nick, seq, text, ..
                },
            } => {
                let len = frame::encode(seq.unwrap_or(0), nick, text).map_or(0, |f| f.len());
                let (start, end) = (offset, offset + len as u64);
                offset = end;
                if let Some(at) = completed_at(&arrivals, start, end) {
                    pairs.push((at, entry.at));
                }
            }
            _ => {}
        }
    }
    pairs
}

/// The first time the byte range `start..end` was wholly covered by the arrivals (in time
/// order), if it ever was.
fn completed_at(arrivals: &[(u64, u64, Duration)], start: u64, end: u64) -> Option<Duration> {
    let mut covered = Coverage::default();
    for &(s, e, at) in arrivals {
        if e <= start || s >= end {
            continue;
        }
        covered.add(s.max(start), e.min(end));
        if covered.contains(start, end) {
            return Some(at);
        }
    }
    None
}

/// A set of byte ranges, merged.
#[derive(Debug, Default)]
struct Coverage {
    /// Disjoint, sorted, non-adjacent `(start, end)` ranges.
    ranges: Vec<(u64, u64)>,
}

impl Coverage {
    fn add(&mut self, start: u64, end: u64) {
        let (mut start, mut end) = (start, end);
        self.ranges.retain(|&(s, e)| {
            let overlaps = s <= end && e >= start;
            if overlaps {
                start = start.min(s);
                end = end.max(e);
            }
            !overlaps
        });
        let at = self.ranges.partition_point(|&(s, _)| s < start);
        self.ranges.insert(at, (start, end));
    }

    fn contains(&self, start: u64, end: u64) -> bool {
        self.ranges.iter().any(|&(s, e)| s <= start && end <= e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn coverage_merges_ranges_that_touch_or_overlap() {
        let mut c = Coverage::default();
        c.add(10, 20);
        c.add(30, 40);
        assert!(!c.contains(10, 40));
        c.add(20, 30);
        assert!(c.contains(10, 40));
        assert_eq!(c.ranges, vec![(10, 40)]);
    }

    #[test]
    fn a_range_completes_when_its_last_piece_arrives() {
        let ms = Duration::from_millis;
        let arrivals = [(0, 10, ms(1)), (20, 30, ms(2)), (10, 20, ms(5))];
        assert_eq!(completed_at(&arrivals, 20, 30), Some(ms(2)));
        assert_eq!(completed_at(&arrivals, 5, 25), Some(ms(5)));
        assert_eq!(completed_at(&arrivals, 25, 35), None);
    }
}
