//! What the kernel knows about our TCP connection: Linux's `tcp_info`, read without `unsafe`.
//!
//! TCP tells the application nothing per message: a `write` returns once the kernel has the
//! bytes. The kernel does keep figures (smoothed RTT, its variation, congestion window,
//! retransmissions, bytes not yet acknowledged), the ones `ss -ti` prints. The usual way to read
//! them is `getsockopt(TCP_INFO)` into a C struct, which needs `unsafe`, and we found no crate
//! at our MSRV that offers it safely: rustix 1.1 (`net::sockopt`) and socket2 0.6 have no
//! `TCP_INFO` getter, nor has nix's `sockopt` list; `tcp-info-sys` builds its struct with
//! bindgen (libclang) at build time, Linux only. So we ask the way `ss` does:
//! one `SOCK_DIAG_BY_FAMILY` request on a netlink socket (opened with socket2) for exactly our
//! connection's addresses and ports, and read `tcp_info` out of the answer's `INET_DIAG_INFO`
//! attribute by byte offset, every read bounds-checked. The request and the answer are plain
//! bytes, built and parsed here ([`request`], [`parse_answer`]); the layouts are Linux's stable
//! uAPI (`linux/sock_diag.h`, `linux/inet_diag.h`, `linux/tcp.h`).
//!
//! Elsewhere than Linux, [`tcp_info`] says [`KernelInfoError::Unsupported`], and the chat says
//! "not available on this platform" instead of figures.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

/// The kernel's figures for one TCP connection, as `TCP_INFO` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TcpInfo {
    /// Smoothed round-trip time (`tcpi_rtt`).
    #[serde(serialize_with = "ms")]
    pub rtt: Duration,
    /// Its mean deviation (`tcpi_rttvar`).
    #[serde(serialize_with = "ms")]
    pub rttvar: Duration,
    /// The current retransmission timeout (`tcpi_rto`).
    #[serde(serialize_with = "ms")]
    pub rto: Duration,
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub retransmits: u32,
    /// Congestion window, in segments (`tcpi_snd_cwnd`).
    pub cwnd: u32,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Bytes in the socket's write queue: written by us, not yet acknowledged, sent or not
    /// (`ss`'s Send-Q; a FIN not yet acknowledged counts one).
    pub send_queue: u32,
    /// Bytes the peer has acknowledged over the connection's life (`tcpi_bytes_acked`; its FIN
    /// acknowledged counts one).
    pub bytes_acked: u64,
}

fn ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_micros() as f64 / 1000.0)
}

/// Why the kernel's figures could not be read.
#[derive(Debug, Error)]
pub enum KernelInfoError {
    /// This platform has no `TCP_INFO` we can read.
    #[error("not available on this platform")]
    Unsupported,
    /// The netlink request failed.
    #[error("the kernel would not say: {0}")]
    Io(#[from] io::Error),
    /// The kernel no longer has the connection: it is closed, and everything sent on it was
    /// acknowledged, the FINs too (else it would still be there, closing).
    #[error("the connection is closed")]
    Gone,
    /// The kernel answered something we could not read.
    #[error("unreadable answer from the kernel: {0}")]
    Malformed(&'static str),
}

/// The kernel's figures for the connection from `local` to `peer` (a socket of this process).
#[cfg(target_os = "linux")]
pub fn tcp_info(local: SocketAddr, peer: SocketAddr) -> Result<TcpInfo, KernelInfoError> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::io::{Read, Write};

    let mut socket = Socket::new(
        Domain::from(AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(NETLINK_SOCK_DIAG)),
    )?;
    // The kernel answers at once; the timeout only guards against a kernel that never does.
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    // An unconnected netlink socket sends to the kernel (port id 0).
    socket.write_all(&request(local, peer))?;
    let mut answer = vec![0u8; 8192];
    let len = socket.read(&mut answer)?;
    parse_answer(&answer[..len])
}

/// Elsewhere: not available.
#[cfg(not(target_os = "linux"))]
pub fn tcp_info(_local: SocketAddr, _peer: SocketAddr) -> Result<TcpInfo, KernelInfoError> {
    Err(KernelInfoError::Unsupported)
}

// Linux uAPI numbers.
#[cfg(target_os = "linux")]
const AF_NETLINK: i32 = 16;
#[cfg(target_os = "linux")]
const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const INET_DIAG_INFO: u16 = 2;
const NLMSG_HEADER: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retrans, the 48-byte socket id, then expires,
/// rqueue, wqueue, uid and inode.
const INET_DIAG_MSG: usize = 72;
const WQUEUE_AT: usize = 60;
/// `idiag_state` of a listening socket: what the kernel's lookup falls back to once the
/// connection itself is gone.
const TCP_LISTEN: u8 = 10;

/// A `SOCK_DIAG_BY_FAMILY` request for the one TCP socket `local` → `peer`, asking for
/// `INET_DIAG_INFO`: `nlmsghdr` (native byte order) then `inet_diag_req_v2`, whose ports and
/// addresses are in network byte order.
pub fn request(local: SocketAddr, peer: SocketAddr) -> Vec<u8> {
    let total = NLMSG_HEADER + 56;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
    out.extend_from_slice(&[family, IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1), 0]);
    out.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    out.extend_from_slice(&local.port().to_be_bytes());
    out.extend_from_slice(&peer.port().to_be_bytes());
    out.extend_from_slice(&address(local));
    out.extend_from_slice(&address(peer));
    out.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    out.extend_from_slice(&[0xff; 8]); // no cookie
    out
}

/// An address as `inet_diag_sockid` holds it: 16 bytes, IPv4 in the first four.
fn address(addr: SocketAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match addr {
        SocketAddr::V4(a) => out[..4].copy_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.copy_from_slice(&a.ip().octets()),
    }
    out
}

/// Reads the kernel's answer to [`request`].
pub fn parse_answer(answer: &[u8]) -> Result<TcpInfo, KernelInfoError> {
    let u16_at = |bytes: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |bytes: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let short = KernelInfoError::Malformed("too short");
    let len = u32_at(answer, 0).ok_or(KernelInfoError::Malformed("no header"))? as usize;
    let message = answer
        .get(..len)
        .ok_or(KernelInfoError::Malformed("cut off"))?;
    match u16_at(message, 4) {
        Some(NLMSG_ERROR) => {
            let errno = u32_at(message, NLMSG_HEADER).ok_or(short)? as i32;
            // ENOENT: no such socket any more.
            if errno == -2 {
                return Err(KernelInfoError::Gone);
            }
            return Err(io::Error::from_raw_os_error(-errno).into());
        }
        Some(SOCK_DIAG_BY_FAMILY) => {}
        _ => return Err(KernelInfoError::Malformed("unexpected message type")),
    }
    if message.get(NLMSG_HEADER + 1) == Some(&TCP_LISTEN) {
        return Err(KernelInfoError::Gone);
    }
    let send_queue = u32_at(message, NLMSG_HEADER + WQUEUE_AT).ok_or(short)?;
    let mut at = NLMSG_HEADER + INET_DIAG_MSG;
    // The attributes: each a 4-byte header (length, type) and its payload, 4-byte aligned.
    while let (Some(rta_len), Some(rta_type)) = (u16_at(message, at), u16_at(message, at + 2)) {
        let rta_len = usize::from(rta_len);
        if rta_len < 4 {
            break;
        }
        let payload = message
            .get(at + 4..at + rta_len)
            .ok_or(KernelInfoError::Malformed("attribute cut off"))?;
        if rta_type == INET_DIAG_INFO {
            return tcp_info_struct(payload, send_queue);
        }
        at += (rta_len + 3) & !3;
    }
    // A socket with no tcp_info is one the kernel keeps only to close it (TIME_WAIT).
    Err(KernelInfoError::Gone)
}

/// The fields we show, from `struct tcp_info` (offsets of linux/tcp.h: append-only since 2.6;
/// `tcpi_bytes_acked` came with Linux 4.1).
fn tcp_info_struct(info: &[u8], send_queue: u32) -> Result<TcpInfo, KernelInfoError> {
    let field = |at: usize| -> Result<u32, KernelInfoError> {
        info.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            .ok_or(KernelInfoError::Malformed("tcp_info too short"))
    };
    let micros = |at| field(at).map(|us| Duration::from_micros(u64::from(us)));
    Ok(TcpInfo {
        rto: micros(8)?,
        unacked: field(24)?,
        rtt: micros(68)?,
        rttvar: micros(72)?,
        cwnd: field(80)?,
        retransmits: field(100)?,
        send_queue,
        bytes_acked: info
            .get(120..128)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_ne_bytes)
            .ok_or(KernelInfoError::Malformed("tcp_info too short"))?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_connection_in_network_byte_order() {
        let local: SocketAddr = "127.0.0.1:2323".parse().unwrap();
        let peer: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let req = request(local, peer);
        assert_eq!(req.len(), 72);
        assert_eq!(u32::from_ne_bytes(req[..4].try_into().unwrap()), 72);
        assert_eq!(&req[16..20], &[AF_INET, IPPROTO_TCP, 2, 0]);
        assert_eq!(&req[24..26], &2323u16.to_be_bytes());
        assert_eq!(&req[26..28], &40000u16.to_be_bytes());
        assert_eq!(&req[28..32], &[127, 0, 0, 1]);
        assert_eq!(&req[44..48], &[10, 0, 0, 2]);
    }

    /// An answer as the kernel builds it: header, inet_diag_msg, one attribute before ours.
    fn answer(info: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8; NLMSG_HEADER + INET_DIAG_MSG];
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg[NLMSG_HEADER + WQUEUE_AT..][..4].copy_from_slice(&1234u32.to_ne_bytes());
        // INET_DIAG_SHUTDOWN (8): one byte, padded to four.
        msg.extend_from_slice(&5u16.to_ne_bytes());
        msg.extend_from_slice(&8u16.to_ne_bytes());
        msg.extend_from_slice(&[0, 0, 0, 0]);
        msg.extend_from_slice(&((info.len() + 4) as u16).to_ne_bytes());
        msg.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        msg.extend_from_slice(info);
        let len = msg.len() as u32;
        msg[..4].copy_from_slice(&len.to_ne_bytes());
        msg
    }

    #[test]
    fn the_answer_is_read_by_offset() {
        let mut info = vec![0u8; 232];
        let mut put = |at: usize, v: u32| info[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put(8, 204_000);
        put(24, 3);
        put(68, 1_500);
        put(72, 750);
        put(80, 10);
        put(100, 7);
        info[120..128].copy_from_slice(&99u64.to_ne_bytes());
        let got = parse_answer(&answer(&info)).unwrap();
        assert_eq!(
            got,
            TcpInfo {
                rtt: Duration::from_micros(1_500),
                rttvar: Duration::from_micros(750),
                rto: Duration::from_millis(204),
                retransmits: 7,
                cwnd: 10,
                unacked: 3,
                send_queue: 1234,
                bytes_acked: 99,
            }
        );
    }

    #[test]
    fn short_or_wrong_answers_are_errors_not_panics() {
        assert!(parse_answer(&[]).is_err());
        let mut listener = answer(&[0u8; 232]);
        listener[NLMSG_HEADER + 1] = TCP_LISTEN;
        assert!(matches!(
            parse_answer(&listener),
            Err(KernelInfoError::Gone)
        ));
        assert!(parse_answer(&answer(&[0u8; 50])).is_err());
        let mut cut = answer(&[0u8; 232]);
        cut.truncate(100);
        assert!(parse_answer(&cut).is_err());
        // An error message: ENOENT (2) is a closed connection, others are I/O errors.
        let error = |errno: i32| {
            let mut err = vec![0u8; 36];
            err[..4].copy_from_slice(&36u32.to_ne_bytes());
            err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            err[16..20].copy_from_slice(&(-errno).to_ne_bytes());
            parse_answer(&err)
        };
        assert!(matches!(error(2), Err(KernelInfoError::Gone)));
        match error(13) {
            Err(KernelInfoError::Io(e)) => assert_eq!(e.raw_os_error(), Some(13)),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_real_loopback_connection_has_figures() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let info = tcp_info(client.local_addr().unwrap(), client.peer_addr().unwrap()).unwrap();
        assert!(info.cwnd > 0, "{info:?}");
        assert_eq!(info.send_queue, 0);
        drop((client, _server));
    }
}
