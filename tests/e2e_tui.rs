//! End-to-end: the chat screen (`udpchat chat --ui tui`) in a real terminal, driven by tmux.
//!
//! tmux gives the screen a pseudo-terminal of a fixed size; the test types with `send-keys` and
//! reads the screen with `capture-pane`, polling until the expected text appears or the
//! deadline passes (then it fails showing the screen). The other end is a line-mode chat or a
//! plain socket on loopback. Each test runs its own tmux server (`tmux -L <unique name>`), which
//! a guard kills when the test ends, pass or fail. Without tmux the tests fail, saying so: CI
//! installs it (`.ci/run`).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::{raw_datagram, recv_datagram, udp_socket, udpchat_bin, Proc, DEADLINE};
use udpchat_core::Packet;

const LOOPBACK: &str = "127.0.0.1:0";

/// A tmux server of our own running one session, killed on drop.
struct Tmux {
    server: String,
}

impl Tmux {
    /// Starts `shell_command` in a detached session of `width`×`height` cells. The pane stays
    /// after the command exits, so its last screen and exit status can still be read.
    fn start(shell_command: &str, width: u16, height: u16) -> Tmux {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = format!(
            "udpchat-e2e-tui-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let tmux = Tmux { server };
        let width = width.to_string();
        let height = height.to_string();
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            &width,
            "-y",
            &height,
            shell_command,
            ";",
            "set-option",
            "-t",
            "chat",
            "remain-on-exit",
            "on",
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.server)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run tmux ({e}): the terminal-UI test needs it; install it with \
                     `apt-get install tmux` (.ci/run does this)"
                )
            });
        assert!(
            output.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Types `text` literally (no key names).
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    /// Presses named keys (`Enter`, `PPage`, `C-c`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "chat"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The screen (and, once the chat screen has closed, the scrollback) as text, one line per
    /// row.
    fn screen(&self) -> String {
        // `-S -`: from the start of the history, so lines printed after the chat screen closed
        // are all there even on a tiny pane; `-J`: lines the terminal wrapped are joined.
        let output = self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "chat"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen until `ready` holds, and returns it; fails at the deadline showing the
    /// last screen.
    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            // Polling the screen is not synchronising on time: the answer does not depend on
            // this interval, only how soon we notice it.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the screen to show a line containing `part`, and returns the screen.
    fn wait_for_text(&self, part: &str) -> String {
        self.wait_for(&format!("{part:?}"), |screen| screen.contains(part))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Kills the session and whatever still runs in it; errors mean it is gone already.
        let _ = Command::new("tmux")
            .args(["-L", &self.server, "kill-server"])
            .output();
    }
}

/// Fails with a clear message when tmux is missing, rather than passing silently.
fn require_tmux() {
    match Command::new("tmux").arg("-V").output() {
        Ok(output) if output.status.success() => {}
        _ => panic!(
            "tmux is not installed: the terminal-UI end-to-end test needs it; install it with \
             `apt-get install tmux` (.ci/run does this)"
        ),
    }
}

/// A shell command that runs `udpchat chat --ui tui ARGS`, then reports its exit code and the
/// terminal's settings, so the test can see the terminal was restored.
fn screen_command(args: &[&str]) -> String {
    let mut command = format!("'{}' chat --ui tui", udpchat_bin());
    for arg in args {
        command.push_str(&format!(" '{arg}'"));
    }
    command.push_str("; echo \"udpchat exited: $?\"; stty -a; echo 'end of report'");
    command
}

/// Checks, on the screen left after `screen_command` finished, that udpchat exited with `code`
/// and gave the terminal back: normal (cooked) mode with echo, and the alternate screen left
/// (none of the chat's lines remain on the normal screen).
fn assert_exited_and_restored(tmux: &Tmux, code: i32, chat_text: &str) {
    let screen = tmux.wait_for_text("end of report");
    assert!(
        screen.contains(&format!("udpchat exited: {code}")),
        "wrong exit code:\n{screen}"
    );
    let settings: Vec<&str> = screen.split_whitespace().collect();
    assert!(settings.contains(&"icanon"), "raw mode left on:\n{screen}");
    assert!(settings.contains(&"echo"), "echo left off:\n{screen}");
    assert!(
        !screen.contains(chat_text),
        "the alternate screen was not left:\n{screen}"
    );
}

#[test]
fn raw_chat_between_the_screen_and_a_line_mode_peer() {
    require_tmux();
    let (mut alice, alice_addr) = Proc::chat(
        "alice",
        &["--bind", LOOPBACK, "--nick", "alice", "--ui", "line"],
    );
    let tmux = Tmux::start(
        &screen_command(&[
            "--bind",
            LOOPBACK,
            "--peer",
            &alice_addr.to_string(),
            "--nick",
            "bob",
        ]),
        100,
        20,
    );
    let screen = tmux.wait_for_text("no connection (raw UDP)");
    assert!(screen.contains(" RAW "), "{screen}");
    assert!(screen.contains(&format!("→ {alice_addr}")), "{screen}");

    // Typed on the screen: shown as sent (raw UDP cannot confirm), and received by alice.
    tmux.type_text("hello from the screen, 日本語 👍");
    tmux.keys(&["Enter"]);
    tmux.wait_for_text("#1 bob: hello from the screen, 日本語 👍  · sent, unconfirmed");
    alice.expect_stdout("<bob> hello from the screen, 日本語 👍");

    // Alice answers: the screen shows her line and learns her nickname.
    alice.send_line("hi bob");
    let screen = tmux.wait_for_text("#1 alice: hi bob");
    assert!(
        screen.contains(&format!("alice @ {alice_addr}")),
        "{screen}"
    );
    assert!(screen.contains("sent 1 (unconfirmed)"), "{screen}");

    // A slash command works on the screen and sends nothing.
    tmux.type_text("/stats");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text("── stats (raw mode) ──");
    assert!(screen.contains("messages   sent 1  received 1"), "{screen}");

    // /quit leaves with exit code 0 and gives the terminal back in its normal (cooked) mode.
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 0, "hello from the screen");
    assert!(alice.is_running());
}

#[test]
fn raw_gaps_duplicates_and_reordering_show_as_notices() {
    require_tmux();
    let socket = udp_socket();
    let tmux = Tmux::start(
        &screen_command(&[
            "--bind",
            LOOPBACK,
            "--peer",
            &socket.local_addr().unwrap().to_string(),
            "--nick",
            "bob",
        ]),
        100,
        20,
    );
    tmux.wait_for_text("no connection (raw UDP)");
    // Learn the screen's address from a line it sends.
    tmux.type_text("anyone there?");
    tmux.keys(&["Enter"]);
    let (_, screen_addr) = recv_datagram(&socket);

    // mallory's messages 0 and 3 arrive, then 1 late, then 3 again: 1 and 2 have not arrived,
    // then 1 turns out reordered (the gap notice says so in place), and 3 is a duplicate. The
    // screen counts from 1, so the wire's 0 is #1.
    for (seq, text) in [(0, "zero"), (3, "three"), (1, "one"), (3, "three")] {
        socket
            .send_to(&raw_datagram(seq, "mallory", text), screen_addr)
            .unwrap();
    }
    let screen = tmux.wait_for_text("arrived twice");
    for expected in [
        "#1 mallory: zero",
        "[gap] 2 messages from mallory were missing (#2–#3): 1 arrived late, 1 has not arrived yet",
        "#4 mallory: three",
        "[reordered] message #2 from mallory arrived late",
        "[duplicate] message #4 from mallory arrived twice",
    ] {
        assert!(screen.contains(expected), "{expected:?} missing:\n{screen}");
    }
    tmux.keys(&["C-c"]);
    assert_exited_and_restored(&tmux, 0, "mallory");
}

#[test]
fn hostile_text_and_nicknames_show_escaped_on_the_screen() {
    require_tmux();
    let socket = udp_socket();
    let tmux = Tmux::start(
        &screen_command(&[
            "--bind",
            LOOPBACK,
            "--peer",
            &socket.local_addr().unwrap().to_string(),
        ]),
        120,
        20,
    );
    tmux.wait_for_text("no connection (raw UDP)");
    tmux.type_text("hello?");
    tmux.keys(&["Enter"]);
    let (_, screen_addr) = recv_datagram(&socket);
    let nick = format!("eve\u{202e}{}", "e".repeat(40));
    socket
        .send_to(
            &raw_datagram(0, &nick, "abc\u{202e}dcba\u{2028}<bob> fake"),
            screen_addr,
        )
        .unwrap();
    // The nickname is cut to 32 characters; the override and the separator show as escapes.
    let shown = format!(
        "#1 eve\\u{{202e}}{}…: abc\\u{{202e}}dcba\\u{{2028}}<bob> fake",
        "e".repeat(28)
    );
    let screen = tmux.wait_for_text(&shown);
    assert!(
        !screen.contains('\u{202e}') && !screen.contains('\u{2028}'),
        "{screen}"
    );
    tmux.keys(&["C-c"]);
    assert_exited_and_restored(&tmux, 0, "hello?");
}

#[test]
fn a_tiny_terminal_still_shows_the_input_line() {
    require_tmux();
    let socket = udp_socket();
    let tmux = Tmux::start(
        &screen_command(&[
            "--bind",
            LOOPBACK,
            "--peer",
            &socket.local_addr().unwrap().to_string(),
        ]),
        20,
        5,
    );
    tmux.wait_for_text("RAW");
    tmux.type_text("日本語 and a line longer than twenty cells");
    tmux.keys(&["Enter"]);
    let (datagram, _) = recv_datagram(&socket);
    match udpchat_core::decode(&datagram).unwrap() {
        Packet::Raw(message) => {
            assert_eq!(message.text, "日本語 and a line longer than twenty cells")
        }
        other => panic!("expected a raw message, got {other:?}"),
    }
    tmux.wait_for_text("twenty");
    tmux.keys(&["C-c"]);
    assert_exited_and_restored(&tmux, 0, "twenty");
}

/// The pids of the processes whose parent is `parent`, from /proc.
#[cfg(target_os = "linux")]
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // /proc/PID/stat is "pid (comm) state ppid ..."; comm may hold spaces, so split
        // after its closing parenthesis.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ppid = after_comm.split_whitespace().nth(1);
        if ppid == Some(&parent.to_string()) {
            children.push(pid);
        }
    }
    children
}

#[cfg(target_os = "linux")]
#[test]
fn sigterm_restores_the_terminal() {
    require_tmux();
    let socket = udp_socket();
    let tmux = Tmux::start(
        &screen_command(&[
            "--bind",
            LOOPBACK,
            "--peer",
            &socket.local_addr().unwrap().to_string(),
            "--nick",
            "bob",
        ]),
        80,
        20,
    );
    tmux.wait_for_text("no connection (raw UDP)");
    tmux.type_text("a half-typed line");
    tmux.wait_for_text("> a half-typed line");
    // The pane runs `sh -c '...'`, whose child is udpchat.
    let output = tmux.run(&["display-message", "-p", "-t", "chat", "#{pane_pid}"]);
    let shell: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    let chat = children_of(shell);
    assert_eq!(
        chat.len(),
        1,
        "expected one udpchat under the shell {shell}: {chat:?}"
    );
    let status = Command::new("kill")
        .args(["-s", "TERM", &chat[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_exited_and_restored(&tmux, 0, "half-typed");
}

#[test]
fn reliable_lines_turn_delivered_in_place_with_their_rtt() {
    require_tmux();
    let (mut alice, alice_addr) = Proc::chat(
        "alice",
        &[
            "--mode", "reliable", "--bind", LOOPBACK, "--nick", "alice", "--ui", "line",
        ],
    );
    let tmux = Tmux::start(
        &screen_command(&[
            "--mode",
            "reliable",
            "--bind",
            LOOPBACK,
            "--peer",
            &alice_addr.to_string(),
            "--nick",
            "bob",
        ]),
        110,
        20,
    );
    tmux.wait_for_text(" RELIABLE ");
    tmux.type_text("hello, reliably");
    tmux.keys(&["Enter"]);
    // The line's own mark changes to delivered, with the round-trip time in milliseconds.
    let screen = tmux.wait_for("the line marked delivered", |screen| {
        screen.lines().any(|line| {
            line.starts_with("bob: hello, reliably  ✓ delivered ") && line.ends_with(" ms")
        })
    });
    assert_eq!(
        screen.matches("hello, reliably").count(),
        1,
        "updated in place, not repeated:\n{screen}"
    );
    assert!(screen.contains("sent 1 ✓1 ✗0"), "{screen}");
    assert!(screen.contains("│ connected"), "{screen}");
    alice.expect_stdout("<bob> hello, reliably");

    alice.send_line("and back");
    let screen = tmux.wait_for_text("alice: and back");
    assert!(
        screen.contains(&format!("alice @ {alice_addr}")),
        "{screen}"
    );

    // Alice leaves (end of her input): the screen says so, and what a line typed now would do,
    // and stays until bob leaves too.
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    let screen = tmux.wait_for_text("the peer left the chat, so the session ended");
    assert!(screen.contains("│ peer left"), "{screen}");
    // /quit waits for nothing here (all acknowledged) and exits 0.
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 0, "hello, reliably");
}

#[test]
fn reliable_lines_nobody_acknowledges_are_marked_lost_and_exit_3() {
    require_tmux();
    // A socket that never answers: the handshake and the message go unacknowledged.
    let silent = udp_socket();
    let tmux = Tmux::start(
        &screen_command(&[
            "--mode",
            "reliable",
            "--bind",
            LOOPBACK,
            "--peer",
            &silent.local_addr().unwrap().to_string(),
            "--nick",
            "bob",
            "--max-retries",
            "2",
            "--min-rto",
            "50ms",
            "--max-rto",
            "100ms",
        ]),
        110,
        20,
    );
    tmux.wait_for_text(" RELIABLE ");
    tmux.type_text("into the void");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text("bob: into the void  ✗ lost");
    assert!(screen.contains("sent 1 ✓0 ✗1"), "{screen}");
    assert!(screen.contains("peer unreachable"), "{screen}");
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    // Back on the normal screen, the undelivered message is named and the exit code is 3.
    assert_exited_and_restored(&tmux, 3, "bob: into the void");
    let screen = tmux.screen();
    assert!(
        screen.contains("udpchat: undelivered: message #1: into the void"),
        "{screen}"
    );
}

/// The status bar's rows of an 80×24 screen (the two above the input line), from a capture.
fn status_rows_80x24(screen: &str) -> String {
    let rows: Vec<&str> = screen.lines().collect();
    // capture-pane prints the 24 rows; the input line is the last, the status bar above it.
    rows[rows.len().saturating_sub(3)..rows.len().saturating_sub(1)].join("\n")
}

#[test]
fn at_80_by_24_the_status_bar_shows_everything_and_an_unanswered_handshake_is_counted() {
    require_tmux();
    // A socket that never answers: the handshake is retried on its timer (1 s, then 2 s, ...).
    let silent = udp_socket();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let tmux = Tmux::start(
        &screen_command(&[
            "--mode",
            "reliable",
            "--bind",
            LOOPBACK,
            "--peer",
            &silent_addr,
            "--nick",
            "bob",
        ]),
        80,
        24,
    );
    tmux.wait_for_text(" RELIABLE ");
    // Each Hello reaches the silent socket (which keeps them unread); the screen counts the
    // ones after the first.
    let screen = tmux.wait_for_text(&format!("no answer from {silent_addr} yet, retrying ("));
    let status = status_rows_80x24(&screen);
    for field in [
        " RELIABLE ",
        "bob",
        &format!("→ {silent_addr}"),
        "connecting: no answer, retry ",
        "sent 0 ✓0 ✗0",
        "rtt -",
        "retransmits 0",
        "no impairment",
    ] {
        assert!(status.contains(field), "{field:?} missing from\n{status}");
    }
    // Ctrl-C closes; nothing was typed, so nothing waits to be acknowledged and it leaves.
    tmux.keys(&["C-c"]);
    assert_exited_and_restored(&tmux, 0, "no answer from");
}

#[test]
fn after_the_peer_left_a_new_line_opens_a_new_session_and_is_lost_if_nobody_answers() {
    require_tmux();
    let (mut alice, alice_addr) = Proc::chat(
        "alice",
        &[
            "--mode", "reliable", "--bind", LOOPBACK, "--nick", "alice", "--ui", "line",
        ],
    );
    let tmux = Tmux::start(
        &screen_command(&[
            "--mode",
            "reliable",
            "--bind",
            LOOPBACK,
            "--peer",
            &alice_addr.to_string(),
            "--nick",
            "bob",
            "--max-retries",
            "2",
            "--min-rto",
            "50ms",
            "--max-rto",
            "100ms",
        ]),
        80,
        24,
    );
    tmux.wait_for_text("│ connected");
    alice.send_line("bye");
    let screen = tmux.wait_for_text("alice: bye");
    let status = status_rows_80x24(&screen);
    for field in [
        " RELIABLE ",
        &format!("alice @ {alice_addr}"),
        "│ connected",
        "sent 0 ✓0 ✗0",
    ] {
        assert!(
            status.contains(field),
            "{field:?} missing from
{status}"
        );
    }
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    let screen = tmux.wait_for_text("the peer left the chat, so the session ended");
    assert!(
        status_rows_80x24(&screen).contains("│ peer left"),
        "{screen}"
    );
    // The transport opens a new session for the next line: the screen says so, and the line
    // waits, then is marked lost when the new handshake goes unanswered.
    tmux.type_text("still there?");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text(&format!("opening a new session to {alice_addr}"));
    assert!(screen.contains("bob: still there?  "), "{screen}");
    let screen = tmux.wait_for_text("bob: still there?  ✗ lost");
    let status = status_rows_80x24(&screen);
    assert!(status.contains("peer unreachable"), "{status}");
    assert!(status.contains("sent 1 ✓0 ✗1"), "{status}");
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 3, "opening a new session");
    assert!(tmux
        .screen()
        .contains("udpchat: undelivered: message #1: still there?"));
}

#[test]
fn at_40_by_12_mode_peer_state_and_count_still_show() {
    require_tmux();
    let peer = udp_socket();
    let peer_addr = peer.local_addr().unwrap().to_string();
    let tmux = Tmux::start(
        &screen_command(&["--bind", LOOPBACK, "--peer", &peer_addr, "--nick", "bob"]),
        40,
        12,
    );
    tmux.wait_for_text(" RAW ");
    tmux.type_text("hi");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text("sent 1");
    let rows: Vec<&str> = screen.lines().collect();
    let status = rows[rows.len() - 3..rows.len() - 1].join("\n");
    for field in [" RAW ", peer_addr.as_str(), "raw UDP", "sent 1"] {
        assert!(status.contains(field), "{field:?} missing from\n{status}");
    }
    for row in &rows {
        assert!(row.chars().count() <= 40, "{row:?}");
    }
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 0, "bob: hi");
}

#[test]
fn secret_asks_for_the_passphrase_unseen_and_the_status_bar_shows_the_code() {
    require_tmux();
    let (mut alice, alice_addr) = {
        let args = [
            "chat", "--bind", LOOPBACK, "--nick", "alice", "--ui", "line", "--secret",
        ];
        let mut proc = Proc::spawn_with_env("alice", &args, &[("UDPCHAT_SECRET", "zebra quartz")]);
        let addr = proc.listening_addr();
        (proc, addr)
    };
    let peer = alice_addr.to_string();
    let command = screen_command(&[
        "--bind", LOOPBACK, "--peer", &peer, "--nick", "bob", "--secret",
    ]);
    // No passphrase in the environment: the chat asks on the terminal.
    let tmux = Tmux::start(&format!("env -u UDPCHAT_SECRET {command}"), 100, 20);
    tmux.wait_for_text("passphrase (not shown):");
    tmux.type_text("zebra quartz");
    tmux.keys(&["Enter"]);
    let line = alice.expect_stderr("compare this code");
    let code = line.rsplit(": ").next().unwrap().to_owned();
    let screen = tmux.wait_for_text(&format!("encrypted, code {code}"));
    assert!(
        !screen.contains("zebra"),
        "the passphrase was echoed:\n{screen}"
    );
    tmux.type_text("sealed hello");
    tmux.keys(&["Enter"]);
    alice.expect_stdout("<bob> sealed hello");
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 0, "sealed hello");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
}

#[test]
fn without_secret_the_status_bar_says_not_encrypted_and_a_wrong_passphrase_exits_4() {
    require_tmux();
    let (mut alice, alice_addr) = {
        let args = [
            "chat", "--bind", LOOPBACK, "--nick", "alice", "--ui", "line", "--secret",
        ];
        let mut proc = Proc::spawn_with_env("alice", &args, &[("UDPCHAT_SECRET", "one")]);
        let addr = proc.listening_addr();
        (proc, addr)
    };
    let plain = Tmux::start(&screen_command(&["--bind", LOOPBACK]), 100, 20);
    plain.wait_for_text("not encrypted");
    plain.type_text("/quit");
    plain.keys(&["Enter"]);
    assert_exited_and_restored(&plain, 0, "not encrypted");

    let peer = alice_addr.to_string();
    let command = screen_command(&["--bind", LOOPBACK, "--peer", &peer, "--secret"]);
    let tmux = Tmux::start(&format!("UDPCHAT_SECRET=two {command}"), 100, 20);
    tmux.wait_for_text("the peer uses a different passphrase");
    tmux.wait_for_text("handshake failed");
    alice.expect_stderr("the handshake failed: the peer uses a different passphrase");
    assert_eq!(alice.exit_code(), 4);
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 4, "different passphrase");
}

#[test]
fn tcp_chat_on_the_screen_marks_lines_as_handed_to_the_kernel() {
    require_tmux();
    let (mut alice, alice_addr) = Proc::chat(
        "alice",
        &[
            "--mode", "tcp", "--bind", LOOPBACK, "--nick", "alice", "--ui", "line",
        ],
    );
    let tmux = Tmux::start(
        &screen_command(&[
            "--mode",
            "tcp",
            "--bind",
            LOOPBACK,
            "--peer",
            &alice_addr.to_string(),
            "--nick",
            "bob",
        ]),
        160,
        24,
    );
    let screen = tmux.wait_for_text("connected (kernel TCP)");
    assert!(screen.contains(" TCP "), "{screen}");
    tmux.type_text("over tcp");
    tmux.keys(&["Enter"]);
    tmux.wait_for_text("bob: over tcp  · sent to the kernel");
    alice.expect_stdout("<bob> over tcp");
    alice.send_line("hi bob");
    tmux.wait_for_text("alice: hi bob");
    // The status bar's refresh brings the kernel's figures (Linux TCP_INFO).
    #[cfg(target_os = "linux")]
    tmux.wait_for_text("kernel: rtt");
    tmux.type_text("/stats");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for_text("── stats (tcp mode) ──");
    assert!(screen.contains("frames"), "{screen}");
    let screen = screen.replace('\n', " ");
    assert!(!screen.contains("✓") && !screen.contains("✗"), "{screen}");
    // /quit: a goodbye, the peer closes, the screen leaves with exit code 0.
    tmux.type_text("/quit");
    tmux.keys(&["Enter"]);
    assert_exited_and_restored(&tmux, 0, "over tcp");
    alice.expect_stderr("the peer left");
    assert_eq!(alice.exit_code(), 0);
}
