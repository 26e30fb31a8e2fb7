//! The body codec: the only module that knows the body is bincode.
//!
//! Swapping the body encoding (postcard, wincode, a hand-written one) means changing these three
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

/// How many bytes the encoding of `value` takes, computed by running the encoder over a writer
/// that only counts (no allocation, no bytes written). This is how every size above the codec is
/// known without re-encoding to measure, or hand-counting varint widths.
pub fn encoded_body_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    // Encoding into a counter cannot fail for our types (no maps of unknown length, no custom
    // serializer that errors); if it ever did, overestimating keeps every "does it fit" check
    // on the safe side.
    match bincode::serde::encode_into_writer(value, &mut counter, config()) {
        Ok(()) => counter.bytes_written,
        Err(_) => usize::MAX / 2,
    }
}

/// Decodes one packet from `body`, returning it and how many bytes it used.
///
/// bincode allocates a string or byte field at the length its prefix claims before reading it,
/// so the decoder gets a hard limit: eight times the body's length, rounded up to a power of
/// two. Eight because bincode charges every integer its in-memory size, while the varint wire form
/// of a `u64` can be a single byte (an ack's ranges are 16 bytes in memory, 2 on the wire). A
/// hostile prefix therefore costs at most 16 times the datagram, never the gigabytes it claims.
/// (The limit is a const generic in bincode 2, hence the ladder.)
pub fn decode_body(body: &[u8]) -> Result<(Packet, usize), DecodeError> {
    match body.len().saturating_mul(8).next_power_of_two() {
        0..=256 => decode_limited::<256>(body),
        512 => decode_limited::<512>(body),
        1024 => decode_limited::<1024>(body),
        2048 => decode_limited::<2048>(body),
        4096 => decode_limited::<4096>(body),
        8192 => decode_limited::<8192>(body),
        16384 => decode_limited::<16384>(body),
        32768 => decode_limited::<32768>(body),
        65536 => decode_limited::<65536>(body),
        131072 => decode_limited::<131072>(body),
        262144 => decode_limited::<262144>(body),
        _ => decode_limited::<{ 8 * MAX_UDP_PAYLOAD }>(body),
    }
}

fn decode_limited<const LIMIT: usize>(body: &[u8]) -> Result<(Packet, usize), DecodeError> {
    bincode::serde::decode_from_slice(body, config().with_limit::<LIMIT>())
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}
