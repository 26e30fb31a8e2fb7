//! Helpers shared by the end-to-end tests: run the real `udpchat` binary, talk to it through its
//! stdin, stdout, stderr and loopback sockets, and never hang.
//!
//! Every wait has a deadline ([`DEADLINE`]) and fails with everything the process printed so
//! far, so a broken test says why instead of hanging; nothing waits by sleeping. A [`Proc`] kills
//! its child when dropped, so a failing test leaves no process behind. Other test files may add
//! helpers here (append-only).

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a subset

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How long any expected output or exit may take. Generous: loopback answers in microseconds,
/// but CI machines can be slow and busy.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The `udpchat` binary cargo built for these tests.
pub fn udpchat_bin() -> &'static str {
    env!("CARGO_BIN_EXE_udpchat")
}

/// One line-oriented output of a child (stdout or stderr), read on a thread.
struct Stream {
    lines: Receiver<String>,
    /// Every line received so far, for failure messages.
    history: Vec<String>,
}

impl Stream {
    fn spawn(name: &str, pipe: impl Read + Send + 'static) -> Stream {
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name(format!("{name}-reader"))
            .spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf);
                            let line = line.trim_end_matches(['\n', '\r']).to_owned();
                            if tx.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .unwrap();
        Stream {
            lines: rx,
            history: Vec::new(),
        }
    }
}

/// Which output of a process to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A running `udpchat` (or any) process with piped stdin, stdout and stderr.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Stream,
    stderr: Stream,
}

impl Proc {
    /// Starts `udpchat` with `args`; `name` labels failure messages.
    pub fn spawn(name: &str, args: &[&str]) -> Proc {
        Proc::spawn_program(name, udpchat_bin(), args)
    }

    /// Starts any program with `args`.
    pub fn spawn_program(name: &str, program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdin = child.stdin.take();
        let stdout = Stream::spawn(name, child.stdout.take().unwrap());
        let stderr = Stream::spawn(name, child.stderr.take().unwrap());
        Proc {
            name: name.to_owned(),
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Starts `udpchat chat` with `args` (which should bind port 0 on loopback, e.g.
    /// `--bind 127.0.0.1:0`) and returns it with the address it bound.
    pub fn chat(name: &str, args: &[&str]) -> (Proc, SocketAddr) {
        let mut full = vec!["chat"];
        full.extend_from_slice(args);
        let mut proc = Proc::spawn(name, &full);
        let addr = proc.listening_addr();
        (proc, addr)
    }

    /// Waits for the `udpchat: listening on ADDR ...` line on stderr and returns ADDR.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let line = self.expect(Pipe::Stderr, "the 'listening on' line", |l| {
            l.starts_with("udpchat: listening on ")
        });
        let rest = &line["udpchat: listening on ".len()..];
        let addr = rest.split_whitespace().next().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|e| panic!("{}: bad address in {line:?}: {e}", self.name))
    }

    /// Writes `line` and a newline to the process's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Writes raw bytes to the process's stdin.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin: the process sees end of file.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line of `pipe`, within the deadline.
    pub fn next_line(&mut self, pipe: Pipe) -> String {
        self.expect(pipe, "any line", |_| true)
    }

    /// Reads lines of `pipe` until one satisfies `matches`, and returns it. Panics, showing all
    /// output so far, if none does before the deadline or the pipe ends.
    pub fn expect(&mut self, pipe: Pipe, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let stream = match pipe {
                Pipe::Stdout => &mut self.stdout,
                Pipe::Stderr => &mut self.stderr,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match stream.lines.recv_timeout(left) {
                Ok(line) => {
                    stream.history.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting on {pipe:?} for {what}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("{pipe:?} ended while waiting for {what}"))
                }
            }
        }
    }

    /// Waits for exactly `line` on stdout (skipping other lines).
    pub fn expect_stdout(&mut self, line: &str) -> String {
        self.expect(Pipe::Stdout, &format!("{line:?}"), |l| l == line)
    }

    /// Waits for a stderr line containing `part`.
    pub fn expect_stderr(&mut self, part: &str) -> String {
        self.expect(Pipe::Stderr, &format!("a line containing {part:?}"), |l| {
            l.contains(part)
        })
    }

    /// Waits for the `udpchat: stats (MODE mode):` table on stderr, to its `end of stats` line,
    /// and returns its counters (see [`parse_stats`]).
    pub fn expect_stats(&mut self) -> HashMap<String, u64> {
        let mut table = vec![self.expect_stderr(STATS_HEADING)];
        while table.last().is_none_or(|l| l != STATS_END) {
            table.push(self.next_line(Pipe::Stderr));
        }
        parse_stats(&table)
    }

    /// Sends `line` (a command such as `/stats`) and returns the counters of the stats table
    /// it makes the chat print (see [`Proc::expect_stats`]).
    pub fn expect_stats_after(&mut self, line: &str) -> HashMap<String, u64> {
        self.send_line(line);
        self.expect_stats()
    }

    /// The process id, e.g. to send it a signal.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit, within the deadline.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.fail("timed out waiting for the process to exit");
            }
            // Polling an exit status is not synchronising on time: the answer does not depend
            // on this interval, only how soon we notice it.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit and returns the code, failing if it was killed by a signal.
    pub fn exit_code(&mut self) -> i32 {
        let status = self.wait_exit();
        match status.code() {
            Some(code) => code,
            None => self.fail(&format!("killed by a signal: {status}")),
        }
    }

    /// Everything read so far from `pipe` (after [`Proc::drain`], everything it printed).
    pub fn history(&self, pipe: Pipe) -> &[String] {
        match pipe {
            Pipe::Stdout => &self.stdout.history,
            Pipe::Stderr => &self.stderr.history,
        }
    }

    /// Reads the rest of `pipe` until it ends (call after the process exited), within the
    /// deadline, and returns the lines it had not yet returned.
    pub fn drain(&mut self, pipe: Pipe) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut rest = Vec::new();
        loop {
            let stream = match pipe {
                Pipe::Stdout => &mut self.stdout,
                Pipe::Stderr => &mut self.stderr,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match stream.lines.recv_timeout(left) {
                Ok(line) => {
                    stream.history.push(line.clone());
                    rest.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => return rest,
                Err(RecvTimeoutError::Timeout) => self.fail(&format!("{pipe:?} did not end")),
            }
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        // Collect whatever else is already buffered, to show it.
        for stream in [&mut self.stdout, &mut self.stderr] {
            while let Ok(line) = stream.lines.try_recv() {
                stream.history.push(line);
            }
        }
        panic!(
            "{}: {why}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            self.name,
            self.stdout.history.join("\n"),
            self.stderr.history.join("\n")
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Ignore errors: the process may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the `--stats` table starts and ends on stderr.
pub const STATS_HEADING: &str = "udpchat: stats (";
/// The last line of the `--stats` table.
pub const STATS_END: &str = "udpchat: end of stats";

/// Parses the first `--stats` table in `lines` (stderr lines) into its counters, named as the
/// transport's `Stats` fields: the row `udpchat:   messages  sent 3  received 2` gives
/// `messages_sent` and `messages_received`; a few rows use shorter words than the fields
/// (`arrivals gaps` is `gaps`, `windows congestion` is `cwnd`). Non-numeric values (RTTs) are
/// skipped; so are counters the mode does not show.
pub fn parse_stats<'a>(lines: impl IntoIterator<Item = &'a String>) -> HashMap<String, u64> {
    let field = |label: &str, word: &str| match (label, word) {
        ("arrivals", word) => word.to_owned(),
        ("windows", "congestion") => "cwnd".to_owned(),
        ("windows", "peer") => "peer_window".to_owned(),
        ("redundancy", "copies") => "redundant_copies".to_owned(),
        ("redundancy", "repaired") => "repaired_by_copy".to_owned(),
        // Encryption's refusals are `dropped_*` counters too (`dropped_replayed`).
        ("refused", word) => format!("dropped_{word}"),
        ("path", "mtu") => "path_mtu".to_owned(),
        ("path", "black-holes") => "pmtu_black_holes".to_owned(),
        (label, word) => format!("{label}_{word}"),
    };
    let mut counters = HashMap::new();
    let rows = lines
        .into_iter()
        .skip_while(|l| !l.starts_with(STATS_HEADING))
        .skip(1)
        .take_while(|l| *l != STATS_END);
    for row in rows {
        let mut words = row.trim_start_matches("udpchat:").split_whitespace();
        let Some(label) = words.next() else { continue };
        let cells: Vec<&str> = words.collect();
        for cell in cells.chunks(2) {
            if let [word, value] = cell {
                if let Ok(value) = value.parse() {
                    counters.insert(field(label, word), value);
                }
            }
        }
    }
    counters
}

/// A plain UDP socket on 127.0.0.1 with an ephemeral port, whose reads time out at the deadline.
pub fn udp_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    socket
}

/// Receives one datagram, failing at the deadline. A read interrupted by a signal (EINTR, seen
/// while tmux clients come and go in the same test process) is retried, not a failure.
pub fn recv_datagram(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (len, from) = loop {
        match socket.recv_from(&mut buf) {
            Ok(received) => break received,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("no datagram within {DEADLINE:?}: {e}"),
        }
    };
    buf.truncate(len);
    (buf, from)
}

// ---- Added by the lab tests (e2e_proxy): signals and the proxy's counters. ----

impl Proc {
    /// Sends SIGINT (what Ctrl-C sends) to the process, with the system's `kill` command.
    #[cfg(unix)]
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-s", "INT", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s INT {} failed", self.pid());
    }
}

/// Parses the `key=value` pairs of a line (non-numeric values are skipped), e.g. a proxy
/// counters line `udpchat proxy: up   (client -> forward): received=10 forwarded=7 ...`.
pub fn parse_counters(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Which of the first `n` datagrams an independent-loss link of rate `loss` drops when seeded
/// with `seed`: the same model and seed derivation (`derive_seed(seed, 0)` for the outgoing or
/// up direction) that `udpchat chat --loss` and `udpchat proxy --loss` use, so a test can predict
/// exactly which messages a real run loses.
pub fn predicted_drops(loss: f64, seed: u64, n: u64) -> BTreeSet<u64> {
    use udpchat_lab::{derive_seed, Fate, Impairment, ImpairmentConfig, Probability};
    let mut model = Impairment::<()>::new(
        ImpairmentConfig {
            loss: Probability::new(loss).unwrap(),
            ..Default::default()
        },
        derive_seed(seed, 0),
    );
    let t0 = Instant::now();
    (0..n)
        .filter(|_| {
            matches!(
                model.offer(t0, (), Vec::new()).original,
                Fate::Dropped { .. }
            )
        })
        .collect()
}

/// Starts `udpchat proxy` towards `forward` (counters reported only at the end), with `args`
/// after the listen/forward ones; returns it and the address it listens on.
pub fn proxy(forward: &str, args: &[&str]) -> (Proc, SocketAddr) {
    let mut full = vec![
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--forward",
        forward,
        "--stats-interval",
        "0",
    ];
    full.extend_from_slice(args);
    let mut proc = Proc::spawn("proxy", &full);
    let addr = proc.listening_addr();
    (proc, addr)
}

// ---- Added by the capture tests (capture, tshark): a pcapng reader. ----

/// One packet of a pcapng file written by udpchat: time, IP/UDP ends, UDP payload, comment.
#[derive(Debug, Clone)]
pub struct CapturedPacket {
    /// Nanoseconds since the epoch of the capture (the Unix epoch, or the run's start).
    pub nanos: u64,
    /// Source address and port.
    pub from: SocketAddr,
    /// Destination address and port.
    pub to: SocketAddr,
    /// The UDP payload: the datagram.
    pub payload: Vec<u8>,
    /// The packet comment, if any.
    pub comment: Option<String>,
}

/// A pcapng file read back: the section comment, and the packets. Panics (failing the test)
/// on anything malformed: block lengths, the byte-order magic, the link type, the nanosecond
/// resolution, the IPv4 header checksum or UDP lengths.
pub fn read_pcapng(file: &[u8]) -> (Option<String>, Vec<CapturedPacket>) {
    let u16le = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let u32le = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let u16be = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let options = |body: &[u8], mut at: usize| {
        let mut found = Vec::new();
        while at + 4 <= body.len() {
            let (code, len) = (u16le(body, at), usize::from(u16le(body, at + 2)));
            if code == 0 {
                break;
            }
            found.push((code, body[at + 4..at + 4 + len].to_vec()));
            at += 4 + len.next_multiple_of(4);
        }
        found
    };
    let comment_of = |opts: Vec<(u16, Vec<u8>)>| {
        opts.into_iter()
            .find(|(c, _)| *c == 1)
            .map(|(_, v)| String::from_utf8(v).unwrap())
    };
    let (mut at, mut section_comment, mut packets) = (0, None, Vec::new());
    assert_eq!(
        u32le(file, 0),
        0x0a0d_0d0a,
        "a pcapng file starts with a section header"
    );
    while at < file.len() {
        let (kind, total) = (u32le(file, at), u32le(file, at + 4) as usize);
        assert_eq!(total % 4, 0, "block length");
        assert_eq!(
            u32le(file, at + total - 4) as usize,
            total,
            "trailing block length"
        );
        let body = &file[at + 8..at + total - 4];
        match kind {
            0x0a0d_0d0a => {
                assert_eq!(u32le(body, 0), 0x1a2b_3c4d, "byte-order magic");
                section_comment = comment_of(options(body, 16));
            }
            1 => {
                assert_eq!(u16le(body, 0), 101, "LINKTYPE_RAW");
                assert!(options(body, 8).contains(&(9, vec![9])), "nanoseconds");
            }
            6 => {
                let nanos = (u64::from(u32le(body, 4)) << 32) | u64::from(u32le(body, 8));
                let len = u32le(body, 12) as usize;
                assert_eq!(len, u32le(body, 16) as usize, "captured = original length");
                let ip = &body[20..20 + len];
                assert_eq!(ip[0], 0x45, "IPv4, 20-byte header");
                assert_eq!(usize::from(u16be(ip, 2)), len, "IP total length");
                let sum = ip[..20]
                    .chunks(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                    .sum::<u32>();
                assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "IPv4 header checksum");
                let addr = |at: usize, port: u16| {
                    SocketAddr::from((<[u8; 4]>::try_from(&ip[at..at + 4]).unwrap(), port))
                };
                let udp = &ip[20..];
                assert_eq!(usize::from(u16be(udp, 4)), udp.len(), "UDP length");
                packets.push(CapturedPacket {
                    nanos,
                    from: addr(12, u16be(udp, 0)),
                    to: addr(16, u16be(udp, 2)),
                    payload: udp[8..].to_vec(),
                    comment: comment_of(options(body, 20 + len.next_multiple_of(4))),
                });
            }
            other => panic!("unexpected pcapng block type {other:#x}"),
        }
        at += total;
    }
    (section_comment, packets)
}

/// A fresh, empty directory for one test's files, under the system's temporary directory.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("udpchat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Proc {
    /// Starts `udpchat` with `args` and these environment variables set.
    pub fn spawn_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(udpchat_bin());
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start udpchat: {e}"));
        let stdin = child.stdin.take();
        let stdout = Stream::spawn(name, child.stdout.take().unwrap());
        let stderr = Stream::spawn(name, child.stderr.take().unwrap());
        Proc {
            name: name.to_owned(),
            child,
            stdin,
            stdout,
            stderr,
        }
    }
}

/// A framed raw-mode datagram, as a udpchat peer would send it.
pub fn raw_datagram(seq: u64, nick: &str, text: &str) -> Vec<u8> {
    let packet = udpchat_core::Packet::Raw(udpchat_core::RawMessage {
        seq,
        nick: nick.into(),
        text: text.into(),
    });
    udpchat_core::encode(&packet, udpchat_core::DEFAULT_MAX_DATAGRAM).unwrap()
}

/// Starts a reliable chat named `name` with JSON output on the line interface, bound to a free
/// loopback port, towards `peer` if given, with `extra` flags; returns it and its address.
pub fn reliable_chat(name: &str, peer: Option<&str>, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec![
        "--bind",
        "127.0.0.1:0",
        "--mode",
        "reliable",
        "--nick",
        name,
        "--format",
        "json",
        "--ui",
        "line",
    ];
    if let Some(peer) = peer {
        args.extend_from_slice(&["--peer", peer]);
    }
    args.extend_from_slice(extra);
    Proc::chat(name, &args)
}
