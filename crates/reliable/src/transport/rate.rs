//! [`DeliveryRate`]: how fast the path delivers, measured from acknowledgements, for controllers
//! that steer by a model of the path (a BBR-like one) rather than by loss.
//!
//! Written from draft-cheng-iccrg-delivery-rate-estimation. Each packet is stamped when sent
//! ([`RateStamp`]) with how many bytes had been delivered by then and when; when it is
//! acknowledged, the bytes delivered since its stamp over the time since gives a sample of the
//! delivery rate. The interval is the longer of the send interval (from the first packet of the
//! flight to this one) and the ack interval (from the stamp's delivery to now), so that neither a
//! burst of sends nor a burst of acks (ack compression) inflates the rate. A sample shorter than
//! the minimum RTT is discarded: it covers too few packets to say anything.
//!
//! A sample taken while the sender had nothing to send is marked application-limited: it tells a
//! lower bound of the path's rate, not its rate, so a controller may use it only when it beats
//! its estimate. The sender marks the point ([`DeliveryRate::on_app_limited`]); every packet sent
//! before the bytes in flight then are delivered carries the mark.

use std::time::{Duration, Instant};

use super::congestion::DeliverySample;

/// What a packet remembers of the delivery state when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateStamp {
    /// Bytes delivered (acknowledged) before it was sent.
    delivered: u64,
    /// When the last of those was acknowledged.
    delivered_time: Instant,
    /// When the first packet of the flight it belongs to was sent.
    first_sent_time: Instant,
    /// Sent while the sender was application-limited.
    app_limited: bool,
}

/// The largest (by `delivered`) stamp among the packets one ack acknowledged: the one the sample
/// is taken from.
#[derive(Debug, Clone, Copy)]
struct Newest {
    stamp: RateStamp,
    sent: Instant,
}

/// The sender's delivery-rate state (draft-cheng-iccrg-delivery-rate-estimation's `C.*`).
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRate {
    /// Bytes acknowledged so far in this session.
    delivered: u64,
    delivered_time: Option<Instant>,
    first_sent_time: Option<Instant>,
    /// Nonzero while application-limited: the `delivered` count that ends the episode.
    app_limited_until: u64,
    /// The sample being built from the current ack.
    newest: Option<Newest>,
}

impl DeliveryRate {
    pub(crate) fn new() -> Self {
        DeliveryRate {
            delivered: 0,
            delivered_time: None,
            first_sent_time: None,
            app_limited_until: 0,
            newest: None,
        }
    }

    /// A packet goes on the wire at `now` with `in_flight` bytes already out: its stamp. A packet
    /// sent into an empty pipe restarts both intervals (an idle period is not delivery time).
    pub(crate) fn on_send(&mut self, now: Instant, in_flight: u64) -> RateStamp {
        if in_flight == 0 || self.delivered_time.is_none() {
            self.first_sent_time = Some(now);
            self.delivered_time = Some(now);
        }
        RateStamp {
            delivered: self.delivered,
            delivered_time: self.delivered_time.unwrap_or(now),
            first_sent_time: self.first_sent_time.unwrap_or(now),
            app_limited: self.app_limited_until != 0,
        }
    }

    /// The sender has nothing more to send and its window is not full: what is sent from now
    /// until the current flight is delivered is application-limited.
    pub(crate) fn on_app_limited(&mut self, in_flight: u64) {
        self.app_limited_until = (self.delivered + in_flight).max(1);
    }

    /// A packet of `size` bytes, stamped `stamp` and last sent at `sent`, was acknowledged at
    /// `now` (for the first time).
    pub(crate) fn on_acked(&mut self, now: Instant, stamp: RateStamp, sent: Instant, size: u64) {
        self.delivered += size;
        self.delivered_time = Some(now);
        if self
            .newest
            .is_none_or(|n| stamp.delivered >= n.stamp.delivered)
        {
            self.newest = Some(Newest { stamp, sent });
            // The next flight's send interval starts where this packet's left off.
            self.first_sent_time = Some(sent);
        }
    }

    /// The sample of the ack just processed (after every `on_acked` of it), with `in_flight`
    /// bytes still out; `None` if it acknowledged nothing new. The sample's
    /// [`DeliverySample::rate`] is `None` when its interval is shorter than `min_rtt`.
    pub(crate) fn take_sample(
        &mut self,
        now: Instant,
        min_rtt: Option<Duration>,
        in_flight: u64,
    ) -> Option<DeliverySample> {
        let newest = self.newest.take()?;
        if self.app_limited_until != 0 && self.delivered > self.app_limited_until {
            self.app_limited_until = 0;
        }
        let stamp = newest.stamp;
        let send_elapsed = newest.sent.saturating_duration_since(stamp.first_sent_time);
        let ack_elapsed = now.saturating_duration_since(stamp.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        let valid = !interval.is_zero() && min_rtt.is_none_or(|m| interval >= m);
        Some(DeliverySample {
            delivered: self.delivered - stamp.delivered,
            interval: valid.then_some(interval),
            app_limited: stamp.app_limited,
            prior_delivered: stamp.delivered,
            delivered_total: self.delivered,
            bytes_in_flight: in_flight,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_steady_flight_measures_its_rate() {
        // Ten 1,000-byte packets sent 1 ms apart, each acked 20 ms after it left: 1 MB/s.
        let t0 = Instant::now();
        let mut rate = DeliveryRate::new();
        let stamps: Vec<_> = (0..10u32)
            .map(|i| rate.on_send(t0 + MS * i, u64::from(i) * 1000))
            .collect();
        let mut last = None;
        for (i, stamp) in stamps.into_iter().enumerate() {
            let sent = t0 + MS * i as u32;
            rate.on_acked(sent + MS * 20, stamp, sent, 1000);
            last = rate.take_sample(sent + MS * 20, Some(MS * 20), 0);
        }
        let sample = last.unwrap();
        assert_eq!(sample.delivered_total, 10_000);
        // The last packet's stamp saw nothing delivered: 10 kB over its 9 ms send interval vs
        // 29 ms of acks; the longer wins.
        assert_eq!(sample.delivered, 10_000);
        assert_eq!(sample.interval, Some(MS * 29));
        assert_eq!(sample.rate(), Some(10_000 * 1000 / 29));
    }

    #[test]
    fn a_sample_shorter_than_the_minimum_rtt_has_no_rate() {
        let t0 = Instant::now();
        let mut rate = DeliveryRate::new();
        let stamp = rate.on_send(t0, 0);
        rate.on_acked(t0 + MS * 5, stamp, t0, 1000);
        let sample = rate.take_sample(t0 + MS * 5, Some(MS * 10), 0).unwrap();
        assert_eq!(sample.rate(), None);
        assert_eq!(sample.delivered, 1000);
        assert!(
            rate.take_sample(t0 + MS * 6, None, 0).is_none(),
            "one per ack"
        );
    }

    #[test]
    fn packets_sent_while_application_limited_are_marked_until_the_flight_is_delivered() {
        let t0 = Instant::now();
        let mut rate = DeliveryRate::new();
        rate.on_app_limited(0);
        let a = rate.on_send(t0, 0);
        assert!(a.app_limited);
        rate.on_acked(t0 + MS * 10, a, t0, 100);
        assert!(rate.take_sample(t0 + MS * 10, None, 0).unwrap().app_limited);
        // The episode ended with that delivery: the next packet is not marked.
        assert!(!rate.on_send(t0 + MS * 11, 0).app_limited);
    }
}
