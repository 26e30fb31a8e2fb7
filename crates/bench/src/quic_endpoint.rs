//! [`QuicEndpoint`]: `quinn-proto` (QUIC as a state machine) behind udpchat's [`Endpoint`].
//!
//! quinn-proto is sans-IO like our transport: `Endpoint::handle` takes datagrams,
//! `Connection::poll_transmit` gives them, `poll_timeout`/`handle_timeout` run the timers and
//! `poll` gives application events. The adapter keeps one quinn endpoint with at most one
//! connection. The client (side A in the harness) connects at once; the server (side B) accepts
//! the first connection. Messages travel on one bidirectional stream, each framed as a 4-byte
//! big-endian length and the UTF-8 bytes, so delivery is ordered, like udpchat's default, and a
//! lost packet holds back later messages exactly as it does in ours.
//!
//! Everything is quinn-proto's defaults ([`quinn_proto::TransportConfig::default`]: Cubic, 30 s
//! idle timeout, MTU discovery on), or the same with quinn-proto's BBR as the congestion
//! controller ([`QuicIdentity::with_controller`]), with rustls on the `ring` provider and a self-signed
//! certificate from `rcgen` that the client trusts. The endpoint's randomness comes from the
//! seed; TLS's own randomness (key shares, nonces) changes no sizes, and the certificate is
//! Ed25519 (fixed-size, deterministic signatures), so runs are reproducible.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use quinn_proto::congestion::BbrConfig;
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir,
    EndpointConfig, ServerConfig, StreamEvent, StreamId, TransportConfig, WriteError,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;
use udpchat_reliable::{Endpoint, Event, MessageId, SendError, Stats, Transmit};

/// The name in the certificate, and the one the client asks for.
const SERVER_NAME: &str = "localhost";

/// The largest message either side accepts, in bytes: a frame announcing more is refused.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Why QUIC could not be set up.
#[derive(Debug, Error)]
pub enum QuicSetupError {
    /// The certificate could not be made.
    #[error("cannot make a self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Tls(#[from] rustls::Error),
    /// The TLS configuration has no cipher suite QUIC can start with.
    #[error("TLS configuration unusable for QUIC: {0}")]
    CipherSuite(#[from] quinn_proto::crypto::rustls::NoInitialCipherSuite),
    /// quinn-proto refused to start the connection.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn_proto::ConnectError),
}

/// A server configuration and a client configuration that trusts it, made once per process.
#[derive(Clone)]
pub struct QuicIdentity {
    server: Arc<ServerConfig>,
    client: ClientConfig,
}

impl std::fmt::Debug for QuicIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicIdentity").finish_non_exhaustive()
    }
}

impl QuicIdentity {
    /// A fresh self-signed certificate for [`SERVER_NAME`], and quinn-proto's default
    /// transport configuration on both sides.
    ///
    /// The key is Ed25519 and the certificate's serial number fixed, so that every handshake
    /// has the same size in every run: an ECDSA signature's DER encoding is 70 to 72 bytes
    /// depending on the random nonce, and that byte or two moved the timing of everything
    /// after the handshake on a rate-limited link (bulk at 0% loss measured 71.2 and
    /// 73.7 Mbit/s in two runs). Ed25519 signatures are deterministic and always 64 bytes.
    pub fn generate() -> Result<QuicIdentity, QuicSetupError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
        params.serial_number = Some(rcgen::SerialNumber::from(1u64));
        let certified = params.self_signed(&key_pair)?;
        let cert = CertificateDer::from(certified.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let server = ServerConfig::with_single_cert(vec![cert.clone()], key)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert)?;
        // What `ClientConfig::with_root_certificates` builds (ring, TLS 1.3 only, the roots
        // above), except that session resumption is off: every connection of the bench is a
        // first contact, as udpchat's are, whatever connections the process made before.
        // Resumption would give later rows a shorter handshake than earlier ones, so a row's
        // figures would depend on which workloads ran before it in the same process.
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.resumption = rustls::client::Resumption::disabled();
        let client = ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
        Ok(QuicIdentity {
            server: Arc::new(server),
            client,
        })
    }
}

/// quinn-proto's congestion controller for a QUIC system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicController {
    /// quinn-proto's default, Cubic (`TransportConfig::default()`).
    Cubic,
    /// quinn-proto's BBR ([`quinn_proto::congestion::BbrConfig::default`]).
    Bbr,
}

impl QuicIdentity {
    /// The same certificate and TLS setup, with `controller` as both sides' congestion
    /// controller and every other transport setting at quinn-proto's default.
    pub fn with_controller(&self, controller: QuicController) -> QuicIdentity {
        let mut transport = TransportConfig::default();
        if controller == QuicController::Bbr {
            transport.congestion_controller_factory(Arc::new(BbrConfig::default()));
        }
        let transport = Arc::new(transport);
        let mut server = ServerConfig::clone(&self.server);
        server.transport_config(Arc::clone(&transport));
        let mut client = self.client.clone();
        client.transport_config(transport);
        QuicIdentity {
            server: Arc::new(server),
            client,
        }
    }
}

/// Which end of the connection this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// One incoming stream and the bytes of its current, incomplete frame.
#[derive(Debug)]
struct Incoming {
    id: StreamId,
    buffer: Vec<u8>,
}

/// A QUIC connection as an [`Endpoint`].
pub struct QuicEndpoint {
    role: Role,
    endpoint: quinn_proto::Endpoint,
    identity: QuicIdentity,
    conn: Option<(ConnectionHandle, Connection)>,
    peer: Option<SocketAddr>,
    /// Our stream for sending, once open.
    outgoing: Option<StreamId>,
    /// Framed bytes not yet accepted by the stream (flow control, or no stream yet).
    pending: VecDeque<u8>,
    incoming: Vec<Incoming>,
    /// Datagrams the endpoint itself produced (e.g. answers to stray packets).
    responses: VecDeque<Transmit>,
    timeout: Option<Instant>,
    events: VecDeque<Event>,
    stats: Stats,
    next_message: u64,
    closing: bool,
    ended: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for QuicEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicEndpoint")
            .field("role", &self.role)
            .field("peer", &self.peer)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn endpoint_with_seed(seed: u64, server: Option<Arc<ServerConfig>>) -> quinn_proto::Endpoint {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rng_seed = [0u8; 32];
    rng.fill_bytes(&mut rng_seed);
    let mut config = EndpointConfig::default();
    config.rng_seed(Some(rng_seed));
    // MTU discovery allowed, as quinn does on platforms that can set "don't fragment".
    quinn_proto::Endpoint::new(Arc::new(config), server, true, None)
}

impl QuicEndpoint {
    /// A client that connects to `server` at `now`.
    pub fn client(
        identity: &QuicIdentity,
        server: SocketAddr,
        seed: u64,
        now: Instant,
    ) -> Result<QuicEndpoint, QuicSetupError> {
        let mut endpoint = endpoint_with_seed(seed, None);
        let conn = endpoint.connect(now, identity.client.clone(), server, SERVER_NAME)?;
        let mut quic = QuicEndpoint::with(Role::Client, endpoint, identity);
        quic.peer = Some(server);
        quic.conn = Some(conn);
        quic.drive(now);
        Ok(quic)
    }

    /// A server that accepts the first client.
    pub fn server(identity: &QuicIdentity, seed: u64) -> QuicEndpoint {
        let endpoint = endpoint_with_seed(seed, Some(Arc::clone(&identity.server)));
        QuicEndpoint::with(Role::Server, endpoint, identity)
    }

    fn with(role: Role, endpoint: quinn_proto::Endpoint, identity: &QuicIdentity) -> QuicEndpoint {
        QuicEndpoint {
            role,
            endpoint,
            identity: identity.clone(),
            conn: None,
            peer: None,
            outgoing: None,
            pending: VecDeque::new(),
            incoming: Vec::new(),
            responses: VecDeque::new(),
            timeout: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            next_message: 0,
            closing: false,
            ended: false,
            scratch: Vec::new(),
        }
    }

    /// The connection's own statistics, once there is a connection.
    pub fn connection_stats(&self) -> Option<quinn_proto::ConnectionStats> {
        self.conn.as_ref().map(|(_, c)| c.stats())
    }

    /// Runs everything that follows a change: endpoint bookkeeping, application events, stream
    /// reads and writes, and the next timeout.
    fn drive(&mut self, now: Instant) {
        let Some((handle, conn)) = self.conn.as_mut() else {
            self.timeout = None;
            return;
        };
        let handle = *handle;
        while let Some(event) = conn.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(handle, event) {
                conn.handle_event(back);
            }
        }
        while let Some(event) = conn.poll() {
            match event {
                quinn_proto::Event::Connected => {
                    if let Some(peer) = self.peer {
                        self.events.push_back(Event::Peer {
                            addr: peer,
                            nick: None,
                        });
                    }
                }
                quinn_proto::Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    while let Some(id) = conn.streams().accept(Dir::Bi) {
                        self.incoming.push(Incoming {
                            id,
                            buffer: Vec::new(),
                        });
                        // The server answers on the stream the client opened.
                        self.outgoing.get_or_insert(id);
                    }
                }
                quinn_proto::Event::ConnectionLost { reason } => {
                    self.ended = true;
                    self.events.push_back(match reason {
                        ConnectionError::TimedOut => Event::PeerUnreachable,
                        ConnectionError::ApplicationClosed(_)
                        | ConnectionError::ConnectionClosed(_) => Event::PeerClosed,
                        _ => Event::PeerUnreachable,
                    });
                }
                _ => {}
            }
        }
        // Read whatever arrived on every stream we know (ours too: the peer may answer on it).
        for incoming in &mut self.incoming {
            read_frames(conn, incoming, &mut self.events, &mut self.stats, self.peer);
        }
        // Open our stream when the peer allows it, then write what is pending.
        if self.outgoing.is_none() && !self.pending.is_empty() {
            if let Some(id) = conn.streams().open(Dir::Bi) {
                self.outgoing = Some(id);
                self.incoming.push(Incoming {
                    id,
                    buffer: Vec::new(),
                });
            }
        }
        if let Some(id) = self.outgoing {
            while !self.pending.is_empty() {
                let (front, _) = self.pending.as_slices();
                match conn.send_stream(id).write(front) {
                    Ok(written) => {
                        self.pending.drain(..written);
                    }
                    Err(WriteError::Blocked) => break,
                    Err(_) => {
                        // The stream was stopped or the connection closed: nothing more will go.
                        self.pending.clear();
                        break;
                    }
                }
            }
        }
        if self.closing && self.pending.is_empty() && !conn.is_closed() {
            conn.close(now, 0u32.into(), bytes::Bytes::from_static(b"bye"));
        }
        if conn.is_drained() && !self.ended {
            self.ended = true;
            self.events.push_back(Event::Closed);
        }
        self.timeout = conn.poll_timeout();
    }
}

/// Reads every complete frame of `incoming` into `Message` events.
fn read_frames(
    conn: &mut Connection,
    incoming: &mut Incoming,
    events: &mut VecDeque<Event>,
    stats: &mut Stats,
    peer: Option<SocketAddr>,
) {
    let mut stream = conn.recv_stream(incoming.id);
    let Ok(mut chunks) = stream.read(true) else {
        return;
    };
    while let Ok(Some(chunk)) = chunks.next(usize::MAX) {
        incoming.buffer.extend_from_slice(&chunk.bytes);
    }
    // Finalizing returns stream credit to the peer; the transmit it may need goes out on the
    // next `poll_transmit`.
    let _ = chunks.finalize();
    take_frames(&mut incoming.buffer, events, stats, peer);
}

/// Turns every complete frame at the front of `buffer` into a `Message` event, leaving an
/// incomplete one in place. A frame announcing more than [`MAX_MESSAGE`] empties the buffer and
/// is counted as malformed: its bytes are never waited for.
fn take_frames(
    buffer: &mut Vec<u8>,
    events: &mut VecDeque<Event>,
    stats: &mut Stats,
    peer: Option<SocketAddr>,
) {
    let mut start = 0;
    loop {
        let rest = &buffer[start..];
        let Some(header) = rest.get(..4) else { break };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_MESSAGE {
            // A peer that announces more than we accept is broken: stop reading it.
            stats.dropped_malformed += 1;
            buffer.clear();
            return;
        }
        let Some(body) = rest.get(4..4 + len) else {
            break;
        };
        stats.messages_received += 1;
        events.push_back(Event::Message {
            from: peer.unwrap_or(crate::UNSPECIFIED_ADDR),
            nick: String::new(),
            seq: None,
            text: String::from_utf8_lossy(body).into_owned(),
        });
        start += 4 + len;
    }
    buffer.drain(..start);
}

impl Endpoint for QuicEndpoint {
    fn send(&mut self, now: Instant, text: &str) -> Result<MessageId, SendError> {
        if self.closing || self.ended {
            return Err(SendError::Closed);
        }
        if text.len() > MAX_MESSAGE {
            return Err(SendError::TooLong {
                len: text.len(),
                max: MAX_MESSAGE,
            });
        }
        if self.conn.is_none() {
            return Err(SendError::NoPeer);
        }
        let len = u32::try_from(text.len()).map_err(|_| SendError::TooLong {
            len: text.len(),
            max: MAX_MESSAGE,
        })?;
        self.pending.extend(len.to_be_bytes());
        self.pending.extend(text.as_bytes());
        let id = MessageId(self.next_message);
        self.next_message += 1;
        self.stats.messages_sent += 1;
        self.drive(now);
        Ok(id)
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        self.scratch.clear();
        let event = self.endpoint.handle(
            now,
            from,
            None,
            None,
            BytesMut::from(datagram),
            &mut self.scratch,
        );
        match event {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some((ours, conn)) = self.conn.as_mut() {
                    if *ours == handle {
                        conn.handle_event(event);
                    }
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                if self.role == Role::Server && self.conn.is_none() {
                    let server = Some(Arc::clone(&self.identity.server));
                    match self
                        .endpoint
                        .accept(incoming, now, &mut self.scratch, server)
                    {
                        Ok(conn) => {
                            self.peer = Some(from);
                            self.conn = Some(conn);
                        }
                        Err(error) => {
                            if let Some(t) = error.response {
                                self.responses.push_back(Transmit {
                                    destination: t.destination,
                                    payload: self.scratch[..t.size].to_vec(),
                                });
                            }
                        }
                    }
                } else {
                    self.stats.dropped_foreign += 1;
                    self.endpoint.ignore(incoming);
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.responses.push_back(Transmit {
                    destination: t.destination,
                    payload: self.scratch[..t.size].to_vec(),
                });
            }
            None => self.stats.dropped_malformed += 1,
        }
        self.drive(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let destination = match self.responses.pop_front() {
            Some(t) => {
                *buf = t.payload;
                Some(t.destination)
            }
            None => {
                let (_, conn) = self.conn.as_mut()?;
                buf.clear();
                let t = conn.poll_transmit(now, 1, buf);
                let destination = t.map(|t| {
                    buf.truncate(t.size);
                    t.destination
                });
                self.drive(now);
                destination
            }
        };
        if destination.is_some() {
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += buf.len() as u64;
        }
        destination
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timeout
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some((_, conn)) = self.conn.as_mut() {
            conn.handle_timeout(now);
        }
        self.drive(now);
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Not used by the bench's workloads: finishing is closing.
    fn finish(&mut self, now: Instant) {
        self.close(now);
    }
    fn close(&mut self, now: Instant) {
        self.closing = true;
        self.drive(now);
    }

    fn is_closed(&self) -> bool {
        match &self.conn {
            Some((_, conn)) => conn.is_drained(),
            None => self.closing,
        }
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        if let Some((_, conn)) = &self.conn {
            stats.rtt_smoothed = Some(conn.rtt());
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::net::{net, LinkSpec};
    use std::time::Duration;
    use udpchat_lab::impairment::ImpairmentConfig;
    use udpchat_lab::probability::Probability;
    use udpchat_lab::sim::{Side, ADDR_B};

    #[test]
    fn a_quic_stream_delivers_everything_intact_both_ways_over_a_lossy_link() {
        let identity = QuicIdentity::generate().unwrap();
        let epoch = Instant::now();
        let link = ImpairmentConfig {
            loss: Probability::new(0.2).unwrap(),
            delay: Duration::from_millis(30),
            jitter: Duration::from_millis(10),
            duplicate: Probability::new(0.05).unwrap(),
            ..Default::default()
        };
        let a = QuicEndpoint::client(&identity, ADDR_B, 3, epoch).unwrap();
        let b = QuicEndpoint::server(&identity, 4);
        let mut net = net(epoch, LinkSpec::symmetric(link, 11), a, b);
        let sent: Vec<String> = (0..150)
            .map(|i| format!("message {i}: {}", "q".repeat(i * 131 % 20_000)))
            .collect();
        for text in &sent {
            net.send(Side::A, text).unwrap();
        }
        let mut at_b = Vec::new();
        let mut echoed = Vec::new();
        let limit = epoch + Duration::from_secs(600);
        while echoed.len() < sent.len() && net.advance_within(None, limit) {
            for (side, event) in net.take_events() {
                match (side, event) {
                    (Side::B, Event::Message { text, .. }) => {
                        net.send(Side::B, &text).unwrap();
                        at_b.push(text);
                    }
                    (Side::A, Event::Message { text, .. }) => echoed.push(text),
                    _ => {}
                }
            }
        }
        assert_eq!(at_b, sent, "every message once, intact, in order");
        assert_eq!(echoed, sent, "and every echo back");
        assert!(net.wire(Side::A).datagrams > net.wire(Side::A).delivered);
    }

    #[test]
    fn frames_are_split_at_their_lengths_and_an_oversized_one_is_refused() {
        let mut events = VecDeque::new();
        let mut stats = Stats::default();
        let mut buffer = Vec::new();
        for text in ["one", "", "three"] {
            buffer.extend((text.len() as u32).to_be_bytes());
            buffer.extend(text.as_bytes());
        }
        buffer.extend(10u32.to_be_bytes());
        buffer.extend(b"part");
        take_frames(&mut buffer, &mut events, &mut stats, None);
        let texts: Vec<String> = events
            .drain(..)
            .map(|e| match e {
                Event::Message { text, .. } => text,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["one", "", "three"]);
        assert_eq!(buffer.len(), 8, "the incomplete frame waits");

        let mut buffer = u32::MAX.to_be_bytes().to_vec();
        take_frames(&mut buffer, &mut events, &mut stats, None);
        assert_eq!(stats.dropped_malformed, 1);
        assert!(buffer.is_empty());
        assert!(events.is_empty());
    }
}
