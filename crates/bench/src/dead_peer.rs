//! Workload 3, **dead peer**: the chat workload's traffic (A sends 64 B every 20 ms, B echoes)
//! on its loss-free link, until the link goes dark, both ways, at a fixed time. A keeps typing
//! (one message every 20 ms) as a user who has not been told would. What it measures: the time
//! from darkness until each side's transport tells its application the peer is gone
//! ([`Event::PeerUnreachable`]): A, which keeps sending, and B, which only echoes (so it has at
//! most the echoes of the last round trip in flight when the link goes dark, then nothing new).
//!
//! Each system detects it its own way: udpchat by retransmission timeouts without progress
//! (`max_retries`) or the idle timeout, KCP when one segment has been sent `dead_link` times,
//! QUIC by its idle timeout. The run gives up 15 minutes of virtual time after darkness.

use std::time::{Duration, Instant};

use udpchat_lab::sim::Side;
use udpchat_reliable::{Endpoint, Event};

use crate::chat::{impairment, message_text, ChatLink, INTERVAL};
use crate::net::{net, LinkSpec, Net};
use crate::quic_endpoint::QuicIdentity;
use crate::report::{LossModel, ResultRow, Workload};
use crate::system::{build_pair, BuildError, System};

/// How long after darkness a run gives up waiting.
pub const PATIENCE: Duration = Duration::from_secs(900);

/// When each side was told, measured from darkness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detection {
    /// The side with messages in flight.
    pub sender: Option<Duration>,
    /// The side that only echoes.
    pub echo: Option<Duration>,
}

/// Runs chat traffic over `net` until `dark_after` (which `net`'s links must share), then
/// waits for both sides to report the peer gone.
pub fn detect<A: Endpoint, B: Endpoint>(net: &mut Net<A, B>, dark_after: Duration) -> Detection {
    let mut found = Detection::default();
    let limit = net.at(dark_after + PATIENCE);
    let mut sent = 0usize;
    loop {
        let next_send = found
            .sender
            .is_none()
            .then(|| net.at(INTERVAL * sent as u32));
        if next_send.is_some_and(|t| t <= net.now()) {
            let _ = net.send(Side::A, &message_text(sent));
            sent += 1;
            continue;
        }
        for (side, event) in net.take_events() {
            let since_dark = net.elapsed().saturating_sub(dark_after);
            match (side, event) {
                (Side::B, Event::Message { text, .. }) => {
                    let _ = net.send(Side::B, &text);
                }
                (Side::A, Event::PeerUnreachable) if found.sender.is_none() => {
                    found.sender = Some(since_dark);
                }
                (Side::B, Event::PeerUnreachable) if found.echo.is_none() => {
                    found.echo = Some(since_dark);
                }
                _ => {}
            }
        }
        if found.sender.is_some() && found.echo.is_some() {
            break;
        }
        if !net.advance_within(next_send, limit) {
            break;
        }
    }
    found
}

/// Runs the dead-peer workload for `system`, the link going dark at `dark_after`.
pub fn run(
    system: System,
    dark_after: Duration,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<ResultRow, BuildError> {
    let epoch = Instant::now();
    let (a, b) = build_pair(system, epoch, seed, quic)?;
    let link = ChatLink {
        loss: 0.0,
        model: LossModel::Independent,
    };
    let mut spec = LinkSpec::symmetric(impairment(link), seed);
    spec.dark_after = Some(dark_after);
    let mut net = net(epoch, spec, a, b);
    let found = detect(&mut net, dark_after);
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let mut row = ResultRow::new(system, Workload::DeadPeer, 0.0, LossModel::Independent);
    row.detect_ms = Some(ms(found.sender));
    row.detect_echo_ms = Some(ms(found.echo));
    row.expected = 2;
    row.delivered = u64::from(found.sender.is_some()) + u64::from(found.echo.is_some());
    let mut missing = Vec::new();
    if found.sender.is_none() {
        missing.push("the sender");
    }
    if found.echo.is_none() {
        missing.push("the echoing side");
    }
    if !missing.is_empty() {
        row.note = Some(format!(
            "{} not told within {} s of darkness",
            missing.join(" and "),
            PATIENCE.as_secs()
        ));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn detection(system: System) -> Detection {
        let quic = QuicIdentity::generate().unwrap();
        let row = run(system, Duration::from_secs(2), 5, &quic).unwrap();
        let ms = |v: Option<Option<f64>>| v.flatten().map(|ms| Duration::from_secs_f64(ms / 1e3));
        Detection {
            sender: ms(row.detect_ms),
            echo: ms(row.detect_echo_ms),
        }
    }

    #[test]
    fn udpchat_tells_both_sides_within_its_documented_bound() {
        let found = detection(System::Udpchat);
        let config = crate::system::udpchat_cli_defaults();
        let bound = config.give_up_bound().max(config.idle_timeout);
        let sender = found.sender.unwrap();
        let echo = found.echo.unwrap();
        assert!(sender > Duration::ZERO && sender <= bound, "{sender:?}");
        assert!(echo > Duration::ZERO && echo <= bound, "{echo:?}");
    }

    #[test]
    fn quic_tells_both_sides_at_its_idle_timeout() {
        let found = detection(System::Quic);
        // quinn-proto's default idle timeout is 30 s, restarted by the last packet received
        // (just before the darkness) and by the first ack-eliciting packet sent after it (RFC
        // 9000 §10.1), which may leave a little after the darkness.
        for told in [found.sender.unwrap(), found.echo.unwrap()] {
            assert!(told >= Duration::from_millis(29_800), "{told:?}");
            assert!(told <= Duration::from_millis(30_500), "{told:?}");
        }
    }

    #[test]
    fn fast_kcp_gives_up_only_after_its_dead_link_count() {
        let found = detection(System::KcpFast);
        // 20 transmissions of one segment with the RTO growing by half each time: minutes.
        let sender = found.sender.unwrap();
        assert!(sender > Duration::from_secs(60), "{sender:?}");
    }
}
