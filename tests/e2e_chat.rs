//! End-to-end: the real `udpchat chat` binary in raw mode, over real loopback sockets.
//!
//! Two chats talk to each other, or one chat talks to a plain `std::net::UdpSocket` playing
//! `nc -u` or a hand-crafted sender. Every wait has a deadline (see `support`); ports are
//! ephemeral, learned from each chat's `listening on` line.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};

use serde_json::{json, Value};
use support::{raw_datagram, recv_datagram, udp_socket, Pipe, Proc};
use udpchat_core::{Packet, RawMessage, VERSION};

const LOOPBACK: &str = "127.0.0.1:0";

/// Decodes a datagram a chat sent, which must be a raw-mode message.
fn decode_raw(datagram: &[u8]) -> RawMessage {
    match udpchat_core::decode(datagram).unwrap() {
        Packet::Raw(message) => message,
        other => panic!("expected a raw message, got {other:?}"),
    }
}

fn json_line(proc: &mut Proc) -> Value {
    let line = proc.next_line(Pipe::Stdout);
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
}

/// Two chats: bob listens, alice knows bob's address. Returns (alice, bob, alice's address).
fn pair(format: &str) -> (Proc, Proc, SocketAddr) {
    let (bob, bob_addr) = Proc::chat(
        "bob",
        &["--bind", LOOPBACK, "--nick", "bob", "--format", format],
    );
    let (alice, alice_addr) = Proc::chat(
        "alice",
        &[
            "--bind",
            LOOPBACK,
            "--peer",
            &bob_addr.to_string(),
            "--nick",
            "alice",
            "--format",
            format,
        ],
    );
    (alice, bob, alice_addr)
}

#[test]
fn two_chats_exchange_lines_both_ways_in_text_format() {
    let (mut alice, mut bob, alice_addr) = pair("text");
    alice.send_line("hello bob");
    assert_eq!(bob.next_line(Pipe::Stdout), "<alice> hello bob");
    bob.expect_stderr(&format!("talking to {alice_addr} (they wrote first)"));

    // Full duplex: both write before either reads.
    for i in 0..5 {
        alice.send_line(&format!("from alice {i}"));
        bob.send_line(&format!("from bob {i}"));
    }
    for i in 0..5 {
        assert_eq!(
            bob.next_line(Pipe::Stdout),
            format!("<alice> from alice {i}")
        );
        assert_eq!(alice.next_line(Pipe::Stdout), format!("<bob> from bob {i}"));
    }
    alice.send_line("  spaces, tabs\tand ünïcödé 🎉  ");
    assert_eq!(
        bob.next_line(Pipe::Stdout),
        "<alice>   spaces, tabs\tand ünïcödé 🎉  "
    );

    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    // Nothing else was printed on stdout: exactly what the other side wrote.
    assert!(alice.drain(Pipe::Stdout).is_empty());
    assert!(bob.drain(Pipe::Stdout).is_empty());
}

#[test]
fn two_chats_exchange_lines_both_ways_in_json_format() {
    let (mut alice, mut bob, alice_addr) = pair("json");
    alice.send_line("hello bob");
    assert_eq!(
        json_line(&mut bob),
        json!({"event": "peer", "addr": alice_addr.to_string()})
    );
    assert_eq!(
        json_line(&mut bob),
        json!({"event": "message", "from": alice_addr.to_string(), "nick": "alice", "seq": 0,
               "text": "hello bob"})
    );
    bob.send_line("hi alice");
    bob.send_line("\"quotes\" and \\backslashes\\");
    let first = json_line(&mut alice);
    assert_eq!(first["event"], "message");
    assert_eq!(first["nick"], "bob");
    assert_eq!(first["seq"], 0);
    assert_eq!(first["text"], "hi alice");
    let second = json_line(&mut alice);
    assert_eq!(second["seq"], 1);
    assert_eq!(second["text"], "\"quotes\" and \\backslashes\\");

    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
}

#[test]
fn plain_mode_talks_to_a_plain_udp_socket_both_ways() {
    let nc = udp_socket();
    let nc_addr = nc.local_addr().unwrap();
    let (mut chat, chat_addr) = Proc::chat(
        "plain",
        &[
            "--bind",
            LOOPBACK,
            "--plain",
            "--peer",
            &nc_addr.to_string(),
        ],
    );

    chat.send_line("hello nc");
    let (datagram, from) = recv_datagram(&nc);
    assert_eq!(datagram, b"hello nc\n");
    assert_eq!(from, chat_addr);

    nc.send_to(b"hi from nc\n", chat_addr).unwrap();
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        format!("<{nc_addr}> hi from nc")
    );
    nc.send_to(b"no newline", chat_addr).unwrap();
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        format!("<{nc_addr}> no newline")
    );
    nc.send_to(b"bad \xff\xfe utf-8\r\n", chat_addr).unwrap();
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        format!("<{nc_addr}> bad \u{fffd}\u{fffd} utf-8")
    );
    // A terminal escape from the network is shown, not obeyed.
    nc.send_to(b"\x1b[2Jcleared?\n", chat_addr).unwrap();
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        format!("<{nc_addr}> \\u{{1b}}[2Jcleared?")
    );

    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn plain_mode_without_a_peer_answers_whoever_writes_first() {
    let nc = udp_socket();
    let nc_addr = nc.local_addr().unwrap();
    let (mut chat, chat_addr) = Proc::chat("plain", &["--bind", LOOPBACK, "--plain"]);
    chat.expect_stderr("waiting for someone to write first");
    nc.send_to(b"knock knock\n", chat_addr).unwrap();
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        format!("<{nc_addr}> knock knock")
    );
    chat.expect_stderr(&format!("talking to {nc_addr}"));
    chat.send_line("who's there?");
    assert_eq!(recv_datagram(&nc).0, b"who's there?\n");
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

/// Deterministic pseudo-random bytes (xorshift64), so the junk is the same on every run.
fn junk(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = 1 + (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            bytes[0] = b'#'; // never our magic, so each one is certainly malformed
            bytes
        })
        .collect()
}

#[test]
fn a_junk_burst_is_counted_and_ignored_and_the_chat_goes_on() {
    let (mut chat, chat_addr) = Proc::chat("target", &["--bind", LOOPBACK, "--stats"]);
    let sender = udp_socket();

    let mut malformed = junk(42, 40);
    malformed.push(b"hello from nc\n".to_vec()); // bad magic: a --plain peer
    malformed.push(b"UC".to_vec()); // too short
    let mut wrong_version = raw_datagram(0, "x", "x");
    wrong_version[2] = VERSION.wrapping_add(1);
    malformed.push(wrong_version);
    let mut bad_crc = Vec::new();
    for i in 0..5 {
        let mut datagram = raw_datagram(i, "mallory", "corrupted");
        let middle = datagram.len() / 2;
        datagram[middle] ^= 0x10;
        bad_crc.push(datagram);
    }
    for datagram in malformed.iter().chain(&bad_crc) {
        sender.send_to(datagram, chat_addr).unwrap();
    }
    sender
        .send_to(&raw_datagram(0, "sender", "a real message"), chat_addr)
        .unwrap();
    assert_eq!(chat.next_line(Pipe::Stdout), "<sender> a real message");
    assert!(chat.is_running());
    chat.expect_stderr("(is the other side using --plain?)");
    chat.expect_stderr("more ignored datagrams are counted, not shown, for up to 10 s");

    // Now that the sender is the peer, anyone else is ignored, even with a valid datagram.
    let stranger = udp_socket();
    stranger
        .send_to(&raw_datagram(1, "stranger", "let me in"), chat_addr)
        .unwrap();
    sender
        .send_to(&raw_datagram(1, "sender", "still here"), chat_addr)
        .unwrap();
    assert_eq!(chat.next_line(Pipe::Stdout), "<sender> still here");

    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
    let stats = chat.expect_stats();
    assert_eq!(stats["dropped_malformed"], malformed.len() as u64);
    assert_eq!(stats["dropped_checksum"], bad_crc.len() as u64);
    assert_eq!(stats["dropped_foreign"], 1);
    assert_eq!(stats["messages_received"], 2);
    assert_eq!(
        stats["datagrams_received"],
        (malformed.len() + bad_crc.len() + 3) as u64
    );
}

#[test]
fn gaps_duplicates_and_reordering_are_reported_on_stderr_in_text_format() {
    let (mut chat, chat_addr) = Proc::chat("receiver", &["--bind", LOOPBACK, "--stats"]);
    let sender = udp_socket();
    let from = sender.local_addr().unwrap();
    for seq in [0, 1, 4, 4, 2] {
        sender
            .send_to(&raw_datagram(seq, "net", &format!("m{seq}")), chat_addr)
            .unwrap();
    }
    for seq in [0, 1, 4, 2] {
        assert_eq!(chat.next_line(Pipe::Stdout), format!("<net> m{seq}"));
    }
    // Numbered as people count, from 1: the wire's 2 and 3 are the third and fourth lines.
    chat.expect_stderr(&format!(
        "gap: 2 messages from {from} have not arrived yet (#3–#4)"
    ));
    chat.expect_stderr(&format!(
        "duplicate: message #5 from {from} arrived twice (a duplicate datagram; shown once)"
    ));
    chat.expect_stderr(&format!(
        "reordered: message #3 from {from} arrived late, after a later one: it is no longer \
         missing"
    ));
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
    let stats = chat.expect_stats();
    assert_eq!(
        (stats["gaps"], stats["duplicates"], stats["reordered"]),
        (2, 1, 1)
    );
    assert!(
        chat.drain(Pipe::Stdout).is_empty(),
        "the duplicate was shown"
    );
}

#[test]
fn gaps_duplicates_and_reordering_are_json_events_in_json_format() {
    let (mut chat, chat_addr) = Proc::chat("receiver", &["--bind", LOOPBACK, "--format", "json"]);
    let sender = udp_socket();
    let from = sender.local_addr().unwrap().to_string();
    for seq in [0, 2, 2, 1] {
        sender
            .send_to(&raw_datagram(seq, "net", &format!("m{seq}")), chat_addr)
            .unwrap();
    }
    let message = |seq: u64| {
        json!({"event": "message", "from": from, "nick": "net", "seq": seq,
               "text": format!("m{seq}")})
    };
    let expected = [
        json!({"event": "peer", "addr": from}),
        message(0),
        json!({"event": "gap", "from": from, "first": 1, "last": 1}),
        message(2),
        json!({"event": "duplicate", "from": from, "seq": 2}),
        json!({"event": "reordered", "from": from, "seq": 1}),
        message(1),
    ];
    for want in expected {
        assert_eq!(json_line(&mut chat), want);
    }
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn stdin_eof_exits_zero_once_every_line_was_sent() {
    let peer = udp_socket();
    let mut chat = Proc::spawn(
        "sender",
        &[
            "chat",
            "--bind",
            LOOPBACK,
            "--peer",
            &peer.local_addr().unwrap().to_string(),
            "--nick",
            "eve",
        ],
    );
    // Everything at once, then end of file, without waiting for anything.
    chat.send_bytes(b"one\ntwo\r\nthree");
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
    for (seq, text) in ["one", "two", "three"].into_iter().enumerate() {
        let message = decode_raw(&recv_datagram(&peer).0);
        assert_eq!(
            message,
            RawMessage {
                seq: seq as u64,
                nick: "eve".into(),
                text: text.into()
            }
        );
    }
}

#[test]
fn a_line_too_long_is_refused_and_the_next_line_still_arrives() {
    let peer = udp_socket();
    let (mut chat, _) = Proc::chat(
        "sender",
        &[
            "--bind",
            LOOPBACK,
            "--peer",
            &peer.local_addr().unwrap().to_string(),
        ],
    );
    chat.send_line(&"x".repeat(2000));
    chat.send_line("short");
    chat.expect_stderr("not sent: message too long: 2000 bytes");
    let message = decode_raw(&recv_datagram(&peer).0);
    // The refused line took no number, so the receiver sees no gap.
    assert_eq!((message.seq, message.text.as_str()), (0, "short"));
    assert!(chat.is_running());
    chat.send_line("/stats");
    let stats = chat.expect_stats();
    assert_eq!((stats["messages_sent"], stats["datagrams_sent"]), (1, 1));
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn quit_ends_the_chat_while_stdin_is_still_open() {
    let (mut chat, _) = Proc::chat("quitter", &["--bind", LOOPBACK]);
    chat.send_line("/quit");
    assert_eq!(chat.exit_code(), 0);
}

#[cfg(unix)]
#[test]
fn ctrl_c_ends_the_chat_cleanly() {
    let (mut chat, _) = Proc::chat("interrupted", &["--bind", LOOPBACK]);
    let pid = chat.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    chat.expect_stderr("interrupted, closing");
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn bad_flags_are_usage_errors_with_exit_code_2() {
    let cases: &[&[&str]] = &[
        &["chat", "--bogus"],
        &["chat", "--format", "xml"],
        &["chat", "--mode", "carrier-pigeon"],
        &["chat", "--bind", "not-an-address"],
        &["chat", "--nick", "two words"],
        &["chat", "--plain", "--nick", "alice"],
        &["chat", "--max-datagram", "10"],
        &["no-such-command"],
    ];
    for args in cases {
        let mut proc = Proc::spawn("bad-flags", args);
        assert_eq!(proc.exit_code(), 2, "udpchat {args:?}");
        let stderr = proc.drain(Pipe::Stderr).join("\n");
        assert!(stderr.starts_with("error: "), "udpchat {args:?}: {stderr}");
    }
}

#[test]
fn a_port_in_use_is_one_clear_line_and_exit_code_1() {
    let taken = UdpSocket::bind(LOOPBACK).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut chat = Proc::spawn("port-in-use", &["chat", "--bind", &addr]);
    assert_eq!(chat.exit_code(), 1);
    let stderr = chat.drain(Pipe::Stderr);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].starts_with(&format!("udpchat: cannot listen on {addr}: ")),
        "{stderr:?}"
    );
    assert!(stderr[0].to_lowercase().contains("in use"), "{stderr:?}");
}

#[test]
fn the_peer_may_be_given_by_name() {
    let peer = udp_socket();
    let port = peer.local_addr().unwrap().port();
    let (mut chat, _) = Proc::chat(
        "by-name",
        &["--bind", LOOPBACK, "--peer", &format!("localhost:{port}")],
    );
    chat.send_line("found you");
    assert_eq!(decode_raw(&recv_datagram(&peer).0).text, "found you");
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn two_chats_talk_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here: nothing to test");
        return;
    }
    let (mut bob, bob_addr) = Proc::chat("bob6", &["--bind", "[::1]:0", "--nick", "bob"]);
    let (mut alice, alice_addr) = Proc::chat(
        "alice6",
        &[
            "--bind",
            "[::1]:0",
            "--peer",
            &bob_addr.to_string(),
            "--nick",
            "alice",
        ],
    );
    assert!(alice_addr.is_ipv6());
    alice.send_line("over v6");
    assert_eq!(bob.next_line(Pipe::Stdout), "<alice> over v6");
    bob.send_line("and back");
    assert_eq!(alice.next_line(Pipe::Stdout), "<bob> and back");
    alice.close_stdin();
    bob.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
}

#[test]
fn an_ipv6_socket_talks_to_an_ipv4_peer_through_mapped_addresses() {
    if UdpSocket::bind("[::]:0").is_err() {
        eprintln!("no IPv6 here: nothing to test");
        return;
    }
    let nc = udp_socket();
    let nc_addr = nc.local_addr().unwrap();
    let (mut chat, chat_addr) = Proc::chat(
        "dual-stack",
        &[
            "--bind",
            "[::]:0",
            "--plain",
            "--peer",
            &nc_addr.to_string(),
        ],
    );
    chat.send_line("to v4");
    assert_eq!(recv_datagram(&nc).0, b"to v4\n");
    // The reply arrives from ::ffff:127.0.0.1, which must count as the peer, shown as IPv4.
    nc.send_to(b"from v4\n", ("127.0.0.1", chat_addr.port()))
        .unwrap();
    assert_eq!(chat.next_line(Pipe::Stdout), format!("<{nc_addr}> from v4"));
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}
