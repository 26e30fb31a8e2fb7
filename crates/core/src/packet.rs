//! The packet kinds: what a datagram body can say.
//!
//! `Raw` is raw mode's only packet. The rest make up the reliable transport: a handshake
//! (`Hello`/`Welcome`) that exchanges random connection ids, `Data` carrying one fragment of one
//! message with a piggybacked `Ack`, standalone `Ack`s, `Ping`/`Pong` keepalives and `Close`.
//! `Bundle` carries a new `Data` packet together with copies of recent unacknowledged ones (opt-in
//! redundancy for chat latency under loss); it is the last variant, so the older ones keep their
//! wire tags.
//! Field semantics are specified in `docs/protocol.md`.

use serde::{Deserialize, Serialize};

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
}

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
        }
    }
}
