//! TCP mode's framing: how messages are cut out of a byte stream.
//!
//! UDP keeps message boundaries and TCP does not, so over TCP each message is a frame:
//! a 4-byte big-endian length, then exactly one udpchat datagram as `udpchat_core` encodes it
//! (magic, version, body, CRC-32). There is one codec: this module only adds and strips the
//! length, and every check of what is inside stays `core::decode`'s.
//!
//! A frame's length is capped at [`MAX_FRAME`] (the largest datagram the envelope allows), so a
//! peer cannot make us buffer more than one frame plus one read. A frame whose body is junk or
//! fails its CRC is skipped: its length still says where the next frame starts, so the stream
//! stays in step ([`FrameError::is_fatal`] is false). A length above the cap cannot be skipped
//! safely (it is junk, or a peer that speaks something else), so it ends the connection.
//!
//! With `--secret` the datagram in each frame is sealed (`udpchat_secure::SecureStream`), and the
//! first frames are the handshake's: [`FrameReader::next_datagram`] hands them over undecoded.
//!
//! `--plain` has no frames: bare UTF-8 lines ending in `\n` (a `\r` before it is dropped), so
//! `nc HOST 2323` can join. [`LineReader`] caps a line at [`MAX_LINE`] bytes: a longer one is
//! reported and skipped up to its newline.

use thiserror::Error;
use udpchat_core::{DecodeError, EncodeError, Packet, MAX_UDP_PAYLOAD};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// The largest frame body (one datagram): the envelope's own limit.
pub const MAX_FRAME: usize = MAX_UDP_PAYLOAD;

/// The longest `--plain` line, in bytes, without its newline.
pub const MAX_LINE: usize = MAX_UDP_PAYLOAD;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix is above [`MAX_FRAME`]: the stream cannot be trusted past it.
    #[error("frame length {len} is above the {max}-byte limit: not a udpchat TCP stream")]
    TooLong {
        /// The length the prefix claimed.
        len: u64,
        /// The most a frame may hold.
        max: usize,
    },
    /// The frame's datagram failed `core::decode`; the frame was skipped.
    #[error("bad frame: {0}")]
    Decode(#[from] DecodeError),
}

impl FrameError {
    /// True if the stream is out of step and the connection must end.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FrameError::TooLong { .. })
    }
}

/// Appends `packet` to `out` as one frame. Fails, leaving `out` as it was, if the datagram
/// would be over [`MAX_FRAME`].
pub fn encode_frame(packet: &Packet, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let datagram = udpchat_core::encode(packet, MAX_FRAME)?;
    push_frame(&datagram, out)
}

/// Appends an already encoded datagram (plain, or sealed with `--secret`) to `out` as one
/// frame. Fails, leaving `out` as it was, if it is over [`MAX_FRAME`].
pub fn push_frame(datagram: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let too_large = EncodeError::TooLarge {
        needed: datagram.len(),
        max: MAX_FRAME,
    };
    if datagram.len() > MAX_FRAME {
        return Err(too_large);
    }
    let len = u32::try_from(datagram.len()).map_err(|_| too_large)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(datagram);
    Ok(())
}

/// Cuts frames out of the bytes read so far.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// A fatal error was found: nothing more is read.
    broken: bool,
}

impl FrameReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        FrameReader::default()
    }

    /// Adds bytes read from the stream. Call [`FrameReader::next_frame`] until it returns
    /// `None` before adding more, so the buffer stays within one frame and one read.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes held that are not a whole frame yet (at the end of the stream: a cut-off frame).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, decoded; `None` until one is complete. After a fatal error it
    /// returns `None` for good.
    pub fn next_frame(&mut self) -> Option<Result<(Packet, usize), FrameError>> {
        let frame = self.next_datagram()?;
        Some(frame.and_then(|(datagram, wire)| {
            udpchat_core::decode(&datagram)
                .map(|packet| (packet, wire))
                .map_err(FrameError::from)
        }))
    }

    /// The next whole frame's datagram, undecoded (with `--secret` it is sealed, and opened
    /// before it is decoded), with the frame's bytes on the wire. The only error is a length
    /// above the cap, which is fatal.
    pub fn next_datagram(&mut self) -> Option<Result<(Vec<u8>, usize), FrameError>> {
        if self.broken || self.buf.len() < LEN_PREFIX {
            return None;
        }
        let prefix = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
        let len = u32::from_be_bytes(prefix);
        let Some(len) = usize::try_from(len).ok().filter(|&len| len <= MAX_FRAME) else {
            self.broken = true;
            self.buf = Vec::new();
            return Some(Err(FrameError::TooLong {
                len: u64::from(len),
                max: MAX_FRAME,
            }));
        };
        let end = LEN_PREFIX + len;
        if self.buf.len() < end {
            return None;
        }
        let datagram = self.buf[LEN_PREFIX..end].to_vec();
        self.buf.drain(..end);
        Some(Ok((datagram, end)))
    }
}

/// A `--plain` line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// More than [`MAX_LINE`] bytes without a newline; the line was skipped.
    #[error("a line longer than {max} bytes was skipped")]
    TooLong {
        /// The most a line may hold.
        max: usize,
    },
}

/// Cuts `--plain` lines out of the bytes read so far.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
    /// Inside a line that was too long: drop bytes until its newline.
    skipping: bool,
}

impl LineReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        LineReader::default()
    }

    /// Adds bytes read from the stream; then call [`LineReader::next_line`] until `None`.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole line (invalid UTF-8 replaced by U+FFFD), with its byte count on the wire;
    /// `None` until one is complete.
    pub fn next_line(&mut self) -> Option<Result<(String, usize), LineError>> {
        loop {
            let Some(at) = self.buf.iter().position(|&b| b == b'\n') else {
                return self.overlong();
            };
            let line: Vec<u8> = self.buf.drain(..=at).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let wire = line.len();
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.len() > MAX_LINE {
                return Some(Err(LineError::TooLong { max: MAX_LINE }));
            }
            return Some(Ok((String::from_utf8_lossy(text).into_owned(), wire)));
        }
    }

    /// The end of the stream: what is left, if anything, as a last line without a newline.
    pub fn finish(&mut self) -> Option<(String, usize)> {
        let rest = std::mem::take(&mut self.buf);
        if rest.is_empty() || std::mem::take(&mut self.skipping) {
            return None;
        }
        let text = rest.strip_suffix(b"\r").unwrap_or(&rest);
        Some((String::from_utf8_lossy(text).into_owned(), rest.len()))
    }

    /// No newline buffered: if the line so far is already too long, drop it and say so once.
    fn overlong(&mut self) -> Option<Result<(String, usize), LineError>> {
        if self.buf.len() <= MAX_LINE + 1 {
            return None;
        }
        self.buf.clear();
        if std::mem::replace(&mut self.skipping, true) {
            return None;
        }
        Some(Err(LineError::TooLong { max: MAX_LINE }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use udpchat_core::{ConnectionId, Data, SeqNum};

    fn data(message: u64, text: &str) -> Packet {
        Packet::Data(Data {
            dst: ConnectionId(0),
            seq: SeqNum(message),
            message,
            fragment: 0,
            fragments: 1,
            token: 0,
            payload: text.as_bytes().to_vec(),
            ack: None,
        })
    }

    fn frames(reader: &mut FrameReader) -> Vec<Result<Packet, FrameError>> {
        std::iter::from_fn(|| reader.next_frame())
            .map(|r| r.map(|(p, _)| p))
            .collect()
    }

    #[test]
    fn frames_survive_any_split_of_the_stream() {
        let mut stream = Vec::new();
        let sent: Vec<Packet> = (0..5)
            .map(|i| data(i, &"x".repeat(i as usize * 300)))
            .collect();
        for packet in &sent {
            encode_frame(packet, &mut stream).unwrap();
        }
        for chunk in [1, 3, 7, 1000, stream.len()] {
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.push(piece);
                got.extend(frames(&mut reader));
            }
            assert_eq!(got, sent.iter().cloned().map(Ok).collect::<Vec<_>>());
            assert_eq!(reader.pending(), 0);
        }
    }

    #[test]
    fn a_frame_is_its_length_then_the_core_datagram() {
        let packet = data(7, "hi");
        let mut framed = Vec::new();
        encode_frame(&packet, &mut framed).unwrap();
        let datagram = udpchat_core::encode(&packet, MAX_FRAME).unwrap();
        assert_eq!(&framed[..4], &(datagram.len() as u32).to_be_bytes());
        assert_eq!(&framed[4..], &datagram[..]);
    }

    #[test]
    fn a_corrupt_frame_is_skipped_and_the_next_one_still_reads() {
        let mut stream = Vec::new();
        encode_frame(&data(0, "first"), &mut stream).unwrap();
        let flip = stream.len() - 6;
        stream[flip] ^= 0x01;
        encode_frame(&data(1, "second"), &mut stream).unwrap();
        // A junk frame of a sane length: decoded, refused, skipped.
        stream.extend_from_slice(&5u32.to_be_bytes());
        stream.extend_from_slice(b"junk!");
        encode_frame(&data(2, "third"), &mut stream).unwrap();
        let mut reader = FrameReader::new();
        reader.push(&stream);
        let got = frames(&mut reader);
        assert!(matches!(
            got[0],
            Err(FrameError::Decode(DecodeError::BadChecksum { .. }))
        ));
        assert_eq!(got[1], Ok(data(1, "second")));
        assert!(matches!(&got[2], Err(e) if !e.is_fatal()));
        assert_eq!(got[3], Ok(data(2, "third")));
    }

    #[test]
    fn an_oversize_length_is_fatal_and_nothing_is_buffered_after_it() {
        let mut reader = FrameReader::new();
        reader.push(&u32::MAX.to_be_bytes());
        let err = reader.next_frame().unwrap().unwrap_err();
        assert!(err.is_fatal());
        assert_eq!(
            err,
            FrameError::TooLong {
                len: u64::from(u32::MAX),
                max: MAX_FRAME
            }
        );
        reader.push(&[0u8; 4096]);
        assert_eq!(reader.pending(), 0);
        assert!(reader.next_frame().is_none());
        // The largest allowed length is not fatal: it waits for its bytes.
        let mut reader = FrameReader::new();
        reader.push(&(MAX_FRAME as u32).to_be_bytes());
        assert!(reader.next_frame().is_none());
    }

    #[test]
    fn a_packet_too_big_for_a_frame_is_refused() {
        let mut out = vec![1, 2];
        let err = encode_frame(&data(0, &"y".repeat(MAX_FRAME)), &mut out).unwrap_err();
        assert!(matches!(err, EncodeError::TooLarge { .. }));
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn plain_lines_split_on_newlines_and_drop_carriage_returns() {
        let mut reader = LineReader::new();
        reader.push(b"hello\r\nw");
        assert_eq!(reader.next_line(), Some(Ok(("hello".into(), 7))));
        assert_eq!(reader.next_line(), None);
        reader.push(b"orld\n\xff\n");
        assert_eq!(reader.next_line(), Some(Ok(("world".into(), 6))));
        assert_eq!(reader.next_line(), Some(Ok(("\u{fffd}".into(), 2))));
        reader.push(b"no newline");
        assert_eq!(reader.finish(), Some(("no newline".into(), 10)));
        assert_eq!(reader.finish(), None);
    }

    #[test]
    fn an_overlong_plain_line_is_reported_once_and_skipped_to_its_newline() {
        let mut reader = LineReader::new();
        let mut errors = 0;
        for _ in 0..5 {
            reader.push(&[b'a'; MAX_LINE / 2]);
            while let Some(line) = reader.next_line() {
                assert_eq!(line, Err(LineError::TooLong { max: MAX_LINE }));
                errors += 1;
            }
            assert!(reader.buf.len() <= MAX_LINE + 1);
        }
        reader.push(b"tail\nnext\n");
        assert_eq!(reader.next_line(), Some(Ok(("next".into(), 5))));
        assert_eq!(errors, 1);
    }
}
