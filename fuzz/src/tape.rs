//! Writes fuzz inputs back as bytes, for the seed corpus.
//!
//! `arbitrary` 1.x reads integers as little-endian bytes, a `bool` or an `Option` tag as one byte
//! (`& 1`), struct fields and array elements in order, and an enum's variant from a `u32` `x` as
//! `(x * variant_count) >> 32`. [`Tape`] writes exactly that, and the seed generator reads every
//! input it writes back through the harness's own reader and checks it gets the same operations,
//! so a change in `arbitrary`'s layout fails the generator instead of producing useless seeds.

/// A byte string being written in `arbitrary`'s layout.
#[derive(Debug, Default, Clone)]
pub struct Tape(pub Vec<u8>);

impl Tape {
    /// An empty tape.
    pub fn new() -> Tape {
        Tape::default()
    }

    /// Variant `index` of an enum with `count` variants: the smallest `x` with
    /// `(x * count) >> 32 == index`.
    pub fn variant(&mut self, index: u32, count: u32) -> &mut Self {
        assert!(index < count, "variant {index} of {count}");
        let x = (u64::from(index) << 32).div_ceil(u64::from(count));
        self.u32(u32::try_from(x).expect("below 2^32 as index < count"))
    }

    /// A `u8` (or a `bool`: 0 or 1).
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// A `bool`, or an `Option`'s tag.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A [`crate::Bytes`]: its length as a `u16`, then the bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u16(u16::try_from(v.len()).expect("seed datagrams are short"));
        self.0.extend_from_slice(v);
        self
    }
}

/// A value that can be written back in the layout its `Arbitrary` impl reads.
pub trait Write {
    /// Appends `self` to `tape`.
    fn write(&self, tape: &mut Tape);
}

impl Write for crate::Who {
    fn write(&self, tape: &mut Tape) {
        match self {
            crate::Who::Peer => {
                tape.variant(0, 2);
            }
            crate::Who::Stranger(n) => {
                tape.variant(1, 2).u8(*n);
            }
        }
    }
}

impl<T: Write> Write for Option<T> {
    fn write(&self, tape: &mut Tape) {
        tape.bool(self.is_some());
        if let Some(v) = self {
            v.write(tape);
        }
    }
}
