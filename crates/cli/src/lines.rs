//! Line-mode input: stdin, read on its own thread, turned into driver [`Input`]s.
//!
//! A plain OS thread rather than tokio's stdin: a blocking read cannot be cancelled, and tokio
//! would wait for it when the chat ends (after `/quit` or Ctrl-C) until the user pressed Enter.
//! A thread blocked in `read` simply ends with the process. Lines are read with a bound, so a
//! newline-free stream cannot grow memory without limit.
//!
//! Each line is one message, without its `\n` or `\r\n`. Three lines are commands: `/nick NAME`
//! changes the nickname (raw mode, and reliable mode within the session), `/quit` ends
//! the chat at once (a full close), `/stats` prints the counters. The end of input closes the
//! chat too, or with `--half-close` only finishes our side of it (see "How a chat ends" in the
//! README). A line starting with `//` is sent
//! with one `/` removed, so `//quit` sends the text `/quit`.

use std::io::{self, BufRead};

use tokio::sync::mpsc;
use udpchat_driver::Input;

/// Longest line read, in bytes: the largest message any mode takes (1 MiB). Longer lines are
/// skipped with a message.
pub const MAX_LINE: usize = 1 << 20;

/// Starts the thread that reads stdin until end of file, then sends `at_end` ([`Input::Close`],
/// or [`Input::Finish`] for a half-close), or until `/quit` ([`Input::Close`]).
pub fn spawn_stdin_reader(input: mpsc::Sender<Input>, at_end: Input) {
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut reader = stdin.lock();
        for item in Lines::new(&mut reader) {
            let next = match item {
                Ok(next) => next,
                Err(ReadError::TooLong { len }) => {
                    eprintln!("udpchat: not sent: {}", too_long(len));
                    continue;
                }
                Err(ReadError::NotUtf8) => {
                    eprintln!("udpchat: not sent: the line is not valid UTF-8");
                    continue;
                }
                Err(ReadError::BadNick(why)) => {
                    eprintln!("udpchat: nickname not changed: {why}");
                    continue;
                }
                Err(ReadError::Io(e)) => {
                    eprintln!("udpchat: cannot read stdin: {e}");
                    break;
                }
            };
            let quit = next == Input::Close;
            if input.blocking_send(next).is_err() || quit {
                return; // The chat is over (or closing): nobody needs more lines.
            }
        }
        // End of input; if the chat already ended, there is nobody to tell.
        let _ = input.blocking_send(at_end);
    });
}

/// Why a line of `len` bytes was not sent, as one sentence.
fn too_long(len: usize) -> String {
    format!("the line has {len} bytes, over the limit of {MAX_LINE} bytes (1 MiB)")
}

/// Why a line could not become an [`Input`].
#[derive(Debug)]
pub enum ReadError {
    /// Longer than [`MAX_LINE`]; `len` bytes were skipped.
    TooLong {
        /// The line's length.
        len: usize,
    },
    /// Not valid UTF-8.
    NotUtf8,
    /// `/nick` with a name that is not one; why.
    BadNick(String),
    /// stdin failed.
    Io(io::Error),
}

/// Iterator over the [`Input`]s of a reader, one per line.
pub struct Lines<R> {
    reader: R,
    max: usize,
}

impl<R: BufRead> Lines<R> {
    /// Reads lines of at most [`MAX_LINE`] bytes from `reader`.
    pub fn new(reader: R) -> Self {
        Lines {
            reader,
            max: MAX_LINE,
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<Input, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match read_bounded_line(&mut self.reader, self.max) {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(len))) => return Some(Err(ReadError::TooLong { len })),
            Ok(None) => return None,
            Err(e) => return Some(Err(ReadError::Io(e))),
        };
        let Ok(text) = String::from_utf8(line) else {
            return Some(Err(ReadError::NotUtf8));
        };
        if let Some(nick) = text.strip_prefix("/nick ") {
            return Some(match crate::chat::parse_nick(nick.trim()) {
                Ok(nick) => Ok(Input::Nick(nick)),
                Err(why) => Err(ReadError::BadNick(why)),
            });
        }
        Some(Ok(match text.as_str() {
            "/quit" => Input::Close,
            "/stats" => Input::Stats,
            _ => match text.strip_prefix("//") {
                Some(rest) => Input::Line(format!("/{rest}")),
                None => Input::Line(text),
            },
        }))
    }
}

/// Reads one line without its `\n` or `\r\n`: `None` at end of input, `Some(Err(len))` for a
/// line longer than `max` (consumed and forgotten, holding at most `max` bytes meanwhile).
fn read_bounded_line<R: BufRead>(
    reader: &mut R,
    max: usize,
) -> io::Result<Option<Result<Vec<u8>, usize>>> {
    let mut line = Vec::new();
    let mut len = 0usize;
    let mut read_any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !read_any {
                return Ok(None);
            }
            break;
        }
        read_any = true;
        let (chunk, used, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        len += chunk.len();
        if len <= max {
            line.extend_from_slice(chunk);
        } else {
            line = Vec::new();
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if len > max {
        return Ok(Some(Err(len)));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(Ok(line)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    fn inputs(bytes: &[u8], max: usize) -> Vec<Result<Input, String>> {
        // A tiny buffer makes lines span several fills.
        let reader = BufReader::with_capacity(4, Cursor::new(bytes.to_vec()));
        Lines { reader, max }
            .map(|r| r.map_err(|e| format!("{e:?}")))
            .collect()
    }

    fn line(text: &str) -> Result<Input, String> {
        Ok(Input::Line(text.to_owned()))
    }

    #[test]
    fn lines_lose_their_line_endings() {
        assert_eq!(
            inputs(b"hello world\r\nsecond\n\nlast without newline", 100),
            vec![
                line("hello world"),
                line("second"),
                line(""),
                line("last without newline")
            ]
        );
        assert!(inputs(b"", 100).is_empty());
    }

    #[test]
    fn commands_and_escaped_slashes() {
        assert_eq!(
            inputs(b"/stats\n//quit\n/quit\n/other\n", 100),
            vec![
                Ok(Input::Stats),
                line("/quit"),
                Ok(Input::Close),
                line("/other")
            ]
        );
        assert_eq!(
            inputs(b"/nick al\n//nick al\n/nick a b\n", 100),
            vec![
                Ok(Input::Nick("al".into())),
                line("/nick al"),
                Err("BadNick(\"a nickname has no spaces or control characters\")".into()),
            ]
        );
    }

    #[test]
    fn an_overlong_line_is_explained_in_one_sentence() {
        assert_eq!(
            too_long(1_048_586),
            "the line has 1048586 bytes, over the limit of 1048576 bytes (1 MiB)"
        );
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_skipped_not_fatal() {
        let got = inputs(b"0123456789abcdef\nok\n\xff\xfe\nfine\n", 10);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Err("TooLong { len: 16 }".to_owned()));
        assert_eq!(got[1], line("ok"));
        assert_eq!(got[2], Err("NotUtf8".to_owned()));
        assert_eq!(got[3], line("fine"));
    }
}
