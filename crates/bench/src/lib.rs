//! udpchat's reliable mode side by side with KCP and QUIC, on the same simulated links.
//!
//! The anchors are both sans-IO, like our transport, so the comparison needs no sockets and no
//! real time: [`kcp_endpoint::KcpEndpoint`] and [`quic_endpoint::QuicEndpoint`] put the `kcp`
//! crate and `quinn-proto` behind udpchat's own [`udpchat_reliable::Endpoint`] surface, and
//! [`net::net`] joins any two such endpoints on the lab's simulator (the same
//! [`udpchat_lab::Impairment`] links, the same seeds for every system, one virtual clock). The workloads ([`chat`], [`bulk`],
//! [`dead_peer`], and [`loopback`] on real sockets) produce [`report::ResultRow`]s, with the
//! figures computed in [`figures`]; the binary `udpchat-bench` prints them as tables or JSON.
//!
//! This crate is separate from the `udpchat` binary on purpose: the chat program does not carry
//! QUIC, TLS and KCP just to be compared with them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub mod bulk;
pub mod chat;
pub mod dead_peer;
pub mod fairness;
pub mod figures;
pub mod kcp_endpoint;
pub mod loopback;
pub mod net;
pub mod quic_endpoint;
pub mod report;
pub mod run;
pub mod simulator;
pub mod system;
pub mod tcp_system;

/// The address events name when the peer's is not known yet.
pub const UNSPECIFIED_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
