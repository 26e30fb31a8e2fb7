//! The envelope decoder, fed anything.
//!
//! The first byte picks how the rest is used: as a datagram as it is (even), or as a datagram
//! *body* sealed with a valid magic, version and CRC (odd). Without the second mode the fuzzer
//! would almost never get past the CRC into the body decoder, where the interesting code is.
//!
//! Checked: `decode` never panics; whatever it accepts re-encodes (within the same number of
//! bytes: the encoding is minimal, so an accepted datagram is never shorter than its
//! re-encoding), decodes back to the same packet, and stops decoding if one byte is cut off.
//! One exception, by design: a raw-mode line's nick and text are decoded leniently, bytes that
//! are not UTF-8 becoming U+FFFD (three bytes each), so such a packet may re-encode up to three
//! times longer, or too long for a datagram.

use udpchat_core::{
    decode, encode, EncodeError, Packet, HEADER_LEN, MAGIC, MAX_UDP_PAYLOAD, TRAILER_LEN, VERSION,
};

/// `body` with a valid header and CRC around it.
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(HEADER_LEN + body.len() + TRAILER_LEN);
    d.extend_from_slice(&MAGIC);
    d.push(VERSION);
    d.extend_from_slice(body);
    let crc = crc32(&d);
    d.extend_from_slice(&crc.to_le_bytes());
    d
}

/// CRC-32 (IEEE), bit by bit: the harness must not share the implementation it checks.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// One fuzz input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let datagram = if mode & 1 == 1 {
        seal(rest)
    } else {
        rest.to_vec()
    };
    let Ok(packet) = decode(&datagram) else {
        return;
    };
    // Replacement characters may stand for bytes that were not UTF-8 (see the module doc).
    let lossy = matches!(&packet, Packet::Raw(m)
        if m.nick.contains('\u{FFFD}') || m.text.contains('\u{FFFD}'));
    let again = match encode(&packet, MAX_UDP_PAYLOAD) {
        Ok(bytes) => bytes,
        Err(EncodeError::TooLarge { .. }) if lossy => return,
        Err(e) => panic!("decoded {packet:?} but cannot encode it: {e}"),
    };
    let bound = if lossy {
        3 * datagram.len()
    } else {
        datagram.len()
    };
    assert!(
        again.len() <= bound,
        "re-encoding grew from {} to {} bytes: {packet:?}",
        datagram.len(),
        again.len()
    );
    assert_eq!(
        decode(&again).as_ref(),
        Ok(&packet),
        "round trip changed the packet"
    );
    assert!(
        decode(&again[..again.len() - 1]).is_err(),
        "a datagram one byte short decoded"
    );
}
