//! The datagram envelope: `magic | version | body | crc32`.
//!
//! The magic tells our datagrams from anyone else's, the version lets the format change, and the
//! CRC-32 (crc32fast, IEEE polynomial) over everything before it catches corruption that UDP's
//! optional 16-bit checksum misses. [`decode`] checks in the order a reader would by eye —
//! length, magic, version, checksum, body, trailing bytes — and never panics. A bundle's count
//! is checked both ways: we never send, and never accept, an empty or oversized one.

use crate::codec;
use crate::error::{DecodeError, EncodeError};
use crate::packet::{Packet, MAX_BUNDLE};
use crate::MAX_UDP_PAYLOAD;

/// First two bytes of every udpchat datagram: ASCII "UC".
pub const MAGIC: [u8; 2] = *b"UC";
/// Protocol version this build speaks.
/// Version 2 added the data token and the ack's delivered point and echo (issue 11); version 3
/// the `Fin` and `Nick` packets (a half-close, and a nickname change in the session).
pub const VERSION: u8 = 3;
/// Bytes before the body: magic and version.
pub const HEADER_LEN: usize = 3;
/// Bytes after the body: the CRC-32.
pub const TRAILER_LEN: usize = 4;

/// Encodes `packet` as one datagram, appended to `out` (which is cleared first). Fails, leaving
/// `out` empty, if the datagram would be longer than `max_len` bytes.
pub fn encode_into(packet: &Packet, max_len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.clear();
    if let Some(count) = bad_bundle_count(packet) {
        return Err(EncodeError::BundleSize {
            count,
            max: MAX_BUNDLE,
        });
    }
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    if let Err(e) = codec::encode_body(packet, out) {
        out.clear();
        return Err(e);
    }
    let needed = out.len() + TRAILER_LEN;
    let max = max_len.min(MAX_UDP_PAYLOAD);
    if needed > max {
        out.clear();
        return Err(EncodeError::TooLarge { needed, max });
    }
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Encodes `packet` as a new datagram of at most `max_len` bytes.
pub fn encode(packet: &Packet, max_len: usize) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(packet, max_len, &mut out)?;
    Ok(out)
}

/// Decodes one datagram.
pub fn decode(datagram: &[u8]) -> Result<Packet, DecodeError> {
    let len = datagram.len();
    let min = HEADER_LEN + 1 + TRAILER_LEN;
    if len < min {
        return Err(DecodeError::TooShort { len, min });
    }
    if len > MAX_UDP_PAYLOAD {
        return Err(DecodeError::TooLarge {
            len,
            max: MAX_UDP_PAYLOAD,
        });
    }
    let found = [datagram[0], datagram[1]];
    if found != MAGIC {
        return Err(DecodeError::BadMagic { found });
    }
    if datagram[2] != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: datagram[2],
            supported: VERSION,
        });
    }
    // An encrypted datagram shares the first three bytes; its kind byte can never start a plain
    // body, so it is named for what it is rather than failing the CRC it does not carry.
    if let Some(kind) = crate::sealed::sealed_kind(datagram) {
        return Err(DecodeError::Sealed { kind: kind.name() });
    }
    let (covered, trailer) = datagram.split_at(len - TRAILER_LEN);
    let received = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let computed = crc32fast::hash(covered);
    if computed != received {
        return Err(DecodeError::BadChecksum { computed, received });
    }
    let body = &covered[HEADER_LEN..];
    let (packet, used) = codec::decode_body(body)?;
    if used != body.len() {
        return Err(DecodeError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    if let Some(count) = bad_bundle_count(&packet) {
        return Err(DecodeError::BundleSize {
            count,
            max: MAX_BUNDLE,
        });
    }
    Ok(packet)
}

/// The count of a bundle that holds none or too many packets.
fn bad_bundle_count(packet: &Packet) -> Option<usize> {
    match packet {
        Packet::Bundle(items) if items.is_empty() || items.len() > MAX_BUNDLE => Some(items.len()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::arb;
    use crate::packet::RawMessage;

    fn hello_datagram() -> Vec<u8> {
        let packet = Packet::Raw(RawMessage {
            seq: 7,
            nick: "alice".into(),
            text: "hi".into(),
        });
        encode(&packet, 1200).unwrap()
    }

    #[test]
    fn raw_text_that_is_not_utf8_decodes_with_replacement_characters() {
        let packet = Packet::Raw(RawMessage {
            seq: 3,
            nick: "al??".into(),
            text: "bad ?? here".into(),
        });
        let mut d = encode(&packet, 1200).unwrap();
        let body_end = d.len() - 4;
        for i in 0..body_end - 1 {
            if &d[i..i + 2] == b"??" {
                d[i..i + 2].copy_from_slice(&[0xff, 0xfe]);
            }
        }
        let crc = crc32fast::hash(&d[..body_end]);
        d[body_end..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&d).unwrap(),
            Packet::Raw(RawMessage {
                seq: 3,
                nick: "al\u{fffd}\u{fffd}".into(),
                text: "bad \u{fffd}\u{fffd} here".into(),
            })
        );
    }

    #[test]
    fn layout_is_magic_version_body_crc() {
        let d = hello_datagram();
        assert_eq!(&d[..2], b"UC");
        assert_eq!(d[2], VERSION);
        let crc = crc32fast::hash(&d[..d.len() - 4]);
        assert_eq!(&d[d.len() - 4..], &crc.to_le_bytes());
    }

    /// The worked example of docs/protocol.md, byte for byte: if this changes, the wire changed.
    #[test]
    fn golden_raw_datagram() {
        let expected = [
            0x55, 0x43, 0x03, 0x00, 0x07, 0x05, b'a', b'l', b'i', b'c', b'e', 0x02, b'h', b'i',
            0x23, 0x93, 0x89, 0x9a,
        ];
        assert_eq!(hello_datagram(), expected);
    }

    /// The second worked example of docs/protocol.md: a data packet carrying its token and a
    /// piggybacked ack with a delivered point and echo.
    #[test]
    fn golden_data_datagram() {
        let packet = Packet::Data(crate::packet::Data {
            dst: crate::packet::ConnectionId(0x0102_0304_0506_0708),
            seq: crate::packet::SeqNum(5),
            message: 3,
            fragment: 0,
            fragments: 1,
            token: 0xcafe_f00d,
            payload: b"hi".to_vec(),
            ack: Some(crate::packet::Ack {
                cumulative: crate::packet::SeqNum(9),
                ranges: vec![crate::packet::AckRange {
                    first: crate::packet::SeqNum(11),
                    last: crate::packet::SeqNum(12),
                }],
                delay_us: 300,
                window: 512,
                delivered: crate::packet::SeqNum(7),
                echo: 0x0bad_cafe,
                ranges_delivered: false,
            }),
        });
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x55, 0x43, 0x03, // magic "UC", version 3
            0x03, // Packet variant 3: Data
            0xfd, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // dst: 0xfd + u64 LE
            0x05, // seq = 5
            0x03, // message = 3
            0x00, // fragment = 0
            0x01, // fragments = 1
            0xfc, 0x0d, 0xf0, 0xfe, 0xca, // token: 0xfc + u32 LE
            0x02, 0x68, 0x69, // payload: length 2, "hi"
            0x01, // ack: Some
            0x09, // cumulative = 9
            0x01, 0x0b, 0x0c, // ranges: 1 range, 11..=12
            0xfb, 0x2c, 0x01, // delay_us = 300 (0xfb + u16)
            0xfb, 0x00, 0x02, // window = 512 (0xfb + u16)
            0x07, // delivered = 7
            0xfc, 0xfe, 0xca, 0xad, 0x0b, // echo: 0xfc + u32 LE
            0x00, // ranges_delivered: false
            0xb4, 0x07, 0xfd, 0x55, // CRC-32
        ];
        assert_eq!(encode(&packet, 1200).unwrap(), expected);
    }

    /// The third worked example of docs/protocol.md: a `Fin` (a half-close) is a `Data` packet
    /// of one empty fragment under its own kind.
    #[test]
    fn golden_fin_datagram() {
        let packet = Packet::Fin(crate::packet::Data {
            dst: crate::packet::ConnectionId(0x0102_0304_0506_0708),
            seq: crate::packet::SeqNum(6),
            message: 4,
            fragment: 0,
            fragments: 1,
            token: 0xcafe_f00d,
            payload: Vec::new(),
            ack: None,
        });
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x55, 0x43, 0x03, // magic "UC", version 3
            0x09, // Packet variant 9: Fin
            0xfd, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // dst: 0xfd + u64 LE
            0x06, // seq = 6
            0x04, // message = 4
            0x00, // fragment = 0
            0x01, // fragments = 1
            0xfc, 0x0d, 0xf0, 0xfe, 0xca, // token: 0xfc + u32 LE
            0x00, // payload: length 0
            0x00, // ack: None
            0x24, 0x61, 0x4f, 0x48, // CRC-32
        ];
        assert_eq!(encode(&packet, 1200).unwrap(), expected);
        assert_eq!(decode(expected).unwrap(), packet);
    }

    /// The fourth worked example of docs/protocol.md: a path MTU probe padded to 32 bytes, and
    /// its answer.
    #[test]
    fn golden_probe_datagrams() {
        let dst = crate::packet::ConnectionId(0x0102_0304_0506_0708);
        let probe = Packet::probe(dst, 7, 32).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x55, 0x43, 0x03, // magic "UC", version 3
            0x0b, // Packet variant 11: Probe
            0xfd, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // dst: 0xfd + u64 LE
            0x07, // id = 7
            0x0d, // padding: length 13, zeros
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0xac, 0xe9, 0xd4, 0x36, // CRC-32
        ];
        assert_eq!(encode(&probe, 1200).unwrap(), expected);
        assert_eq!(decode(expected).unwrap(), probe);
        let answer = Packet::ProbeAck { dst, id: 7 };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x55, 0x43, 0x03, // magic "UC", version 3
            0x0c, // Packet variant 12: ProbeAck
            0xfd, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // dst: 0xfd + u64 LE
            0x07, // id = 7
            0x66, 0x10, 0xac, 0x0b, // CRC-32
        ];
        assert_eq!(encode(&answer, 1200).unwrap(), expected);
    }

    /// The fifth worked example of docs/protocol.md: piece 1 of 2 of datagram 9, carrying three
    /// bytes of it.
    #[test]
    fn golden_piece_datagram() {
        let piece = Packet::Piece {
            dst: crate::packet::ConnectionId(0x0102_0304_0506_0708),
            id: 9,
            index: 1,
            count: 2,
            bytes: vec![0xaa, 0xbb, 0xcc],
        };
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x55, 0x43, 0x03, // magic "UC", version 3
            0x0d, // Packet variant 13: Piece
            0xfd, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // dst: 0xfd + u64 LE
            0x09, // id = 9
            0x01, // index = 1
            0x02, // count = 2
            0x03, 0xaa, 0xbb, 0xcc, // bytes: length 3, then the bytes
            0x51, 0x2d, 0xdb, 0x31, // CRC-32
        ];
        assert_eq!(encode(&piece, 1200).unwrap(), expected);
        assert_eq!(decode(expected).unwrap(), piece);
    }

    #[test]
    fn each_check_has_its_own_error() {
        let good = hello_datagram();
        assert!(matches!(
            decode(&good[..5]),
            Err(DecodeError::TooShort { len: 5, .. })
        ));
        assert!(matches!(
            decode(&vec![0u8; MAX_UDP_PAYLOAD + 1]),
            Err(DecodeError::TooLarge { .. })
        ));

        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(
            decode(&bad),
            Err(DecodeError::BadMagic {
                found: [b'X', b'C']
            })
        );

        let mut bad = good.clone();
        bad[2] = 9;
        assert_eq!(
            decode(&bad),
            Err(DecodeError::UnsupportedVersion {
                found: 9,
                supported: VERSION
            })
        );

        let mut bad = good.clone();
        bad[4] ^= 0x10;
        assert!(matches!(decode(&bad), Err(DecodeError::BadChecksum { .. })));
    }

    /// Re-seals `body` with a valid header and CRC, so the body checks are reached.
    fn seal(body: &[u8]) -> Vec<u8> {
        let mut d = MAGIC.to_vec();
        d.push(VERSION);
        d.extend_from_slice(body);
        let crc = crc32fast::hash(&d);
        d.extend_from_slice(&crc.to_le_bytes());
        d
    }

    #[test]
    fn an_encrypted_datagram_is_named_not_failed_on_its_checksum() {
        let mut d = crate::sealed::SealedKind::Sealed.header().to_vec();
        d.extend_from_slice(&[0u8; 32]);
        let err = decode(&d).unwrap_err();
        assert_eq!(err, DecodeError::Sealed { kind: "sealed" });
        assert!(err.to_string().contains("--secret"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let good = hello_datagram();
        let mut body = good[HEADER_LEN..good.len() - TRAILER_LEN].to_vec();
        body.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode(&seal(&body)),
            Err(DecodeError::TrailingBytes { extra: 2 })
        );
    }

    #[test]
    fn garbage_body_is_malformed() {
        assert!(matches!(
            decode(&seal(&[0xff; 9])),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate_its_claim() {
        // Variant 0 (Raw), seq 0, then a nick claiming u64::MAX-ish bytes (varint 0xfd + 8 bytes).
        let mut body = vec![0, 0, 0xfd];
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode(&seal(&body)),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn encode_refuses_what_does_not_fit() {
        let packet = Packet::Raw(RawMessage {
            seq: 0,
            nick: "n".into(),
            text: "x".repeat(2000),
        });
        let mut out = vec![1, 2, 3];
        let err = encode_into(&packet, 1200, &mut out).unwrap_err();
        assert!(matches!(err, EncodeError::TooLarge { max: 1200, .. }));
        assert!(out.is_empty());
        assert!(encode(&packet, 4000).is_ok());
    }

    fn data(seq: u64) -> crate::packet::Data {
        crate::packet::Data {
            dst: crate::packet::ConnectionId(7),
            seq: crate::packet::SeqNum(seq),
            message: seq,
            fragment: 0,
            fragments: 1,
            token: 0x1234_5678,
            payload: b"a chat line".to_vec(),
            ack: None,
        }
    }

    #[test]
    fn a_bundle_round_trips_and_its_count_is_capped_both_ways() {
        let full = Packet::Bundle((0..MAX_BUNDLE as u64).map(data).collect());
        assert_eq!(decode(&encode(&full, 1200).unwrap()).unwrap(), full);
        for count in [0, MAX_BUNDLE + 1] {
            let bad = Packet::Bundle((0..count as u64).map(data).collect());
            assert_eq!(
                encode(&bad, MAX_UDP_PAYLOAD),
                Err(EncodeError::BundleSize {
                    count,
                    max: MAX_BUNDLE
                })
            );
            // Built by hand, as a hostile sender would: the decoder refuses it too.
            let mut body = Vec::new();
            codec::encode_body(&bad, &mut body).unwrap();
            assert_eq!(
                decode(&seal(&body)),
                Err(DecodeError::BundleSize {
                    count,
                    max: MAX_BUNDLE
                })
            );
        }
    }

    #[test]
    fn a_bundle_claiming_a_huge_count_does_not_allocate_its_claim() {
        // Variant 8 (Bundle), then a count of u64::MAX-ish (varint 0xfd + 8 bytes), no items.
        let mut body = vec![8, 0xfd];
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode(&seal(&body)),
            Err(DecodeError::Malformed(_))
        ));
    }

    proptest! {
        // A fixed seed: CI runs the same cases every time, so a failure is reproducible.
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x75_64_70),
            ..ProptestConfig::default()
        })]

        #[test]
        fn every_packet_round_trips(packet in arb::packet()) {
            let d = encode(&packet, MAX_UDP_PAYLOAD).unwrap();
            prop_assert_eq!(decode(&d).unwrap(), packet);
        }

        #[test]
        fn every_single_bit_flip_is_rejected(packet in arb::packet()) {
            let d = encode(&packet, MAX_UDP_PAYLOAD).unwrap();
            for bit in 0..d.len() * 8 {
                let mut flipped = d.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                prop_assert!(decode(&flipped).is_err(), "flip of bit {} accepted", bit);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn arbitrary_bodies_with_valid_envelope_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            // Most of these fail in the body decoder; none may panic, and whatever is accepted
            // must survive a round trip of its own.
            if let Ok(packet) = decode(&seal(&body)) {
                let again = encode(&packet, MAX_UDP_PAYLOAD).unwrap();
                prop_assert_eq!(decode(&again).unwrap(), packet);
            }
        }
    }
}
