//! End-to-end: `udpchat netem`, the TUN relay between two network namespaces, as root.
//!
//! The relay is seeded, so the test knows exactly which packets each direction drops: the n-th
//! packet offered to a direction meets the same fate as the n-th draw of the lab's model with the
//! same seed (derive_seed(seed, 0) for a->b, 1 for b->a). A raw chat across it shows exactly the
//! predicted gaps; the kernel's TCP across it delivers every byte anyway, and the relay's final
//! counters equal the model's prediction for as many packets as it was offered. After SIGINT or
//! SIGTERM, the namespaces and the TUN devices are gone.
//!
//! These tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2 and /dev/net/tun, as CI
//! has (`.ci/run` runs as root). Elsewhere each prints `skipped: REASON` on stderr and passes:
//! that is the only way they pass without running. The refusal without privilege is tested
//! with `setpriv` dropping the capabilities (or directly, when not root).
#![allow(clippy::unwrap_used)]
#![cfg(target_os = "linux")]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use support::{parse_counters, udpchat_bin, Pipe, Proc, DEADLINE};
use udpchat_lab::{derive_seed, Fate, Impairment, ImpairmentConfig, Probability};
use udpchat_netem::namespace::in_namespace;

type Counters = HashMap<String, u64>;

/// Why these tests cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    // CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21).
    if caps & (1 << 12) == 0 || caps & (1 << 21) == 0 {
        return Some("not root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN)".to_owned());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".to_owned());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("no `ip` command (iproute2): {e}")),
    }
}

/// Returns early from a test, saying why, when it cannot run here.
macro_rules! require_root {
    () => {
        if let Some(reason) = skip_reason() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

/// A running `udpchat netem` and the names it printed.
struct Netem {
    proc: Proc,
    namespaces: [String; 2],
    devices: [String; 2],
}

impl Netem {
    fn start(args: &[&str]) -> Netem {
        let mut full = vec!["netem"];
        full.extend_from_slice(args);
        let mut proc = Proc::spawn("netem", &full);
        let mut side = |name: &str| {
            let line = proc.expect(Pipe::Stdout, name, |l| l.starts_with(name));
            let fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            assert_eq!(fields.len(), 4, "{line}");
            (fields[1].clone(), fields[3].clone())
        };
        let (ns_a, dev_a) = side("a ");
        let (ns_b, dev_b) = side("b ");
        proc.expect_stderr("relaying until Ctrl-C");
        let netem = Netem {
            proc,
            namespaces: [ns_a, ns_b],
            devices: [dev_a, dev_b],
        };
        netem.assert_present();
        netem
    }

    /// The path setns(2) opens for side `i`'s namespace.
    fn path(&self, i: usize) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.namespaces[i])
    }

    /// `ip netns exec NAMESPACE udpchat ARGS...` for side `i`.
    fn exec(&self, i: usize, name: &str, args: &[&str]) -> Proc {
        let mut full = vec!["netns", "exec", &self.namespaces[i], udpchat_bin()];
        full.extend_from_slice(args);
        Proc::spawn_program(name, "ip", &full)
    }

    fn assert_present(&self) {
        let listed = namespaces();
        for (ns, dev) in self.namespaces.iter().zip(&self.devices) {
            assert!(listed.contains(ns), "{ns} missing from {listed:?}");
            let shown = Command::new("ip")
                .args(["-n", ns, "link", "show", "dev", dev])
                .output()
                .unwrap();
            assert!(shown.status.success(), "{dev} is not in {ns}");
        }
    }

    /// Sends `signal`, checks the exit (0) and returns the (a->b, b->a) counters.
    fn stop(mut self, signal: &str) -> (Counters, Counters, Netem) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.proc.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.proc
            .expect_stderr("udpchat netem: counters, in IP packets");
        let up = parse_counters(&self.proc.expect_stderr("udpchat netem: a->b:"));
        let down = parse_counters(&self.proc.expect_stderr("udpchat netem: b->a:"));
        assert_eq!(self.proc.exit_code(), 0);
        (up, down, self)
    }

    /// Neither namespace nor either device exists any more (anywhere: a device lives in its
    /// namespace, and the root namespace has none of that name).
    fn assert_gone(&self) {
        let listed = namespaces();
        let links = String::from_utf8(
            Command::new("ip")
                .args(["-o", "link", "show"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        for (ns, dev) in self.namespaces.iter().zip(&self.devices) {
            assert!(!listed.contains(ns), "{ns} left behind: {listed:?}");
            assert!(!links.contains(dev.as_str()), "{dev} left behind:\n{links}");
            assert!(
                !PathBuf::from("/run/netns").join(ns).exists(),
                "{ns} still pinned"
            );
        }
    }
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Which of the first `n` packets a direction (label 0: a->b, 1: b->a) of the relay drops.
fn predicted_drops(config: &ImpairmentConfig, seed: u64, label: u64, n: u64) -> BTreeSet<u64> {
    let mut model = Impairment::<()>::new(config.clone(), derive_seed(seed, label));
    let t0 = Instant::now();
    (0..n)
        .filter(|_| {
            matches!(
                model.offer(t0, (), vec![0; 64]).original,
                Fate::Dropped { .. }
            )
        })
        .collect()
}

/// The counters of a direction equal the model's prediction for the packets it was offered.
fn assert_predicted(d: &Counters, config: &ImpairmentConfig, seed: u64, label: u64) {
    let drops = predicted_drops(config, seed, label, d["received"]).len() as u64;
    assert_eq!(d["dropped_loss"], drops, "{d:?}");
    assert_eq!(d["forwarded"], d["received"] - drops, "{d:?}");
    assert_eq!((d["malformed"], d["write_errors"]), (0, 0), "{d:?}");
}

fn lossy(p: f64) -> ImpairmentConfig {
    ImpairmentConfig {
        loss: Probability::new(p).unwrap(),
        ..Default::default()
    }
}

/// Raw chat lines from A to B: B shows exactly the predicted gaps (only raw datagrams cross
/// a->b while it runs, so packet n is message n).
fn raw_chat_shows_the_predicted_gaps(netem: &Netem, config: &ImpairmentConfig, seed: u64) {
    const N: u64 = 40;
    let dropped = predicted_drops(config, seed, 0, N);
    let last_arriving = (0..N).rev().find(|s| !dropped.contains(s)).unwrap();
    assert!(!dropped.is_empty(), "the seed must lose something");
    let mut bob = netem.exec(
        1,
        "bob",
        &[
            "chat",
            "--mode",
            "raw",
            "--bind",
            "10.77.0.2:2323",
            "--format",
            "json",
        ],
    );
    bob.listening_addr();
    let mut alice = netem.exec(
        0,
        "alice",
        &[
            "chat",
            "--mode",
            "raw",
            "--bind",
            "10.77.0.1:2323",
            "--peer",
            "10.77.0.2:2323",
        ],
    );
    alice.listening_addr();
    for i in 0..N {
        alice.send_line(&format!("line {i}"));
    }
    let last = format!("\"text\":\"line {last_arriving}\"");
    bob.expect(Pipe::Stdout, "the last message to get through", |l| {
        l.contains(&last)
    });
    let mut received = BTreeSet::new();
    for line in bob.history(Pipe::Stdout) {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        if event["event"] == "message" {
            received.insert(event["seq"].as_u64().unwrap());
        }
    }
    let expected: BTreeSet<u64> = (0..=last_arriving)
        .filter(|s| !dropped.contains(s))
        .collect();
    assert_eq!(received, expected, "exactly the predicted messages arrived");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);
}

/// Kernel TCP from A to B: every byte arrives, in order, whatever the relay drops.
fn kernel_tcp_delivers_every_byte(netem: &Netem) -> usize {
    let data: Vec<u8> = (0..30_000u32).map(|i| (i % 251) as u8).collect();
    let listener = in_namespace(netem.path(1), || TcpListener::bind("10.77.0.2:5001"))
        .unwrap()
        .unwrap();
    let sent = data.clone();
    let side_a = netem.path(0);
    let writer = std::thread::spawn(move || {
        let to = "10.77.0.2:5001".parse().unwrap();
        let mut stream = in_namespace(side_a, move || TcpStream::connect_timeout(&to, DEADLINE))
            .unwrap()
            .unwrap();
        stream.write_all(&sent).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let (mut stream, from) = listener.accept().unwrap();
    assert_eq!(from.ip().to_string(), "10.77.0.1");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the bytes arrived changed or out of order");
    data.len()
}

#[test]
fn raw_chat_and_kernel_tcp_cross_the_relay_with_exactly_the_seeded_losses() {
    require_root!();
    let (seed, config) = (1, lossy(0.2));
    let netem = Netem::start(&["--loss", "20%", "--seed", "1"]);
    raw_chat_shows_the_predicted_gaps(&netem, &config, seed);
    let bytes = kernel_tcp_delivers_every_byte(&netem);
    let (up, down, netem) = netem.stop("INT");
    assert_predicted(&up, &config, seed, 0);
    assert_predicted(&down, &config, seed, 1);
    // TCP resent what the relay dropped: with 20% loss on ~30 data segments and their acks,
    // something was lost, so something was resent.
    assert!(up["tcp_data"] as usize >= bytes / 1460, "{up:?}");
    assert!(up["tcp_retransmitted"] > 0, "{up:?}");
    assert!(down["received"] > 0, "{down:?}");
    netem.assert_gone();
}

#[test]
fn corrupted_packets_never_reach_the_receiving_program() {
    require_root!();
    // Half the a->b packets get one bit flipped after their IP header: B's kernel drops them on
    // the UDP checksum (or, for a flipped port, never finds the socket), so bob sees gaps exactly
    // where the relay counted corruption.
    const N: u64 = 30;
    let netem = Netem::start(&["--up", "corrupt=50%", "--seed", "3"]);
    let mut bob = netem.exec(
        1,
        "bob",
        &[
            "chat",
            "--mode",
            "raw",
            "--bind",
            "10.77.0.2:2323",
            "--format",
            "json",
        ],
    );
    bob.listening_addr();
    let mut alice = netem.exec(
        0,
        "alice",
        &[
            "chat",
            "--mode",
            "raw",
            "--bind",
            "10.77.0.1:2323",
            "--peer",
            "10.77.0.2:2323",
        ],
    );
    alice.listening_addr();
    // The corrupt knob's own stream decides, per packet, exactly as in a bare model.
    let mut model = Impairment::<()>::new(
        ImpairmentConfig {
            corrupt: Probability::new(0.5).unwrap(),
            ..Default::default()
        },
        derive_seed(3, 0),
    );
    let t0 = Instant::now();
    let corrupted: BTreeSet<u64> = (0..N)
        .filter(|_| {
            matches!(
                model.offer(t0, (), vec![0; 64]).original,
                Fate::Scheduled {
                    corrupted_bits: 1,
                    ..
                }
            )
        })
        .collect();
    let last_intact = (0..N).rev().find(|s| !corrupted.contains(s)).unwrap();
    for i in 0..N {
        alice.send_line(&format!("line {i}"));
    }
    let last = format!("\"text\":\"line {last_intact}\"");
    bob.expect(Pipe::Stdout, "the last intact message", |l| {
        l.contains(&last)
    });
    let received: BTreeSet<u64> = bob
        .history(Pipe::Stdout)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "message")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let expected: BTreeSet<u64> = (0..=last_intact)
        .filter(|s| !corrupted.contains(s))
        .collect();
    assert_eq!(received, expected);
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);
    let (up, _down, netem) = netem.stop("TERM");
    assert_eq!(up["received"], N, "{up:?}");
    assert_eq!(up["corrupted"], corrupted.len() as u64, "{up:?}");
    assert_eq!(
        up["forwarded"], N,
        "corrupted packets are still forwarded: {up:?}"
    );
    netem.assert_gone();
}

#[test]
fn without_the_privilege_it_is_one_line_exit_77_and_nothing_is_created() {
    let running_as_root = skip_reason().is_none();
    let mut proc = if running_as_root {
        if Command::new("setpriv").arg("--help").output().is_err() {
            eprintln!("skipped: root, and no setpriv to drop the capabilities with");
            return;
        }
        Proc::spawn_program(
            "netem",
            "setpriv",
            &[
                "--inh-caps=-net_admin,-sys_admin",
                "--bounding-set=-net_admin,-sys_admin",
                udpchat_bin(),
                "netem",
                "--loss",
                "10%",
            ],
        )
    } else {
        Proc::spawn("netem", &["netem", "--loss", "10%"])
    };
    assert_eq!(proc.exit_code(), 77);
    let stderr = proc.drain(Pipe::Stderr);
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].starts_with("udpchat netem: needs root:") && stderr[0].contains("CAP_NET_ADMIN"),
        "{stderr:?}"
    );
    assert!(proc.drain(Pipe::Stdout).is_empty());
    // Other tests make namespaces meanwhile: look only for this process's.
    let prefix = format!("udpchat-{}-", proc.pid());
    let ours: Vec<String> = namespaces_or_empty()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

fn namespaces_or_empty() -> Vec<String> {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `udpchat lab --real EXTRA... --format json` and returns its rows, checking that it left
/// no namespace behind.
fn lab_rows(extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "lab",
        "--real",
        "--loss",
        "0,20%",
        "--messages",
        "60",
        "--seeds",
        "1",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--format", "json"]);
    let child = Command::new(udpchat_bin())
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Its runs made a pair of namespaces each; none is left.
    let prefix = format!("udpchat-{pid}-");
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected_engine = if extra.contains(&"--tun") {
        "real_tun"
    } else {
        "real"
    };
    assert_eq!(results["engine"], expected_engine);
    results["rows"].as_array().unwrap().clone()
}

/// The row of `mode` at `loss` in `rows`.
fn row<'a>(rows: &'a [serde_json::Value], mode: &str, loss: f64) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["mode"] == mode && (r["loss"].as_f64().unwrap() - loss).abs() < 1e-9)
        .unwrap_or_else(|| panic!("no row {mode} {loss}: {rows:?}"))
}

/// The mean delivery ratio of `mode` at `loss` in `rows`.
fn delivered(rows: &[serde_json::Value], mode: &str, loss: f64) -> f64 {
    row(rows, mode, loss)["metrics"]["delivery_ratio"]["mean"]
        .as_f64()
        .unwrap()
}

/// The mean share of messages held back by head-of-line blocking, `None` where the row has no
/// figure.
fn held(rows: &[serde_json::Value], mode: &str, loss: f64) -> Option<f64> {
    row(rows, mode, loss)["metrics"]["hol_blocked_ratio"]["mean"].as_f64()
}

#[test]
fn lab_real_runs_kernel_tcp_beside_raw_over_loopback() {
    require_root!();
    let rows = lab_rows(&["--modes", "raw,kernel-tcp:cubic,kernel-tcp:reno"]);
    for mode in ["kernel-tcp:cubic", "kernel-tcp:reno"] {
        assert_eq!(delivered(&rows, mode, 0.0), 1.0, "{mode}");
        assert_eq!(delivered(&rows, mode, 0.2), 1.0, "{mode} at 20%");
        // The relay saw every segment: kernel TCP has a head-of-line figure at every loss (with
        // none, the default link's jitter may still reorder the backlog written at setup, so
        // its share is not pinned). At 20% a message is held unless each of the 59 before the
        // last got through the first time (0.8^59, about 2e-6), and a held message waited
        // longer than the 1 ms threshold by definition.
        assert!(held(&rows, mode, 0.0).is_some(), "{mode}: no figure");
        let lossy = held(&rows, mode, 0.2).unwrap_or_else(|| panic!("{mode}: no figure"));
        assert!(lossy > 0.0, "{mode} held nothing at 20%");
        let waits = &row(&rows, mode, 0.2)["metrics"]["hol_wait_max_ms"]["pooled"];
        assert!(waits.as_f64().unwrap() > 1.0, "{waits}");
    }
    assert_eq!(delivered(&rows, "raw", 0.0), 1.0);
    // 60 messages at 20% loss: all surviving has probability 0.8^60, about 1.5e-6.
    assert!(delivered(&rows, "raw", 0.2) < 1.0);
    // Raw mode holds nothing back: no figure.
    assert_eq!(held(&rows, "raw", 0.2), None);
}

#[test]
fn lab_real_tun_runs_every_mode_through_the_same_relay() {
    require_root!();
    let rows = lab_rows(&["--tun", "--modes", "raw,reliable,kernel-tcp:reno"]);
    for mode in ["reliable", "kernel-tcp:reno"] {
        assert_eq!(delivered(&rows, mode, 0.0), 1.0, "{mode}");
        assert_eq!(delivered(&rows, mode, 0.2), 1.0, "{mode} at 20%");
    }
    assert_eq!(delivered(&rows, "raw", 0.0), 1.0);
    assert!(delivered(&rows, "raw", 0.2) < 1.0);
    // Kernel TCP's arrivals are the relay's log; udpchat's own datagrams are not decoded there,
    // so reliable mode has no head-of-line figure over real sockets, --tun or not.
    assert!(held(&rows, "kernel-tcp:reno", 0.2).is_some());
    assert_eq!(held(&rows, "reliable", 0.2), None);
    // Through the relay, raw mode's datagrams are exactly its messages: one each.
    let raw = rows.iter().find(|r| r["mode"] == "raw").unwrap();
    assert_eq!(raw["runs"][0]["datagrams"], 60);
}

#[test]
fn kernel_tcp_modes_need_real_and_a_known_congestion_control() {
    for (args, says) in [
        (
            vec!["lab", "--modes", "kernel-tcp:cubic"],
            "kernel-tcp:cubic runs the kernel's TCP through the TUN relay: add --real",
        ),
        (
            vec!["lab", "--real", "--modes", "kernel-tcp:vegas"],
            "unknown mode",
        ),
        (
            vec!["netem", "--tun", "one"],
            "--tun takes two different TUN device names",
        ),
    ] {
        let out = Command::new(udpchat_bin()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn interrupting_a_kernel_tcp_sweep_removes_its_namespaces() {
    require_root!();
    // 3000 messages every 10 ms: half a minute of runs, interrupted as soon as they exist.
    let mut lab = Proc::spawn(
        "lab",
        &[
            "lab",
            "--real",
            "--modes",
            "kernel-tcp",
            "--loss",
            "0,10%",
            "--messages",
            "3000",
            "--seeds",
            "1",
            "--format",
            "json",
        ],
    );
    let prefix = format!("udpchat-{}-", lab.pid());
    let ours = || -> Vec<String> {
        namespaces()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    let deadline = Instant::now() + DEADLINE;
    // Both runs' two namespaces each exist before the runs start together.
    while ours().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "no namespaces appeared: {:?}",
            namespaces()
        );
        assert!(lab.is_running(), "{:?}", lab.drain(Pipe::Stderr));
        // Polling for a state, not waiting for time: the interval only sets how soon it is seen.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    lab.interrupt();
    assert_eq!(lab.exit_code(), 1);
    let stderr = lab.drain(Pipe::Stderr).join("\n");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(ours(), Vec::<String>::new(), "namespaces left behind");
}

/// Namespaces and persistent TUN devices a test made itself, removed when dropped.
struct Made {
    namespaces: Vec<String>,
    devices: Vec<String>,
}

impl Drop for Made {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for dev in &self.devices {
            let _ = Command::new("ip").args(["link", "del", dev]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn netem_tun_relays_between_existing_devices_and_leaves_them_as_they_were() {
    require_root!();
    let pid = std::process::id();
    let (dev_a, dev_b) = (format!("uct{pid}a"), format!("uct{pid}b"));
    let (ns_a, ns_b) = (
        format!("udpchat-test-{pid}-a"),
        format!("udpchat-test-{pid}-b"),
    );
    let mut made = Made {
        namespaces: Vec::new(),
        devices: Vec::new(),
    };
    for dev in [&dev_a, &dev_b] {
        ip(&["tuntap", "add", "dev", dev, "mode", "tun"]);
        made.devices.push(dev.clone());
    }
    let tun = format!("{dev_a},{dev_b}");
    let mut netem = Proc::spawn("netem", &["netem", "--tun", &tun, "--up", "duplicate=100%"]);
    netem.expect_stdout(&format!("a {dev_a}"));
    netem.expect_stdout(&format!("b {dev_b}"));
    netem.expect_stderr("relaying until Ctrl-C");
    // Moved after the relay attached: its descriptors follow the devices.
    for (ns, dev, address) in [
        (&ns_a, &dev_a, "10.78.0.1/24"),
        (&ns_b, &dev_b, "10.78.0.2/24"),
    ] {
        ip(&["netns", "add", ns]);
        made.namespaces.push(ns.clone());
        ip(&["link", "set", dev, "netns", ns]);
        ip(&["-n", ns, "addr", "add", address, "dev", dev]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    let run = PathBuf::from("/run/netns");
    let receiver = in_namespace(run.join(&ns_b), || {
        std::net::UdpSocket::bind("10.78.0.2:5002")
    })
    .unwrap()
    .unwrap();
    receiver.set_read_timeout(Some(DEADLINE)).unwrap();
    let sender = in_namespace(run.join(&ns_a), || std::net::UdpSocket::bind("10.78.0.1:0"))
        .unwrap()
        .unwrap();
    for i in 0..10u8 {
        sender.send_to(&[i], "10.78.0.2:5002").unwrap();
    }
    // Every datagram twice (duplicate=100% a->b), and in order: no delay, nothing reordered.
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while got.len() < 20 {
        let (n, from) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!((n, from.ip().to_string().as_str()), (1, "10.78.0.1"));
        got.push(buf[0]);
    }
    let expected: Vec<u8> = (0..10u8).flat_map(|i| [i, i]).collect();
    assert_eq!(got, expected);
    netem.interrupt();
    netem.expect_stderr("udpchat netem: counters, in IP packets");
    let up = parse_counters(&netem.expect_stderr("udpchat netem: a->b:"));
    assert_eq!(netem.exit_code(), 0);
    assert!(up["duplicated"] >= 10 && up["forwarded"] >= 20, "{up:?}");
    // Left as they were: still there, in the namespaces they were moved to.
    for (ns, dev) in [(&ns_a, &dev_a), (&ns_b, &dev_b)] {
        ip(&["-n", ns, "link", "show", "dev", dev]);
    }
}

#[test]
fn namespaces_left_by_a_killed_process_are_swept_at_the_next_start() {
    require_root!();
    // A process that has exited: its id names a leftover as `kill -9` would leave it.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let stale = format!("udpchat-{}-0-a", gone.id());
    ip(&["netns", "add", &stale]);
    let _made = Made {
        namespaces: vec![stale.clone()],
        devices: Vec::new(),
    };
    let netem = Netem::start(&[]);
    // Swept by this netem (it says so), or already by another of the tests running in parallel,
    // which sweep the same way: either way, gone before this netem was set up.
    assert!(!namespaces().contains(&stale), "{stale} was not swept");
    let (_, _, netem) = netem.stop("INT");
    netem.assert_gone();
}
