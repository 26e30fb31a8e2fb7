//! SVG charts of a sweep: what to draw from [`Results`], and how each series looks.
//!
//! Three files, loss on the x axis of every plot:
//! - `delivery.svg`: delivered messages (%), with raw mode's theory `1-p`;
//! - `latency.svg`: three small multiples, p50, p90 and p99 of the latency to delivery (from the
//!   send, or the session's start if later; percentiles of all seeds' messages pooled, so without
//!   intervals) (ms, one shared log scale, since reliable modes under loss reach hundreds of times
//!   the link delay), one line per mode in each, rather than nine or twelve lines on one plot;
//! - `overhead.svg`: two plots. Data sends per message (first sends and resends, the measure the
//!   theory is about) with its floor `1/(1-p)` and the `1/(1-p)²` that lost acks allow; and every
//!   datagram both ways (data, acks, handshake) per delivered message, which has no closed form.
//!
//! How series look, so that a chart reads the same in colour and printed in grey:
//! - **a mode keeps one colour and one mark shape in every chart** ([`mode_style`]), whatever the
//!   order of `--modes`: reliable is a vermillion square everywhere. The colours are the
//!   Okabe–Ito palette, which colour-blind readers can tell apart; the shapes tell them apart in
//!   grey.
//! - independent loss draws solid lines and filled marks; burst loss draws dash-dot lines (other
//!   dashes for further burst lengths) and larger hollow marks; and measured series are moved a
//!   few pixels apart sideways, so two series on the same values (reliable at 100% with and
//!   without bursts) lie side by side rather than one hiding the other.
//! - theory is black, dashed, without marks, and drawn after (on top of) the measurements, and
//!   only beside the modes it describes.
//! - each measured point carries its 95% interval across seeds as an error bar (the table's `±`).
//!
//! The drawing itself is in the private module `draw` (`chart/draw.rs`); every element names
//! its series in `data-*` attributes, which the tests below read back.

mod draw;

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::config::{KernelCc, LossPattern, Mode, SweepPoint};
use super::results::{Results, Row, RowMetrics};
use super::stats::{Estimate, Pooled};
use super::theory::datagram_success;

/// Why a chart could not be written. The I/O error is its source, not part of its message, so
/// an error chain printed on one line says it once.
#[derive(Debug, Error)]
#[error("cannot write {}", .path.display())]
pub struct ChartError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    pub source: std::io::Error,
}

/// The shape of a series' marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// ●
    Circle,
    /// ■
    Square,
    /// ▲
    TriangleUp,
    /// ◆
    Diamond,
    /// ▼
    TriangleDown,
    /// ×
    Cross,
    /// +
    Plus,
    /// ⬟
    Pentagon,
    /// ⬢
    Hexagon,
    /// ◀
    TriangleLeft,
    /// ▶
    TriangleRight,
    /// ⧗ (two triangles point to point)
    Hourglass,
}

impl Marker {
    /// The shape's name, written as the mark's `data-shape`.
    pub fn name(self) -> &'static str {
        match self {
            Marker::Circle => "circle",
            Marker::Square => "square",
            Marker::TriangleUp => "triangle-up",
            Marker::Diamond => "diamond",
            Marker::TriangleDown => "triangle-down",
            Marker::Cross => "cross",
            Marker::Plus => "plus",
            Marker::Pentagon => "pentagon",
            Marker::Hexagon => "hexagon",
            Marker::TriangleLeft => "triangle-left",
            Marker::TriangleRight => "triangle-right",
            Marker::Hourglass => "hourglass",
        }
    }
}

/// The colour and mark shape of `mode`, the same in every chart. A `match` rather than a list
/// indexed by position, so that adding a mode forces choosing its look.
pub fn mode_style(mode: Mode) -> (&'static str, Marker) {
    match mode {
        Mode::Raw => ("#0072b2", Marker::Circle),
        Mode::Reliable => ("#d55e00", Marker::Square),
        Mode::Unordered => ("#009e73", Marker::TriangleUp),
        Mode::SelectiveRepeat => ("#cc79a7", Marker::Diamond),
        Mode::GoBackN => ("#e69f00", Marker::TriangleDown),
        Mode::StopAndWait => ("#56b4e9", Marker::Cross),
        Mode::NoCc => ("#8c564b", Marker::Plus),
        Mode::Tcp => ("#000000", Marker::Pentagon),
        Mode::TcpReno => ("#e377c2", Marker::Hexagon),
        // Kernel TCP (`--real` only): greys and olive, so it reads as "the reference" beside ours.
        Mode::KernelTcp(KernelCc::Cubic) => ("#333333", Marker::Square),
        Mode::KernelTcp(KernelCc::Reno) => ("#777777", Marker::TriangleUp),
        Mode::KernelTcp(KernelCc::Bbr) => ("#999933", Marker::Circle),
        Mode::Newreno => ("#7f7f7f", Marker::TriangleLeft),
        Mode::Cubic => ("#bcbd22", Marker::TriangleRight),
        Mode::Bbr => ("#17becf", Marker::Hourglass),
    }
}

/// Dash patterns of burst-loss lines, one per burst length in the sweep (independent loss is
/// solid). Long dashes with dots, unlike theory's even dashes.
const BURST_DASHES: [&str; 3] = ["12,4,2,4", "12,4", "4,3"];

/// Theory's main line: black, evenly dashed.
const THEORY_DASH: &str = "7,4";

/// Whether a series is a measurement or a closed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Means across seeds, with marks and interval bars.
    Measured,
    /// A closed form: dashed, no marks, drawn on top.
    Theory,
}

/// How a series is drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Style {
    /// Measurement or theory.
    pub role: Role,
    /// The mode a measured series belongs to.
    pub mode: Option<Mode>,
    /// Stroke (and fill) colour, `#rrggbb`.
    pub color: &'static str,
    /// The marks' shape; `None` for none.
    pub marker: Option<Marker>,
    /// Filled marks (independent loss) or hollow ones (bursts).
    pub filled: bool,
    /// SVG `stroke-dasharray`; `None` for a solid line.
    pub dash: Option<&'static str>,
    /// Line width in pixels.
    pub width: f64,
}

/// One point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Loss each way, %.
    pub x: f64,
    /// The value (a mean across seeds for a measurement).
    pub y: f64,
    /// Half-width of the 95% interval, if there is one.
    pub ci95: Option<f64>,
}

impl Point {
    /// The interval's ends.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.ci95.map(|h| (self.y - h, self.y + h))
    }
}

/// One line on a plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend text.
    pub name: String,
    /// How it is drawn.
    pub style: Style,
    /// Its points, in x order.
    pub points: Vec<Point>,
}

/// One plot of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Above the plot.
    pub title: String,
    /// The y axis label.
    pub y_label: String,
    /// A log y axis.
    pub log: bool,
    /// The largest value the measure can take (100% delivered), if any: the axis stops there.
    pub ceiling: Option<f64>,
    /// Its series, in drawing order within their role.
    pub series: Vec<Series>,
}

/// A chart: one or more plots side by side over the same x axis, and one legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The title.
    pub title: String,
    /// The line under it: the traffic, the link and the seeds.
    pub subtitle: String,
    /// The x axis label, under all plots.
    pub x_label: String,
    /// The plots, left to right.
    pub panels: Vec<Panel>,
    /// All plots share one y scale (small multiples of one measure).
    pub shared_y: bool,
    /// The points carry 95% intervals (two seeds or more); the legend then explains the bars.
    pub intervals: bool,
    /// A line at the bottom: how to read the chart.
    pub note: String,
}

/// The series name of a row: its mode, with its loss pattern if the sweep has several.
fn series_name(results: &Results, row: &Row) -> String {
    if results.config.patterns.len() > 1 {
        match row.pattern {
            LossPattern::Independent => format!("{} (independent)", row.mode),
            LossPattern::Bursts { mean_burst } => format!("{} (bursts of {mean_burst})", row.mode),
        }
    } else {
        row.mode.to_string()
    }
}

/// The style of a row's measured series: its mode's colour and shape; solid and filled for
/// independent loss, dashed and hollow for bursts (each burst length its own dashes).
fn measured_style(results: &Results, row: &Row) -> Style {
    let (color, marker) = mode_style(row.mode);
    let (filled, dash) = match row.pattern {
        LossPattern::Independent => (true, None),
        LossPattern::Bursts { .. } => {
            let index = results
                .config
                .patterns
                .iter()
                .filter(|p| matches!(p, LossPattern::Bursts { .. }))
                .position(|p| *p == row.pattern)
                .unwrap_or(0);
            (false, Some(BURST_DASHES[index % BURST_DASHES.len()]))
        }
    };
    Style {
        role: Role::Measured,
        mode: Some(row.mode),
        color,
        marker: Some(marker),
        filled,
        dash,
        width: 2.0,
    }
}

/// A metric a chart can draw: its value and, where there is one, its 95% half-width.
trait Measure {
    fn value_and_ci95(&self) -> Option<(f64, Option<f64>)>;
}

impl Measure for Estimate {
    fn value_and_ci95(&self) -> Option<(f64, Option<f64>)> {
        self.mean.map(|mean| (mean, self.ci95))
    }
}

impl Measure for Pooled {
    /// A percentile of all seeds' samples pooled has no interval (the seeds' range is not one).
    fn value_and_ci95(&self) -> Option<(f64, Option<f64>)> {
        self.pooled.map(|pooled| (pooled, None))
    }
}

/// One measured series per mode and pattern (patterns outer, as the rows come), with
/// `scale * metric` as y and its interval.
fn measured<M: Measure>(
    results: &Results,
    scale: f64,
    metric: impl Fn(&RowMetrics) -> &M,
) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for row in &results.rows {
        let name = series_name(results, row);
        let index = match series.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                series.push(Series {
                    name,
                    style: measured_style(results, row),
                    points: Vec::new(),
                });
                series.len() - 1
            }
        };
        if let Some((value, ci95)) = metric(&row.metrics).value_and_ci95() {
            series[index].points.push(Point {
                x: row.loss * 100.0,
                y: value * scale,
                ci95: ci95.map(|h| h * scale),
            });
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    series
}

/// A theory curve over the sweep's loss rates, `f(s)` with `s` the chance one datagram arrives.
fn theory(results: &Results, name: String, main: bool, f: impl Fn(f64) -> f64) -> Series {
    let mut losses = results.config.losses.clone();
    losses.sort_by(|a, b| a.get().total_cmp(&b.get()));
    losses.dedup();
    let points = losses
        .into_iter()
        .map(|loss| {
            let point = SweepPoint {
                loss,
                pattern: LossPattern::Independent,
            };
            Point {
                x: loss.get() * 100.0,
                y: f(datagram_success(&results.config, &point)),
                ci95: None,
            }
        })
        .collect();
    let (color, dash, width) = if main {
        ("#000000", THEORY_DASH, 1.8)
    } else {
        ("#555555", "2,4", 1.5)
    };
    Series {
        name,
        style: Style {
            role: Role::Theory,
            mode: None,
            color,
            marker: None,
            filled: false,
            dash: Some(dash),
            width,
        },
        points,
    }
}

/// `1-p`, or `s` when duplication or corruption make the chance one datagram arrives more than
/// `1-p`.
fn success_symbol(results: &Results) -> &'static str {
    let link = &results.config.link;
    if link.duplicate.is_zero() && link.corrupt.is_zero() {
        "1-p"
    } else {
        "s"
    }
}

/// The subtitle every chart shares: the traffic, the link apart from the swept loss, the seeds.
fn subtitle(results: &Results) -> String {
    let mut link = results.config.link.clone();
    link.loss = crate::probability::Probability::ZERO;
    link.burst_loss = None;
    let link = match link.describe().as_str() {
        "perfect" => String::new(),
        other => format!("; {other}"),
    };
    format!(
        "{} msgs of {} B every {:?}{link}; {} seed(s)",
        results.config.messages,
        results.config.size,
        results.config.interval,
        results.seeds.len()
    )
}

/// The note under a chart: how to read marks, lines and bars.
fn note(results: &Results, panels: &[Panel]) -> String {
    let bars = if results.seeds.len() >= 2 {
        format!(
            "Bars: 95% Student's t interval over {} seeds (none where thinner than a pixel). ",
            results.seeds.len()
        )
    } else {
        "One seed: no intervals. ".to_owned()
    };
    let bursts = if results
        .config
        .patterns
        .iter()
        .any(|p| matches!(p, LossPattern::Bursts { .. }))
    {
        "Hollow marks, dash-dot lines: burst loss. "
    } else {
        ""
    };
    let theory = panels
        .iter()
        .flat_map(|p| &p.series)
        .any(|s| s.style.role == Role::Theory);
    let theory = if theory { "Black dashed: theory." } else { "" };
    format!("{bars}{bursts}{theory}").trim_end().to_owned()
}

fn chart(results: &Results, title: &str, panels: Vec<Panel>, shared_y: bool) -> Chart {
    Chart {
        title: title.to_owned(),
        subtitle: subtitle(results),
        x_label: "loss each way (%)".to_owned(),
        note: note(results, &panels),
        panels,
        shared_y,
        intervals: results.seeds.len() >= 2,
    }
}

/// `delivery.svg`: delivered messages per mode, and `1-p` when raw mode is in the sweep.
pub fn delivery_chart(results: &Results) -> Chart {
    let mut series = measured(results, 100.0, |m| &m.delivery_ratio);
    if results.config.modes.contains(&Mode::Raw) {
        let symbol = success_symbol(results);
        series.push(theory(results, format!("theory: {symbol}"), true, |s| {
            s * 100.0
        }));
    }
    let panel = Panel {
        title: "Messages delivered".to_owned(),
        y_label: "delivered / sent (%)".to_owned(),
        log: false,
        ceiling: Some(100.0),
        series,
    };
    chart(results, "Delivered vs loss", vec![panel], false)
}

/// `latency.svg`: p50, p90 and p99 side by side on one log scale.
pub fn latency_chart(results: &Results) -> Chart {
    type Metric = fn(&RowMetrics) -> &Pooled;
    let percentiles: [(&str, Metric); 3] = [
        ("p50 (median)", |m| &m.latency_p50_ms),
        ("p90", |m| &m.latency_p90_ms),
        ("p99", |m| &m.latency_p99_ms),
    ];
    let panels = percentiles
        .into_iter()
        .map(|(title, metric)| Panel {
            title: title.to_owned(),
            y_label: "to delivery (ms, log scale)".to_owned(),
            log: true,
            ceiling: None,
            series: measured(results, 1.0, metric),
        })
        .collect();
    chart(results, "Latency vs loss", panels, true)
}

/// `overhead.svg`: data sends per message beside its theory, and all datagrams per delivered
/// message.
pub fn overhead_chart(results: &Results) -> Chart {
    let mut sends = measured(results, 1.0, |m| &m.transmissions_per_message);
    // The floor is selective repeat's theory (go-back-n and stop-and-wait resend more by design,
    // raw never resends), so it is drawn only when a selective mode is in the sweep.
    if results.config.modes.iter().any(|m| m.is_selective()) {
        let symbol = success_symbol(results);
        let inverse = |s: f64| if s > 0.0 { 1.0 / s } else { f64::NAN };
        sends.push(theory(
            results,
            format!("theory: 1/({symbol})"),
            true,
            inverse,
        ));
        sends.push(theory(
            results,
            format!("with lost acks: 1/({symbol})²"),
            false,
            move |s| inverse(s * s),
        ));
    }
    let panels = vec![
        Panel {
            title: "Data sends per message".to_owned(),
            y_label: "data datagrams sent / messages".to_owned(),
            log: false,
            ceiling: None,
            series: sends,
        },
        Panel {
            title: "All datagrams, both ways".to_owned(),
            y_label: "datagrams (data, acks, handshake) / delivered".to_owned(),
            log: false,
            ceiling: None,
            series: measured(results, 1.0, |m| &m.datagrams_per_delivered),
        },
    ];
    chart(results, "Cost per message vs loss", panels, false)
}

/// `hol.svg`: head-of-line blocking: the share of delivered messages that arrived whole but
/// waited for an earlier one, and how long the median and the longest such wait lasted. Modes
/// that never hold a message back (raw) have no series.
pub fn hol_chart(results: &Results) -> Chart {
    let applies = |mut series: Vec<Series>| {
        series.retain(|s| !s.points.is_empty());
        series
    };
    let panels = vec![
        Panel {
            title: "Messages held back".to_owned(),
            y_label: "arrived, waited for an earlier one (% of delivered)".to_owned(),
            log: false,
            ceiling: Some(100.0),
            series: applies(measured(results, 100.0, |m| &m.hol_blocked_ratio)),
        },
        Panel {
            title: "Their median wait".to_owned(),
            y_label: "arrival to delivery (ms, log scale)".to_owned(),
            log: true,
            ceiling: None,
            series: applies(measured(results, 1.0, |m| &m.hol_wait_p50_ms)),
        },
        Panel {
            title: "The longest wait".to_owned(),
            y_label: "arrival to delivery (ms, log scale)".to_owned(),
            log: true,
            ceiling: None,
            series: applies(measured(results, 1.0, |m| &m.hol_wait_max_ms)),
        },
    ];
    chart(results, "Head-of-line blocking vs loss", panels, false)
}

/// The SVG text of `chart`.
pub fn render(chart: &Chart) -> String {
    // Wider for more plots side by side, so each keeps enough room.
    let plots = (270.0 + 290.0 * chart.panels.len() as f64).max(840.0);
    draw::render(chart, plots, 560.0)
}

/// Writes `delivery.svg`, `latency.svg`, `overhead.svg` and `hol.svg` into `dir`; returns their
/// paths.
pub fn write_charts(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    let charts = [
        ("delivery.svg", delivery_chart(results)),
        ("latency.svg", latency_chart(results)),
        ("overhead.svg", overhead_chart(results)),
        ("hol.svg", hol_chart(results)),
    ];
    let mut paths = Vec::new();
    for (file, chart) in charts {
        let path = dir.join(file);
        std::fs::write(&path, render(&chart)).map_err(|source| ChartError {
            path: path.clone(),
            source,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use roxmltree::{Document, Node};

    use super::*;
    use crate::experiment::results::Engine;
    use crate::experiment::run::run_sweep;
    use crate::experiment::ExperimentConfig;
    use crate::probability::Probability;

    /// A small sweep of `modes` at 0 and 20% loss, `seeds` seeds, with the given patterns.
    fn sweep(modes: &[Mode], patterns: &[LossPattern], seeds: u32) -> Results {
        let config = ExperimentConfig {
            losses: vec![Probability::ZERO, Probability::new(0.2).unwrap()],
            patterns: patterns.to_vec(),
            modes: modes.to_vec(),
            messages: 200,
            seeds,
            ..ExperimentConfig::default()
        };
        let (points, runs) = run_sweep(&config, &|_, _| {}).unwrap();
        Results::new(&config, Engine::Simulator, &points, runs)
    }

    fn attr<'a>(n: &Node<'a, '_>, name: &str) -> Option<&'a str> {
        n.attribute(name)
    }

    /// The elements of `doc` with `data-role = role` (and, if given, `data-mode = mode`).
    fn role<'a, 'i>(doc: &'a Document<'i>, role: &str, mode: Option<&str>) -> Vec<Node<'a, 'i>> {
        doc.descendants()
            .filter(|n| attr(n, "data-role") == Some(role))
            .filter(|n| mode.is_none() || attr(n, "data-mode") == mode)
            .collect()
    }

    /// The stroke and mark shape of `mode`'s measured line and marks in `svg`.
    fn look(svg: &str, mode: &str) -> (String, String) {
        let doc = Document::parse(svg).unwrap();
        let lines = role(&doc, "measured", Some(mode));
        let marks = role(&doc, "mark", Some(mode));
        assert!(!lines.is_empty() && !marks.is_empty(), "{mode} not drawn");
        let stroke = attr(&lines[0], "stroke").unwrap().to_owned();
        let shape = attr(&marks[0], "data-shape").unwrap().to_owned();
        for n in lines.iter().chain(&marks) {
            assert_eq!(attr(n, "stroke"), Some(stroke.as_str()));
        }
        for m in &marks {
            assert_eq!(attr(m, "data-shape"), Some(shape.as_str()));
        }
        (stroke, shape)
    }

    fn all_charts(results: &Results) -> [String; 3] {
        [
            render(&delivery_chart(results)),
            render(&latency_chart(results)),
            render(&overhead_chart(results)),
        ]
    }

    #[test]
    fn a_mode_keeps_its_colour_and_shape_whatever_the_order_of_modes() {
        let a = sweep(&[Mode::Raw, Mode::Reliable], &[LossPattern::Independent], 2);
        let b = sweep(
            &[Mode::Unordered, Mode::Reliable],
            &[LossPattern::Independent],
            2,
        );
        let reliable = look(&all_charts(&a)[0], "reliable");
        for svg in all_charts(&a).iter().chain(&all_charts(&b)) {
            assert_eq!(look(svg, "reliable"), reliable);
        }
        // Second in one sweep, second in the other, yet neither shares reliable's look.
        let raw = look(&all_charts(&a)[1], "raw");
        let unordered = look(&all_charts(&b)[1], "unordered");
        assert_ne!(raw.0, reliable.0);
        assert_ne!(raw.1, reliable.1);
        assert_ne!(unordered.0, reliable.0);
        assert_ne!(unordered.1, reliable.1);
        assert_eq!(reliable.0, mode_style(Mode::Reliable).0);
    }

    #[test]
    fn every_mode_has_its_own_colour_and_shape() {
        for (i, a) in Mode::ALL.iter().enumerate() {
            for b in &Mode::ALL[i + 1..] {
                assert_ne!(mode_style(*a).0, mode_style(*b).0, "{a} {b}");
                assert_ne!(mode_style(*a).1, mode_style(*b).1, "{a} {b}");
            }
        }
    }

    #[test]
    fn kernel_tcp_has_colours_of_its_own() {
        for (i, a) in Mode::KERNEL.iter().enumerate() {
            for b in Mode::ALL.iter().chain(&Mode::KERNEL[i + 1..]) {
                assert_ne!(mode_style(*a).0, mode_style(*b).0, "{a} {b}");
            }
        }
    }

    #[test]
    fn theory_is_dashed_unmarked_and_drawn_after_every_measurement() {
        let r = sweep(&[Mode::Raw, Mode::Reliable], &[LossPattern::Independent], 2);
        for svg in [render(&delivery_chart(&r)), render(&overhead_chart(&r))] {
            let doc = Document::parse(&svg).unwrap();
            let mut theories = 0;
            for panel in doc.descendants().filter(|n| n.has_attribute("data-panel")) {
                let roles: Vec<&str> = panel
                    .descendants()
                    .filter_map(|n| attr(&n, "data-role"))
                    .collect();
                let first_theory = roles.iter().position(|r| *r == "theory");
                let last_data = roles.iter().rposition(|r| *r != "theory");
                if let (Some(t), Some(d)) = (first_theory, last_data) {
                    assert!(t > d, "theory before data: {roles:?}");
                }
                for t in panel
                    .descendants()
                    .filter(|n| attr(n, "data-role") == Some("theory"))
                {
                    theories += 1;
                    assert!(t.has_attribute("stroke-dasharray"));
                    let name = attr(&t, "data-series").unwrap();
                    // No marks carry a theory's name.
                    assert!(!panel.descendants().any(|n| {
                        attr(&n, "data-role") == Some("mark")
                            && attr(&n, "data-series") == Some(name)
                    }));
                }
            }
            assert!(theories >= 1, "{svg}");
            // Measured lines are solid under independent loss.
            for m in role(&doc, "measured", None) {
                assert!(!m.has_attribute("stroke-dasharray"));
            }
        }
    }

    #[test]
    fn every_interval_of_the_results_is_drawn_as_a_bar() {
        let r = sweep(&[Mode::Raw, Mode::Reliable], &[LossPattern::Independent], 3);
        let chart = delivery_chart(&r);
        let doc_text = render(&chart);
        let doc = Document::parse(&doc_text).unwrap();
        // Raw at 20% loss varies from seed to seed: its interval is a bar. Reliable delivers 100%
        // in every seed: an interval of zero width, nothing to draw.
        let raw = &chart.panels[0].series[0];
        assert_eq!(raw.name, "raw");
        let wide = raw
            .points
            .iter()
            .filter(|p| p.ci95.is_some_and(|h| h > 0.5))
            .count();
        assert!(wide >= 1, "{:?}", raw.points);
        let bars = role(&doc, "interval", Some("raw"));
        assert_eq!(bars.len(), wide);
        assert!(role(&doc, "interval", Some("reliable")).is_empty());
        // The bar's vertical extent is the interval: y of (mean - h) below y of (mean + h).
        let d = attr(&bars[0], "d").unwrap();
        let (top, bottom) = {
            let v: Vec<f64> = d
                .split(['M', 'V', 'H', ','])
                .filter_map(|t| t.parse().ok())
                .collect();
            (v[2], v[1])
        };
        assert!(bottom - top >= 1.0, "{d}");
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains(&"95% interval"));

        // One seed: no interval anywhere, and the legend does not promise one.
        let one = sweep(&[Mode::Raw], &[LossPattern::Independent], 1);
        for svg in all_charts(&one) {
            let doc = Document::parse(&svg).unwrap();
            assert!(role(&doc, "interval", None).is_empty());
            assert!(!doc.descendants().any(|n| n.text() == Some("95% interval")));
        }
    }

    #[test]
    fn series_are_told_apart_without_colour() {
        let r = sweep(
            &[Mode::Raw, Mode::Reliable],
            &[
                LossPattern::Independent,
                LossPattern::Bursts { mean_burst: 8.0 },
            ],
            2,
        );
        for svg in all_charts(&r) {
            let doc = Document::parse(&svg).unwrap();
            // What is left in grey: the mark's shape and fill, and the line's dashes.
            let mut looks: Vec<(String, (&str, &str, &str))> = Vec::new();
            for line in role(&doc, "measured", None) {
                let name = attr(&line, "data-series").unwrap();
                let mark = doc
                    .descendants()
                    .find(|n| {
                        attr(n, "data-role") == Some("mark") && attr(n, "data-series") == Some(name)
                    })
                    .unwrap();
                let grey = (
                    attr(&mark, "data-shape").unwrap(),
                    attr(&mark, "fill").unwrap(),
                    attr(&line, "stroke-dasharray").unwrap_or("solid"),
                );
                match looks.iter().find(|(n, _)| n == name) {
                    Some((_, seen)) => assert_eq!(*seen, grey, "{name}"),
                    None => looks.push((name.to_owned(), grey)),
                }
            }
            assert_eq!(looks.len(), 4, "{looks:?}");
            for (i, (a, la)) in looks.iter().enumerate() {
                for (b, lb) in &looks[i + 1..] {
                    assert_ne!(la, lb, "{a} and {b} look alike in grey");
                }
            }
        }
    }

    #[test]
    fn equal_series_are_offset_so_neither_hides_the_other() {
        // Reliable delivers 100% with and without bursts: same values, drawn side by side.
        let r = sweep(
            &[Mode::Reliable],
            &[
                LossPattern::Independent,
                LossPattern::Bursts { mean_burst: 8.0 },
            ],
            2,
        );
        let svg = render(&delivery_chart(&r));
        let doc = Document::parse(&svg).unwrap();
        let lines = role(&doc, "measured", None);
        assert_eq!(lines.len(), 2);
        let points: Vec<&str> = lines.iter().map(|l| attr(l, "points").unwrap()).collect();
        assert_ne!(points[0], points[1]);
    }

    #[test]
    fn latency_has_one_plot_per_percentile_on_one_scale() {
        let r = sweep(&[Mode::Raw, Mode::Reliable], &[LossPattern::Independent], 2);
        let svg = render(&latency_chart(&r));
        let doc = Document::parse(&svg).unwrap();
        let panels: Vec<Node> = doc
            .descendants()
            .filter(|n| n.has_attribute("data-panel"))
            .collect();
        let titles: Vec<&str> = panels
            .iter()
            .map(|p| attr(p, "data-panel").unwrap())
            .collect();
        assert_eq!(titles, ["p50 (median)", "p90", "p99"]);
        let ticks = |p: &Node| -> Vec<String> {
            p.descendants()
                .filter(|n| attr(n, "text-anchor") == Some("end"))
                .filter_map(|n| n.text().map(str::to_owned))
                .collect()
        };
        for p in &panels {
            let lines = p
                .descendants()
                .filter(|n| attr(n, "data-role") == Some("measured"))
                .count();
            assert_eq!(lines, 2, "one line per mode");
            assert_eq!(ticks(p), ticks(&panels[0]), "one shared scale");
        }
        assert!(ticks(&panels[0]).contains(&"100".to_owned()));
    }

    #[test]
    fn overhead_plots_data_sends_beside_their_own_theory() {
        let r = sweep(&[Mode::Raw, Mode::Reliable], &[LossPattern::Independent], 2);
        let chart = overhead_chart(&r);
        let [sends, all] = &chart.panels[..] else {
            panic!("two panels")
        };
        // Raw sends every message once: the measure is data sends, not datagrams per delivery.
        let raw = sends.series.iter().find(|s| s.name == "raw").unwrap();
        assert!(raw.points.iter().all(|p| p.y == 1.0), "{:?}", raw.points);
        let floor = sends
            .series
            .iter()
            .find(|s| s.name == "theory: 1/(1-p)")
            .unwrap();
        assert_eq!(floor.style.role, Role::Theory);
        assert!((floor.points[1].y - 1.0 / 0.8).abs() < 1e-12);
        // Reliable at 20% lies between the floor and the lost-acks bound (with slack for noise).
        let reliable = sends.series.iter().find(|s| s.name == "reliable").unwrap();
        assert!(reliable.points[1].y > 1.1 && reliable.points[1].y < 1.0 / 0.64 + 0.1);
        // The other plot has no closed form, so no theory line.
        assert!(all.series.iter().all(|s| s.style.role == Role::Measured));
        assert!(all.y_label.contains("both") || all.title.contains("both"));
    }

    #[test]
    fn theory_lines_appear_only_beside_the_modes_they_describe() {
        let r = sweep(
            &[Mode::Reliable, Mode::GoBackN],
            &[LossPattern::Independent],
            2,
        );
        // No raw mode: no `1-p`; selective repeat present (reliable): `1/(1-p)` stays.
        let delivery = delivery_chart(&r);
        assert!(delivery.panels[0]
            .series
            .iter()
            .all(|s| s.style.role == Role::Measured));
        assert!(!delivery.note.contains("theory"));
        let only_gbn = sweep(&[Mode::GoBackN], &[LossPattern::Independent], 2);
        assert!(overhead_chart(&only_gbn).panels[0]
            .series
            .iter()
            .all(|s| s.style.role == Role::Measured));
        assert!(overhead_chart(&r).panels[0]
            .series
            .iter()
            .any(|s| s.style.role == Role::Theory));
    }

    #[test]
    fn the_hol_chart_shows_the_ordered_modes_held_back_and_leaves_raw_out() {
        let r = sweep(
            &[Mode::Raw, Mode::Reliable, Mode::Unordered, Mode::Tcp],
            &[LossPattern::Independent],
            1,
        );
        let chart = hol_chart(&r);
        let held = &chart.panels[0].series;
        let names: Vec<&str> = held.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["reliable", "unordered", "tcp"]);
        // At 20% loss the ordered modes hold messages back; unordered never does.
        let at_20 = |name: &str| {
            held.iter()
                .find(|s| s.name == name)
                .and_then(|s| s.points.iter().find(|p| p.x == 20.0))
                .map(|p| p.y)
                .unwrap()
        };
        assert!(at_20("reliable") > 10.0);
        assert!(at_20("tcp") > 10.0);
        assert_eq!(at_20("unordered"), 0.0);
    }

    #[test]
    fn write_charts_writes_four_parsable_files() {
        let r = sweep(&[Mode::Raw], &[LossPattern::Independent], 2);
        let dir = std::env::temp_dir().join(format!("udpchat-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = write_charts(&r, &dir).unwrap();
        assert_eq!(paths.len(), 4);
        for p in &paths {
            let text = std::fs::read_to_string(p).unwrap();
            assert_eq!(
                Document::parse(&text)
                    .unwrap()
                    .root_element()
                    .tag_name()
                    .name(),
                "svg"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
        let missing = dir.join("no-such-dir");
        let err = write_charts(&r, &missing).unwrap_err();
        assert_eq!(err.path, missing.join("delivery.svg"));
        // The message names the file once; why is the source, for the chain to print.
        assert_eq!(
            err.to_string(),
            format!("cannot write {}", err.path.display())
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
