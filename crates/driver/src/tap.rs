//! [`Tapped`]: any endpoint, with every datagram it sends and receives captured to a pcap file
//! and traced (one line each under the `tracing` target `udpchat::wire`).
//!
//! A wrapper rather than hooks in [`crate::run`]: whoever drives an endpoint (the line chat, the
//! chat screen) drives the tap too, with no change to them, as the lab's impairment wraps an
//! endpoint. It sees what crosses the socket: wrapped around an impaired endpoint, it records what
//! the impairment lets out, and everything that arrives before the impairment drops some of it.
//! Times are the driver's own clock reads (the `now` it passes in); a sent datagram is recorded
//! when the endpoint hands it to the driver, just before the socket call, so one the system then
//! refuses (reported as a socket error) is in the capture too. The datagrams an endpoint drops
//! (bad checksum, a foreign connection) are traced with the reason, from its `Dropped` events.

use std::net::SocketAddr;
use std::time::Instant;

use udpchat_lab::capture::CaptureFile;
use udpchat_lab::pcap::Datagram;
use udpchat_lab::wire::{describe, TARGET};
use udpchat_reliable::{Endpoint, Event, MessageId, NickError, SendError, Stats};

/// An endpoint whose datagrams are captured and traced.
#[derive(Debug)]
pub struct Tapped<E> {
    inner: E,
    /// The socket's own address: the source of what is sent, the destination of what arrives.
    local: SocketAddr,
    capture: Option<CaptureFile>,
}

impl<E: Endpoint> Tapped<E> {
    /// Taps `inner`, whose socket is bound at `local`, writing to `capture` if given (tracing
    /// is on whenever a subscriber enables the `udpchat::wire` target at debug level).
    pub fn new(inner: E, local: SocketAddr, capture: Option<CaptureFile>) -> Tapped<E> {
        Tapped {
            inner,
            local,
            capture,
        }
    }

    /// Records one datagram.
    fn saw(&self, now: Instant, sent: bool, peer: SocketAddr, bytes: &[u8]) {
        let (from, to, note) = if sent {
            (self.local, peer, "sent")
        } else {
            (peer, self.local, "received")
        };
        if let Some(capture) = &self.capture {
            capture.record(
                now,
                &Datagram {
                    time: std::time::Duration::ZERO,
                    from,
                    to,
                    payload: bytes,
                    fate: None,
                    note: Some(note),
                },
            );
        }
        let arrow = if sent { "to" } else { "from" };
        tracing::debug!(
            target: TARGET,
            "{note} {len} B {arrow} {peer}: {packet}",
            len = bytes.len(),
            packet = describe(bytes),
        );
    }
}

impl<E: Endpoint> Endpoint for Tapped<E> {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        self.inner.send(now, text)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.saw(now, false, from, datagram);
        self.inner.handle_datagram(now, from, datagram);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let to = self.inner.poll_transmit(now, buf)?;
        self.saw(now, true, to, buf);
        Some(to)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn timer_name(&self) -> Option<&'static str> {
        self.inner.timer_name()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_event(&mut self) -> Option<Event> {
        let event = self.inner.poll_event()?;
        if let Event::Dropped {
            from,
            cause,
            detail,
        } = &event
        {
            tracing::debug!(target: TARGET, "dropped a datagram from {from} ({cause:?}): {detail}");
        }
        Some(event)
    }

    fn close(&mut self, now: Instant) {
        self.inner.close(now);
    }

    fn finish(&mut self, now: Instant) {
        self.inner.finish(now);
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.inner.peer()
    }

    fn stats(&self) -> Stats {
        self.inner.stats()
    }

    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        self.inner.set_nick(nick)
    }
}
