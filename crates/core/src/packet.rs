//! The packet kinds: what a datagram body can say.
//!
//! `Raw` is raw mode's only packet. The rest make up the reliable transport: a handshake
//! (`Hello`/`Welcome`) that exchanges random connection ids, `Data` carrying one fragment of one
//! message with a piggybacked `Ack`, standalone `Ack`s, `Ping`/`Pong` keepalives and `Close`.
//! `Bundle` carries a new `Data` packet together with copies of recent unacknowledged ones (opt-in
//! redundancy for chat latency under loss). `Fin` and `Nick` are session control carried in the
//! data stream: each is a `Data` packet under its own kind, sequenced, acknowledged and resent
//! like a chat line, so the peer acts on it exactly once and in order with the lines around it
//! (wire version 3). New kinds go last, so the older ones keep their wire tags.
//! Field semantics are specified in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::envelope::{HEADER_LEN, TRAILER_LEN};

/// A packet sequence number of the reliable transport. 64 bits on the wire (varint-encoded, so
/// small numbers stay small) and never wraps: at a million packets a second it would take half
/// a million years.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct SeqNum(pub u64);

impl SeqNum {
    /// The number after this one.
    pub fn next(self) -> SeqNum {
        SeqNum(self.0 + 1)
    }
}

/// A random 64-bit connection identifier, chosen by each side for itself at handshake. A packet
/// names its receiver's id, so packets of a foreign or an earlier session are recognised and
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectionId(pub u64);

/// One raw-mode chat line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMessage {
    /// Per-sender sequence number, from 0, so the receiver can see gaps, duplicates and reordering.
    pub seq: u64,
    /// Sender's nickname. Decoded leniently, like `text`.
    #[serde(deserialize_with = "lossy_string")]
    pub nick: String,
    /// The line, without its newline. Bytes that are not UTF-8 are decoded as U+FFFD, so a
    /// message from a sloppy sender is shown (marked) instead of dropped whole.
    #[serde(deserialize_with = "lossy_string")]
    pub text: String,
}

/// A string field decoded with invalid UTF-8 replaced by U+FFFD. The wire form is the same as a
/// strict `String` (a length and the bytes), so only decoding changes. Replacement can triple
/// the size of the bad bytes, which stays bounded by the datagram.
fn lossy_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let bytes: serde_bytes::ByteBuf = serde::Deserialize::deserialize(deserializer)?;
    Ok(match String::from_utf8(bytes.into_vec()) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Opens a reliable session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's own connection id.
    pub src: ConnectionId,
    /// Sender's nickname.
    pub nick: String,
    /// Receive window the sender offers, in packets.
    pub window: u32,
}

/// Answers a `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The sender's own connection id.
    pub src: ConnectionId,
    /// The id from the `Hello` being answered.
    pub dst: ConnectionId,
    /// Sender's nickname.
    pub nick: String,
    /// Receive window the sender offers, in packets.
    pub window: u32,
}

/// An inclusive range of received sequence numbers, above the cumulative ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRange {
    /// First sequence number received in this range.
    pub first: SeqNum,
    /// Last sequence number received in this range.
    pub last: SeqNum,
}

/// Acknowledgement state of a receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Every sequence number below this one has been received.
    pub cumulative: SeqNum,
    /// Selective acks above `cumulative`, ascending and disjoint (the highest ones, if there are
    /// more than fit). Ranges that are inverted or name unsent numbers are ignored by the sender.
    pub ranges: Vec<AckRange>,
    /// How long the receiver held the newest packet before acking it, in microseconds.
    pub delay_us: u64,
    /// Receive window: the sender may use sequence numbers below `cumulative + window`, no more.
    pub window: u32,
    /// Every data packet below this has been *delivered*: its message handed to the receiver's
    /// application, not only received. At most `cumulative`. In ordered delivery it is the end
    /// of the last message delivered in order (packets waiting behind a hole are received, and
    /// acknowledged above, but not delivered); in unordered delivery, `cumulative`. The sender
    /// reports a message delivered only once this passes its last fragment (or, with
    /// `ranges_delivered`, once all its fragments are acknowledged).
    pub delivered: SeqNum,
    /// The wrapping sum of the [`Data::token`]s of every packet this ack acknowledges (below
    /// `cumulative`, and in `ranges`): proof that the ack comes from whoever received that data.
    /// An ack whose echo the sender cannot match is dropped (as RFC 3540's ECN nonce sum proves
    /// receipt).
    pub echo: u32,
    /// The receiver delivers each message as soon as it is complete (unordered delivery), so a
    /// message whose fragments are all acknowledged, in `ranges` included, has been delivered.
    pub ranges_delivered: bool,
}

/// One fragment of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// The receiver's connection id.
    pub dst: ConnectionId,
    /// Packet sequence number, from 0 per session and direction. A retransmission reuses it (as
    /// in TCP), so the receiver's duplicate filter is a set of sequence numbers; the fragments of
    /// one message have consecutive ones.
    pub seq: SeqNum,
    /// Message number (the sender's message id), in sending order.
    pub message: u64,
    /// Index of this fragment within the message.
    pub fragment: u32,
    /// How many fragments the message has (at least 1).
    pub fragments: u32,
    /// An unpredictable number the sender drew for this packet (its resends and copies keep
    /// it). The receiver sums the tokens of what it acknowledges into [`Ack::echo`], so an ack
    /// cannot claim receipt or delivery of data its writer never saw.
    pub token: u32,
    /// This fragment's bytes of the message's UTF-8 text.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Piggybacked acknowledgement of the reverse direction.
    pub ack: Option<Ack>,
}

/// Most `Data` packets one [`Packet::Bundle`] may hold: the decoder refuses more, so a bundle's
/// cost to the receiver is bounded by a count as well as by the datagram's size.
pub const MAX_BUNDLE: usize = 16;

/// Every packet udpchat sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Packet {
    /// A raw-mode line.
    Raw(RawMessage),
    /// Handshake, first half.
    Hello(Hello),
    /// Handshake, second half.
    Welcome(Welcome),
    /// Message data.
    Data(Data),
    /// A standalone acknowledgement.
    Ack {
        /// The receiver's connection id.
        dst: ConnectionId,
        /// What has been received.
        ack: Ack,
    },
    /// Keepalive probe.
    Ping {
        /// The receiver's connection id.
        dst: ConnectionId,
    },
    /// Keepalive answer.
    Pong {
        /// The receiver's connection id.
        dst: ConnectionId,
    },
    /// The sender is closing the session: every message it sent has been acknowledged (or its
    /// linger time ran out), and it will not receive any more.
    Close {
        /// The receiver's connection id.
        dst: ConnectionId,
        /// The sender's final acknowledgement, so the receiver learns what arrived even if the
        /// last standalone ack was lost.
        ack: Option<Ack>,
    },
    /// Several `Data` packets in one datagram, each exactly as it would be sent alone: a new one
    /// first (carrying the piggybacked ack), then copies of recent unacknowledged ones under their
    /// original sequence numbers, so the receiver's duplicate filter needs no change. Between 1
    /// and [`MAX_BUNDLE`] packets; the decoder refuses other counts.
    Bundle(Vec<Data>),
    /// The sender has finished sending (a half-close, as TCP's FIN): a `Data` packet of one
    /// empty fragment, sequenced after the sender's last message, so a receiver that has
    /// delivered it in order has everything the sender will ever send. The sender keeps
    /// receiving and acknowledging. Never carried in a `Bundle`.
    Fin(Data),
    /// The sender's new nickname: a `Data` packet whose message is the nickname in UTF-8,
    /// sequenced with the chat lines, so the receiver shows the new name from the right line
    /// on. Never carried in a `Bundle`.
    Nick(Data),
    /// A path MTU probe (DPLPMTUD, RFC 8899): padded to the datagram size being tried, carrying
    /// no user data, so its loss costs nothing but itself. The receiver answers with a
    /// [`Packet::ProbeAck`] naming its `id`. Build one with [`Packet::probe`].
    Probe {
        /// The receiver's connection id.
        dst: ConnectionId,
        /// The sender's number for this probe, echoed in the answer.
        id: u32,
        /// Padding, to make the datagram the size being tried. Its content means nothing (the
        /// sender writes zeros; the receiver does not look).
        #[serde(with = "serde_bytes")]
        padding: Vec<u8>,
    },
    /// The answer to a [`Packet::Probe`]: a datagram of that size got through.
    ProbeAck {
        /// The receiver's connection id.
        dst: ConnectionId,
        /// The probe's `id`.
        id: u32,
    },
    /// One piece of a data-stream datagram (`Data`, `Fin` or `Nick`, envelope and CRC
    /// included) too large for the path as it is now: a packet cut for a larger path MTU, resent
    /// after the path shrank (a black hole). The receiver joins the `count` pieces of `id`, in
    /// index order, and takes the result as the datagram it is. Between 2 and [`MAX_PIECES`]
    /// pieces; the receiver refuses other counts.
    Piece {
        /// The receiver's connection id.
        dst: ConnectionId,
        /// The sender's number for the datagram being carried (each resend gets a new one).
        id: u32,
        /// This piece's place, from 0.
        index: u32,
        /// How many pieces the datagram has.
        count: u32,
        /// This piece's bytes of the datagram.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

/// Most pieces one datagram may travel in: a UDP payload of 65,507 bytes in pieces that fit the
/// smallest datagram the transport uses (128 bytes) needs more, but the pieces of a packet cut
/// for a path MTU are cut for the base size (1200 bytes), so 64 is plenty and bounds what a
/// receiver holds per datagram.
pub const MAX_PIECES: u32 = 64;

/// The kind of a packet, for counters and traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PacketKind {
    /// [`Packet::Raw`]
    Raw,
    /// [`Packet::Hello`]
    Hello,
    /// [`Packet::Welcome`]
    Welcome,
    /// [`Packet::Data`]
    Data,
    /// [`Packet::Ack`]
    Ack,
    /// [`Packet::Ping`]
    Ping,
    /// [`Packet::Pong`]
    Pong,
    /// [`Packet::Close`]
    Close,
    /// [`Packet::Bundle`]
    Bundle,
    /// [`Packet::Fin`]
    Fin,
    /// [`Packet::Nick`]
    Nick,
    /// [`Packet::Probe`]
    Probe,
    /// [`Packet::ProbeAck`]
    ProbeAck,
    /// [`Packet::Piece`]
    Piece,
}

impl Packet {
    /// What kind of packet this is.
    pub fn kind(&self) -> PacketKind {
        match self {
            Packet::Raw(_) => PacketKind::Raw,
            Packet::Hello(_) => PacketKind::Hello,
            Packet::Welcome(_) => PacketKind::Welcome,
            Packet::Data(_) => PacketKind::Data,
            Packet::Ack { .. } => PacketKind::Ack,
            Packet::Ping { .. } => PacketKind::Ping,
            Packet::Pong { .. } => PacketKind::Pong,
            Packet::Close { .. } => PacketKind::Close,
            Packet::Bundle(_) => PacketKind::Bundle,
            Packet::Fin(_) => PacketKind::Fin,
            Packet::Nick(_) => PacketKind::Nick,
            Packet::Probe { .. } => PacketKind::Probe,
            Packet::ProbeAck { .. } => PacketKind::ProbeAck,
            Packet::Piece { .. } => PacketKind::Piece,
        }
    }
}

/// Sizes, computed by the codec (never hand-counted): what a layer above needs to know before
/// it writes a packet, as smoltcp's `buffer_len()`.
impl Packet {
    /// The exact length of this packet's datagram: envelope (magic, version, CRC) and body.
    /// `encode` succeeds with any `max_len` at least this (bundle counts aside).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + codec::encoded_body_len(self) + TRAILER_LEN
    }
}

/// The padding mechanism: a probe of an exact datagram size.
impl Packet {
    /// A [`Packet::Probe`] whose datagram is exactly `size` bytes (envelope included), or `None`
    /// if `size` is below the smallest probe. The padding's length prefix is a varint whose width
    /// depends on the length, so the length is found by trying the few widths there are, never by
    /// hand-counting bytes.
    pub fn probe(dst: ConnectionId, id: u32, size: usize) -> Option<Packet> {
        let bare = Packet::Probe {
            dst,
            id,
            padding: Vec::new(),
        }
        .encoded_len();
        // With n bytes of padding the datagram is bare + n + (prefix width - 1); the prefix is
        // 1, 3, 5 or 9 bytes wide.
        for extra_prefix in [0, 2, 4, 8] {
            let Some(n) = size.checked_sub(bare + extra_prefix) else {
                continue;
            };
            let probe = Packet::Probe {
                dst,
                id,
                padding: vec![0; n],
            };
            if probe.encoded_len() == size {
                return Some(probe);
            }
        }
        None
    }
}

/// Most bytes a [`Packet::Piece`] takes besides the bytes it carries: envelope, kind and its
/// fields at their widest (the bytes' length prefix at its widest for a UDP payload). A piece
/// of a datagram of `max` bytes carries at most `max` minus this.
pub fn max_piece_overhead() -> usize {
    static OVERHEAD: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        // As for `max_data_overhead`: 251 bytes take the 3-byte length prefix.
        const PROBE: usize = 251;
        let widest = Packet::Piece {
            dst: ConnectionId(u64::MAX),
            id: u32::MAX,
            index: u32::MAX,
            count: u32::MAX,
            bytes: vec![0; PROBE],
        };
        widest.encoded_len() - PROBE
    })
}

impl Data {
    /// Bytes this packet takes inside a [`Packet::Bundle`] (and, plus one byte for the kind, in a
    /// datagram of its own, besides the envelope).
    pub fn encoded_len(&self) -> usize {
        codec::encoded_body_len(self)
    }
}

impl Ack {
    /// Bytes this acknowledgement takes inside its packet.
    pub fn encoded_len(&self) -> usize {
        codec::encoded_body_len(self)
    }

    /// Drops the lowest selective-ack ranges until the ack takes at most `max_len` bytes,
    /// keeping the highest ones (the newest evidence, which the sender's loss detection needs
    /// most). Returns false if even with no ranges it does not fit. One pass: each range's size
    /// is computed once, not the whole ack re-encoded per try.
    pub fn trim_ranges_to(&mut self, max_len: usize) -> bool {
        let mut len = self.encoded_len();
        let mut drop = 0;
        while len > max_len && drop < self.ranges.len() {
            let before = varint_len(self.ranges.len() - drop);
            let after = varint_len(self.ranges.len() - drop - 1);
            len -= codec::encoded_body_len(&self.ranges[drop]) + before - after;
            drop += 1;
        }
        self.ranges.drain(..drop);
        len <= max_len
    }
}

/// Bytes of a collection's length prefix (a varint) for `n` items.
fn varint_len(n: usize) -> usize {
    codec::encoded_body_len(&(n as u64))
}

/// The most bytes a `Data` packet sent alone, without a piggybacked ack, takes besides its
/// payload: envelope, kind, and every header field at its widest varint (the payload's length
/// prefix at its widest for a UDP payload). A fragment's payload is at most `max_datagram` minus
/// this. Computed once by the codec.
pub fn max_data_overhead() -> usize {
    static OVERHEAD: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        // 251 bytes is the smallest payload whose length prefix takes bincode's 3-byte varint
        // form, the widest any payload below 65,536 bytes (so any UDP payload) needs.
        const PROBE: usize = 251;
        let widest = Packet::Data(Data {
            dst: ConnectionId(u64::MAX),
            seq: SeqNum(u64::MAX),
            message: u64::MAX,
            fragment: u32::MAX,
            fragments: u32::MAX,
            token: u32::MAX,
            payload: vec![0; PROBE],
            ack: None,
        });
        widest.encoded_len() - PROBE
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;
    use crate::{arb, encode};

    proptest! {
        // A fixed seed: CI runs the same cases every time, so a failure is reproducible.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x75_64_70),
            ..ProptestConfig::default()
        })]
        #[test]
        fn encoded_len_is_the_length_encode_produces(packet in arb::packet()) {
            if let Ok(bytes) = encode(&packet, usize::MAX) {
                prop_assert_eq!(packet.encoded_len(), bytes.len());
            }
        }

        #[test]
        fn trimmed_ranges_fit_and_keep_the_highest(ack in arb::ack(), budget in 0usize..64) {
            let mut trimmed = ack.clone();
            let fits = trimmed.trim_ranges_to(budget);
            prop_assert_eq!(fits, trimmed.encoded_len() <= budget);
            prop_assert!(ack.ranges.ends_with(&trimmed.ranges));
            if fits && trimmed.ranges.len() < ack.ranges.len() {
                // Not one range more than needed was dropped.
                let mut one_more = trimmed.clone();
                one_more.ranges.insert(0, ack.ranges[ack.ranges.len() - trimmed.ranges.len() - 1]);
                prop_assert!(one_more.encoded_len() > budget);
            }
        }
    }

    #[test]
    fn a_probe_is_exactly_the_size_asked_for_across_every_prefix_width() {
        let dst = ConnectionId(u64::MAX);
        let smallest = Packet::Probe {
            dst,
            id: u32::MAX,
            padding: Vec::new(),
        }
        .encoded_len();
        // Around each width change of the padding's length prefix (251 and 65,536 bytes), and
        // the sizes DPLPMTUD tries.
        let sizes = (smallest..smallest + 300).chain([1200, 1280, 1452, 9000, 65_507]);
        for size in sizes {
            let probe = Packet::probe(dst, u32::MAX, size);
            // A size the prefix jumps over (the 3-byte prefix starts at 251 bytes of padding)
            // has no probe; every other one is exact.
            match probe {
                Some(p) => {
                    let bytes = crate::encode(&p, size).unwrap();
                    assert_eq!(bytes.len(), size);
                    assert_eq!(crate::decode(&bytes).unwrap(), p);
                }
                None => assert!(size > smallest + 250 && size < smallest + 253, "{size}"),
            }
        }
        assert_eq!(Packet::probe(dst, u32::MAX, smallest - 1), None);
    }

    #[test]
    fn the_widest_data_header_is_54_bytes() {
        // magic+version 3, CRC 4, kind 1, dst 9, seq 9, message 9, fragment 5, fragments 5,
        // token 5, payload length 3, "no ack" 1 (config.rs once counted 49 by hand, before the
        // token).
        assert_eq!(max_data_overhead(), 54);
    }
}
