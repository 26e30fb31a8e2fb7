//! The body codec: the only module that knows the body is bincode.
//!
//! Swapping the body encoding (postcard, wincode, a hand-written one) means changing these two
//! functions and nothing else. bincode's size limit guards decoding only, so the envelope checks
//! sizes before anything is sent.

use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;
use crate::MAX_UDP_PAYLOAD;

/// bincode 2's standard configuration (little endian, varint integers) with a hard limit on what
/// a body may claim: no length prefix in a hostile datagram can make the decoder allocate more
/// than a UDP payload.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_UDP_PAYLOAD>()
}

/// Appends the encoding of `packet` to `out`.
pub fn encode_body(packet: &Packet, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    bincode::serde::encode_into_std_write(packet, out, config())
        .map(|_| ())
        .map_err(|e| EncodeError::Body(e.to_string()))
}

/// Decodes one packet from `body`, returning it and how many bytes it used.
pub fn decode_body(body: &[u8]) -> Result<(Packet, usize), DecodeError> {
    bincode::serde::decode_from_slice(body, config())
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}
