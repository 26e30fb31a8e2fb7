//! The SVG drawing of a [`Chart`]: axes, ticks, lines, marks, interval bars and the legend,
//! written as plain SVG text.
//!
//! Written by hand rather than with a plotting crate because the charts need what SVG says
//! directly and plotting backends do not: `stroke-dasharray` for dashed lines (plotters cuts a
//! dashed line into hundreds of segments), hollow and filled marks of several shapes, and
//! attributes naming each element's series (`data-series`, `data-mode`, `data-role`) so tests can
//! check what was drawn by parsing the file. Text is `<text>` in a generic `sans-serif` font that
//! the viewer renders, so no font is needed here.
//!
//! Drawing order inside a panel is fixed because later elements cover earlier ones: grid, then
//! interval bars, then measured lines, then their marks, then theory lines on top, so a
//! measurement lying on its theory never hides it.

use std::fmt::Write as _;

use super::{Chart, Marker, Panel, Role, Series};

/// Least width of the legend column at the right, outside the plots so it never hides a line.
const LEGEND_WIDTH: f64 = 260.0;
/// Height of the title block.
const TITLE_HEIGHT: f64 = 64.0;
/// Space under the plots for the x tick labels, the x axis label and the note.
const BOTTOM: f64 = 78.0;
/// Space left of each plot for the y tick labels and the y axis label.
const LEFT: f64 = 74.0;
/// Space right of each plot, between panels.
const RIGHT: f64 = 18.0;
/// Space above each plot for its panel title.
const PANEL_TITLE: f64 = 26.0;
/// Horizontal offset between two measured series, pixels (see [`dodges`]).
const DODGE: f64 = 5.0;
/// The largest spread of the offsets of all series at one x, pixels.
const MAX_SPREAD: f64 = 24.0;
/// Room between the frame and the first and last x, pixels: half the spread, and a margin.
const X_PAD: f64 = MAX_SPREAD / 2.0 + 8.0;

/// The SVG text of `chart`: its plots `plots_width` pixels wide in all, the legend at their right
/// as wide as its longest name needs, `height` pixels high.
pub(super) fn render(chart: &Chart, plots_width: f64, height: f64) -> String {
    let longest = chart
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    // About 7.6 pixels per character of 14-pixel sans-serif, after the 54-pixel sample.
    let legend_width = (64.0 + 7.6 * longest as f64).max(LEGEND_WIDTH).round();
    let width = plots_width + legend_width;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\">\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n"
    );
    text(&mut svg, width / 2.0, 26.0, 20.0, "middle", &chart.title);
    text(&mut svg, width / 2.0, 50.0, 14.0, "middle", &chart.subtitle);
    let panel_width = plots_width / chart.panels.len().max(1) as f64;
    let x_range = x_range(chart);
    for (i, panel) in chart.panels.iter().enumerate() {
        let frame = Frame {
            left: i as f64 * panel_width + LEFT,
            top: TITLE_HEIGHT + PANEL_TITLE,
            width: panel_width - LEFT - RIGHT,
            height: height - TITLE_HEIGHT - PANEL_TITLE - BOTTOM,
        };
        let (scale, ticks) = if chart.shared_y {
            y_scale(&chart.panels)
        } else {
            y_scale(std::slice::from_ref(panel))
        };
        draw_panel(&mut svg, panel, &frame, x_range, (scale, &ticks));
    }
    text(
        &mut svg,
        plots_width / 2.0,
        height - 38.0,
        15.0,
        "middle",
        &chart.x_label,
    );
    text(&mut svg, 12.0, height - 12.0, 13.0, "start", &chart.note);
    legend(&mut svg, chart, plots_width + 10.0, height - BOTTOM);
    svg.push_str("</svg>\n");
    svg
}

/// A plot's rectangle on the page.
struct Frame {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// How values map to a plot's vertical axis.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    /// The fraction of the axis height at `v` (0 at the bottom), clamped to the axis.
    fn fraction(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        f.clamp(0.0, 1.0)
    }

    /// True if `v` lies on the axis (not pinned to an end).
    fn contains(&self, v: f64) -> bool {
        v >= self.lo && v <= self.hi
    }
}

impl Frame {
    /// Inside the frame, the x axis keeps [`X_PAD`] pixels clear at each end for the offsets of
    /// [`dodges`].
    fn x(&self, (lo, hi): (f64, f64), v: f64) -> f64 {
        self.left + X_PAD + (v - lo) / (hi - lo) * (self.width - 2.0 * X_PAD)
    }
    fn y(&self, scale: &Scale, v: f64) -> f64 {
        self.top + self.height - scale.fraction(v) * self.height
    }
}

/// The x axis shared by every panel: from 0 to the largest x, on a round tick.
fn x_range(chart: &Chart) -> (f64, f64) {
    let max = chart
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| &s.points)
        .map(|p| p.x)
        .fold(0.0f64, f64::max);
    let ticks = linear_ticks(0.0, max.max(1.0));
    (0.0, ticks.last().copied().unwrap_or(1.0).max(max))
}

/// The range a y axis must show: every point (measured or theory), widened by the interval bars
/// but only so far: by half the points' own spread (at least a twentieth of their size) on a
/// linear axis, to three times the largest point on a log one, and never below zero for a measure
/// whose points are all non-negative. Two seeds give intervals 12.7 standard errors wide
/// (Student's t with one degree of freedom), which would otherwise flatten the data into a line;
/// bars that reach further run off the axis without their cap. On a log axis lower ends are left
/// out: a symmetric interval around a skewed latency often reaches zero, which a log axis cannot
/// show.
fn y_extent(panels: &[Panel], log: bool) -> (f64, f64) {
    let usable = |v: &f64| v.is_finite() && (!log || *v > 0.0);
    let points = || {
        panels
            .iter()
            .flat_map(|p| &p.series)
            .flat_map(|s| &s.points)
    };
    let ys: Vec<f64> = points().map(|p| p.y).filter(usable).collect();
    let data_lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let data_hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !data_lo.is_finite() {
        return (0.0, 1.0);
    }
    let reach = (data_hi - data_lo).max(data_hi.abs() * 0.1) * 0.5;
    let (floor, ceiling) = if log {
        (data_lo, data_hi * 3.0)
    } else {
        let floor = data_lo - reach;
        (
            if data_lo >= 0.0 {
                floor.max(0.0)
            } else {
                floor
            },
            data_hi + reach,
        )
    };
    let (mut lo, mut hi) = (data_lo, data_hi);
    for (a, b) in points().filter_map(|p| p.interval()) {
        if !log && a.is_finite() {
            lo = lo.min(a.max(floor));
        }
        if b.is_finite() {
            hi = hi.max(b.min(ceiling));
        }
    }
    (lo, hi)
}

/// The y scale of some panels: whole decades for a log axis; for a linear one, round ticks around the
/// data, from zero unless the data sit in a narrow band far from it (a delivery ratio between 85%
/// and 100% would be a flat line on a 0–100 axis).
fn y_scale(panels: &[Panel]) -> (Scale, Vec<f64>) {
    let log = panels.iter().any(|p| p.log);
    let (lo, hi) = y_extent(panels, log);
    if log {
        let lo = 10f64.powf(lo.max(1e-3).log10().floor());
        let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
        let scale = Scale { lo, hi, log: true };
        return (scale, log_ticks(lo, hi));
    }
    // Flat data (reliable delivers 100% everywhere) get an axis from zero, not a sliver.
    let (lo, hi) = match (hi - lo < 1e-9, lo > 0.0) {
        (true, true) => (0.0, hi),
        (true, false) => (lo, lo + 1.0),
        (false, _) => (lo, hi),
    };
    let pad = (hi - lo) * 0.05;
    let lo = if lo >= 0.0 && lo < 0.5 * hi {
        0.0
    } else {
        lo - pad
    };
    let mut ticks = linear_ticks(lo, hi + pad);
    let lo = ticks.first().copied().unwrap_or(lo);
    let mut hi = ticks.last().copied().unwrap_or(hi);
    // A measure with a ceiling (100% delivered) gets no ticks above it, just room for the marks.
    if let Some(ceiling) = panels.iter().find_map(|p| p.ceiling) {
        if hi > ceiling {
            ticks.retain(|t| *t <= ceiling);
            hi = ceiling + (ceiling - lo) * 0.03;
        }
    }
    (Scale { lo, hi, log: false }, ticks)
}

/// Round ticks (steps of 1, 2 or 5 times a power of ten) covering `lo..=hi`, about six of them.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 6.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        // With a little slack: 1.2 / 6 is a hair above 0.2 in floating point.
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    // Multiples of the step, so 0.1 * 3 prints as 0.3 rather than 0.30000000000000004.
    (first as i64..=last as i64)
        .map(|k| k as f64 * step)
        .collect()
}

/// Ticks of a log axis: every decade, and 2 and 5 times each when there are few decades.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10().round() as i32;
    let mut ticks = Vec::new();
    for d in 0..=decades {
        let base = lo * 10f64.powi(d);
        ticks.push(base);
        if decades <= 3 && d < decades {
            ticks.extend([2.0 * base, 5.0 * base]);
        }
    }
    ticks
}

/// A tick label: as few decimals as the value needs (at most three); `k` and `M` from 10,000 up,
/// so a long latency axis keeps narrow labels.
fn tick_label(v: f64) -> String {
    if v.abs() >= 1e6 {
        return format!("{}M", tick_label(v / 1e6));
    }
    if v.abs() >= 1e4 {
        return format!("{}k", tick_label(v / 1e3));
    }
    let mut s = format!("{v:.3}");
    while s.contains('.') && (s.ends_with('0') || s.ends_with('.')) {
        s.pop();
    }
    if s == "-0" {
        s = "0".to_owned();
    }
    s
}

fn draw_panel(
    svg: &mut String,
    panel: &Panel,
    frame: &Frame,
    xr: (f64, f64),
    (scale, y_ticks): (Scale, &[f64]),
) {
    let bottom = frame.top + frame.height;
    let _ = writeln!(svg, "<g data-panel=\"{}\">", escape(&panel.title));
    text(
        svg,
        frame.left + frame.width / 2.0,
        frame.top - 10.0,
        16.0,
        "middle",
        &panel.title,
    );
    // Grid and ticks.
    for &t in y_ticks {
        let y = frame.y(&scale, t);
        line(
            svg,
            frame.left,
            y,
            frame.left + frame.width,
            y,
            "#dddddd",
            1.0,
        );
        text(svg, frame.left - 6.0, y + 4.0, 12.0, "end", &tick_label(t));
    }
    for t in linear_ticks(xr.0, xr.1) {
        let x = frame.x(xr, t);
        line(svg, x, frame.top, x, bottom, "#eeeeee", 1.0);
        text(svg, x, bottom + 18.0, 12.0, "middle", &tick_label(t));
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" \
         stroke=\"#333333\" stroke-width=\"1\"/>",
        frame.left, frame.top, frame.width, frame.height
    );
    let (ty, tx) = (frame.top + frame.height / 2.0, frame.left - 52.0);
    let _ = writeln!(
        svg,
        "<text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"13\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {tx:.1} {ty:.1})\">{}</text>",
        escape(&panel.y_label)
    );
    let measured: Vec<&Series> = panel
        .series
        .iter()
        .filter(|s| s.style.role == Role::Measured)
        .collect();
    let dodges = dodges(measured.len());
    for (s, &dx) in measured.iter().zip(&dodges) {
        interval_bars(svg, s, frame, &scale, xr, dx);
    }
    for (s, &dx) in measured.iter().zip(&dodges) {
        polyline(svg, s, frame, &scale, xr, dx);
    }
    // Hollow marks first: a filled mark on the same spot then shows inside the ring.
    for filled in [false, true] {
        for (s, &dx) in measured.iter().zip(&dodges) {
            if s.style.filled == filled {
                marks(svg, s, frame, &scale, xr, dx);
            }
        }
    }
    for s in panel.series.iter().filter(|s| s.style.role == Role::Theory) {
        polyline(svg, s, frame, &scale, xr, 0.0);
    }
    svg.push_str("</g>\n");
}

/// The horizontal offsets, in pixels, of `n` measured series: each series is moved a few pixels
/// from its neighbours so that series with equal values (reliable at 100% with and without
/// bursts, raw and reliable latency on a clean link) lie side by side instead of one hiding the
/// other. The spread stays within `MAX_SPREAD` so no point strays far from its x.
fn dodges(n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![0.0; n];
    }
    let step = DODGE.min(MAX_SPREAD / (n - 1) as f64);
    (0..n)
        .map(|k| (k as f64 - (n - 1) as f64 / 2.0) * step)
        .collect()
}

/// The attributes naming a series, shared by all its elements.
fn series_attrs(s: &Series) -> String {
    let mode = s
        .style
        .mode
        .map(|m| format!(" data-mode=\"{}\"", m.name()))
        .unwrap_or_default();
    format!("data-series=\"{}\"{mode}", escape(&s.name))
}

/// One error bar per point with an interval, in the series' colour. An end beyond the axis is
/// cut at the axis and left without its cap, so a cut bar does not pass for a short one.
fn interval_bars(svg: &mut String, s: &Series, f: &Frame, scale: &Scale, xr: (f64, f64), dx: f64) {
    for p in s.points.iter().filter(|p| p.y.is_finite()) {
        let Some((lo, hi)) = p.interval() else {
            continue;
        };
        let (y0, y1) = (f.y(scale, lo), f.y(scale, hi));
        // An interval thinner than a pixel (e.g. 100% delivery in every seed) has nothing to show.
        if (y0 - y1).abs() < 1.0 {
            continue;
        }
        let x = f.x(xr, p.x) + dx;
        let mut d = format!("M{x:.1},{y0:.1}V{y1:.1}");
        for (end, y) in [(lo, y0), (hi, y1)] {
            if scale.contains(end) {
                let _ = write!(d, "M{:.1},{y:.1}H{:.1}", x - 4.0, x + 4.0);
            }
        }
        let _ = writeln!(
            svg,
            "<path data-role=\"interval\" {} d=\"{d}\" fill=\"none\" stroke=\"{}\" \
             stroke-width=\"1.3\"/>",
            series_attrs(s),
            s.style.color
        );
    }
}

fn polyline(svg: &mut String, s: &Series, f: &Frame, scale: &Scale, xr: (f64, f64), dx: f64) {
    let mut points = String::new();
    for p in s.points.iter().filter(|p| p.y.is_finite()) {
        let _ = write!(points, "{:.1},{:.1} ", f.x(xr, p.x) + dx, f.y(scale, p.y));
    }
    if points.is_empty() {
        return;
    }
    let role = match s.style.role {
        Role::Measured => "measured",
        Role::Theory => "theory",
    };
    let dash = s
        .style
        .dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default();
    let _ = writeln!(
        svg,
        "<polyline data-role=\"{role}\" {} points=\"{}\" fill=\"none\" stroke=\"{}\" \
         stroke-width=\"{}\"{dash} stroke-linejoin=\"round\"/>",
        series_attrs(s),
        points.trim_end(),
        s.style.color,
        s.style.width
    );
}

fn marks(svg: &mut String, s: &Series, f: &Frame, scale: &Scale, xr: (f64, f64), dx: f64) {
    let Some(marker) = s.style.marker else {
        return;
    };
    for p in s.points.iter().filter(|p| p.y.is_finite()) {
        let (x, y) = (f.x(xr, p.x) + dx, f.y(scale, p.y));
        mark(
            svg,
            marker,
            s.style.filled,
            s.style.color,
            x,
            y,
            &series_attrs(s),
        );
    }
}

/// One mark. Hollow marks are drawn larger than filled ones, so a hollow mark and a filled one on
/// the same spot (two series with the same value) both stay visible: a ring around a dot.
fn mark(svg: &mut String, marker: Marker, filled: bool, color: &str, x: f64, y: f64, attrs: &str) {
    let r = if filled { 4.5 } else { 6.5 };
    let fill = if filled { color } else { "#ffffff" };
    let paint = format!("fill=\"{fill}\" stroke=\"{color}\" stroke-width=\"1.8\"");
    let shape = marker.name();
    let _ = match marker {
        Marker::Circle => writeln!(
            svg,
            "<circle data-role=\"mark\" data-shape=\"{shape}\" {attrs} cx=\"{x:.1}\" \
             cy=\"{y:.1}\" r=\"{r}\" {paint}/>"
        ),
        Marker::Square => writeln!(
            svg,
            "<rect data-role=\"mark\" data-shape=\"{shape}\" {attrs} x=\"{:.1}\" y=\"{:.1}\" \
             width=\"{:.1}\" height=\"{:.1}\" {paint}/>",
            x - r * 0.9,
            y - r * 0.9,
            r * 1.8,
            r * 1.8
        ),
        _ => {
            let d = path_of(marker, x, y, r);
            // Crosses and pluses are strokes only: a hollow one would be indistinguishable.
            let paint = if matches!(marker, Marker::Cross | Marker::Plus) {
                format!(
                    "fill=\"none\" stroke=\"{color}\" stroke-width=\"{}\"",
                    if filled { 2.6 } else { 1.4 }
                )
            } else {
                paint
            };
            writeln!(
                svg,
                "<path data-role=\"mark\" data-shape=\"{shape}\" {attrs} d=\"{d}\" {paint}/>"
            )
        }
    };
}

/// The outline of a path-drawn mark centred on (x, y) with radius r.
fn path_of(marker: Marker, x: f64, y: f64, r: f64) -> String {
    let r = r * 1.15;
    match marker {
        Marker::TriangleUp => format!(
            "M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z",
            x,
            y - r,
            x + r,
            y + r * 0.75,
            x - r,
            y + r * 0.75
        ),
        Marker::TriangleDown => format!(
            "M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z",
            x,
            y + r,
            x + r,
            y - r * 0.75,
            x - r,
            y - r * 0.75
        ),
        Marker::Diamond => format!(
            "M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z",
            x,
            y - r,
            x + r,
            y,
            x,
            y + r,
            x - r,
            y
        ),
        Marker::TriangleLeft => format!(
            "M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z",
            x - r,
            y,
            x + r * 0.75,
            y - r,
            x + r * 0.75,
            y + r
        ),
        Marker::TriangleRight => format!(
            "M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z",
            x + r,
            y,
            x - r * 0.75,
            y - r,
            x - r * 0.75,
            y + r
        ),
        Marker::Hourglass => format!(
            "M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}Z",
            x - r,
            y - r,
            x + r,
            y - r,
            x - r,
            y + r,
            x + r,
            y + r
        ),
        Marker::Cross => format!(
            "M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}",
            x - r,
            y - r,
            x + r,
            y + r,
            x - r,
            y + r,
            x + r,
            y - r
        ),
        Marker::Pentagon => polygon(5, x, y, r),
        Marker::Hexagon => polygon(6, x, y, r),
        Marker::Plus | Marker::Circle | Marker::Square => format!(
            "M{:.1},{:.1}H{:.1}M{:.1},{:.1}V{:.1}",
            x - r,
            y,
            x + r,
            x,
            y - r,
            y + r
        ),
    }
}

/// A regular polygon of `sides` corners around (x, y), the first straight up.
fn polygon(sides: u32, x: f64, y: f64, r: f64) -> String {
    let mut d = String::new();
    for i in 0..sides {
        let angle = std::f64::consts::TAU * f64::from(i) / f64::from(sides);
        let (px, py) = (x + r * angle.sin(), y - r * angle.cos());
        d.push_str(&format!(
            "{}{px:.1},{py:.1}",
            if i == 0 { 'M' } else { 'L' }
        ));
    }
    d.push('Z');
    d
}

/// The legend: one entry per series (a sample of its line and mark, then its name), in the order
/// of the first panel that has it, then what the bars mean.
fn legend(svg: &mut String, chart: &Chart, left: f64, bottom: f64) {
    let mut entries: Vec<&Series> = Vec::new();
    for s in chart.panels.iter().flat_map(|p| &p.series) {
        if !entries.iter().any(|e| e.name == s.name) {
            entries.push(s);
        }
    }
    let mut y = TITLE_HEIGHT + PANEL_TITLE + 10.0;
    // 26 pixels an entry, closer when many (every mode, several loss patterns) must fit.
    let rows = entries.len() + usize::from(chart.intervals);
    let step = ((bottom - y) / rows.max(1) as f64).min(26.0);
    for s in entries {
        let dash = s
            .style
            .dash
            .map(|d| format!(" stroke-dasharray=\"{d}\""))
            .unwrap_or_default();
        let _ = writeln!(
            svg,
            "<path data-role=\"legend\" {} d=\"M{:.1},{y:.1}H{:.1}\" stroke=\"{}\" \
             stroke-width=\"{}\"{dash}/>",
            series_attrs(s),
            left,
            left + 44.0,
            s.style.color,
            s.style.width
        );
        if let Some(marker) = s.style.marker {
            let attrs = format!("data-legend=\"true\" {}", series_attrs(s));
            mark(
                svg,
                marker,
                s.style.filled,
                s.style.color,
                left + 22.0,
                y,
                &attrs,
            );
        }
        text(svg, left + 54.0, y + 5.0, 14.0, "start", &s.name);
        y += step;
    }
    if chart.intervals {
        let x = left + 22.0;
        let _ = writeln!(
            svg,
            "<path d=\"M{x:.1},{:.1}V{:.1}M{:.1},{:.1}H{:.1}M{:.1},{:.1}H{:.1}\" fill=\"none\" \
             stroke=\"#333333\" stroke-width=\"1.3\"/>",
            y - 9.0,
            y + 9.0,
            x - 4.0,
            y - 9.0,
            x + 4.0,
            x - 4.0,
            y + 9.0,
            x + 4.0
        );
        text(svg, left + 54.0, y + 5.0, 14.0, "start", "95% interval");
    }
}

fn line(svg: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, color: &str, width: f64) {
    let _ = writeln!(
        svg,
        "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{color}\" \
         stroke-width=\"{width}\"/>"
    );
}

fn text(svg: &mut String, x: f64, y: f64, size: f64, anchor: &str, content: &str) {
    let _ = writeln!(
        svg,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" text-anchor=\"{anchor}\">{}</text>",
        escape(content)
    );
}

/// `s` with the characters XML gives a meaning escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_cover_the_range() {
        assert_eq!(
            linear_ticks(0.0, 30.0),
            [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        let t = linear_ticks(0.9, 2.1);
        assert_eq!(t.first(), Some(&0.8));
        assert_eq!(t.last(), Some(&2.2));
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(5000.0), "5000");
        assert_eq!(tick_label(20_000.0), "20k");
        assert_eq!(tick_label(10_000_000.0), "10M");
    }

    #[test]
    fn log_ticks_mark_decades_and_their_halves_and_fifths() {
        assert_eq!(
            log_ticks(10.0, 1000.0),
            [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        assert_eq!(log_ticks(1.0, 1e5).len(), 6);
        let s = Scale {
            lo: 10.0,
            hi: 1000.0,
            log: true,
        };
        assert!((s.fraction(100.0) - 0.5).abs() < 1e-12);
        // Values outside the axis (or a zero on a log axis) are pinned to its ends.
        assert_eq!(s.fraction(0.0), 0.0);
        assert_eq!(s.fraction(1e6), 1.0);
    }

    fn panel(log: bool, points: &[(f64, f64)]) -> Panel {
        use super::super::{Point, Style};
        Panel {
            title: "t".to_owned(),
            y_label: "y".to_owned(),
            log,
            ceiling: None,
            series: vec![Series {
                name: "s".to_owned(),
                style: Style {
                    role: Role::Measured,
                    mode: None,
                    color: "#000000",
                    marker: None,
                    filled: true,
                    dash: None,
                    width: 1.0,
                },
                points: points
                    .iter()
                    .enumerate()
                    .map(|(i, &(y, h))| Point {
                        x: i as f64,
                        y,
                        ci95: Some(h),
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn wide_intervals_widen_the_axis_only_so_far() {
        // Points 1..2 with narrow intervals: the axis shows the intervals whole.
        let narrow = panel(false, &[(1.0, 0.1), (2.0, 0.1)]);
        assert_eq!(y_extent(std::slice::from_ref(&narrow), false), (0.9, 2.1));
        // A two-seed interval of ±10 around 2: the axis stops half the data's spread beyond it,
        // and a non-negative measure's axis never goes below zero.
        let wide = panel(false, &[(1.0, 0.1), (2.0, 10.0)]);
        assert_eq!(y_extent(std::slice::from_ref(&wide), false), (0.5, 2.5));
        let (lo, hi) = y_extent(&[panel(false, &[(0.1, 0.1), (2.0, 10.0)])], false);
        assert_eq!((lo, hi), (0.0, 2.95));
        // On a log axis lower ends are ignored and upper ends reach at most three times the top.
        let log = panel(true, &[(20.0, 100.0), (500.0, 5000.0)]);
        assert_eq!(y_extent(&[log], true), (20.0, 1500.0));
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }
}
