//! The figures quoted in docs/lab.md and docs/tcp-vs-udp.md are the program's: every output shown
//! there follows a marker
//! naming the command that produces it, and this test reruns each command with the binary cargo
//! just built and compares. So the docs cannot drift from the program again (issue 15: the proxy
//! example once showed `forwarded=71` where the program said 74).
//!
//! A marker is an HTML comment (invisible when rendered) on its own line, followed by a fenced
//! block:
//!
//! - `<!-- cmd: udpchat ARGS -->`: the block is the command's whole stdout.
//! - `<!-- lines-of: udpchat ARGS -->`: each line of the block is a line of the command's
//!   stdout, in order (an excerpt: the rows of a table a paragraph talks about). Rewriting
//!   replaces each with the output line of the same loss, pattern and mode.
//! - `<!-- proxy: N datagrams through udpchat proxy --loss P --seed S -->`: the block is what
//!   the proxy prints on stderr, after the line with its (ephemeral) address, when stopped
//!   (Ctrl-C) after relaying N datagrams from one client to a silent server. The test predicts which datagrams the seed drops (the same model and seed
//!   derivation as the proxy) and waits for the last one to reach the server, so it knows the
//!   proxy has handled all N before it stops it.
//! - `<!-- example: simulate ARGS -->`: the block is a run of consecutive lines of the output of
//!   the library's `simulate` example (`cargo run -p udpchat-lab --example simulate -- ARGS`).
//!   Rewriting keeps its length and where it starts (the first line's first three words: time,
//!   side, event). Checked when the example is built (`cargo test` of udpchat-lab builds it;
//!   docs/regenerate.sh does), skipped with a note otherwise.
//!
//! A `udpchat lab ... --out DIR` command writes into a temporary directory instead, and its files
//! must equal those committed in DIR (results.json, results.csv and the charts).
//!
//! `UDPCHAT_DOCS=write` (what `docs/regenerate.sh --write` sets) rewrites the blocks and the
//! directories from the program instead of comparing: one command after a change that moves the
//! figures. Then read the prose around them: it quotes some of them too.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{udp_socket, Pipe, Proc};

/// One marked block of the document.
struct Block {
    /// `cmd`, `lines-of`, `proxy` or `example`.
    kind: String,
    /// What follows the kind in the marker.
    command: String,
    /// The block's lines (between the fences), as indices into the document's lines.
    first: usize,
    end: usize,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn writing() -> bool {
    std::env::var("UDPCHAT_DOCS").is_ok_and(|v| v == "write")
}

/// Finds every marker and the fenced block after it.
fn blocks(lines: &[String]) -> Vec<Block> {
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(inner) = line
            .trim()
            .strip_prefix("<!-- ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let Some((kind, command)) = inner.split_once(": ") else {
            continue;
        };
        if !["cmd", "lines-of", "proxy", "example"].contains(&kind) {
            continue;
        }
        let open = (i + 1..lines.len())
            .find(|&j| !lines[j].trim().is_empty())
            .filter(|&j| lines[j].starts_with("```"))
            .unwrap_or_else(|| panic!("line {}: no fenced block after the marker", i + 1));
        let close = (open + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .unwrap_or_else(|| panic!("line {}: the block never closes", open + 1));
        found.push(Block {
            kind: kind.to_owned(),
            command: command.to_owned(),
            first: open + 1,
            end: close,
        });
    }
    found
}

/// Runs `udpchat ARGS` to its end; returns stdout. `--out DIR` goes to a temporary directory,
/// which is compared with (or, when writing, copied to) DIR.
fn run_udpchat(command: &str) -> String {
    let mut args: Vec<String> = command
        .strip_prefix("udpchat ")
        .unwrap_or_else(|| panic!("not a udpchat command: {command}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let out = args.iter().position(|a| a == "--out").map(|i| i + 1);
    // One directory per run: the documents' tests run in parallel in this process.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = std::env::temp_dir().join(format!("udpchat-docs-{}-{run}", std::process::id()));
    let committed = out.map(|i| {
        let dir = repo().join(&args[i]);
        let _ = std::fs::remove_dir_all(&temp);
        args[i] = temp.to_string_lossy().into_owned();
        dir
    });
    let output = Command::new(support::udpchat_bin())
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{command}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(dir) = committed {
        same_files(&temp, &dir, command);
        let _ = std::fs::remove_dir_all(&temp);
    }
    stdout
}

/// Compares every file the run wrote with the committed one (or copies it there).
fn same_files(fresh: &Path, committed: &Path, command: &str) {
    let mut names: Vec<_> = std::fs::read_dir(fresh)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let new = std::fs::read_to_string(fresh.join(&name)).unwrap();
        let path = committed.join(&name);
        if writing() {
            std::fs::create_dir_all(committed).unwrap();
            std::fs::write(&path, new).unwrap();
            continue;
        }
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            old == new,
            "{} differs from what `{command}` writes now; run docs/regenerate.sh --write",
            path.display()
        );
    }
}

/// The proxy's final counters after relaying `n` datagrams (see the module documentation).
fn run_proxy(command: &str) -> String {
    let (n, rest) = command
        .split_once(" datagrams through udpchat proxy ")
        .unwrap_or_else(|| panic!("not a proxy marker: {command}"));
    let n: u64 = n.parse().unwrap();
    let flags: Vec<&str> = rest.split_whitespace().collect();
    let value = |flag: &str| {
        let i = flags.iter().position(|f| *f == flag).unwrap();
        flags[i + 1]
    };
    assert_eq!(flags.len(), 4, "only --loss and --seed: {command}");
    let loss: f64 = value("--loss")
        .trim_end_matches('%')
        .parse::<f64>()
        .unwrap()
        / 100.0;
    let seed: u64 = value("--seed").parse().unwrap();
    let dropped: BTreeSet<u64> = support::predicted_drops(loss, seed, n);
    assert!(
        !dropped.contains(&(n - 1)),
        "the seed drops the last datagram, so nothing shows that all {n} were handled: \
         choose another count"
    );

    let server = udp_socket();
    let forward = server.local_addr().unwrap().to_string();
    let mut args = vec!["proxy", "--listen", "127.0.0.1:0", "--forward", &forward];
    args.extend(["--stats-interval", "0"]);
    args.extend(&flags);
    let mut proxy = Proc::spawn("proxy", &args);
    let addr = proxy.listening_addr();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        client
            .send_to(format!("datagram {i}").as_bytes(), addr)
            .unwrap();
    }
    let last = format!("datagram {}", n - 1);
    while support::recv_datagram(&server).0 != last.as_bytes() {}
    proxy.interrupt();
    assert_eq!(proxy.exit_code(), 0);
    proxy.drain(Pipe::Stderr);
    // Everything after the line naming the (ephemeral) ports, whatever the wording.
    let lines = proxy.history(Pipe::Stderr);
    let start = lines
        .iter()
        .position(|l| l.starts_with("udpchat: listening on "))
        .unwrap_or_else(|| panic!("no listening line: {lines:?}"));
    lines[start + 1..].join("\n") + "\n"
}

/// The `simulate` example's output, if it has been built next to the binary.
fn run_example(command: &str) -> Option<String> {
    let mut words = command.split_whitespace();
    let name = words.next().unwrap();
    let bin = Path::new(support::udpchat_bin())
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    if !bin.is_file() {
        eprintln!(
            "note: {} is not built; its excerpt is not checked",
            bin.display()
        );
        return None;
    }
    let output = Command::new(bin).args(words).output().unwrap();
    assert!(output.status.success(), "{command}");
    Some(String::from_utf8(output.stdout).unwrap())
}

/// What identifies a table row (or the header) for rewriting an excerpt: its words up to the
/// mode (`10% burst8 reliable`, `loss mode`); for other lines, the first two words.
fn key(line: &str) -> Vec<&str> {
    const MODES: [&str; 13] = [
        "mode",
        "raw",
        "reliable",
        "unordered",
        "selective-repeat",
        "go-back-n",
        "stop-and-wait",
        "no-cc",
        "newreno",
        "cubic",
        "bbr",
        "tcp",
        "tcp-reno",
    ];
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.iter().position(|w| MODES.contains(w)) {
        Some(i) => words[..=i].to_vec(),
        None => words.into_iter().take(2).collect(),
    }
}

/// Checks (or rewrites) one excerpt against `output`; returns the block's new lines.
fn excerpt(block: &[String], output: &str, command: &str) -> Vec<String> {
    let out: Vec<&str> = output.lines().collect();
    if writing() {
        return block
            .iter()
            .map(|line| {
                out.iter()
                    .find(|o| key(o) == key(line))
                    .map_or_else(|| line.clone(), |o| (*o).to_owned())
            })
            .collect();
    }
    let mut at = 0;
    for line in block {
        match out[at..].iter().position(|o| o == line) {
            Some(i) => at += i + 1,
            None => panic!(
                "the document quotes a line `{command}` no longer prints (in this order):\n\
                 {line}\nIt prints:\n{output}\nRun docs/regenerate.sh --write."
            ),
        }
    }
    block.to_vec()
}

/// Checks (or rewrites) a run of consecutive output lines; returns the block's new lines.
fn slice(block: &[String], output: &str, command: &str) -> Vec<String> {
    let out: Vec<&str> = output.lines().collect();
    let first = block.first().map(String::as_str).unwrap_or_default();
    let start = out.iter().position(|o| *o == first).or_else(|| {
        let words = |l: &str| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        out.iter().position(|o| words(o) == words(first))
    });
    let found: Vec<String> = start
        .map(|i| {
            out[i..(i + block.len()).min(out.len())]
                .iter()
                .map(|l| (*l).to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        writing() || found == block,
        "the document quotes lines `{command}` no longer prints together:\n{}\nIt prints:\n{output}\n\
         Run docs/regenerate.sh --write.",
        block.join("\n")
    );
    if found.is_empty() {
        block.to_vec()
    } else {
        found
    }
}

#[test]
fn every_figure_quoted_in_docs_lab_md_is_what_its_command_prints() {
    check_document("docs/lab.md", 5);
}

/// The lesson's figures, tables and charts (docs/charts/tcp-vs-udp/) are the program's too.
#[test]
fn every_figure_quoted_in_docs_tcp_vs_udp_md_is_what_its_command_prints() {
    check_document("docs/tcp-vs-udp.md", 3);
}

/// Checks (or, when writing, rewrites) every marked block of the document at `name`, which must
/// have at least `min_blocks` of them.
fn check_document(name: &str, min_blocks: usize) {
    let path = repo().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let found = blocks(&lines);
    assert!(
        found.len() >= min_blocks,
        "{name} has {} marked blocks",
        found.len()
    );
    // From the last block up, so that rewriting one does not move those before it.
    for block in found.iter().rev() {
        let current = lines[block.first..block.end].to_vec();
        let new = match block.kind.as_str() {
            "cmd" | "proxy" => {
                let output = if block.kind == "cmd" {
                    run_udpchat(&block.command)
                } else {
                    run_proxy(&block.command)
                };
                let expected = current.join("\n") + "\n";
                assert!(
                    writing() || output == expected,
                    "{name} shows for `{}`:\n{expected}\nbut it prints:\n{output}\n\
                     Run docs/regenerate.sh --write.",
                    block.command
                );
                output.lines().map(str::to_owned).collect()
            }
            "lines-of" => excerpt(&current, &run_udpchat(&block.command), &block.command),
            _ => match run_example(&block.command) {
                Some(output) => slice(&current, &output, &block.command),
                None => current,
            },
        };
        lines.splice(block.first..block.end, new);
    }
    if writing() {
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
}
