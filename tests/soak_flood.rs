//! Soak: a live reliable chat keeps working while junk floods one side.
//!
//! Two real `udpchat chat --mode reliable` processes talk over loopback while the test sends
//! 200,000 junk datagrams at one of them (Bob) from eight other sockets: random bytes, truncated
//! and bit-flipped valid datagrams, wrong magic, valid envelopes around garbage bodies, and
//! well-formed packets for connections that do not exist. Every line either side writes during
//! the flood must still arrive, once and in order, and be acknowledged; Bob must survive with his
//! memory flat (resident set before and after the flood, a memory bound, not a timing one), his
//! output must not grow with the junk, and his drop counters must account for every junk datagram
//! that reached him.
//!
//! Nothing waits on time: the junk goes out in batches, and after each one the test asks Bob for
//! his counters (`/stats`) until they show the whole batch handled. Which junk the kernel itself
//! discarded (a full receive buffer) is read from `/proc/net/udp`, so the accounting is exact
//! even on a slow machine. Linux only (`/proc`).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};

use support::{reliable_chat, Pipe, Proc};
use udpchat_core::{encode, Ack, ConnectionId, Data, Hello, Packet, SeqNum, MAGIC};

/// Junk datagrams sent in all.
const JUNK: u64 = 200_000;
/// Junk datagrams per batch: far fewer than Bob's receive buffer holds, so the kernel has no
/// reason to drop any while Bob works through a batch.
const BATCH: u64 = 100;
/// Lines each side writes during the flood.
const LINES: usize = 100;
/// How much Bob's resident memory may grow during the flood: generous, as allocators keep
/// freed memory; unbounded growth (a queue of 200,000 events, say) would exceed it.
const RSS_GROWTH_BOUND: u64 = 64 << 20;
/// At most this many lines on Bob's stdout: the legitimate traffic plus a bounded number of
/// reports about junk, never one per junk datagram.
const STDOUT_BOUND: usize = 1_000;

/// What a chat's JSON stdout showed so far.
#[derive(Default)]
struct Seen {
    texts: Vec<String>,
    delivered: usize,
}

/// Reads `proc`'s JSON stdout until `seen` holds `received` messages and `delivered` delivery
/// reports.
fn wait_for(proc: &mut Proc, seen: &mut Seen, received: usize, delivered: usize) {
    while seen.texts.len() < received || seen.delivered < delivered {
        let line = proc.next_line(Pipe::Stdout);
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["event"].as_str().unwrap() {
            "message" => seen.texts.push(event["text"].as_str().unwrap().to_owned()),
            "delivered" => seen.delivered += 1,
            "lost" => panic!("a line was reported lost during the flood: {line}"),
            _ => {}
        }
    }
}

/// A small seeded generator (SplitMix64): the junk is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A well-formed packet for a connection that does not exist.
fn foreign_packet(rng: &mut Rng) -> Packet {
    let dst = ConnectionId(rng.next());
    let ack = Ack {
        cumulative: SeqNum(rng.next() % 1000),
        ranges: vec![],
        delay_us: 0,
        window: 64,
        delivered: SeqNum(rng.next() % 1000),
        echo: rng.next() as u32,
        ranges_delivered: false,
    };
    match rng.below(4) {
        0 => Packet::Data(Data {
            dst,
            seq: SeqNum(rng.next() % 1000),
            message: rng.next() % 1000,
            fragment: 0,
            fragments: 1,
            token: rng.next() as u32,
            payload: b"not from the peer".to_vec(),
            ack: Some(ack),
        }),
        1 => Packet::Ack { dst, ack },
        2 => Packet::Ping { dst },
        _ => Packet::Hello(Hello {
            src: dst,
            nick: "mallory".into(),
            window: 64,
        }),
    }
}

/// One junk datagram of kind `i % 6`.
fn junk(rng: &mut Rng, i: u64) -> Vec<u8> {
    match i % 6 {
        // Random bytes, sometimes empty.
        0 => {
            let len = rng.below(300);
            rng.bytes(len)
        }
        // A valid datagram cut short.
        1 => {
            let mut d = encode(&foreign_packet(rng), 1200).unwrap();
            d.truncate(rng.below(d.len() as u64));
            d
        }
        // A valid datagram with one bit flipped (bad CRC, magic or version).
        2 => {
            let mut d = encode(&foreign_packet(rng), 1200).unwrap();
            let bit = rng.below(d.len() as u64 * 8);
            d[bit / 8] ^= 1 << (bit % 8);
            d
        }
        // Wrong magic.
        3 => {
            let mut d = encode(&foreign_packet(rng), 1200).unwrap();
            d[0] = MAGIC[0].wrapping_add(1 + rng.below(200) as u8);
            d
        }
        // A valid envelope around a garbage body.
        4 => {
            let len = 1 + rng.below(100);
            let body = rng.bytes(len);
            let mut d = MAGIC.to_vec();
            d.push(udpchat_core::VERSION);
            d.extend_from_slice(&body);
            let crc = crc32fast_free(&d);
            d.extend_from_slice(&crc.to_le_bytes());
            d
        }
        // Well-formed, for a connection that does not exist, from a stranger.
        _ => encode(&foreign_packet(rng), 1200).unwrap(),
    }
}

/// CRC-32 (IEEE), bit by bit: the test needs no CRC crate of its own.
fn crc32fast_free(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A process's resident set size, in bytes, from `/proc/PID/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Datagrams the kernel discarded for the IPv4 UDP socket bound to `addr` (receive buffer
/// full), from the `drops` column of `/proc/net/udp`.
fn kernel_drops(addr: SocketAddr) -> u64 {
    let SocketAddr::V4(v4) = addr else {
        panic!("{addr} is not IPv4")
    };
    // The address column is the IPv4 address as a native-endian u32, then the port, in hex.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let row = table
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .unwrap_or_else(|| panic!("no socket {local} ({addr}) in /proc/net/udp:\n{table}"));
    row.split_whitespace().last().unwrap().parse().unwrap()
}

/// Asks `proc` for its counters (`/stats`) and returns them.
fn stats(proc: &mut Proc) -> HashMap<String, u64> {
    proc.send_line("/stats");
    proc.expect_stats()
}

fn dropped(stats: &HashMap<String, u64>) -> u64 {
    ["checksum", "malformed", "foreign", "stale"]
        .iter()
        .map(|cause| stats[&format!("dropped_{cause}")])
        .sum()
}

#[test]
fn a_junk_flood_at_a_live_chat_loses_no_line_and_no_memory() {
    let (mut bob, bob_addr) = reliable_chat("bob", None, &["--stats"]);
    let (mut alice, _) = reliable_chat("alice", Some(&bob_addr.to_string()), &["--stats"]);
    let (mut at_bob, mut at_alice) = (Seen::default(), Seen::default());

    // The session is up (Bob learned Alice from her handshake) before the flood starts.
    alice.send_line("alice before");
    wait_for(&mut bob, &mut at_bob, 1, 0);
    bob.send_line("bob before");
    wait_for(&mut alice, &mut at_alice, 1, 1);
    wait_for(&mut bob, &mut at_bob, 1, 1);
    let before = stats(&mut bob);
    let kernel_before = kernel_drops(bob_addr);
    let rss_before = rss_bytes(bob.pid());

    let strangers: Vec<UdpSocket> = (0..8).map(|_| support::udp_socket()).collect();
    let mut rng = Rng(0x0F10_0D5E);
    let batches = JUNK / BATCH;
    let line_every = batches / LINES as u64;
    let mut from_alice = vec!["alice before".to_owned()];
    let mut from_bob = vec!["bob before".to_owned()];
    let mut sent = 0u64;
    let mut last = before.clone();
    for batch in 0..batches {
        for _ in 0..BATCH {
            let d = junk(&mut rng, sent);
            let socket = &strangers[rng.below(strangers.len() as u64)];
            socket.send_to(&d, bob_addr).unwrap();
            sent += 1;
        }
        if batch % line_every == 0 && from_alice.len() <= LINES {
            let n = from_alice.len();
            from_alice.push(format!("alice during the flood {n}"));
            from_bob.push(format!("bob during the flood {n}"));
            alice.send_line(&from_alice[n]);
            bob.send_line(&from_bob[n]);
        }
        // Until Bob has handled (or the kernel dropped) every junk datagram sent so far.
        loop {
            let handled = dropped(&last) - dropped(&before);
            let discarded = kernel_drops(bob_addr) - kernel_before;
            assert!(
                handled <= sent,
                "{handled} drops counted for {sent} junk datagrams"
            );
            if handled + discarded >= sent {
                break;
            }
            last = stats(&mut bob);
        }
    }
    assert!(bob.is_running(), "Bob died under the flood");
    let rss_after = rss_bytes(bob.pid());
    let handled = dropped(&last) - dropped(&before);
    let discarded = kernel_drops(bob_addr) - kernel_before;

    // Every line written during the flood arrived, once, in order, and was acknowledged.
    let n = from_alice.len();
    wait_for(&mut bob, &mut at_bob, n, n);
    wait_for(&mut alice, &mut at_alice, n, n);
    assert_eq!(at_bob.texts, from_alice, "Alice's lines at Bob");
    assert_eq!(at_alice.texts, from_bob, "Bob's lines at Alice");

    assert!(
        rss_after < rss_before + RSS_GROWTH_BOUND,
        "Bob's memory grew from {rss_before} to {rss_after} bytes under the flood"
    );
    // Each junk datagram was either counted as a drop by Bob or discarded by the kernel (which
    // may also have discarded some of Alice's, since resent: hence at least, not exactly).
    assert!(handled <= JUNK && handled + discarded >= JUNK);
    assert!(
        handled > 0,
        "Bob counted none of the junk (kernel drops: {discarded})"
    );

    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    bob.drain(Pipe::Stdout);
    let shown = bob.history(Pipe::Stdout).len();
    assert!(
        shown < STDOUT_BOUND,
        "Bob printed {shown} lines for {n} messages: the junk flooded his output"
    );
    eprintln!(
        "soak_flood: {JUNK} junk datagrams, {handled} counted by Bob, {discarded} dropped by the \
         kernel; Bob's RSS {rss_before} -> {rss_after} bytes"
    );
}
