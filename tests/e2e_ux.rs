//! End-to-end: what a new user meets around the chat, with the real binary. Shell completions
//! and the man page are generated from the flag definitions; a chat pointed at its own address
//! is refused before it could echo itself; `--stats` prints only what the mode has, as a table.
//! Nothing here reaches further than loopback: the self-talk cases are refused before a socket
//! is bound, and the one chat that runs binds `127.0.0.1:0` and talks to a socket of the test.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};

use support::{udp_socket, udpchat_bin, Pipe, Proc};

fn run(args: &[&str]) -> Output {
    Command::new(udpchat_bin()).args(args).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn bash_completion_knows_the_subcommands_and_their_flags() {
    let output = run(&["completions", "bash"]);
    assert!(output.status.success(), "{output:?}");
    let script = stdout(&output);
    for word in [
        "_udpchat()",
        "complete -F",
        "chat",
        "proxy",
        "lab",
        "--peer",
        "--forward",
    ] {
        assert!(
            script.contains(word),
            "{word:?} missing from the bash script"
        );
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let output = run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {output:?}");
        assert!(stdout(&output).contains("peer"), "{shell}");
    }
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_man_pages_are_roff_with_the_flags() {
    let output = run(&["man"]);
    assert!(output.status.success(), "{output:?}");
    let page = stdout(&output);
    assert!(page.contains(".TH udpchat 1"), "{page}");
    assert!(page.contains("udpchat\\-chat(1)"), "{page}");
    let output = run(&["man", "chat"]);
    assert!(output.status.success(), "{output:?}");
    let page = stdout(&output);
    assert!(page.contains(".TH udpchat-chat 1"), "{page}");
    assert!(page.contains("\\fB\\-\\-peer\\fR"), "{page}");
    let bad = run(&["man", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Usage: udpchat man"));
}

/// Runs `udpchat chat` with `args` and stdin closed; returns the exit code and stderr.
fn refused(args: &[&str]) -> (i32, String) {
    let mut proc = Proc::spawn("self-talk", args);
    proc.close_stdin();
    let code = proc.exit_code();
    (code, proc.drain(Pipe::Stderr).join("\n"))
}

#[test]
fn a_chat_pointed_at_its_own_address_is_refused() {
    // A port the test holds: the check comes before binding, so the chat never competes for it.
    let held = udp_socket();
    let port = held.local_addr().unwrap().port();
    for (bind, peer) in [
        (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")),
        (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
        (format!("0.0.0.0:{port}"), format!("localhost:{port}")),
    ] {
        for mode in ["raw", "reliable"] {
            let (code, stderr) =
                refused(&["chat", "--bind", &bind, "--peer", &peer, "--mode", mode]);
            assert_eq!(code, 2, "{bind} -> {peer}: {stderr}");
            assert!(stderr.contains("is this chat's own address"), "{stderr}");
            assert!(stderr.contains("Usage: udpchat chat"), "{stderr}");
            assert!(!stderr.contains("listening on"), "{stderr}");
        }
    }
    // Another port of the same machine is someone else.
    let other = udp_socket();
    let (mut chat, _) = Proc::chat(
        "not-self",
        &[
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &other.local_addr().unwrap().to_string(),
        ],
    );
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn raw_stats_are_a_table_of_what_raw_mode_has() {
    let peer = udp_socket();
    let (mut chat, _) = Proc::chat(
        "stats",
        &[
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &peer.local_addr().unwrap().to_string(),
            "--stats",
        ],
    );
    chat.send_line("hello");
    // The driver takes lines in order: the counters asked for next include the datagram sent.
    chat.send_line("/stats");
    let stats = chat.expect_stats();
    assert_eq!(stats["messages_sent"], 1);
    assert_eq!(stats["datagrams_sent"], 1);
    assert_eq!(stats["gaps"], 0);
    for reliable_only in [
        "cwnd",
        "peer_window",
        "retransmits_timeout",
        "messages_delivered",
    ] {
        assert!(
            !stats.contains_key(reliable_only),
            "{reliable_only}: {stats:?}"
        );
    }
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
    let rest = chat.drain(Pipe::Stderr);
    let table: Vec<&String> = rest
        .iter()
        .skip_while(|l| !l.starts_with(support::STATS_HEADING))
        .collect();
    assert_eq!(table[0], "udpchat: stats (raw mode):", "{rest:#?}");
    assert!(
        table[1].starts_with("udpchat:   messages   sent 1  received 0"),
        "{rest:#?}"
    );
    assert_eq!(table.last().map(|l| l.as_str()), Some(support::STATS_END));
    assert!(table
        .iter()
        .all(|l| !l.contains("retransmits") && !l.contains("rtt")));
}

#[test]
fn the_line_ui_says_when_a_handshake_goes_unanswered() {
    // A socket that never answers: the handshake is resent on its timer (1 s, then 2 s, ...).
    let silent = udp_socket();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let (mut chat, _) = Proc::chat(
        "unanswered",
        &[
            "--mode",
            "reliable",
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &silent_addr,
        ],
    );
    chat.expect_stderr(&format!("udpchat: connecting to {silent_addr}"));
    chat.expect_stderr(&format!(
        "udpchat: no answer from {silent_addr} yet, retrying (1)"
    ));
    // Ending the input closes at once: nothing was sent, so nothing waits.
    chat.close_stdin();
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn after_the_peer_left_the_line_ui_says_the_next_line_opens_a_new_session() {
    let (mut alice, alice_addr) =
        Proc::chat("alice", &["--mode", "reliable", "--bind", "127.0.0.1:0"]);
    let (mut bob, _) = Proc::chat(
        "bob",
        &[
            "--mode",
            "reliable",
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &alice_addr.to_string(),
            "--max-retries",
            "2",
            "--min-rto",
            "50ms",
            "--max-rto",
            "100ms",
            "--stats",
        ],
    );
    // Named from the handshake: alice's default nickname (`$USER`, else "anon") comes first.
    let connected = format!(" at {alice_addr}");
    bob.expect(Pipe::Stderr, "the connected line", |l| {
        l.starts_with("udpchat: connected to ") && l.ends_with(&connected)
    });
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.expect_stderr("udpchat: the peer left the chat, so the session ended");
    bob.send_line("still there?");
    bob.expect_stderr(&format!(
        "udpchat: opening a new session to {alice_addr} for this line"
    ));
    bob.expect_stderr("udpchat: lost: message #1 was not delivered");
    bob.expect_stderr("udpchat: the peer stopped answering, so the session ended");
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 3);
    let rest = bob.drain(Pipe::Stderr).join("\n");
    assert!(
        rest.contains("udpchat: undelivered: message #1: still there?"),
        "{rest}"
    );
    // Reliable mode's table: its own rows, and no gaps (it repairs them).
    let stats = support::parse_stats(bob.history(Pipe::Stderr));
    assert_eq!(
        (stats["messages_sent"], stats["messages_lost"]),
        (1, 1),
        "{rest}"
    );
    assert!(stats.contains_key("retransmits_timeout") && stats.contains_key("cwnd"));
    assert!(!stats.contains_key("gaps"), "{rest}");
    assert!(rest.contains("udpchat: stats (reliable mode):"), "{rest}");
}
