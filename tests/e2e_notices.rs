//! End-to-end: what the line interface prints when the network is hostile or busy.
//!
//! The real `udpchat chat` binary receives hand-crafted datagrams from a plain loopback socket:
//! text holding bidi overrides, line separators and C1 controls (it must come out escaped, in
//! text and in JSON), a framed message that is not UTF-8 (shown with U+FFFD, not dropped), and a
//! flood of valid messages with random numbers (the notices about them must stay few). Reliable
//! mode's per-line `delivered` reports come only with `--verbose`, and the peer is announced
//! once. Every wait has a deadline; markers seen on stdout synchronise, never sleeps.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};

use serde_json::Value;
use support::{raw_datagram, udp_socket, Pipe, Proc};

const LOOPBACK: &str = "127.0.0.1:0";

/// CRC-32 (IEEE, reflected), as the envelope's trailer: to re-seal a datagram after changing
/// its body, which the encoder would never produce.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A raw-mode chat at `--format format` whose peer is `socket`.
fn receiver(name: &str, socket: &UdpSocket, format: &str) -> (Proc, SocketAddr) {
    Proc::chat(
        name,
        &[
            "--bind",
            LOOPBACK,
            "--peer",
            &socket.local_addr().unwrap().to_string(),
            "--nick",
            "bob",
            "--format",
            format,
        ],
    )
}

#[test]
fn bidi_overrides_separators_and_long_nicknames_are_printed_escaped() {
    let peer = udp_socket();
    let (mut chat, addr) = receiver("text", &peer, "text");
    let long_nick = "m".repeat(50);
    for (seq, nick, text) in [
        (0, "alice", "abc\u{202e}dcba"),
        (1, "alice", "x\u{2028}<bob> after LS"),
        (2, long_nick.as_str(), "\u{1b}[31mred"),
    ] {
        peer.send_to(&raw_datagram(seq, nick, text), addr).unwrap();
    }
    assert_eq!(chat.next_line(Pipe::Stdout), "<alice> abc\\u{202e}dcba");
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        "<alice> x\\u{2028}<bob> after LS"
    );
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        format!("<{}…> \\u{{1b}}[31mred", "m".repeat(32))
    );
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn json_output_escapes_c1_controls_and_a_reader_gets_the_exact_text() {
    let peer = udp_socket();
    let (mut chat, addr) = receiver("json", &peer, "json");
    let texts = ["a\u{85}<bob> after NEL", "\u{9b}31mred-by-C1"];
    for (seq, text) in texts.iter().enumerate() {
        peer.send_to(&raw_datagram(seq as u64, "alice", text), addr)
            .unwrap();
    }
    for text in texts {
        let line = chat.expect(Pipe::Stdout, "a message event", |l| {
            l.contains("\"event\":\"message\"")
        });
        assert!(line.is_ascii(), "raw characters in {line:?}");
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["text"], text);
    }
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn a_framed_message_that_is_not_utf8_is_shown_with_replacement_characters() {
    let peer = udp_socket();
    let (mut chat, addr) = receiver("not-utf8", &peer, "text");
    let mut datagram = raw_datagram(0, "alice", "bad ?? bytes");
    let at = datagram.windows(2).position(|w| w == b"??").unwrap();
    datagram[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let body_end = datagram.len() - 4;
    let crc = crc32(&datagram[..body_end]);
    datagram[body_end..].copy_from_slice(&crc.to_le_bytes());
    peer.send_to(&datagram, addr).unwrap();
    assert_eq!(
        chat.next_line(Pipe::Stdout),
        "<alice> bad \u{fffd}\u{fffd} bytes"
    );
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

/// Deterministic pseudo-random numbers (xorshift64), so the flood is the same on every run.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[test]
fn a_flood_of_crafted_numbers_earns_a_bounded_number_of_notices() {
    const BURSTS: u64 = 20;
    const PER_BURST: u64 = 250;
    let peer = udp_socket();
    let (mut chat, addr) = Proc::chat(
        "flooded",
        &[
            "--bind",
            LOOPBACK,
            "--peer",
            &peer.local_addr().unwrap().to_string(),
            "--stats",
        ],
    );
    let mut next = xorshift(5);
    for burst in 0..BURSTS {
        for _ in 0..PER_BURST {
            // Numbers of 8, 20, 40 and 64 bits: gaps, late ones, duplicates and restarts.
            let bits = [8, 20, 40, 64][(next() % 4) as usize];
            let seq = next() >> (64 - bits);
            peer.send_to(&raw_datagram(seq, "mallory", "x"), addr)
                .unwrap();
        }
        // A marker after each burst: once it is shown, the burst was read (a full socket
        // buffer may have dropped some of the burst, which changes nothing here).
        let marker = format!("marker {burst}");
        peer.send_to(&raw_datagram(u64::MAX - burst, "mallory", &marker), addr)
            .unwrap();
        chat.expect_stdout(&format!("<mallory> {marker}"));
    }
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
    let stats = chat.expect_stats();
    // Gaps count missing numbers, which a crafted jump makes astronomically many.
    assert!(stats["gaps"] > 1000, "the flood made few gaps: {stats:?}");
    assert!(
        stats["reordered"] > 50,
        "the flood made few late ones: {stats:?}"
    );
    chat.drain(Pipe::Stderr);
    let notices: Vec<&String> = chat
        .history(Pipe::Stderr)
        .iter()
        .filter(|l| !l.contains("listening on") && !l.contains("talking to"))
        .filter(|l| !l.starts_with("udpchat: stats:"))
        .collect();
    // Six kinds at most, each: ten shown, one line saying the rest are counted, one count.
    assert!(notices.len() <= 6 * 12, "{} notices", notices.len());
    for kind in ["gap notices", "reordering notices"] {
        assert!(
            notices
                .iter()
                .any(|l| l.contains(&format!("more {kind} were not shown"))),
            "no count of {kind}: {notices:#?}"
        );
    }
}

/// Two reliable chats; alice knows bob. Returns them after alice sent `lines` and quit.
fn reliable_pair(alice_flags: &[&str], lines: &[&str]) -> (Proc, Proc, SocketAddr) {
    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &["--mode", "reliable", "--bind", LOOPBACK, "--nick", "bob"],
    );
    let bob_text = bob_addr.to_string();
    let mut args = vec![
        "--mode", "reliable", "--bind", LOOPBACK, "--peer", &bob_text, "--nick", "alice",
    ];
    args.extend_from_slice(alice_flags);
    let (mut alice, _) = Proc::chat("alice", &args);
    for line in lines {
        alice.send_line(line);
    }
    for line in lines {
        bob.expect_stdout(&format!("<alice> {line}"));
    }
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0, "every line delivered");
    alice.drain(Pipe::Stderr);
    (alice, bob, bob_addr)
}

#[test]
fn reliable_deliveries_are_reported_only_with_verbose_and_counted_from_one() {
    let lines = ["one", "two", "three"];
    let (alice, mut bob, bob_addr) = reliable_pair(&[], &lines);
    let stderr = alice.history(Pipe::Stderr);
    assert!(
        !stderr.iter().any(|l| l.contains("delivered")),
        "{stderr:#?}"
    );
    // The peer is announced once while connecting and once when connected, never twice alike.
    let about_peer: Vec<&String> = stderr
        .iter()
        .filter(|l| l.contains(&bob_addr.to_string()))
        .collect();
    assert_eq!(
        about_peer,
        [
            &format!("udpchat: connecting to {bob_addr}"),
            // Named from the handshake, before bob wrote anything.
            &format!("udpchat: connected to bob at {bob_addr}")
        ],
        "{stderr:#?}"
    );
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);

    let (alice, mut bob, _) = reliable_pair(&["--verbose"], &lines);
    let stderr = alice.history(Pipe::Stderr);
    for n in 1..=3 {
        let report = format!("udpchat: delivered: message #{n}");
        assert!(
            stderr
                .iter()
                .any(|l| *l == report || l.starts_with(&format!("{report} "))),
            "no delivery report for #{n}: {stderr:#?}"
        );
    }
    assert!(!stderr.iter().any(|l| l.contains("message #0")));
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);
}
