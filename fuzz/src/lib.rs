//! The harnesses behind udpchat's fuzz targets, shared by the targets (`fuzz_targets/`) and the
//! seed-corpus generator (`examples/seed_corpus.rs`).
//!
//! Each target is a thin `fuzz_target!` around one `run` function here:
//!
//! - [`decode::run`]: arbitrary bytes into the envelope decoder; what it accepts must round-trip.
//! - [`raw::run`]: a fuzzed sequence of operations against a `RawEndpoint`.
//! - [`reliable::run`]: the same against a `ReliableEndpoint`, with packets built from fuzzed
//!   fields around the ids and sequence numbers the session really uses, so the fuzzer spends its
//!   time inside the state machine instead of failing the CRC.
//! - [`pair::run`]: two reliable endpoints through a network the fuzzer controls (which datagram
//!   arrives next, is lost, duplicated or corrupted): what one side shows is exactly what the
//!   other sent.
//! - [`secured::run`]: two encrypted raw endpoints (`--secret`) through a network the fuzzer runs,
//!   and an attacker who replays, flips, truncates and forges: only alice's lines are shown, once
//!   each, and no unauthenticated datagram is answered with more bytes than it carried.
//! - [`secure_stream::run`]: TCP mode's encryption (`SecureStream`), two ends joined by ordered
//!   queues of frames and an attacker on the path who flips, truncates, deletes, replays and
//!   injects: each side opens exactly the other's sealed datagrams in order, and any bad frame
//!   ends the stream for good.
//!
//! The endpoint inputs are read op by op from an [`arbitrary::Unstructured`] (a `Setup`, then
//! `Op`s until the bytes run out) rather than as one derived struct, so that [`tape`] can write
//! the same byte layout back and the seed corpus can hold meaningful sessions.

pub mod decode;
pub mod pair;
pub mod raw;
pub mod reliable;
pub mod secure_stream;
pub mod secured;
pub mod tape;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use arbitrary::{Arbitrary, Unstructured};

/// Prints what happens when `UDPCHAT_FUZZ_TRACE` is set (the `show` example runs an input).
pub fn trace(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("UDPCHAT_FUZZ_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}

/// A guessed 32-bit value (an ack's echo, a data token) from fuzzed bits, through SplitMix64's
/// finaliser: the fuzzer picks the bits, not the value, so libFuzzer's comparison tracing
/// cannot copy the value an endpoint compares against into the input (a real forger cannot
/// read it either).
pub fn guess(bits: u64) -> u32 {
    let mut z = bits.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// Most operations one input runs: keeps every run short (libFuzzer's `-max_len` bounds it too).
pub const MAX_OPS: usize = 256;

/// The address the endpoint's peer talks from.
pub const PEER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2000));

/// A third party's address: one of four, so "the same stranger again" happens.
pub fn stranger(n: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::LOCALHOST,
        3000 + u16::from(n % 4),
    ))
}

/// Who a datagram comes from.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The peer's address.
    Peer,
    /// Somebody else.
    Stranger(u8),
}

impl Who {
    /// The source address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Who::Peer => PEER,
            Who::Stranger(n) => stranger(n),
        }
    }
}

/// Bytes with an explicit length prefix (a `u16`, then that many bytes, or what is left), so the
/// byte layout is easy to write back in [`tape`]. Arbitrary's own `Vec<u8>` takes its length
/// from the end of the input, which would make seeds hard to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Bytes(u.bytes(len)?.to_vec()))
    }
}

/// Reads a `Setup` and then operations until the input runs out (or [`MAX_OPS`]).
pub fn read_input<'a, S: Arbitrary<'a>, O: Arbitrary<'a>>(data: &'a [u8]) -> Option<(S, Vec<O>)> {
    let mut u = Unstructured::new(data);
    let setup = S::arbitrary(&mut u).ok()?;
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match O::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    Some((setup, ops))
}
