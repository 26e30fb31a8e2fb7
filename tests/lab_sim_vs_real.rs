//! The simulator against reality: `udpchat lab` on one small sweep, once in the simulator and once
//! with `--real` (two loopback sockets and the impairment proxy, real timers), must agree on what
//! a user reads off the table: delivery, transmissions per message and median latency.
//!
//! The two engines do not see the same fates (the proxy draws its own, and which datagrams are
//! offered when depends on real timing), so they are independent samples of the same link, and
//! the test compares them as such. The simulator runs the sweep with 20 seeds (it is cheap, and
//! its spread across seeds is what a real run must fall within); the real run with 2 (its runs
//! take real time). `n` below is messages × seeds of each engine.
//!
//! - **Delivery**: reliable modes deliver everything in both, and raw mode on a clean link too
//!   (exactly). Raw delivery under loss is a fraction of Bernoulli trials in each engine; the two
//!   may differ by [`Z`] standard errors of a difference of two proportions,
//!   `sqrt(p(1-p)(1/n_sim + 1/n_real))` (at 10% loss: ±6.4 points). A raw mode that lost twice
//!   what the link drops would fail.
//! - **Transmissions per message** (reliable): each message needs a geometric number of tries,
//!   whose success is at least `s²` (data and ack both through, `s = 1-p`), so each engine's mean
//!   has a variance of at most `(1-s²)/s⁴/n`, and the two may differ by `Z` standard errors of
//!   the difference; plus the resends each sender counted as spurious (a lost handshake lets a
//!   backlog out in one burst, which jitter reorders into false loss evidence: up to half a resend
//!   per message in such a run), plus 1% of the messages for needless resends a busy machine causes
//!   without the sender recognising them (an ack delayed past the retransmission timer by a stall,
//!   then arriving later than the minimum RTT after the resend). Raw mode sends each message once
//!   in both, exactly.
//! - **Median latency** where the link decides it (raw at every loss, reliable on the clean link):
//!   a real timer never fires early, so the real median cannot be much below the simulator's (the
//!   median of hundreds of draws of 20 ms ± 5 ms is known to about ±0.5 ms: the floor is 0.8
//!   times). Above it, real time adds what the machine's scheduling costs: tokio's 1 ms timer
//!   granularity, three parties sharing one thread in a debug build, and whatever else runs on a
//!   loaded 2-core CI machine. Those are milliseconds to tens of milliseconds, not something a test
//!   can bound tightly, so the ceiling is a generous 4 times the simulator's (80 ms for this 20 ms
//!   link). What it catches is a wrong measure: latency from the start of the run or including the
//!   handshake (hundreds of ms), seconds taken for milliseconds, a resend's round trip in every
//!   message. With loss, a reliable run's median depends on whether its handshake was lost (a
//!   backlog of a second or more) and on head-of-line blocking, which vary from seed to seed by a
//!   factor of 7 (22 to 170 ms over 40 simulator seeds); two real seeds cannot pin that down, so
//!   there the real median must lie within the range of the simulator's per-seed medians, with the
//!   same 0.8 and 4 factors.
//! - **Connection setup** on the clean link: at least 0.8 times the simulator's round trip, at most
//!   half a second (all real runs start their handshakes at once, the busiest moment).
//!
//! Small and quick: 2 loss rates × raw and reliable × 300 messages every 10 ms; the real sweep
//! runs its 8 runs at once, about 3 s of real time.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Pipe, Proc};

/// Standard errors two independent samples may differ by. At 5 a correct pair fails about once
/// in 1.7 million comparisons (two-sided normal tail), and the test makes four.
const Z: f64 = 5.0;

/// The sweep both engines run (the default link: 20 ms ± 5 ms each way).
const SWEEP: &[&str] = &[
    "lab",
    "--loss",
    "0,10%",
    "--messages",
    "300",
    "--interval",
    "10ms",
    "--format",
    "json",
];

/// Needless resends a busy machine may cause that the sender does not recognise, per message.
const UNRECOGNISED_RESENDS: f64 = 0.01;

fn run(extra: &[&str]) -> Value {
    let args: Vec<&str> = SWEEP.iter().chain(extra).copied().collect();
    let mut proc = Proc::spawn("lab", &args);
    let code = proc.exit_code();
    let stdout = proc.drain(Pipe::Stdout).join("\n");
    let stderr = proc.drain(Pipe::Stderr).join("\n");
    assert_eq!(code, 0, "udpchat {args:?} failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn row<'a>(results: &'a Value, loss: f64, mode: &str) -> &'a Value {
    results["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["loss"] == loss && r["mode"] == mode)
        .unwrap_or_else(|| panic!("no row for {loss} {mode}"))
}

fn metric(row: &Value, name: &str, field: &str) -> f64 {
    row["metrics"][name][field]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}.{field} in {row}"))
}

/// Every message both engines were asked to send, over all seeds.
fn messages(row: &Value) -> f64 {
    let runs = row["runs"].as_array().unwrap();
    runs.iter().map(|r| r["messages"].as_f64().unwrap()).sum()
}

/// Spurious resends the sender counted, per message, over all seeds.
fn spurious_per_message(row: &Value) -> f64 {
    let runs = row["runs"].as_array().unwrap();
    let spurious: f64 = runs
        .iter()
        .map(|r| r["retransmits_spurious"].as_f64().unwrap())
        .sum();
    spurious / messages(row)
}

#[test]
fn the_simulator_and_real_sockets_agree_on_one_sweep() {
    let sim = run(&["--seeds", "20"]);
    let real = run(&["--seeds", "2", "--real"]);
    assert_eq!(sim["engine"], "simulator");
    assert_eq!(real["engine"], "real");
    let mut report = Vec::new();
    for loss in [0.0, 0.1] {
        for mode in ["raw", "reliable"] {
            let (s, r) = (row(&sim, loss, mode), row(&real, loss, mode));
            let (ns, nr) = (messages(s), messages(r));
            let spread = (1.0 / ns + 1.0 / nr).sqrt();

            // Delivery.
            let (ds, dr) = (
                metric(s, "delivery_ratio", "mean"),
                metric(r, "delivery_ratio", "mean"),
            );
            if mode == "reliable" || loss == 0.0 {
                assert_eq!(
                    (ds, dr),
                    (1.0, 1.0),
                    "{mode} at {loss}: sim {ds}, real {dr}"
                );
            } else {
                let bound = Z * (loss * (1.0 - loss)).sqrt() * spread;
                assert!(
                    (ds - dr).abs() <= bound,
                    "raw delivery at {loss}: sim {ds}, real {dr}, allowed ±{bound}"
                );
            }

            // Transmissions per message.
            let (ts, tr) = (
                metric(s, "transmissions_per_message", "mean"),
                metric(r, "transmissions_per_message", "mean"),
            );
            if mode == "raw" {
                assert_eq!((ts, tr), (1.0, 1.0), "raw sends each message once");
            } else {
                let both = (1.0 - loss) * (1.0 - loss);
                let bound = Z * ((1.0 - both) / (both * both)).sqrt() * spread
                    + spurious_per_message(s)
                    + spurious_per_message(r)
                    + UNRECOGNISED_RESENDS;
                assert!(
                    (ts - tr).abs() <= bound,
                    "{mode} transmissions/message at {loss}: sim {ts}, real {tr}, allowed ±{bound}"
                );
            }

            // Median latency.
            let lr = metric(r, "latency_p50_ms", "pooled");
            let (low, high) = if mode == "reliable" && loss > 0.0 {
                (
                    metric(s, "latency_p50_ms", "seed_min"),
                    metric(s, "latency_p50_ms", "seed_max"),
                )
            } else {
                let ls = metric(s, "latency_p50_ms", "pooled");
                (ls, ls)
            };
            assert!(
                (0.8 * low..=4.0 * high).contains(&lr),
                "{mode} median latency at {loss}: sim {low}..{high} ms, real {lr} ms"
            );
            report.push(format!(
                "{loss} {mode}: delivery {ds:.4}/{dr:.4} tx {ts:.3}/{tr:.3} p50 {low:.1}..{high:.1}/{lr:.1} ms"
            ));
        }
    }
    // Connection setup on the clean link: one round trip in both (a lossy handshake is a matter
    // of chance, and the engines draw different fates). The floor is the latency's; the ceiling
    // is an absolute half second, since all eight real runs start their handshakes at once, the
    // busiest moment of the run on a busy machine. A setup that was not recorded, or recorded in
    // the wrong unit, is far outside either.
    let (ss, sr) = (
        metric(row(&sim, 0.0, "reliable"), "setup_ms", "pooled"),
        metric(row(&real, 0.0, "reliable"), "setup_ms", "pooled"),
    );
    assert!(
        (0.8 * ss..=500.0).contains(&sr),
        "setup on a clean link: sim {ss} ms, real {sr} ms\n{}",
        report.join("\n")
    );
    eprintln!("sim/real:\n{}", report.join("\n"));
}
