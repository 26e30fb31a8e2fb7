//! The body codec: the only module that knows the body is bincode.
//!
//! Swapping the body encoding (postcard, wincode, a hand-written one) means changing these two
//! functions and nothing else. bincode's size limit guards decoding only, so the envelope checks
//! sizes before anything is sent.

use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;
use crate::MAX_UDP_PAYLOAD;

/// bincode 2's standard configuration: little endian, varint integers.
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends the encoding of `packet` to `out`.
pub fn encode_body(packet: &Packet, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    bincode::serde::encode_into_std_write(packet, out, config())
        .map(|_| ())
        .map_err(|e| EncodeError::Body(e.to_string()))
}

/// Decodes one packet from `body`, returning it and how many bytes it used.
///
/// bincode allocates a string or byte field at the length its prefix claims before reading it,
/// so the decoder gets a hard limit: the body's own length rounded up to a power of two. A
/// hostile prefix therefore costs at most twice the datagram, never the gigabytes it claims.
/// (The limit is a const generic in bincode 2, hence the ladder.)
pub fn decode_body(body: &[u8]) -> Result<(Packet, usize), DecodeError> {
    match body.len().next_power_of_two() {
        0..=256 => decode_limited::<256>(body),
        512 => decode_limited::<512>(body),
        1024 => decode_limited::<1024>(body),
        2048 => decode_limited::<2048>(body),
        4096 => decode_limited::<4096>(body),
        8192 => decode_limited::<8192>(body),
        16384 => decode_limited::<16384>(body),
        32768 => decode_limited::<32768>(body),
        _ => decode_limited::<MAX_UDP_PAYLOAD>(body),
    }
}

fn decode_limited<const LIMIT: usize>(body: &[u8]) -> Result<(Packet, usize), DecodeError> {
    bincode::serde::decode_from_slice(body, config().with_limit::<LIMIT>())
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}
