//! Line-mode output: what the chat prints, in text or JSON.
//!
//! stdout carries what was received, so it can be piped: in `text` format one `<nick> text` line
//! per message line (`<address> text` in plain mode, where there is no nick), in `json` format
//! one JSON object per line for *every* event (`message`, `gap`, `duplicate`, `reordered`,
//! `peer`, `dropped`, ...), tagged by its `event` field. stderr carries diagnostics, always as
//! text lines starting `udpchat:`; in `text` format that includes the gap, duplicate and
//! reordered reports, so stdout stays exactly what the other side wrote.
//!
//! Text from the network is shown safely: control characters (a terminal escape sequence, say)
//! are printed escaped, and a message with several lines prints each under the sender's name, so
//! no datagram can fake a line from someone else. Ignored datagrams are reported one by one only
//! up to [`DROPS_SHOWN`], so a flood of junk cannot flood the terminal; they are always counted.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;

use clap::ValueEnum;
use udpchat_driver::Sink;
use udpchat_reliable::{Event, SendError, Stats};

/// Ignored datagrams reported individually before they are only counted.
pub const DROPS_SHOWN: u32 = 10;

/// How received messages are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `<nick> text`, one line per message line.
    Text,
    /// One JSON object per event per line.
    Json,
}

/// Prints the chat's events; the driver's [`Sink`] for line mode.
#[derive(Debug)]
pub struct Output {
    format: Format,
    drops_reported: u32,
}

impl Output {
    /// Output in `format`.
    pub fn new(format: Format) -> Self {
        Output {
            format,
            drops_reported: 0,
        }
    }

    /// Prints the counters to stderr as one `udpchat: stats: name=value ...` line.
    pub fn print_stats(&self, stats: &Stats) {
        eprintln!("udpchat: stats: {}", stats_line(stats));
    }

    fn stdout(&self, line: &str) {
        // A closed stdout (the reader went away) must not end or crash the chat: ignore it.
        let _ = writeln!(io::stdout().lock(), "{line}");
    }

    /// Whether to report this dropped datagram (the first [`DROPS_SHOWN`] are), saying once
    /// when the rest will only be counted.
    fn report_drop(&mut self) -> bool {
        self.drops_reported = self.drops_reported.saturating_add(1);
        if self.drops_reported == DROPS_SHOWN + 1 {
            eprintln!(
                "udpchat: more ignored datagrams will be counted, not shown (/stats shows counts)"
            );
        }
        self.drops_reported <= DROPS_SHOWN
    }

    fn text(&mut self, event: Event) {
        match event {
            Event::Message {
                from, nick, text, ..
            } => {
                let who = if nick.is_empty() {
                    canonical(from).to_string()
                } else {
                    nick
                };
                let who = escape_controls(&who);
                for line in text.split('\n') {
                    self.stdout(&format!("<{who}> {}", escape_controls(line)));
                }
            }
            Event::Gap { from, first, last } => {
                let from = canonical(from);
                if first == last {
                    eprintln!("udpchat: gap: message {first} from {from} has not arrived");
                } else {
                    eprintln!(
                        "udpchat: gap: messages {first} to {last} from {from} have not arrived"
                    );
                }
            }
            Event::Duplicate { from, seq } => eprintln!(
                "udpchat: duplicate: message {seq} from {} arrived again (shown once)",
                canonical(from)
            ),
            Event::Reordered { from, seq } => eprintln!(
                "udpchat: reordered: message {seq} from {} arrived after a later one",
                canonical(from)
            ),
            Event::Peer { addr } => {
                eprintln!("udpchat: talking to {} (they wrote first)", canonical(addr));
            }
            Event::Delivered { id, rtt } => match rtt {
                Some(rtt) => eprintln!(
                    "udpchat: delivered: message {} (round trip {:.1} ms)",
                    id.0,
                    rtt.as_secs_f64() * 1000.0
                ),
                None => eprintln!("udpchat: delivered: message {}", id.0),
            },
            Event::Lost { id } => {
                eprintln!("udpchat: lost: message {} was not delivered", id.0);
            }
            Event::PeerUnreachable => eprintln!("udpchat: the peer stopped answering"),
            Event::PeerRestarted => {
                eprintln!("udpchat: the peer restarted: its numbering starts afresh");
            }
            Event::PeerClosed => eprintln!("udpchat: the peer closed the chat"),
            Event::Closed => {}
            Event::Dropped {
                from,
                cause: _,
                detail,
            } => {
                if self.report_drop() {
                    eprintln!(
                        "udpchat: ignored a datagram from {}: {}",
                        canonical(from),
                        escape_controls(&detail)
                    );
                }
            }
        }
    }

    fn json(&mut self, event: Event) {
        if matches!(event, Event::Dropped { .. }) && !self.report_drop() {
            return;
        }
        match serde_json::to_string(&canonical_event(event)) {
            Ok(line) => self.stdout(&line),
            Err(e) => eprintln!("udpchat: cannot print an event as JSON: {e}"),
        }
    }
}

impl Sink for Output {
    fn event(&mut self, event: Event) {
        match self.format {
            Format::Text => self.text(event),
            Format::Json => self.json(event),
        }
    }

    fn refused(&mut self, _line: &str, error: &SendError) {
        eprintln!("udpchat: not sent: {error}");
    }

    fn socket_error(&mut self, error: &io::Error) {
        eprintln!("udpchat: socket error (the chat goes on): {error}");
    }

    fn stats(&mut self, stats: &Stats) {
        self.print_stats(stats);
    }
}

/// `name=value` for every counter that has a value, in alphabetical order. Built from the
/// serialized form, so counters added to [`Stats`] later show up by themselves.
pub fn stats_line(stats: &Stats) -> String {
    let mut line = String::new();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(stats) {
        for (name, value) in fields {
            if !value.is_null() {
                let sep = if line.is_empty() { "" } else { " " };
                let _ = write!(line, "{sep}{name}={value}");
            }
        }
    }
    line
}

/// An IPv4 peer seen through a dual-stack IPv6 socket is shown as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn canonical_event(event: Event) -> Event {
    match event {
        Event::Message {
            from,
            nick,
            seq,
            text,
        } => Event::Message {
            from: canonical(from),
            nick,
            seq,
            text,
        },
        Event::Gap { from, first, last } => Event::Gap {
            from: canonical(from),
            first,
            last,
        },
        Event::Duplicate { from, seq } => Event::Duplicate {
            from: canonical(from),
            seq,
        },
        Event::Reordered { from, seq } => Event::Reordered {
            from: canonical(from),
            seq,
        },
        Event::Peer { addr } => Event::Peer {
            addr: canonical(addr),
        },
        Event::Dropped {
            from,
            cause,
            detail,
        } => Event::Dropped {
            from: canonical(from),
            cause,
            detail,
        },
        other => other,
    }
}

/// Control characters printed as escapes (`\u{1b}`), so text from the network cannot drive the
/// terminal; tabs stay.
fn escape_controls(text: &str) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
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
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(escape_controls("\u{1b}[2Jboo\r"), "\\u{1b}[2Jboo\\r");
    }

    #[test]
    fn mapped_ipv4_addresses_are_shown_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:2323".parse().unwrap();
        assert_eq!(canonical(mapped).to_string(), "10.0.0.1:2323");
        let v6: SocketAddr = "[::1]:2323".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn stats_line_lists_counters_and_skips_missing_values() {
        let stats = Stats {
            messages_sent: 3,
            dropped_checksum: 2,
            ..Stats::default()
        };
        let line = stats_line(&stats);
        assert!(line.starts_with("bytes_received=0 "), "{line}");
        assert!(line.contains(" messages_sent=3 "), "{line}");
        assert!(line.contains(" dropped_checksum=2 "), "{line}");
        assert!(!line.contains("rtt_min"), "{line}");
    }

    #[test]
    fn a_message_serializes_with_the_promised_fields() {
        let event = Event::Message {
            from: "[::ffff:127.0.0.1]:9".parse().unwrap(),
            nick: "bob".into(),
            seq: Some(4),
            text: "hi".into(),
        };
        let json = serde_json::to_value(canonical_event(event)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "event": "message", "from": "127.0.0.1:9", "nick": "bob", "seq": 4, "text": "hi"
            })
        );
    }
}
