//! Fragmentation: a message longer than one datagram travels as several consecutive packets.
//!
//! A pasted 10 kB text does not fit a 1200-byte datagram, and IP fragmentation is the wrong
//! answer (one lost IP fragment loses the whole datagram, and many paths drop fragments). So a
//! message becomes `count` fragments with consecutive sequence numbers, each saying its index and
//! the count; the receiver rebuilds the message and delivers it once, whole. Memory is bounded:
//! fragment counts and total sizes above the configured maximum message are refused, and partial
//! messages live only inside the receive window.

use std::collections::BTreeMap;

use thiserror::Error;

/// One fragment of one message, as the sender keeps it and the receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The message's number (the sender's `MessageId`).
    pub message: u64,
    /// Index within the message, from 0.
    pub index: u32,
    /// How many fragments the message has.
    pub count: u32,
    /// This fragment's bytes.
    pub payload: Vec<u8>,
}

/// Splits `bytes` into fragments of at most `max_payload` bytes. An empty message is one empty
/// fragment, so it is still delivered. The caller has checked the size limit.
pub fn split(message: u64, bytes: &[u8], max_payload: usize) -> Vec<Fragment> {
    let max_payload = max_payload.max(1);
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[]]
    } else {
        bytes.chunks(max_payload).collect()
    };
    let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    chunks
        .into_iter()
        .zip(0u32..)
        .map(|(chunk, index)| Fragment {
            message,
            index,
            count,
            payload: chunk.to_vec(),
        })
        .collect()
}

/// Why a fragment was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FragmentError {
    /// `index >= count`, or `count == 0`.
    #[error("fragment {index} of {count} is not a valid position")]
    BadIndex {
        /// Claimed index.
        index: u32,
        /// Claimed count.
        count: u32,
    },
    /// More fragments, or more bytes, than the largest allowed message.
    #[error("message would exceed the {max} byte limit")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
    /// The fragment contradicts the ones before it (other message, other count, wrong order).
    #[error("fragment does not continue the message being assembled")]
    Inconsistent,
}

/// Limits a receiver holds every fragment to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message in bytes.
    pub max_message: usize,
    /// Most fragments a message may have.
    pub max_fragments: u32,
}

impl Limits {
    /// Checks one fragment's header and size on its own.
    pub fn check(&self, fragment: &Fragment) -> Result<(), FragmentError> {
        if fragment.count == 0 || fragment.index >= fragment.count {
            return Err(FragmentError::BadIndex {
                index: fragment.index,
                count: fragment.count,
            });
        }
        if fragment.count > self.max_fragments || fragment.payload.len() > self.max_message {
            return Err(FragmentError::TooLarge {
                max: self.max_message,
            });
        }
        Ok(())
    }
}

/// Rebuilds messages from fragments that arrive in sequence order (ordered delivery).
#[derive(Debug, Clone)]
pub struct OrderedAssembler {
    limits: Limits,
    partial: Option<Partial>,
}

#[derive(Debug, Clone)]
struct Partial {
    message: u64,
    count: u32,
    next_index: u32,
    bytes: Vec<u8>,
}

impl OrderedAssembler {
    /// Nothing assembled yet.
    pub fn new(limits: Limits) -> Self {
        OrderedAssembler {
            limits,
            partial: None,
        }
    }

    /// Takes the next fragment in sequence order; returns `(message, bytes)` when it completes a
    /// message. On an error the partial message is discarded (its fragments cannot be trusted).
    pub fn push(&mut self, fragment: Fragment) -> Result<Option<(u64, Vec<u8>)>, FragmentError> {
        self.limits.check(&fragment)?;
        let mut partial = match self.partial.take() {
            None if fragment.index == 0 => Partial {
                message: fragment.message,
                count: fragment.count,
                next_index: 0,
                bytes: Vec::new(),
            },
            None => return Err(FragmentError::Inconsistent),
            Some(p) => p,
        };
        if partial.message != fragment.message
            || partial.count != fragment.count
            || partial.next_index != fragment.index
        {
            return Err(FragmentError::Inconsistent);
        }
        if partial.bytes.len() + fragment.payload.len() > self.limits.max_message {
            return Err(FragmentError::TooLarge {
                max: self.limits.max_message,
            });
        }
        partial.bytes.extend_from_slice(&fragment.payload);
        partial.next_index += 1;
        if partial.next_index == partial.count {
            Ok(Some((partial.message, partial.bytes)))
        } else {
            self.partial = Some(partial);
            Ok(None)
        }
    }
}

/// Rebuilds messages from fragments arriving in any order (unordered delivery). Partial messages
/// are keyed by the sequence number of their first fragment.
#[derive(Debug, Clone)]
pub struct UnorderedAssembler {
    limits: Limits,
    partials: BTreeMap<u64, Scattered>,
}

#[derive(Debug, Clone)]
struct Scattered {
    message: u64,
    count: u32,
    parts: BTreeMap<u32, Vec<u8>>,
    bytes: usize,
}

impl UnorderedAssembler {
    /// Nothing assembled yet.
    pub fn new(limits: Limits) -> Self {
        UnorderedAssembler {
            limits,
            partials: BTreeMap::new(),
        }
    }

    /// Takes the fragment that travelled as sequence number `seq`; returns `(message, bytes)` when
    /// it completes a message.
    pub fn push(
        &mut self,
        seq: u64,
        fragment: Fragment,
    ) -> Result<Option<(u64, Vec<u8>)>, FragmentError> {
        self.limits.check(&fragment)?;
        let first = seq
            .checked_sub(u64::from(fragment.index))
            .ok_or(FragmentError::Inconsistent)?;
        let entry = self.partials.entry(first).or_insert_with(|| Scattered {
            message: fragment.message,
            count: fragment.count,
            parts: BTreeMap::new(),
            bytes: 0,
        });
        if entry.message != fragment.message || entry.count != fragment.count {
            return Err(FragmentError::Inconsistent);
        }
        if entry.bytes + fragment.payload.len() > self.limits.max_message {
            return Err(FragmentError::TooLarge {
                max: self.limits.max_message,
            });
        }
        entry.bytes += fragment.payload.len();
        entry.parts.insert(fragment.index, fragment.payload);
        if entry.parts.len() < entry.count as usize {
            return Ok(None);
        }
        let Some(done) = self.partials.remove(&first) else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(done.bytes);
        for part in done.parts.into_values() {
            bytes.extend_from_slice(&part);
        }
        Ok(Some((done.message, bytes)))
    }

    /// Forgets partial messages that can no longer complete: every sequence number they span is
    /// below `cumulative`, so all their packets arrived, yet they are incomplete (an inconsistent
    /// peer).
    pub fn prune_below(&mut self, cumulative: u64) {
        self.partials
            .retain(|&first, p| first.saturating_add(u64::from(p.count)) > cumulative);
    }

    /// Partial messages held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.partials.len()
    }

    /// True when no partial message is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.partials.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIMITS: Limits = Limits {
        max_message: 100,
        max_fragments: 10,
    };

    #[test]
    fn split_covers_the_message_and_empty_is_one_fragment() {
        let frags = split(7, &[1u8; 25], 10);
        assert_eq!(frags.len(), 3);
        assert!(frags.iter().all(|f| f.count == 3 && f.message == 7));
        assert_eq!(frags[2].payload.len(), 5);
        let empty = split(0, &[], 10);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].count, 1);
    }

    #[test]
    fn ordered_reassembles_a_split_message() {
        let bytes: Vec<u8> = (0..95).collect();
        let mut a = OrderedAssembler::new(LIMITS);
        let mut out = None;
        for f in split(3, &bytes, 10) {
            assert!(out.is_none());
            out = a.push(f).unwrap();
        }
        assert_eq!(out, Some((3, bytes)));
    }

    #[test]
    fn ordered_refuses_inconsistent_and_oversize_fragments() {
        let mut a = OrderedAssembler::new(LIMITS);
        let f = |message, index, count, len| Fragment {
            message,
            index,
            count,
            payload: vec![0; len],
        };
        assert_eq!(
            a.push(f(0, 1, 2, 1)),
            Err(FragmentError::Inconsistent),
            "a message cannot start mid-way"
        );
        assert!(matches!(
            a.push(f(0, 2, 2, 1)),
            Err(FragmentError::BadIndex { .. })
        ));
        assert!(matches!(
            a.push(f(0, 0, 11, 1)),
            Err(FragmentError::TooLarge { .. })
        ));
        assert_eq!(a.push(f(0, 0, 2, 60)), Ok(None));
        assert!(matches!(
            a.push(f(0, 1, 2, 60)),
            Err(FragmentError::TooLarge { .. })
        ));
        // After an error the assembler starts afresh.
        assert_eq!(a.push(f(1, 0, 1, 5)), Ok(Some((1, vec![0; 5]))));
    }

    #[test]
    fn unordered_reassembles_in_any_order() {
        let bytes: Vec<u8> = (0..30).collect();
        let frags = split(9, &bytes, 10);
        let mut a = UnorderedAssembler::new(LIMITS);
        // Sequence numbers 100, 101, 102 arriving as 102, 100, 101.
        assert_eq!(a.push(102, frags[2].clone()), Ok(None));
        assert_eq!(a.push(100, frags[0].clone()), Ok(None));
        assert_eq!(a.push(101, frags[1].clone()), Ok(Some((9, bytes))));
        assert!(a.is_empty());
    }

    #[test]
    fn unordered_prunes_what_cannot_complete() {
        let mut a = UnorderedAssembler::new(LIMITS);
        let f = Fragment {
            message: 0,
            index: 0,
            count: 3,
            payload: vec![1],
        };
        assert_eq!(a.push(10, f), Ok(None));
        a.prune_below(12);
        assert_eq!(a.len(), 1, "seq 12 may still arrive");
        a.prune_below(13);
        assert!(a.is_empty());
    }
}
