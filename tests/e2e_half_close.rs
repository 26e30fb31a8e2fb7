//! How a reliable chat ends, with the real binary over loopback: two piped sides that both
//! half-close (`--half-close`) exchange everything through a bad network (issue 11's "two piped
//! sides" soak test); without it, whatever the first side to leave misses is reported lost,
//! never delivered; a nickname changes mid-session; a chat whose datagrams come back to it says
//! it is talking to itself.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use support::{proxy, recv_datagram, udp_socket, Pipe, Proc};

const LOOPBACK: &str = "127.0.0.1:0";

/// The impairment: every kind of damage at once, with some delay.
const BAD_NETWORK: [&str; 14] = [
    "--loss",
    "10%",
    "--duplicate",
    "5%",
    "--reorder",
    "10%",
    "--corrupt",
    "2%",
    "--delay",
    "10ms",
    "--jitter",
    "5ms",
    "--seed",
    "11",
];

/// Lines each side sends: the 3,000 each way (about two seconds on loopback; each
/// process has the helpers' 20 s deadline).
const LINES: usize = 3000;

fn lines(who: &str, n: usize) -> String {
    (0..n).map(|i| format!("{who} line {i}\n")).collect()
}

/// What one side's JSON stdout says: the texts it printed, in order, and the ids of its own
/// lines it was told were delivered.
struct Report {
    printed: Vec<String>,
    delivered: BTreeSet<u64>,
    events: Vec<String>,
}

fn report(proc: &mut Proc) -> Report {
    proc.drain(Pipe::Stdout);
    let mut out = Report {
        printed: Vec::new(),
        delivered: BTreeSet::new(),
        events: Vec::new(),
    };
    for line in proc.history(Pipe::Stdout) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = event["event"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "message" => out.printed.push(event["text"].as_str().unwrap().to_owned()),
            "delivered" => {
                out.delivered.insert(event["id"].as_u64().unwrap());
            }
            _ => {}
        }
        out.events.push(kind);
    }
    out
}

/// Starts bob (listening), a proxy with `impairment` in front of him, and alice (connecting
/// through it), both reliable, JSON on stdout, with `extra` flags.
fn two_sides(extra: &[&str], impairment: &[&str]) -> (Proc, Proc, Proc) {
    let common = ["--mode", "reliable", "--format", "json", "--ui", "line"];
    let mut bob_args = vec!["--bind", LOOPBACK, "--nick", "bob"];
    bob_args.extend_from_slice(&common);
    bob_args.extend_from_slice(extra);
    let (bob, bob_addr) = Proc::chat("bob", &bob_args);
    let (proxy, proxy_addr) = proxy(&bob_addr.to_string(), impairment);
    let proxy_addr = proxy_addr.to_string();
    let mut alice_args = vec!["--bind", LOOPBACK, "--nick", "alice", "--peer", &proxy_addr];
    alice_args.extend_from_slice(&common);
    alice_args.extend_from_slice(extra);
    let (alice, _) = Proc::chat("alice", &alice_args);
    (alice, bob, proxy)
}

/// Feeds both sides their whole input at once, as files would: alice at once, bob as soon as
/// he has a peer to send to (a listener refuses lines before anyone wrote).
fn feed(alice: &mut Proc, bob: &mut Proc, n: usize) {
    alice.send_bytes(lines("alice", n).as_bytes());
    alice.close_stdin();
    bob.expect(Pipe::Stdout, "the peer event", |l| {
        l.contains("\"event\":\"peer\"")
    });
    bob.send_bytes(lines("bob", n).as_bytes());
    bob.close_stdin();
}

fn expected(who: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{who} line {i}")).collect()
}

#[test]
fn two_piped_sides_with_half_close_exchange_everything_through_a_bad_network() {
    let (mut alice, mut bob, _proxy) = two_sides(&["--half-close"], &BAD_NETWORK);
    feed(&mut alice, &mut bob, LINES);
    // Alice's input ended long before Bob's lines arrived: she waits for them, then both leave
    // with nothing lost.
    let codes = [alice.exit_code(), bob.exit_code()];
    let (a, b) = (report(&mut alice), report(&mut bob));
    let news = |r: &Report| -> Vec<String> {
        r.events
            .iter()
            .filter(|e| !["message", "delivered", "dropped", "lost"].contains(&e.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(codes, [0, 0], "alice: {:?}\nbob: {:?}", news(&a), news(&b));
    assert_eq!(b.printed, expected("alice", LINES), "alice → bob");
    assert_eq!(a.printed, expected("bob", LINES), "bob → alice");
    // Every line was reported delivered, and each delivered line was printed by the other.
    assert_eq!(a.delivered, (0..LINES as u64).collect());
    assert_eq!(b.delivered, (0..LINES as u64).collect());
    for (side, r) in [("alice", &a), ("bob", &b)] {
        assert!(r.events.contains(&"peer_finished".to_owned()), "{side}");
        assert!(!r.events.contains(&"lost".to_owned()), "{side}");
        assert!(!r.events.contains(&"peer_closed".to_owned()), "{side}");
    }
}

/// The central promise, without the half-close: the first side to finish closes the chat, so
/// the other's later lines are lost (exit 3, named), but no line is ever reported delivered
/// that the other side did not print.
#[test]
fn without_half_close_no_line_is_reported_delivered_that_the_peer_did_not_print() {
    let (mut alice, mut bob, _proxy) = two_sides(&[], &BAD_NETWORK);
    feed(&mut alice, &mut bob, LINES / 3);
    let codes = [alice.exit_code(), bob.exit_code()];
    assert!(codes.iter().all(|c| [0, 3].contains(c)), "{codes:?}");
    let (a, b) = (report(&mut alice), report(&mut bob));
    for (who, sender, receiver) in [("alice", &a, &b), ("bob", &b, &a)] {
        for id in &sender.delivered {
            let line = format!("{who} line {id}");
            assert!(
                receiver.printed.contains(&line),
                "{line:?} reported delivered, never printed"
            );
        }
    }
}

#[test]
fn a_nickname_change_in_reliable_mode_shows_from_the_right_line_on() {
    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &[
            "--bind", LOOPBACK, "--mode", "reliable", "--ui", "line", "--nick", "bob",
        ],
    );
    let bob_addr = bob_addr.to_string();
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--bind", LOOPBACK, "--mode", "reliable", "--ui", "line", "--nick", "alice", "--peer",
            &bob_addr,
        ],
    );
    // Named as soon as the handshake is done, before any line.
    alice.expect_stderr("connected to bob at ");
    bob.expect_stderr("connected to alice at ");
    alice.send_line("one");
    alice.send_line("/nick al2");
    alice.send_line("two");
    alice.expect_stderr("you are now al2");
    bob.expect_stdout("<alice> one");
    bob.expect_stdout("<al2> two");
    bob.expect_stderr("alice is now known as al2");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
}

/// A relay that sends every datagram back where it came from: the chat's own `Hello` returns.
#[test]
fn a_chat_whose_datagrams_come_back_to_it_says_it_is_talking_to_itself() {
    let mirror = udp_socket();
    let mirror_addr = mirror.local_addr().unwrap().to_string();
    let (mut chat, _) = Proc::chat(
        "chat",
        &[
            "--bind",
            LOOPBACK,
            "--mode",
            "reliable",
            "--ui",
            "line",
            "--peer",
            &mirror_addr,
        ],
    );
    let (hello, from) = recv_datagram(&mirror);
    mirror.send_to(&hello, from).unwrap();
    chat.expect_stderr("this chat is talking to itself");
    assert!(!chat
        .history(Pipe::Stderr)
        .iter()
        .any(|l| l.contains("connected to")));
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}
