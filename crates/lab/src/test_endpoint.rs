//! A minimal endpoint for the lab's own unit tests, so they do not depend on the transports.
//!
//! Each message is one datagram `"<id>:<text>"` to the peer; every datagram received becomes an
//! `Event::Message` (with `seq` parsed from the prefix). With `echo` on, each received message is
//! sent back as `"echo <text>"`. An optional heartbeat timer exercises timers in the simulator.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_reliable::endpoint::NickError;
use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats, Transmit};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct LineEndpoint {
    peer: Option<SocketAddr>,
    echo: bool,
    heartbeat: Option<(Duration, u32)>,
    next_beat: Option<Instant>,
    pub(crate) nick: String,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_id: u64,
    stats: Stats,
    closing: bool,
}

impl LineEndpoint {
    pub(crate) fn new(peer: Option<SocketAddr>) -> LineEndpoint {
        LineEndpoint {
            peer,
            echo: false,
            heartbeat: None,
            next_beat: None,
            nick: String::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            stats: Stats::default(),
            closing: false,
        }
    }

    pub(crate) fn echoing(mut self) -> LineEndpoint {
        self.echo = true;
        self
    }

    /// Sends `"beat"` every `every`, `count` times, starting `every` after `start`.
    pub(crate) fn heartbeat(mut self, start: Instant, every: Duration, count: u32) -> LineEndpoint {
        self.heartbeat = Some((every, count));
        self.next_beat = Some(start + every);
        self
    }

    fn queue(&mut self, text: &str) -> Result<MessageId, SendError> {
        let peer = self.peer.ok_or(SendError::NoPeer)?;
        let id = MessageId(self.next_id);
        self.next_id += 1;
        self.stats.messages_sent += 1;
        self.outbox.push_back(Transmit {
            destination: peer,
            payload: format!("{}:{text}", id.0).into_bytes(),
        });
        Ok(id)
    }
}

impl Endpoint for LineEndpoint {
    fn send(&mut self, _now: Instant, text: &str) -> Result<MessageId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        self.queue(text)
    }

    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.peer.get_or_insert(from);
        let line = String::from_utf8_lossy(datagram).into_owned();
        let (seq, text) = match line.split_once(':') {
            Some((seq, text)) => (seq.parse().ok(), text.to_owned()),
            None => (None, line.clone()),
        };
        self.stats.messages_received += 1;
        if self.echo && !text.starts_with("echo ") {
            let _ = self.queue(&format!("echo {text}"));
        }
        self.events.push_back(Event::Message {
            from,
            nick: String::new(),
            seq,
            text,
        });
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let t = self.outbox.pop_front()?;
        self.stats.datagrams_sent += 1;
        *buf = t.payload;
        Some(t.destination)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_beat
    }

    fn timer_name(&self) -> Option<&'static str> {
        self.next_beat.map(|_| "heartbeat")
    }

    fn handle_timeout(&mut self, now: Instant) {
        let Some(due) = self.next_beat else { return };
        if due > now {
            return;
        }
        let _ = self.queue("beat");
        self.next_beat = match &mut self.heartbeat {
            Some((every, count)) if *count > 1 => {
                *count -= 1;
                Some(due + *every)
            }
            _ => None,
        };
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// No half-close in this mode: finishing is closing.
    fn finish(&mut self, now: Instant) {
        self.close(now);
    }
    fn close(&mut self, _now: Instant) {
        self.closing = true;
        self.next_beat = None;
    }

    fn is_closed(&self) -> bool {
        self.closing && self.outbox.is_empty()
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }

    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        self.nick = nick.to_owned();
        Ok(())
    }
}
