//! The clear headers of encrypted (`--secret`) datagrams: what an observer still sees.
//!
//! An encrypted session uses four kinds of datagram of its own. They share the plain envelope's
//! first three bytes (`"UC"`, version) so that a plain endpoint recognises them and can say "the
//! peer uses encryption" instead of "bad checksum"; the fourth byte is the kind, from `0x80` up,
//! where no plain packet's first body byte can be (bincode writes the plain kind as a varint
//! below 251, and the plain enum has a dozen variants). Everything after the fields below is
//! opaque here: this module only parses and emits the clear parts; `udpchat-secure` owns the
//! cryptography.
//!
//! | kind | bytes | layout |
//! |---|---|---|
//! | `Init` (`0x80`) | 72 | header(4) · initiator id(8) · Noise msg 1 (56) · CRC-32(4) |
//! | `Reply` (`0x81`) | 72 | header(4) · initiator id(8) · Noise msg 2 (56) · CRC-32(4) |
//! | `Reject` (`0x82`) | 16 | header(4) · initiator id(8) · CRC-32(4) |
//! | `Sealed` (`0x83`) | ≥ 36 | header(4) · receiver id(8) · counter(8) · ciphertext · tag(16) |
//!
//! The handshake kinds keep a CRC-32: they are not (or not wholly) covered by an AEAD tag, and
//! a datagram damaged in transit must read as damage, not as a wrong passphrase. A `Sealed`
//! datagram has no CRC: its AEAD tag covers the clear header (as associated data) and the
//! ciphertext, and detects any damage a CRC would, and forgeries too. Ids and counters are
//! little endian, as the rest of the wire.

use crate::envelope::{MAGIC, TRAILER_LEN, VERSION};

/// Bytes of every encrypted datagram's fixed start: magic, version, kind.
pub const KIND_HEADER_LEN: usize = 4;
/// Length of a Noise handshake message as udpchat sends it (both directions).
pub const NOISE_HANDSHAKE_LEN: usize = 56;
/// Length of an `Init` and of a `Reply` datagram. Equal on purpose: the answer to an
/// unauthenticated `Init` is never larger than the `Init` (no amplification).
pub const HANDSHAKE_LEN: usize = KIND_HEADER_LEN + 8 + NOISE_HANDSHAKE_LEN + TRAILER_LEN;
/// Length of a `Reject` datagram.
pub const REJECT_LEN: usize = KIND_HEADER_LEN + 8 + TRAILER_LEN;
/// Bytes of a `Sealed` datagram before its ciphertext: kind header, receiver id, counter.
pub const SEALED_HEADER_LEN: usize = KIND_HEADER_LEN + 8 + 8;
/// Bytes of the AEAD tag (ChaCha20-Poly1305) at the end of a `Sealed` datagram.
pub const TAG_LEN: usize = 16;

/// The kinds of encrypted datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealedKind {
    /// The first handshake message, initiator to responder.
    Init,
    /// The second handshake message, responder to initiator.
    Reply,
    /// The initiator could not authenticate the `Reply`: a different passphrase.
    Reject,
    /// A transport datagram: a sealed udpchat packet.
    Sealed,
}

impl SealedKind {
    /// Every kind, in byte order.
    pub const ALL: [SealedKind; 4] = [
        SealedKind::Init,
        SealedKind::Reply,
        SealedKind::Reject,
        SealedKind::Sealed,
    ];

    /// The kind's byte (the fourth of the datagram).
    pub const fn byte(self) -> u8 {
        match self {
            SealedKind::Init => 0x80,
            SealedKind::Reply => 0x81,
            SealedKind::Reject => 0x82,
            SealedKind::Sealed => 0x83,
        }
    }

    /// The kind a byte names, if any.
    pub fn from_byte(byte: u8) -> Option<SealedKind> {
        SealedKind::ALL.into_iter().find(|k| k.byte() == byte)
    }

    /// A short lower-case name, for traces and summaries.
    pub fn name(self) -> &'static str {
        match self {
            SealedKind::Init => "init",
            SealedKind::Reply => "reply",
            SealedKind::Reject => "reject",
            SealedKind::Sealed => "sealed",
        }
    }

    /// The four bytes every datagram of this kind starts with.
    pub fn header(self) -> [u8; KIND_HEADER_LEN] {
        [MAGIC[0], MAGIC[1], VERSION, self.byte()]
    }
}

/// The kind of an encrypted datagram: `Some` when it starts with our magic and version and an
/// encrypted kind byte, whatever follows. Plain datagrams give `None`.
pub fn sealed_kind(datagram: &[u8]) -> Option<SealedKind> {
    match datagram {
        [m0, m1, v, kind, ..] if [*m0, *m1] == MAGIC && *v == VERSION => {
            SealedKind::from_byte(*kind)
        }
        _ => None,
    }
}

/// The clear fields of a `Sealed` datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// The receiver's session id (it chose it in the handshake).
    pub receiver: u64,
    /// The sender's datagram counter: the AEAD nonce, and the replay filter's number.
    pub counter: u64,
}

impl SealedHeader {
    /// Parses the clear header of a `Sealed` datagram: `None` unless it is one and is long enough
    /// to hold a header and a tag.
    pub fn parse(datagram: &[u8]) -> Option<SealedHeader> {
        if sealed_kind(datagram) != Some(SealedKind::Sealed)
            || datagram.len() < SEALED_HEADER_LEN + TAG_LEN
        {
            return None;
        }
        Some(SealedHeader {
            receiver: read_u64(datagram, KIND_HEADER_LEN)?,
            counter: read_u64(datagram, KIND_HEADER_LEN + 8)?,
        })
    }

    /// The header's bytes: the associated data of the AEAD.
    pub fn emit(&self) -> [u8; SEALED_HEADER_LEN] {
        let mut out = [0u8; SEALED_HEADER_LEN];
        out[..KIND_HEADER_LEN].copy_from_slice(&SealedKind::Sealed.header());
        out[KIND_HEADER_LEN..KIND_HEADER_LEN + 8].copy_from_slice(&self.receiver.to_le_bytes());
        out[KIND_HEADER_LEN + 8..].copy_from_slice(&self.counter.to_le_bytes());
        out
    }
}

/// A handshake datagram (`Init`, `Reply`, `Reject`) whose length and CRC-32 are right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeFrame<'a> {
    /// Which of the three.
    pub kind: SealedKind,
    /// The initiator's session id, which names the attempt.
    pub initiator: u64,
    /// The Noise message (empty for a `Reject`).
    pub noise: &'a [u8],
}

/// Why a handshake datagram was refused before any cryptography.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not one of the three handshake kinds.
    #[error("not a handshake datagram")]
    NotHandshake,
    /// The length is not the kind's fixed length.
    #[error("a handshake datagram of {len} bytes ({expected} expected)")]
    BadLength {
        /// Bytes received.
        len: usize,
        /// The kind's length.
        expected: usize,
    },
    /// Damaged in transit.
    #[error("a handshake datagram with a bad checksum")]
    BadChecksum,
}

impl<'a> HandshakeFrame<'a> {
    /// Checks kind, length and CRC-32, in that order.
    pub fn parse(datagram: &'a [u8]) -> Result<HandshakeFrame<'a>, FrameError> {
        let kind = match sealed_kind(datagram) {
            Some(SealedKind::Sealed) | None => return Err(FrameError::NotHandshake),
            Some(kind) => kind,
        };
        let expected = if kind == SealedKind::Reject {
            REJECT_LEN
        } else {
            HANDSHAKE_LEN
        };
        if datagram.len() != expected {
            return Err(FrameError::BadLength {
                len: datagram.len(),
                expected,
            });
        }
        let (covered, trailer) = datagram.split_at(expected - TRAILER_LEN);
        if crc32fast::hash(covered).to_le_bytes() != trailer {
            return Err(FrameError::BadChecksum);
        }
        Ok(HandshakeFrame {
            kind,
            initiator: read_u64(datagram, KIND_HEADER_LEN).ok_or(FrameError::NotHandshake)?,
            noise: &covered[KIND_HEADER_LEN + 8..],
        })
    }

    /// The datagram's bytes. `noise` must be [`NOISE_HANDSHAKE_LEN`] bytes for `Init` and
    /// `Reply`, and empty for `Reject`; anything else is a bug of the caller, so it is refused
    /// (`None`) rather than sent.
    pub fn emit(&self) -> Option<Vec<u8>> {
        let want = match self.kind {
            SealedKind::Init | SealedKind::Reply => NOISE_HANDSHAKE_LEN,
            SealedKind::Reject => 0,
            SealedKind::Sealed => return None,
        };
        if self.noise.len() != want {
            return None;
        }
        let mut out = self.kind.header().to_vec();
        out.extend_from_slice(&self.initiator.to_le_bytes());
        out.extend_from_slice(self.noise);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Some(out)
    }
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(field))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// docs/protocol.md's worked example of a sealed header, byte for byte.
    #[test]
    fn golden_sealed_header() {
        let header = SealedHeader {
            receiver: 0x0102_0304_0506_0708,
            counter: 0x0001_0000_0000_002a,
        };
        #[rustfmt::skip]
        let expected = [
            0x55, 0x43, 0x03, // magic "UC", version 3
            0x83, // kind: Sealed
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // receiver id, u64 LE
            0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, // counter, u64 LE (epoch 1, #42)
        ];
        assert_eq!(header.emit(), expected);
        let mut datagram = expected.to_vec();
        datagram.extend_from_slice(&[0u8; TAG_LEN]);
        assert_eq!(SealedHeader::parse(&datagram), Some(header));
        assert_eq!(SealedHeader::parse(&datagram[..datagram.len() - 1]), None);
    }

    /// docs/protocol.md's worked example of a `Reject`, byte for byte.
    #[test]
    fn golden_reject() {
        let frame = HandshakeFrame {
            kind: SealedKind::Reject,
            initiator: 0x1122_3344_5566_7788,
            noise: &[],
        };
        #[rustfmt::skip]
        let expected = [
            0x55, 0x43, 0x03, 0x82, // magic, version, kind: Reject
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // initiator id, u64 LE
            0x10, 0x29, 0x25, 0x4b, // CRC-32
        ];
        let bytes = frame.emit().unwrap();
        assert_eq!(bytes, expected);
        assert_eq!(HandshakeFrame::parse(&bytes), Ok(frame));
    }

    #[test]
    fn handshake_frames_check_length_then_checksum() {
        let noise = [7u8; NOISE_HANDSHAKE_LEN];
        let frame = HandshakeFrame {
            kind: SealedKind::Init,
            initiator: 9,
            noise: &noise,
        };
        let bytes = frame.emit().unwrap();
        assert_eq!(bytes.len(), HANDSHAKE_LEN);
        assert_eq!(HandshakeFrame::parse(&bytes), Ok(frame));
        assert_eq!(
            HandshakeFrame::parse(&bytes[..40]),
            Err(FrameError::BadLength {
                len: 40,
                expected: HANDSHAKE_LEN
            })
        );
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(HandshakeFrame::parse(&flipped).is_err(), "bit {bit}");
        }
        assert_eq!(
            HandshakeFrame {
                kind: SealedKind::Init,
                initiator: 9,
                noise: &noise[..3]
            }
            .emit(),
            None
        );
    }

    #[test]
    fn plain_datagrams_are_not_sealed_kinds() {
        let plain = crate::encode(
            &crate::Packet::Raw(crate::RawMessage {
                seq: 1,
                nick: "a".into(),
                text: "b".into(),
            }),
            1200,
        )
        .unwrap();
        assert_eq!(sealed_kind(&plain), None);
        for kind in SealedKind::ALL {
            assert_eq!(sealed_kind(&kind.header()), Some(kind));
        }
    }
}
