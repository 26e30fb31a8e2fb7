//! End-to-end: the real `udpchat proxy` between real programs on loopback.
//!
//! Two `udpchat chat --mode raw` processes talk through a proxy with `--loss 30% --seed 1`: the
//! receiver reports gaps, and the counts of the sender, the receiver and the proxy agree. The
//! seed makes the proxy's fates predictable, so the test knows in advance exactly which messages
//! will be lost (computed with the same model, `udpchat_lab::Impairment`). Plain `std` sockets
//! stand in for `nc -u` to show delay, duplication and reordering on the wire.
//!
//! The soak tests at the end hold the proxy to its bounds: thousands of client ports under a low
//! open-file limit, and datagrams too big for its byte bound. They pace the traffic by the
//! proxy's own periodic counters (nothing is lost before the proxy reads it), so every figure
//! they assert is exact.
#![allow(clippy::unwrap_used)]
// Stopping the proxy the way a user does (SIGINT, SIGTERM) needs Unix signals.
#![cfg(unix)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{parse_counters, proxy, recv_datagram, udp_socket, Pipe, Proc, DEADLINE};

/// Interrupts the proxy and returns its final (up, down) counters; checks it exits 0.
fn stop_proxy(proxy: &mut Proc) -> (HashMap<String, u64>, HashMap<String, u64>) {
    let (up, down, _) = stop_proxy_all(proxy);
    (up, down)
}

/// Interrupts the proxy and returns its final (up, down, clients) counters; checks that it
/// explains them and exits 0.
type Counters = HashMap<String, u64>;
fn stop_proxy_all(proxy: &mut Proc) -> (Counters, Counters, Counters) {
    proxy.interrupt();
    proxy.expect_stderr("udpchat proxy: final counters (datagrams):");
    let up = parse_counters(&proxy.expect_stderr("udpchat proxy: up   (client -> forward):"));
    let down = parse_counters(&proxy.expect_stderr("udpchat proxy: down (forward -> client):"));
    let clients = parse_counters(&proxy.expect_stderr("udpchat proxy: clients="));
    proxy.expect_stderr("udpchat proxy: every datagram received, and every duplicate, is");
    assert_eq!(proxy.exit_code(), 0);
    for direction in [&up, &down] {
        assert_accounted(direction);
    }
    (up, down, clients)
}

/// The promise of the counters line: every datagram received, and every duplicate, ends as
/// exactly one of forwarded, dropped, a send error, or still held.
fn assert_accounted(d: &Counters) {
    let dropped: u64 = d
        .iter()
        .filter(|(k, _)| k.starts_with("dropped_"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        d["received"] + d["duplicated"],
        d["forwarded"] + dropped + d["send_errors"] + d["held"],
        "{d:?}"
    );
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

    let (up, down, clients) = stop_proxy_all(&mut proxy);
    assert_eq!(clients["clients"], 1);
    assert_eq!(
        (up["received"], up["forwarded"], up["duplicated"]),
        (1, 2, 1)
    );
    assert_eq!(
        (down["received"], down["forwarded"], down["duplicated"]),
        (1, 2, 1)
    );
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
    proc.expect_stderr("udpchat proxy: final counters (datagrams):");
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

// ---- Soak: the proxy under many sources and big datagrams (issue 11, defects 3 and 4). ----

/// Starts `udpchat proxy` under an open-file limit of `nofile` (set by `sh`'s `ulimit`, then
/// `exec`), reporting counters every 20 ms so a test can pace itself on them.
fn limited_proxy(nofile: u32, forward: SocketAddr, args: &[&str]) -> (Proc, SocketAddr) {
    let nofile = nofile.to_string();
    let forward = forward.to_string();
    let mut full = vec![
        "-c",
        "ulimit -n \"$0\" && exec \"$@\"",
        &nofile,
        support::udpchat_bin(),
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        &forward,
        "--stats-interval",
        "20ms",
    ];
    full.extend_from_slice(args);
    let mut proc = Proc::spawn_program("proxy", "sh", &full);
    let addr = proc.listening_addr();
    (proc, addr)
}

/// Waits for a periodic counters report whose up line has counted `received` datagrams.
fn wait_until_received(proxy: &mut Proc, received: u64) {
    proxy.expect(
        Pipe::Stderr,
        &format!("a report counting {received} datagrams up"),
        |l| {
            l.starts_with("udpchat proxy: up   (client -> forward): received=")
                && parse_counters(l)["received"] >= received
        },
    );
}

/// Reads everything `socket` receives on a thread (so its buffer never fills and drops the
/// datagram a test waits for), and passes each datagram on.
fn drain_on_a_thread(socket: UdpSocket) -> mpsc::Receiver<(Vec<u8>, SocketAddr)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        // Ends at the read timeout (the deadline) or when the test stops listening.
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            if tx.send((buf[..len].to_vec(), from)).is_err() {
                return;
            }
        }
    });
    rx
}

/// What a flood run saw: the final counters, and every warning the proxy printed.
struct FloodOutcome {
    up: Counters,
    clients: Counters,
    warnings: Vec<String>,
}

/// `sources` fresh client ports (50 at a time, each socket closed after its one datagram, so
/// this test never holds more than 50 of its own) send through a proxy with `--delay 100ms`
/// under an open-file limit of `nofile`; then a legitimate client must still get a datagram
/// through and its reply back.
fn flood_of_client_ports(nofile: u32, sources: u64) -> FloodOutcome {
    const BATCH: u64 = 50;
    let server = udp_socket();
    let server_addr = server.local_addr().unwrap();
    let reply_socket = server.try_clone().unwrap();
    let arrivals = drain_on_a_thread(server);
    let (mut proxy, proxy_addr) = limited_proxy(nofile, server_addr, &["--delay", "100ms"]);

    let mut sent = 0;
    while sent < sources {
        let batch: Vec<UdpSocket> = (0..BATCH.min(sources - sent))
            .map(|_| udp_socket())
            .collect();
        for socket in &batch {
            socket.send_to(b"flood", proxy_addr).unwrap();
        }
        sent += batch.len() as u64;
        drop(batch);
        // Small batches, each read by the proxy before the next: none is lost on the way in.
        wait_until_received(&mut proxy, sent);
    }
    assert!(proxy.is_running(), "the proxy stopped during the flood");

    let client = udp_socket();
    client.send_to(b"final", proxy_addr).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let upstream = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match arrivals.recv_timeout(left) {
            Ok((bytes, from)) if bytes == b"final" => break from,
            Ok(_) => {}
            Err(e) => panic!("the final datagram did not come through: {e}"),
        }
    };
    reply_socket.send_to(b"reply", upstream).unwrap();
    let (reply, from) = recv_datagram(&client);
    assert_eq!((reply.as_slice(), from), (&b"reply"[..], proxy_addr));

    let (up, _, clients) = stop_proxy_all(&mut proxy);
    assert_eq!(up["received"], sources + 1, "every datagram was read");
    let warnings = proxy
        .history(Pipe::Stderr)
        .iter()
        .filter(|l| l.starts_with("udpchat proxy: warning:"))
        .cloned()
        .collect();
    FloodOutcome {
        up,
        clients,
        warnings,
    }
}

#[test]
fn thousands_of_client_ports_under_a_low_file_limit_do_not_stop_the_proxy() {
    // 256 files cannot hold the default 256 client sockets: the proxy must notice, make room and
    // go on, saying so once rather than once per datagram.
    let outcome = flood_of_client_ports(256, 3_000);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert!(
        outcome.warnings[0].contains("forgot the idlest client to make room"),
        "{:?}",
        outcome.warnings
    );
    let now = outcome.clients["now"];
    assert!(
        (1..256).contains(&now),
        "the bound came down to what the file limit allows: {:?}",
        outcome.clients
    );
    assert!(outcome.clients["forgotten"] > 0);
    assert_eq!(
        outcome.up["send_errors"], 0,
        "no datagram was lost for want of a socket"
    );
}

#[test]
fn thousands_of_client_ports_under_the_usual_file_limit_stay_within_the_default_bound() {
    // With the usual limit of 1,024 files, the default of 256 clients leaves room to spare:
    // no socket is ever refused.
    let outcome = flood_of_client_ports(1024, 3_000);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    assert_eq!(outcome.clients["now"], 256, "{:?}", outcome.clients);
    assert!(outcome.clients["forgotten"] > 0);
    assert_eq!(outcome.up["send_errors"], 0);
}

#[test]
fn big_datagrams_beyond_the_byte_bound_are_dropped_and_counted() {
    const SIZE: usize = 60_000;
    let server = udp_socket();
    // Nothing leaves during the test (an hour's delay): everything accepted stays held.
    let (mut proxy, proxy_addr) = limited_proxy(
        1024,
        server.local_addr().unwrap(),
        &["--delay", "3600s", "--max-held", "200kb"],
    );
    proxy.expect_stderr("at most 256 clients at once, 200 kB held per direction, 48 MiB in all");
    let client = udp_socket();
    let big = vec![0x55u8; SIZE];
    for sent in 1..=10 {
        client.send_to(&big, proxy_addr).unwrap();
        // One at a time: a burst of big datagrams would overflow the socket buffers before the
        // proxy, and the counts would no longer be exact.
        wait_until_received(&mut proxy, sent);
    }
    let (up, _, clients) = stop_proxy_all(&mut proxy);
    // 3 × 60,000 bytes fit in 200 kB; the fourth would not.
    assert_eq!((up["held"], up["dropped_memory"]), (3, 7));
    assert_eq!(clients["held_bytes"], 3 * SIZE as u64);
}
