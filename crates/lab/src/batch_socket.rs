//! Batched UDP I/O: many datagrams per system call, for the chat's driver and the proxy alike.
//!
//! One `send_to` or `recv_from` per datagram is what made udpchat slower than a bare UDP loop on
//! loopback: the system call, not the transport, was the cost. [`BatchSocket`] wraps a tokio
//! socket with [`quinn_udp`]'s state (which does the `unsafe` work of `sendmsg`/`recvmmsg` and
//! their control messages, so we write none) and offers two batches:
//!
//! - [`SendBatch`] gathers datagrams to **one destination of one size** (the last may be
//!   shorter) into one buffer, which [`BatchSocket::send`] hands to the kernel in one `sendmsg`
//!   with generic segmentation offload (GSO, `UDP_SEGMENT`): the kernel (or the NIC) cuts it
//!   into the datagrams. That is exactly GSO's rule, so a datagram that breaks it (another
//!   destination, a larger one, one after a short one) is refused by [`SendBatch::push`] and
//!   starts the next batch: the order of datagrams on the wire is never changed.
//! - [`RecvBatch`] holds [`quinn_udp::BATCH_SIZE`] receive buffers for one `recvmmsg`, each large
//!   enough for a generic-receive-offload (GRO) train of datagrams from one sender;
//!   [`RecvBatch::datagrams`] walks them one datagram at a time.
//!
//! **Fallbacks.** Where the system has no GSO (not Linux, an old kernel, a driver that refuses
//! it), quinn-udp reports one segment ([`BatchSocket::max_segments`]) and every batch holds one
//! datagram, sent with a plain send as before. If a GSO send fails in a way that says "no GSO
//! here" (`EIO`, `EINVAL`), quinn-udp drops its segment limit to 1 for good, and
//! [`BatchSocket::send`] sends that batch again one datagram at a time, so the switch loses
//! nothing. Without GRO each buffer holds one datagram; without `recvmmsg` one buffer is filled
//! per call.
//!
//! quinn-udp also forbids IP fragmentation on the socket (it sets "don't fragment", as QUIC
//! wants): a datagram larger than the path's MTU is refused by the sender's kernel (reported as
//! a send error) instead of being cut into IP fragments on the way.

use std::borrow::Borrow;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most bytes in one GSO batch. The kernel cuts a batch into datagrams but sends the whole of it
/// through the stack as one UDP packet first, whose length must fit a 16-bit field (65,507
/// bytes of payload over IPv4); a round figure below that.
pub const MAX_BATCH_BYTES: usize = 64_000;

/// Most datagrams in one GSO batch, even where the system allows more: the kernel's
/// `UDP_MAX_SEGMENTS` is 64 on older kernels (128 on newer), and 64 small datagrams already
/// make the system call's cost negligible per datagram.
pub const MAX_BATCH_SEGMENTS: usize = 64;

/// Size of each receive buffer: any UDP payload, and any GRO train (the kernel coalesces at most
/// 64 KiB into one).
const RECV_SLOT: usize = 65_536;

/// A tokio UDP socket that sends and receives in batches. `S` is the socket itself or a
/// reference to it, so a caller that only lends its socket (the chat's driver) and one that owns
/// its sockets (the proxy) use the same type.
#[derive(Debug)]
pub struct BatchSocket<S: Borrow<UdpSocket> = UdpSocket> {
    socket: S,
    state: UdpSocketState,
    /// The peer a connected socket is bound to: single datagrams then go with `send`, which a
    /// connected socket requires on some systems (macOS and the BSDs refuse an address).
    connected: Option<SocketAddr>,
    /// System calls that sent (successful or not), for [`BatchSocket::send_calls`].
    send_calls: AtomicU64,
}

impl<S: Borrow<UdpSocket>> BatchSocket<S> {
    /// Takes `socket` for batched I/O. quinn-udp sets its options (GRO on, no fragmentation,
    /// packet info) once here; it fails only if the system refuses one it needs.
    pub fn new(socket: S) -> io::Result<Self> {
        let state = UdpSocketState::new(socket.borrow().into())?;
        Ok(BatchSocket {
            socket,
            state,
            connected: None,
            send_calls: AtomicU64::new(0),
        })
    }

    /// The same for a socket already connected to `peer` (see [`UdpSocket::connect`]).
    pub fn connected(socket: S, peer: SocketAddr) -> io::Result<Self> {
        let mut this = Self::new(socket)?;
        this.connected = Some(peer);
        Ok(this)
    }

    /// The socket underneath (for its address, or a one-off plain send).
    pub fn socket(&self) -> &UdpSocket {
        self.socket.borrow()
    }

    /// Most datagrams one [`SendBatch`] may hold on this socket: 1 where the system has no GSO,
    /// or after a send showed that it does not work here.
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments().clamp(1, MAX_BATCH_SEGMENTS)
    }

    /// Asks the system for socket buffers of `bytes` each way (it may grant less: Linux caps
    /// them at `net.core.rmem_max` / `wmem_max`), and returns what the receive buffer now is.
    /// A batched sender fills a peer's receive buffer in bursts; the default (about 200 kB on
    /// Linux) overflows under a full window of datagrams, and every overflow is a loss the
    /// transport must repair.
    pub fn set_buffer_sizes(&self, bytes: usize) -> io::Result<usize> {
        let sock = self.socket();
        self.state.set_recv_buffer_size(sock.into(), bytes)?;
        self.state.set_send_buffer_size(sock.into(), bytes)?;
        self.state.recv_buffer_size(sock.into())
    }

    /// How many send system calls this socket has made: with GSO, fewer than the datagrams it
    /// sent. (A call that found the socket's buffer full and waited counts once per try.)
    pub fn send_calls(&self) -> u64 {
        self.send_calls.load(Ordering::Relaxed)
    }

    /// An empty send batch sized for this socket.
    pub fn send_batch(&self) -> SendBatch {
        SendBatch::new(self.max_segments())
    }

    /// An empty receive batch sized for this socket.
    pub fn recv_batch(&self) -> RecvBatch {
        RecvBatch::new()
    }

    /// Sends every datagram of `batch` (waiting while the socket's buffer is full) and empties
    /// it; returns the first error, if any. On an error that turned GSO off, the batch's
    /// datagrams are sent again one by one.
    pub async fn send(&self, batch: &mut SendBatch) -> io::Result<()> {
        let result = self.send_all(batch).await;
        batch.clear();
        result
    }

    async fn send_all(&self, batch: &SendBatch) -> io::Result<()> {
        let Some(destination) = batch.destination else {
            return Ok(());
        };
        if batch.count == 1 {
            return self.send_one(&batch.buf, destination).await;
        }
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: &batch.buf,
            segment_size: Some(batch.segment),
            src_ip: None,
        };
        let sock = self.socket();
        let sent = sock
            .async_io(Interest::WRITABLE, || {
                self.send_calls.fetch_add(1, Ordering::Relaxed);
                self.state.try_send(sock.into(), &transmit)
            })
            .await;
        match sent {
            // quinn-udp has noted that GSO does not work here: nothing of the batch went out.
            Err(_) if self.max_segments() == 1 => {
                let mut first_error = None;
                for datagram in batch.buf.chunks(batch.segment) {
                    if let Err(e) = self.send_one(datagram, destination).await {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            other => other,
        }
    }

    async fn send_one(&self, datagram: &[u8], destination: SocketAddr) -> io::Result<()> {
        self.send_calls.fetch_add(1, Ordering::Relaxed);
        let sent = match self.connected {
            Some(peer) if peer == destination => self.socket().send(datagram).await,
            _ => self.socket().send_to(datagram, destination).await,
        };
        sent.map(|_| ())
    }

    /// Waits for datagrams and fills `batch` with as many as one call returns.
    pub async fn recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        let sock = self.socket();
        batch.filled = 0;
        let RecvBatch { buf, meta, .. } = batch;
        let received = sock
            .async_io(Interest::READABLE, || {
                let mut slots = slots(buf);
                self.state.recv(sock.into(), &mut slots, meta)
            })
            .await?;
        batch.filled = received;
        Ok(())
    }

    /// [`BatchSocket::recv`] as a poll, for a task that waits on many sockets at once (the
    /// proxy's upstream sockets). Registers the task's waker when nothing is ready.
    pub fn poll_recv(&self, cx: &mut Context<'_>, batch: &mut RecvBatch) -> Poll<io::Result<()>> {
        let sock = self.socket();
        batch.filled = 0;
        loop {
            match sock.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let RecvBatch { buf, meta, .. } = &mut *batch;
            let received = sock.try_io(Interest::READABLE, || {
                let mut slots = slots(buf);
                self.state.recv(sock.into(), &mut slots, meta)
            });
            match received {
                Ok(n) => {
                    batch.filled = n;
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: `try_io` cleared it, so the next poll registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The receive buffers as the slices `recvmmsg` fills, one per slot.
fn slots(buf: &mut [u8]) -> Vec<IoSliceMut<'_>> {
    buf.chunks_mut(RECV_SLOT).map(IoSliceMut::new).collect()
}

/// Datagrams to one destination, all of one size but the last, in the order they were pushed:
/// what one GSO `sendmsg` carries.
#[derive(Debug, Clone)]
pub struct SendBatch {
    buf: Vec<u8>,
    destination: Option<SocketAddr>,
    /// The size of the first datagram: every other must be the same, but the last may be shorter.
    segment: usize,
    count: usize,
    /// A datagram shorter than `segment` was pushed: it has to be the last.
    closed: bool,
    max_segments: usize,
}

impl SendBatch {
    /// An empty batch of at most `max_segments` datagrams (1 = no GSO: one datagram per send).
    pub fn new(max_segments: usize) -> SendBatch {
        SendBatch {
            buf: Vec::with_capacity(MAX_BATCH_BYTES),
            destination: None,
            segment: 0,
            count: 0,
            closed: false,
            max_segments: max_segments.clamp(1, MAX_BATCH_SEGMENTS),
        }
    }

    /// Adds `datagram` for `to` if GSO's rules allow it in this batch, and says whether it did.
    /// A refused datagram belongs in the next batch: send this one, then push it again.
    pub fn push(&mut self, to: SocketAddr, datagram: &[u8]) -> bool {
        if self.count == 0 {
            self.destination = Some(to);
            self.segment = datagram.len();
        } else {
            let fits = self.destination == Some(to)
                && !self.closed
                && datagram.len() <= self.segment
                && !datagram.is_empty()
                && self.count < self.max_segments
                && self.buf.len() + datagram.len() <= MAX_BATCH_BYTES;
            if !fits {
                return false;
            }
            self.closed = datagram.len() < self.segment;
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
        true
    }

    /// Sets the most datagrams it may hold from now on (a socket's [`BatchSocket::max_segments`]);
    /// meant for an empty batch reused across sockets.
    pub fn set_max_segments(&mut self, max_segments: usize) {
        self.max_segments = max_segments.clamp(1, MAX_BATCH_SEGMENTS);
    }

    /// True if the batch is full: no datagram can join it.
    pub fn is_full(&self) -> bool {
        self.count >= self.max_segments
            || self.closed
            || self.buf.len() + self.segment > MAX_BATCH_BYTES
    }

    /// How many datagrams it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Its datagrams, one by one (for tests and traces).
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.buf.chunks(self.segment.max(1))
    }

    /// Where it goes, if it holds anything.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.destination
    }

    /// Empties it (keeping its buffer).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.destination = None;
        self.segment = 0;
        self.count = 0;
        self.closed = false;
    }
}

/// Receive buffers for one `recvmmsg`, and what the last call put in them.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Vec<u8>,
    meta: Vec<RecvMeta>,
    filled: usize,
}

impl RecvBatch {
    /// [`quinn_udp::BATCH_SIZE`] slots of 64 KiB where `recvmmsg` exists, one elsewhere (2 MiB
    /// on Linux, allocated once per socket loop).
    pub fn new() -> RecvBatch {
        let slots = quinn_udp::BATCH_SIZE.max(1);
        RecvBatch {
            buf: vec![0; slots * RECV_SLOT],
            meta: vec![RecvMeta::default(); slots],
            filled: 0,
        }
    }

    /// Every datagram of the last receive, in the order they arrived, with its sender: a GRO
    /// train is cut at its stride.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta[..self.filled]
            .iter()
            .zip(self.buf.chunks(RECV_SLOT))
            .flat_map(|(meta, slot)| {
                let bytes = slot.get(..meta.len).unwrap_or(slot);
                // A stride of 0 would be a kernel bug: take the buffer as one datagram then. An
                // empty datagram is still one datagram (`chunks` would yield none).
                let stride = match meta.stride {
                    0 => bytes.len(),
                    stride => stride,
                }
                .max(1);
                let count = bytes.len().div_ceil(stride).max(1);
                (0..count).map(move |i| {
                    let end = ((i + 1) * stride).min(bytes.len());
                    (meta.addr, bytes.get(i * stride..end).unwrap_or_default())
                })
            })
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(port: u16) -> SocketAddr {
        (Ipv4Addr::LOCALHOST, port).into()
    }

    #[test]
    fn a_batch_takes_equal_datagrams_to_one_destination_and_a_shorter_last() {
        let mut batch = SendBatch::new(8);
        assert!(batch.push(addr(1), &[1; 100]));
        assert!(batch.push(addr(1), &[2; 100]));
        // Another destination, or a larger datagram, starts the next batch.
        assert!(!batch.push(addr(2), &[3; 100]));
        assert!(!batch.push(addr(1), &[3; 101]));
        // A shorter one may join, but only as the last.
        assert!(batch.push(addr(1), &[4; 40]));
        assert!(batch.is_full());
        assert!(!batch.push(addr(1), &[5; 40]));
        assert_eq!(batch.len(), 3);
        let sizes: Vec<_> = batch.datagrams().map(<[u8]>::len).collect();
        assert_eq!(sizes, [100, 100, 40]);
        batch.clear();
        assert!(batch.is_empty() && batch.push(addr(2), &[3; 100]));
        assert_eq!(batch.destination(), Some(addr(2)));
    }

    #[test]
    fn a_batch_stops_at_its_segment_limit_and_its_byte_limit() {
        let mut one = SendBatch::new(1);
        assert!(one.push(addr(1), &[0; 10]) && one.is_full());
        assert!(!one.push(addr(1), &[0; 10]));

        let mut big = SendBatch::new(MAX_BATCH_SEGMENTS);
        let datagram = [0u8; 1200];
        let mut taken = 0;
        while big.push(addr(1), &datagram) {
            taken += 1;
        }
        assert_eq!(taken, MAX_BATCH_BYTES / 1200);
        assert!(big.is_full());
    }

    /// A batch crosses real loopback sockets: every datagram arrives whole, in order, whether
    /// the system cut it with GSO or sent it one by one, and whether the receiver got one GRO
    /// train or separate datagrams.
    #[tokio::test]
    async fn a_batch_arrives_as_its_datagrams_in_order() {
        let bind = || async {
            let socket = UdpSocket::bind(addr(0)).await.unwrap();
            BatchSocket::new(socket).unwrap()
        };
        let (a, b) = (bind().await, bind().await);
        let to = b.socket().local_addr().unwrap();
        let mut batch = a.send_batch();
        let sent: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 300]).chain([vec![9; 7]]).collect();
        let mut pushed = 0;
        for datagram in &sent {
            if !batch.push(to, datagram) {
                a.send(&mut batch).await.unwrap();
                assert!(batch.push(to, datagram));
            }
            pushed += 1;
        }
        assert_eq!(pushed, sent.len());
        a.send(&mut batch).await.unwrap();
        assert!(batch.is_empty());

        let mut got = Vec::new();
        let mut received = b.recv_batch();
        while got.len() < sent.len() {
            b.recv(&mut received).await.unwrap();
            for (from, datagram) in received.datagrams() {
                assert_eq!(from, a.socket().local_addr().unwrap());
                got.push(datagram.to_vec());
            }
        }
        assert_eq!(got, sent);
    }

    /// Where the system has GSO (Linux), a full batch of equal datagrams is one system call;
    /// elsewhere one per datagram. Either way all of them arrive.
    #[tokio::test]
    async fn a_batch_is_one_send_call_where_the_system_has_gso() {
        let a = BatchSocket::new(UdpSocket::bind(addr(0)).await.unwrap()).unwrap();
        let b = BatchSocket::new(UdpSocket::bind(addr(0)).await.unwrap()).unwrap();
        let to = b.socket().local_addr().unwrap();
        let mut batch = a.send_batch();
        let count = a.max_segments().min(10);
        for _ in 0..count {
            assert!(batch.push(to, &[7; 100]));
        }
        a.send(&mut batch).await.unwrap();
        let calls = if a.max_segments() > 1 { 1 } else { count };
        assert_eq!(a.send_calls(), calls as u64);
        let mut got = 0;
        let mut received = b.recv_batch();
        while got < count {
            b.recv(&mut received).await.unwrap();
            got += received.datagrams().count();
        }
        assert_eq!(got, count);
    }

    /// A receiver that does not ask for GRO (any other UDP program) gets the datagrams one by
    /// one: GSO is invisible on the wire.
    #[tokio::test]
    async fn a_plain_socket_gets_a_batch_as_separate_datagrams() {
        let a = BatchSocket::new(UdpSocket::bind(addr(0)).await.unwrap()).unwrap();
        let plain = UdpSocket::bind(addr(0)).await.unwrap();
        let to = plain.local_addr().unwrap();
        let mut batch = a.send_batch();
        for i in 0..3u8 {
            assert!(batch.push(to, &[i; 50]));
        }
        a.send(&mut batch).await.unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..3u8 {
            let (len, _) = plain.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..len], &[i; 50]);
        }
    }

    #[test]
    fn an_empty_datagram_is_still_a_datagram() {
        let mut received = RecvBatch::new();
        received.meta[0] = RecvMeta {
            addr: addr(7),
            len: 0,
            stride: 0,
            ..RecvMeta::default()
        };
        received.filled = 1;
        let got: Vec<_> = received.datagrams().collect();
        assert_eq!(got, vec![(addr(7), &[][..])]);
    }
}
