//! Writes the seed corpus (`fuzz/corpus/<target>/`): a few small, meaningful inputs per target,
//! so each fuzzing run starts from real sessions instead of rediscovering the handshake.
//!
//! Run from `fuzz/`: `cargo +nightly run --example seed_corpus`. Every endpoint seed is read back
//! through the harness's own reader and must give the operations it was written from (see
//! `udpchat_fuzz::tape`).

use std::fs;
use std::path::Path;

use udpchat_core::{
    encode, Ack, AckRange, ConnectionId, Data, Hello, Packet, RawMessage, SeqNum, Welcome,
};
use udpchat_fuzz::pair;
use udpchat_fuzz::raw;
use udpchat_fuzz::reliable::{self, AckPick, DataPick, EchoPick, IdPick, SeqPick, Wire};
use udpchat_fuzz::tape::{Tape, Write};
use udpchat_fuzz::{Bytes, Who};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let datagrams = datagrams();
    for (name, d) in &datagrams {
        let mut input = vec![0u8];
        input.extend_from_slice(d);
        save(&root, "decode", name, &input);
    }
    // The body alone, for the decoder's "sealed" mode: the fuzzer mutates inside a valid CRC.
    for (name, d) in &datagrams {
        let mut input = vec![1u8];
        input.extend_from_slice(&d[3..d.len() - 4]);
        save(&root, "decode", &format!("{name}-body"), &input);
    }
    for (name, setup, ops) in reliable_seeds(&datagrams) {
        let mut t = Tape::new();
        setup.write(&mut t);
        ops.iter().for_each(|op| op.write(&mut t));
        assert_eq!(
            reliable::read(&t.0),
            Some((setup, ops)),
            "seed {name} reads back differently: arbitrary's layout changed, fix src/tape.rs"
        );
        save(&root, "reliable_endpoint", name, &t.0);
    }
    for (name, setup, ops) in pair_seeds() {
        let mut t = Tape::new();
        setup.write(&mut t);
        ops.iter().for_each(|op| op.write(&mut t));
        assert_eq!(
            pair::read(&t.0),
            Some((setup, ops)),
            "seed {name} reads back differently: arbitrary's layout changed, fix src/tape.rs"
        );
        save(&root, "reliable_pair", name, &t.0);
    }
    for (name, setup, ops) in raw_seeds(&datagrams) {
        let mut t = Tape::new();
        setup.write(&mut t);
        ops.iter().for_each(|op| op.write(&mut t));
        assert_eq!(
            raw::read(&t.0),
            Some((setup, ops)),
            "seed {name} reads back differently: arbitrary's layout changed, fix src/tape.rs"
        );
        save(&root, "raw_endpoint", name, &t.0);
    }
    secured_seeds(&root);
    secure_stream_seeds(&root);
}

/// Encrypted sessions: a clean one, and one under attack (replays, flips, truncation, junk).
fn secured_seeds(root: &Path) {
    use udpchat_fuzz::secured::{self, Op, Setup};
    let setup = |other_key| Setup {
        alice_seed: 1,
        bob_seed: 2,
        other_key,
    };
    let session = vec![
        Op::Send(5),
        Op::AliceToBob,
        Op::BobToAlice,
        Op::AliceToBob,
        Op::Send(40),
        Op::AliceToBob,
        Op::Advance(300),
        Op::AliceToBob,
        Op::BobToAlice,
    ];
    let mut attacked = session.clone();
    attacked.extend([
        Op::Replay(2),
        Op::Flip(2, 100),
        Op::Truncate(2, 30),
        Op::Replay(0),
        Op::Junk(Bytes(b"UC\x03\x83junk".to_vec())),
        Op::Send(3),
        Op::LoseAlice,
        Op::Send(4),
        Op::AliceToBob,
    ]);
    let seeds = [
        ("session", setup(false), session.clone()),
        ("attacked", setup(false), attacked),
        ("wrong-key", setup(true), session),
    ];
    for (name, setup, ops) in seeds {
        let mut t = Tape::new();
        setup.write(&mut t);
        ops.iter().for_each(|op| op.write(&mut t));
        assert_eq!(
            secured::read(&t.0),
            Some((setup, ops)),
            "seed {name} reads back differently: arbitrary's layout changed, fix src/tape.rs"
        );
        save(root, "secured", name, &t.0);
    }
}

/// TCP mode's encrypted stream: a clean session (a line each way, a rekey by time), one under
/// attack (a replay, a flip, a truncation, a deletion, junk), two different keys, a
/// simultaneous open, junk first, and the fuzzer's two finds (a short frame answered with a
/// larger `Reject`; a first line sealed after the rekey time refused).
fn secure_stream_seeds(root: &Path) {
    use udpchat_fuzz::secure_stream::{self, Op, Setup, Side};
    let setup = |other_key, bob_dials| Setup {
        alice_seed: 1,
        bob_seed: 2,
        other_key,
        bob_dials,
    };
    // Init, Reply, confirmation; then lines both ways, the last after REKEY_AFTER (120 s).
    let session = vec![
        Op::Send(Side::Alice, 5),
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
        Op::Deliver(Side::Bob),
        Op::Send(Side::Alice, 40),
        Op::Send(Side::Bob, 7),
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
        Op::Advance(60_000),
        Op::Advance(61_000),
        Op::Send(Side::Alice, 3),
        Op::Deliver(Side::Bob),
    ];
    // The handshake; a line from bob cut short on its way (alice fails); alice's lines, one
    // opened, one deleted, so the next one ends the stream at bob; a replay, junk and a seal
    // after that.
    let mut attacked = session[1..4].to_vec();
    attacked.extend([
        Op::Send(Side::Bob, 4),
        Op::Send(Side::Alice, 10),
        Op::Send(Side::Alice, 11),
        Op::Send(Side::Alice, 12),
        Op::Deliver(Side::Bob),
        Op::Truncate(Side::Alice, 30),
        Op::Delete(Side::Bob),
        Op::Flip(Side::Bob, 100),
        Op::Replay(Side::Bob, 1),
        Op::Junk(Side::Bob, Bytes(b"UC\x03\x83junk".to_vec())),
        Op::Send(Side::Bob, 5),
        Op::Junk(Side::Alice, Bytes(b"UC\x03\x83junk".to_vec())),
    ]);
    // Both dial: two Inits cross, the loser answers the winner's, the winner confirms; then a
    // line each way.
    let both_dial = vec![
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
        Op::Send(Side::Alice, 5),
        Op::Send(Side::Bob, 6),
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
    ];
    // Junk before alice's Init at a responder: a Reject, then it has failed; alice's deadline.
    let junk = vec![
        Op::Junk(Side::Bob, Bytes(b"GET / HTTP/1.1\r\n".to_vec())),
        Op::Deliver(Side::Bob),
        Op::Deliver(Side::Alice),
        Op::Advance(9_000),
    ];
    // The fuzzer's first find, kept as its operations: an empty frame at a responder was
    // answered with a 16-byte Reject (now nothing shorter than a Reject is answered).
    let empty = vec![
        Op::Junk(Side::Bob, Bytes(Vec::new())),
        Op::Deliver(Side::Alice),
        Op::Deliver(Side::Alice),
    ];
    // The fuzzer's second find: bob's first line, sealed REKEY_AFTER after the handshake, is the
    // first frame of epoch 1, and alice refused it (she wanted counter 0).
    let mut first_after_rekey = session[1..4].to_vec();
    first_after_rekey.extend([
        Op::Advance(65_535),
        Op::Advance(65_535),
        Op::Send(Side::Bob, 0),
        Op::Send(Side::Alice, 10),
        Op::Deliver(Side::Alice),
        Op::Deliver(Side::Bob),
    ]);
    // The third find: alice's line deleted from the stream just before her key changed by time;
    // her next line, the first of epoch 1, was opened as if nothing were missing (now each
    // sealed frame's place in the stream is authenticated).
    let mut deleted_before_rekey = session[1..4].to_vec();
    deleted_before_rekey.extend([
        Op::Send(Side::Alice, 1),
        Op::Advance(65_535),
        Op::Advance(65_535),
        Op::Send(Side::Alice, 2),
        Op::Delete(Side::Bob),
        Op::Deliver(Side::Bob),
    ]);
    let seeds = [
        ("session", setup(false, false), session.clone()),
        ("attacked", setup(false, false), attacked),
        ("wrong-key", setup(true, false), session),
        ("simultaneous-open", setup(false, true), both_dial),
        ("junk-first", setup(false, false), junk),
        ("empty-frame-answered", setup(false, false), empty),
        (
            "first-line-after-rekey-time",
            setup(false, false),
            first_after_rekey,
        ),
        (
            "deleted-before-rekey",
            setup(false, false),
            deleted_before_rekey,
        ),
    ];
    for (name, setup, ops) in seeds {
        let mut t = Tape::new();
        setup.write(&mut t);
        ops.iter().for_each(|op| op.write(&mut t));
        assert_eq!(
            secure_stream::read(&t.0),
            Some((setup, ops)),
            "seed {name} reads back differently: arbitrary's layout changed, fix src/tape.rs"
        );
        secure_stream::run(&t.0);
        save(root, "secure_stream", name, &t.0);
    }
}

fn save(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).expect("create the corpus folder");
    fs::write(dir.join(name), bytes).expect("write a seed");
}

/// One valid datagram of each kind.
fn datagrams() -> Vec<(&'static str, Vec<u8>)> {
    let ack = Ack {
        cumulative: SeqNum(3),
        ranges: vec![AckRange {
            first: SeqNum(5),
            last: SeqNum(6),
        }],
        delay_us: 1000,
        window: 64,
        delivered: SeqNum(2),
        echo: 0x0bad_cafe,
        ranges_delivered: false,
    };
    let data = Data {
        dst: ConnectionId(0x1234),
        seq: SeqNum(0),
        message: 0,
        fragment: 0,
        fragments: 1,
        token: 0xcafe_f00d,
        payload: b"hello".to_vec(),
        ack: Some(ack.clone()),
    };
    let packets = [
        (
            "raw",
            Packet::Raw(RawMessage {
                seq: 0,
                nick: "alice".into(),
                text: "hi".into(),
            }),
        ),
        (
            "hello",
            Packet::Hello(Hello {
                src: ConnectionId(0x1234),
                nick: "alice".into(),
                window: 512,
            }),
        ),
        (
            "welcome",
            Packet::Welcome(Welcome {
                src: ConnectionId(0x5678),
                dst: ConnectionId(0x1234),
                nick: "bob".into(),
                window: 512,
            }),
        ),
        ("data", Packet::Data(data.clone())),
        (
            "ack",
            Packet::Ack {
                dst: ConnectionId(0x1234),
                ack: ack.clone(),
            },
        ),
        (
            "close",
            Packet::Close {
                dst: ConnectionId(0x1234),
                ack: Some(ack),
            },
        ),
        (
            "bundle",
            Packet::Bundle(vec![
                data.clone(),
                Data {
                    seq: SeqNum(1),
                    ack: None,
                    ..data
                },
            ]),
        ),
    ];
    packets
        .into_iter()
        .map(|(name, p)| (name, encode(&p, 1200).expect("seed packets are small")))
        .collect()
}

fn data(seq: SeqPick, len: u16, ack: Option<AckPick>) -> DataPick {
    DataPick {
        dst: IdPick::Endpoint,
        seq,
        message: seq,
        fragment: 0,
        fragments: 1,
        len,
        binary: false,
        ack,
    }
}

fn ack_all() -> AckPick {
    AckPick {
        behind: 0,
        absolute: None,
        count: 0,
        ranges: [(0, 0); 4],
        window: 64,
        delay_us: 500,
        undelivered: 0,
        ranges_delivered: false,
        echo: EchoPick::True,
    }
}

fn reliable_setup(listener: bool) -> reliable::Setup {
    reliable::Setup {
        listener,
        arq: 0,
        unordered: false,
        no_congestion: false,
        redundancy: 0,
        window: 2,
        small_datagrams: false,
        ack_ranges: 3,
        seed: 7,
    }
}

type ReliableSeed = (&'static str, reliable::Setup, Vec<reliable::Op>);

fn reliable_seeds(datagrams: &[(&str, Vec<u8>)]) -> Vec<ReliableSeed> {
    use reliable::Op;
    let peer = |w: Wire| Op::Packet(Who::Peer, w);
    // Opener: our Welcome answers its Hello; it sends, we ack; we send, it acks; we leave.
    let opener = vec![
        peer(Wire::Welcome {
            src: IdPick::Fresh(0xB0B),
            dst: IdPick::Endpoint,
            window: 64,
        }),
        Op::Send(20, 0),
        Op::Advance(10),
        // A forger's ack first: everything delivered, with a guessed echo.
        peer(Wire::Ack {
            dst: IdPick::Endpoint,
            ack: AckPick {
                echo: EchoPick::Guess(1),
                ..ack_all()
            },
        }),
        peer(Wire::Ack {
            dst: IdPick::Endpoint,
            ack: ack_all(),
        }),
        peer(Wire::Data(data(SeqPick::Next, 12, Some(ack_all())))),
        peer(Wire::Data(data(SeqPick::Ahead(1), 12, None))),
        peer(Wire::Data(data(SeqPick::Behind(2), 12, None))),
        Op::Timer,
        peer(Wire::Close {
            dst: IdPick::Endpoint,
            ack: Some(ack_all()),
        }),
    ];
    // Listener: our Hello, the third-leg ack, data both ways, a bundle, a ping, a restart.
    let listener = vec![
        peer(Wire::Hello {
            src: IdPick::Fresh(0xA11CE),
            nick: 5,
            window: 64,
        }),
        peer(Wire::Ack {
            dst: IdPick::Endpoint,
            ack: ack_all(),
        }),
        peer(Wire::Data(data(SeqPick::Next, 30, None))),
        Op::Send(1000, 2),
        Op::Advance(30),
        peer(Wire::Bundle {
            first: data(SeqPick::Next, 8, Some(ack_all())),
            copies: 1,
        }),
        peer(Wire::Ping(IdPick::Endpoint)),
        Op::Timer,
        Op::Packet(Who::Stranger(1), Wire::Data(data(SeqPick::Next, 5, None))),
        peer(Wire::Hello {
            src: IdPick::Fresh(0xA11CE2),
            nick: 5,
            window: 4,
        }),
        Op::Close,
        Op::Advance(4000),
        Op::Timer,
    ];
    let junk = datagrams
        .iter()
        .map(|(_, d)| Op::Junk(Who::Peer, Bytes(d.clone())))
        .chain([Op::Send(5, 3), Op::Timer, Op::Timer])
        .collect();
    vec![
        ("opener", reliable_setup(false), opener),
        ("listener", reliable_setup(true), listener),
        ("datagrams", reliable_setup(false), junk),
    ]
}

type RawSeed = (&'static str, raw::Setup, Vec<raw::Op>);

fn raw_seeds(datagrams: &[(&str, Vec<u8>)]) -> Vec<RawSeed> {
    use raw::{Op, SeqPick};
    let line = |seq| Op::Line {
        from: Who::Peer,
        seq,
        len: 10,
        variant: 0,
    };
    // In order, a duplicate, a gap, the late one, a reused number with new text, a restart.
    let framed = vec![
        line(SeqPick::Any(0)),
        Op::Send(10),
        line(SeqPick::Next),
        line(SeqPick::Again),
        line(SeqPick::Ahead(4)),
        line(SeqPick::Behind(2)),
        Op::Line {
            from: Who::Peer,
            seq: SeqPick::Again,
            len: 10,
            variant: 1,
        },
        line(SeqPick::Any(0)),
        Op::Foreign(Who::Peer),
        Op::Junk(Who::Stranger(2), Bytes(datagrams[0].1.clone())),
        Op::Close,
        Op::Send(1),
    ];
    let plain = vec![
        Op::Junk(Who::Peer, Bytes(b"hello\r\n".to_vec())),
        Op::Send(5),
        Op::Junk(Who::Stranger(0), Bytes(b"intruder\n".to_vec())),
        Op::Junk(Who::Peer, Bytes(vec![0xff, 0xfe, b'\n'])),
    ];
    let setup = |plain, fixed_peer| raw::Setup {
        plain,
        fixed_peer,
        small_datagrams: false,
    };
    vec![
        ("framed", setup(false, false), framed),
        (
            "framed-peer",
            setup(false, true),
            vec![line(SeqPick::Any(3))],
        ),
        ("plain", setup(true, false), plain),
    ]
}

type PairSeed = (&'static str, pair::Setup, Vec<pair::Op>);

fn pair_seeds() -> Vec<PairSeed> {
    use pair::{Fault, Forged, Op, Side};
    let setup = pair::Setup {
        arq: 0,
        unordered: false,
        redundancy: 0,
        window: 2,
        small_datagrams: true,
        seed: 11,
    };
    // A session with a duplicated, a lost and a corrupted datagram, two-fragment lines, a
    // retransmission timer, and Alice leaving.
    let exchange = vec![
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Deliver(Side::Alice, 0, Fault::Duplicate),
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Send(Side::Alice, 150, 0),
        Op::Send(Side::Bob, 40, 2),
        Op::Drop(Side::Bob, 0),
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Deliver(Side::Alice, 1, Fault::Flip(200)),
        Op::Deliver(Side::Alice, 0, Fault::None),
        Op::Advance(200),
        Op::Timer,
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Deliver(Side::Alice, 0, Fault::None),
        Op::Close(Side::Alice),
    ];
    // The fuzzer's minimised input for issue 11's first defect (wire version 1): a corrupted
    // first fragment, the next line acknowledged selectively and reported delivered, then the
    // receiver closes and drops it. Kept as its operations, so it survives layout changes.
    let issue11 = (
        pair::Setup {
            arq: 0,
            unordered: false,
            redundancy: 255,
            window: 122,
            small_datagrams: true,
            seed: 70_755_772_270_641_175,
        },
        vec![
            Op::Send(Side::Alice, 53301, 94),
            Op::Advance(43433),
            Op::Deliver(Side::Bob, 248, Fault::None),
            Op::Deliver(Side::Alice, 124, Fault::Duplicate),
            Op::Send(Side::Bob, 48830, 190),
            Op::Deliver(Side::Bob, 190, Fault::Flip(0)),
            Op::Send(Side::Alice, 0, 0),
        ],
    );
    // An attacker who knows the ids: acks with guessed echoes (one claiming everything
    // delivered, one acknowledging nothing with echo 0, one with a range called delivered),
    // and forged Hellos while the real peer keeps answering.
    let forged = |behind, range, echo| Forged {
        behind,
        undelivered: 0,
        range,
        ranges_delivered: range.is_some(),
        echo,
        window: 64,
    };
    let attack = vec![
        // Alice's Hello goes out (after the first op), Bob's Welcome, the third-leg ack.
        Op::Timer,
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Deliver(Side::Alice, 0, Fault::None),
        Op::Deliver(Side::Bob, 0, Fault::None),
        // A two-fragment line and a short one; the second fragment is lost, so Bob holds the
        // short line behind a hole and acknowledges it selectively.
        Op::Send(Side::Alice, 150, 0),
        Op::Send(Side::Alice, 20, 1),
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Drop(Side::Bob, 0),
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Deliver(Side::Alice, 0, Fault::None),
        Op::ForgeAck(Side::Alice, forged(0, None, Some(1))),
        Op::ForgeAck(Side::Alice, forged(255, None, None)),
        Op::Drop(Side::Bob, 0),
        Op::ForgeAck(Side::Alice, forged(3, Some((1, 1)), Some(2))),
        Op::ForgeHello(Side::Bob, 0xBAD),
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::Deliver(Side::Alice, 0, Fault::None),
        Op::ForgeHello(Side::Alice, 0xBAD2),
        Op::Advance(100),
        Op::Timer,
        Op::Deliver(Side::Alice, 0, Fault::None),
        Op::Deliver(Side::Bob, 0, Fault::None),
        Op::ForgeHello(Side::Alice, 0xBAD3),
        Op::Advance(200),
        Op::ForgeHello(Side::Bob, 0xBAD4),
    ];
    vec![
        ("exchange", setup.clone(), exchange),
        ("issue11-delivered-not-shown", issue11.0, issue11.1),
        ("forged", setup, attack),
    ]
}
