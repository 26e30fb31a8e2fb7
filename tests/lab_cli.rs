//! End-to-end tests of `udpchat lab`: the real binary, small sweeps (100-200 messages, two loss
//! rates) so each run takes well under a second even in a debug build.
//!
//! They check what a user relies on: the table shows raw delivery falling with loss while reliable
//! stays at 100%; the same flags and seed give byte-identical `results.json` (and its `command`
//! reproduces it); CSV parses; JSON has the documented schema; `--out` writes well-formed SVG with
//! the expected series; `--modes` takes the ARQ schemes; `--ladder` draws the diagram with only
//! the acks that answer its messages and a legend of its marks, and docs/lab.md shows exactly
//! what its command prints; bad flags are usage errors.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{Pipe, Proc};

/// The small sweep every test starts from.
const SMALL: &[&str] = &[
    "lab",
    "--messages",
    "100",
    "--loss",
    "0,20%",
    "--seeds",
    "2",
];

/// Runs `udpchat` with `args`; returns the exit code, stdout and stderr.
fn udpchat(args: &[&str]) -> (i32, String, String) {
    let mut proc = Proc::spawn("lab", args);
    let code = proc.exit_code();
    let stdout = proc.drain(Pipe::Stdout).join("\n");
    let stderr = proc.drain(Pipe::Stderr).join("\n");
    (code, stdout, stderr)
}

fn lab(extra: &[&str]) -> String {
    let args: Vec<&str> = SMALL.iter().chain(extra).copied().collect();
    let (code, stdout, stderr) = udpchat(&args);
    assert_eq!(code, 0, "udpchat {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udpchat-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The table's cells for `loss` and `mode`, split on runs of spaces.
fn table_row<'a>(table: &'a str, loss: &str, mode: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.len() > 2 && cells[0] == loss && cells[1] == mode)
        .unwrap_or_else(|| panic!("no row for {loss} {mode} in:\n{table}"))
}

#[test]
fn the_table_shows_raw_falling_with_loss_and_reliable_at_100_percent() {
    let table = lab(&[]);
    assert!(table.contains("delivered"), "{table}");
    assert_eq!(table_row(&table, "0%", "raw")[2], "100.00%");
    let raw_lossy = table_row(&table, "20%", "raw")[2];
    let raw_ratio: f64 = raw_lossy
        .split('±')
        .next()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(raw_ratio < 95.0 && raw_ratio > 60.0, "{table}");
    assert_eq!(table_row(&table, "0%", "reliable")[2], "100.00%");
    assert_eq!(table_row(&table, "20%", "reliable")[2], "100.00%");
    // The cost column: reliable sent more datagrams per message than raw did.
    assert!(
        table.contains("dgrams/msg") && table.contains("theory"),
        "{table}"
    );
}

#[test]
fn same_flags_and_seed_give_identical_results_json_and_its_command_reruns_it() {
    let (one, two, other) = (temp_dir("same1"), temp_dir("same2"), temp_dir("other"));
    lab(&["--out", one.to_str().unwrap()]);
    lab(&["--out", two.to_str().unwrap()]);
    lab(&["--out", other.to_str().unwrap(), "--seed", "7"]);
    let read = |dir: &Path| std::fs::read_to_string(dir.join("results.json")).unwrap();
    let first = read(&one);
    assert_eq!(first, read(&two));
    assert_ne!(first, read(&other), "another seed, other losses");

    // The stored command line runs the same experiment again.
    let json: Value = serde_json::from_str(&first).unwrap();
    let command = json["command"].as_str().unwrap();
    let args: Vec<&str> = command
        .strip_prefix("udpchat ")
        .unwrap()
        .split(' ')
        .collect();
    let (code, rerun, stderr) = udpchat(&[args.as_slice(), &["--format", "json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rerun.trim_end(), first.trim_end());
    for dir in [one, two, other] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The lab takes the link flags chat and proxy take (one declaration serves all three), and its
/// stored command names each one given, so a rerun is the same experiment.
#[test]
fn the_shared_link_flags_reach_the_lab_and_its_command_reruns_them() {
    let knobs = [
        "--no-jitter-reorder",
        "--corrupt",
        "2%",
        "--corrupt-bits",
        "3",
        "--rate",
        "1mbit",
        "--queue",
        "20",
        "--limit",
        "500",
        "--format",
        "json",
    ];
    let first = lab(&knobs);
    let json: Value = serde_json::from_str(&first).unwrap();
    let link = &json["config"]["link"];
    assert_eq!(link["jitter_reorders"], false, "{link}");
    assert_eq!(link["corrupt_bits"], 3, "{link}");
    assert_eq!(link["limit"], 500, "{link}");
    let command = json["command"].as_str().unwrap();
    for part in [
        "--no-jitter-reorder",
        "--corrupt-bits 3",
        "--queue 20p",
        "--limit 500",
    ] {
        assert!(command.contains(part), "{command}");
    }
    let args: Vec<&str> = command
        .strip_prefix("udpchat ")
        .unwrap()
        .split(' ')
        .collect();
    let (code, rerun, stderr) = udpchat(&[args.as_slice(), &["--format", "json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rerun.trim_end(), first.trim_end());
}

/// `--mtu` puts a path MTU on the simulator's links: a raw line whose datagram is larger is
/// dropped (raw mode has no discovery and no fragments to fall back on), one that fits is not,
/// and the stored command reruns the same experiment.
#[test]
fn mtu_drops_datagrams_above_it_and_its_command_reruns_it() {
    // A 100-byte line is a datagram of about 120 bytes.
    let table = lab(&["--modes", "raw", "--size", "100", "--mtu", "110"]);
    assert_eq!(table_row(&table, "0%", "raw")[2], "0.00%", "{table}");
    let table = lab(&["--modes", "raw", "--size", "100", "--mtu", "200"]);
    assert_eq!(table_row(&table, "0%", "raw")[2], "100.00%", "{table}");
    let first = lab(&["--mtu", "1280", "--format", "json"]);
    let json: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(json["config"]["mtu"], 1280);
    let command = json["command"].as_str().unwrap();
    assert!(command.contains("--mtu 1280"), "{command}");
    let args: Vec<&str> = command
        .strip_prefix("udpchat ")
        .unwrap()
        .split(' ')
        .collect();
    let (code, rerun, stderr) = udpchat(&[args.as_slice(), &["--format", "json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rerun.trim_end(), first.trim_end());
    // A path MTU is the simulator's: with real sockets it is a usage error, not ignored.
    let (code, _, stderr) = udpchat(&["lab", "--real", "--mtu", "1280"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn csv_output_parses_with_one_record_per_point_and_mode() {
    let text = lab(&["--format", "csv"]);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    for column in [
        "loss",
        "pattern",
        "mode",
        "seeds",
        "delivery_ratio",
        "delivery_ratio_ci95",
        "setup_ms",
        "setup_ms_seed_max",
        "latency_p99_ms",
        "latency_p99_ms_seed_min",
        "latency_p99_ms_seed_max",
        "retransmits_fast",
        "goodput_kbps",
        "wire_per_byte",
        "theory_ok",
    ] {
        assert!(
            headers.iter().any(|h| h == column),
            "{column} in {headers:?}"
        );
    }
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 4);
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for record in &records {
        assert_eq!(record.len(), headers.len());
        let ratio: f64 = record[column("delivery_ratio")].parse().unwrap();
        assert!((0.0..=1.0).contains(&ratio));
        if &record[column("mode")] == "reliable" {
            assert_eq!(ratio, 1.0);
        }
        assert_eq!(&record[column("seeds")], "2");
        // Raw mode has no handshake, so no setup time; reliable mode always has one.
        let setup = &record[column("setup_ms")];
        if &record[column("mode")] == "raw" {
            assert_eq!(setup, "");
        } else {
            assert!(setup.parse::<f64>().unwrap() > 0.0, "{setup}");
        }
    }
}

#[test]
fn json_output_has_the_documented_schema() {
    let text = lab(&["--format", "json"]);
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["schema"], "udpchat-lab-results/3");
    assert!(json["version"].is_string());
    assert_eq!(json["engine"], "simulator");
    assert!(json["command"]
        .as_str()
        .unwrap()
        .starts_with("udpchat lab "));
    assert_eq!(json["seeds"], serde_json::json!([1, 2]));
    assert_eq!(json["confidence"], 0.95);
    let config = &json["config"];
    assert_eq!(config["messages"], 100);
    assert_eq!(config["losses"], serde_json::json!([0.0, 0.2]));
    assert_eq!(config["modes"], serde_json::json!(["raw", "reliable"]));
    assert_eq!(config["interval"], 10.0);
    assert!(config["link"]["delay"].is_object());
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert!(row["loss"].is_number());
        assert_eq!(row["pattern"]["kind"], "independent");
        let metrics = &row["metrics"];
        for name in [
            "delivery_ratio",
            "duplicates",
            "out_of_order",
            "datagrams_per_delivered",
            "transmissions_per_message",
            "retransmits_timeout",
            "retransmits_fast",
            "retransmits_spurious",
            "goodput_kbps",
            "wire_per_byte",
        ] {
            let m = &metrics[name];
            assert!(m["mean"].is_number(), "{name}: {m}");
            assert!(m["ci95"].is_number(), "{name}: {m}");
            assert_eq!(m["values"].as_array().unwrap().len(), 2, "{name}");
        }
        // Times are percentiles of both seeds' samples pooled, with the per-seed values beside.
        for name in [
            "setup_ms",
            "latency_min_ms",
            "latency_p50_ms",
            "latency_p90_ms",
            "latency_p99_ms",
            "latency_max_ms",
        ] {
            let m = &metrics[name];
            assert_eq!(m["values"].as_array().unwrap().len(), 2, "{name}");
            if name == "setup_ms" && row["mode"] == "raw" {
                assert!(m["pooled"].is_null(), "{name}: {m}");
                continue;
            }
            let pooled = m["pooled"].as_f64().unwrap();
            let (min, max) = (
                m["seed_min"].as_f64().unwrap(),
                m["seed_max"].as_f64().unwrap(),
            );
            assert!(min <= max, "{name}: {m}");
            // A pooled median lies within the range of the seeds' own medians.
            if name == "latency_p50_ms" || name == "setup_ms" {
                assert!(min <= pooled && pooled <= max, "{name}: {m}");
            }
        }
        // Head-of-line blocking applies to ordered delivery, not to raw mode.
        let hol = &metrics["hol_blocked_ratio"];
        assert_eq!(hol["values"].as_array().unwrap().len(), 2);
        assert_eq!(hol["mean"].is_null(), row["mode"] == "raw", "{hol}");
        for name in ["hol_wait_p50_ms", "hol_wait_max_ms"] {
            assert!(metrics[name]["values"].is_array(), "{name}");
        }
        let runs = row["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["seed"], 1);
        assert!(runs[0]["hol_blocked"].is_null() == (row["mode"] == "raw"));
        for check in row["theory"].as_array().unwrap() {
            assert!(
                check["check"].is_string() && check["ok"].is_boolean(),
                "{check}"
            );
            assert!(check["expected"].is_number() && check["measured"].is_number());
            // The accepted range is in the JSON, and the verdict is the measurement's place in it.
            let measured = check["measured"].as_f64().unwrap();
            let within = measured >= check["accepted_min"].as_f64().unwrap() - 1e-9
                && check["accepted_max"]
                    .as_f64()
                    .is_none_or(|max| measured <= max + 1e-9);
            assert_eq!(check["ok"].as_bool(), Some(within), "{check}");
        }
    }
    assert!(json["warnings"].is_array());
}

#[test]
fn out_writes_well_formed_svg_charts_with_every_series() {
    let dir = temp_dir("svg");
    lab(&["--out", dir.to_str().unwrap()]);
    let expected: [(&str, &[&str]); 4] = [
        (
            "delivery.svg",
            &["raw", "reliable", "theory: 1-p", "delivered / sent (%)"],
        ),
        ("latency.svg", &["raw", "reliable", "p50 (median)", "p99"]),
        (
            "overhead.svg",
            &[
                "raw",
                "reliable",
                "theory: 1/(1-p)",
                "Data sends per message",
            ],
        ),
        // Raw mode never holds a message back: only reliable has a series.
        (
            "hol.svg",
            &["reliable", "Messages held back", "Their median wait"],
        ),
    ];
    for (file, series) in expected {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "text")
            .map(|n| n.text().unwrap_or("").trim().to_owned())
            .collect();
        for name in series {
            assert!(
                texts.iter().any(|t| t == name),
                "{file} lacks {name:?}: {texts:?}"
            );
        }
        // Lines were drawn: at least one polyline per series.
        let lines = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "polyline")
            .count();
        assert!(lines >= 2, "{file}: {lines} polylines");
    }
    for name in ["results.json", "results.csv"] {
        assert!(dir.join(name).is_file(), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn modes_take_the_arq_schemes_and_show_what_each_costs() {
    let text = lab(&[
        "--modes",
        "stop-and-wait,go-back-n,selective-repeat",
        "--format",
        "json",
    ]);
    let json: Value = serde_json::from_str(&text).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let modes: Vec<&str> = rows.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(
        modes,
        [
            "stop-and-wait",
            "go-back-n",
            "selective-repeat",
            "stop-and-wait",
            "go-back-n",
            "selective-repeat"
        ]
    );
    let at = |loss: f64, mode: &str| {
        rows.iter()
            .find(|r| r["loss"] == loss && r["mode"] == mode)
            .unwrap()
    };
    for row in rows {
        assert_eq!(
            row["metrics"]["delivery_ratio"]["mean"], 1.0,
            "{}",
            row["mode"]
        );
    }
    // One packet per round trip cannot keep up with a message every 10 ms: stop-and-wait's
    // median latency is far above selective repeat's, even on a perfect link.
    let p50 = |loss, mode| {
        at(loss, mode)["metrics"]["latency_p50_ms"]["pooled"]
            .as_f64()
            .unwrap()
    };
    assert!(p50(0.0, "stop-and-wait") > 2.0 * p50(0.0, "selective-repeat"));
}

#[test]
fn ladder_draws_the_first_messages_of_one_run() {
    let (code, text, stderr) = udpchat(&[
        "lab",
        "--ladder",
        "4",
        "--loss",
        "30%",
        "--modes",
        "reliable",
        "--seed",
        "3",
        "--messages",
        "20",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.starts_with("ladder: reliable, loss 30%"), "{text}");
    assert!(text.contains("hello"), "{text}");
    assert!(text.contains("dropped (loss)"), "{text}");
    for id in 0..4 {
        assert!(
            text.contains(&format!("B's app gets message #{id}")),
            "{text}"
        );
    }
    assert!(!text.contains("gets message #4"), "{text}");
}

/// The command docs/lab.md shows beside its ladder.
const DOC_LADDER: &[&str] = &[
    "lab", "--ladder", "8", "--loss", "20%", "--modes", "reliable",
];

/// The lines of a ladder's diagram: after the column header, before the legend.
fn diagram_lines(text: &str) -> Vec<&str> {
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("time  A"))
        .skip(1)
        .take_while(|l| *l != "legend:")
        .collect()
}

#[test]
fn ladder_draws_only_the_acks_that_answer_the_chosen_messages_and_explains_its_marks() {
    let (code, text, stderr) = udpchat(DOC_LADDER);
    assert_eq!(code, 0, "{stderr}");
    let lines = diagram_lines(&text);
    assert!(!lines.is_empty(), "{text}");
    // Each ack that reached A is drawn only if it told A about one of s0..s7 for the first time,
    // so at most eight of them; the run's other acks (answering later messages) are not drawn.
    let arrived_acks = lines
        .iter()
        .filter(|l| l.contains(" ack ") && (l.contains("|<-") || l.contains("|<~")))
        .count();
    assert!((1..=8).contains(&arrived_acks), "{text}");
    assert!(!lines.iter().any(|l| l.contains(" m8")), "{text}");
    // The legend follows the diagram and explains every arrow drawn, "late" included.
    let legend: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "legend:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    let legend = legend.join("\n");
    for (drawn, explained) in [
        (
            "~>|",
            "  ~>  <~           arrived late: a datagram sent after it on the same link",
        ),
        ("|<-", "  ->  <-           arrived"),
        ("X", "  X                lost on the link"),
        (" ack ", "  ack 4 sack 6-7 … B's ack"),
        (" data s", "  data s5 m4 1/2   A's data packet"),
        (
            "timer handshake",
            "  timer handshake  A's hello went unanswered",
        ),
    ] {
        assert!(lines.iter().any(|l| l.contains(drawn)), "{drawn}: {text}");
        assert!(legend.contains(explained), "{explained}: {text}");
    }
    // A mark not drawn is not explained (and one drawn is).
    for (drawn, explained) in [(" RESEND ", "  RESEND "), (" dup", "  dup")] {
        assert_eq!(
            lines.iter().any(|l| l.contains(drawn)),
            legend.contains(explained),
            "{drawn}: {text}"
        );
    }
    assert!(text.ends_with("fast retransmits\n") || text.ends_with("fast retransmits"));
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    let (code, _, stderr) = udpchat(&["lab", "--modes", "kcp"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown mode"), "{stderr}");
    let (code, _, stderr) = udpchat(&["lab", "--loss", "120%"]);
    assert_eq!(code, 2, "{stderr}");
    // A sweep that cannot run is a usage error too, shown with lab's usage.
    let (code, _, stderr) = udpchat(&["lab", "--size", "2"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--size"), "{stderr}");
    assert!(stderr.contains("Usage: udpchat lab"), "{stderr}");
    let (code, _, stderr) = udpchat(&["lab", "--burst", "0.5"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn real_mode_runs_the_sweep_over_loopback_with_the_same_columns() {
    let (code, text, stderr) = udpchat(&[
        "lab",
        "--real",
        "--messages",
        "40",
        "--interval",
        "5ms",
        "--loss",
        "0,20%",
        "--seeds",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["engine"], "real");
    assert!(json["command"].as_str().unwrap().ends_with(" --real"));
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        let delivered = row["metrics"]["delivery_ratio"]["mean"].as_f64().unwrap();
        match row["mode"].as_str().unwrap() {
            "reliable" => assert_eq!(delivered, 1.0, "{row}"),
            _ if row["loss"] == 0.0 => assert_eq!(delivered, 1.0, "{row}"),
            // 40 messages all surviving 20% loss: probability 0.8^40 = 1.3e-4.
            _ => assert!(delivered < 1.0, "{row}"),
        }
        // The proxy's 20 ms ± 5 ms delay is real.
        assert!(row["metrics"]["latency_min_ms"]["pooled"].as_f64().unwrap() >= 15.0);
    }
}

/// The table shows connection setup in its own column (`-` for raw mode, which has none), every
/// time in milliseconds whatever its size (no `s` suffix in a column headed `ms`), and beside
/// each theory its accepted range and verdict, as results.json has them.
#[test]
fn the_table_shows_setup_one_unit_per_column_and_theory_verdicts() {
    let args = [
        "lab",
        "--loss",
        "0,30%",
        "--messages",
        "200",
        "--seeds",
        "2",
    ];
    let (code, table, stderr) = udpchat(&args);
    assert_eq!(code, 0, "{stderr}");
    let header = table
        .lines()
        .find(|l| l.starts_with("loss"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(header.contains("setup ms med/max"), "{header}");
    assert!(header.contains("latency p50/p90/p99/max ms"), "{header}");
    assert!(header.contains("accepted range, verdict"), "{header}");
    for loss in ["0%", "30%"] {
        let raw = table_row(&table, loss, "raw");
        assert_eq!(raw[5], "-", "{table}");
        let reliable = table_row(&table, loss, "reliable");
        let (median, max) = reliable[5].split_once('/').unwrap();
        assert!(median.parse::<f64>().unwrap() <= max.parse::<f64>().unwrap());
        for latency in reliable[6].split('/') {
            latency
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{latency:?} is not a number of ms: {table}"));
        }
        // Every row's theory ends with its verdict; a passing check shows `[range] ok`.
        for row in [raw, reliable] {
            let theory = row[row.len() - 3..].join(" ");
            assert!(
                theory.contains('[') && theory.ends_with("] ok"),
                "{theory}: {table}"
            );
        }
    }
}

/// `--out` is checked before the sweep: a directory that cannot be made fails at once, with
/// nothing printed on stdout (the table would come after the sweep), exit code 1.
#[test]
fn an_unwritable_out_directory_fails_before_the_sweep() {
    let (code, stdout, stderr) = udpchat(&["lab", "--out", "/proc/nope/results"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "the sweep ran: {stdout}");
    assert!(stderr.contains("/proc/nope/results"), "{stderr}");
    assert!(!stderr.contains("runs in"), "{stderr}");
    // A path that is a file, not a directory, likewise.
    let file = temp_dir("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let (code, stdout, stderr) = udpchat(&["lab", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "the sweep ran: {stdout}");
    assert!(stderr.contains("output directory"), "{stderr}");
    let _ = std::fs::remove_file(file);
    // A directory that can be written keeps no trace of the check.
    let dir = temp_dir("checked");
    lab(&["--out", dir.to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// TCP (smoltcp) runs beside raw and reliable on the same seeded links: every message arrives
/// at 0 and 20% loss, the run is byte-identical when repeated, and head-of-line blocking shows
/// for the ordered modes (reliable, tcp) and never for unordered delivery.
#[test]
fn modes_take_tcp_beside_raw_and_reliable_and_rerun_byte_identical() {
    let args = [
        "--modes",
        "raw,reliable,unordered,tcp,tcp-reno",
        "--format",
        "json",
    ];
    let text = lab(&args);
    assert_eq!(text, lab(&args), "a rerun must give the same bytes");
    let json: Value = serde_json::from_str(&text).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    let at = |loss: f64, mode: &str| {
        &rows
            .iter()
            .find(|r| r["loss"] == loss && r["mode"] == mode)
            .unwrap_or_else(|| panic!("no row {loss} {mode}"))["metrics"]
    };
    for mode in ["tcp", "tcp-reno"] {
        for loss in [0.0, 0.2] {
            assert_eq!(
                at(loss, mode)["delivery_ratio"]["mean"],
                1.0,
                "{mode} {loss}"
            );
        }
        assert!(at(0.2, mode)["hol_blocked_ratio"]["mean"].as_f64().unwrap() > 0.0);
        // TCP's handshake is a round trip, like reliable mode's.
        assert!(at(0.0, mode)["setup_ms"]["pooled"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(at(0.2, "unordered")["hol_blocked_ratio"]["mean"], 0.0);
    assert!(
        at(0.2, "reliable")["hol_blocked_ratio"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(at(0.2, "raw")["hol_blocked_ratio"]["mean"].is_null());
    // The table names the modes too.
    let table = lab(&["--modes", "tcp,tcp-reno"]);
    table_row(&table, "20%", "tcp");
    table_row(&table, "20%", "tcp-reno");
}

#[test]
fn ladder_draws_tcp_segments_acks_and_resends() {
    let (code, text, stderr) = udpchat(&[
        "lab",
        "--ladder",
        "6",
        "--loss",
        "20%",
        "--modes",
        "tcp",
        "--seed",
        "2",
        "--messages",
        "30",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.starts_with("ladder: tcp, loss 20%"), "{text}");
    for part in [
        "SYN",
        "SYN ACK",
        "seq 1-",
        "ack ",
        "B's app gets message #5",
        "legend:",
    ] {
        assert!(text.contains(part), "{part}:\n{text}");
    }
    assert!(!text.contains("opaque"), "{text}");
}

#[test]
fn real_refuses_the_simulator_only_tcp_modes_in_one_line() {
    let (code, _, stderr) = udpchat(&["lab", "--real", "--modes", "tcp", "--messages", "10"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--real cannot run the tcp mode"),
        "{stderr}"
    );
}
