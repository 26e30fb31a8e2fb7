//! End-to-end: the real `udpchat proxy` between real programs on loopback.
//!
//! Two `udpchat chat --mode raw` processes talk through a proxy with `--loss 30% --seed 1`: the
//! receiver reports gaps, and the counts of the sender, the receiver and the proxy agree. The
//! seed makes the proxy's fates predictable, so the test knows in advance exactly which messages
//! will be lost (computed with the same model, `udpchat_lab::Impairment`). Plain `std` sockets
//! stand in for `nc -u` to show delay, duplication and reordering on the wire.
#![allow(clippy::unwrap_used)]
// Stopping the proxy the way a user does (SIGINT, SIGTERM) needs Unix signals.
#![cfg(unix)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use support::{parse_counters, recv_datagram, udp_socket, Pipe, Proc};

/// Starts `udpchat proxy` with `args` after the listen/forward ones; returns it and its address.
fn proxy(forward: &str, args: &[&str]) -> (Proc, std::net::SocketAddr) {
    let mut full = vec![
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        forward,
        "--stats-interval",
        "0",
    ];
    full.extend_from_slice(args);
    let mut proc = Proc::spawn("proxy", &full);
    let addr = proc.listening_addr();
    (proc, addr)
}

/// Interrupts the proxy and returns its final (up, down) counters; checks it exits 0.
fn stop_proxy(proxy: &mut Proc) -> (HashMap<String, u64>, HashMap<String, u64>) {
    proxy.interrupt();
    proxy.expect_stderr("udpchat proxy: final counters:");
    let up = parse_counters(&proxy.expect_stderr("udpchat proxy: up   (client -> forward):"));
    let down = parse_counters(&proxy.expect_stderr("udpchat proxy: down (forward -> client):"));
    assert_eq!(proxy.exit_code(), 0);
    (up, down)
}

#[test]
fn raw_chats_through_a_lossy_proxy_see_the_gaps_the_proxy_counted() {
    const N: u64 = 100;
    let dropped: BTreeSet<u64> = support::predicted_drops(0.3, 1, N);
    let last_arriving = (0..N).rev().find(|s| !dropped.contains(s)).unwrap();
    let visible_gaps: BTreeSet<u64> = dropped
        .iter()
        .copied()
        .filter(|&s| s < last_arriving)
        .collect();
    assert!(
        !visible_gaps.is_empty(),
        "seed 1 must lose something for this test to mean anything"
    );

    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &[
            "--bind",
            "127.0.0.1:0",
            "--mode",
            "raw",
            "--format",
            "json",
            "--nick",
            "bob",
            "--stats",
        ],
    );
    let (mut proxy, proxy_addr) = proxy(&bob_addr.to_string(), &["--loss", "30%", "--seed", "1"]);
    proxy.expect_stderr("up   (client -> forward): loss 30%");
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &proxy_addr.to_string(),
            "--mode",
            "raw",
            "--nick",
            "alice",
            "--stats",
        ],
    );
    for i in 0..N {
        alice.send_line(&format!("line {i}"));
    }

    // Wait for the last message that will get through; everything before it has been reported.
    let last_text = format!("line {last_arriving}");
    bob.expect(Pipe::Stdout, &last_text, |l| {
        l.contains(&format!("\"text\":\"{last_text}\""))
    });
    let mut received = BTreeSet::new();
    let mut gaps = BTreeSet::new();
    for line in bob.history(Pipe::Stdout) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        match event["event"].as_str().unwrap() {
            "message" => {
                assert_eq!(event["nick"], "alice");
                received.insert(event["seq"].as_u64().unwrap());
            }
            "gap" => {
                gaps.extend(event["first"].as_u64().unwrap()..=event["last"].as_u64().unwrap())
            }
            "peer" => {}
            other => panic!("unexpected event {other}: {line}"),
        }
    }
    let expected_received: BTreeSet<u64> = (0..N).filter(|s| !dropped.contains(s)).collect();
    assert_eq!(
        received, expected_received,
        "exactly the predicted messages arrived"
    );
    assert_eq!(
        gaps, visible_gaps,
        "bob reported exactly the predicted gaps"
    );

    // Everyone's counters agree.
    alice.close_stdin();
    let alice_stats = alice.expect_stats();
    assert_eq!(alice.exit_code(), 0);
    let (up, down) = stop_proxy(&mut proxy);
    bob.close_stdin();
    let bob_stats = bob.expect_stats();
    assert_eq!(bob.exit_code(), 0);

    assert_eq!(alice_stats["datagrams_sent"], N);
    assert_eq!(up["received"], N);
    assert_eq!(up["dropped_loss"], dropped.len() as u64);
    assert_eq!(up["forwarded"], N - dropped.len() as u64);
    assert_eq!(bob_stats["datagrams_received"], up["forwarded"]);
    assert_eq!(bob_stats["messages_received"], up["forwarded"]);
    assert_eq!(bob_stats["gaps"], visible_gaps.len() as u64);
    assert_eq!(down["received"], 0, "bob never wrote back");
}

#[test]
fn plain_udp_through_the_proxy_is_delayed_and_duplicated_both_ways() {
    let server = udp_socket();
    let client = udp_socket();
    let delay = Duration::from_millis(200);
    let (mut proxy, proxy_addr) = proxy(
        &server.local_addr().unwrap().to_string(),
        &["--delay", "200ms", "--duplicate", "100%", "--seed", "3"],
    );

    let sent = Instant::now();
    client.send_to(b"hello", proxy_addr).unwrap();
    let (first, upstream) = recv_datagram(&server);
    assert!(
        sent.elapsed() >= delay,
        "arrived before the configured delay"
    );
    let (second, again) = recv_datagram(&server);
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (&b"hello"[..], &b"hello"[..])
    );
    assert_eq!(upstream, again);

    let replied = Instant::now();
    server.send_to(b"world", upstream).unwrap();
    for _ in 0..2 {
        let (reply, from) = recv_datagram(&client);
        assert_eq!((reply.as_slice(), from), (&b"world"[..], proxy_addr));
    }
    assert!(replied.elapsed() >= delay);

    let (up, down) = stop_proxy(&mut proxy);
    assert_eq!(
        (up["received"], up["forwarded"], up["duplicated"]),
        (1, 2, 1)
    );
    assert_eq!(
        (down["received"], down["forwarded"], down["duplicated"]),
        (1, 2, 1)
    );
    assert_eq!(down["clients"], 1);
}

#[test]
fn plain_udp_through_the_proxy_is_reordered_as_counted() {
    let server = udp_socket();
    let client = udp_socket();
    // Half the datagrams skip a 300 ms delay and overtake the others; no loss.
    let (mut proxy, proxy_addr) = proxy(
        &server.local_addr().unwrap().to_string(),
        &["--delay", "300ms", "--reorder", "50%", "--seed", "4"],
    );
    const N: u8 = 30;
    for i in 0..N {
        client.send_to(&[i], proxy_addr).unwrap();
    }
    let order: Vec<u8> = (0..N).map(|_| recv_datagram(&server).0[0]).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..N).collect::<Vec<_>>(),
        "nothing lost or duplicated"
    );
    assert_ne!(order, sorted, "reordered");
    // A datagram is late if one sent after it arrived first: the proxy counts the same thing.
    let mut highest = None;
    let mut late = 0;
    for &i in &order {
        if highest.is_some_and(|h| i < h) {
            late += 1;
        } else {
            highest = Some(i);
        }
    }
    let (up, _) = stop_proxy(&mut proxy);
    assert_eq!(up["reordered"], late);
    assert_eq!(up["forwarded"], u64::from(N));
}

#[test]
fn bad_impairment_values_are_usage_errors() {
    for (flag, value, needle) in [
        ("--loss", "150%", "between 0 and 1"),
        ("--delay", "soon", "30ms"),
        ("--rate", "fast", "1mbit"),
        ("--down", "speed=3", "unknown knob"),
    ] {
        let mut proc = Proc::spawn(
            "proxy",
            &[
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--forward",
                "127.0.0.1:9",
                flag,
                value,
            ],
        );
        assert_eq!(proc.exit_code(), 2, "{flag} {value}");
        let stderr = proc.drain(Pipe::Stderr).join("\n");
        assert!(stderr.contains(needle), "{flag} {value}: {stderr}");
    }
}

#[test]
fn counters_are_printed_periodically_and_sigterm_also_ends_cleanly() {
    let server = udp_socket();
    let mut proc = Proc::spawn(
        "proxy",
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &server.local_addr().unwrap().to_string(),
            "--stats-interval",
            "100ms",
        ],
    );
    let addr = proc.listening_addr();
    let client = udp_socket();
    client.send_to(b"x", addr).unwrap();
    recv_datagram(&server);
    // A periodic report that already counts the datagram.
    proc.expect(Pipe::Stderr, "a periodic report counting 1 datagram", |l| {
        l.starts_with("udpchat proxy: up   (client -> forward): received=1 forwarded=1")
    });
    let status = std::process::Command::new("kill")
        .args(["-s", "TERM", &proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    proc.expect_stderr("udpchat proxy: final counters:");
    assert_eq!(proc.exit_code(), 0);
}

#[test]
fn a_busy_listen_port_or_an_unknown_forward_host_is_one_clear_line_and_exit_1() {
    let taken = udp_socket();
    let mut busy = Proc::spawn(
        "proxy",
        &[
            "proxy",
            "--listen",
            &taken.local_addr().unwrap().to_string(),
            "--forward",
            "127.0.0.1:9",
        ],
    );
    assert_eq!(busy.exit_code(), 1);
    let stderr = busy.drain(Pipe::Stderr);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(stderr[0].contains("cannot listen on"), "{stderr:?}");

    let mut unknown = Proc::spawn(
        "proxy",
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            "no-such-host.invalid:9",
        ],
    );
    assert_eq!(unknown.exit_code(), 1);
    let stderr = unknown.drain(Pipe::Stderr);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(stderr[0].contains("cannot resolve --forward"), "{stderr:?}");
}
