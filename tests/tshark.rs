//! The Wireshark dissector (`wireshark/udpchat.lua`), tested headless with tshark: captures
//! made by the real binary (`udpchat lab --pcap`, `udpchat chat --pcap`) and one holding every
//! packet kind are decoded by tshark with the dissector (`-T json`), and every udpchat field
//! tshark shows is compared with what `udpchat_core`'s own decoder reads from the same bytes:
//! kinds, sequence numbers, ack ranges, nicknames, connection ids, the CRC check; the fates in
//! the packet comments are compared with the file's.
//!
//! tshark is a Debian package that `.ci/run` installs. Without it the tests fail, saying so,
//! unless `UDPCHAT_SKIP_TSHARK=1` is set: then each prints that it is skipped, and why.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{read_pcapng, scratch_dir, CapturedPacket, Pipe, Proc};
use udpchat_core::{Ack, AckRange, ConnectionId, Data, Hello, Packet, RawMessage, SeqNum, Welcome};
use udpchat_lab::pcap::{Datagram, Format, PcapWriter};

/// The dissector, from the repository root.
fn dissector() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wireshark/udpchat.lua")
}

/// True if tshark can run; false (after saying so) if it is missing and the skip is asked for.
fn tshark_available(test: &str) -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var("UDPCHAT_SKIP_TSHARK").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED {test}: tshark is not installed and UDPCHAT_SKIP_TSHARK=1 says to skip \
             (.ci/run installs it: apt-get install tshark)"
        );
        return false;
    }
    panic!(
        "tshark is not installed: .ci/run installs it (DEBIAN_FRONTEND=noninteractive apt-get \
         install -y tshark); set UDPCHAT_SKIP_TSHARK=1 to skip this test knowingly"
    );
}

/// Decodes `file` with tshark and the dissector; returns each packet's layers.
fn decode(file: &Path) -> Vec<Value> {
    // A configuration directory of its own, so the user's Wireshark preferences (a disabled
    // heuristic, another port) cannot change what the test sees.
    let config = scratch_dir(&format!(
        "tshark-config-{}",
        file.file_stem().unwrap().to_string_lossy()
    ));
    let output = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", &config)
        .arg("-X")
        .arg(format!("lua_script:{}", dissector().display()))
        .arg("-r")
        .arg(file)
        .args(["-T", "json", "--no-duplicate-keys"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tshark failed: {stderr}");
    // Lua errors do not fail tshark: they are printed.
    assert!(
        !stderr.to_lowercase().contains("lua"),
        "tshark said: {stderr}"
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|p| p["_source"]["layers"].clone())
        .collect()
}

/// Every value under every key of a JSON tree, in document order (arrays give several values).
fn flatten(value: &Value, into: &mut BTreeMap<String, Vec<String>>) {
    let Value::Object(map) = value else { return };
    for (key, v) in map {
        let items: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            match item {
                Value::String(s) => into.entry(key.clone()).or_default().push(s.clone()),
                Value::Object(_) => flatten(item, into),
                _ => {}
            }
        }
    }
}

/// A number as tshark prints it: decimal, or hexadecimal with `0x`.
fn number(text: &str) -> u64 {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => text
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {text:?}")),
    }
}

/// The fields the dissector must show for `packet`, as (field, value) in wire order.
fn expected(packet: &Packet) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let n = |v: u64| v.to_string();
    let ack = |out: &mut Vec<(&'static str, String)>, a: &Ack| {
        out.push(("udpchat.ack.cumulative", n(a.cumulative.0)));
        out.push(("udpchat.ack.ranges", n(a.ranges.len() as u64)));
        for r in &a.ranges {
            out.push(("udpchat.ack.range.first", n(r.first.0)));
            out.push(("udpchat.ack.range.last", n(r.last.0)));
        }
        out.push(("udpchat.ack.delay_us", n(a.delay_us)));
        out.push(("udpchat.ack.window", n(u64::from(a.window))));
        out.push(("udpchat.ack.delivered", n(a.delivered.0)));
        out.push(("udpchat.ack.echo", n(u64::from(a.echo))));
        out.push((
            "udpchat.ack.ranges_delivered",
            n(u64::from(a.ranges_delivered)),
        ));
    };
    let data = |out: &mut Vec<(&'static str, String)>, d: &Data| {
        out.push(("udpchat.dst", n(d.dst.0)));
        out.push(("udpchat.seq", n(d.seq.0)));
        out.push(("udpchat.message", n(d.message)));
        out.push(("udpchat.fragment", n(u64::from(d.fragment))));
        out.push(("udpchat.fragments", n(u64::from(d.fragments))));
        out.push(("udpchat.token", n(u64::from(d.token))));
        out.push(("udpchat.payload.len", n(d.payload.len() as u64)));
        out.push(("udpchat.ack.present", n(u64::from(d.ack.is_some()))));
        if let Some(a) = &d.ack {
            ack(out, a);
        }
    };
    match packet {
        Packet::Raw(m) => {
            out.push(("udpchat.seq", n(m.seq)));
            out.push(("udpchat.nick", m.nick.clone()));
            out.push(("udpchat.text", m.text.clone()));
        }
        Packet::Hello(h) => {
            out.push(("udpchat.src", n(h.src.0)));
            out.push(("udpchat.nick", h.nick.clone()));
            out.push(("udpchat.window", n(u64::from(h.window))));
        }
        Packet::Welcome(w) => {
            out.push(("udpchat.src", n(w.src.0)));
            out.push(("udpchat.dst", n(w.dst.0)));
            out.push(("udpchat.nick", w.nick.clone()));
            out.push(("udpchat.window", n(u64::from(w.window))));
        }
        Packet::Data(d) | Packet::Fin(d) | Packet::Nick(d) => data(&mut out, d),
        Packet::Ack { dst, ack: a } => {
            out.push(("udpchat.dst", n(dst.0)));
            ack(&mut out, a);
        }
        Packet::Ping { dst } | Packet::Pong { dst } => out.push(("udpchat.dst", n(dst.0))),
        Packet::Close { dst, ack: a } => {
            out.push(("udpchat.dst", n(dst.0)));
            out.push(("udpchat.ack.present", n(u64::from(a.is_some()))));
            if let Some(a) = a {
                ack(&mut out, a);
            }
        }
        Packet::Bundle(items) => {
            out.push(("udpchat.bundle.count", n(items.len() as u64)));
            for d in items {
                data(&mut out, d);
            }
        }
        Packet::Probe { dst, id, padding } => {
            out.push(("udpchat.dst", n(dst.0)));
            out.push(("udpchat.probe.id", n(u64::from(*id))));
            out.push(("udpchat.padding", n(padding.len() as u64)));
        }
        Packet::ProbeAck { dst, id } => {
            out.push(("udpchat.dst", n(dst.0)));
            out.push(("udpchat.probe.id", n(u64::from(*id))));
        }
        Packet::Piece {
            dst,
            id,
            index,
            count,
            bytes,
        } => {
            out.push(("udpchat.dst", n(dst.0)));
            out.push(("udpchat.piece.id", n(u64::from(*id))));
            out.push(("udpchat.piece.index", n(u64::from(*index))));
            out.push(("udpchat.piece.count", n(u64::from(*count))));
            out.push(("udpchat.piece.bytes", n(bytes.len() as u64)));
        }
    }
    out
}

/// Checks that tshark's view of each packet agrees with udpchat's: the udpchat fields, the CRC
/// verdict and the comment. Returns the kind names tshark showed.
fn compare(packets: &[CapturedPacket], layers: &[Value]) -> Vec<String> {
    assert_eq!(packets.len(), layers.len(), "tshark saw every packet");
    let mut kinds = Vec::new();
    for (i, (packet, layer)) in packets.iter().zip(layers).enumerate() {
        let comment = layer["pkt_comment"]["frame.comment"]
            .as_str()
            .map(str::to_owned);
        assert_eq!(comment, packet.comment, "packet {i}: comment");
        let mut shown = BTreeMap::new();
        flatten(&layer["udpchat"], &mut shown);
        let one = |key: &str| shown.get(key).and_then(|v| v.first()).cloned();
        match udpchat_core::decode(&packet.payload) {
            Ok(decoded) => {
                assert_eq!(
                    one("udpchat.crc.status").as_deref(),
                    Some("good"),
                    "packet {i}"
                );
                let kind = format!("{:?}", decoded.kind());
                assert_eq!(
                    one("udpchat.kind_name").as_deref(),
                    Some(kind.as_str()),
                    "packet {i}"
                );
                let mut want: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for (key, value) in expected(&decoded) {
                    want.entry(key).or_default().push(value);
                }
                for (key, values) in want {
                    let got = shown.get(key).unwrap_or_else(|| {
                        panic!("packet {i} ({kind}): tshark shows no {key}: {shown:?}")
                    });
                    let numeric = values.iter().all(|v| v.parse::<u64>().is_ok())
                        && !matches!(key, "udpchat.nick" | "udpchat.text");
                    let got: Vec<String> = if numeric {
                        got.iter().map(|v| number(v).to_string()).collect()
                    } else {
                        got.clone()
                    };
                    assert_eq!(got, values, "packet {i} ({kind}): {key}");
                }
                kinds.push(kind);
            }
            Err(udpchat_core::DecodeError::BadChecksum { .. }) => {
                assert_eq!(
                    one("udpchat.crc.status").as_deref(),
                    Some("bad"),
                    "packet {i}"
                );
                kinds.push("bad checksum".into());
            }
            // A flipped magic or version byte: not udpchat's to show (or shown as unknown).
            Err(_) => kinds.push("other".into()),
        }
    }
    kinds
}

#[test]
fn tshark_decodes_every_packet_kind_and_field_as_udpchat_does() {
    if !tshark_available("tshark_decodes_every_packet_kind_and_field_as_udpchat_does") {
        return;
    }
    let ack = Ack {
        cumulative: SeqNum(9),
        ranges: vec![
            AckRange {
                first: SeqNum(11),
                last: SeqNum(12),
            },
            AckRange {
                first: SeqNum(300),
                last: SeqNum(70_000),
            },
        ],
        delay_us: 300,
        window: 512,
        delivered: SeqNum(7),
        echo: 0x0bad_cafe,
        ranges_delivered: true,
    };
    let data = |seq: u64, with_ack: bool| Data {
        dst: ConnectionId(0x0102_0304_0506_0708),
        seq: SeqNum(seq),
        message: 3,
        fragment: 1,
        fragments: 2,
        token: 0xcafe_f00d,
        payload: "hé".as_bytes().to_vec(),
        ack: with_ack.then(|| ack.clone()),
    };
    let (a, b) = (ConnectionId(u64::MAX), ConnectionId(250));
    let packets = [
        Packet::Raw(RawMessage {
            seq: 7,
            nick: "alice".into(),
            text: "hi".into(),
        }),
        Packet::Raw(RawMessage {
            seq: 1 << 40,
            nick: String::new(),
            text: String::new(),
        }),
        Packet::Hello(Hello {
            src: a,
            nick: "bob".into(),
            window: 70_000,
        }),
        Packet::Welcome(Welcome {
            src: b,
            dst: a,
            nick: "carol".into(),
            window: 512,
        }),
        Packet::Data(data(5, true)),
        Packet::Data(data(251, false)),
        Packet::Ack {
            dst: a,
            ack: ack.clone(),
        },
        Packet::Ping { dst: b },
        Packet::Pong { dst: b },
        Packet::Close {
            dst: a,
            ack: Some(ack.clone()),
        },
        Packet::Close { dst: a, ack: None },
        Packet::Bundle(vec![data(20, true), data(18, false), data(19, false)]),
        Packet::Fin(data(21, false)),
        Packet::Nick(data(22, true)),
        // A probe of a typical size (a 3-byte padding length) and its answer.
        Packet::probe(b, 70_000, 1280).unwrap(),
        Packet::ProbeAck { dst: b, id: 70_000 },
        Packet::Piece {
            dst: a,
            id: 3,
            index: 1,
            count: 2,
            bytes: vec![7; 300],
        },
    ];
    let dir = scratch_dir("tshark-kinds");
    let file = dir.join("kinds.pcapng");
    let mut writer = PcapWriter::new(Vec::new(), Format::PcapNg).unwrap();
    // A port other than 2323: the heuristic has to recognise udpchat by itself.
    let (from, to): (SocketAddr, SocketAddr) = (
        "127.0.0.1:40001".parse().unwrap(),
        "127.0.0.1:40002".parse().unwrap(),
    );
    let mut bytes: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| udpchat_core::encode(p, 65_507).unwrap())
        .collect();
    // And one with a flipped bit in its body: the CRC check must say so.
    let mut bad = bytes[0].clone();
    bad[5] ^= 0x10;
    bytes.push(bad);
    for (i, payload) in bytes.iter().enumerate() {
        let note = format!("packet {i}");
        writer
            .write(&Datagram {
                time: Duration::from_millis(i as u64),
                from,
                to,
                payload,
                fate: None,
                note: Some(&note),
            })
            .unwrap();
    }
    std::fs::write(&file, writer.into_inner().unwrap()).unwrap();
    let (_, read) = read_pcapng(&std::fs::read(&file).unwrap());
    let kinds = compare(&read, &decode(&file));
    assert_eq!(
        kinds,
        [
            "Raw",
            "Raw",
            "Hello",
            "Welcome",
            "Data",
            "Data",
            "Ack",
            "Ping",
            "Pong",
            "Close",
            "Close",
            "Bundle",
            "Fin",
            "Nick",
            "Probe",
            "ProbeAck",
            "Piece",
            "bad checksum"
        ]
    );
}

#[test]
fn tshark_decodes_a_lab_capture_with_its_fates() {
    if !tshark_available("tshark_decodes_a_lab_capture_with_its_fates") {
        return;
    }
    let dir = scratch_dir("tshark-lab");
    let base = dir.join("lab.pcapng");
    let mut lab = Proc::spawn(
        "lab",
        &[
            "lab",
            "--loss",
            "20%",
            "--modes",
            "raw,reliable",
            "--seeds",
            "1",
            "--seed",
            "3",
            "--messages",
            "8",
            "--corrupt",
            "10%",
            "--pcap",
            base.to_str().unwrap(),
        ],
    );
    assert_eq!(lab.exit_code(), 0);
    lab.drain(Pipe::Stderr);
    for (mode, nicks) in [("raw", vec!["a"]), ("reliable", vec!["a", "b"])] {
        let file = dir.join(format!("lab-loss20pct-indep-{mode}-seed3.pcapng"));
        let (_, packets) = read_pcapng(&std::fs::read(&file).unwrap());
        let layers = decode(&file);
        let kinds = compare(&packets, &layers);
        let comments: Vec<String> = packets.iter().filter_map(|p| p.comment.clone()).collect();
        assert!(
            comments.iter().any(|c| c.starts_with("dropped (loss)")),
            "{mode}"
        );
        assert!(
            comments.iter().any(|c| c.starts_with("delivered")),
            "{mode}"
        );
        assert!(comments.iter().any(|c| c.contains("corrupted (")), "{mode}");
        assert!(
            kinds.iter().any(|k| k == "bad checksum"),
            "{mode}: {kinds:?}"
        );
        let mut shown_nicks = Vec::new();
        for layer in &layers {
            let mut fields = BTreeMap::new();
            flatten(&layer["udpchat"], &mut fields);
            shown_nicks.extend(fields.remove("udpchat.nick").unwrap_or_default());
        }
        shown_nicks.sort();
        shown_nicks.dedup();
        assert_eq!(shown_nicks, nicks, "{mode}");
        if mode == "reliable" {
            for kind in ["Hello", "Welcome", "Data", "Ack"] {
                assert!(
                    kinds.iter().any(|k| k == kind),
                    "{mode} lacks {kind}: {kinds:?}"
                );
            }
        }
    }
}

#[test]
fn tshark_decodes_a_chat_capture_on_any_port() {
    if !tshark_available("tshark_decodes_a_chat_capture_on_any_port") {
        return;
    }
    let dir = scratch_dir("tshark-chat");
    let file = dir.join("chat.pcapng");
    let (mut bob, bob_addr) = Proc::chat(
        "bob",
        &[
            "--ui",
            "line",
            "--mode",
            "reliable",
            "--bind",
            "127.0.0.1:0",
            "--nick",
            "bob",
        ],
    );
    let peer = bob_addr.to_string();
    let (mut alice, _) = Proc::chat(
        "alice",
        &[
            "--ui",
            "line",
            "--mode",
            "reliable",
            "--bind",
            "127.0.0.1:0",
            "--peer",
            &peer,
            "--nick",
            "alice",
            "--pcap",
            file.to_str().unwrap(),
        ],
    );
    alice.send_line("hello");
    bob.expect_stdout("<alice> hello");
    alice.close_stdin();
    assert_eq!(alice.exit_code(), 0);
    bob.close_stdin();
    assert_eq!(bob.exit_code(), 0);
    let (_, packets) = read_pcapng(&std::fs::read(&file).unwrap());
    let kinds = compare(&packets, &decode(&file));
    for kind in ["Hello", "Welcome", "Data", "Ack", "Close"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
    }
    assert_eq!(kinds[0], "Hello", "{kinds:?}");
}
