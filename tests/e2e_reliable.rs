//! End-to-end: real `udpchat chat --mode reliable` processes on loopback.
//!
//! Directly, and through a real `udpchat proxy` that loses a fifth of all datagrams and
//! duplicates, reorders, corrupts and jitters more: every line arrives exactly once and in order,
//! every line is acknowledged, and both chats exit 0. When the receiver is killed, the sender
//! exits 3 and names the lines it could not deliver.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use support::{proxy, read_pcapng, reliable_chat, scratch_dir, Pipe, Proc};
use udpchat_core::Packet;

/// Reads `proc`'s JSON stdout until it has shown `received` messages and `delivered` delivery
/// reports; returns the message texts in arrival order.
fn wait_for(proc: &mut Proc, received: usize, delivered: usize) -> Vec<String> {
    let mut texts = Vec::new();
    let mut acked = 0;
    while texts.len() < received || acked < delivered {
        let line = proc.next_line(Pipe::Stdout);
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        match event["event"].as_str().unwrap() {
            "message" => texts.push(event["text"].as_str().unwrap().to_owned()),
            "delivered" => acked += 1,
            "lost" => panic!("a message was reported lost: {line}"),
            _ => {}
        }
    }
    texts
}

fn lines(who: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{who} says {i}")).collect()
}

#[test]
fn two_reliable_chats_deliver_every_line_once_in_order_and_exit_0() {
    let (mut bob, bob_addr) = reliable_chat("bob", None, &["--stats"]);
    let (mut alice, _) = reliable_chat("alice", Some(&bob_addr.to_string()), &["--stats"]);
    let from_alice = lines("alice", 20);
    let from_bob = lines("bob", 20);
    for line in &from_alice {
        alice.send_line(line);
    }
    // Bob has no --peer: he can only write once Alice's handshake reached him.
    assert_eq!(wait_for(&mut bob, 20, 0), from_alice);
    for line in &from_bob {
        bob.send_line(line);
    }
    assert_eq!(wait_for(&mut alice, 20, 20), from_bob);
    wait_for(&mut bob, 0, 20);
    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    alice.drain(Pipe::Stderr);
    let stats = support::parse_stats(alice.history(Pipe::Stderr));
    assert_eq!(stats["messages_delivered"], 20);
    assert_eq!(stats["messages_received"], 20);
    assert_eq!(stats["messages_lost"], 0);
}

#[test]
fn five_hundred_lines_each_way_survive_a_proxy_that_loses_a_fifth() {
    const N: usize = 500;
    let (mut bob, bob_addr) = reliable_chat("bob", None, &["--stats"]);
    let (mut proxy, proxy_addr) = proxy(
        &bob_addr.to_string(),
        &[
            "--loss",
            "20%",
            "--duplicate",
            "5%",
            "--reorder",
            "10%",
            "--corrupt",
            "2%",
            "--delay",
            "5ms",
            "--jitter",
            "3ms",
            "--seed",
            "7",
        ],
    );
    let (mut alice, _) = reliable_chat("alice", Some(&proxy_addr.to_string()), &["--stats"]);
    let from_alice = lines("alice", N);
    let from_bob = lines("bob", N);
    alice.send_line(&from_alice[0]);
    // Bob answers whoever wrote first: here, the proxy on Alice's behalf.
    bob.expect(Pipe::Stdout, "Alice's first line", |l| {
        l.contains(&from_alice[0])
    });
    for line in &from_alice[1..] {
        alice.send_line(line);
    }
    for line in &from_bob {
        bob.send_line(line);
    }
    let mut got_bob = vec![from_alice[0].clone()];
    got_bob.extend(wait_for(&mut bob, N - 1, N));
    assert_eq!(
        got_bob, from_alice,
        "Alice's lines at Bob: exactly once, in order"
    );
    let got_alice = wait_for(&mut alice, N, N);
    assert_eq!(
        got_alice, from_bob,
        "Bob's lines at Alice: exactly once, in order"
    );
    // Everything is acknowledged both ways: closing now loses nothing.
    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    // The counters show the work it took.
    let stats = |proc: &mut Proc| -> HashMap<String, u64> {
        proc.drain(Pipe::Stderr);
        support::parse_stats(proc.history(Pipe::Stderr))
    };
    let a = stats(&mut alice);
    let b = stats(&mut bob);
    assert_eq!(a["messages_delivered"], N as u64);
    assert_eq!(b["messages_delivered"], N as u64);
    assert!(a["retransmits_fast"] + a["retransmits_timeout"] > 0);
    assert!(a["dropped_checksum"] + b["dropped_checksum"] > 0);
    proxy.interrupt();
    assert_eq!(proxy.exit_code(), 0);
}

/// Path MTU discovery on loopback (whose MTU is 65,536): the search reaches the default cap of
/// 1,452 bytes at its first probe, and from then on a 1,200-byte line travels in one datagram,
/// not the two the base size of 1,200 bytes would need. The capture shows every datagram Alice
/// sent; her `/stats` shows the size in use.
#[test]
fn on_loopback_a_1200_byte_line_travels_in_one_datagram() {
    let dir = scratch_dir("pmtu-loopback");
    let pcap = dir.join("alice.pcapng");
    let (mut bob, bob_addr) = reliable_chat("bob", None, &[]);
    let (mut alice, _) = reliable_chat(
        "alice",
        Some(&bob_addr.to_string()),
        &["--stats", "--pcap", pcap.to_str().unwrap()],
    );
    alice.send_line("hello");
    assert_eq!(wait_for(&mut bob, 1, 0), ["hello"]);
    // The probe goes out with the session; ask until its answer is in (each ask waits for the
    // table it prints, so this waits on the chat, never on a clock).
    let mut tries = 0;
    while alice.expect_stats_after("/stats").get("path_mtu") != Some(&1452) {
        tries += 1;
        assert!(tries < 100, "the path MTU never reached 1452");
    }
    let long = "x".repeat(1200);
    alice.send_line(&long);
    assert_eq!(wait_for(&mut bob, 1, 0), [long]);
    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    let (_, packets) = read_pcapng(&std::fs::read(&pcap).unwrap());
    let carrying: Vec<(u32, usize, usize)> = packets
        .iter()
        .filter(|p| p.to == bob_addr)
        .filter_map(|p| match udpchat_core::decode(&p.payload) {
            Ok(Packet::Data(d)) if d.payload.iter().all(|&b| b == b'x') => {
                Some((d.fragments, d.payload.len(), p.payload.len()))
            }
            _ => None,
        })
        .collect();
    // One datagram (resends aside, none on loopback): the whole line, one fragment of one.
    assert_eq!(carrying.len(), 1, "{carrying:?}");
    let (fragments, payload, datagram) = carrying[0];
    assert_eq!((fragments, payload), (1, 1200));
    assert!(datagram > 1200 && datagram <= 1452, "{datagram}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn killing_the_receiver_makes_the_sender_exit_3_naming_what_was_lost() {
    let (mut bob, bob_addr) = reliable_chat("bob", None, &[]);
    let (mut alice, _) = reliable_chat(
        "alice",
        Some(&bob_addr.to_string()),
        &["--linger", "1s", "--max-retries", "2"],
    );
    alice.send_line("before the crash");
    bob.expect(Pipe::Stdout, "the first line", |l| {
        l.contains("before the crash")
    });
    wait_for(&mut alice, 0, 1);
    // Bob dies without a word (a dropped Proc is killed).
    drop(bob);
    alice.send_line("into the void 1");
    alice.send_line("into the void 2");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 3);
    let stderr = alice.drain(Pipe::Stderr);
    let all: Vec<&String> = alice.history(Pipe::Stderr).iter().chain(&stderr).collect();
    // Numbered from 1: "before the crash" was message #1.
    for text in ["message #2: into the void 1", "message #3: into the void 2"] {
        assert!(
            all.iter()
                .any(|l| l.contains("undelivered") && l.contains(text)),
            "stderr should name {text:?}: {all:#?}"
        );
    }
    assert!(!all
        .iter()
        .any(|l| l.contains("before the crash") && l.contains("undelivered")));
}

/// A free loopback port: bind port 0, note the port, let it go.
fn free_port() -> u16 {
    support::udp_socket().local_addr().unwrap().port()
}

#[test]
fn both_sides_opening_at_once_as_in_the_tutorial_works() {
    // The tutorial's setup: each side knows the other's address and starts talking at once.
    let (pa, pb) = (free_port(), free_port());
    let (a_addr, b_addr) = (format!("127.0.0.1:{pa}"), format!("127.0.0.1:{pb}"));
    let spawn = |name: &str, bind: &str, peer: &str| {
        let args = [
            "chat", "--bind", bind, "--peer", peer, "--mode", "reliable", "--nick", name,
            "--format", "json", "--ui", "line",
        ];
        let mut proc = Proc::spawn(name, &args);
        proc.listening_addr();
        proc
    };
    let mut alice = spawn("alice", &a_addr, &b_addr);
    let mut bob = spawn("bob", &b_addr, &a_addr);
    alice.send_line("hello bob");
    bob.send_line("hello alice");
    assert_eq!(wait_for(&mut alice, 1, 1), vec!["hello alice".to_owned()]);
    assert_eq!(wait_for(&mut bob, 1, 1), vec!["hello bob".to_owned()]);
    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
}
