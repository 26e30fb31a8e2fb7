//! Text from the network, made safe to show: one rule for the line UI, JSON and the chat screen.
//!
//! Whatever a peer sends (message text, a nickname) ends up in a terminal or a JSON reader, and
//! some characters there *do* something instead of showing up: C0 and C1 controls (ESC and CSI
//! start terminal escape sequences; CR, NEL and the separators U+2028/U+2029 start a new line, so
//! a datagram could fake a line from someone else), bidirectional overrides and isolates (U+202E
//! shows `abc<U+202E>dcba` as `abcabcd`, hiding what was written), and invisible format
//! characters. [`is_hazard`] is the one list of them. [`escape`] shows each as a visible
//! `\u{202e}` for people (the line UI and the screen); [`escape_json`] writes JSON's `\u202e`
//! instead, which a JSON reader decodes back to the exact text while the raw character never
//! reaches a terminal that merely displays the output (serde_json escapes only C0 controls).
//!
//! Nicknames from the network get the same escaping, after [`nick`] cuts them to
//! [`MAX_NICK_CHARS`] characters: our own nicknames are at most 32 bytes with no spaces, so a
//! longer one, or one with spaces, is not from a udpchat and must not crowd out the text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest nickname from the network shown in full, in characters; longer ones are cut and end
/// with `…`.
pub const MAX_NICK_CHARS: usize = 32;

/// True for a character that must not reach a terminal as itself: every control character but
/// tab and line feed (callers handle those: the line UI prints each line of a message under the
/// sender's name, the screen wraps there), the line and paragraph separators, and the format
/// characters (Unicode category Cf) that reorder or hide text. The zero-width joiner and
/// non-joiner and the tag characters stay: emoji sequences and several scripts need them, and
/// they move nothing.
pub fn is_hazard(c: char) -> bool {
    if c == '\t' || c == '\n' {
        return false;
    }
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'                       // soft hyphen (invisible)
            | '\u{0600}'..='\u{0605}'        // Arabic number signs (prepended, span digits)
            | '\u{061c}'                     // Arabic letter mark (bidi)
            | '\u{06dd}' | '\u{070f}' | '\u{0890}'..='\u{0891}' | '\u{08e2}'
            | '\u{180e}'                     // Mongolian vowel separator (invisible)
            | '\u{200b}'                     // zero-width space
            | '\u{200e}'..='\u{200f}'        // left-to-right and right-to-left marks
            | '\u{2028}'..='\u{2029}'        // line and paragraph separators
            | '\u{202a}'..='\u{202e}'        // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'        // word joiner, invisible operators
            | '\u{2066}'..='\u{206f}'        // bidi isolates, deprecated format characters
            | '\u{feff}'                     // zero-width no-break space (byte order mark)
            | '\u{fff9}'..='\u{fffb}'        // interlinear annotation
            | '\u{110bd}' | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'      // Egyptian hieroglyph format controls
            | '\u{1bca0}'..='\u{1bca3}'      // shorthand format controls
            | '\u{1d173}'..='\u{1d17a}'      // musical symbol format controls
            | '\u{e0001}' // language tag
        )
}

/// `text` with every [hazard](is_hazard) written as a visible escape (`\u{1b}`, `\u{202e}`);
/// tabs and line feeds stay. Borrowed when there is nothing to escape, which is nearly always.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_if(text, is_hazard)
}

/// A nickname from the network as shown: at most [`MAX_NICK_CHARS`] characters (a longer one is
/// cut and ends with `…`), with hazards and any whitespace escaped, since a udpchat nickname
/// never holds whitespace and a space or line break in one could make a line look like two
/// speakers.
pub fn nick(nick: &str) -> String {
    let cut = truncate_nick(nick);
    escape_if(&cut, |c| is_hazard(c) || c.is_whitespace()).into_owned()
}

/// A nickname cut to [`MAX_NICK_CHARS`] characters, ending with `…` when it was longer; not
/// escaped (JSON output escapes in its own way).
pub fn truncate_nick(nick: &str) -> Cow<'_, str> {
    match nick.char_indices().nth(MAX_NICK_CHARS) {
        None => Cow::Borrowed(nick),
        Some((end, _)) => Cow::Owned(format!("{}…", &nick[..end])),
    }
}

fn escape_if(text: &str, hazard: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&hazard) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hazard(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Serialized JSON with every [hazard](is_hazard) that serde_json leaves raw (DEL, C1 controls,
/// the separators, format characters) rewritten as a JSON `\uXXXX` escape (a surrogate pair
/// above U+FFFF). Safe on any JSON text: outside strings JSON has only ASCII punctuation,
/// digits, letters and whitespace, none of which is a hazard, so only string contents change,
/// and a JSON reader gets exactly the same values back.
pub fn escape_json(json: String) -> String {
    if !json.chars().any(is_hazard) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_hazard(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_separators_are_escaped_and_the_rest_is_kept() {
        assert_eq!(escape("plain\ttext\nline two"), "plain\ttext\nline two");
        assert!(matches!(escape("ünïcödé 🎉"), Cow::Borrowed(_)));
        assert_eq!(escape("\u{1b}[2Jboo\r"), "\\u{1b}[2Jboo\\u{d}");
        assert_eq!(escape("abc\u{202e}dcba"), "abc\\u{202e}dcba");
        assert_eq!(escape("x\u{2028}<bob> y"), "x\\u{2028}<bob> y");
        assert_eq!(escape("a\u{85}b\u{9b}31m"), "a\\u{85}b\\u{9b}31m");
        assert_eq!(
            escape("\u{2066}\u{feff}\u{200b}"),
            "\\u{2066}\\u{feff}\\u{200b}"
        );
        // Joiners stay: they build emoji and words, and move nothing.
        assert_eq!(escape("👨\u{200d}👩\u{200d}👧"), "👨\u{200d}👩\u{200d}👧");
    }

    #[test]
    fn json_keeps_its_values_and_loses_its_raw_hazards() {
        let text = "a\u{85}b\u{9b}c\u{202e}d\u{1b}e\u{7f}\u{1bca0}";
        let json = escape_json(serde_json::to_string(&serde_json::json!({ "t": text })).unwrap());
        assert!(json.is_ascii(), "{json}");
        assert!(
            json.contains("\\u0085") && json.contains("\\u009b"),
            "{json}"
        );
        assert!(json.contains("\\ud82f\\udca0"), "a surrogate pair: {json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["t"], text);
        let clean = r#"{"t":"héllo"}"#.to_owned();
        assert_eq!(escape_json(clean.clone()), clean);
    }

    #[test]
    fn long_or_spaced_nicknames_are_cut_and_escaped() {
        assert_eq!(nick("alice"), "alice");
        let long = "n".repeat(40);
        assert_eq!(nick(&long), format!("{}…", "n".repeat(MAX_NICK_CHARS)));
        assert_eq!(
            nick(&"é".repeat(32)),
            "é".repeat(32),
            "characters, not bytes"
        );
        assert_eq!(nick("bob> hi\n<eve"), "bob>\\u{20}hi\\u{a}<eve");
        assert_eq!(nick("\u{202e}eve"), "\\u{202e}eve");
        assert_eq!(truncate_nick(&long).chars().count(), MAX_NICK_CHARS + 1);
    }
}
