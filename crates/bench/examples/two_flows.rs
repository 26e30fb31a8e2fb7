//! Two bulk flows through one shared bottleneck: each flow's share and Jain's index.
//!
//! ```text
//! cargo run --release -p udpchat-bench --example two_flows -- SYSTEM SYSTEM
//! ```
//! where SYSTEM is `udpchat-bbr`, `udpchat-cubic`, `udpchat-newreno`, `quic` or `quic-bbr`.
//!
//! A probe used to tune the model-based controller's window gain (`congestion/bbr.rs`,
//! `CWND_GAIN`) so that it does not starve a loss-based flow; the bench's own fairness workload
//! is the measurement of record once it exists. Both senders' datagrams enter one bench bulk link
//! (100 Mbit/s, 500 kB tail-drop queue, 20 ms; `udpchat_bench::bulk::impairment`), tagged with
//! their flow; each flow's acks come back over a 20 ms link of its own. Both start at once with
//! 192 MB queued; the share is what each receiver got between 3 s and 15 s of virtual time (the
//! first seconds are both startups). Virtual time, seeded: the same command prints the same line.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use udpchat_bench::bulk::{chunk_text, impairment};
use udpchat_bench::quic_endpoint::QuicIdentity;
use udpchat_bench::system::{build_pair, Pair, System};
use udpchat_lab::impairment::{Impairment, ImpairmentConfig};
use udpchat_lab::sim::{ADDR_A, ADDR_B};
use udpchat_reliable::Event;

/// Messages of 16,000 bytes each flow queues at the start: more than 15 s of the whole link.
const MESSAGES: usize = 12_000;
/// The share is measured from here...
const FROM: Duration = Duration::from_secs(3);
/// ...to here.
const UNTIL: Duration = Duration::from_secs(15);

fn system(name: &str) -> Result<System> {
    Ok(match name {
        "udpchat-bbr" => System::UdpchatBbr,
        "udpchat-cubic" => System::UdpchatCubic,
        "udpchat-newreno" => System::UdpchatNewreno,
        "quic" => System::Quic,
        "quic-bbr" => System::QuicBbr,
        _ => bail!("unknown system {name:?}"),
    })
}

/// The shared forward link, the two return links and the two pairs, in virtual time.
struct Bottleneck {
    pairs: Vec<Pair>,
    forward: Impairment<usize>,
    back: Vec<Impairment<usize>>,
    now: Instant,
    buffer: Vec<u8>,
}

impl Bottleneck {
    /// Hands out every datagram due, fires due timers, and moves what each endpoint sends onto
    /// its link. Returns the bytes each receiver got.
    fn step(&mut self) -> [u64; 2] {
        let now = self.now;
        while let Some(r) = self.forward.poll(now) {
            self.pairs[r.tag].1.handle_datagram(now, ADDR_A, &r.bytes);
        }
        for (flow, link) in self.back.iter_mut().enumerate() {
            while let Some(r) = link.poll(now) {
                self.pairs[flow].0.handle_datagram(now, ADDR_B, &r.bytes);
            }
        }
        let mut got = [0u64; 2];
        for (flow, (a, b)) in self.pairs.iter_mut().enumerate() {
            for side in [&mut *a, &mut *b] {
                if side.poll_timeout().is_some_and(|t| t <= now) {
                    side.handle_timeout(now);
                }
            }
            while a.poll_transmit(now, &mut self.buffer).is_some() {
                self.forward
                    .offer(now, flow, std::mem::take(&mut self.buffer));
            }
            while b.poll_transmit(now, &mut self.buffer).is_some() {
                self.back[flow].offer(now, flow, std::mem::take(&mut self.buffer));
            }
            while let Some(event) = b.poll_event() {
                if let Event::Message { text, .. } = event {
                    got[flow] += text.len() as u64;
                }
            }
            while a.poll_event().is_some() {}
        }
        got
    }

    /// The next instant anything is due (at least a microsecond on, so time always moves).
    fn next(&self, end: Instant) -> Instant {
        let timers = self
            .pairs
            .iter()
            .flat_map(|(a, b)| [a.poll_timeout(), b.poll_timeout()]);
        let links = std::iter::once(self.forward.next_release())
            .chain(self.back.iter().map(|l| l.next_release()));
        timers
            .chain(links)
            .flatten()
            .fold(end, Instant::min)
            .max(self.now + Duration::from_micros(1))
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [first, second] = args.as_slice() else {
        bail!("usage: two_flows SYSTEM SYSTEM");
    };
    let systems = [system(first)?, system(second)?];
    let quic = QuicIdentity::generate()?;
    let epoch = Instant::now();
    let mut pairs = Vec::new();
    for (flow, s) in systems.iter().enumerate() {
        let mut pair = build_pair(*s, epoch, 7 + flow as u64, &quic)?;
        for i in 0..MESSAGES {
            pair.0.send(epoch, &chunk_text(i, 16_000))?;
        }
        pairs.push(pair);
    }
    let back = ImpairmentConfig {
        delay: Duration::from_millis(20),
        ..ImpairmentConfig::default()
    };
    let mut net = Bottleneck {
        pairs,
        forward: Impairment::new(impairment(0.0), 11),
        back: (0..2)
            .map(|i| Impairment::new(back.clone(), 20 + i))
            .collect(),
        now: epoch,
        buffer: Vec::new(),
    };
    let end = epoch + UNTIL;
    let mut share = [0u64; 2];
    while net.now < end {
        let got = net.step();
        if net.now >= epoch + FROM {
            share[0] += got[0];
            share[1] += got[1];
        }
        net.now = net.next(end);
    }
    let secs = (UNTIL - FROM).as_secs_f64();
    let x = share.map(|b| b as f64 * 8.0 / secs / 1e6);
    let jain = (x[0] + x[1]).powi(2) / (2.0 * (x[0] * x[0] + x[1] * x[1]));
    println!(
        "{first} {:.1} Mbit/s, {second} {:.1} Mbit/s ({:.0}% / {:.0}%), Jain's index {jain:.3}",
        x[0],
        x[1],
        100.0 * x[0] / (x[0] + x[1]),
        100.0 * x[1] / (x[0] + x[1]),
    );
    Ok(())
}
