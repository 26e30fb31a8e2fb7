//! Workload 2, **bulk**: A hands its transport a whole file (10 MB, in 16,000-byte messages) at
//! once and B receives it, over a link of 20 ms one-way delay and 100 Mbit/s each way whose
//! rate limiter has a finite queue of 500 kB (one bandwidth-delay product, the classic router
//! buffer), tail drop, and a loss rate.
//!
//! Every message's content is a function of its number, so B checks that each one arrived
//! intact and in order; the run stops when the last byte is in, or after 10 minutes of virtual
//! time. What it measures: completion time, goodput, and the sender's bytes and datagrams on the
//! wire per byte delivered (so retransmissions and header overhead both show).

use std::time::{Duration, Instant};

use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::parse::{BitRate, QueueLimit};
use udpchat_lab::probability::Probability;
use udpchat_lab::sim::Side;
use udpchat_reliable::{Endpoint, Event};

use crate::figures::bulk_figures;
use crate::net::{net, LinkSpec, Net};
use crate::quic_endpoint::QuicIdentity;
use crate::report::{LossModel, ResultRow, Workload};
use crate::system::{build_pair, BuildError, System};

/// Application bytes per message.
pub const CHUNK: usize = 16_000;
/// The losses of the issue.
pub const LOSSES: [f64; 4] = [0.0, 0.001, 0.01, 0.05];
/// Virtual time after which a transfer is abandoned.
pub const TIME_LIMIT: Duration = Duration::from_secs(600);

/// The impairment of one direction at `loss`.
pub fn impairment(loss: f64) -> ImpairmentConfig {
    ImpairmentConfig {
        loss: Probability::new(loss).unwrap_or(Probability::ZERO),
        delay: Duration::from_millis(20),
        rate: BitRate::from_bits_per_second(100_000_000),
        queue: QueueLimit::bytes(500_000).unwrap_or(ImpairmentConfig::default().queue),
        ..ImpairmentConfig::default()
    }
}

/// The text of chunk `index` of a transfer: printable, and different for every chunk.
pub fn chunk_text(index: usize, len: usize) -> String {
    let head = format!("{index:08}:");
    let mut text = String::with_capacity(len);
    text.push_str(&head);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut i = index;
    while text.len() < len {
        text.push(char::from(alphabet[i % alphabet.len()]));
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    text.truncate(len);
    text
}

/// How many chunks a transfer of `total` bytes takes, and the size of each.
pub fn chunks(total: usize) -> Vec<usize> {
    let mut sizes = vec![CHUNK; total / CHUNK];
    if total % CHUNK > 0 {
        sizes.push(total % CHUNK);
    }
    sizes
}

/// What a transfer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes delivered intact and in order.
    pub delivered: u64,
    /// Messages that arrived out of order or damaged.
    pub damaged: u64,
    /// When the last byte arrived, if all did.
    pub completed: Option<Duration>,
}

/// Transfers `total` bytes from A to B over `net`.
pub fn transfer<A: Endpoint, B: Endpoint>(net: &mut Net<A, B>, total: usize) -> Transfer {
    let sizes = chunks(total);
    let mut refused = 0;
    for (index, len) in sizes.iter().enumerate() {
        if net.send(Side::A, &chunk_text(index, *len)).is_err() {
            refused += 1;
        }
    }
    let limit = net.at(TIME_LIMIT);
    let mut result = Transfer {
        delivered: 0,
        damaged: refused,
        completed: None,
    };
    let mut next = 0usize;
    while net.advance_within(None, limit) {
        for (side, event) in net.take_events() {
            let (Side::B, Event::Message { text, .. }) = (side, event) else {
                continue;
            };
            match sizes.get(next) {
                Some(len) if text == chunk_text(next, *len) => {
                    result.delivered += *len as u64;
                    next += 1;
                }
                _ => result.damaged += 1,
            }
        }
        if next == sizes.len() {
            result.completed = Some(net.elapsed());
            break;
        }
    }
    result
}

/// Runs the bulk workload for `system` at `loss`, moving `total` bytes.
pub fn run(
    system: System,
    loss: f64,
    total: usize,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<ResultRow, BuildError> {
    let epoch = Instant::now();
    let (a, b) = build_pair(system, epoch, seed, quic)?;
    let mut net = net(epoch, LinkSpec::symmetric(impairment(loss), seed), a, b);
    let outcome = transfer(&mut net, total);
    let mut row = ResultRow::new(system, Workload::Bulk, loss, LossModel::Independent);
    row.expected = total as u64;
    row.delivered = outcome.delivered;
    let sender = net.wire(Side::A);
    let receiver = net.wire(Side::B);
    let figures = outcome.completed.and_then(|done| {
        bulk_figures(
            outcome.delivered,
            done,
            sender.datagrams,
            sender.bytes,
            receiver.bytes,
        )
    });
    row.completion_ms = Some(figures.map(|f| f.completion_ms));
    row.goodput_mbps = Some(figures.map(|f| f.goodput_mbps));
    row.wire_bytes_per_byte = Some(figures.map(|f| f.wire_bytes_per_byte));
    row.reverse_bytes_per_byte = Some(figures.map(|f| f.reverse_bytes_per_byte));
    row.datagrams_per_kb = Some(figures.map(|f| f.datagrams_per_kb));
    if outcome.completed.is_none() {
        row.note = Some(format!(
            "did not finish within {} s of virtual time ({} of {total} bytes)",
            TIME_LIMIT.as_secs(),
            outcome.delivered
        ));
    } else if outcome.damaged > 0 {
        row.note = Some(format!(
            "{} messages refused, damaged or out of order",
            outcome.damaged
        ));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_total_and_differ() {
        assert_eq!(chunks(40_000), vec![16_000, 16_000, 8_000]);
        assert_eq!(chunks(32_000), vec![16_000, 16_000]);
        let a = chunk_text(1, 100);
        let b = chunk_text(2, 100);
        assert_eq!(a.len(), 100);
        assert_ne!(a, b);
        assert!(a.is_ascii());
    }
}
