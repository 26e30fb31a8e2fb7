//! proptest strategies for every packet kind (test-only), shared by the property tests.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::packet::{
    Ack, AckRange, ConnectionId, Data, Hello, Packet, RawMessage, SeqNum, Welcome,
};

fn seq() -> impl Strategy<Value = SeqNum> {
    any::<u64>().prop_map(SeqNum)
}

fn cid() -> impl Strategy<Value = ConnectionId> {
    any::<u64>().prop_map(ConnectionId)
}

/// Unicode text, including multi-byte characters, kept small enough to fit one datagram.
fn text() -> impl Strategy<Value = String> {
    ".{0,64}"
}

/// Any acknowledgement (ranges need not be valid: the encoder does not care).
pub fn ack() -> impl Strategy<Value = Ack> {
    (
        seq(),
        vec(
            (seq(), seq()).prop_map(|(first, last)| AckRange { first, last }),
            0..8,
        ),
        any::<u64>(),
        any::<u32>(),
        seq(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(cumulative, ranges, delay_us, window, delivered, echo, ranges_delivered)| Ack {
                cumulative,
                ranges,
                delay_us,
                window,
                delivered,
                echo,
                ranges_delivered,
            },
        )
}

fn data() -> impl Strategy<Value = Data> {
    (
        cid(),
        seq(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        vec(any::<u8>(), 0..512),
        proptest::option::of(ack()),
    )
        .prop_map(
            |(dst, seq, message, fragment, fragments, token, payload, ack)| Data {
                dst,
                seq,
                message,
                fragment,
                fragments,
                token,
                payload,
                ack,
            },
        )
}

/// Any packet of any kind.
pub fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        (any::<u64>(), text(), text()).prop_map(|(seq, nick, text)| Packet::Raw(RawMessage {
            seq,
            nick,
            text
        })),
        (cid(), text(), any::<u32>()).prop_map(|(src, nick, window)| Packet::Hello(Hello {
            src,
            nick,
            window
        })),
        (cid(), cid(), text(), any::<u32>()).prop_map(|(src, dst, nick, window)| {
            Packet::Welcome(Welcome {
                src,
                dst,
                nick,
                window,
            })
        }),
        data().prop_map(Packet::Data),
        (cid(), ack()).prop_map(|(dst, ack)| Packet::Ack { dst, ack }),
        cid().prop_map(|dst| Packet::Ping { dst }),
        cid().prop_map(|dst| Packet::Pong { dst }),
        (cid(), proptest::option::of(ack())).prop_map(|(dst, ack)| Packet::Close { dst, ack }),
        // Small bundles: the bit-flip property visits every bit of every case.
        vec(data(), 1..4).prop_map(Packet::Bundle),
        data().prop_map(Packet::Fin),
        data().prop_map(Packet::Nick),
        (cid(), any::<u32>(), vec(any::<u8>(), 0..40))
            .prop_map(|(dst, id, padding)| Packet::Probe { dst, id, padding }),
        (cid(), any::<u32>()).prop_map(|(dst, id)| Packet::ProbeAck { dst, id }),
        (
            cid(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(dst, id, index, count, bytes)| Packet::Piece {
                dst,
                id,
                index,
                count,
                bytes
            }),
    ]
}
