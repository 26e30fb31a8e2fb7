//! Pieces: how a data packet too large for the path as it is now still gets across.
//!
//! Path MTU discovery lets the sender cut messages into fragments that fill the PLPMTU. If the
//! path later shrinks (a black hole: `pmtu.rs`), the packets already cut for the larger size
//! cannot be cut again: a fragment keeps its sequence number, its index and its message's
//! fragment count for life, and the receiver reassembles by them. So such a packet, when it is
//! resent, travels as [`Packet::Piece`]s: its whole datagram (envelope and CRC included), split
//! into pieces that fit the PLPMTU, which the receiver joins and then takes as the datagram it
//! is. This is IP fragmentation's idea, with its weakness (one lost piece loses the whole
//! datagram, and the packet is resent, in new pieces, by the usual loss recovery), kept for the
//! rare packet stranded by a shrinking path; new packets are cut to fit, as always.
//!
//! Memory is bounded: at most [`MAX_PARTIALS`] datagrams are being joined at once (a newer one
//! pushes out the oldest), each of at most `MAX_PIECES` pieces and `MAX_UDP_PAYLOAD` bytes.

use std::collections::VecDeque;

use thiserror::Error;
use udpchat_core::{max_piece_overhead, ConnectionId, Packet, MAX_PIECES, MAX_UDP_PAYLOAD};

/// Datagrams being joined at once. The sender resends stranded packets one after another, so
/// pieces of more than a few interleave only on a path that reorders wildly; then the oldest
/// is dropped and resent later.
pub(crate) const MAX_PARTIALS: usize = 4;

/// Why a piece was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PieceError {
    /// A count below 2 or above `MAX_PIECES`, or an index not below the count.
    #[error("piece {index} of {count} is not a valid position")]
    BadPosition {
        /// Claimed index.
        index: u32,
        /// Claimed count.
        count: u32,
    },
    /// The pieces of one datagram disagree on their count.
    #[error("pieces of datagram {id} disagree on their count")]
    Inconsistent {
        /// The datagram's id.
        id: u32,
    },
    /// The pieces add up to more than a UDP payload.
    #[error("pieces of datagram {id} exceed a UDP payload")]
    TooLarge {
        /// The datagram's id.
        id: u32,
    },
}

#[derive(Debug, Clone)]
struct Partial {
    id: u32,
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
}

/// Joins pieces back into datagrams.
#[derive(Debug, Clone, Default)]
pub(crate) struct PieceAssembler {
    partials: VecDeque<Partial>,
}

impl PieceAssembler {
    /// Takes piece `index` of `count` of datagram `id`; returns the datagram once every piece
    /// is in. A piece seen twice replaces itself (a duplicate changes nothing).
    pub(crate) fn push(
        &mut self,
        id: u32,
        index: u32,
        count: u32,
        bytes: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, PieceError> {
        if !(2..=MAX_PIECES).contains(&count) || index >= count {
            return Err(PieceError::BadPosition { index, count });
        }
        let slot = match self.partials.iter().position(|p| p.id == id) {
            Some(i) => i,
            None => {
                if self.partials.len() == MAX_PARTIALS {
                    self.partials.pop_front();
                }
                self.partials.push_back(Partial {
                    id,
                    parts: vec![None; count as usize],
                    bytes: 0,
                });
                self.partials.len() - 1
            }
        };
        let partial = &mut self.partials[slot];
        if partial.parts.len() != count as usize {
            self.partials.remove(slot);
            return Err(PieceError::Inconsistent { id });
        }
        let old = partial.parts[index as usize].as_ref().map_or(0, Vec::len);
        partial.bytes = partial.bytes - old + bytes.len();
        if partial.bytes > MAX_UDP_PAYLOAD {
            self.partials.remove(slot);
            return Err(PieceError::TooLarge { id });
        }
        partial.parts[index as usize] = Some(bytes);
        if partial.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let done = self.partials.remove(slot);
        Ok(done.map(|p| p.parts.into_iter().flatten().flatten().collect()))
    }
}

/// `datagram` as the pieces that carry it to `dst`, each at most `max` bytes; `None` if it
/// would take more than `MAX_PIECES` (a `max` far below the base size).
pub(crate) fn split(
    datagram: &[u8],
    dst: ConnectionId,
    id: u32,
    max: usize,
) -> Option<Vec<Packet>> {
    let room = max.checked_sub(max_piece_overhead()).filter(|&r| r > 0)?;
    let chunks: Vec<&[u8]> = datagram.chunks(room).collect();
    let count = u32::try_from(chunks.len())
        .ok()
        .filter(|c| (2..=MAX_PIECES).contains(c))?;
    Some(
        chunks
            .into_iter()
            .zip(0..)
            .map(|(chunk, index)| Packet::Piece {
                dst,
                id,
                index,
                count,
                bytes: chunk.to_vec(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bytes_of(piece: &Packet) -> (u32, u32, u32, Vec<u8>) {
        match piece {
            Packet::Piece {
                id,
                index,
                count,
                bytes,
                ..
            } => (*id, *index, *count, bytes.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pieces_fit_and_join_back_in_any_order() {
        let datagram: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let pieces = split(&datagram, ConnectionId(7), 1, 1200).unwrap();
        assert_eq!(pieces.len(), 3);
        for p in &pieces {
            assert!(udpchat_core::encode(p, 1200).unwrap().len() <= 1200);
        }
        let mut joiner = PieceAssembler::default();
        let mut joined = None;
        for (i, p) in pieces.iter().rev().enumerate() {
            let (id, index, count, bytes) = bytes_of(p);
            if i == 0 {
                // A duplicate changes nothing.
                assert_eq!(joiner.push(id, index, count, bytes.clone()), Ok(None));
            }
            joined = joiner.push(id, index, count, bytes).unwrap().or(joined);
        }
        assert_eq!(joined, Some(datagram));
        assert!(joiner.partials.is_empty());
    }

    #[test]
    fn bad_pieces_are_refused_and_memory_stays_bounded() {
        let mut joiner = PieceAssembler::default();
        assert!(joiner.push(1, 0, 1, vec![1]).is_err());
        assert!(joiner.push(1, 2, 2, vec![1]).is_err());
        assert!(joiner.push(1, 0, MAX_PIECES + 1, vec![1]).is_err());
        assert_eq!(joiner.push(1, 0, 2, vec![1]), Ok(None));
        assert_eq!(
            joiner.push(1, 1, 3, vec![1]),
            Err(PieceError::Inconsistent { id: 1 })
        );
        assert_eq!(
            joiner.push(2, 0, 2, vec![0; MAX_UDP_PAYLOAD + 1]),
            Err(PieceError::TooLarge { id: 2 })
        );
        for id in 10..30 {
            joiner.push(id, 0, 2, vec![0; 1000]).unwrap();
        }
        assert_eq!(joiner.partials.len(), MAX_PARTIALS);
        // What fits one datagram is not cut; what needs too many pieces cannot be.
        assert!(split(&[0; 100], ConnectionId(1), 1, 1200).is_none());
        assert!(split(&[0; 60_000], ConnectionId(1), 1, 200).is_none());
    }
}
