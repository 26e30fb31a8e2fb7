//! [`KcpEndpoint`]: the `kcp` crate (a port of the C original) behind udpchat's [`Endpoint`].
//!
//! KCP is already sans-IO: `input` takes a datagram, `send`/`recv` move messages, `update(ms)`
//! runs its timers and writes datagrams to an output writer, and `check(ms)` says how long until
//! `update` has work. The adapter maps that onto [`Endpoint`] so the same harness drives KCP,
//! QUIC and udpchat alike: the writer is an outbox that `poll_transmit` drains, KCP's millisecond
//! clock is the virtual [`Instant`] minus an epoch, and `poll_timeout` is `now + check(now)`.
//!
//! KCP runs in message mode (each `send` arrives as one `recv`, like a udpchat message), with a
//! 1200-byte MTU like the other systems. It has no handshake and no per-message acknowledgement
//! events; it says the peer is gone when one segment has been sent `dead_link` (20) times
//! ([`Event::PeerUnreachable`] here).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kcp::Kcp;
use serde::Serialize;
use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats};

/// The conversation id both sides use.
const CONV: u32 = 0x5544_5043;

/// KCP refuses a message of this many fragments or more (its receive window's floor, 128).
const MAX_FRAGMENTS: usize = 127;

/// Which of KCP's documented configurations to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KcpProfile {
    /// The README's "fastest" mode: `nodelay(1, 10, 2, 1)` (no-delay RTO, 10 ms interval, fast
    /// resend after 2 skips, no congestion window), with 128-packet windows as KCP's own
    /// `test.cpp` uses.
    Fast,
    /// Everything as `ikcp_create` leaves it: 100 ms interval, normal RTO, no fast resend,
    /// congestion window on, 32-packet send window.
    Default,
}

/// Datagrams KCP wrote, waiting for `poll_transmit`. KCP writes each datagram with one call.
#[derive(Debug, Default)]
struct Outbox(Rc<RefCell<VecDeque<Vec<u8>>>>);

impl io::Write for Outbox {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().push_back(data.to_vec());
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A KCP session as an [`Endpoint`]. Both sides are configured alike; there is no handshake.
pub struct KcpEndpoint {
    kcp: Kcp<Outbox>,
    outbox: Rc<RefCell<VecDeque<Vec<u8>>>>,
    epoch: Instant,
    peer: SocketAddr,
    next_update: Instant,
    /// The millisecond of the last `update`.
    last_update: Option<u32>,
    events: VecDeque<Event>,
    stats: Stats,
    next_message: u64,
    dead_reported: bool,
    closed: bool,
    recv_buf: Vec<u8>,
}

impl std::fmt::Debug for KcpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KcpEndpoint")
            .field("peer", &self.peer)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl KcpEndpoint {
    /// A session with `peer`, whose millisecond clock starts at `epoch`.
    pub fn new(profile: KcpProfile, peer: SocketAddr, epoch: Instant) -> KcpEndpoint {
        let outbox = Rc::new(RefCell::new(VecDeque::new()));
        let mut kcp = Kcp::new(CONV, Outbox(Rc::clone(&outbox)));
        // 1200 is well above KCP's floor of 50 bytes, so this cannot fail.
        let _ = kcp.set_mtu(1200);
        match profile {
            KcpProfile::Fast => {
                kcp.set_nodelay(true, 10, 2, true);
                kcp.set_wndsize(128, 128);
            }
            KcpProfile::Default => {}
        }
        KcpEndpoint {
            kcp,
            outbox,
            epoch,
            peer,
            // KCP wants its first `update` at once.
            next_update: epoch,
            last_update: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            next_message: 0,
            dead_reported: false,
            closed: false,
            recv_buf: vec![0; 1 << 20],
        }
    }

    /// The largest message KCP's message mode accepts with this MTU.
    pub fn max_message(&self) -> usize {
        self.kcp.mss() * MAX_FRAGMENTS
    }

    fn millis(&self, now: Instant) -> u32 {
        // KCP's clock is a wrapping u32 of milliseconds; runs here last far less than 49 days.
        u32::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u32::MAX)
    }

    fn reschedule(&mut self, now: Instant) {
        let current = self.millis(now);
        let mut wait = self.kcp.check(current);
        if wait == 0 && self.last_update == Some(current) {
            // `check` says "now" whenever a segment is due, but `update` only flushes at its
            // interval: KCP's clock has millisecond ticks, so the next useful call is the next
            // tick (a C driver calling `ikcp_update` every millisecond does the same).
            wait = 1;
        }
        self.next_update = self.epoch + Duration::from_millis(u64::from(current) + u64::from(wait));
    }

    fn drain_received(&mut self) {
        loop {
            match self.kcp.recv(&mut self.recv_buf) {
                Ok(len) => {
                    let text = String::from_utf8_lossy(&self.recv_buf[..len]).into_owned();
                    self.stats.messages_received += 1;
                    self.events.push_back(Event::Message {
                        from: self.peer,
                        nick: String::new(),
                        seq: None,
                        text,
                    });
                }
                Err(kcp::Error::UserBufTooSmall) => {
                    // Larger than any message we accept to send: drop it rather than grow.
                    let mut huge = vec![0; self.kcp.peeksize().unwrap_or(0)];
                    let _ = self.kcp.recv(&mut huge);
                    self.stats.dropped_malformed += 1;
                }
                Err(_) => break,
            }
        }
    }
}

impl Endpoint for KcpEndpoint {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        if self.closed {
            return Err(SendError::Closed);
        }
        let max = self.max_message();
        if text.len() > max {
            return Err(SendError::TooLong {
                len: text.len(),
                max,
            });
        }
        self.kcp
            .send(text.as_bytes())
            .map_err(|_| SendError::TooLong {
                len: text.len(),
                max,
            })?;
        let id = MessageId(self.next_message);
        self.next_message += 1;
        self.stats.messages_sent += 1;
        self.reschedule(now);
        Ok(id)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        if from != self.peer {
            self.stats.dropped_foreign += 1;
            return;
        }
        if self.kcp.input(datagram).is_err() {
            self.stats.dropped_malformed += 1;
        }
        self.drain_received();
        self.reschedule(now);
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let payload = self.outbox.borrow_mut().pop_front()?;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += payload.len() as u64;
        *buf = payload;
        Some(self.peer)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.next_update)
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        // An output error cannot happen: the outbox never refuses a write.
        let current = self.millis(now);
        let _ = self.kcp.update(current);
        self.last_update = Some(current);
        self.drain_received();
        if self.kcp.is_dead_link() && !self.dead_reported {
            self.dead_reported = true;
            self.events.push_back(Event::PeerUnreachable);
        }
        self.reschedule(now);
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// No half-close in this mode: finishing is closing.
    fn finish(&mut self, now: Instant) {
        self.close(now);
    }
    fn close(&mut self, _now: Instant) {
        // KCP has no close handshake: the session simply stops.
        if !self.closed {
            self.closed = true;
            self.events.push_back(Event::Closed);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed && self.outbox.borrow().is_empty()
    }

    fn peer(&self) -> Option<SocketAddr> {
        Some(self.peer)
    }

    fn stats(&self) -> Stats {
        Stats {
            rtt_smoothed: None,
            cwnd: 0,
            peer_window: u64::from(self.kcp.rmt_wnd()),
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::net::{net, LinkSpec};
    use udpchat_lab::impairment::ImpairmentConfig;
    use udpchat_lab::probability::Probability;
    use udpchat_lab::sim::{Side, ADDR_A, ADDR_B};

    fn session_over_a_lossy_link(profile: KcpProfile) {
        let epoch = Instant::now();
        let link = ImpairmentConfig {
            loss: Probability::new(0.2).unwrap(),
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(10),
            ..Default::default()
        };
        let a = KcpEndpoint::new(profile, ADDR_B, epoch);
        let b = KcpEndpoint::new(profile, ADDR_A, epoch);
        let mut net = net(epoch, LinkSpec::symmetric(link, 7), a, b);
        let sent: Vec<String> = (0..200)
            .map(|i| format!("message {i}: {}", "k".repeat(i * 37 % 3000)))
            .collect();
        for text in &sent {
            net.send(Side::A, text).unwrap();
        }
        let mut received = Vec::new();
        let limit = epoch + Duration::from_secs(600);
        while received.len() < sent.len() && net.advance_within(None, limit) {
            for (side, event) in net.take_events() {
                if let (Side::B, Event::Message { text, .. }) = (side, event) {
                    received.push(text);
                }
            }
        }
        assert_eq!(received, sent, "every message once, intact, in order");
        assert!(net.wire(Side::A).datagrams > net.wire(Side::A).delivered);
        assert!(net.steps() < 1_000_000, "{} steps", net.steps());
    }

    #[test]
    fn a_fast_kcp_session_delivers_everything_intact_over_a_lossy_link() {
        session_over_a_lossy_link(KcpProfile::Fast);
    }

    #[test]
    fn a_default_kcp_session_delivers_everything_intact_over_a_lossy_link() {
        session_over_a_lossy_link(KcpProfile::Default);
    }
}
