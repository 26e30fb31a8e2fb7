//! The udpchat wire: what a datagram looks like, and nothing else.
//!
//! A datagram is `magic (2) | version (1) | body | crc32 (4, little endian)`; the body is one
//! [`Packet`] encoded by the [`codec`] module (the only place that knows about bincode). This
//! crate never touches a socket, a clock or a thread, so every layer above can use it in tests,
//! in the simulator and over real sockets alike. The byte-level spec is `docs/protocol.md`.

#[cfg(test)]
mod arb;
pub mod codec;
pub mod envelope;
pub mod error;
pub mod packet;
pub mod sealed;

pub use envelope::{decode, encode, encode_into, HEADER_LEN, MAGIC, TRAILER_LEN, VERSION};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    max_data_overhead, max_piece_overhead, Ack, AckRange, ConnectionId, Data, Hello, Packet,
    PacketKind, RawMessage, SeqNum, Welcome, MAX_BUNDLE, MAX_PIECES,
};

/// Default largest datagram udpchat sends: safe on real internet paths (QUIC uses the same).
pub const DEFAULT_MAX_DATAGRAM: usize = 1200;

/// The largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP). No datagram is ever larger, so
/// this bounds what the decoder may allocate.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
