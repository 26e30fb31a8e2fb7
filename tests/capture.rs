//! `--pcap` and the live trace, end to end with the real binary over loopback: what the chat,
//! the proxy and the lab write to their capture files (read back with a small pcapng reader that
//! checks the headers), and what `-vv` / `-v` print.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use support::{
    predicted_drops, proxy, read_pcapng, recv_datagram, scratch_dir, udp_socket, Pipe, Proc,
};
use udpchat_core::Packet;

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The raw-mode line (sequence number, nickname, text) a datagram carries.
fn raw_line(payload: &[u8]) -> (u64, String, String) {
    match udpchat_core::decode(payload).unwrap() {
        Packet::Raw(m) => (m.seq, m.nick, m.text),
        other => panic!("not a raw datagram: {other:?}"),
    }
}

#[test]
fn a_raw_chat_captures_every_datagram_sent_and_received_and_traces_them() {
    let dir = scratch_dir("capture-chat");
    let (bob_file, alice_file) = (dir.join("bob.pcapng"), dir.join("alice.pcapng"));
    let before = unix_nanos();
    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &[
            "--ui",
            "line",
            "--bind",
            "127.0.0.1:0",
            "--nick",
            "bob",
            "--pcap",
        ]
        .into_iter()
        .chain([bob_file.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    let peer = bob_addr.to_string();
    let alice_args = [
        "--ui",
        "line",
        "--bind",
        "127.0.0.1:0",
        "--peer",
        &peer,
        "--nick",
        "alice",
        "-vv",
        "--pcap",
        alice_file.to_str().unwrap(),
    ];
    let (mut alice, alice_addr) = Proc::chat("alice", &alice_args);
    for line in ["one", "two", "three"] {
        alice.send_line(line);
        bob.expect_stdout(&format!("<alice> {line}"));
    }
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    alice.drain(Pipe::Stderr);
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);
    bob.drain(Pipe::Stderr);
    let after = unix_nanos();

    let (_, sent) = read_pcapng(&std::fs::read(&alice_file).unwrap());
    let (_, received) = read_pcapng(&std::fs::read(&bob_file).unwrap());
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(received.len(), 3, "{received:?}");
    for (i, (s, r)) in sent.iter().zip(&received).enumerate() {
        let line = ["one", "two", "three"][i];
        assert_eq!((s.from, s.to), (alice_addr, bob_addr));
        assert_eq!((r.from, r.to), (alice_addr, bob_addr));
        assert_eq!(
            s.payload, r.payload,
            "the bytes sent are the bytes received"
        );
        assert_eq!(
            raw_line(&s.payload),
            (i as u64, "alice".into(), line.into())
        );
        assert_eq!(s.comment.as_deref(), Some("sent"));
        assert_eq!(r.comment.as_deref(), Some("received"));
        // Wall-clock times: within the test's own run, and in order.
        for p in [s, r] {
            assert!(
                (before..=after).contains(&p.nanos),
                "{} not in {before}..={after}",
                p.nanos
            );
        }
        assert!(s.nanos <= r.nanos || i > 0);
    }
    assert!(sent.windows(2).all(|w| w[0].nanos <= w[1].nanos));

    // -vv: one trace line per datagram, with its size, its peer, its kind and numbers.
    let trace: Vec<&String> = alice
        .history(Pipe::Stderr)
        .iter()
        .filter(|l| l.contains(" sent "))
        .collect();
    assert_eq!(trace.len(), 3, "{:?}", alice.history(Pipe::Stderr));
    for (i, (line, packet)) in trace.iter().zip(&sent).enumerate() {
        let want = format!(
            "sent {} B to {bob_addr}: raw seq={i} nick=\"alice\" text={}B",
            packet.payload.len(),
            ["one", "two", "three"][i].len()
        );
        assert!(line.contains(&want), "{line:?} lacks {want:?}");
    }
    // Without -vv, nothing of the kind.
    assert!(!bob
        .history(Pipe::Stderr)
        .iter()
        .any(|l| l.contains(" B from ")));
}

#[test]
fn the_proxy_captures_each_datagram_with_its_fate_and_traces_it() {
    let dir = scratch_dir("capture-proxy");
    let file = dir.join("proxy.pcapng");
    let server = udp_socket();
    let client = udp_socket();
    let (seed, n) = (7u64, 20u64);
    let (mut proxy, proxy_addr) = proxy(
        &server.local_addr().unwrap().to_string(),
        &[
            "--up",
            "loss=50%",
            "--seed",
            "7",
            "-v",
            "--pcap",
            file.to_str().unwrap(),
        ],
    );
    let dropped = predicted_drops(0.5, seed, n);
    assert!(
        !dropped.is_empty() && dropped.len() < n as usize,
        "seed 7 drops some, not all"
    );
    for i in 0..n {
        client
            .send_to(format!("datagram {i}").as_bytes(), proxy_addr)
            .unwrap();
    }
    for _ in 0..n - dropped.len() as u64 {
        recv_datagram(&server);
    }
    proxy.interrupt();
    proxy.expect_stderr("udpchat proxy: final counters (datagrams):");
    assert_eq!(proxy.exit_code(), 0);
    proxy.drain(Pipe::Stderr);

    let (_, packets) = read_pcapng(&std::fs::read(&file).unwrap());
    let comment = |p: &support::CapturedPacket| p.comment.clone().unwrap_or_default();
    let arrivals: Vec<_> = packets
        .iter()
        .filter(|p| comment(p).contains(" received"))
        .collect();
    let departures: Vec<_> = packets
        .iter()
        .filter(|p| comment(p).contains(" sent on"))
        .collect();
    assert_eq!(arrivals.len() as u64, n);
    assert_eq!(departures.len() as u64, n - dropped.len() as u64);
    assert_eq!(packets.len(), arrivals.len() + departures.len());
    let mut seen_dropped = BTreeSet::new();
    for (i, p) in arrivals.iter().enumerate() {
        assert_eq!((p.from, p.to), (client.local_addr().unwrap(), proxy_addr));
        assert_eq!(p.payload, format!("datagram {i}").as_bytes());
        let c = comment(p);
        assert!(c.contains(&format!("up #{i} received")), "{c}");
        if c.starts_with("dropped (loss)") {
            seen_dropped.insert(i as u64);
        } else {
            assert!(c.starts_with("delayed 0.000 ms"), "{c}");
        }
    }
    assert_eq!(
        seen_dropped, dropped,
        "the capture names exactly the datagrams the seed drops"
    );
    for p in &departures {
        assert_eq!(p.to, server.local_addr().unwrap());
        assert!(comment(p).starts_with("delivered; up #"), "{}", comment(p));
    }

    // -v: one line per capture record, naming direction, size and fate.
    let stderr = proxy.history(Pipe::Stderr);
    let traced = |what: &str| stderr.iter().filter(|l| l.contains(what)).count();
    assert_eq!(traced("dropped (loss)"), dropped.len(), "{stderr:?}");
    assert_eq!(traced(" sent on"), departures.len(), "{stderr:?}");
    assert!(stderr
        .iter()
        .any(|l| l.contains("up ") && l.contains(" 10 B, ")));
}

#[test]
fn the_lab_writes_one_capture_per_run_in_virtual_time_with_fates() {
    let dir = scratch_dir("capture-lab");
    let base = dir.join("run.pcapng");
    let mut lab = Proc::spawn(
        "lab",
        &[
            "lab",
            "--loss",
            "20%",
            "--modes",
            "raw,reliable",
            "--seeds",
            "2",
            "--seed",
            "5",
            "--messages",
            "20",
            "--pcap",
            base.to_str().unwrap(),
        ],
    );
    assert_eq!(lab.exit_code(), 0);
    lab.drain(Pipe::Stderr);
    for mode in ["raw", "reliable"] {
        for seed in [5, 6] {
            let name = format!("run-loss20pct-indep-{mode}-seed{seed}.pcapng");
            let path = dir.join(&name);
            let (comment, packets) = read_pcapng(&std::fs::read(&path).unwrap());
            let comment = comment.unwrap();
            assert!(
                comment.contains(&format!("mode {mode}, seed {seed}")),
                "{comment}"
            );
            assert!(lab.history(Pipe::Stderr).iter().any(|l| l.ends_with(&name)));
            // Every datagram is recorded when sent; each one that arrives once more, later.
            let mut sent = std::collections::HashMap::new();
            let (mut drops, mut arrivals) = (0, 0);
            for p in &packets {
                let c = p.comment.clone().unwrap();
                if let Some(d) = c.split("; ").find_map(|w| w.strip_suffix(" sent")) {
                    sent.insert(d.to_owned(), p.nanos);
                    drops += usize::from(c.starts_with("dropped (loss)"));
                } else {
                    let d = c
                        .strip_prefix("delivered; ")
                        .unwrap()
                        .split(' ')
                        .next()
                        .unwrap();
                    assert!(sent[d] <= p.nanos, "{d} arrives after it was sent");
                    arrivals += 1;
                }
            }
            assert_eq!(sent.len(), drops + arrivals, "{mode} seed {seed}");
            assert!(drops > 0, "20% loss drops something in {mode} seed {seed}");
            // Virtual time: from the run's start, not the wall clock.
            assert_eq!(packets[0].nanos, 0);
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_capture_that_cannot_be_written_stops_with_one_warning_and_the_chat_goes_on() {
    // /dev/full takes the file's creation and fails every write with "no space left".
    let (mut bob, bob_addr) = Proc::chat("bob", &["--ui", "line", "--bind", "127.0.0.1:0"]);
    let peer = bob_addr.to_string();
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--ui",
            "line",
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &peer,
            "--nick",
            "alice",
            "--pcap",
            "/dev/full",
        ],
    );
    // Each line waited for (raw mode resends nothing, and a busy machine may drop a burst):
    // about nine of these fill the writer's buffer, whose first flush fails.
    let line = |i: usize| format!("line {i} {}", "x".repeat(900));
    for i in 0..20 {
        alice.send_line(&line(i));
        bob.expect_stdout(&format!("<alice> {}", line(i)));
    }
    alice.expect_stderr("capturing stopped");
    // The chat goes on after the warning.
    alice.send_line("still here");
    bob.expect_stdout("<alice> still here");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    alice.drain(Pipe::Stderr);
    let warnings: Vec<_> = alice
        .history(Pipe::Stderr)
        .iter()
        .filter(|l| l.contains("warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("capturing stopped") && warnings[0].contains("the chat goes on"));
    assert!(
        warnings[0].contains("No space left on device"),
        "{warnings:?}"
    );
    bob.close_stdin();
}

#[test]
fn a_capture_file_that_cannot_be_created_is_one_clear_error_at_the_start() {
    let mut chat = Proc::spawn(
        "chat",
        &[
            "chat",
            "--ui",
            "line",
            "--bind",
            "127.0.0.1:0",
            "--pcap",
            "/nonexistent/dir/x.pcapng",
        ],
    );
    assert_eq!(chat.exit_code(), 1);
    chat.drain(Pipe::Stderr);
    assert!(chat
        .history(Pipe::Stderr)
        .iter()
        .any(|l| l.starts_with("udpchat: cannot write the capture /nonexistent/dir/x.pcapng")));
}

#[test]
fn rust_log_turns_the_proxy_trace_on_without_the_flag() {
    let server = udp_socket();
    let client = udp_socket();
    let forward = server.local_addr().unwrap().to_string();
    let mut proxy = Proc::spawn_with_env(
        "proxy",
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &forward,
            "--stats-interval",
            "0",
        ],
        &[("RUST_LOG", "udpchat::wire=debug")],
    );
    let proxy_addr = proxy.listening_addr();
    client.send_to(b"ping", proxy_addr).unwrap();
    recv_datagram(&server);
    proxy.interrupt();
    assert_eq!(proxy.exit_code(), 0);
    proxy.drain(Pipe::Stderr);
    let stderr = proxy.history(Pipe::Stderr);
    let line = stderr
        .iter()
        .find(|l| l.contains("up #0 received"))
        .unwrap_or_else(|| panic!("no trace line: {stderr:?}"));
    assert!(line.contains(" 4 B, delayed 0.000 ms"), "{line}");
    assert!(line.contains("not a udpchat datagram"), "{line}");
}
