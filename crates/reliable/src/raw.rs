//! Raw mode: each chat line is one UDP datagram, sent once, never acknowledged or resent.
//!
//! This is UDP as it is, made visible. [`RawEndpoint`] implements the same sans-IO [`Endpoint`]
//! surface as the reliable transport, so the driver, the proxy tests and the lab's simulator run
//! it alike. Two flavours, chosen by [`RawConfig::plain`]:
//!
//! - **framed** (the default): each line travels as a [`Packet::Raw`] with the sender's nick and
//!   a per-sender sequence number counting from 0 (a line that is refused takes no number). The
//!   receiver keeps a bounded [`SeenWindow`] of what arrived and reports what the network did:
//!   [`Event::Gap`] when numbers were skipped (`Stats::gaps` counts the missing messages),
//!   [`Event::Reordered`] when a skipped one turns up late (delivered, counted in
//!   `Stats::reordered`: so `gaps − reordered` is what is still missing), and
//!   [`Event::Duplicate`] when one arrives twice. **A duplicate is not delivered again**: the
//!   event says the network duplicated it, and the application sees each line once. Messages
//!   lost at the very end of a chat are never reported: no later number reveals them. A peer
//!   that restarts (its numbers go back far below the highest seen, or a number comes back with
//!   different bytes) gets [`Event::PeerRestarted`] and a fresh accounting; see [`seen`] for the
//!   exact rule.
//! - **plain** (`--plain`): bare UTF-8 datagrams with no framing, to talk to `nc -u`, `socat` or
//!   a Python socket. A sent line goes out with a trailing newline (as `nc` sends lines); a
//!   received datagram loses one trailing `\n` or `\r\n`, and invalid UTF-8 is replaced with
//!   U+FFFD. No numbers, so no loss accounting: events carry `seq: None` and an empty nick.
//!
//! Without a configured peer, the first sender of a valid datagram becomes the peer
//! ([`Event::Peer`]), as `nc -u -l` does; from then on datagrams from any other address are
//! dropped (`dropped_foreign`). Every dropped datagram is counted and reported as
//! [`Event::Dropped`]. Raw mode promises nothing, so [`Endpoint::close`] is finished as soon as
//! the datagrams already accepted have been handed out.

pub(crate) mod seen;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use udpchat_core::{
    DecodeError, EncodeError, Packet, RawMessage, DEFAULT_MAX_DATAGRAM, MAX_UDP_PAYLOAD,
    TRAILER_LEN,
};

use crate::endpoint::{
    DropCause, Endpoint, Event, MessageId, NickError, SendError, Stats, Transmit,
};
use seen::{Arrival, SeenWindow};

/// Raw mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawConfig {
    /// Our nickname, sent with every framed message. Default `"anon"`.
    pub nick: String,
    /// Where to send. `None` (the default): wait for someone to write first and answer them.
    pub peer: Option<SocketAddr>,
    /// Largest datagram we send, in bytes; longer lines are refused with
    /// [`SendError::TooLong`]. Default [`DEFAULT_MAX_DATAGRAM`] (1200).
    pub max_datagram: usize,
    /// Bare UTF-8 datagrams, no framing and no sequence numbers. Default `false`.
    pub plain: bool,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            nick: "anon".to_owned(),
            peer: None,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            plain: false,
        }
    }
}

/// The raw-mode endpoint: one datagram per line, and an honest account of what arrived.
#[derive(Debug)]
pub struct RawEndpoint {
    config: RawConfig,
    peer: Option<SocketAddr>,
    /// Number of our next framed message.
    next_seq: u64,
    /// What the peer's numbers did.
    seen: SeenWindow,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    closing: bool,
    closed_reported: bool,
    stats: Stats,
}

impl RawEndpoint {
    /// A new endpoint with the given settings.
    pub fn new(config: RawConfig) -> Self {
        RawEndpoint {
            peer: config.peer,
            config,
            next_seq: 0,
            seen: SeenWindow::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            closing: false,
            closed_reported: false,
            stats: Stats::default(),
        }
    }

    /// The settings this endpoint runs with.
    pub fn config(&self) -> &RawConfig {
        &self.config
    }

    fn max_datagram(&self) -> usize {
        self.config.max_datagram.min(MAX_UDP_PAYLOAD)
    }

    /// The datagram for `text`, numbered `seq` when framed.
    fn datagram(&self, seq: u64, text: &str) -> Result<Vec<u8>, SendError> {
        let max = self.max_datagram();
        if self.config.plain {
            // The line plus its newline must fit.
            if text.len() + 1 > max {
                return Err(SendError::TooLong {
                    len: text.len(),
                    max: max.saturating_sub(1),
                });
            }
            let mut payload = Vec::with_capacity(text.len() + 1);
            payload.extend_from_slice(text.as_bytes());
            payload.push(b'\n');
            return Ok(payload);
        }
        let packet = Packet::Raw(RawMessage {
            seq,
            nick: self.config.nick.clone(),
            text: text.to_owned(),
        });
        udpchat_core::encode(&packet, max).map_err(|e| match e {
            // Everything but the text is overhead; what is left of the limit is for text.
            EncodeError::TooLarge { needed, max } => SendError::TooLong {
                len: text.len(),
                max: max.saturating_sub(needed.saturating_sub(text.len())),
            },
            // Encoding strings into a Vec cannot fail (and a raw message is no bundle); should it
            // ever, nothing of it fits.
            EncodeError::Body(_) | EncodeError::BundleSize { .. } => SendError::TooLong {
                len: text.len(),
                max: 0,
            },
        })
    }

    fn drop_datagram(&mut self, from: SocketAddr, cause: DropCause, detail: String) {
        self.stats.count_drop(cause);
        self.events.push_back(Event::Dropped {
            from,
            cause,
            detail,
        });
    }

    fn learn_peer(&mut self, from: SocketAddr) {
        if self.peer.is_none() {
            self.peer = Some(from);
            self.events.push_back(Event::Peer {
                addr: from,
                nick: None,
            });
        }
    }

    fn deliver(&mut self, from: SocketAddr, nick: String, seq: Option<u64>, text: String) {
        self.stats.messages_received += 1;
        self.events.push_back(Event::Message {
            from,
            nick,
            seq,
            text,
        });
    }

    fn gap(&mut self, from: SocketAddr, first: u64, last: u64) {
        self.stats.gaps = self
            .stats
            .gaps
            .saturating_add((last - first).saturating_add(1));
        self.events.push_back(Event::Gap { from, first, last });
    }

    fn handle_plain(&mut self, from: SocketAddr, datagram: &[u8]) {
        let line = datagram
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(datagram);
        let text = String::from_utf8_lossy(line).into_owned();
        self.learn_peer(from);
        self.deliver(from, String::new(), None, text);
    }

    fn handle_framed(&mut self, from: SocketAddr, datagram: &[u8]) {
        let message = match udpchat_core::decode(datagram) {
            Ok(Packet::Raw(message)) => message,
            Ok(other) => {
                let detail = format!(
                    "a {:?} packet, which raw mode does not take (is the other side in another mode?)",
                    other.kind()
                );
                return self.drop_datagram(from, DropCause::Stale, detail);
            }
            Err(e @ DecodeError::BadChecksum { .. }) => {
                return self.drop_datagram(from, DropCause::Checksum, e.to_string());
            }
            Err(e) => {
                let mut detail = e.to_string();
                if matches!(
                    e,
                    DecodeError::BadMagic { .. } | DecodeError::TooShort { .. }
                ) {
                    detail.push_str(" (is the other side using --plain?)");
                }
                return self.drop_datagram(from, DropCause::Malformed, detail);
            }
        };
        self.learn_peer(from);
        // A decoded datagram is at least header + body + trailer long, so the CRC-32 trailer is
        // there; it fingerprints the datagram, telling a network duplicate from a reused number.
        let mut fingerprint = [0u8; TRAILER_LEN];
        if let Some(trailer) = datagram.get(datagram.len().saturating_sub(TRAILER_LEN)..) {
            fingerprint.copy_from_slice(trailer);
        }
        let RawMessage { seq, nick, text } = message;
        match self.seen.record(seq, u32::from_le_bytes(fingerprint)) {
            Arrival::InOrder => {}
            Arrival::Gap { first, last } => self.gap(from, first, last),
            Arrival::Late => {
                self.stats.reordered += 1;
                self.events.push_back(Event::Reordered { from, seq });
            }
            Arrival::Duplicate => {
                self.stats.duplicates += 1;
                self.events.push_back(Event::Duplicate { from, seq });
                return;
            }
            Arrival::Restart { missing } => {
                self.events.push_back(Event::PeerRestarted);
                if let Some((first, last)) = missing {
                    self.gap(from, first, last);
                }
            }
        }
        self.deliver(from, nick, Some(seq), text);
    }

    fn report_closed_once(&mut self) {
        if self.is_closed() && !self.closed_reported {
            self.closed_reported = true;
            self.events.push_back(Event::Closed);
        }
    }
}

impl Endpoint for RawEndpoint {
    fn send(&mut self, _now: Instant, text: &str) -> Result<MessageId, SendError> {
        if self.closing {
            return Err(SendError::Closed);
        }
        let destination = self.peer.ok_or(SendError::NoPeer)?;
        let seq = self.next_seq;
        let payload = self.datagram(seq, text)?;
        self.next_seq += 1;
        self.stats.messages_sent += 1;
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
        Ok(MessageId(seq))
    }

    fn handle_datagram(&mut self, _now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        if let Some(peer) = self.peer {
            if from != peer {
                let detail = format!("it is not from the peer {peer}");
                return self.drop_datagram(from, DropCause::Foreign, detail);
            }
        }
        if self.config.plain {
            self.handle_plain(from, datagram);
        } else {
            self.handle_framed(from, datagram);
        }
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let transmit = self.transmits.pop_front()?;
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += transmit.payload.len() as u64;
        self.report_closed_once();
        *buf = transmit.payload;
        Some(transmit.destination)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Raw mode keeps no timers: nothing is ever resent.
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// No half-close in this mode: finishing is closing.
    fn finish(&mut self, now: Instant) {
        self.close(now);
    }
    fn close(&mut self, _now: Instant) {
        self.closing = true;
        self.report_closed_once();
    }

    fn is_closed(&self) -> bool {
        self.closing && self.transmits.is_empty()
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Framed messages carry the nick in every datagram, so a change shows from the next one.
    fn set_nick(&mut self, nick: &str) -> Result<(), NickError> {
        if self.config.plain {
            return Err(NickError::Unsupported);
        }
        self.config.nick = nick.to_owned();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use udpchat_core::{ConnectionId, MAGIC, VERSION};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    const ALICE: u16 = 1001;
    const BOB: u16 = 1002;
    const MALLORY: u16 = 6666;

    fn endpoint(nick: &str, peer: Option<u16>) -> RawEndpoint {
        RawEndpoint::new(RawConfig {
            nick: nick.to_owned(),
            peer: peer.map(addr),
            ..RawConfig::default()
        })
    }

    fn plain(peer: Option<u16>) -> RawEndpoint {
        RawEndpoint::new(RawConfig {
            plain: true,
            peer: peer.map(addr),
            ..RawConfig::default()
        })
    }

    fn raw(seq: u64, nick: &str, text: &str) -> Vec<u8> {
        let packet = Packet::Raw(RawMessage {
            seq,
            nick: nick.to_owned(),
            text: text.to_owned(),
        });
        udpchat_core::encode(&packet, DEFAULT_MAX_DATAGRAM).unwrap()
    }

    fn events(e: &mut RawEndpoint) -> Vec<Event> {
        std::iter::from_fn(|| e.poll_event()).collect()
    }

    fn transmits(e: &mut RawEndpoint, now: Instant) -> Vec<Transmit> {
        std::iter::from_fn(|| e.poll_transmit_owned(now)).collect()
    }

    /// Feeds `bob` the framed messages `seqs` from alice, each with text "m<seq>".
    fn feed(bob: &mut RawEndpoint, now: Instant, seqs: &[u64]) {
        for &s in seqs {
            bob.handle_datagram(now, addr(ALICE), &raw(s, "alice", &format!("m{s}")));
        }
    }

    fn delivered(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message { seq, .. } => *seq,
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_new_nick_is_carried_from_the_next_message_on() {
        let now = Instant::now();
        let mut alice = endpoint("alice", Some(BOB));
        let mut bob = endpoint("bob", None);
        alice.send(now, "before").unwrap();
        assert_eq!(alice.set_nick("alicia"), Ok(()));
        alice.send(now, "after").unwrap();
        for t in transmits(&mut alice, now) {
            bob.handle_datagram(now, addr(ALICE), &t.payload);
        }
        let nicks: Vec<String> = events(&mut bob)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message { nick, .. } => Some(nick),
                _ => None,
            })
            .collect();
        assert_eq!(nicks, vec!["alice", "alicia"]);
        assert_eq!(plain(Some(BOB)).set_nick("x"), Err(NickError::Unsupported));
    }

    #[test]
    fn a_line_reaches_the_peer_with_nick_and_number() {
        let now = Instant::now();
        let mut alice = endpoint("alice", Some(BOB));
        let mut bob = endpoint("bob", None);
        assert_eq!(alice.send(now, "hello").unwrap(), MessageId(0));
        assert_eq!(alice.send(now, "again").unwrap(), MessageId(1));
        for t in transmits(&mut alice, now) {
            assert_eq!(t.destination, addr(BOB));
            bob.handle_datagram(now, addr(ALICE), &t.payload);
        }
        assert_eq!(
            events(&mut bob),
            vec![
                Event::Peer {
                    addr: addr(ALICE),
                    nick: None
                },
                Event::Message {
                    from: addr(ALICE),
                    nick: "alice".into(),
                    seq: Some(0),
                    text: "hello".into()
                },
                Event::Message {
                    from: addr(ALICE),
                    nick: "alice".into(),
                    seq: Some(1),
                    text: "again".into()
                },
            ]
        );
        assert_eq!(alice.stats().messages_sent, 2);
        assert_eq!(alice.stats().datagrams_sent, 2);
        assert_eq!(bob.stats().messages_received, 2);
        assert_eq!(bob.stats().datagrams_received, 2);
        assert_eq!(bob.stats().bytes_received, alice.stats().bytes_sent);
        // Bob learned alice and can answer her.
        assert_eq!(bob.peer(), Some(addr(ALICE)));
        bob.send(now, "hi").unwrap();
        assert_eq!(transmits(&mut bob, now)[0].destination, addr(ALICE));
    }

    #[test]
    fn sending_before_anyone_wrote_is_refused() {
        let mut bob = endpoint("bob", None);
        assert_eq!(bob.send(Instant::now(), "hi"), Err(SendError::NoPeer));
        assert_eq!(bob.stats().messages_sent, 0);
        assert!(bob.poll_transmit_owned(Instant::now()).is_none());
    }

    #[test]
    fn a_line_too_long_is_refused_takes_no_number_and_the_limit_is_exact() {
        let now = Instant::now();
        let mut alice = endpoint("alice", Some(BOB));
        let err = alice.send(now, &"x".repeat(2000)).unwrap_err();
        let SendError::TooLong { len, max } = err else {
            panic!("expected TooLong, got {err:?}");
        };
        assert_eq!(len, 2000);
        assert!(max > 1100 && max < 1200, "max {max}");
        assert!(alice.send(now, &"x".repeat(max + 1)).is_err());
        assert_eq!(alice.send(now, &"x".repeat(max)).unwrap(), MessageId(0));
        let sent = transmits(&mut alice, now);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].payload.len(), DEFAULT_MAX_DATAGRAM);
        assert_eq!(alice.send(now, "short").unwrap(), MessageId(1));
    }

    #[test]
    fn the_first_valid_sender_becomes_the_peer_and_others_are_foreign() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        // Junk does not make its sender the peer.
        bob.handle_datagram(now, addr(MALLORY), b"junk");
        assert_eq!(bob.peer(), None);
        feed(&mut bob, now, &[0]);
        assert_eq!(bob.peer(), Some(addr(ALICE)));
        bob.handle_datagram(now, addr(MALLORY), &raw(0, "mallory", "hi"));
        let got = events(&mut bob);
        assert_eq!(delivered(&got), vec![0]);
        assert!(matches!(
            got.last(),
            Some(Event::Dropped { from, cause: DropCause::Foreign, .. }) if *from == addr(MALLORY)
        ));
        let stats = bob.stats();
        assert_eq!(stats.dropped_foreign, 1);
        assert_eq!(stats.dropped_malformed, 1);
        assert_eq!(stats.messages_received, 1);
    }

    #[test]
    fn a_configured_peer_is_the_only_one_heard() {
        let now = Instant::now();
        let mut bob = endpoint("bob", Some(ALICE));
        bob.handle_datagram(now, addr(MALLORY), &raw(0, "mallory", "hi"));
        feed(&mut bob, now, &[0]);
        let got = events(&mut bob);
        // No Peer event: it was configured, not learned.
        assert!(!got.iter().any(|e| matches!(e, Event::Peer { .. })));
        assert_eq!(delivered(&got), vec![0]);
        assert_eq!(bob.stats().dropped_foreign, 1);
    }

    #[test]
    fn skipped_numbers_are_reported_as_a_gap_and_counted() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        feed(&mut bob, now, &[0, 1, 5, 6]);
        let got = events(&mut bob);
        assert!(got.contains(&Event::Gap {
            from: addr(ALICE),
            first: 2,
            last: 4
        }));
        assert_eq!(delivered(&got), vec![0, 1, 5, 6]);
        assert_eq!(bob.stats().gaps, 3);
    }

    #[test]
    fn a_duplicate_is_reported_and_not_delivered_again() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        feed(&mut bob, now, &[0, 1, 1, 0, 2]);
        let got = events(&mut bob);
        assert_eq!(delivered(&got), vec![0, 1, 2]);
        let dups: Vec<_> = got
            .iter()
            .filter_map(|e| match e {
                Event::Duplicate { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(dups, vec![1, 0]);
        assert_eq!(bob.stats().duplicates, 2);
        assert_eq!(bob.stats().messages_received, 3);
    }

    #[test]
    fn a_late_arrival_is_reported_as_reordered_and_delivered() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        feed(&mut bob, now, &[0, 2, 1]);
        let got = events(&mut bob);
        assert_eq!(delivered(&got), vec![0, 2, 1]);
        assert!(got.contains(&Event::Reordered {
            from: addr(ALICE),
            seq: 1
        }));
        let stats = bob.stats();
        assert_eq!((stats.gaps, stats.reordered), (1, 1));
    }

    #[test]
    fn a_restarted_peer_gets_fresh_accounting_not_a_huge_reorder() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        let seqs: Vec<u64> = (0..2000).collect();
        feed(&mut bob, now, &seqs);
        events(&mut bob);
        // Alice restarts: her numbers start again from 0.
        feed(&mut bob, now, &[0, 1, 2]);
        let got = events(&mut bob);
        assert_eq!(got[0], Event::PeerRestarted);
        assert_eq!(delivered(&got), vec![0, 1, 2]);
        let stats = bob.stats();
        assert_eq!((stats.gaps, stats.reordered, stats.duplicates), (0, 0, 0));
    }

    #[test]
    fn a_peer_restarting_after_a_few_lines_is_not_mistaken_for_duplicates() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        feed(&mut bob, now, &[0, 1, 2]);
        events(&mut bob);
        // Same numbers, different lines: a new numbering, not the network repeating itself.
        bob.handle_datagram(now, addr(ALICE), &raw(0, "alice", "back again"));
        let got = events(&mut bob);
        assert_eq!(got[0], Event::PeerRestarted);
        assert!(
            matches!(&got[1], Event::Message { text, seq: Some(0), .. } if text == "back again")
        );
        assert_eq!(bob.stats().duplicates, 0);
    }

    #[test]
    fn junk_is_counted_by_cause_and_ignored() {
        let now = Instant::now();
        let mut bob = endpoint("bob", None);
        let good = raw(0, "alice", "hello");
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x01;
        let mut flipped_body = good.clone();
        flipped_body[5] ^= 0x80;
        let mut wrong_version = good.clone();
        wrong_version[2] = VERSION.wrapping_add(1);
        let not_raw = udpchat_core::encode(
            &Packet::Ping {
                dst: ConnectionId(7),
            },
            DEFAULT_MAX_DATAGRAM,
        )
        .unwrap();
        let junk: Vec<Vec<u8>> = vec![
            vec![],
            b"x".to_vec(),
            b"hello there\n".to_vec(),
            vec![MAGIC[0], MAGIC[1], VERSION, 0, 0, 0, 0, 0, 0],
            wrong_version,
            bad_crc,
            flipped_body,
            not_raw,
            vec![0xff; 70_000],
        ];
        for j in &junk {
            bob.handle_datagram(now, addr(ALICE), j);
        }
        let stats = bob.stats();
        // The header-only datagram, the flipped trailer and the flipped body fail the CRC.
        assert_eq!(stats.dropped_checksum, 3);
        assert_eq!(stats.dropped_malformed, 5);
        assert_eq!(stats.dropped_stale, 1);
        assert_eq!(stats.datagrams_received, junk.len() as u64);
        assert_eq!(stats.messages_received, 0);
        assert_eq!(bob.peer(), None);
        let got = events(&mut bob);
        assert_eq!(got.len(), junk.len());
        assert!(got.iter().all(|e| matches!(e, Event::Dropped { .. })));
        // The chat goes on.
        bob.handle_datagram(now, addr(ALICE), &good);
        assert_eq!(delivered(&events(&mut bob)), vec![0]);
    }

    #[test]
    fn plain_mode_sends_bare_lines_with_a_newline() {
        let now = Instant::now();
        let mut alice = plain(Some(BOB));
        alice.send(now, "hello").unwrap();
        assert_eq!(transmits(&mut alice, now)[0].payload, b"hello\n");
        let max = DEFAULT_MAX_DATAGRAM - 1;
        assert!(alice.send(now, &"x".repeat(max)).is_ok());
        assert_eq!(
            alice.send(now, &"x".repeat(max + 1)),
            Err(SendError::TooLong { len: max + 1, max })
        );
    }

    #[test]
    fn plain_mode_shows_invalid_utf8_with_replacement_characters() {
        let now = Instant::now();
        let mut bob = plain(None);
        bob.handle_datagram(now, addr(ALICE), b"caf\xc3\xa9 \xff\xfe ok\r\n");
        bob.handle_datagram(now, addr(ALICE), b"two\nlines\n");
        bob.handle_datagram(now, addr(ALICE), b"");
        let got = events(&mut bob);
        let texts: Vec<_> = got
            .iter()
            .filter_map(|e| match e {
                Event::Message {
                    text, seq, nick, ..
                } => {
                    assert_eq!((seq, nick.as_str()), (&None, ""));
                    Some(text.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(texts, vec!["café \u{fffd}\u{fffd} ok", "two\nlines", ""]);
        assert_eq!(
            got[0],
            Event::Peer {
                addr: addr(ALICE),
                nick: None
            }
        );
        // Numbered accounting does not apply to plain datagrams.
        assert_eq!(bob.stats().gaps + bob.stats().duplicates, 0);
    }

    #[test]
    fn close_finishes_once_accepted_lines_are_handed_out() {
        let now = Instant::now();
        let mut alice = endpoint("alice", Some(BOB));
        alice.send(now, "last words").unwrap();
        alice.close(now);
        assert!(!alice.is_closed());
        assert_eq!(alice.send(now, "too late"), Err(SendError::Closed));
        assert_eq!(transmits(&mut alice, now).len(), 1);
        assert!(alice.is_closed());
        assert_eq!(events(&mut alice), vec![Event::Closed]);
        alice.close(now);
        assert!(events(&mut alice).is_empty());
    }

    #[test]
    fn raw_mode_keeps_no_timers() {
        let mut alice = endpoint("alice", Some(BOB));
        alice.send(Instant::now(), "hi").unwrap();
        assert_eq!(alice.poll_timeout(), None);
    }

    proptest! {
        // A fixed seed: CI runs the same cases every time, so a failure is reproducible.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x75_64_70),
            ..ProptestConfig::default()
        })]
        /// Whatever order and repetition the network produces (within the window), each line is
        /// delivered exactly once, every extra copy is a duplicate, and what the gaps reported
        /// minus what arrived late is exactly what is still missing.
        #[test]
        fn every_line_delivered_once_and_the_books_balance(
            arrivals in proptest::collection::vec(0u64..300, 1..400)
        ) {
            let now = Instant::now();
            let mut bob = endpoint("bob", None);
            feed(&mut bob, now, &arrivals);
            let got = events(&mut bob);
            let mut seen = delivered(&got);
            let total = seen.len();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), total, "a line was delivered twice");
            let mut distinct = arrivals.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(&seen, &distinct);
            let stats = bob.stats();
            prop_assert_eq!(stats.duplicates as usize, arrivals.len() - distinct.len());
            let highest = distinct.last().copied().unwrap_or(0);
            let still_missing = highest + 1 - distinct.len() as u64;
            prop_assert_eq!(stats.gaps - stats.reordered, still_missing);
        }

        /// No byte string makes the endpoint panic, and each one is either delivered or counted.
        #[test]
        fn arbitrary_datagrams_are_delivered_or_counted(
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..50)
        ) {
            let now = Instant::now();
            let mut bob = endpoint("bob", None);
            for d in &datagrams {
                bob.handle_datagram(now, addr(ALICE), d);
            }
            let s = bob.stats();
            let accounted = s.messages_received + s.duplicates + s.dropped_checksum
                + s.dropped_malformed + s.dropped_foreign + s.dropped_stale;
            prop_assert_eq!(accounted, datagrams.len() as u64);
        }
    }
}
