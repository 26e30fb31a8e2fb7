//! The input line: a small line editor with no terminal attached.
//!
//! It holds the text being typed and a cursor, and knows the usual moves (left/right by grapheme,
//! home/end, word deletion), a history of sent lines (up/down, with the unfinished draft kept
//! aside), and pasting. The cursor is a byte offset that always sits on a grapheme-cluster
//! boundary, so an emoji with a skin-tone modifier or a letter with a combining accent moves and
//! deletes as one unit, and [`LineEditor::window`] measures display width with `unicode-width`,
//! so CJK characters (two columns) keep the cursor where the terminal draws it. Being pure, all
//! of it is unit-tested here without a terminal.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// How many sent lines the up/down history remembers.
pub const HISTORY_LIMIT: usize = 500;

/// The most bytes the input line holds: the reliable mode's largest message (1 MiB). A paste
/// beyond that is cut, so a runaway clipboard cannot grow memory without bound.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// The line being typed, its cursor and the history of sent lines.
#[derive(Debug, Clone, Default)]
pub struct LineEditor {
    text: String,
    /// Byte offset into `text`, always on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// While browsing the history: which entry is shown, and the draft it replaced.
    browsing: Option<(usize, String)>,
}

/// What is visible of the input line in a field of a given width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window<'a> {
    /// The visible slice of the text.
    pub visible: &'a str,
    /// The cursor's column within the field, in terminal cells.
    pub cursor_column: u16,
}

impl LineEditor {
    /// An empty editor with an empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text typed so far.
    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor as a byte offset into [`text`](Self::text).
    #[cfg(test)]
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// True when nothing has been typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Types one character at the cursor. Control characters other than tab are ignored (they
    /// would corrupt the screen and the peer's terminal); a tab becomes a space. Returns false if
    /// the line is full.
    pub fn insert_char(&mut self, c: char) -> bool {
        let c = if c == '\t' { ' ' } else { c };
        if c.is_control() {
            return true;
        }
        if self.text.len() + c.len_utf8() > MAX_INPUT_BYTES {
            return false;
        }
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
        self.snap_cursor_forward();
        true
    }

    /// Inserts pasted text at the cursor. A chat message is one line, so line breaks and tabs
    /// become spaces and other control characters are dropped. Returns false if the paste had to
    /// be cut at [`MAX_INPUT_BYTES`].
    pub fn insert_str(&mut self, pasted: &str) -> bool {
        let mut clean = String::with_capacity(pasted.len().min(MAX_INPUT_BYTES));
        let mut chars = pasted.chars().peekable();
        while let Some(c) = chars.next() {
            let c = match c {
                // A Windows line break is one break, not two spaces.
                '\r' if chars.peek() == Some(&'\n') => continue,
                '\r' | '\n' | '\t' => ' ',
                c if c.is_control() => continue,
                c => c,
            };
            clean.push(c);
        }
        let room = MAX_INPUT_BYTES.saturating_sub(self.text.len());
        let whole = clean.len() <= room;
        if !whole {
            let mut cut = room;
            while !clean.is_char_boundary(cut) {
                cut -= 1;
            }
            clean.truncate(cut);
        }
        self.text.insert_str(self.cursor, &clean);
        self.cursor += clean.len();
        self.snap_cursor_forward();
        whole
    }

    /// Moves the cursor one grapheme to the left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    /// Moves the cursor one grapheme to the right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// Moves the cursor to the start of the line.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves the cursor to the end of the line.
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Moves the cursor to the start of the previous word.
    pub fn word_left(&mut self) {
        self.cursor = self.prev_word_start();
    }

    /// Moves the cursor past the end of the next word.
    pub fn word_right(&mut self) {
        let rest = &self.text[self.cursor..];
        let skip_space = rest.len() - rest.trim_start().len();
        let word = rest[skip_space..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - skip_space);
        self.cursor += skip_space + word;
        self.snap_cursor_forward();
    }

    /// Deletes the grapheme before the cursor.
    pub fn backspace(&mut self) {
        let start = self.prev_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes the grapheme under the cursor.
    pub fn delete(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Deletes the word before the cursor (Ctrl-W).
    pub fn delete_word_back(&mut self) {
        let start = self.prev_word_start();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor (Ctrl-U).
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Deletes from the cursor to the end of the line (Ctrl-K).
    pub fn delete_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    /// Shows the previous (older) line of the history, keeping the draft aside.
    pub fn history_up(&mut self) {
        let index = match &self.browsing {
            None if self.history.is_empty() => return,
            None => {
                let draft = std::mem::take(&mut self.text);
                let index = self.history.len() - 1;
                self.browsing = Some((index, draft));
                index
            }
            Some((0, _)) => return,
            Some((i, draft)) => {
                let index = i - 1;
                self.browsing = Some((index, draft.clone()));
                index
            }
        };
        self.show(self.history[index].clone());
    }

    /// Shows the next (newer) line of the history, or the draft after the newest.
    pub fn history_down(&mut self) {
        let Some((i, draft)) = self.browsing.take() else {
            return;
        };
        if i + 1 < self.history.len() {
            self.browsing = Some((i + 1, draft));
            self.show(self.history[i + 1].clone());
        } else {
            self.show(draft);
        }
    }

    /// Takes the line out for sending: returns it (unless it is blank), remembers it in the
    /// history, and leaves the editor empty.
    pub fn submit(&mut self) -> Option<String> {
        self.browsing = None;
        self.cursor = 0;
        let line = std::mem::take(&mut self.text);
        if line.trim().is_empty() {
            return None;
        }
        if self.history.last() != Some(&line) {
            if self.history.len() == HISTORY_LIMIT {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        Some(line)
    }

    /// The part of the line to show in a field `width` cells wide, scrolled so that the cursor is
    /// visible, and the cursor's column within the field. The last cell is kept free for the
    /// cursor at the end of the line.
    pub fn window(&self, width: u16) -> Window<'_> {
        if width == 0 {
            return Window {
                visible: "",
                cursor_column: 0,
            };
        }
        let width = usize::from(width);
        // Start at the cursor and walk left while the text before it still fits, so the
        // cursor sits as far right as needed and no further.
        let mut start = self.cursor;
        let mut used = 0;
        for (offset, g) in self.text[..self.cursor].grapheme_indices(true).rev() {
            let w = g.width();
            if used + w > width - 1 {
                break;
            }
            used += w;
            start = offset;
        }
        // If the whole tail fits from the very beginning, prefer showing from 0.
        if start > 0 && self.text.width() < width {
            start = 0;
            used = self.text[..self.cursor].width();
        }
        let mut end = self.cursor;
        let mut total = used;
        for (offset, g) in self.text[self.cursor..].grapheme_indices(true) {
            let w = g.width();
            if total + w > width {
                break;
            }
            total += w;
            end = self.cursor + offset + g.len();
        }
        Window {
            visible: &self.text[start..end],
            cursor_column: u16::try_from(used).unwrap_or(u16::MAX),
        }
    }

    fn show(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    fn prev_word_start(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        })
    }

    /// After an insertion the cursor may sit inside a grapheme cluster (a combining accent typed
    /// after a letter joins it): move it to the cluster's end.
    fn snap_cursor_forward(&mut self) {
        let mut offset = 0;
        for g in self.text.graphemes(true) {
            let end = offset + g.len();
            if self.cursor > offset && self.cursor < end {
                self.cursor = end;
                return;
            }
            if end >= self.cursor {
                return;
            }
            offset = end;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn typed(s: &str) -> LineEditor {
        let mut e = LineEditor::new();
        for c in s.chars() {
            assert!(e.insert_char(c));
        }
        e
    }

    #[test]
    fn typing_inserts_at_the_cursor() {
        let mut e = typed("helo");
        e.left();
        e.insert_char('l');
        assert_eq!(e.text(), "hello");
        assert_eq!(e.cursor(), 4);
        e.home();
        e.insert_char('>');
        assert_eq!(e.text(), ">hello");
        e.end();
        e.insert_char('!');
        assert_eq!(e.text(), ">hello!");
    }

    #[test]
    fn backspace_and_delete_remove_one_grapheme() {
        let mut e = typed("abc");
        e.backspace();
        assert_eq!(e.text(), "ab");
        e.home();
        e.delete();
        assert_eq!(e.text(), "b");
        // At the edges nothing happens.
        e.home();
        e.backspace();
        e.end();
        e.delete();
        assert_eq!(e.text(), "b");
    }

    #[test]
    fn cursor_moves_over_whole_graphemes() {
        // "e" + combining acute, a family emoji (ZWJ sequence), a thumbs up with skin tone.
        let mut e = LineEditor::new();
        e.insert_str("e\u{301}👨\u{200d}👩\u{200d}👧👍🏽x");
        assert_eq!(e.text().graphemes(true).count(), 4);
        e.left();
        assert_eq!(&e.text()[e.cursor()..], "x");
        e.left();
        assert_eq!(&e.text()[e.cursor()..], "👍🏽x");
        e.backspace();
        assert_eq!(e.text(), "e\u{301}👍🏽x");
        e.left();
        assert_eq!(e.cursor(), 0);
        e.delete();
        assert_eq!(e.text(), "👍🏽x");
        e.right();
        e.right();
        e.right();
        assert_eq!(e.cursor(), e.text().len());
    }

    #[test]
    fn a_combining_mark_typed_after_a_letter_joins_it() {
        let mut e = typed("e\u{301}");
        assert_eq!(e.cursor(), e.text().len());
        e.backspace();
        assert_eq!(e.text(), "");
    }

    #[test]
    fn control_characters_are_not_typed_and_tab_is_a_space() {
        let e = typed("a\u{1b}[2J\tb\u{7}");
        assert_eq!(e.text(), "a[2J b");
    }

    #[test]
    fn paste_flattens_line_breaks_and_inserts_at_the_cursor() {
        let mut e = typed("[]");
        e.left();
        assert!(e.insert_str("one\r\ntwo\nthree\tfour\u{0}"));
        assert_eq!(e.text(), "[one two three four]");
        assert_eq!(&e.text()[e.cursor()..], "]");
    }

    #[test]
    fn paste_is_cut_at_the_limit_on_a_char_boundary() {
        let mut e = LineEditor::new();
        let big = "é".repeat(MAX_INPUT_BYTES); // two bytes each: twice the limit
        assert!(!e.insert_str(&big));
        assert!(e.text().len() <= MAX_INPUT_BYTES);
        assert!(e.text().len() > MAX_INPUT_BYTES - 2);
        assert!(!e.insert_char('x'));
    }

    #[test]
    fn word_moves_and_deletes() {
        let mut e = typed("hello big  world");
        e.delete_word_back();
        assert_eq!(e.text(), "hello big  ");
        e.delete_word_back();
        assert_eq!(e.text(), "hello ");
        e.insert_str("there friend");
        e.word_left();
        assert_eq!(&e.text()[e.cursor()..], "friend");
        e.home();
        e.word_right();
        assert_eq!(&e.text()[e.cursor()..], " there friend");
        e.delete_to_end();
        assert_eq!(e.text(), "hello");
        e.left();
        e.delete_to_start();
        assert_eq!(e.text(), "o");
        assert_eq!(e.cursor(), 0);
    }

    #[test]
    fn submit_returns_the_line_and_remembers_it() {
        let mut e = typed("first");
        assert_eq!(e.submit().as_deref(), Some("first"));
        assert!(e.is_empty());
        assert_eq!(e.cursor(), 0);
        e.insert_str("   ");
        assert_eq!(e.submit(), None, "blank lines are not sent");
        e.insert_str("second");
        e.submit();
        e.insert_str("draft");
        e.history_up();
        assert_eq!(e.text(), "second");
        assert_eq!(e.cursor(), e.text().len());
        e.history_up();
        assert_eq!(e.text(), "first");
        e.history_up();
        assert_eq!(e.text(), "first", "stays at the oldest");
        e.history_down();
        assert_eq!(e.text(), "second");
        e.history_down();
        assert_eq!(e.text(), "draft", "the draft comes back");
        e.history_down();
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn repeated_lines_are_remembered_once_and_history_is_bounded() {
        let mut e = LineEditor::new();
        for i in 0..HISTORY_LIMIT + 10 {
            e.insert_str(&format!("line {i}"));
            e.submit();
            e.insert_str(&format!("line {i}"));
            e.submit();
        }
        assert_eq!(e.history.len(), HISTORY_LIMIT);
        assert_eq!(e.history[0], "line 10");
    }

    #[test]
    fn window_shows_everything_when_it_fits() {
        let e = typed("hi");
        assert_eq!(
            e.window(10),
            Window {
                visible: "hi",
                cursor_column: 2
            }
        );
    }

    #[test]
    fn window_scrolls_to_keep_the_cursor_visible() {
        let mut e = typed("abcdefghij");
        let w = e.window(5);
        assert_eq!(w.visible, "ghij");
        assert_eq!(w.cursor_column, 4);
        e.home();
        let w = e.window(5);
        assert_eq!(w.visible, "abcde");
        assert_eq!(w.cursor_column, 0);
    }

    #[test]
    fn window_counts_wide_characters_as_two_cells() {
        let e = typed("日本語テキスト");
        let w = e.window(7);
        // Six cells of room before the cursor: three wide characters.
        assert_eq!(w.visible, "キスト");
        assert_eq!(w.cursor_column, 6);
        assert!(w.visible.width() <= 7);
    }

    #[test]
    fn window_of_tiny_fields_never_overflows() {
        let mut e = typed("日本語");
        for width in 0..4u16 {
            let w = e.window(width);
            assert!(w.visible.width() <= usize::from(width));
            assert!(w.cursor_column <= width);
        }
        e.home();
        let w = e.window(1);
        assert_eq!(w.visible, "");
        assert_eq!(w.cursor_column, 0);
    }
}
