//! TCP mode with the real binary over loopback: two chats exchange lines both ways (text and
//! JSON, a 10 kB paste among them); two chats that both name the other with `--peer` end up on
//! one connection; `--plain` talks to a Python TCP socket; a killed peer is reported, with exit
//! code 3 when lines we wrote may not have arrived; junk and an oversize frame from the peer are
//! counted and reported, never a crash; what TCP mode cannot do is refused with exit code 2.
//!
//! With `--secret`: two chats with one passphrase converse through a frame-aware relay that
//! reads none of the text or nicknames, and show the same code; a different passphrase and an
//! unencrypted peer end with the documented words and exit code 4 (the unencrypted side names
//! the encryption, nothing garbled is shown); a stranger gets at most a 16-byte `Reject`, and a
//! silent one meets the handshake's deadline; a byte altered in the stream ends the connection
//! with nothing forged shown.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

// ---- Encrypted TCP mode (`--secret`) ----

/// A TCP chat with `--secret` (the passphrase from the environment, as a script would give it).
fn secret_chat(name: &str, pass: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec![
        "chat", "--mode", "tcp", "--bind", LOOPBACK, "--nick", name, "--secret",
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn_with_env(name, &args, &[("UDPCHAT_SECRET", pass)]);
    let addr = proc.listening_addr();
    (proc, addr)
}

/// The code a chat printed to compare ("... (by voice): 123 456").
fn code(proc: &mut Proc) -> String {
    let line = proc.expect_stderr("compare this code");
    line.rsplit(": ").next().unwrap().to_owned()
}

const EXIT_HANDSHAKE_FAILED: i32 = 4;

/// Every frame a [`FrameRelay`] forwarded, in order, `true` for the connecting side's.
type FrameLog = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

/// A TCP relay that knows the framing: it accepts one connection, connects to `to`, and
/// forwards frame by frame both ways, keeping every frame it forwarded; on request it alters one
/// byte in the middle of the next sealed frame from the connecting side.
struct FrameRelay {
    addr: SocketAddr,
    log: FrameLog,
    tamper: Arc<AtomicBool>,
}

impl FrameRelay {
    fn start(to: SocketAddr) -> FrameRelay {
        let listener = TcpListener::bind(LOOPBACK).unwrap();
        let addr = listener.local_addr().unwrap();
        let log = FrameLog::default();
        let tamper = Arc::new(AtomicBool::new(false));
        let (log2, tamper2) = (Arc::clone(&log), Arc::clone(&tamper));
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let server = TcpStream::connect(to).unwrap();
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (l, t) = (Arc::clone(&log2), Arc::clone(&tamper2));
            let back = std::thread::spawn(move || forward_frames(s2, c2, false, &l, &t));
            forward_frames(client, server, true, &log2, &tamper2);
            let _ = back.join();
        });
        FrameRelay { addr, log, tamper }
    }

    /// Every byte forwarded so far, both ways.
    fn bytes(&self) -> Vec<u8> {
        let log = self.log.lock().unwrap();
        log.iter().flat_map(|(_, f)| f.iter().copied()).collect()
    }
}

/// Copies frames from `from` to `to` until either ends; `forward` marks the connecting side's,
/// which `tamper` may alter.
fn forward_frames(
    mut from: TcpStream,
    mut to: TcpStream,
    forward: bool,
    log: &FrameLog,
    tamper: &AtomicBool,
) {
    loop {
        let mut prefix = [0u8; 4];
        if from.read_exact(&mut prefix).is_err() {
            break;
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > 65_507 {
            break;
        }
        let mut body = vec![0u8; len];
        if from.read_exact(&mut body).is_err() {
            break;
        }
        let sealed = body.len() > 40 && body[3] == 0x83;
        if forward && sealed && tamper.swap(false, Ordering::SeqCst) {
            let middle = body.len() / 2;
            body[middle] ^= 0x01;
        }
        let mut frame = prefix.to_vec();
        frame.extend_from_slice(&body);
        log.lock().unwrap().push((forward, frame.clone()));
        if to.write_all(&frame).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

#[test]
fn encrypted_chats_converse_both_ways_show_one_code_and_the_relay_reads_nothing() {
    let (mut bob, bob_addr) = secret_chat("bob", "correct horse battery", &[]);
    let relay = FrameRelay::start(bob_addr);
    let (mut alice, _) = secret_chat(
        "alice",
        "correct horse battery",
        &["--peer", &relay.addr.to_string()],
    );
    let (a, b) = (code(&mut alice), code(&mut bob));
    assert_eq!(a, b, "both sides show the same code");
    alice.send_line("whisper from alice");
    bob.expect_stdout("<alice> whisper from alice");
    bob.send_line("whisper from bob");
    alice.expect_stdout("<bob> whisper from bob");
    alice.close_stdin();
    bob.expect_stderr("the peer left");
    assert_eq!(alice.exit_code(), 0);
    assert_eq!(bob.exit_code(), 0);
    let wire = relay.bytes();
    let frames = relay.log.lock().unwrap().len();
    // Init, Reply, confirmation, then each side's nickname, line and goodbye.
    assert!(frames >= 7, "{frames} frames");
    for needle in ["whisper", "alice", "bob"] {
        assert!(
            !wire.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} readable on the wire"
        );
    }
}

#[test]
fn a_different_passphrase_fails_on_both_sides_with_exit_code_4() {
    let (mut bob, bob_addr) = secret_chat("bob", "one", &[]);
    let (mut alice, _) = secret_chat("alice", "two", &["--peer", &bob_addr.to_string()]);
    alice.send_line("can you read this?");
    let words = "the handshake failed: the peer uses a different passphrase (or is not udpchat)";
    alice.expect_stderr(words);
    bob.expect_stderr(words);
    assert_eq!(alice.exit_code(), EXIT_HANDSHAKE_FAILED);
    assert_eq!(bob.exit_code(), EXIT_HANDSHAKE_FAILED);
    assert!(bob.drain(Pipe::Stdout).is_empty(), "nothing shown");
    assert!(alice.drain(Pipe::Stdout).is_empty(), "nothing shown");
}

#[test]
fn an_unencrypted_tcp_peer_is_named_on_both_sides_and_nothing_garbled_is_shown() {
    // An encrypted chat connects to a plain one: the plain one names the encrypted handshake.
    let (mut plain, plain_addr) = tcp_chat("bob", &[]);
    let (mut encrypted, _) = secret_chat("carol", "pw", &["--peer", &plain_addr.to_string()]);
    plain.expect_stderr("the peer uses encryption (--secret)");
    encrypted.expect_stderr("the handshake failed: the peer is not encrypted");
    assert_eq!(encrypted.exit_code(), EXIT_HANDSHAKE_FAILED);
    plain.close_stdin();
    plain.wait_exit();
    assert!(plain.history(Pipe::Stdout).is_empty(), "nothing shown");
    assert!(encrypted.history(Pipe::Stdout).is_empty(), "nothing shown");

    // A plain chat connects to an encrypted one and writes: the encrypted one gives up, and its
    // Reject tells the plain one why.
    let (mut listener, listener_addr) = secret_chat("alice", "pw", &[]);
    let (mut talker, _) = tcp_chat("dave", &["--peer", &listener_addr.to_string()]);
    talker.send_line("plain words");
    listener.expect_stderr("the handshake failed: the peer is not encrypted");
    assert_eq!(listener.exit_code(), EXIT_HANDSHAKE_FAILED);
    talker.expect_stderr("the peer uses encryption (--secret)");
    talker.close_stdin();
    talker.wait_exit();
    assert!(listener.history(Pipe::Stdout).is_empty(), "never shown");
    assert!(talker.history(Pipe::Stdout).is_empty(), "nothing garbled");
}

#[test]
fn a_stranger_gets_at_most_a_reject_and_a_silent_one_times_the_handshake_out() {
    // A frame of a sane length that is no Init: a 16-byte Reject, then the end.
    let (mut chat, addr) = secret_chat("chat", "pw", &[]);
    let mut stranger = TcpStream::connect(addr).unwrap();
    let junk = b"junk, and no Init";
    stranger.write_all(&[0, 0, 0, junk.len() as u8]).unwrap();
    stranger.write_all(junk).unwrap();
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert_eq!(answer.len(), 4 + 16, "{answer:?}");
    assert_eq!(&answer[4..8], &[0x55, 0x43, 0x03, 0x82], "a Reject");
    chat.expect_stderr("the peer uses a different passphrase (or is not udpchat)");
    assert_eq!(chat.exit_code(), EXIT_HANDSHAKE_FAILED);

    // A frame shorter than a Reject: no answer (nothing gets more bytes than it sent), the end.
    let (mut chat, addr) = secret_chat("chat", "pw", &[]);
    let mut stranger = TcpStream::connect(addr).unwrap();
    stranger
        .write_all(&[0, 0, 0, 5, b'j', b'u', b'n', b'k', b'!'])
        .unwrap();
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
    chat.expect_stderr("the peer uses a different passphrase (or is not udpchat)");
    assert_eq!(chat.exit_code(), EXIT_HANDSHAKE_FAILED);

    // Not framing at all (nc): no answer, the end.
    let (mut chat, addr) = secret_chat("chat", "pw", &[]);
    let mut stranger = TcpStream::connect(addr).unwrap();
    stranger.write_all(b"hello there\n").unwrap();
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{answer:?}");
    chat.expect_stderr("not udpchat's TCP framing");
    assert_eq!(chat.exit_code(), EXIT_HANDSHAKE_FAILED);

    // Silent: the handshake has a deadline.
    let (mut chat, addr) = secret_chat("chat", "pw", &[]);
    let mut silent = TcpStream::connect(addr).unwrap();
    chat.expect_stderr("the handshake failed: no answer from");
    assert_eq!(chat.exit_code(), EXIT_HANDSHAKE_FAILED);
    let mut answer = Vec::new();
    let _ = silent.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "a responder says nothing first: {answer:?}"
    );
}

#[test]
fn a_byte_altered_in_the_stream_ends_the_connection_and_nothing_forged_is_shown() {
    let (mut bob, bob_addr) = secret_chat("bob", "pw", &["--stats"]);
    let relay = FrameRelay::start(bob_addr);
    let (mut alice, _) = secret_chat("alice", "pw", &["--peer", &relay.addr.to_string()]);
    alice.send_line("first line");
    bob.expect_stdout("<alice> first line");
    relay
        .tamper
        .store(true, std::sync::atomic::Ordering::SeqCst);
    alice.send_line("altered on the way");
    let notice = bob.expect_stderr("ignored a frame from");
    assert!(notice.contains("does not authenticate"), "{notice}");
    let ending = bob.expect_stderr("the encrypted stream was tampered with");
    assert!(
        ending.contains("cannot be resynchronised securely"),
        "{ending}"
    );
    let stats = bob.expect_stats();
    assert_eq!(stats.get("dropped_unauthenticated"), Some(&1), "{stats:?}");
    bob.wait_exit();
    assert_eq!(bob.history(Pipe::Stdout), ["<alice> first line"]);
    alice.close_stdin();
    alice.wait_exit();
}

#[test]
fn secret_with_plain_is_still_refused_in_tcp_mode() {
    let mut proc = Proc::spawn_with_env(
        "refused",
        &[
            "chat", "--mode", "tcp", "--plain", "--secret", "--bind", LOOPBACK,
        ],
        &[("UDPCHAT_SECRET", "pw")],
    );
    proc.expect_stderr("--secret cannot be used with --plain");
    assert_eq!(proc.exit_code(), 2);
}
