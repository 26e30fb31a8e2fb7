//! SVG charts of a sweep, drawn with plotters' SVG backend alone.
//!
//! Three charts, each with every mode on the same axes and loss on the x axis:
//! - `delivery.svg`: delivered messages (%), with the theory line `1-p`;
//! - `latency.svg`: latency p50/p90/p99 (ms, log scale, since reliable modes under loss reach
//!   thousands of times the link delay);
//! - `overhead.svg`: datagrams on the wire per delivered message, with the theory line `1/(1-p)`.
//!
//! plotters is used with `default-features = false` and only `svg_backend` + `line_series`: its
//! default font features need fontconfig/freetype on the machine. The SVG backend writes text as
//! `<text>` elements that the viewer renders, so titles, axes and legends need no font here.
//! Series are named `<mode>` (plus the loss pattern when the sweep has several), and each named
//! series appears in the legend as `<text>`, which the tests check.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use super::config::LossPattern;
use super::results::{Results, Row};

/// Why a chart could not be drawn or written.
#[derive(Debug, Error)]
#[error("cannot draw {path}: {reason}")]
pub struct ChartError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

const SIZE: (u32, u32) = (1100, 560);

/// Width of the legend panel at the right, outside the plot so it never hides a line.
const LEGEND_WIDTH: u32 = 290;

/// One line on a chart: a name and its points (loss %, value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend text.
    pub name: String,
    /// (x, y) points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and grey: a closed form, not a measurement.
    pub theory: bool,
    /// Which color (index into the palette): one per series name before any suffix, so all of a
    /// mode's lines share a color.
    pub color: usize,
    /// Line width in pixels.
    pub width: u32,
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

/// Groups the rows by series name, keeping first-seen order, with `value` as y.
fn series_of(
    results: &Results,
    suffix: &str,
    width: u32,
    value: impl Fn(&Row) -> Option<f64>,
) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    for row in &results.rows {
        let base = series_name(results, row);
        let color = match bases.iter().position(|b| *b == base) {
            Some(i) => i,
            None => {
                bases.push(base.clone());
                bases.len() - 1
            }
        };
        let name = format!("{base}{suffix}");
        let Some(y) = value(row) else { continue };
        let point = (row.loss * 100.0, y);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(Series {
                name,
                points: vec![point],
                theory: false,
                color,
                width,
            }),
        }
    }
    for s in &mut series {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

fn theory_line(results: &Results, name: &str, f: impl Fn(f64) -> f64) -> Series {
    let mut xs: Vec<f64> = results.config.losses.iter().map(|p| p.get()).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    Series {
        name: name.to_owned(),
        points: xs.into_iter().map(|p| (p * 100.0, f(p))).collect(),
        theory: true,
        color: 0,
        width: 1,
    }
}

/// The delivery chart's series: one per mode, and the theory line.
pub fn delivery_series(results: &Results) -> Vec<Series> {
    let mut s = series_of(results, "", 2, |r| {
        r.metrics.delivery_ratio.mean.map(|v| v * 100.0)
    });
    s.push(theory_line(results, "theory: 1-p", |p| (1.0 - p) * 100.0));
    s
}

/// The latency chart's series: p50, p90 and p99 per mode.
pub fn latency_series(results: &Results) -> Vec<Series> {
    // A mode's three lines share its color; the median is the thickest.
    let mut s = series_of(results, " p50", 3, |r| r.metrics.latency_p50_ms.pooled);
    s.extend(series_of(results, " p90", 2, |r| {
        r.metrics.latency_p90_ms.pooled
    }));
    s.extend(series_of(results, " p99", 1, |r| {
        r.metrics.latency_p99_ms.pooled
    }));
    s
}

/// The overhead chart's series: datagrams per delivered message per mode, and `1/(1-p)`.
pub fn overhead_series(results: &Results) -> Vec<Series> {
    let mut s = series_of(results, "", 2, |r| r.metrics.datagrams_per_delivered.mean);
    s.push(theory_line(results, "theory: 1/(1-p)", |p| {
        if p < 1.0 {
            1.0 / (1.0 - p)
        } else {
            f64::NAN
        }
    }));
    s
}

/// Writes `delivery.svg`, `latency.svg` and `overhead.svg` into `dir`; returns their paths.
pub fn write_charts(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    // The link apart from the swept loss: "delay 20ms±5ms", or nothing for a perfect one.
    let mut link = results.config.link.clone();
    link.loss = crate::probability::Probability::ZERO;
    link.burst_loss = None;
    let link = match link.describe().as_str() {
        "perfect" => String::new(),
        other => format!("; {other}"),
    };
    let subtitle = format!(
        "{} msgs of {} B every {:?}{link}; {} seed(s)",
        results.config.messages,
        results.config.size,
        results.config.interval,
        results.seeds.len()
    );
    let charts = [
        (
            "delivery.svg",
            format!("Delivered vs loss ({subtitle})"),
            "delivered (%)",
            delivery_series(results),
            false,
            0,
        ),
        (
            "latency.svg",
            format!("Latency vs loss ({subtitle})"),
            "latency, send to delivery (ms, log scale)",
            latency_series(results),
            true,
            0,
        ),
        (
            "overhead.svg",
            format!("Datagrams per delivered message ({subtitle})"),
            "datagrams (both directions) per delivered message",
            overhead_series(results),
            false,
            2,
        ),
    ];
    let mut paths = Vec::new();
    for (file, title, y_label, series, log, decimals) in charts {
        let path = dir.join(file);
        let axes = Axes {
            title: &title,
            y_label,
            log,
            decimals,
        };
        draw(&path, &axes, &series).map_err(|reason| ChartError {
            path: path.clone(),
            reason,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn bounds(series: &[Series], log: bool) -> ((f64, f64), (f64, f64)) {
    let points = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1.is_finite())
    };
    let x_max = points().map(|p| p.0).fold(0.0f64, f64::max).max(1.0);
    let (mut y_min, mut y_max) = points()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    if log {
        // Whole decades around the data, and never below a microsecond.
        let lo = 10f64.powf(y_min.max(1e-3).log10().floor());
        let hi = 10f64.powf(y_max.max(lo * 10.0).log10().ceil());
        ((0.0, x_max), (lo, hi))
    } else {
        let lo = if y_min >= 0.0 {
            0.0f64.min(y_min)
        } else {
            y_min
        };
        let hi = if y_max <= lo { lo + 1.0 } else { y_max * 1.05 };
        ((0.0, x_max), (lo, hi))
    }
}

/// A chart's title and y axis.
struct Axes<'a> {
    title: &'a str,
    y_label: &'a str,
    log: bool,
    /// Decimals of the y tick labels.
    decimals: usize,
}

fn draw(path: &Path, axes: &Axes<'_>, series: &[Series]) -> Result<(), String> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    // The title spans the whole width; below it, the plot and, at its right, the legend.
    let body = root
        .titled(axes.title, ("sans-serif", 20))
        .map_err(|e| e.to_string())?;
    let (plot, legend_area) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
    let ((x0, x1), (y0, y1)) = bounds(series, axes.log);
    let mut builder = ChartBuilder::on(&plot);
    builder
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(80);
    let (y_label, decimals) = (axes.y_label, axes.decimals);
    let y_format = move |v: &f64| format!("{v:.decimals$}");
    let x_format = |v: &f64| format!("{v:.0}");
    // The log and linear charts have different coordinate types in plotters, so one macro body
    // serves both: same mesh, same series; non-finite points are skipped and theory curves are
    // drawn as lines without markers.
    macro_rules! draw {
        ($y_range:expr) => {{
            let mut chart = builder
                .build_cartesian_2d(x0..x1, $y_range)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("loss each way (%)")
                .y_desc(y_label)
                .x_label_formatter(&x_format)
                .y_label_formatter(&y_format)
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 16))
                .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
                .draw()
                .map_err(|e| e.to_string())?;
            for s in series {
                let style = line_style(s);
                let finite: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(finite.iter().copied(), style))
                    .map_err(|e| e.to_string())?;
                if !s.theory {
                    chart
                        .draw_series(finite.iter().map(|&p| Circle::new(p, 3, style.filled())))
                        .map_err(|e| e.to_string())?;
                }
            }
        }};
    }
    if axes.log {
        draw!((y0..y1).log_scale());
    } else {
        draw!(y0..y1);
    }
    legend(&legend_area, series)?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn line_style(series: &Series) -> ShapeStyle {
    if series.theory {
        ShapeStyle::from(&RGBColor(0x88, 0x88, 0x88)).stroke_width(series.width)
    } else {
        ShapeStyle::from(&PALETTE[series.color % PALETTE.len()]).stroke_width(series.width)
    }
}

/// One line per series: a short stroke in its style, then its name (a `<text>` element).
fn legend(area: &DrawingArea<SVGBackend<'_>, Shift>, series: &[Series]) -> Result<(), String> {
    let font = ("sans-serif", 15).into_font().color(&BLACK);
    for (i, s) in series.iter().enumerate() {
        let y = 60 + 24 * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (38, y)], line_style(s)))
            .map_err(|e| e.to_string())?;
        area.draw(&Text::new(s.name.clone(), (46, y - 8), font.clone()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
