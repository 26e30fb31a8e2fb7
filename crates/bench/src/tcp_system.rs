//! The `tcp` and `tcp-reno` systems: smoltcp's TCP ([`udpchat_lab::tcp::TcpEndpoint`], the same
//! endpoint as `udpchat lab --modes tcp`) on the bench's links, beside KCP and QUIC.
//!
//! Built with smoltcp 0.12's defaults except for what the lab sets too: Nagle off (a chat line
//! goes now), CUBIC or Reno, 256 KiB socket buffers, segments of at most 1200 bytes like every
//! other system's datagrams (smoltcp puts no options on data segments, so none is larger). No
//! user timeout and no keepalive, as a TCP socket has by default: in the dead-peer workload the
//! sender retransmits with its RTO capped at 10 s and is never told within the workload's
//! patience, and the side that only echoes has nothing in flight and never learns at all. That
//! is TCP's answer to a vanished peer, and the row says so.

use udpchat_lab::sim::{ADDR_A, ADDR_B};
use udpchat_lab::tcp::{TcpConfig, TcpCongestion, TcpEndpoint, TcpSetupError};

use crate::system::Pair;

/// The pair for `congestion`: A connects, B listens; smoltcp's randomness (its initial
/// sequence numbers) from `seed`.
pub fn tcp_pair(congestion: TcpCongestion, seed: u64) -> Result<Pair, TcpSetupError> {
    let config = |local| TcpConfig {
        congestion,
        ..TcpConfig::new(local)
    };
    let a = TcpEndpoint::connect(config(ADDR_A), ADDR_B, seed)?;
    let b = TcpEndpoint::listen(config(ADDR_B), seed ^ 0x5eed)?;
    Ok((Box::new(a), Box::new(b)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use crate::quic_endpoint::QuicIdentity;
    use crate::system::System;

    #[test]
    fn tcp_moves_a_bulk_transfer_and_echoes_every_chat_line() {
        let quic = QuicIdentity::generate().unwrap();
        for system in [System::Tcp, System::TcpReno] {
            let bulk = crate::bulk::run(system, 0.01, 200_000, 1, &quic).unwrap();
            assert_eq!(bulk.delivered, 200_000, "{system}");
            let link = crate::chat::ChatLink {
                loss: 0.05,
                model: crate::report::LossModel::Independent,
            };
            let chat = crate::chat::run(system, link, 50, 1, &quic).unwrap();
            assert_eq!(chat.delivered, 50, "{system}: {:?}", chat.note);
        }
    }

    /// No keepalive and no user timeout: neither side is told the peer vanished, and the row
    /// says so rather than showing a time.
    #[test]
    fn a_vanished_peer_is_never_reported_by_default() {
        let quic = QuicIdentity::generate().unwrap();
        let row = crate::dead_peer::run(System::Tcp, Duration::from_secs(2), 5, &quic).unwrap();
        assert_eq!(row.detect_ms, Some(None));
        assert_eq!(row.detect_echo_ms, Some(None));
        assert!(row.note.unwrap().contains("not told"));
    }
}
