//! Drawing the [`Model`] with ratatui: history on top, status bar, input line at the bottom.
//!
//! The layout is computed by hand rather than by ratatui's constraint solver so that tiny
//! terminals degrade in a chosen order: the input line is the last thing to go (one row shows
//! only it), then the status bar (two rows), and the history gets whatever is left. The status
//! bar is responsive too: one row when its fields fit, two on a terminal of ten rows or more
//! when they do not, and within a row the least important fields shorten, then go, in an order
//! fixed by rank (see [`status_lines`]), so mode, peer, state and counts stay to the last. Every entry
//! is turned into styled segments and wrapped by `wrap.rs`, so the number of screen lines is
//! known and scrolling can be exact. Each of my messages ends with its delivery mark, which is
//! where the difference between raw UDP and the reliable transport shows, line by line.

use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::UnicodeWidthStr;

use super::model::{
    canonical, format_ms, ConnState, Delivery, Entry, Model, NoticeKind, Scroll, Viewport,
};
use super::wrap::{sanitize, wrap};
use crate::chat::Mode;
use crate::notice::number;
use crate::stats::kernel_time;
use udpchat_driver::tcp::KernelView;

/// The prompt before the input line.
const PROMPT: &str = "> ";

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Areas {
    history: Rect,
    status: Rect,
    input: Rect,
}

/// Terminals at least this tall may give the status bar a second row when one row cannot hold
/// every field; smaller ones keep the rows for the history.
pub const TWO_ROW_STATUS_HEIGHT: u16 = 10;

/// Splits `area` into history, a status bar of `status_rows` rows (1 or 2) and the input line.
fn split(area: Rect, status_rows: u16) -> Areas {
    let rows = |y: u16, height: u16| Rect::new(area.x, y, area.width, height);
    let empty = Rect::new(area.x, area.y, area.width, 0);
    match area.height {
        0 => Areas {
            history: empty,
            status: empty,
            input: empty,
        },
        1 => Areas {
            history: empty,
            status: empty,
            input: rows(area.y, 1),
        },
        2 => Areas {
            history: empty,
            status: rows(area.y, 1),
            input: rows(area.y + 1, 1),
        },
        h => {
            let status_rows = status_rows.clamp(1, h - 2);
            let history = h - 1 - status_rows;
            Areas {
                history: rows(area.y, history),
                status: rows(area.y + history, status_rows),
                input: rows(area.y + h - 1, 1),
            }
        }
    }
}

/// Draws the whole screen; returns what the history area measured, for
/// [`Model::set_viewport`]. `cache` keeps wrapped entries from one frame to the next.
pub fn draw(frame: &mut Frame<'_>, model: &Model, cache: &mut HistoryCache) -> Viewport {
    let area = frame.area();
    let status = status_lines(model, area.width, area.height >= TWO_ROW_STATUS_HEIGHT);
    let areas = split(area, u16::try_from(status.len()).unwrap_or(1));
    let viewport = draw_history(frame, model, cache, areas.history);
    if areas.status.height > 0 {
        frame.render_widget(Paragraph::new(status).style(bar_style()), areas.status);
    }
    if areas.input.height > 0 && areas.input.width > 0 {
        draw_input(frame, model, areas.input);
    }
    viewport
}

fn draw_history(
    frame: &mut Frame<'_>,
    model: &Model,
    cache: &mut HistoryCache,
    area: Rect,
) -> Viewport {
    cache.refresh(model, area.width);
    let viewport = Viewport {
        height: usize::from(area.height),
        total_lines: cache.total_lines,
    };
    if area.height == 0 || area.width == 0 {
        return viewport;
    }
    let top = match model.scroll() {
        Scroll::Follow => viewport.max_top(),
        Scroll::Top(top) => top.min(viewport.max_top()),
    };
    frame.render_widget(Paragraph::new(cache.lines(top, viewport.height)), area);
    viewport
}

/// The history's entries, wrapped, kept between frames.
///
/// Wrapping is by far the costliest part of a frame (grapheme segmentation and width lookups
/// over every character), and a long chat holds thousands of entries, of which a frame shows a
/// screenful. So each entry's lines are kept with a fingerprint (a hash) of the entry, and
/// wrapped again only when the entry changed (a delivery mark updated in place, a notice that
/// repeated) or the width did.
#[derive(Debug, Default)]
pub struct HistoryCache {
    width: u16,
    numbered: bool,
    /// By absolute history index, ascending, like the model's history.
    entries: Vec<(u64, Wrapped)>,
    total_lines: usize,
}

#[derive(Debug)]
struct Wrapped {
    fingerprint: u64,
    lines: Vec<Line<'static>>,
}

impl HistoryCache {
    /// Brings the cache in line with `model`'s history at `width`.
    fn refresh(&mut self, model: &Model, width: u16) {
        // Raw messages are numbered on the wire (except --plain); showing the numbers lets the
        // reader match the other side's gap notices to the lines that went missing.
        let numbered = model.info().mode == Mode::Raw && !model.info().plain;
        if width != self.width || numbered != self.numbered {
            self.entries.clear();
            self.width = width;
            self.numbered = numbered;
        }
        // Both sequences ascend by absolute index: walk them together.
        let mut old = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut total_lines = 0;
        for (index, entry) in model.indexed_history() {
            while old.next_if(|(i, _)| *i < index).is_some() {}
            let fingerprint = fingerprint(entry);
            let wrapped = match old.next_if(|(i, w)| *i == index && w.fingerprint == fingerprint) {
                Some((_, wrapped)) => wrapped,
                None => {
                    let mut lines = Vec::new();
                    entry_lines(numbered, entry, width, &mut lines);
                    Wrapped { fingerprint, lines }
                }
            };
            total_lines += wrapped.lines.len();
            self.entries.push((index, wrapped));
        }
        self.total_lines = total_lines;
    }

    /// `count` lines from line `top` on.
    fn lines(&self, top: usize, count: usize) -> Vec<Line<'static>> {
        self.entries
            .iter()
            .flat_map(|(_, wrapped)| wrapped.lines.iter())
            .skip(top)
            .take(count)
            .cloned()
            .collect()
    }
}

fn fingerprint(entry: &Entry) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    entry.hash(&mut hasher);
    hasher.finish()
}

fn entry_lines(numbered: bool, entry: &Entry, width: u16, out: &mut Vec<Line<'static>>) {
    match entry {
        Entry::Mine {
            nick,
            id,
            text,
            delivery,
        } => {
            let seq = numbered.then_some(id.0);
            let (mark, mark_style) = delivery_mark(*delivery);
            let speaker = Style::default().fg(Color::Cyan);
            out.extend(message_lines(
                seq,
                (nick, speaker),
                text,
                Some((&mark, mark_style)),
                width,
            ));
        }
        Entry::Peer { nick, seq, text } => {
            let seq = seq.filter(|_| numbered);
            let speaker = Style::default().fg(Color::Magenta);
            out.extend(message_lines(seq, (nick, speaker), text, None, width));
        }
        Entry::Notice { kind, text, repeat } => {
            let (label, style) = notice_label(*kind);
            let text = sanitize(text);
            let times = if *repeat > 1 {
                format!(" (×{repeat})")
            } else {
                String::new()
            };
            out.extend(wrap(
                &[
                    (label, style.add_modifier(Modifier::BOLD)),
                    (&text, style),
                    (&times, style),
                ],
                width,
            ));
        }
        Entry::Table { title, rows } => table_lines(title, rows, width, out),
    }
}

/// One message: its number (`#3 `, counted from 1) if shown, the speaker, the text and, for
/// mine, the delivery mark.
fn message_lines(
    seq: Option<u64>,
    (nick, speaker): (&str, Style),
    text: &str,
    mark: Option<(&str, Style)>,
    width: u16,
) -> Vec<Line<'static>> {
    let dim = Style::default().fg(Color::DarkGray);
    let seq = seq.map_or_else(String::new, |seq| format!("#{} ", number(seq)));
    let nick = sanitize(nick);
    let text = sanitize(text);
    let mut segments = vec![
        (seq.as_str(), dim),
        (nick.as_str(), speaker.add_modifier(Modifier::BOLD)),
        (": ", Style::default()),
        (text.as_str(), Style::default()),
    ];
    if let Some((mark, style)) = mark {
        segments.extend([("  ", Style::default()), (mark, style)]);
    }
    wrap(&segments, width)
}

fn table_lines(title: &str, rows: &[(String, String)], width: u16, out: &mut Vec<Line<'static>>) {
    let dim = Style::default().fg(Color::DarkGray);
    let heading = Style::default().add_modifier(Modifier::BOLD);
    out.extend(wrap(&[("── ", dim), (title, heading), (" ──", dim)], width));
    let name_width = rows.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
    for (name, value) in rows {
        let pad = " ".repeat(name_width - name.width() + 2);
        out.extend(wrap(
            &[
                ("  ", Style::default()),
                (name, dim),
                (&pad, Style::default()),
                (value, Style::default()),
            ],
            width,
        ));
    }
}

/// The mark after each of my messages: what the transport knows about its fate.
pub fn delivery_mark(delivery: Delivery) -> (String, Style) {
    match delivery {
        Delivery::Unconfirmed => (
            "· sent, unconfirmed".into(),
            Style::default().fg(Color::DarkGray),
        ),
        Delivery::Sending => ("… sending".into(), Style::default().fg(Color::Yellow)),
        Delivery::Delivered { rtt: Some(rtt) } => (
            format!("✓ delivered {}", format_ms(rtt)),
            Style::default().fg(Color::Green),
        ),
        Delivery::Delivered { rtt: None } => {
            ("✓ delivered".into(), Style::default().fg(Color::Green))
        }
        Delivery::Lost => (
            "✗ lost".into(),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Delivery::Kernel => (
            "· sent to the kernel".into(),
            Style::default().fg(Color::DarkGray),
        ),
    }
}

fn notice_label(kind: NoticeKind) -> (&'static str, Style) {
    let style = Style::default();
    match kind {
        NoticeKind::Info => ("* ", style.fg(Color::Blue)),
        NoticeKind::Gap => ("[gap] ", style.fg(Color::Yellow)),
        NoticeKind::Duplicate => ("[duplicate] ", style.fg(Color::Yellow)),
        NoticeKind::Reordered => ("[reordered] ", style.fg(Color::Yellow)),
        NoticeKind::Restart => ("[restart] ", style.fg(Color::Yellow)),
        NoticeKind::Dropped => ("[dropped] ", style.fg(Color::DarkGray)),
        NoticeKind::Delivered => ("[delivered] ", style.fg(Color::Green)),
        NoticeKind::Lost => ("[lost] ", style.fg(Color::Red)),
        NoticeKind::Error => ("[error] ", style.fg(Color::Red)),
    }
}

fn bar_style() -> Style {
    Style::default().bg(Color::Blue).fg(Color::White)
}

/// The status bar at `width` columns, as one line or, when one line cannot hold every field
/// and `two_rows` allows, two. Fields shrink and then disappear in a fixed order of importance
/// (see [`status_fields`]): mode, peer, state and the sent/delivered/lost counts stay longest,
/// so they are there at 80×24 and legible at 40 columns.
pub fn status_lines(model: &Model, width: u16, two_rows: bool) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let (identity, figures) = status_fields(model);
    let all: Vec<Field> = identity.iter().chain(&figures).cloned().collect();
    let (one_row, shrunk) = fitted(&all, width);
    if !two_rows || shrunk == 0 {
        return vec![one_row];
    }
    vec![fitted(&identity, width).0, fitted(&figures, width).0]
}

/// One field of the status bar: what separates it from the field before it, then its forms
/// from the fullest to the shortest (an empty form hides the field), each with the rank at
/// which the bar switches to it when short of room (lower ranks give way first).
#[derive(Debug, Clone)]
struct Field {
    join: &'static str,
    forms: Vec<(u8, Span<'static>)>,
}

impl Field {
    /// A field with one form that never goes.
    fn fixed(join: &'static str, span: Span<'static>) -> Field {
        Field {
            join,
            forms: vec![(0, span)],
        }
    }

    /// Adds a shorter form, used from `rank` on.
    fn or(mut self, rank: u8, span: Span<'static>) -> Field {
        self.forms.push((rank, span));
        self
    }

    /// Adds "hidden" as the last form, from `rank` on.
    fn or_hide(self, rank: u8) -> Field {
        self.or(rank, Span::raw(""))
    }
}

/// Fits `fields` into `width` columns: applies the shrinking steps in rank order until the line
/// fits or nothing can shrink (then the terminal cuts its end); returns the line and how many
/// steps it took.
fn fitted(fields: &[Field], width: usize) -> (Line<'static>, usize) {
    let mut chosen = vec![0usize; fields.len()];
    let render = |chosen: &[usize]| {
        let mut spans: Vec<Span<'static>> = Vec::new();
        for (field, &form) in fields.iter().zip(chosen) {
            let span = &field.forms[form].1;
            if span.content.is_empty() {
                continue;
            }
            // The first field shown on a line needs no separator, only a margin.
            let join = if spans.is_empty() { " " } else { field.join };
            if !(spans.is_empty() && span.content.starts_with(' ')) {
                spans.push(Span::styled(join, bar_style()));
            }
            spans.push(span.clone());
        }
        Line::from(spans)
    };
    let mut steps = 0;
    loop {
        let line = render(&chosen);
        if line.width() <= width {
            return (line, steps);
        }
        let next = fields
            .iter()
            .zip(&chosen)
            .enumerate()
            .filter_map(|(i, (field, &form))| field.forms.get(form + 1).map(|(rank, _)| (*rank, i)))
            .min();
        match next {
            Some((_, i)) => chosen[i] += 1,
            None => return (line, steps),
        }
        steps += 1;
    }
}

/// The status bar's fields, in two groups: who and where (mode, scrolling, me → peer, state),
/// and the figures (counts, RTT, retransmissions, impairment). The ranks say what gives way
/// first when room is short: the words "no impairment", then my own address, the long words,
/// the impairment, the RTT and retransmissions, the peer's address when its name is known;
/// the mode, the state and the counts only shorten.
fn status_fields(model: &Model) -> (Vec<Field>, Vec<Field>) {
    let info = model.info();
    let bar = bar_style();
    let mode_style = match info.mode {
        Mode::Raw => Style::default().bg(Color::Yellow).fg(Color::Black),
        Mode::Reliable => Style::default().bg(Color::Green).fg(Color::Black),
        Mode::Tcp => Style::default().bg(Color::Magenta).fg(Color::Black),
    }
    .add_modifier(Modifier::BOLD);
    let (long_mode, short_mode) = match (info.mode, info.plain) {
        (Mode::Raw, true) => (" RAW plain ", " RAW·p "),
        (Mode::Raw, false) => (" RAW ", " RAW "),
        (Mode::Reliable, _) => (" RELIABLE ", " REL "),
        (Mode::Tcp, true) => (" TCP plain ", " TCP·p "),
        (Mode::Tcp, false) => (" TCP ", " TCP "),
    };
    let mut identity = vec![Field::fixed("", Span::styled(long_mode, mode_style))
        .or(40, Span::styled(short_mode, mode_style))];
    if let Scroll::Top(_) = model.scroll() {
        // Right after the mode: a narrow terminal must still show why new lines do not appear.
        let style = Style::default()
            .bg(Color::White)
            .fg(Color::Black)
            .add_modifier(Modifier::BOLD);
        identity.push(
            Field::fixed("", Span::styled(" ↑ scrolled (PgDn) ", style))
                .or(20, Span::styled(" ↑PgDn ", style)),
        );
    }
    let me = sanitize(model.nick());
    identity.push(
        Field::fixed(
            " ",
            Span::styled(format!("{me} {} →", canonical(info.local)), bar),
        )
        .or(2, Span::styled(format!("{me} →"), bar))
        .or_hide(5),
    );
    identity.push(peer_field(model));
    identity.push(state_field(model));
    (identity, figure_fields(model))
}

/// The peer: `alice @ 10.0.0.2:2323`, then `alice@10.0.0.2:2323`, then `alice` alone.
fn peer_field(model: &Model) -> Field {
    let bar = bar_style();
    match (model.peer().map(canonical), model.peer_nick()) {
        (Some(addr), Some(nick)) => {
            let nick = sanitize(nick);
            Field::fixed(" ", Span::styled(format!("{nick} @ {addr}"), bar))
                .or(8, Span::styled(format!("{nick}@{addr}"), bar))
                .or(30, Span::styled(nick, bar))
        }
        (Some(addr), None) => Field::fixed(" ", Span::styled(addr.to_string(), bar)),
        (None, _) => Field::fixed(" ", Span::styled("no peer yet", bar)),
    }
}

/// Where the session stands; while a handshake goes unanswered, how often it was retried.
fn state_field(model: &Model) -> Field {
    let mode = model.info().mode;
    let bar = bar_style();
    let style = match model.conn() {
        ConnState::Unreachable | ConnState::PeerLeft => {
            bar.fg(Color::LightRed).add_modifier(Modifier::BOLD)
        }
        _ => bar,
    };
    let state = model.conn();
    match model.handshake_retries() {
        0 => Field::fixed(SEPARATOR, Span::styled(state.label(mode), style))
            .or(6, Span::styled(state.short_label(mode), style)),
        retries => Field::fixed(
            SEPARATOR,
            Span::styled(format!("connecting: no answer, retry {retries}"), style),
        )
        .or(6, Span::styled(format!("no answer ({retries})"), style)),
    }
}

/// Counts, RTT, retransmissions and impairment.
fn figure_fields(model: &Model) -> Vec<Field> {
    let info = model.info();
    let bar = bar_style();
    let mut fields = Vec::new();
    fields.push(match info.mode {
        Mode::Raw => Field::fixed(
            SEPARATOR,
            Span::styled(format!("sent {} (unconfirmed)", model.sent()), bar),
        )
        .or(7, Span::styled(format!("sent {}", model.sent()), bar)),
        Mode::Reliable => Field::fixed(
            SEPARATOR,
            Span::styled(
                format!(
                    "sent {} ✓{} ✗{}",
                    model.sent(),
                    model.delivered(),
                    model.lost()
                ),
                bar,
            ),
        ),
        Mode::Tcp => Field::fixed(
            SEPARATOR,
            Span::styled(format!("sent {} (to the kernel)", model.sent()), bar),
        )
        .or(7, Span::styled(format!("sent {}", model.sent()), bar)),
    });
    if info.mode == Mode::Tcp {
        fields.push(kernel_field(model));
    }
    if info.mode == Mode::Reliable {
        let rtt = model.rtt().map_or_else(|| "-".to_string(), format_ms);
        fields.push(Field::fixed(SEPARATOR, Span::styled(format!("rtt {rtt}"), bar)).or_hide(12));
        let retransmits = model.retransmissions();
        fields.push(
            Field::fixed(
                SEPARATOR,
                Span::styled(format!("retransmits {retransmits}"), bar),
            )
            .or(3, Span::styled(format!("rtx {retransmits}"), bar))
            .or_hide(11),
        );
    }
    fields.push(encryption_field(model));
    fields.push(match &info.impairment {
        Some(imp) => {
            Field::fixed(SEPARATOR, Span::styled(format!("impaired: {imp}"), bar)).or_hide(10)
        }
        None => Field::fixed(SEPARATOR, Span::styled("no impairment", bar)).or_hide(1),
    });
    fields
}

/// Encryption: "not encrypted", or the handshake's progress and then the code to compare. The
/// code never hides: it is what two people read to each other.
fn encryption_field(model: &Model) -> Field {
    let bar = bar_style();
    let warn = bar.fg(Color::LightRed).add_modifier(Modifier::BOLD);
    let secure = bar.fg(Color::LightGreen).add_modifier(Modifier::BOLD);
    if !model.info().encrypted {
        return Field::fixed(SEPARATOR, Span::styled("not encrypted", bar)).or_hide(2);
    }
    match (model.sas(), model.handshake_failed()) {
        (_, true) => Field::fixed(
            SEPARATOR,
            Span::styled("encryption: handshake failed", warn),
        )
        .or(9, Span::styled("handshake failed", warn)),
        (Some(sas), false) => Field::fixed(
            SEPARATOR,
            Span::styled(format!("encrypted, code {sas}"), secure),
        )
        .or(9, Span::styled(format!("enc {sas}"), secure)),
        (None, false) => Field::fixed(SEPARATOR, Span::styled("encrypted: handshake…", bar))
            .or(9, Span::styled("enc…", bar)),
    }
}

/// TCP mode: what the kernel knows (`TCP_INFO`), or why it cannot say.
fn kernel_field(model: &Model) -> Field {
    let bar = bar_style();
    match model.kernel() {
        KernelView::Known(info) => Field::fixed(
            SEPARATOR,
            Span::styled(
                format!(
                    "kernel: rtt {} ±{} cwnd {} rtx {} unacked {}",
                    kernel_time(info.rtt),
                    kernel_time(info.rttvar),
                    info.cwnd,
                    info.retransmits,
                    info.unacked
                ),
                bar,
            ),
        )
        .or(
            11,
            Span::styled(
                format!("rtt {} rtx {}", kernel_time(info.rtt), info.retransmits),
                bar,
            ),
        )
        .or_hide(12),
        other => Field::fixed(
            SEPARATOR,
            Span::styled(
                format!("TCP_INFO: {}", crate::stats::kernel_note(other)),
                bar,
            ),
        )
        .or_hide(12),
    }
}

/// Between two fields of the status bar.
const SEPARATOR: &str = " │ ";

fn draw_input(frame: &mut Frame<'_>, model: &Model, area: Rect) {
    // The prompt goes first when the line gets too narrow for it.
    let prompt = if usize::from(area.width) > PROMPT.width() + 1 {
        PROMPT
    } else {
        ""
    };
    let prompt_width = u16::try_from(prompt.width()).unwrap_or(0);
    let field = area.width.saturating_sub(prompt_width);
    let window = model.input().window(field);
    let line = Line::from(vec![
        Span::styled(prompt, Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(window.visible.to_string()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + prompt_width + window.cursor_column.min(field.saturating_sub(1));
    frame.set_cursor_position(Position::new(x, area.y));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::SocketAddr;
    use std::time::Duration;

    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;
    use ratatui::Terminal;
    use udpchat_reliable::{Event, MessageId, Stats};

    use super::*;
    use crate::tui::model::{Action, SessionInfo};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn model(mode: Mode) -> Model {
        Model::new(SessionInfo {
            mode,
            nick: "bob".into(),
            local: addr(2323),
            peer: Some(addr(4000)),
            plain: false,
            impairment: Some("loss 20%".into()),
            encrypted: false,
        })
    }

    /// Draws `model` at `width`×`height` and returns the screen's rows as text.
    fn render(model: &mut Model, width: u16, height: u16) -> Vec<String> {
        render_with(model, &mut HistoryCache::default(), width, height)
    }

    /// Like `render`, keeping wrapped lines in `cache` as the chat screen does.
    fn render_with(
        model: &mut Model,
        cache: &mut HistoryCache,
        width: u16,
        height: u16,
    ) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let mut viewport = Viewport::default();
        terminal
            .draw(|frame| viewport = draw(frame, model, cache))
            .unwrap();
        model.set_viewport(viewport);
        rows(terminal.backend().buffer())
    }

    fn rows(buffer: &Buffer) -> Vec<String> {
        let area = buffer.area;
        (0..area.height)
            .map(|y| {
                let mut row = String::new();
                let mut x = 0;
                while x < area.width {
                    let symbol = buffer[(x, y)].symbol();
                    row.push_str(symbol);
                    // A wide character fills the cell after it, which holds a blank.
                    x += u16::try_from(symbol.width().max(1)).unwrap();
                }
                row.trim_end().to_string()
            })
            .collect()
    }

    fn screen(rows: &[String]) -> String {
        rows.join("\n")
    }

    fn peer_says(m: &mut Model, seq: u64, text: &str) {
        m.apply_event(Event::Message {
            from: addr(4000),
            nick: "alice".into(),
            seq: Some(seq),
            text: text.into(),
        });
    }

    #[test]
    fn reliable_lines_show_sending_then_delivered_with_rtt_in_place() {
        let mut m = model(Mode::Reliable);
        m.record_send("first".into(), Ok(MessageId(0)));
        m.record_send("second".into(), Ok(MessageId(1)));
        let before = render(&mut m, 60, 8);
        assert!(
            before.iter().any(|r| r == "bob: first  … sending"),
            "{before:#?}"
        );
        m.apply_event(Event::Delivered {
            id: MessageId(0),
            rtt: Some(Duration::from_millis(23)),
        });
        m.apply_event(Event::Lost { id: MessageId(1) });
        let after = render(&mut m, 60, 8);
        // Same rows as before: updated in place, not appended.
        let row_of = |rows: &[String], needle: &str| rows.iter().position(|r| r.contains(needle));
        assert_eq!(row_of(&after, "bob: first"), row_of(&before, "bob: first"));
        assert!(
            after.iter().any(|r| r == "bob: first  ✓ delivered 23 ms"),
            "{after:#?}"
        );
        assert!(
            after.iter().any(|r| r == "bob: second  ✗ lost"),
            "{after:#?}"
        );
        assert!(!screen(&after).contains("… sending"));
    }

    #[test]
    fn cached_lines_follow_changes_in_place_and_in_width() {
        let mut m = model(Mode::Reliable);
        let mut cache = HistoryCache::default();
        m.record_send("first".into(), Ok(MessageId(0)));
        let rows = render_with(&mut m, &mut cache, 60, 8);
        assert!(
            rows.contains(&"bob: first  … sending".to_string()),
            "{rows:#?}"
        );
        m.apply_event(Event::Delivered {
            id: MessageId(0),
            rtt: None,
        });
        let rows = render_with(&mut m, &mut cache, 60, 8);
        assert!(
            rows.contains(&"bob: first  ✓ delivered".to_string()),
            "{rows:#?}"
        );
        // Narrower: the same entry wraps anew.
        let rows = render_with(&mut m, &mut cache, 12, 8);
        assert!(rows.contains(&"bob: first".to_string()), "{rows:#?}");
        assert!(rows.contains(&"  delivered".to_string()), "{rows:#?}");
        // Cleared entries leave the cache; later ones are drawn from scratch.
        m.handle(Action::Paste("/clear".into()));
        m.handle(Action::Submit);
        peer_says(&mut m, 0, "after");
        let rows = render_with(&mut m, &mut cache, 60, 8);
        assert_eq!(rows[0], "alice: after", "{rows:#?}");
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.total_lines, 1);
    }

    #[test]
    fn raw_lines_are_unconfirmed_and_gaps_are_marked_notices() {
        let mut m = model(Mode::Raw);
        m.record_send("hello".into(), Ok(MessageId(0)));
        peer_says(&mut m, 0, "hi bob");
        m.apply_event(Event::Gap {
            from: addr(4000),
            first: 1,
            last: 2,
        });
        peer_says(&mut m, 3, "did you get that?");
        m.apply_event(Event::Duplicate {
            from: addr(4000),
            seq: 3,
        });
        m.apply_event(Event::Reordered {
            from: addr(4000),
            seq: 1,
        });
        let rows = render(&mut m, 100, 10);
        let text = screen(&rows);
        assert!(
            rows.contains(&"#1 bob: hello  · sent, unconfirmed".to_string()),
            "{text}"
        );
        assert!(rows.contains(&"#1 alice: hi bob".to_string()), "{text}");
        assert!(
            rows.contains(
                &"[gap] 2 messages from alice were missing (#2–#3): 1 arrived late, 1 has not \
                  arrived yet"
                    .to_string()
            ),
            "{text}"
        );
        assert!(
            rows.contains(&"#4 alice: did you get that?".to_string()),
            "{text}"
        );
        assert!(
            text.contains("[duplicate] message #4 from alice arrived twice"),
            "{text}"
        );
        assert!(
            text.contains("[reordered] message #2 from alice arrived late"),
            "{text}"
        );
        assert!(!text.contains("delivered"));
    }

    #[test]
    fn status_bar_shows_mode_addresses_state_and_counters() {
        let mut m = model(Mode::Reliable);
        peer_says(&mut m, 0, "hi");
        m.record_send("a".into(), Ok(MessageId(0)));
        m.record_send("b".into(), Ok(MessageId(1)));
        m.record_send("c".into(), Ok(MessageId(2)));
        m.apply_event(Event::Delivered {
            id: MessageId(0),
            rtt: Some(Duration::from_millis(40)),
        });
        m.apply_event(Event::Lost { id: MessageId(2) });
        m.set_stats(Stats {
            retransmits_timeout: 4,
            retransmits_fast: 1,
            rtt_smoothed: Some(Duration::from_millis(31)),
            ..Stats::default()
        });
        let rows = render(&mut m, 200, 6);
        let status = &rows[4];
        for field in [
            "RELIABLE",
            "bob 127.0.0.1:2323 → alice @ 127.0.0.1:4000",
            "connected",
            "rtt 31 ms",
            "sent 3 ✓1 ✗1",
            "retransmits 5",
            "impaired: loss 20%",
        ] {
            assert!(status.contains(field), "{field:?} missing from {status:?}");
        }
        assert_eq!(rows[5], ">", "input line at the bottom: {rows:#?}");

        let mut raw = model(Mode::Raw);
        raw.record_send("x".into(), Ok(MessageId(0)));
        let rows = render(&mut raw, 200, 6);
        let status = &rows[4];
        assert!(status.contains(" RAW "), "{status}");
        assert!(status.contains("no connection (raw UDP)"), "{status}");
        assert!(status.contains("sent 1 (unconfirmed)"), "{status}");
        assert!(!status.contains("rtt"), "{status}");
    }

    #[test]
    fn status_bar_says_whether_the_chat_is_encrypted_and_shows_the_code() {
        // The same in every mode, tcp mode too.
        for mode in [Mode::Raw, Mode::Tcp] {
            let mut plain = model(mode);
            let rows = render(&mut plain, 160, 4);
            assert!(
                rows.iter().any(|r| r.contains("not encrypted")),
                "{mode:?}: {rows:#?}"
            );
            let mut m = Model::new(SessionInfo {
                encrypted: true,
                ..plain.info().clone()
            });
            let rows = render(&mut m, 160, 4);
            assert!(
                rows.iter().any(|r| r.contains("encrypted: handshake")),
                "{mode:?}: {rows:#?}"
            );
            m.apply_event(Event::Secured {
                peer: addr(4000),
                sas: "123 456".into(),
            });
            let rows = render(&mut m, 160, 4);
            assert!(
                rows.iter().any(|r| r.contains("encrypted, code 123 456")),
                "{mode:?}: {rows:#?}"
            );
            let history = rows.join("\n");
            assert!(history.contains("compare this code"), "{mode:?}: {rows:#?}");
        }
    }

    #[test]
    fn tcp_mode_marks_lines_as_handed_to_the_kernel_and_shows_its_figures() {
        use udpchat_driver::tcp::{EndReason, Ending, TcpInfo, TcpStats};
        let mut m = model(Mode::Tcp);
        m.apply_event(Event::Peer {
            addr: addr(4000),
            nick: None,
        });
        m.record_send("hello".into(), Ok(MessageId(0)));
        let rows = render(&mut m, 200, 8);
        let text = rows.join("\n");
        assert!(text.contains("hello  · sent to the kernel"), "{text}");
        for absent in ["✓", "✗", "… sending"] {
            assert!(!text.contains(absent), "{absent:?} in {text}");
        }
        let status = &rows[6];
        assert!(status.contains(" TCP "), "{status}");
        assert!(status.contains("connected (kernel TCP)"), "{status}");
        assert!(status.contains("sent 1 (to the kernel)"), "{status}");
        assert!(status.contains("TCP_INFO: no connection yet"), "{status}");
        let info = TcpInfo {
            rtt: Duration::from_micros(1_500),
            rttvar: Duration::from_micros(700),
            rto: Duration::from_millis(201),
            retransmits: 3,
            cwnd: 10,
            unacked: 2,
            send_queue: 20,
            bytes_acked: 5,
        };
        m.set_tcp_stats(TcpStats {
            counters: Stats::default(),
            kernel: KernelView::Known(info),
        });
        let status = render(&mut m, 200, 8)[6].clone();
        assert!(
            status.contains("kernel: rtt 1.5ms ±700µs cwnd 10 rtx 3 unacked 2"),
            "{status}"
        );
        // The line stays as it was: no mark ever settles it.
        assert_eq!(m.undelivered(), vec![]);
        m.tcp_ended(Ending {
            reason: EndReason::Reset,
            lines_written: 1,
            lines_unwritten: 0,
            unacked_bytes: None,
            kernel: KernelView::Closed,
            counters: Stats::default(),
        });
        let text = render(&mut m, 200, 12).join("\n");
        assert!(text.contains("reset the connection"), "{text}");
        assert!(
            text.contains("1 line(s) written may not have arrived"),
            "{text}"
        );
        assert!(m.tcp_ending().is_some_and(Ending::at_risk));
    }

    #[test]
    fn status_bar_without_a_peer_says_so() {
        let mut m = Model::new(SessionInfo {
            mode: Mode::Raw,
            nick: "bob".into(),
            local: addr(2323),
            peer: None,
            plain: false,
            impairment: None,
            encrypted: false,
        });
        let rows = render(&mut m, 120, 4);
        assert!(rows[2].contains("no peer yet"), "{rows:#?}");
        assert!(rows[2].contains("waiting for a peer"), "{rows:#?}");
        assert!(rows[2].contains("no impairment"), "{rows:#?}");
    }

    #[test]
    fn long_lines_wrap_and_wide_characters_fit() {
        let mut m = model(Mode::Reliable);
        let long = "lorem ipsum dolor sit amet ".repeat(6);
        peer_says(&mut m, 0, &long);
        peer_says(&mut m, 1, "日本語のテキストと絵文字👍🏽と家族👨‍👩‍👧");
        let rows = render(&mut m, 30, 20);
        for row in &rows {
            assert!(row.width() <= 30, "{row:?}");
        }
        let text = screen(&rows);
        // Every word of the long line is on screen, across several rows.
        assert_eq!(text.matches("lorem").count(), 6, "{text}");
        assert!(rows.iter().filter(|r| r.contains("ipsum")).count() > 1);
        let joined: String = text.split_whitespace().collect();
        assert!(
            joined.contains("日本語のテキストと絵文字👍🏽と家族"),
            "{text}"
        );
    }

    #[test]
    fn network_text_cannot_reach_the_terminal_as_control_codes() {
        let mut m = model(Mode::Raw);
        peer_says(&mut m, 0, "evil\u{1b}]0;pwned\u{7}\u{1b}[2J");
        let text = screen(&render(&mut m, 60, 6));
        assert!(!text.contains('\u{1b}'));
        assert!(
            text.contains("evil\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"),
            "{text}"
        );
        let mut m = model(Mode::Raw);
        peer_says(&mut m, 1, "abc\u{202e}dcba\u{2028}<bob> fake");
        let text = screen(&render(&mut m, 60, 6));
        assert!(!text.contains('\u{202e}') && !text.contains('\u{2028}'));
        assert!(
            text.contains("alice: abc\\u{202e}dcba\\u{2028}<bob> fake"),
            "{text}"
        );
    }

    #[test]
    fn scrolling_pages_through_the_history() {
        let mut m = model(Mode::Raw);
        for i in 0..30 {
            peer_says(&mut m, i, &format!("line {i:02}"));
        }
        // 8 rows: 6 of history, status, input.
        let rows = render(&mut m, 40, 8);
        assert_eq!(rows[5], "#30 alice: line 29");
        m.handle(Action::PageUp);
        let rows = render(&mut m, 40, 8);
        assert_eq!(rows[5], "#25 alice: line 24");
        // 40 columns: the scroll mark is short, but there.
        assert!(rows[6].contains("↑PgDn"), "{rows:#?}");
        for _ in 0..10 {
            m.handle(Action::PageUp);
        }
        let rows = render(&mut m, 40, 8);
        assert!(
            rows[0].starts_with("* RAW mode"),
            "the greeting is first: {rows:#?}"
        );
        // New messages do not move a scrolled view.
        peer_says(&mut m, 30, "line 30");
        assert!(render(&mut m, 40, 8)[0].starts_with("* RAW mode"));
        for _ in 0..10 {
            m.handle(Action::PageDown);
        }
        let rows = render(&mut m, 40, 8);
        assert_eq!(rows[5], "#31 alice: line 30");
        assert!(!rows[6].contains("PgDn"));
    }

    #[test]
    fn input_line_shows_its_end_and_the_cursor() {
        let mut m = model(Mode::Raw);
        m.handle(Action::Paste(
            "a fairly long line typed into a narrow window".into(),
        ));
        let mut terminal = Terminal::new(TestBackend::new(20, 5)).unwrap();
        terminal
            .draw(|frame| {
                draw(frame, &m, &mut HistoryCache::default());
            })
            .unwrap();
        let rows = rows(terminal.backend().buffer());
        assert_eq!(rows[4], "> o a narrow window");
        let cursor = terminal.get_cursor_position().unwrap();
        assert_eq!(cursor, Position::new(19, 4));
    }

    #[test]
    fn stats_and_help_tables_are_aligned() {
        let mut m = model(Mode::Reliable);
        m.handle(Action::Paste("/stats".into()));
        m.handle(Action::Submit);
        m.set_stats(Stats {
            messages_sent: 17,
            ..Stats::default()
        });
        let text = screen(&render(&mut m, 60, 40));
        assert!(text.contains("── stats (reliable mode) ──"), "{text}");
        assert!(
            text.contains("  messages     sent 17  received 0  delivered 0  lost 0"),
            "{text}"
        );
    }

    /// A reliable chat in full swing: a known peer nickname, counts of each kind, an RTT,
    /// retransmissions and an impairment.
    fn busy_reliable() -> Model {
        let mut m = model(Mode::Reliable);
        peer_says(&mut m, 0, "hi");
        for (id, text) in ["a", "b", "c"].iter().enumerate() {
            m.record_send((*text).into(), Ok(MessageId(id as u64)));
        }
        m.apply_event(Event::Delivered {
            id: MessageId(0),
            rtt: Some(Duration::from_micros(6_600)),
        });
        m.apply_event(Event::Lost { id: MessageId(2) });
        m.set_stats(Stats {
            retransmits_timeout: 4,
            retransmits_fast: 1,
            rtt_smoothed: Some(Duration::from_micros(6_600)),
            ..Stats::default()
        });
        m
    }

    /// The status bar's rows: those between the history and the input line, which both differ
    /// from it; at most two.
    fn status_rows(rows: &[String], count: usize) -> String {
        rows[rows.len() - 1 - count..rows.len() - 1].join("\n")
    }

    #[test]
    fn at_80_by_24_the_status_bar_takes_two_rows_and_shows_everything() {
        let mut m = busy_reliable();
        let rows = render(&mut m, 80, 24);
        let status = status_rows(&rows, 2);
        for field in [
            " RELIABLE ",
            "bob 127.0.0.1:2323 → alice @ 127.0.0.1:4000",
            "│ connected",
            "sent 3 ✓1 ✗1",
            "rtt 6.6 ms",
            "retransmits 5",
            "impaired: loss 20%",
        ] {
            assert!(status.contains(field), "{field:?} missing from\n{status}");
        }
        assert!(rows[21].starts_with(" RELIABLE "), "{rows:#?}");
        assert_eq!(rows[23], ">");
        for row in &rows {
            assert!(row.width() <= 80, "{row:?}");
        }
        let mut raw = model(Mode::Raw);
        raw.record_send("x".into(), Ok(MessageId(0)));
        let status = status_rows(&render(&mut raw, 80, 24), 2);
        for field in [
            " RAW ",
            "127.0.0.1:4000",
            "no connection (raw UDP)",
            "sent 1",
        ] {
            assert!(status.contains(field), "{field:?} missing from\n{status}");
        }
    }

    #[test]
    fn at_40_by_12_mode_peer_state_and_counts_stay_legible() {
        let mut m = busy_reliable();
        let rows = render(&mut m, 40, 12);
        let status = status_rows(&rows, 2);
        for field in [" RELIABLE ", "alice", "connected", "sent 3 ✓1 ✗1"] {
            assert!(status.contains(field), "{field:?} missing from\n{status}");
        }
        for row in &rows {
            assert!(row.width() <= 40, "{row:?}");
        }
        // Without the peer's name yet, its address is what identifies it.
        let mut fresh = model(Mode::Reliable);
        let status = status_rows(&render(&mut fresh, 40, 12), 2);
        for field in [" REL", "127.0.0.1:4000", "connecting", "sent 0 ✓0 ✗0"] {
            assert!(status.contains(field), "{field:?} missing from\n{status}");
        }
        let mut raw = model(Mode::Raw);
        let status = status_rows(&render(&mut raw, 40, 12), 2);
        for field in [" RAW ", "127.0.0.1:4000", "raw UDP", "sent 0"] {
            assert!(status.contains(field), "{field:?} missing from\n{status}");
        }
    }

    #[test]
    fn a_short_terminal_keeps_one_status_row_and_drops_the_least_important_first() {
        let mut m = busy_reliable();
        let wide = render(&mut m, 200, 6);
        assert!(wide[4].contains("impaired: loss 20%"), "{wide:#?}");
        // 80 columns, 6 rows: one row, so the impairment and my address give way first.
        let rows = render(&mut m, 80, 6);
        let status = &rows[4];
        for field in [" RELIABLE ", "alice", "connected", "sent 3 ✓1 ✗1"] {
            assert!(status.contains(field), "{field:?} missing from {status:?}");
        }
        assert!(!status.contains("impaired"), "{status:?}");
        assert!(!status.contains("127.0.0.1:2323"), "{status:?}");
    }

    #[test]
    fn the_status_bar_names_the_peer_as_soon_as_the_handshake_is_done() {
        let mut m = model(Mode::Reliable);
        m.apply_event(udpchat_reliable::Event::Peer {
            addr: "127.0.0.1:4000".parse().unwrap(),
            nick: Some("bob".into()),
        });
        let status = status_rows(&render(&mut m, 80, 24), 2);
        assert!(status.contains("bob @ 127.0.0.1:4000"), "{status}");
    }

    #[test]
    fn the_status_bar_counts_unanswered_handshakes() {
        let mut m = model(Mode::Reliable);
        for tries in 1..=3 {
            m.apply_event(udpchat_reliable::Event::NoAnswer {
                to: "127.0.0.1:4000".parse().unwrap(),
                tries,
                next_in: std::time::Duration::from_secs(1),
            });
        }
        let rows = render(&mut m, 100, 24);
        let status = status_rows(&rows, 2);
        assert!(
            status.contains("connecting: no answer, retry 3"),
            "{status}"
        );
        assert!(
            screen(&rows).contains("* no answer from 127.0.0.1:4000 yet, retrying (3)"),
            "{rows:#?}"
        );
        let narrow = status_rows(&render(&mut m, 40, 12), 2);
        assert!(narrow.contains("no answer (3)"), "{narrow}");
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let mut m = model(Mode::Reliable);
        peer_says(
            &mut m,
            0,
            "日本語👨‍👩‍👧 and a long line that wraps many times over",
        );
        m.record_send("pending".into(), Ok(MessageId(0)));
        m.handle(Action::Paste("日本語 input".into()));
        for (w, h) in [
            (1, 1),
            (2, 1),
            (1, 3),
            (3, 2),
            (20, 5),
            (5, 20),
            (0, 0),
            (7, 4),
        ] {
            let rows = render(&mut m, w, h);
            assert_eq!(rows.len(), usize::from(h));
            for row in &rows {
                assert!(row.width() <= usize::from(w), "{w}x{h}: {row:?}");
            }
        }
        // At 20x5 every part is there.
        let rows = render(&mut m, 20, 5);
        assert!(rows[3].starts_with(" REL  alice"), "{rows:#?}");
        assert!(rows[4].starts_with("> 日本語 input"), "{rows:#?}");
        // One row: only the input line.
        let rows = render(&mut m, 20, 1);
        assert!(rows[0].starts_with("> 日本語 input"), "{rows:#?}");
    }
}
