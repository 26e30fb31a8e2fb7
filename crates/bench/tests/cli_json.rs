//! Runs the real `udpchat-bench --quick --format json` and checks the documented schema, and that
//! the reliable systems delivered what the workloads sent.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

const SYSTEMS: [&str; 13] = [
    "udpchat",
    "udpchat-redundancy3",
    "udpchat-newreno",
    "udpchat-cubic",
    "udpchat-bbr",
    "kcp-fast",
    "kcp-default",
    "quic",
    "quic-bbr",
    "tcp",
    "tcp-reno",
    "raw-udp",
    "null-endpoints",
];

fn figure_keys(workload: &str) -> &'static [&'static str] {
    match workload {
        "chat" => &["rtt_avg_ms", "rtt_p50_ms", "rtt_p99_ms", "rtt_max_ms"],
        "bulk" => &["goodput_mbps", "wire_bytes_per_byte", "completion_ms"],
        "dead-peer" => &["detect_ms", "detect_echo_ms"],
        "loopback" => &["msgs_per_s", "mb_per_s", "message_bytes"],
        "sim" => &["events_per_s"],
        "fairness" => &["jain_index"],
        other => panic!("unknown workload {other}"),
    }
}

const ALL_FIGURES: [&str; 14] = [
    "rtt_avg_ms",
    "rtt_p50_ms",
    "rtt_p99_ms",
    "rtt_max_ms",
    "completion_ms",
    "goodput_mbps",
    "wire_bytes_per_byte",
    "detect_ms",
    "detect_echo_ms",
    "msgs_per_s",
    "mb_per_s",
    "message_bytes",
    "events_per_s",
    "jain_index",
];

/// The fairness rows' own keys, present there only.
const FAIRNESS_KEYS: [&str; 4] = ["competitor", "flow_mbps", "shares", "window_s"];

#[test]
fn quick_json_has_the_documented_schema() {
    let output = Command::new(env!("CARGO_BIN_EXE_udpchat-bench"))
        .args(["--quick", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    for crate_name in ["kcp", "quinn-proto", "smoltcp"] {
        let version = doc["versions"][crate_name].as_str().unwrap();
        assert!(
            version.chars().next().unwrap().is_ascii_digit(),
            "{crate_name} {version}"
        );
    }
    assert_eq!(doc["quick"], Value::Bool(true));
    let results = doc["results"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    for row in results {
        let system = row["system"].as_str().unwrap();
        let workload = row["workload"].as_str().unwrap();
        assert!(SYSTEMS.contains(&system), "{row}");
        let loss = row["loss"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&loss), "{row}");
        for key in figure_keys(workload) {
            let value = &row[*key];
            assert!(value.is_number() || value.is_null(), "{key} in {row}");
        }
        for key in ALL_FIGURES {
            if !figure_keys(workload).contains(&key) {
                assert!(row.get(key).is_none(), "{key} should be absent in {row}");
            }
        }
        for key in FAIRNESS_KEYS {
            assert_eq!(
                row.get(key).is_some(),
                workload == "fairness",
                "{key} in {row}"
            );
        }
        seen.insert((workload.to_owned(), system.to_owned()));
    }
    // Every simulated system in every simulated workload (QUIC with Cubic and with BBR), the
    // tuned udpchat in chat only, and both loopback systems.
    for workload in ["chat", "bulk", "dead-peer"] {
        for system in [
            "udpchat",
            "kcp-fast",
            "kcp-default",
            "quic",
            "quic-bbr",
            "tcp",
            "tcp-reno",
        ] {
            assert!(
                seen.contains(&(workload.to_owned(), system.to_owned())),
                "{workload} {system}"
            );
        }
        assert_eq!(
            seen.contains(&(workload.to_owned(), "udpchat-redundancy3".to_owned())),
            workload == "chat",
            "{workload}"
        );
        // One row per controller in chat and bulk.
        for system in ["udpchat-newreno", "udpchat-cubic", "udpchat-bbr"] {
            assert_eq!(
                seen.contains(&(workload.to_owned(), system.to_owned())),
                workload != "dead-peer",
                "{workload} {system}"
            );
        }
    }
    for system in ["udpchat", "raw-udp"] {
        assert!(seen.contains(&("loopback".to_owned(), system.to_owned())));
    }
    // 11 systems x 6 chat links, 10 x 4 bulk losses, 7 dead-peer, 2 x 2 loopback, 1 sim,
    // 3 fairness pairs.
    assert_eq!(results.len(), 66 + 40 + 7 + 4 + 1 + 3);

    let rows = |workload: &str| {
        results
            .iter()
            .filter(move |r| r["workload"] == workload)
            .collect::<Vec<_>>()
    };
    // The reliable systems delivered everything the simulated workloads sent.
    for row in rows("chat").into_iter().chain(rows("bulk")) {
        if row["system"] != "kcp-default" {
            assert_eq!(row["delivered"], row["expected"], "{row}");
            assert!(row["rtt_max_ms"].is_number() || row["goodput_mbps"].is_number());
        }
    }
    // udpchat over a real socket loses nothing, and says how fast.
    for row in rows("loopback") {
        if row["system"] == "udpchat" {
            assert_eq!(row["delivered"], row["expected"], "{row}");
            assert!(row["msgs_per_s"].as_f64().unwrap() > 0.0);
        }
    }
    // The simulator's own rate: every datagram of its workload is one event, and it has a rate.
    let sim = rows("sim");
    assert_eq!(sim.len(), 1);
    assert_eq!(sim[0]["system"], "null-endpoints");
    assert_eq!(sim[0]["delivered"], sim[0]["expected"], "{}", sim[0]);
    assert!(sim[0]["events_per_s"].as_f64().unwrap() > 0.0);
    // Fairness: udpchat with itself and with QUIC-Cubic, QUIC with itself; two shares each, of
    // a link they cannot exceed together.
    let pairs: Vec<(String, String)> = rows("fairness")
        .into_iter()
        .map(|r| {
            let shares: Vec<f64> = r["shares"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_f64().unwrap())
                .collect();
            assert_eq!(shares.len(), 2, "{r}");
            assert!(shares.iter().all(|s| *s > 0.0) && shares.iter().sum::<f64>() <= 1.0);
            assert_eq!(r["flow_mbps"].as_array().unwrap().len(), 2, "{r}");
            let jain = r["jain_index"].as_f64().unwrap();
            assert!((0.5..=1.0).contains(&jain), "{r}");
            (r["system"].to_string(), r["competitor"].to_string())
        })
        .collect();
    let pair = |a: &str, b: &str| (format!("\"{a}\""), format!("\"{b}\""));
    assert_eq!(
        pairs,
        [
            pair("udpchat", "udpchat"),
            pair("udpchat", "quic"),
            pair("quic", "quic")
        ]
    );
    // Every system that detects a dead peer says so after the darkness began.
    let udpchat = rows("dead-peer")
        .into_iter()
        .find(|r| r["system"] == "udpchat")
        .unwrap();
    assert!(udpchat["detect_ms"].as_f64().unwrap() > 0.0);
    let bbr = rows("dead-peer")
        .into_iter()
        .find(|r| r["system"] == "quic-bbr")
        .unwrap();
    assert!(bbr["detect_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_bad_workload_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_udpchat-bench"))
        .args(["--workload", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nonsense"));
}
