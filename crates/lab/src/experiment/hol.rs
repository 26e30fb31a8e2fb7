//! Head-of-line blocking: how often a message had *arrived* at B (every byte of it in B's
//! endpoint) but was not yet handed to B's application because an earlier one was still
//! missing, and for how long. Measured from a simulated run's trace ([`measure`]), or from what
//! the TUN relay saw of a kernel TCP run ([`from_stream`]).
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
//! (`None`). Caveats, both conservative: a datagram that had a copy corrupted on the link counts
//! as never arrived (the trace does not say which copy was hit), and a redundancy bundle counts
//! only its leading packet (as the trace summarises it). Either can make an arrival later than
//! it was, so a wait shorter; the lab's modes use neither corruption nor redundancy by default.
//!
//! **Real runs.** udpchat's modes over `--real` (proxy or `--tun`) record no arrivals: the proxy
//! forwards opaque datagrams in another task, and reading arrivals from the relay would mean
//! decoding udpchat's protocol there, so they have no figure. Kernel TCP runs do: the TUN relay
//! logs every A-to-B data segment it releases towards B (when, and its byte range from A's
//! SYN), B's application notes when it read each frame whole, and [`from_stream`] computes the
//! same arrivals and waits from those. Real time adds what the simulator's steps do not: between
//! the relay writing a segment and B's application reading it lie B's kernel and a task wake-up,
//! so every wait is a little above zero; only waits above [`REAL_HELD_THRESHOLD`] count as held.
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
    // In the simulator both happen within one step when nothing blocks: any wait is a hold.
    let waits = pairs
        .into_iter()
        .map(|(arrival, delivery)| (delivery.saturating_sub(arrival), true));
    Some(HeadOfLine::tally(waits, Duration::ZERO))
}

impl HeadOfLine {
    /// The figure of messages with these waits, each with whether a hole before it could have
    /// held it back: blocked are those that could and waited longer than `threshold`.
    fn tally(waits: impl IntoIterator<Item = (Duration, bool)>, threshold: Duration) -> HeadOfLine {
        let mut hol = HeadOfLine::default();
        for (wait, behind_a_hole) in waits {
            hol.measured += 1;
            if behind_a_hole && wait > threshold {
                hol.blocked += 1;
                hol.waits_ms.push(wait.as_secs_f64() * 1000.0);
            }
        }
        hol.waits_ms.sort_unstable_by(f64::total_cmp);
        hol
    }
}

/// The wait above which a kernel TCP message counts as held ([`from_stream`]): 1 ms.
///
/// Between the relay writing a segment to B's device and B's application reading it lie B's
/// kernel and a task wake-up on the sweep's one thread: measured at 0% loss, 40 to 140 µs for a
/// run alone; with 48 runs at once (3 congestion controls, 2 points, 8 seeds) a median of
/// 0.17 ms, 0.3 ms at p90, and 1.8 ms at p99. A hold lasts until the resend fills the hole,
/// which the kernel sends a duplicate-ack round trip later at the earliest, and more often after
/// a tail-loss probe or a retransmission timeout (at least 200 ms on Linux): milliseconds at
/// least, tens to hundreds with the lab's default 20 ms delay. 1 ms sits between the two. The
/// noise's tail reaches past it (the runs' handshakes all land on the thread at once, so B may
/// start reading a few milliseconds late), which is why a wait alone is not enough to count a
/// message as held: its bytes must also have come out before some earlier byte of the stream
/// had (see [`from_stream`]).
pub const REAL_HELD_THRESHOLD: Duration = Duration::from_millis(1);

/// A stretch of the A-to-B byte stream the link let through towards B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSegment {
    /// When it came out of the link (since the run's start).
    pub at: Duration,
    /// Its first byte's offset in the stream (0 is the byte after A's SYN).
    pub start: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// One message of the stream, in the order A wrote them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFrame {
    /// Bytes of its frame (length prefix and text).
    pub len: u64,
    /// When B's application had read it whole (since the run's start), if it did.
    pub delivered: Option<Duration>,
}

/// Head-of-line blocking of a byte stream: `frames` were written back to back from offset 0,
/// `released` are the segments that came out of the link, in the order they did (resends and
/// duplicates included). A frame's arrival is the first time every byte of it had come out at
/// least once; frames never delivered, or never wholly released (a log cut short), are not
/// measured.
///
/// A message counts as blocked when it was behind a hole, the stream before it completing only
/// after it had arrived (so in-order delivery had to hold it), and it waited longer than
/// `threshold`. The first condition is head-of-line blocking's own definition; in the simulator
/// it follows from any wait above zero, but in real time B's application can be late for other
/// reasons (see [`REAL_HELD_THRESHOLD`]). A frame whose stream before it never wholly came out
/// (a resend's copy lost to the log) is judged by its wait alone.
pub fn from_stream(
    released: &[StreamSegment],
    frames: &[StreamFrame],
    threshold: Duration,
) -> HeadOfLine {
    let first = FirstArrivals::of(
        released
            .iter()
            .map(|s| (s.start, s.start.saturating_add(s.len), s.at)),
    );
    let mut offset = 0u64;
    // When every byte before the current frame had come out (`None`: not all of them did).
    let mut before: Option<Duration> = Some(Duration::ZERO);
    let mut waits = Vec::with_capacity(frames.len());
    for frame in frames {
        let (start, end) = (offset, offset + frame.len);
        offset = end;
        let arrival = first.completed_at(start, end);
        let behind_a_hole = match (before, arrival) {
            (Some(before), Some(arrival)) => before > arrival,
            _ => true,
        };
        before = before.zip(arrival).map(|(b, a)| b.max(a));
        if let Some((arrival, delivered)) = frame
            .delivered
            .and_then(|delivered| first.pair(start, end, delivered))
        {
            waits.push((delivered.saturating_sub(arrival), behind_a_hole));
        }
    }
    HeadOfLine::tally(waits, threshold)
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
    // Each frame B's application got: its range of the stream, and when.
    let mut frames: Vec<(u64, u64, Duration)> = Vec::new();
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
                frames.push((start, end, entry.at));
            }
            _ => {}
        }
    }
    let first = FirstArrivals::of(arrivals);
    frames
        .into_iter()
        .filter_map(|(start, end, delivered)| first.pair(start, end, delivered))
        .collect()
}

/// When each byte of a stream first came out of the link.
#[derive(Debug, Default)]
struct FirstArrivals {
    /// Disjoint `(start, end, at)` ranges, sorted by offset: every byte in `start..end` first
    /// arrived at `at`. Bytes in none of them never arrived.
    parts: Vec<(u64, u64, Duration)>,
}

impl FirstArrivals {
    /// From `(start, end, at)` arrivals in time order (resends and duplicates included): each
    /// one adds the bytes no earlier one had brought.
    fn of(arrivals: impl IntoIterator<Item = (u64, u64, Duration)>) -> FirstArrivals {
        let mut covered = Coverage::default();
        let mut parts = Vec::new();
        for (start, end, at) in arrivals {
            if start >= end {
                continue;
            }
            parts.extend(
                covered
                    .uncovered(start, end)
                    .into_iter()
                    .map(|(s, e)| (s, e, at)),
            );
            covered.add(start, end);
        }
        parts.sort_unstable_by_key(|&(start, _, _)| start);
        FirstArrivals { parts }
    }

    /// The first time every byte of `start..end` had arrived, if every one did.
    fn completed_at(&self, start: u64, end: u64) -> Option<Duration> {
        let mut next = self.parts.partition_point(|&(_, e, _)| e <= start);
        let (mut cursor, mut latest) = (start, None);
        while cursor < end {
            let &(s, e, at) = self.parts.get(next).filter(|&&(s, _, _)| s <= cursor)?;
            debug_assert!(e > cursor && s <= cursor);
            latest = latest.max(Some(at));
            cursor = e;
            next += 1;
        }
        latest
    }

    /// (arrival, delivery) of the frame `start..end` delivered at `delivered`, if its arrival
    /// was seen. One complete only after its delivery was not seen arriving: the copy B got was
    /// not counted (a corrupted one's twin, conservatively), so it is left out.
    fn pair(&self, start: u64, end: u64, delivered: Duration) -> Option<(Duration, Duration)> {
        self.completed_at(start, end)
            .filter(|&arrival| arrival <= delivered)
            .map(|arrival| (arrival, delivered))
    }
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

    /// The parts of `start..end` not in the set, in order.
    fn uncovered(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut cursor = start;
        let first = self.ranges.partition_point(|&(_, e)| e <= start);
        for &(s, e) in &self.ranges[first..] {
            if s >= end {
                break;
            }
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn coverage_merges_ranges_that_touch_or_overlap_and_names_its_gaps() {
        let mut c = Coverage::default();
        c.add(10, 20);
        c.add(30, 40);
        let gaps = |c: &Coverage, s, e| c.uncovered(s, e);
        assert_eq!(gaps(&c, 0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(gaps(&c, 15, 35), vec![(20, 30)]);
        assert_eq!(gaps(&c, 12, 18), vec![]);
        c.add(20, 30);
        assert_eq!(c.ranges, vec![(10, 40)]);
        assert_eq!(gaps(&c, 5, 45), vec![(5, 10), (40, 45)]);
    }

    #[test]
    fn a_range_completes_when_its_last_piece_arrives() {
        let ms = Duration::from_millis;
        let arrivals = [
            (0, 10, ms(1)),
            (20, 30, ms(2)),
            (5, 20, ms(5)),
            (0, 40, ms(9)),
        ];
        let first = FirstArrivals::of(arrivals);
        assert_eq!(first.completed_at(20, 30), Some(ms(2)));
        assert_eq!(first.completed_at(5, 25), Some(ms(5)));
        assert_eq!(first.completed_at(0, 10), Some(ms(1)));
        assert_eq!(first.completed_at(25, 35), Some(ms(9)));
        assert_eq!(first.completed_at(25, 45), None);
        assert_eq!(
            FirstArrivals::of(arrivals[..3].iter().copied()).completed_at(25, 35),
            None
        );
    }

    fn seg(at_ms: u64, start: u64, len: u64) -> StreamSegment {
        StreamSegment {
            at: Duration::from_millis(at_ms),
            start,
            len,
        }
    }

    fn frame(len: u64, delivered_ms: Option<u64>) -> StreamFrame {
        StreamFrame {
            len,
            delivered: delivered_ms.map(Duration::from_millis),
        }
    }

    const ONE_MS: Duration = Duration::from_millis(1);

    #[test]
    fn frames_read_as_they_arrive_are_measured_and_none_is_held() {
        // Three 10-byte frames, one segment each, each read within the threshold.
        let released = [seg(0, 0, 10), seg(10, 10, 10), seg(20, 20, 10)];
        let frames = [frame(10, Some(0)), frame(10, Some(11)), frame(10, Some(20))];
        let hol = from_stream(&released, &frames, ONE_MS);
        assert_eq!(
            hol,
            HeadOfLine {
                measured: 3,
                blocked: 0,
                waits_ms: vec![]
            }
        );
    }

    #[test]
    fn a_lost_segment_holds_the_later_frames_until_its_resend() {
        // Frame 1 (bytes 10..20) is lost at 10 ms and resent at 250 ms; frames 2 and 3 arrive at
        // 20 and 30 ms and are read with it, at 251 ms.
        let released = [
            seg(0, 0, 10),
            seg(20, 20, 10),
            seg(30, 30, 10),
            seg(250, 10, 10),
        ];
        let frames = [
            frame(10, Some(0)),
            frame(10, Some(251)),
            frame(10, Some(251)),
            frame(10, Some(251)),
        ];
        let hol = from_stream(&released, &frames, ONE_MS);
        // Frame 1 itself waited 1 ms (not above the threshold); 2 and 3 were held.
        assert_eq!(
            hol,
            HeadOfLine {
                measured: 4,
                blocked: 2,
                waits_ms: vec![221.0, 231.0]
            }
        );
        // Frame 1 was the hole, not behind one: even with no threshold its millisecond is not a
        // hold.
        assert_eq!(from_stream(&released, &frames, Duration::ZERO).blocked, 2);
    }

    #[test]
    fn a_late_read_with_no_hole_before_it_is_not_a_hold() {
        // Frames 0 and 1 came out in order; B's application read them 30 ms later (it was busy,
        // or not reading yet): both waited past the threshold, neither was held back.
        let released = [seg(1, 0, 10), seg(2, 10, 10)];
        let frames = [frame(10, Some(32)), frame(10, Some(32))];
        let hol = from_stream(&released, &frames, ONE_MS);
        assert_eq!((hol.measured, hol.blocked), (2, 0));
        // Frame 1 coming out first makes it a hold of 30 ms.
        let released = [seg(1, 10, 10), seg(2, 0, 10)];
        let hol = from_stream(&released, &frames, ONE_MS);
        assert_eq!(
            (hol.measured, hol.blocked, hol.waits_ms),
            (2, 1, vec![31.0])
        );
    }

    #[test]
    fn a_frame_arrives_when_overlapping_resends_have_covered_all_of_it() {
        // Frame 0 is 0..30. The first send covers 0..20 only (the rest lost), a resend covers
        // 10..25 (overlapping what came), a second one 20..40 (the rest, and frame 1 too).
        let released = [seg(1, 0, 20), seg(5, 10, 15), seg(9, 20, 20)];
        let frames = [frame(30, Some(9)), frame(10, Some(9))];
        let hol = from_stream(&released, &frames, ONE_MS);
        assert_eq!((hol.measured, hol.blocked), (2, 0));
        // A frame partly released and never completed is not measured, nor is one not delivered.
        let released = [seg(1, 0, 20), seg(5, 10, 15), seg(6, 30, 10)];
        let frames = [frame(30, Some(9)), frame(10, None)];
        assert_eq!(from_stream(&released, &frames, ONE_MS).measured, 0);
    }

    #[test]
    fn the_sequence_wraps_in_offsets_not_in_frames() {
        // The relay gives offsets from A's SYN with wrapping arithmetic: a stream whose ISN is
        // just below 2^32 still starts at 0 and runs on past the wrap without a jump.
        let isn = u32::MAX - 3;
        let base = isn.wrapping_add(1);
        let offset = |seq: u32| u64::from(seq.wrapping_sub(base));
        let released = [
            seg(0, offset(base), 6),
            seg(300, offset(base.wrapping_add(6)), 6),
            seg(10, offset(base.wrapping_add(12)), 6),
        ];
        assert_eq!(released[2].start, 12);
        let frames = [frame(6, Some(0)), frame(6, Some(300)), frame(6, Some(300))];
        let hol = from_stream(&released, &frames, ONE_MS);
        assert_eq!(
            hol,
            HeadOfLine {
                measured: 3,
                blocked: 1,
                waits_ms: vec![290.0]
            }
        );
    }
}
