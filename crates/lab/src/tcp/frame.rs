//! Messages on a byte stream: each one a frame of `length (u32, big endian) | datagram`, where the
//! datagram is exactly what raw mode would send (`udpchat_core::encode` of a `Packet::Raw`), so a
//! TCP chat uses the one codec, CRC included.
//!
//! TCP delivers bytes, not messages: a read may end in the middle of a frame or hold several.
//! [`FrameReader`] keeps the bytes of an unfinished frame until the rest arrives. A length above
//! [`MAX_FRAME`] cannot come from a udpchat peer (no datagram is longer), so it ends the stream
//! with [`FrameError::TooLong`] instead of waiting for gigabytes: the memory held is bounded by
//! one frame.

use thiserror::Error;
use udpchat_core::{DecodeError, EncodeError, Packet, RawMessage, MAX_UDP_PAYLOAD};

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Longest frame body accepted or sent: the longest datagram the codec makes.
pub const MAX_FRAME: usize = MAX_UDP_PAYLOAD;

/// Why the stream cannot be read further, or one frame could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A length prefix larger than any datagram: the stream is not udpchat's, or is broken.
    /// Framing is lost, so nothing after it can be read.
    #[error(
        "frame of {len} bytes announced, at most {MAX_FRAME} allowed: the stream is not udpchat's"
    )]
    TooLong {
        /// The announced length.
        len: usize,
    },
    /// A complete frame whose body is not a valid udpchat datagram (framing is intact, the next
    /// frame is read as usual).
    #[error("frame is not a udpchat datagram: {0}")]
    Decode(#[from] DecodeError),
}

/// The frame of message `seq` from `nick`: its length prefix, then its datagram.
pub fn encode(seq: u64, nick: &str, text: &str) -> Result<Vec<u8>, EncodeError> {
    let packet = Packet::Raw(RawMessage {
        seq,
        nick: nick.to_owned(),
        text: text.to_owned(),
    });
    let body = udpchat_core::encode(&packet, MAX_FRAME)?;
    // The codec refuses bodies over MAX_FRAME, so the length fits the prefix.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(PREFIX_LEN + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reassembles frames from stream bytes.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    broken: bool,
}

impl FrameReader {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete frame's message, if one is complete; `Err(TooLong)` once framing is
    /// lost (then always `None` after).
    pub fn next_message(&mut self) -> Option<Result<RawMessage, FrameError>> {
        if self.broken || self.buf.len() < PREFIX_LEN {
            return None;
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&self.buf[..PREFIX_LEN]);
        let len = u32::from_be_bytes(prefix) as usize;
        if len > MAX_FRAME {
            self.broken = true;
            self.buf = Vec::new();
            return Some(Err(FrameError::TooLong { len }));
        }
        if self.buf.len() < PREFIX_LEN + len {
            return None;
        }
        let result = match udpchat_core::decode(&self.buf[PREFIX_LEN..PREFIX_LEN + len]) {
            Ok(Packet::Raw(message)) => Ok(message),
            // Another kind in a frame: a valid datagram that is not a message on a stream.
            Ok(_) => Err(FrameError::Decode(DecodeError::Malformed(
                "a frame carries only raw messages".to_owned(),
            ))),
            Err(e) => Err(FrameError::Decode(e)),
        };
        self.buf.drain(..PREFIX_LEN + len);
        Some(result)
    }

    /// Bytes held for an unfinished frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole_and_in_order() {
        let stream: Vec<u8> = (0..3)
            .flat_map(|i| encode(i, "al", &format!("line {i}")).unwrap())
            .collect();
        for cut in 0..stream.len() {
            let mut reader = FrameReader::default();
            reader.push(&stream[..cut]);
            let mut got = Vec::new();
            while let Some(m) = reader.next_message() {
                got.push(m.unwrap());
            }
            reader.push(&stream[cut..]);
            while let Some(m) = reader.next_message() {
                got.push(m.unwrap());
            }
            let texts: Vec<_> = got.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["line 0", "line 1", "line 2"], "cut at {cut}");
            assert_eq!(reader.pending(), 0);
        }
    }

    #[test]
    fn a_huge_length_breaks_the_stream_without_allocating_it() {
        let mut reader = FrameReader::default();
        reader.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            reader.next_message(),
            Some(Err(FrameError::TooLong { .. }))
        ));
        reader.push(&encode(0, "a", "after").unwrap());
        assert!(reader.next_message().is_none());
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn a_damaged_body_is_reported_and_the_next_frame_still_reads() {
        let mut first = encode(0, "a", "one").unwrap();
        let last = first.len() - 1;
        first[last] ^= 1;
        let mut reader = FrameReader::default();
        reader.push(&first);
        reader.push(&encode(1, "a", "two").unwrap());
        assert!(matches!(
            reader.next_message(),
            Some(Err(FrameError::Decode(DecodeError::BadChecksum { .. })))
        ));
        assert_eq!(reader.next_message().unwrap().unwrap().text, "two");
    }
}
