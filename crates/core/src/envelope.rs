//! The datagram envelope: `magic | version | body | crc32`.
//!
//! The magic tells our datagrams from anyone else's, the version lets the format change, and the
//! CRC-32 (crc32fast, IEEE polynomial) over everything before it catches corruption that UDP's
//! optional 16-bit checksum misses. [`decode`] checks in the order a reader would by eye —
//! length, magic, version, checksum, body, trailing bytes — and never panics.

use crate::codec;
use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;
use crate::MAX_UDP_PAYLOAD;

/// First two bytes of every udpchat datagram: ASCII "UC".
pub const MAGIC: [u8; 2] = *b"UC";
/// Protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Bytes before the body: magic and version.
pub const HEADER_LEN: usize = 3;
/// Bytes after the body: the CRC-32.
pub const TRAILER_LEN: usize = 4;

/// Encodes `packet` as one datagram, appended to `out` (which is cleared first). Fails, leaving
/// `out` empty, if the datagram would be longer than `max_len` bytes.
pub fn encode_into(packet: &Packet, max_len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.clear();
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
    Ok(packet)
}
