//! Workload 1, **chat**: KCP's own test shape. A sends a 64-byte message every 20 ms, B echoes
//! each one back the moment it arrives, and A measures each message's round trip, over a link of
//! 30 ms ± 15 ms one-way delay (uniform jitter, which may reorder, as netem's does) and a loss
//! rate, independent or in bursts.
//!
//! Before the timed messages, one untimed warm-up message is echoed, so the figures describe
//! an open conversation rather than the handshake (see [`run_echo`]).
//!
//! The echo is why this is not a lab [`udpchat_lab::sim::Scenario`]: B's sends depend on what
//! arrives. The run stops once every echo is back, or 60 s of virtual time after the last send.

use std::time::{Duration, Instant};

use udpchat_lab::gilbert::GilbertElliott;
use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::probability::Probability;
use udpchat_lab::sim::Side;
use udpchat_reliable::{Endpoint, Event};

use crate::figures::ChatTrace;
use crate::net::{net, LinkSpec, Net};
use crate::quic_endpoint::QuicIdentity;
use crate::report::{LossModel, ResultRow, Workload};
use crate::system::{build_pair, BuildError, System};

/// Message size, bytes.
pub const MESSAGE_BYTES: usize = 64;
/// Time between A's messages.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Mean length of a loss burst on the burst-loss link, in datagrams.
pub const MEAN_BURST: f64 = 3.0;

/// One chat link: its mean loss and how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatLink {
    /// Mean loss, as a fraction.
    pub loss: f64,
    /// Independent or burst.
    pub model: LossModel,
}

/// The links of the issue: independent loss 0/2/5/10/20%, and bursts with a 10% mean.
pub fn links() -> Vec<ChatLink> {
    let mut links: Vec<ChatLink> = [0.0, 0.02, 0.05, 0.10, 0.20]
        .into_iter()
        .map(|loss| ChatLink {
            loss,
            model: LossModel::Independent,
        })
        .collect();
    links.push(ChatLink {
        loss: 0.10,
        model: LossModel::Burst,
    });
    links
}

/// The impairment of one direction of `link`.
pub fn impairment(link: ChatLink) -> ImpairmentConfig {
    let loss = Probability::new(link.loss).unwrap_or(Probability::ZERO);
    let mut config = ImpairmentConfig {
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(15),
        ..Default::default()
    };
    match link.model {
        LossModel::Burst => config.burst_loss = GilbertElliott::from_mean(loss, MEAN_BURST).ok(),
        LossModel::Independent | LossModel::Kernel => config.loss = loss,
    }
    config
}

/// The text of message `index`: its number, padded to [`MESSAGE_BYTES`].
pub fn message_text(index: usize) -> String {
    format!("{index:08}-{}", "c".repeat(MESSAGE_BYTES - 9))
}

/// The message number in an echoed text, if it is one of ours.
pub fn message_index(text: &str) -> Option<usize> {
    text.get(..8)?.parse().ok()
}

/// Runs `rounds` round trips of `system` on `link` with `seed`.
pub fn run(
    system: System,
    link: ChatLink,
    rounds: usize,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<ResultRow, BuildError> {
    let epoch = Instant::now();
    let (a, b) = build_pair(system, epoch, seed, quic)?;
    let spec = LinkSpec::symmetric(impairment(link), seed);
    let trace = run_echo(&mut net(epoch, spec, a, b), rounds);
    let mut row = ResultRow::new(system, Workload::Chat, link.loss, link.model);
    let figures = trace.figures();
    row.rtt_avg_ms = Some(figures.map(|f| f.avg_ms));
    row.rtt_p50_ms = Some(figures.map(|f| f.p50_ms));
    row.rtt_p99_ms = Some(figures.map(|f| f.p99_ms));
    row.rtt_max_ms = Some(figures.map(|f| f.max_ms));
    row.expected = rounds as u64;
    row.delivered = (rounds - trace.missing()) as u64;
    if trace.missing() > 0 {
        row.note = Some(format!(
            "{} of {rounds} echoes never came back; figures cover the others",
            trace.missing()
        ));
    }
    Ok(row)
}

/// Opens the session: one message that B echoes, not timed, so that the round trips measure
/// the conversation and not the handshake (KCP has none; udpchat and QUIC need one round trip,
/// and a lost handshake packet waits for a 1 s initial timeout in both). Returns the time, from
/// the start, at which the timed messages begin: 20 ms after the warm-up echo came back.
fn warm_up<A: Endpoint, B: Endpoint>(net: &mut Net<A, B>) -> Duration {
    const WARM_UP: &str = "warm-up";
    let _ = net.send(Side::A, WARM_UP);
    let limit = net.at(Duration::from_secs(60));
    loop {
        for (side, event) in net.take_events() {
            let Event::Message { text, .. } = event else {
                continue;
            };
            match side {
                Side::B => {
                    let _ = net.send(Side::B, &text);
                }
                Side::A if text == WARM_UP => return net.elapsed() + INTERVAL,
                Side::A => {}
            }
        }
        if !net.advance_within(None, limit) {
            return net.elapsed();
        }
    }
}

/// The echo loop itself, on any pair of endpoints: after a warm-up, A sends, B echoes, A
/// records.
pub fn run_echo<A: Endpoint, B: Endpoint>(net: &mut Net<A, B>, rounds: usize) -> ChatTrace {
    let mut trace = ChatTrace::default();
    let mut echoed = vec![false; rounds];
    let mut echoes_back = 0;
    let start = warm_up(net);
    let last_send = start + INTERVAL * rounds.saturating_sub(1) as u32;
    let limit = net.at(last_send + Duration::from_secs(60));
    loop {
        let next_send =
            (trace.sent.len() < rounds).then(|| net.at(start + INTERVAL * trace.sent.len() as u32));
        if next_send.is_some_and(|t| t <= net.now()) {
            let index = trace.sent.len();
            if net.send(Side::A, &message_text(index)).is_ok() {
                trace.sent.push(net.elapsed());
            } else {
                // Refused (the session ended): count it as sent and never echoed.
                trace.sent.push(net.elapsed());
            }
            continue;
        }
        for (side, event) in net.take_events() {
            let Event::Message { text, .. } = event else {
                continue;
            };
            match side {
                Side::B => {
                    let _ = net.send(Side::B, &text);
                }
                Side::A => {
                    if let Some(index) = message_index(&text).filter(|i| *i < rounds) {
                        trace.echoes.push((index, net.elapsed()));
                        if !echoed[index] {
                            echoed[index] = true;
                            echoes_back += 1;
                        }
                    }
                }
            }
        }
        if echoes_back == rounds {
            break;
        }
        if !net.advance_within(next_send, limit) {
            break;
        }
    }
    trace
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn message_texts_are_64_bytes_and_carry_their_number() {
        let text = message_text(1234);
        assert_eq!(text.len(), MESSAGE_BYTES);
        assert_eq!(message_index(&text), Some(1234));
        assert_eq!(message_index("nope"), None);
    }

    #[test]
    fn the_burst_link_has_the_same_mean_loss() {
        let link = impairment(ChatLink {
            loss: 0.10,
            model: LossModel::Burst,
        });
        let ge = link.burst_loss.unwrap();
        assert!((ge.mean_loss() - 0.10).abs() < 1e-9);
        assert!(link.loss.is_zero());
    }
}
