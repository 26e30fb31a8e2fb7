//! One-line descriptions of datagrams, for live traces (`udpchat chat -vv`, `udpchat proxy -v`).
//!
//! The I/O layers (the driver and the proxy) log what they move; this module only turns bytes
//! into words, with `udpchat_core::decode`, so every trace names kinds and numbers the same way
//! and nothing below the I/O layers logs. The text a person typed is never shown (only its
//! length): a trace is for watching the protocol, and may be pasted into a bug report.
//! Nicknames are shown escaped (`{:?}`), so a hostile one cannot drive the terminal.

use std::fmt::Write as _;

use udpchat_core::{Ack, Data, Packet};

/// The `tracing` target of the one-line-per-datagram traces (the driver's and the proxy's), for
/// filters: `RUST_LOG=udpchat::wire=debug`.
pub const TARGET: &str = "udpchat::wire";

/// What `datagram` is, in one line: its kind and numbers (`data seq=5 msg=3 frag=0/1 2B ack
/// cum=9 sack=11-12 delivered=7 win=512`), or why it is not a udpchat datagram.
pub fn describe(datagram: &[u8]) -> String {
    if let Some(text) = describe_encrypted(datagram) {
        return text;
    }
    let packet = match udpchat_core::decode(datagram) {
        Ok(packet) => packet,
        Err(e) => {
            // The simulator's TCP mode puts bare TCP segments on its links.
            return match crate::tcp::segment::parse(datagram) {
                Some(segment) => format!("{segment}"),
                None => format!("not a udpchat datagram ({e})"),
            };
        }
    };
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = match &packet {
        Packet::Raw(m) => write!(
            out,
            "raw seq={} nick={:?} text={}B",
            m.seq,
            m.nick,
            m.text.len()
        ),
        Packet::Hello(h) => write!(
            out,
            "hello src={:016x} nick={:?} win={}",
            h.src.0, h.nick, h.window
        ),
        Packet::Welcome(w) => write!(
            out,
            "welcome src={:016x} dst={:016x} nick={:?} win={}",
            w.src.0, w.dst.0, w.nick, w.window
        ),
        Packet::Data(d) => {
            data(&mut out, d);
            Ok(())
        }
        Packet::Ack { dst, ack: a } => {
            let _ = write!(out, "ack dst={:016x}", dst.0);
            ack(&mut out, a);
            Ok(())
        }
        Packet::Ping { dst } => write!(out, "ping dst={:016x}", dst.0),
        Packet::Pong { dst } => write!(out, "pong dst={:016x}", dst.0),
        Packet::Probe { dst, id, padding } => write!(
            out,
            "probe dst={:016x} id={id} {}B padding ({}B datagram)",
            dst.0,
            padding.len(),
            datagram.len()
        ),
        Packet::ProbeAck { dst, id } => write!(out, "probe-ack dst={:016x} id={id}", dst.0),
        Packet::Piece {
            dst,
            id,
            index,
            count,
            bytes,
        } => write!(
            out,
            "piece dst={:016x} id={id} {index}/{count} {}B",
            dst.0,
            bytes.len()
        ),
        Packet::Close { dst, ack: a } => {
            let _ = write!(out, "close dst={:016x}", dst.0);
            if let Some(a) = a {
                ack(&mut out, a);
            }
            Ok(())
        }
        // Session control in the data stream: a data packet under its own kind (the nickname
        // is the payload; its length is shown, as a line's).
        Packet::Fin(d) => {
            out.push_str("fin ");
            data(&mut out, d);
            Ok(())
        }
        Packet::Nick(d) => {
            out.push_str("nick ");
            data(&mut out, d);
            Ok(())
        }
        Packet::Bundle(items) => {
            let _ = write!(out, "bundle of {}:", items.len());
            for (i, d) in items.iter().enumerate() {
                out.push_str(if i == 0 { " " } else { " | copy " });
                data(&mut out, d);
            }
            Ok(())
        }
    };
    out
}

fn data(out: &mut String, d: &Data) {
    let _ = write!(
        out,
        "data seq={} msg={} frag={}/{} {}B",
        d.seq.0,
        d.message,
        d.fragment,
        d.fragments,
        d.payload.len()
    );
    if let Some(a) = &d.ack {
        ack(out, a);
    }
}

fn ack(out: &mut String, a: &Ack) {
    let _ = write!(out, " ack cum={}", a.cumulative.0);
    if !a.ranges.is_empty() {
        out.push_str(" sack=");
        for (i, r) in a.ranges.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}-{}", r.first.0, r.last.0);
        }
    }
    let _ = write!(out, " delivered={} win={}", a.delivered.0, a.window);
}

/// The clear part of an encrypted (`--secret`) datagram: its kind and ids, nothing else.
fn describe_encrypted(datagram: &[u8]) -> Option<String> {
    use udpchat_core::sealed::{sealed_kind, HandshakeFrame, SealedHeader, SealedKind};
    let kind = sealed_kind(datagram)?;
    Some(match kind {
        SealedKind::Sealed => match SealedHeader::parse(datagram) {
            Some(h) => format!(
                "sealed dst={:016x} counter={} ({}B sealed)",
                h.receiver,
                h.counter,
                datagram.len()
            ),
            None => format!("sealed, truncated ({}B)", datagram.len()),
        },
        _ => match HandshakeFrame::parse(datagram) {
            Ok(f) => format!("{} initiator={:016x}", kind.name(), f.initiator),
            Err(e) => format!("{}: {e}", kind.name()),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use udpchat_core::{AckRange, ConnectionId, RawMessage, SeqNum};

    fn encode(p: &Packet) -> Vec<u8> {
        udpchat_core::encode(p, 65_507).unwrap()
    }

    #[test]
    fn kinds_and_numbers_are_named_and_text_is_not_shown() {
        let raw = Packet::Raw(RawMessage {
            seq: 7,
            nick: "al\u{1b}ice".into(),
            text: "secret".into(),
        });
        let line = describe(&encode(&raw));
        assert_eq!(line, "raw seq=7 nick=\"al\\u{1b}ice\" text=6B");
        let data = Packet::Data(Data {
            dst: ConnectionId(0x0102),
            seq: SeqNum(5),
            message: 3,
            fragment: 0,
            fragments: 1,
            token: 9,
            payload: b"hi".to_vec(),
            ack: Some(Ack {
                cumulative: SeqNum(9),
                ranges: vec![AckRange {
                    first: SeqNum(11),
                    last: SeqNum(12),
                }],
                delay_us: 300,
                window: 512,
                delivered: SeqNum(7),
                echo: 1,
                ranges_delivered: false,
            }),
        });
        assert_eq!(
            describe(&encode(&data)),
            "data seq=5 msg=3 frag=0/1 2B ack cum=9 sack=11-12 delivered=7 win=512"
        );
        assert!(describe(b"hello there").starts_with("not a udpchat datagram ("));
    }
}
