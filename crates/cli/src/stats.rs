//! The chat's counters as a small table, showing only what the mode has.
//!
//! [`Stats`] is one struct for every mode, so raw mode carries reliable-only fields (congestion
//! window, retransmissions, RTT) that are always zero there, and printing them all would suggest
//! raw UDP has a window or resends. [`rows`] picks the rows the mode has: raw mode counts gaps
//! but never acknowledges, so it has no delivered/lost, RTT or retransmission rows; `--plain`
//! has no sequence numbers, so no gaps, duplicates or reordering either; reliable mode has no
//! gaps (it repairs them). Each row is a label and a few `word value` cells:
//!
//! ```text
//! messages     sent 3  received 2  delivered 3  lost 0
//! dropped      checksum 0  malformed 0  foreign 0  stale 0
//! ```
//!
//! The line UI prints it on stderr between a heading and an `end of stats` line (all start
//! `udpchat:` like every diagnostic), at the end with `--stats` and for each `/stats`; the chat screen shows
//! the same rows in its history. A script that wants every field reads `--format json` events
//! or the lab's JSON instead; the table is for people.

use std::fmt::Write as _;
use std::time::Duration;

use udpchat_driver::tcp::{KernelView, TcpStats};
use udpchat_reliable::Stats;

use crate::chat::Mode;

/// One row: its label and its `(word, value)` cells.
pub type Row = (&'static str, Vec<(&'static str, String)>);

/// The rows `mode` has (`plain`: raw mode's `--plain`), in reading order.
pub fn rows(stats: &Stats, mode: Mode, plain: bool) -> Vec<Row> {
    let n = |v: u64| v.to_string();
    let mut messages = vec![
        ("sent", n(stats.messages_sent)),
        ("received", n(stats.messages_received)),
    ];
    // TCP mode's unit on the wire is a frame in a byte stream, not a datagram.
    let unit = if mode == Mode::Tcp {
        "frames"
    } else {
        "datagrams"
    };
    if mode == Mode::Reliable {
        messages.push(("delivered", n(stats.messages_delivered)));
        messages.push(("lost", n(stats.messages_lost)));
    }
    let mut rows: Vec<Row> = vec![
        ("messages", messages),
        (
            unit,
            vec![
                ("sent", n(stats.datagrams_sent)),
                ("received", n(stats.datagrams_received)),
            ],
        ),
        (
            "bytes",
            vec![
                ("sent", n(stats.bytes_sent)),
                ("received", n(stats.bytes_received)),
            ],
        ),
    ];
    match mode {
        Mode::Raw if plain => {}
        Mode::Raw => rows.push((
            "arrivals",
            vec![
                ("gaps", n(stats.gaps)),
                ("duplicates", n(stats.duplicates)),
                ("reordered", n(stats.reordered)),
            ],
        )),
        Mode::Tcp => {}
        Mode::Reliable => rows.push((
            "arrivals",
            vec![
                ("duplicates", n(stats.duplicates)),
                ("reordered", n(stats.reordered)),
            ],
        )),
    }
    rows.push((
        "dropped",
        vec![
            ("checksum", n(stats.dropped_checksum)),
            ("malformed", n(stats.dropped_malformed)),
            ("foreign", n(stats.dropped_foreign)),
            ("stale", n(stats.dropped_stale)),
        ],
    ));
    // Encryption's own drops, when there were any (a plain chat never has them).
    if stats.dropped_replayed > 0 || stats.dropped_unauthenticated > 0 {
        rows.push((
            "refused",
            vec![
                ("replayed", n(stats.dropped_replayed)),
                ("unauthenticated", n(stats.dropped_unauthenticated)),
            ],
        ));
    }
    if mode == Mode::Reliable {
        rows.extend(reliable_rows(stats));
    }
    rows
}

/// What only the reliable transport has: retransmissions, RTT, windows, and redundancy when it
/// was used (by either side).
fn reliable_rows(stats: &Stats) -> Vec<Row> {
    let n = |v: u64| v.to_string();
    let mut rows: Vec<Row> = vec![
        (
            "retransmits",
            vec![
                ("timeout", n(stats.retransmits_timeout)),
                ("fast", n(stats.retransmits_fast)),
                ("spurious", n(stats.retransmits_spurious)),
            ],
        ),
        (
            "rtt",
            vec![
                ("min", ms(stats.rtt_min)),
                ("smoothed", ms(stats.rtt_smoothed)),
                ("variation", ms(stats.rtt_var)),
            ],
        ),
        (
            "windows",
            vec![
                ("congestion", n(stats.cwnd)),
                ("peer", n(stats.peer_window)),
            ],
        ),
        (
            "path",
            vec![
                ("mtu", n(stats.path_mtu)),
                ("black-holes", n(stats.pmtu_black_holes)),
            ],
        ),
    ];
    if stats.redundant_copies > 0 || stats.repaired_by_copy > 0 {
        rows.push((
            "redundancy",
            vec![
                ("copies", n(stats.redundant_copies)),
                ("repaired", n(stats.repaired_by_copy)),
            ],
        ));
    }
    rows
}

/// An RTT figure: `-` until there is a sample, else milliseconds with one decimal.
fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1}ms", d.as_secs_f64() * 1000.0),
    )
}

/// The cells of a row as one string: `sent 3  received 2`.
pub fn cells(cells: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    for (word, value) in cells {
        let sep = if out.is_empty() { "" } else { "  " };
        let _ = write!(out, "{sep}{word} {value}");
    }
    out
}

/// The table as the line UI prints it (each line then gets `udpchat: ` in front): a heading,
/// the rows with their labels aligned, and a last line that says where the table ends (so a
/// reader of a running chat's stderr knows it has the whole table).
pub fn lines(stats: &Stats, mode: Mode, plain: bool) -> Vec<String> {
    framed(rows(stats, mode, plain), mode, plain)
}

fn framed(rows: Vec<Row>, mode: Mode, plain: bool) -> Vec<String> {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    let mut out = vec![format!("stats ({} mode):", mode_name(mode, plain))];
    for (label, row) in &rows {
        out.push(format!("  {label:<width$}  {}", cells(row)));
    }
    out.push(END.to_owned());
    out
}

/// The last line of the line UI's table.
pub const END: &str = "end of stats";

fn mode_name(mode: Mode, plain: bool) -> &'static str {
    match (mode, plain) {
        (Mode::Raw, true) => "raw, plain",
        (Mode::Raw, false) => "raw",
        (Mode::Reliable, _) => "reliable",
        (Mode::Tcp, true) => "tcp, plain",
        (Mode::Tcp, false) => "tcp",
    }
}

/// TCP mode's rows: our counters, then what the kernel knows (`TCP_INFO`), or why it cannot
/// say. The kernel's figures are its own: RTT and its variation, the retransmission timeout,
/// segments retransmitted, the congestion window and the unacknowledged segments (all in
/// segments), and the send queue in bytes.
pub fn tcp_rows(stats: &TcpStats, plain: bool) -> Vec<Row> {
    let mut rows = rows(&stats.counters, Mode::Tcp, plain);
    let n = |v: u32| v.to_string();
    match &stats.kernel {
        KernelView::Known(info) => {
            rows.push((
                "kernel rtt",
                vec![
                    ("smoothed", kernel_time(info.rtt)),
                    ("variation", kernel_time(info.rttvar)),
                    ("rto", kernel_time(info.rto)),
                ],
            ));
            rows.push((
                "kernel",
                vec![
                    ("retransmits", n(info.retransmits)),
                    ("cwnd", n(info.cwnd)),
                    ("unacked", n(info.unacked)),
                    ("send-queue", format!("{}B", info.send_queue)),
                ],
            ));
        }
        other => rows.push(("kernel", vec![("TCP_INFO", kernel_note(other))])),
    }
    rows
}

/// A time the kernel counts in microseconds: below a millisecond (loopback, a LAN) in whole
/// microseconds, so it does not read as zero; above, in milliseconds with one decimal.
pub fn kernel_time(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{}µs", d.as_micros())
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    }
}

/// Why there are no kernel figures, in a few words.
pub fn kernel_note(view: &KernelView) -> String {
    match view {
        KernelView::Known(_) => "known".to_owned(),
        KernelView::NotConnected => "no connection yet".to_owned(),
        KernelView::Closed => "the connection is closed".to_owned(),
        KernelView::Unavailable { reason } => reason.clone(),
    }
}

/// [`tcp_rows`] as the line UI prints them (see [`lines`]).
pub fn tcp_lines(stats: &TcpStats, plain: bool) -> Vec<String> {
    framed(tcp_rows(stats, plain), Mode::Tcp, plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(rows: &[Row]) -> Vec<&'static str> {
        rows.iter().map(|(label, _)| *label).collect()
    }

    fn words(rows: &[Row]) -> Vec<&'static str> {
        rows.iter()
            .flat_map(|(_, cells)| cells.iter().map(|(w, _)| *w))
            .collect()
    }

    #[test]
    fn raw_mode_shows_no_reliable_only_counters() {
        let rows = rows(&Stats::default(), Mode::Raw, false);
        assert_eq!(
            labels(&rows),
            ["messages", "datagrams", "bytes", "arrivals", "dropped"]
        );
        let words = words(&rows);
        assert!(words.contains(&"gaps"));
        for reliable_only in ["delivered", "lost", "congestion", "timeout", "smoothed"] {
            assert!(!words.contains(&reliable_only), "{reliable_only}");
        }
    }

    #[test]
    fn plain_mode_has_no_sequence_number_counters() {
        let rows = rows(&Stats::default(), Mode::Raw, true);
        assert_eq!(labels(&rows), ["messages", "datagrams", "bytes", "dropped"]);
    }

    #[test]
    fn reliable_mode_shows_its_own_rows_and_redundancy_only_when_used() {
        let mut stats = Stats {
            messages_delivered: 4,
            retransmits_fast: 2,
            rtt_smoothed: Some(Duration::from_micros(12_345)),
            cwnd: 10,
            ..Stats::default()
        };
        let table = rows(&stats, Mode::Reliable, false);
        assert_eq!(
            labels(&table),
            [
                "messages",
                "datagrams",
                "bytes",
                "arrivals",
                "dropped",
                "retransmits",
                "rtt",
                "windows",
                "path"
            ]
        );
        assert!(!words(&table).contains(&"gaps"));
        stats.repaired_by_copy = 1;
        assert_eq!(
            labels(&rows(&stats, Mode::Reliable, false)).last(),
            Some(&"redundancy")
        );
        let printed = lines(&stats, Mode::Reliable, false);
        assert_eq!(printed[0], "stats (reliable mode):");
        assert_eq!(
            printed[1],
            "  messages     sent 0  received 0  delivered 4  lost 0"
        );
        assert!(printed.contains(&"  retransmits  timeout 0  fast 2  spurious 0".to_owned()));
        assert!(printed.contains(&"  rtt          min -  smoothed 12.3ms  variation -".to_owned()));
        assert_eq!(printed.last().map(String::as_str), Some(END));
    }

    #[test]
    fn tcp_mode_shows_frames_and_the_kernels_figures_or_why_not() {
        let info = udpchat_driver::tcp::TcpInfo {
            rtt: Duration::from_micros(1_250),
            rttvar: Duration::from_micros(500),
            rto: Duration::from_millis(201),
            retransmits: 2,
            cwnd: 10,
            unacked: 1,
            send_queue: 40,
            bytes_acked: 100,
        };
        let known = TcpStats {
            counters: Stats::default(),
            kernel: KernelView::Known(info),
        };
        let table = tcp_rows(&known, false);
        assert_eq!(
            labels(&table),
            [
                "messages",
                "frames",
                "bytes",
                "dropped",
                "kernel rtt",
                "kernel"
            ]
        );
        for udp_only in ["delivered", "lost", "gaps", "congestion"] {
            assert!(!words(&table).contains(&udp_only), "{udp_only}");
        }
        let printed = tcp_lines(&known, false);
        assert_eq!(printed[0], "stats (tcp mode):");
        assert!(
            printed.contains(
                &"  kernel      retransmits 2  cwnd 10  unacked 1  send-queue 40B".to_owned()
            ),
            "{printed:#?}"
        );
        let elsewhere = TcpStats {
            counters: Stats::default(),
            kernel: KernelView::Unavailable {
                reason: "not available on this platform".into(),
            },
        };
        assert_eq!(
            tcp_rows(&elsewhere, true).last().map(|(_, c)| cells(c)),
            Some("TCP_INFO not available on this platform".to_owned())
        );
    }
}
