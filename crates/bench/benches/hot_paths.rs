//! Micro-benchmarks of the hot paths: the wire codec, ack processing in the reliable sender, and
//! the simulators' step rate (datagram events per second).
//!
//! `cargo bench -p udpchat-bench` runs them; each reports a throughput (bytes, acks or datagram
//! events per second) so the numbers compare across machines and against the targets.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use udpchat_bench::net::{net, LinkSpec};
use udpchat_bench::simulator::{self, NullEndpoint};
use udpchat_core::{decode, encode, Ack, AckRange, ConnectionId, Data, Packet, SeqNum};
use udpchat_lab::impairment::ImpairmentConfig;
use udpchat_lab::sim::{Side, Simulator, ADDR_A, ADDR_B};
use udpchat_reliable::{
    CongestionControl, Endpoint, RawConfig, RawEndpoint, ReliableConfig, ReliableEndpoint,
};

fn data_packet(payload: usize) -> Packet {
    Packet::Data(Data {
        dst: ConnectionId(0x1234_5678_9abc_def0),
        seq: SeqNum(123_456),
        message: 7_890,
        fragment: 0,
        fragments: 1,
        payload: vec![b'x'; payload],
        ack: Some(Ack {
            cumulative: SeqNum(99_000),
            ranges: vec![AckRange {
                first: SeqNum(99_002),
                last: SeqNum(99_010),
            }],
            delay_us: 1_000,
            window: 256,
        }),
    })
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for payload in [64usize, 1100] {
        let packet = data_packet(payload);
        let bytes = encode(&packet, 1200).unwrap();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(format!("encode data {payload} B"), |b| {
            b.iter(|| encode(black_box(&packet), 1200).unwrap())
        });
        group.bench_function(format!("decode data {payload} B"), |b| {
            b.iter(|| decode(black_box(&bytes)).unwrap())
        });
    }
    group.finish();
}

/// Moves datagrams between `a` and `b` until neither has anything to send.
fn shuttle(a: &mut ReliableEndpoint, b: &mut ReliableEndpoint, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit_owned(now) {
            b.handle_datagram(now, ADDR_A, &t.payload);
            moved = true;
        }
        while let Some(t) = b.poll_transmit_owned(now) {
            a.handle_datagram(now, ADDR_B, &t.payload);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// A sender with `count` packets in flight, and the acks its peer sent for them.
fn sender_with_acks(count: usize) -> (ReliableEndpoint, Vec<Vec<u8>>, Instant) {
    // No congestion window, so that all `count` packets are in flight at once and the peer
    // acknowledges them all (every second packet, and the rest on its ack timer).
    let config = ReliableConfig {
        window: 1024,
        congestion: CongestionControl::None,
        ..ReliableConfig::default()
    };
    let start = Instant::now();
    let mut a = ReliableEndpoint::new(config.clone(), Some(ADDR_B), 1).unwrap();
    let mut b = ReliableEndpoint::new(config, None, 2).unwrap();
    shuttle(&mut a, &mut b, start);
    let now = start + Duration::from_millis(10);
    for i in 0..count {
        a.send(now, &format!("message {i:06} {}", "x".repeat(40)))
            .unwrap();
    }
    let mut acks = Vec::new();
    let later = now + Duration::from_millis(40);
    while let Some(t) = a.poll_transmit_owned(now) {
        b.handle_datagram(later, ADDR_A, &t.payload);
        while let Some(ack) = b.poll_transmit_owned(later) {
            acks.push(ack.payload);
        }
    }
    b.handle_timeout(later + Duration::from_millis(30));
    while let Some(ack) = b.poll_transmit_owned(later + Duration::from_millis(30)) {
        acks.push(ack.payload);
    }
    (a, acks, later + Duration::from_millis(30))
}

fn ack_processing(c: &mut Criterion) {
    let mut group = c.benchmark_group("acks");
    let (_, acks, _) = sender_with_acks(512);
    assert!(acks.len() >= 200, "only {} acks", acks.len());
    group.throughput(Throughput::Elements(acks.len() as u64));
    group.bench_function("sender takes the acks for its in-flight packets", |b| {
        b.iter_batched(
            || sender_with_acks(512),
            |(mut a, acks, at)| {
                for ack in &acks {
                    a.handle_datagram(at, ADDR_B, ack);
                }
                a
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn raw(peer: std::net::SocketAddr) -> RawEndpoint {
    RawEndpoint::new(RawConfig {
        peer: Some(peer),
        ..RawConfig::default()
    })
}

/// Runs `messages` datagrams each way through the bench's links, one each way every 100 µs of
/// virtual time; returns how many were delivered.
fn net_run<A: Endpoint, B: Endpoint>(a: A, b: B, link: &ImpairmentConfig, messages: u32) -> u64 {
    let epoch = Instant::now();
    let mut net = net(epoch, LinkSpec::symmetric(link.clone(), 1), a, b);
    let limit = epoch + Duration::from_secs(3600);
    for _ in 0..messages {
        net.send(Side::A, "ping from a").unwrap();
        net.send(Side::B, "ping from b").unwrap();
        let next = net.now() + Duration::from_micros(100);
        while net.now() < next && net.advance_within(Some(next), limit) {}
        net.take_events();
    }
    while net.advance_within(None, limit) {}
    net.wire(Side::A).delivered + net.wire(Side::B).delivered
}

fn simulator_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulator");
    let link = ImpairmentConfig {
        delay: Duration::from_millis(20),
        ..Default::default()
    };

    // The bench's links, driven step by step by the workload: 10,000 datagrams each way.
    const MESSAGES: u32 = 10_000;
    group.throughput(Throughput::Elements(u64::from(2 * MESSAGES)));
    group.bench_function("bench Net, null endpoints: datagram events", |b| {
        b.iter(|| {
            let delivered = net_run(
                NullEndpoint::new(ADDR_B),
                NullEndpoint::new(ADDR_A),
                &link,
                MESSAGES,
            );
            assert_eq!(delivered, u64::from(2 * MESSAGES));
        })
    });
    group.bench_function("bench Net, raw endpoints: datagram events", |b| {
        b.iter(|| {
            let delivered = net_run(raw(ADDR_B), raw(ADDR_A), &link, MESSAGES);
            assert_eq!(delivered, u64::from(2 * MESSAGES));
        })
    });

    group.finish();
}

/// The lab's Simulator running a scenario to its end, summary included: the `sim` workload of
/// `udpchat-bench` (same scenario, same endpoints), with the trace off and on.
fn lab_simulator(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulator");
    const MESSAGES: u32 = 10_000;
    group.throughput(Throughput::Elements(u64::from(2 * MESSAGES)));
    // Building the scenario (formatting its texts) is setup, not simulation: outside the timing.
    group.bench_function(
        "lab Simulator, null endpoints, no trace: datagram events",
        |b| {
            b.iter_batched(
                || simulator::scenario(MESSAGES),
                |scenario| {
                    let out = Simulator::new(
                        scenario,
                        NullEndpoint::new(ADDR_B),
                        NullEndpoint::new(ADDR_A),
                    )
                    .without_trace()
                    .run();
                    assert_eq!(out.a.received, u64::from(MESSAGES));
                    out
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.bench_function(
        "lab Simulator, null endpoints, traced: datagram events",
        |b| {
            b.iter_batched(
                || simulator::scenario(MESSAGES),
                |scenario| {
                    let out = Simulator::new(
                        scenario,
                        NullEndpoint::new(ADDR_B),
                        NullEndpoint::new(ADDR_A),
                    )
                    .run();
                    assert_eq!(out.a.received, u64::from(MESSAGES));
                    out
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.bench_function(
        "lab Simulator, raw endpoints, traced: datagram events",
        |b| {
            b.iter_batched(
                || simulator::scenario(MESSAGES),
                |scenario| {
                    let out = Simulator::new(scenario, raw(ADDR_B), raw(ADDR_A)).run();
                    assert_eq!(out.summary.a_to_b.delivered, u64::from(MESSAGES));
                    out
                },
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = codec, ack_processing, simulator_steps, lab_simulator
}
criterion_main!(benches);
