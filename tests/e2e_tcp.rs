//! TCP mode with the real binary over loopback: two chats exchange lines both ways (text and
//! JSON, a 10 kB paste among them); two chats that both name the other with `--peer` end up on
//! one connection; `--plain` talks to a Python TCP socket; a killed peer is reported, with exit
//! code 3 when lines we wrote may not have arrived; junk and an oversize frame from the peer are
//! counted and reported, never a crash; what TCP mode cannot do is refused with exit code 2.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;

use support::{Pipe, Proc};
use udpchat_core::{ConnectionId, Data, Packet, SeqNum};

const LOOPBACK: &str = "127.0.0.1:0";

fn tcp_chat(name: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["--mode", "tcp", "--bind", LOOPBACK, "--nick", name];
    args.extend_from_slice(extra);
    Proc::chat(name, &args)
}

#[test]
fn lines_cross_both_ways_in_text_and_json_a_long_paste_too() {
    let (mut bob, bob_addr) = tcp_chat("bob", &["--format", "json"]);
    let (mut alice, _) = tcp_chat("alice", &["--peer", &bob_addr.to_string()]);
    alice.expect_stderr("connected to 127.0.0.1");
    alice.send_line("hello bob");
    let json = bob.expect(Pipe::Stdout, "alice's line", |l| l.contains("hello bob"));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["event"], "message");
    assert_eq!(value["nick"], "alice");
    assert_eq!(value["seq"], 0);
    bob.send_line("hello alice");
    alice.expect_stdout("<bob> hello alice");
    // What the kernel knows, as a JSON event too.
    bob.send_line("/stats");
    let stats = bob.expect(Pipe::Stdout, "the stats event", |l| l.contains("tcp_stats"));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["counters"]["messages_sent"], 1);
    #[cfg(target_os = "linux")]
    assert_eq!(stats["kernel"]["status"], "known", "{stats}");
    // A paste of 10 kB: one frame, far beyond one UDP datagram of 1200 bytes.
    let paste: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    alice.send_line(&paste);
    let json = bob.expect(Pipe::Stdout, "the paste", |l| l.contains("\"seq\":1"));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["text"], paste);
    // Alice leaves: she said goodbye, Bob reports it, both exit cleanly.
    alice.close_stdin();
    bob.expect(Pipe::Stdout, "the peer's goodbye", |l| {
        l.contains("\"event\":\"peer_closed\"")
    });
    let ended = bob.expect(Pipe::Stdout, "the ending", |l| l.contains("tcp_ended"));
    assert!(ended.contains("\"reason\":\"peer_left\""), "{ended}");
    assert_eq!(bob.exit_code(), 0);
    alice.expect_stderr("we said goodbye and the peer closed its side");
    assert_eq!(alice.exit_code(), 0);
}

/// A free loopback port: bound by the system, then released for a chat to take.
fn free_port() -> u16 {
    TcpListener::bind(LOOPBACK)
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn both_sides_with_a_peer_make_one_connection() {
    let b_port = free_port();
    let b_addr = format!("127.0.0.1:{b_port}");
    // Alice starts first: Bob is not up, so her attempts are refused and retried.
    let (mut alice, a_addr) = tcp_chat("alice", &["--peer", &b_addr]);
    alice.expect_stderr("cannot connect to");
    let bob_args = [
        "chat",
        "--mode",
        "tcp",
        "--bind",
        &b_addr,
        "--peer",
        &a_addr.to_string(),
        "--nick",
        "bob",
    ];
    let mut bob = Proc::spawn("bob", &bob_args);
    // Each side's peer is the other's listening address: one connection between the two
    // listening ports (a second connection would come from an ephemeral port).
    alice.expect_stderr(&format!("connected to {b_addr} (one TCP connection)"));
    bob.expect_stderr(&format!("connected to {a_addr} (one TCP connection)"));
    alice.send_line("from alice");
    bob.expect_stdout("<alice> from alice");
    bob.send_line("from bob");
    alice.expect_stdout("<bob> from bob");
    bob.close_stdin();
    alice.expect_stderr("the peer left");
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
}

#[test]
fn plain_mode_talks_to_a_python_tcp_socket() {
    let (mut chat, addr) = Proc::chat("chat", &["--mode", "tcp", "--plain", "--bind", LOOPBACK]);
    let script = "import socket,sys\n\
        s=socket.create_connection(('127.0.0.1',int(sys.argv[1])))\n\
        s.sendall(b'hi from python\\n')\n\
        f=s.makefile('rb')\n\
        print(f.readline().decode().rstrip('\\n'),flush=True)\n\
        s.close()\n";
    let mut python = Proc::spawn_program(
        "python",
        "python3",
        &["-c", script, &addr.port().to_string()],
    );
    let line = chat.expect(Pipe::Stdout, "python's line", |l| {
        l.ends_with("> hi from python")
    });
    assert!(line.starts_with("<127.0.0.1:"), "{line}");
    chat.send_line("hi from udpchat");
    python.expect_stdout("hi from udpchat");
    assert_eq!(python.exit_code(), 0);
    chat.expect_stderr("the peer left");
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn a_peer_killed_after_reading_everything_is_reported_gone_without_a_goodbye() {
    let (mut alice, alice_addr) = tcp_chat("alice", &[]);
    let (mut bob, _) = tcp_chat("bob", &["--peer", &alice_addr.to_string()]);
    bob.send_line("still there?");
    alice.expect_stdout("<bob> still there?");
    alice.send_line("yes");
    // Bob showed Alice's line, so he has read everything she sent (her nickname first).
    bob.expect_stdout("<alice> yes");
    // SIGKILL: Bob's kernel closes the connection for him, with a FIN since nothing was left
    // unread (unread data would have made it a reset).
    drop(bob);
    alice.expect_stderr("closed without a goodbye: its program ended or was killed");
    // What Alice wrote was read, and the kernel says it was all acknowledged (elsewhere than
    // Linux nobody can say, and the exit code is 3).
    #[cfg(target_os = "linux")]
    let report = alice.drain(Pipe::Stderr);
    assert!(
        !report.iter().any(|l| l.contains("may not have arrived")),
        "{report:?}"
    );
    #[cfg(target_os = "linux")]
    assert_eq!(alice.exit_code(), 0);
}

#[cfg(unix)]
fn signal(proc: &Proc, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[cfg(unix)]
#[test]
fn a_peer_killed_with_our_line_unread_gives_exit_code_3() {
    let (mut alice, alice_addr) = tcp_chat("alice", &[]);
    let (mut bob, _) = tcp_chat("bob", &["--peer", &alice_addr.to_string()]);
    bob.send_line("hi");
    alice.expect_stdout("<bob> hi");
    // Bob stops reading (stopped, not dead: his kernel still acknowledges), Alice writes, Bob
    // dies. Whichever way the race goes (the kernel had the line and Bob's kernel resets the
    // connection for the unread data; or the line never got written), the line may not have
    // reached Bob's program, and Alice must not say it did.
    signal(&bob, "STOP");
    alice.send_line("you will never read this");
    // Lines are taken in order: once /stats counts it, the line was accepted.
    alice.send_line("/stats");
    assert_eq!(alice.expect_stats().get("messages_sent"), Some(&1));
    signal(&bob, "KILL");
    alice.expect_stderr("may not have arrived");
    assert_eq!(alice.exit_code(), 3);
}

fn frame(packet: &Packet) -> Vec<u8> {
    let datagram = udpchat_core::encode(packet, 65_507).unwrap();
    let mut out = (datagram.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&datagram);
    out
}

#[test]
fn junk_and_an_oversize_frame_are_counted_and_reported() {
    let (mut chat, addr) = tcp_chat("chat", &["--stats"]);
    let mut peer = TcpStream::connect(addr).unwrap();
    let line = Packet::Data(Data {
        dst: ConnectionId(0),
        seq: SeqNum(0),
        message: 0,
        fragment: 0,
        fragments: 1,
        token: 0,
        payload: b"after the junk".to_vec(),
        ack: None,
    });
    let mut corrupt = frame(&line);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    peer.write_all(&corrupt).unwrap();
    peer.write_all(&[0, 0, 0, 4, b'j', b'u', b'n', b'k'])
        .unwrap();
    peer.write_all(&frame(&line)).unwrap();
    chat.expect_stdout(&format!("<{}> after the junk", peer.local_addr().unwrap()));
    let notice = chat.expect_stderr("bad checksum");
    assert!(notice.contains("ignored a frame from"), "{notice}");
    // A length no frame can have: the stream cannot be read past it.
    peer.write_all(&u32::MAX.to_be_bytes()).unwrap();
    chat.expect_stderr("not udpchat's TCP framing");
    let stats = chat.expect_stats();
    assert_eq!(stats.get("dropped_checksum"), Some(&1), "{stats:?}");
    assert_eq!(stats.get("dropped_malformed"), Some(&2), "{stats:?}");
    assert_eq!(chat.exit_code(), 0);
}

#[test]
fn what_tcp_mode_cannot_do_is_refused_with_the_reason() {
    let refused = |args: &[&str], reason: &str| {
        let mut full = vec!["chat", "--mode", "tcp", "--bind", LOOPBACK];
        full.extend_from_slice(args);
        let mut proc = Proc::spawn("refused", &full);
        proc.expect_stderr(reason);
        assert_eq!(proc.exit_code(), 2, "{args:?}");
    };
    refused(&["--loss", "10%"], "udpchat lab --modes tcp");
    refused(&["--delay", "50ms"], "udpchat netem");
    refused(&["--arq", "go-back-n"], "need --mode reliable");
    refused(&["--pcap", "x.pcapng"], "tcpdump");
    refused(&["-v"], "the kernel says nothing per line");
    refused(&["--max-datagram", "1400"], "the kernel cuts the stream");
    let mut udp = Proc::spawn("udp", &["chat", "--tcp-user-timeout", "5s"]);
    udp.expect_stderr("--tcp-user-timeout needs --mode tcp");
    assert_eq!(udp.exit_code(), 2);
}

#[test]
fn with_a_half_close_both_sides_get_everything_then_exit() {
    let (mut bob, bob_addr) = tcp_chat("bob", &["--half-close"]);
    let (mut alice, _) = tcp_chat("alice", &["--half-close", "--peer", &bob_addr.to_string()]);
    let lines = |who: &str| (0..200).map(|i| format!("{who} {i}\n")).collect::<String>();
    alice.send_bytes(lines("a").as_bytes());
    // Alice finishes first: Bob is told, and may still write to her.
    alice.close_stdin();
    bob.expect_stderr("the peer finished sending");
    bob.send_bytes(lines("b").as_bytes());
    bob.close_stdin();
    for i in 0..200 {
        bob.expect_stdout(&format!("<alice> a {i}"));
        alice.expect_stdout(&format!("<bob> b {i}"));
    }
    alice.expect_stderr("both sides finished sending");
    bob.expect_stderr("both sides finished sending");
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
}

#[cfg(unix)]
#[test]
fn ctrl_c_closes_with_a_goodbye_and_the_peer_says_so() {
    let (mut bob, bob_addr) = tcp_chat("bob", &[]);
    let (mut alice, _) = tcp_chat("alice", &["--peer", &bob_addr.to_string()]);
    alice.send_line("before ctrl-c");
    bob.expect_stdout("<alice> before ctrl-c");
    alice.interrupt();
    alice.expect_stderr("interrupted, closing");
    bob.expect_stderr("the peer left");
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
}

#[cfg(unix)]
#[test]
fn ctrl_c_after_a_half_close_leaves_at_once() {
    let (mut bob, bob_addr) = tcp_chat("bob", &[]);
    let (mut alice, _) = tcp_chat("alice", &["--half-close", "--peer", &bob_addr.to_string()]);
    alice.send_line("last words");
    alice.close_stdin();
    bob.expect_stdout("<alice> last words");
    bob.expect_stderr("the peer finished sending");
    // Alice still reads what Bob sends, until Ctrl-C.
    bob.send_line("are you still there?");
    alice.expect_stdout("<bob> are you still there?");
    alice.interrupt();
    alice.expect_stderr("we left before the peer finished sending");
    assert_eq!(alice.exit_code(), 0);
}

#[cfg(target_os = "linux")]
#[test]
fn a_user_timeout_is_taken_and_announced() {
    let (mut bob, bob_addr) = tcp_chat("bob", &[]);
    let (mut alice, _) = tcp_chat(
        "alice",
        &["--tcp-user-timeout", "30s", "--peer", &bob_addr.to_string()],
    );
    alice.expect_stderr("--tcp-user-timeout 30s: the kernel gives the connection up");
    alice.send_line("with a deadline");
    bob.expect_stdout("<alice> with a deadline");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    let mut zero = Proc::spawn(
        "zero",
        &["chat", "--mode", "tcp", "--tcp-user-timeout", "0s"],
    );
    zero.expect_stderr("must be more than 0");
    assert_eq!(zero.exit_code(), 2);
}

#[test]
fn a_listener_refuses_lines_until_someone_connects() {
    let (mut bob, _) = tcp_chat("bob", &[]);
    bob.send_line("anyone?");
    bob.expect_stderr("not sent: nobody has connected yet");
    bob.close_stdin();
    bob.expect_stderr("the chat ended before anyone connected");
    assert_eq!(bob.exit_code(), 0);
}
