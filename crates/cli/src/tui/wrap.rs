//! Wrapping styled text to a width in terminal cells, and making network text safe to draw.
//!
//! ratatui can wrap a paragraph, but it cannot tell us how many lines that took, and scrolling
//! needs that number. So the history is wrapped here, once, into exact screen lines: by grapheme
//! cluster (an emoji with modifiers is never split), by display width (CJK characters take two
//! cells and never straddle the right edge), breaking after a space when a line has one, with a
//! hanging indent for continuation lines so a long message reads as one block.
//!
//! Text from the peer is untrusted: an escape sequence drawn into a cell would reach the terminal
//! and could move the cursor or retitle the window. [`sanitize`] turns every control character
//! into a visible escape before anything is drawn.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Cells of indent for the continuation lines of a wrapped entry (when the width allows).
pub const HANGING_INDENT: usize = 2;

/// Network text made safe to draw: every hazard escaped by the one rule of
/// [`crate::untrusted::escape`] (`\u{1b}`, `\u{202e}`), and a tab made a space (a cell cannot
/// hold a tab). Line feeds are kept: [`wrap`] breaks the line there.
pub fn sanitize(text: &str) -> String {
    crate::untrusted::escape(text).replace('\t', " ")
}

/// One grapheme and its style, the unit of wrapping.
struct Cell<'a> {
    grapheme: &'a str,
    width: usize,
    style: Style,
}

/// Wraps styled segments into lines at most `width` cells wide. Segments are `(text, style)`;
/// the text should already be [sanitized](sanitize). A `'\n'` forces a break. Always returns at
/// least one line, and none is wider than `width` (a grapheme wider than the whole line is
/// shown as `…`).
pub fn wrap(segments: &[(&str, Style)], width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    if width == 0 {
        return vec![Line::default()];
    }
    let indent = if width >= 4 * HANGING_INDENT {
        HANGING_INDENT
    } else {
        0
    };
    let mut lines: Vec<Vec<Cell<'_>>> = vec![Vec::new()];
    let mut used = 0;
    for (text, style) in segments {
        // Most chat text is ASCII, where every byte is a grapheme one cell wide: skip the
        // costly segmentation and width lookups for it.
        let graphemes: Box<dyn Iterator<Item = &str>> = if text.is_ascii() {
            Box::new((0..text.len()).map(|i| &text[i..i + 1]))
        } else {
            Box::new(text.graphemes(true))
        };
        for grapheme in graphemes {
            if grapheme == "\n" || grapheme == "\r\n" {
                lines.push(Vec::new());
                used = 0;
                continue;
            }
            let width_of = if grapheme.len() == 1 {
                1
            } else {
                grapheme.width()
            };
            let (grapheme, w) = match width_of {
                w if w > width.saturating_sub(indent).max(1) => ("…", 1),
                w => (grapheme, w),
            };
            if used + w > width {
                used = break_line(&mut lines, indent, width, w);
            }
            if let Some(line) = lines.last_mut() {
                line.push(Cell {
                    grapheme,
                    width: w,
                    style: *style,
                });
            }
            used += w;
        }
    }
    lines.into_iter().map(to_line).collect()
}

/// Starts a new line because a grapheme `w` cells wide does not fit on the last one: the last
/// line is broken after its last space (if that leaves something on it and the moved word fits
/// on the next line with the new grapheme), and the next line starts with the hanging indent
/// and the moved word. Returns the cells the new line already uses.
fn break_line(lines: &mut Vec<Vec<Cell<'_>>>, indent: usize, width: usize, w: usize) -> usize {
    let current = lines.last_mut().map(std::mem::take).unwrap_or_default();
    let first_cell = if lines.len() > 1 { indent } else { 0 };
    let split = current
        .iter()
        .rposition(|c| c.grapheme == " ")
        .filter(|&i| i + 1 > first_cell && i + 1 < current.len())
        // The moved word must fit on the next line with the new grapheme.
        .filter(|&i| {
            let tail: usize = current[i + 1..].iter().map(|c| c.width).sum();
            indent + tail + w <= width
        });
    let (head, tail) = match split {
        Some(i) => {
            let mut head = current;
            let tail = head.split_off(i + 1);
            (head, tail)
        }
        None => (current, Vec::new()),
    };
    if let Some(last) = lines.last_mut() {
        *last = head;
    }
    let mut next: Vec<Cell<'_>> = (0..indent)
        .map(|_| Cell {
            grapheme: " ",
            width: 1,
            style: Style::default(),
        })
        .collect();
    next.extend(tail);
    let used = next.iter().map(|c| c.width).sum();
    lines.push(next);
    used
}

/// Joins runs of equally styled cells into spans.
fn to_line(cells: Vec<Cell<'_>>) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut run = String::new();
    let mut run_style = None;
    for cell in cells {
        if run_style.is_some_and(|s| s != cell.style) {
            spans.push(Span::styled(
                std::mem::take(&mut run),
                run_style.unwrap_or_default(),
            ));
        }
        run_style = Some(cell.style);
        run.push_str(cell.grapheme);
    }
    if let Some(style) = run_style {
        spans.push(Span::styled(run, style));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str, width: u16) -> Vec<String> {
        wrap(&[(text, Style::default())], width)
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn short_text_is_one_line() {
        assert_eq!(plain("hello", 20), vec!["hello"]);
        assert_eq!(plain("", 20), vec![""]);
    }

    #[test]
    fn long_text_breaks_after_spaces_with_a_hanging_indent() {
        assert_eq!(
            plain("the quick brown fox jumps", 12),
            vec!["the quick ", "  brown fox ", "  jumps"]
        );
    }

    #[test]
    fn a_word_longer_than_the_line_is_cut() {
        assert_eq!(plain("abcdefghijkl", 8), vec!["abcdefgh", "  ijkl"]);
        // Moving the long word down would not make it fit either.
        assert_eq!(plain("a bcdefghijkl", 8), vec!["a bcdefg", "  hijkl"]);
    }

    #[test]
    fn wide_characters_never_straddle_the_edge() {
        let lines = plain("日本語のテキスト", 9);
        for line in &lines {
            assert!(line.width() <= 9, "{line:?}");
        }
        assert_eq!(lines[0], "日本語の");
        assert_eq!(lines.concat().replace(' ', ""), "日本語のテキスト");
    }

    #[test]
    fn emoji_sequences_stay_whole() {
        let family = "👨\u{200d}👩\u{200d}👧";
        let text = format!("{family}{family}{family}");
        let lines = plain(&text, 4);
        assert!(lines.iter().all(|l| l.width() <= 4));
        assert_eq!(lines.concat().matches(family).count(), 3);
    }

    #[test]
    fn tiny_widths_do_not_panic_or_overflow() {
        for width in 0..4u16 {
            for line in plain("日本 abc 👍🏽 x", width) {
                assert!(
                    line.width() <= usize::from(width).max(1),
                    "{width}: {line:?}"
                );
            }
        }
        assert_eq!(plain("日本", 1), vec!["…", "…"]);
    }

    #[test]
    fn newlines_break_and_styles_survive_wrapping() {
        let bold = Style::default().add_modifier(ratatui::style::Modifier::BOLD);
        let lines = wrap(&[("bob", bold), (": a\nb", Style::default())], 20);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].spans[0].content, "bob");
        assert_eq!(lines[0].spans[0].style, bold);
        assert_eq!(lines[0].spans[1].content, ": a");
        assert_eq!(lines[1].spans[0].content, "b");
    }

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(
            sanitize("a\u{1b}[2Jb\u{7}\u{7f}\u{9b}\tc"),
            "a\\u{1b}[2Jb\\u{7}\\u{7f}\\u{9b} c"
        );
        assert_eq!(sanitize("ok\nok"), "ok\nok");
        assert_eq!(
            sanitize("abc\u{202e}dcba\u{2028}x"),
            "abc\\u{202e}dcba\\u{2028}x"
        );
    }
}
