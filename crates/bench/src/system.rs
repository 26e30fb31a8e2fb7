//! The systems compared, and how each one's pair of endpoints is built.
//!
//! Every system is built with its own documented settings: udpchat with
//! [`ReliableConfig::default`] (plus, in the chat workload, its documented chat setting
//! [`CHAT_REDUNDANCY`]), KCP in its README's fast mode and in its defaults, QUIC with
//! quinn-proto's defaults. Side A is the one that starts (the client), side B answers.

use std::fmt;
use std::time::Instant;

use serde::Serialize;
use udpchat_lab::sim::{ADDR_A, ADDR_B};
use udpchat_reliable::{Endpoint, ReliableConfig, ReliableEndpoint};

use crate::kcp_endpoint::{KcpEndpoint, KcpProfile};
use crate::quic_endpoint::{QuicEndpoint, QuicIdentity, QuicSetupError};
use crate::report::Workload;

/// One of the systems in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum System {
    /// udpchat's reliable mode, default configuration.
    #[serde(rename = "udpchat")]
    Udpchat,
    /// KCP, fast configuration.
    #[serde(rename = "kcp-fast")]
    KcpFast,
    /// KCP, default configuration.
    #[serde(rename = "kcp-default")]
    KcpDefault,
    /// QUIC (quinn-proto), default configuration.
    #[serde(rename = "quic")]
    Quic,
    /// Plain UDP datagrams, no reliability: the loopback ceiling.
    #[serde(rename = "raw-udp")]
    RawUdp,
    /// Endpoints that only exchange datagrams: the `sim` workload, which measures the lab's
    /// simulator itself ([`crate::simulator::NullEndpoint`]).
    #[serde(rename = "null-endpoints")]
    NullEndpoints,
}

impl System {
    /// The systems that run in the simulated workloads (raw UDP only runs on loopback).
    pub const SIMULATED: [System; 4] = [
        System::Udpchat,
        System::KcpFast,
        System::KcpDefault,
        System::Quic,
    ];

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Udpchat => "udpchat",
            System::KcpFast => "kcp-fast",
            System::KcpDefault => "kcp-default",
            System::Quic => "quic",
            System::RawUdp => "raw-udp",
            System::NullEndpoints => "null-endpoints",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a pair of endpoints could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// QUIC's TLS setup failed.
    #[error(transparent)]
    Quic(#[from] QuicSetupError),
    /// udpchat refused its configuration.
    #[error("udpchat configuration refused: {0}")]
    Udpchat(#[from] udpchat_reliable::transport::ConfigError),
    /// This system is not a transport of the comparison (raw UDP only runs over real sockets;
    /// null endpoints only measure the simulator).
    #[error("{0} is not one of the compared transports")]
    NotSimulated(System),
}

/// A pair of endpoints, A at [`ADDR_A`] talking to B at [`ADDR_B`].
pub type Pair = (Box<dyn Endpoint>, Box<dyn Endpoint>);

/// udpchat's documented setting for a chat on a lossy path (`--redundancy 3`: each datagram with
/// a new line also carries copies of up to three unacknowledged ones; `docs/protocol.md`,
/// "Redundancy"). Only the chat workload uses it: it changes nothing for a sender with a backlog.
pub const CHAT_REDUNDANCY: u8 = 3;

/// udpchat's configuration for `workload`.
pub fn udpchat_config(workload: Workload) -> ReliableConfig {
    match workload {
        Workload::Chat => ReliableConfig {
            redundancy: CHAT_REDUNDANCY,
            ..ReliableConfig::default()
        },
        Workload::Bulk | Workload::DeadPeer | Workload::Loopback | Workload::Sim => {
            ReliableConfig::default()
        }
    }
}

/// Builds `system`'s two endpoints for `workload`, for a run whose virtual time starts at
/// `epoch`, with their randomness from `seed`.
pub fn build_pair(
    system: System,
    workload: Workload,
    epoch: Instant,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<Pair, BuildError> {
    Ok(match system {
        System::Udpchat => {
            let config = udpchat_config(workload);
            let a = ReliableEndpoint::new(config.clone(), Some(ADDR_B), seed)?;
            let b = ReliableEndpoint::new(config, None, seed ^ 0x5eed)?;
            (Box::new(a), Box::new(b))
        }
        System::KcpFast | System::KcpDefault => {
            let profile = if system == System::KcpFast {
                KcpProfile::Fast
            } else {
                KcpProfile::Default
            };
            (
                Box::new(KcpEndpoint::new(profile, ADDR_B, epoch)),
                Box::new(KcpEndpoint::new(profile, ADDR_A, epoch)),
            )
        }
        System::Quic => (
            Box::new(QuicEndpoint::client(quic, ADDR_B, seed, epoch)?),
            Box::new(QuicEndpoint::server(quic, seed ^ 0x5eed)),
        ),
        System::RawUdp | System::NullEndpoints => return Err(BuildError::NotSimulated(system)),
    })
}
