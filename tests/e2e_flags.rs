//! End-to-end tests of flag values the real binary must refuse: each is a usage error, exit
//! code 2, whose message names the flag and which shows the usage line of the subcommand it
//! belongs to (`Usage: udpchat chat ...`), not the top-level one. Nothing here sends a datagram:
//! every case is refused before a socket is opened, and the chats that would run bind loopback
//! port 0 and point at a loopback socket the test holds, so a regression cannot reach anything.

#![allow(clippy::unwrap_used)]

mod support;

use support::{udp_socket, Pipe, Proc};

/// Runs `udpchat` with `args`, with stdin closed at once; returns the exit code and stderr.
fn refused(args: &[&str]) -> (i32, String) {
    let mut proc = Proc::spawn("flags", args);
    proc.close_stdin();
    let code = proc.exit_code();
    (code, proc.drain(Pipe::Stderr).join("\n"))
}

/// Asserts that `args` are refused as a usage error of `subcommand` naming every one of `names`.
fn assert_usage_error(subcommand: &str, args: &[&str], names: &[&str]) {
    let (code, stderr) = refused(args);
    assert_eq!(code, 2, "udpchat {args:?}:\n{stderr}");
    assert!(stderr.starts_with("error: "), "udpchat {args:?}:\n{stderr}");
    for name in names {
        assert!(
            stderr.contains(name),
            "udpchat {args:?} should name {name}:\n{stderr}"
        );
    }
    let usage = format!("Usage: udpchat {subcommand} ");
    assert!(
        stderr.contains(&usage),
        "udpchat {args:?} should show {usage:?}:\n{stderr}"
    );
    assert!(
        !stderr.contains("unexpected argument"),
        "udpchat {args:?}:\n{stderr}"
    );
}

/// `chat --bind 127.0.0.1:0 --peer <a loopback socket of ours>` followed by `extra`.
fn chat_with(peer: &str, extra: &[&str]) -> Vec<String> {
    ["chat", "--bind", "127.0.0.1:0", "--peer", peer]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn negative_link_values_are_refused_naming_the_flag() {
    let sink = udp_socket();
    let peer = sink.local_addr().unwrap().to_string();
    for (flag, value) in [
        ("--delay", "-5ms"),
        ("--jitter", "-5ms"),
        ("--loss", "-5%"),
        ("--loss", "-1%"),
        ("--rate", "-1"),
        ("--rate", "-1mbit"),
        ("--seed", "-1"),
        ("--duplicate", "-0.1"),
        ("--queue", "-10"),
    ] {
        let args = chat_with(&peer, &[flag, value]);
        assert_usage_error("chat", &strs(&args), &[flag, value]);
    }
}

#[test]
fn the_proxy_refuses_a_negative_delay_and_interval() {
    let sink = udp_socket();
    let forward = sink.local_addr().unwrap().to_string();
    for (flag, value) in [("--delay", "-5ms"), ("--stats-interval", "-1")] {
        let args = [
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--forward",
            &forward,
            flag,
            value,
        ];
        assert_usage_error("proxy", &args, &[flag]);
    }
}

#[test]
fn a_rate_too_slow_to_carry_a_datagram_is_refused() {
    let sink = udp_socket();
    let peer = sink.local_addr().unwrap().to_string();
    let args = chat_with(&peer, &["--rate", "1bit"]);
    assert_usage_error("chat", &strs(&args), &["--rate", "8kbit"]);
    let args = chat_with(&peer, &["--down", "rate=100bit"]);
    assert_usage_error("chat", &strs(&args), &["--down", "8kbit"]);
}

#[test]
fn a_peer_without_a_usable_port_is_a_usage_error() {
    for (peer, why) in [
        ("127.0.0.1:0", "port 0"),
        ("127.0.0.1", "port is missing"),
        ("127.0.0.1:99999", "1 to 65535"),
        ("localhost", "port is missing"),
    ] {
        let args = ["chat", "--bind", "127.0.0.1:0", "--peer", peer];
        assert_usage_error("chat", &args, &["--peer", why]);
    }
    let args = [
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        "127.0.0.1:0",
    ];
    assert_usage_error("proxy", &args, &["--forward", "port 0"]);
}

#[test]
fn a_bind_and_a_peer_of_different_ip_families_are_refused_naming_both() {
    let sink = udp_socket();
    let peer = sink.local_addr().unwrap().to_string();
    let args = ["chat", "--bind", "[::1]:0", "--peer", &peer];
    assert_usage_error(
        "chat",
        &args,
        &["--bind [::1]:0", &format!("--peer {peer}")],
    );
    let args = ["chat", "--bind", "127.0.0.1:0", "--peer", "[::1]:9"];
    assert_usage_error("chat", &args, &["--bind 127.0.0.1:0", "--peer [::1]:9"]);
    let args = ["proxy", "--listen", "[::1]:0", "--forward", &peer];
    assert_usage_error("proxy", &args, &["--listen [::1]:0", "--forward"]);
}

#[test]
fn values_checked_after_parsing_show_the_subcommand_usage() {
    let sink = udp_socket();
    let peer = sink.local_addr().unwrap().to_string();
    for (extra, names) in [
        (
            &["--mode", "reliable", "--window", "0"][..],
            &["--window"][..],
        ),
        (
            &["--mode", "reliable", "--redundancy", "99"][..],
            &["--redundancy"][..],
        ),
        (
            &["--mode", "reliable", "--min-rto", "5s", "--max-rto", "1s"][..],
            &["--min-rto", "--max-rto"][..],
        ),
        (&["--window", "32"][..], &["--mode reliable"][..]),
        (&["--mode", "reliable", "--plain"][..], &["--plain"][..]),
        (
            &["--ui", "tui", "--format", "json"][..],
            &["--format json"][..],
        ),
    ] {
        let args = chat_with(&peer, extra);
        assert_usage_error("chat", &strs(&args), names);
    }
    assert_usage_error("lab", &["lab", "--size", "2"], &["--size"]);
    assert_usage_error("lab", &["lab", "--messages", "0"], &["--messages"]);
    assert_usage_error("lab", &["lab", "--seed", "-1"], &["--seed"]);
    assert_usage_error("lab", &["lab", "--delay", "-5ms"], &["--delay"]);
}
