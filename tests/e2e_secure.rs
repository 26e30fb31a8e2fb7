//! `udpchat chat --secret` end to end: real processes, real sockets on 127.0.0.1.
//!
//! Two chats with one passphrase converse in both modes through the lossy proxy, and the proxy's
//! capture of every datagram holds none of the text and no nickname; datagrams replayed,
//! bit-flipped or forged at a chat (by a relay in the test, which sees every datagram) are
//! dropped, counted and never shown, and the chat goes on; a different passphrase, an
//! unencrypted peer and a handshake nobody answers end with the documented words and exit
//! code 4; a passphrase on the command line is refused (exit 2).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::{proxy, read_pcapng, scratch_dir, udp_socket, Pipe, Proc};

const EXIT_HANDSHAKE_FAILED: i32 = 4;

/// Starts `udpchat chat` on a free loopback port (line interface, text output) with `extra`
/// flags and `env`; returns it and its address.
fn chat(name: &str, extra: &[&str], env: &[(&str, &str)]) -> (Proc, SocketAddr) {
    let mut args = vec![
        "chat",
        "--ui",
        "line",
        "--bind",
        "127.0.0.1:0",
        "--nick",
        name,
    ];
    args.extend_from_slice(extra);
    let mut proc = Proc::spawn_with_env(name, &args, env);
    let addr = proc.listening_addr();
    (proc, addr)
}

/// The code a chat printed to compare ("... (by voice): 123 456").
fn code(proc: &mut Proc) -> String {
    let line = proc.expect_stderr("compare this code");
    line.rsplit(": ").next().unwrap().to_owned()
}

fn secret_file(dir: &std::path::Path, passphrase: &str) -> String {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{passphrase}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn same_passphrase_converses_through_a_lossy_proxy_and_the_capture_reads_nothing() {
    let dir = scratch_dir("secure-proxy");
    let file = secret_file(&dir, "correct horse battery");
    for mode in ["reliable", "raw"] {
        let pcap = dir.join(format!("{mode}.pcapng"));
        let (mut bob, bob_addr) = chat(
            "bob",
            &["--mode", mode, "--secret-file", &file, "--stats"],
            &[],
        );
        let impairment = [
            "--loss",
            "15%",
            "--duplicate",
            "10%",
            "--reorder",
            "10%",
            "--corrupt",
            "5%",
            "--seed",
            "5",
            "--pcap",
        ];
        let mut args: Vec<&str> = impairment.to_vec();
        args.push(pcap.to_str().unwrap());
        let (mut relay, relay_addr) = proxy(&bob_addr.to_string(), &args);
        let (mut alice, _) = chat(
            "alice",
            &[
                "--mode",
                mode,
                "--secret",
                "--peer",
                &relay_addr.to_string(),
            ],
            &[("UDPCHAT_SECRET", "correct horse battery")],
        );
        // The code may be lost with the handshake's first tries; it shows once, on both sides.
        let (a, b) = (code(&mut alice), code(&mut bob));
        assert_eq!(a, b, "{mode}: both sides show the same code");
        let lines: Vec<String> = (0..30).map(|i| format!("whisper number {i}")).collect();
        for line in &lines {
            alice.send_line(line);
        }
        let last = format!("<alice> {}", lines[29]);
        if mode == "reliable" {
            for line in &lines {
                bob.expect_stdout(&format!("<alice> {line}"));
            }
            alice.close_stdin();
            assert_eq!(alice.exit_code(), 0, "reliable: nothing lost");
        } else {
            // Raw mode stays raw: ten markers (one arrives unless 15% loss takes all ten), then
            // check what came.
            for i in 0..10 {
                alice.send_line(&format!("the end {i}"));
            }
            bob.expect(Pipe::Stdout, "a marker", |l| {
                l.starts_with("<alice> the end")
            });
            let shown: Vec<&String> = bob.history(Pipe::Stdout).iter().collect();
            for line in &shown {
                let text = line.trim_start_matches("<alice> ");
                assert!(
                    text.starts_with("the end ") || lines.iter().any(|l| l == text),
                    "raw: nothing garbled: {line}"
                );
            }
            let unique: std::collections::BTreeSet<_> = shown.iter().collect();
            assert_eq!(unique.len(), shown.len(), "raw: nothing shown twice");
            let _ = last;
            alice.close_stdin();
            assert_eq!(alice.exit_code(), 0);
        }
        bob.close_stdin();
        let stats = bob.expect_stats();
        assert!(
            stats.get("dropped_replayed").copied().unwrap_or(0)
                + stats.get("dropped_unauthenticated").copied().unwrap_or(0)
                > 0,
            "{mode}: duplicates and corruption were refused: {stats:?}"
        );
        assert_eq!(bob.exit_code(), 0);
        relay.interrupt();
        assert_eq!(relay.exit_code(), 0);
        let (_, packets) = read_pcapng(&std::fs::read(&pcap).unwrap());
        assert!(packets.len() > 60, "{mode}: the capture has the chat");
        for packet in &packets {
            for needle in ["whisper", "alice", "bob", "the end"] {
                assert!(
                    !packet
                        .payload
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes()),
                    "{mode}: {needle:?} readable on the wire"
                );
            }
        }
    }
}

/// Every datagram a relay forwarded, with its sender.
type Log = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// A relay between two chats that keeps every datagram it forwards.
struct Relay {
    socket: UdpSocket,
    log: Log,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Relay {
    /// Forwards between whoever writes first (alice) and `bob`.
    fn start(bob: SocketAddr) -> Relay {
        let socket = udp_socket();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, l, st) = (
            socket.try_clone().unwrap(),
            Arc::clone(&log),
            Arc::clone(&stop),
        );
        let thread = thread::spawn(move || {
            let mut alice = None;
            let mut buf = [0u8; 65_536];
            while !st.load(Ordering::Relaxed) {
                let Ok((len, from)) = s.recv_from(&mut buf) else {
                    continue;
                };
                let to = if from == bob { alice } else { Some(bob) };
                if from != bob {
                    alice = Some(from);
                }
                l.lock().unwrap().push((from, buf[..len].to_vec()));
                if let Some(to) = to {
                    let _ = s.send_to(&buf[..len], to);
                }
            }
        });
        Relay {
            socket,
            log,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The last sealed datagram (kind byte 0x83) that `from` sent, carrying a line.
    fn last_sealed_from(&self, from: SocketAddr) -> Vec<u8> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(f, d)| *f == from && d.len() > 40 && d[3] == 0x83)
            .map(|(_, d)| d.clone())
            .unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn replayed_bit_flipped_and_forged_datagrams_are_dropped_counted_and_not_shown() {
    let env = [("UDPCHAT_SECRET", "s3cret words")];
    let (mut bob, bob_addr) = chat("bob", &["--secret", "--stats"], &env);
    let relay = Relay::start(bob_addr);
    let (mut alice, alice_addr) = chat(
        "alice",
        &["--secret", "--peer", &relay.addr().to_string()],
        &env,
    );
    alice.send_line("first line");
    bob.expect_stdout("<alice> first line");
    let sealed = relay.last_sealed_from(alice_addr);
    // From the relay's address: the address bob talks to, so only the seal can refuse them.
    let inject = |d: &[u8]| {
        relay.socket.send_to(d, bob_addr).unwrap();
    };
    inject(&sealed); // replayed
                     // Bits in the magic, the receiver id, the counter and the tag.
    for bit in [0, 40, 100, 8 * sealed.len() - 1] {
        let mut flipped = sealed.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        inject(&flipped);
    }
    let mut forged = sealed[..12].to_vec(); // magic, version, kind, bob's receiver id
    forged.extend_from_slice(&1000u64.to_le_bytes()); // a fresh counter
    forged.extend_from_slice(&[0x5a; 40]); // ciphertext and tag of nobody's key
    inject(&forged);
    inject(&sealed[..30]); // truncated below a header and a tag
    alice.send_line("second line");
    bob.expect_stdout("<alice> second line");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.close_stdin();
    let stats = bob.expect_stats();
    // The replay, and the flip in the tag: its counter was seen, which is checked first.
    assert_eq!(stats["dropped_replayed"], 2, "{stats:?}");
    // The flips of the id and of the counter, and the forgery, fail the seal; the flip in the
    // magic is not udpchat at all, and the truncated one is too short to be sealed.
    assert_eq!(stats["dropped_unauthenticated"], 3, "{stats:?}");
    assert_eq!(stats["dropped_malformed"], 2, "{stats:?}");
    assert_eq!(bob.exit_code(), 0);
    assert!(bob.drain(Pipe::Stdout).is_empty(), "nothing else shown");
    assert_eq!(
        bob.history(Pipe::Stdout),
        ["<alice> first line", "<alice> second line"]
    );
}

#[test]
fn a_different_passphrase_fails_on_both_sides_with_exit_code_4() {
    let (mut bob, bob_addr) = chat("bob", &["--secret"], &[("UDPCHAT_SECRET", "one")]);
    let (mut alice, _) = chat(
        "alice",
        &["--secret", "--peer", &bob_addr.to_string()],
        &[("UDPCHAT_SECRET", "two")],
    );
    alice.send_line("can you read this?");
    let words = "the handshake failed: the peer uses a different passphrase (or is not udpchat)";
    alice.expect_stderr(words);
    bob.expect_stderr(words);
    assert_eq!(alice.exit_code(), EXIT_HANDSHAKE_FAILED);
    assert_eq!(bob.exit_code(), EXIT_HANDSHAKE_FAILED);
    assert!(bob.drain(Pipe::Stdout).is_empty(), "nothing shown");
}

#[test]
fn an_unencrypted_peer_is_named_on_both_sides() {
    // A plain listener hears an encrypted chat's handshake and names it.
    let (mut plain, plain_addr) = chat("bob", &[], &[]);
    let (mut encrypted, _) = chat(
        "carol",
        &["--secret", "--peer", &plain_addr.to_string()],
        &[("UDPCHAT_SECRET", "pw")],
    );
    plain.expect_stderr("the peer uses encryption (--secret)");
    encrypted.close_stdin();
    assert_eq!(encrypted.exit_code(), 0, "nothing was left to send");
    plain.close_stdin();
    assert_eq!(plain.exit_code(), 0);
    assert!(plain.drain(Pipe::Stdout).is_empty(), "nothing shown");

    // An encrypted listener hears a plain chat's line and gives up with its own words.
    let (mut listener, listener_addr) = chat("alice", &["--secret"], &[("UDPCHAT_SECRET", "pw")]);
    let (mut talker, _) = chat("dave", &["--peer", &listener_addr.to_string()], &[]);
    talker.send_line("plain words");
    listener.expect_stderr("the handshake failed: the peer is not encrypted");
    assert_eq!(listener.exit_code(), EXIT_HANDSHAKE_FAILED);
    assert!(listener.drain(Pipe::Stdout).is_empty(), "never shown");
    talker.close_stdin();
    assert_eq!(talker.exit_code(), 0);
}

#[test]
fn a_handshake_lost_every_time_is_retried_as_the_same_bytes_then_given_up() {
    let silent = udp_socket();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let (mut alice, _) = chat(
        "alice",
        &["--secret", "--peer", &silent_addr],
        &[("UDPCHAT_SECRET", "pw")],
    );
    alice.send_line("anyone?");
    alice.expect_stderr("the handshake failed: no answer from");
    assert_eq!(alice.exit_code(), EXIT_HANDSHAKE_FAILED);
    let mut inits = Vec::new();
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while let Ok((len, _)) = silent.recv_from(&mut buf) {
        inits.push(buf[..len].to_vec());
    }
    assert_eq!(inits.len(), 7, "seven tries");
    assert!(inits.iter().all(|d| *d == inits[0] && d.len() == 72));
}

#[test]
fn a_passphrase_on_the_command_line_is_refused() {
    let mut chat = Proc::spawn(
        "chat",
        &["chat", "--secret=hunter2", "--bind", "127.0.0.1:0"],
    );
    let why = chat.expect_stderr("--secret takes no value on the command line");
    assert!(why.contains("(ps)"), "{why}");
    chat.expect_stderr("Usage: udpchat chat");
    assert_eq!(chat.exit_code(), 2);
    assert!(!chat.history(Pipe::Stderr).join("\n").contains("hunter2"));
}

#[test]
fn the_lab_runs_encrypted_sessions_and_reports_their_overhead() {
    let mut lab = Proc::spawn(
        "lab",
        &[
            "lab",
            "--encrypt",
            "--loss",
            "0",
            "--messages",
            "50",
            "--seeds",
            "1",
            "--format",
            "json",
        ],
    );
    let json: serde_json::Value =
        serde_json::from_str(&lab.drain(Pipe::Stdout).join("\n")).unwrap();
    assert_eq!(lab.exit_code(), 0);
    let rows = json["encryption_overhead"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "raw and reliable");
    for row in rows {
        assert_eq!(row["encrypted_delivered"], 50, "{row}");
        assert!(
            row["encrypted_bytes"].as_u64() > row["plain_bytes"].as_u64(),
            "{row}"
        );
    }
    // Raw mode: 29 bytes more per line, plus the handshake (two 72-byte messages and a
    // confirmation each way).
    let raw = &rows[0];
    assert_eq!(raw["mode"], "raw");
    let extra = raw["encrypted_bytes"].as_u64().unwrap() - raw["plain_bytes"].as_u64().unwrap();
    assert_eq!(extra, 50 * 29 + 2 * 72 + 2 * 36);

    let mut refused = Proc::spawn("lab", &["lab", "--encrypt", "--real"]);
    refused.expect_stderr("cannot be used with");
    assert_eq!(refused.exit_code(), 2);
}

#[test]
fn the_wireshark_dissector_shows_encrypted_kinds_and_their_clear_header() {
    let found = std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        // The same rule as tests/tshark.rs: missing tshark fails unless skipping is asked for.
        assert_eq!(
            std::env::var("UDPCHAT_SKIP_TSHARK").as_deref(),
            Ok("1"),
            "tshark is not installed (.ci/run installs it); UDPCHAT_SKIP_TSHARK=1 skips"
        );
        return;
    }
    let dir = scratch_dir("secure-tshark");
    let pcap = dir.join("chat.pcapng");
    let env = [("UDPCHAT_SECRET", "pw")];
    let (mut bob, bob_addr) = chat("bob", &["--secret"], &env);
    let (mut alice, _) = chat(
        "alice",
        &[
            "--secret",
            "--peer",
            &bob_addr.to_string(),
            "--pcap",
            pcap.to_str().unwrap(),
        ],
        &env,
    );
    alice.send_line("hidden words");
    bob.expect_stdout("<alice> hidden words");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);
    let lua = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wireshark/udpchat.lua");
    let output = std::process::Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", dir.join("config"))
        .args(["-X", &format!("lua_script:{lua}"), "-r"])
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-e",
            "udpchat.kind_name",
            "-e",
            "udpchat.encrypted",
        ])
        .args(["-e", "udpchat.counter", "-e", "udpchat.crc.status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.to_lowercase().contains("lua"),
        "{stderr}"
    );
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows[0][..2], ["Init", "1"], "{rows:?}");
    assert_eq!(rows[0][3], "good");
    assert_eq!(rows[1][..2], ["Reply", "1"], "{rows:?}");
    assert_eq!(rows[2][..3], ["Sealed", "1", "0"], "{rows:?}");
    assert!(
        rows[2..].iter().all(|r| r[0] == "Sealed" && r[1] == "1"),
        "{rows:?}"
    );
}
