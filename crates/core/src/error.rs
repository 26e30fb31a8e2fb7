//! Errors of the wire: one variant per way a datagram can be wrong, and per way a packet can fail
//! to fit.

use thiserror::Error;

/// Why a received datagram was rejected. Checked in this order: length, magic, version, encrypted
/// kind, checksum, body, trailing bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Shorter than the fixed header and trailer.
    #[error("datagram too short: {len} bytes, at least {min} needed")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Smallest possible datagram.
        min: usize,
    },
    /// Longer than any UDP payload can be.
    #[error("datagram too large: {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// Does not start with udpchat's magic bytes: not ours.
    #[error("bad magic {found:02x?}: not a udpchat datagram")]
    BadMagic {
        /// The first two bytes.
        found: [u8; 2],
    },
    /// A udpchat datagram of a protocol version we do not speak.
    #[error("unsupported protocol version {found} (this build speaks {supported})")]
    UnsupportedVersion {
        /// The version byte received.
        found: u8,
        /// The version we speak.
        supported: u8,
    },
    /// The CRC-32 does not match: damaged in transit.
    #[error("bad checksum: computed {computed:#010x}, datagram says {received:#010x}")]
    BadChecksum {
        /// CRC of the bytes received.
        computed: u32,
        /// CRC carried in the trailer.
        received: u32,
    },
    /// An encrypted udpchat datagram (`crate::sealed`): the sender runs with `--secret`, and
    /// this endpoint does not. Named before the checksum, which encrypted datagrams do not carry.
    #[error(
        "an encrypted udpchat datagram ({kind}): the peer uses encryption (--secret); \
         restart with --secret and the same passphrase"
    )]
    Sealed {
        /// Which encrypted kind (`init`, `reply`, `reject`, `sealed`).
        kind: &'static str,
    },
    /// The checksum matched but the body is not a valid packet.
    #[error("malformed packet body: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over before the checksum.
    #[error("{extra} trailing bytes after the packet body")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// A bundle holding no packets, or more than the protocol allows.
    #[error("bundle of {count} data packets: 1..={max} allowed")]
    BundleSize {
        /// Packets in the bundle.
        count: usize,
        /// Most a bundle may hold.
        max: usize,
    },
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoded datagram would exceed the size the caller allows.
    #[error("packet needs {needed} bytes but at most {max} fit in one datagram")]
    TooLarge {
        /// Bytes the datagram would take.
        needed: usize,
        /// Limit it had to fit.
        max: usize,
    },
    /// A bundle holding no packets, or more than the protocol allows.
    #[error("bundle of {count} data packets: 1..={max} allowed")]
    BundleSize {
        /// Packets in the bundle.
        count: usize,
        /// Most a bundle may hold.
        max: usize,
    },
    /// The body encoder failed (should not happen for well-formed packets).
    #[error("could not encode packet body: {0}")]
    Body(String),
}
