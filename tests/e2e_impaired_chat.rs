//! End-to-end: `udpchat chat` with impairment flags impairs its own traffic, no proxy needed.
//!
//! The sender's seed makes its losses predictable (the same model, `udpchat_lab::Impairment`,
//! with the chat's outgoing stream `derive_seed(seed, 0)`), so the receiver's gap reports can be
//! checked exactly; `--impair-incoming` is checked with duplication, and a delayed last line
//! must still leave before the chat exits.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use support::{Pipe, Proc};

fn json_events(proc: &Proc) -> Vec<serde_json::Value> {
    proc.history(Pipe::Stdout)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn outgoing_loss_in_the_sender_shows_as_the_predicted_gaps_at_the_receiver() {
    const N: u64 = 60;
    let dropped: BTreeSet<u64> = support::predicted_drops(0.4, 5, N);
    let last = (0..N).rev().find(|s| !dropped.contains(s)).unwrap();
    let visible: BTreeSet<u64> = dropped.iter().copied().filter(|&s| s < last).collect();
    assert!(!visible.is_empty());

    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &[
            "--bind",
            "127.0.0.1:0",
            "--format",
            "json",
            "--nick",
            "bob",
            "--stats",
        ],
    );
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &bob_addr.to_string(),
            "--nick",
            "alice",
            "--loss",
            "40%",
            "--seed",
            "5",
            "--stats",
        ],
    );
    alice.expect_stderr("udpchat: impairing outgoing datagrams: loss 40% (seed 5)");
    for i in 0..N {
        alice.send_line(&format!("line {i}"));
    }
    let last_text = format!("\"text\":\"line {last}\"");
    bob.expect(Pipe::Stdout, "the last surviving line", |l| {
        l.contains(&last_text)
    });
    let mut received = BTreeSet::new();
    let mut gaps = BTreeSet::new();
    for event in json_events(&bob) {
        match event["event"].as_str().unwrap() {
            "message" => {
                received.insert(event["seq"].as_u64().unwrap());
            }
            "gap" => {
                gaps.extend(event["first"].as_u64().unwrap()..=event["last"].as_u64().unwrap())
            }
            _ => {}
        }
    }
    assert_eq!(received, (0..N).filter(|s| !dropped.contains(s)).collect());
    assert_eq!(gaps, visible);

    alice.close_stdin();
    // Alice's endpoint did send every line; the loss happened after it, on the "wire".
    assert_eq!(alice.expect_stats()["datagrams_sent"], N);
    assert_eq!(alice.exit_code(), 0);
    bob.close_stdin();
    assert_eq!(bob.expect_stats()["gaps"], visible.len() as u64);
    assert_eq!(bob.exit_code(), 0);
}

#[test]
fn impair_incoming_duplicates_what_the_receiver_gets() {
    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &[
            "--bind",
            "127.0.0.1:0",
            "--format",
            "json",
            "--duplicate",
            "100%",
            "--impair-incoming",
            "--seed",
            "1",
        ],
    );
    bob.expect_stderr("udpchat: impairing incoming datagrams: duplicate 100%");
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &bob_addr.to_string(),
            "--nick",
            "alice",
        ],
    );
    for text in ["one", "two", "three"] {
        alice.send_line(text);
    }
    bob.expect(Pipe::Stdout, "the third duplicate", |l| {
        l.contains("\"event\":\"duplicate\"") && l.contains("\"seq\":2")
    });
    let events = json_events(&bob);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .filter(|k| *k != "peer")
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "duplicate",
            "message",
            "duplicate",
            "message",
            "duplicate"
        ]
    );
}

#[test]
fn a_delayed_last_line_still_leaves_before_the_chat_exits() {
    let (mut bob, bob_addr) = Proc::chat("bob", &["--bind", "127.0.0.1:0"]);
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &bob_addr.to_string(),
            "--nick",
            "alice",
            "--delay",
            "300ms",
        ],
    );
    alice.send_line("late but there");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.expect_stdout("<alice> late but there");
}

#[test]
fn bad_impairment_values_in_chat_are_usage_errors() {
    let mut chat = Proc::spawn("chat", &["chat", "--bind", "127.0.0.1:0", "--jitter=-3ms"]);
    assert_eq!(chat.exit_code(), 2);
    let stderr = chat.drain(Pipe::Stderr).join("\n");
    assert!(stderr.contains("invalid duration"), "{stderr}");
}
