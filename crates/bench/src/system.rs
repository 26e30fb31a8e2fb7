//! The systems compared, and how each one's pair of endpoints is built.
//!
//! Every system is built with its own documented settings. The row named plainly `udpchat` is
//! what a user gets: exactly the configuration `udpchat chat --mode reliable` builds with no
//! flags ([`udpchat_cli_defaults`]), the same in every workload. A tuned udpchat is a separate,
//! plainly named system (`udpchat-redundancy3`, chat only). KCP runs in its README's fast mode
//! and in its defaults, QUIC with quinn-proto's defaults (Cubic) and with quinn-proto's BBR.
//! Side A is the one that starts (the client), side B answers.

use std::fmt;
use std::time::Instant;

use serde::Serialize;
use udpchat_lab::sim::{ADDR_A, ADDR_B};
use udpchat_reliable::{CongestionControl, Endpoint, Redundancy, ReliableConfig, ReliableEndpoint};

use crate::kcp_endpoint::{KcpEndpoint, KcpProfile};
use crate::quic_endpoint::{QuicController, QuicEndpoint, QuicIdentity, QuicSetupError};
use crate::report::Workload;
use crate::tcp_system::tcp_pair;
use udpchat_lab::tcp::TcpCongestion;

/// One of the systems in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum System {
    /// udpchat's reliable mode, exactly as `udpchat chat --mode reliable` builds it with no
    /// flags ([`udpchat_cli_defaults`]).
    #[serde(rename = "udpchat")]
    Udpchat,
    /// udpchat with `--redundancy 3` ([`CHAT_REDUNDANCY`]), a tuned setting for a chat on a
    /// lossy path; only in the chat workload.
    #[serde(rename = "udpchat-redundancy3")]
    UdpchatRedundancy3,
    /// udpchat with `--cc newreno`: one controller of the comparison (chat and bulk only).
    #[serde(rename = "udpchat-newreno")]
    UdpchatNewreno,
    /// udpchat with `--cc cubic`.
    #[serde(rename = "udpchat-cubic")]
    UdpchatCubic,
    /// udpchat with `--cc bbr`.
    #[serde(rename = "udpchat-bbr")]
    UdpchatBbr,
    /// KCP, fast configuration.
    #[serde(rename = "kcp-fast")]
    KcpFast,
    /// KCP, default configuration.
    #[serde(rename = "kcp-default")]
    KcpDefault,
    /// QUIC (quinn-proto), default configuration (Cubic).
    #[serde(rename = "quic")]
    Quic,
    /// QUIC (quinn-proto), defaults but for the congestion controller: quinn-proto's BBR
    /// ([`quinn_proto::congestion::BbrConfig`]).
    #[serde(rename = "quic-bbr")]
    QuicBbr,
    /// TCP (smoltcp 0.12, CUBIC, Nagle off): [`crate::tcp_system`].
    #[serde(rename = "tcp")]
    Tcp,
    /// TCP (smoltcp 0.12, Reno, Nagle off).
    #[serde(rename = "tcp-reno")]
    TcpReno,
    /// Plain UDP datagrams, no reliability: the loopback ceiling.
    #[serde(rename = "raw-udp")]
    RawUdp,
    /// Endpoints that only exchange datagrams: the `sim` workload, which measures the lab's
    /// simulator itself ([`crate::simulator::NullEndpoint`]).
    #[serde(rename = "null-endpoints")]
    NullEndpoints,
}

impl System {
    /// The systems that run in every simulated workload (raw UDP only runs on loopback).
    pub const SIMULATED: [System; 7] = [
        System::Udpchat,
        System::KcpFast,
        System::KcpDefault,
        System::Quic,
        System::QuicBbr,
        System::Tcp,
        System::TcpReno,
    ];

    /// The systems of `workload`, in table order: [`System::SIMULATED`], plus
    /// `udpchat-redundancy3` after `udpchat` in the chat workload (redundancy changes nothing
    /// for a sender with a backlog, so it has no bulk row; the dead-peer workload measures the
    /// defaults' give-up rule, which redundancy does not touch). Loopback and sim pick their
    /// own systems.
    pub fn for_workload(workload: Workload) -> Vec<System> {
        let mut systems = System::SIMULATED.to_vec();
        if workload == Workload::Chat {
            systems.insert(1, System::UdpchatRedundancy3);
        }
        if matches!(workload, Workload::Chat | Workload::Bulk) {
            // One row per controller, so that the default's choice can be read off the table
            // (the plain row repeats one of them: the default).
            let at = systems.len() - 4;
            for (i, system) in System::CONTROLLERS.into_iter().enumerate() {
                systems.insert(at + i, system);
            }
        }
        systems
    }

    /// The udpchat systems that differ from the defaults only in `--cc`.
    pub const CONTROLLERS: [System; 3] = [
        System::UdpchatNewreno,
        System::UdpchatCubic,
        System::UdpchatBbr,
    ];

    /// True for udpchat's own systems (the plain defaults and every tuned or alternative
    /// udpchat, all named `udpchat…`): the fairness workload pits each against itself and QUIC.
    pub fn is_udpchat(self) -> bool {
        self.name().starts_with("udpchat")
    }

    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Udpchat => "udpchat",
            System::UdpchatRedundancy3 => "udpchat-redundancy3",
            System::UdpchatNewreno => "udpchat-newreno",
            System::UdpchatCubic => "udpchat-cubic",
            System::UdpchatBbr => "udpchat-bbr",
            System::KcpFast => "kcp-fast",
            System::KcpDefault => "kcp-default",
            System::Quic => "quic",
            System::QuicBbr => "quic-bbr",
            System::Tcp => "tcp",
            System::TcpReno => "tcp-reno",
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
    /// smoltcp refused its socket.
    #[error(transparent)]
    Tcp(#[from] udpchat_lab::tcp::TcpSetupError),
    /// This system is not a transport of the comparison (raw UDP only runs over real sockets;
    /// null endpoints only measure the simulator).
    #[error("{0} is not one of the compared transports")]
    NotSimulated(System),
}

/// A pair of endpoints, A at [`ADDR_A`] talking to B at [`ADDR_B`].
pub type Pair = (Box<dyn Endpoint>, Box<dyn Endpoint>);

/// The redundancy of the `udpchat-redundancy3` system (`--redundancy 3`: each datagram with a
/// new line also carries copies of up to three unacknowledged ones; `docs/protocol.md`,
/// "Redundancy"). A tuned setting, so never under the plain name `udpchat`.
pub const CHAT_REDUNDANCY: u8 = 3;

/// The nickname the bench gives udpchat: the CLI's own fallback when `$USER` is unset
/// (`udpchat chat` defaults `--nick` to `$USER`, else this). A fixed name keeps runs
/// reproducible on every machine; the nick only rides in the handshake.
pub const CLI_FALLBACK_NICK: &str = "anon";

/// The configuration `udpchat chat --mode reliable` builds when given no flags: the CLI calls
/// `ReliableArgs::config(nick, max_datagram)`, which starts from [`ReliableConfig::default`]
/// and sets only the two fields the chat command itself owns: `nick` (from `--nick`, default
/// `$USER`; here [`CLI_FALLBACK_NICK`]) and `max_datagram` (from `--max-datagram`, in reliable
/// mode by default the cap of path MTU discovery,
/// [`udpchat_reliable::transport::config::DEFAULT_PMTU_CAP`], as `ChatArgs::reliable_max_datagram`). With no flags, its clamp of `initial_rto` into
/// `min_rto..=max_rto` changes nothing. This is the configuration of every `udpchat` row.
pub fn udpchat_cli_defaults() -> ReliableConfig {
    ReliableConfig {
        nick: CLI_FALLBACK_NICK.to_owned(),
        max_datagram: udpchat_reliable::transport::config::DEFAULT_PMTU_CAP,
        ..ReliableConfig::default()
    }
}

/// udpchat's configuration for `system` (a udpchat system), the same in every workload.
pub fn udpchat_config(system: System) -> ReliableConfig {
    match system {
        System::UdpchatRedundancy3 => ReliableConfig {
            redundancy: Redundancy::Fixed(CHAT_REDUNDANCY),
            ..udpchat_cli_defaults()
        },
        System::UdpchatNewreno | System::UdpchatCubic | System::UdpchatBbr => ReliableConfig {
            congestion: match system {
                System::UdpchatCubic => CongestionControl::Cubic,
                System::UdpchatBbr => CongestionControl::Bbr,
                _ => CongestionControl::NewReno,
            },
            ..udpchat_cli_defaults()
        },
        _ => udpchat_cli_defaults(),
    }
}

/// Builds `system`'s two endpoints (the same in every workload), for a run whose virtual time starts at
/// `epoch`, with their randomness from `seed`.
pub fn build_pair(
    system: System,
    epoch: Instant,
    seed: u64,
    quic: &QuicIdentity,
) -> Result<Pair, BuildError> {
    Ok(match system {
        System::Udpchat
        | System::UdpchatRedundancy3
        | System::UdpchatNewreno
        | System::UdpchatCubic
        | System::UdpchatBbr => {
            let config = udpchat_config(system);
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
        System::Quic | System::QuicBbr => {
            let identity = if system == System::QuicBbr {
                quic.with_controller(QuicController::Bbr)
            } else {
                quic.clone()
            };
            (
                Box::new(QuicEndpoint::client(&identity, ADDR_B, seed, epoch)?),
                Box::new(QuicEndpoint::server(&identity, seed ^ 0x5eed)),
            )
        }
        System::Tcp => tcp_pair(TcpCongestion::Cubic, seed)?,
        System::TcpReno => tcp_pair(TcpCongestion::Reno, seed)?,
        System::RawUdp | System::NullEndpoints => return Err(BuildError::NotSimulated(system)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain `udpchat` rows measure what a user gets: the configuration must be
    /// `ReliableConfig::default()` with exactly the two fields `udpchat chat` sets itself
    /// (crates/cli/src/reliable_args.rs, `ReliableArgs::config`, called with the chat's nick and
    /// `--max-datagram`), and nothing tuned.
    #[test]
    fn plain_udpchat_is_what_the_cli_builds_with_no_flags() {
        let defaults = ReliableConfig::default();
        let bench = udpchat_cli_defaults();
        // The documented differences, one by one.
        assert_eq!(bench.nick, CLI_FALLBACK_NICK);
        assert_eq!(
            bench.max_datagram,
            udpchat_reliable::transport::config::DEFAULT_PMTU_CAP
        );
        // Everything else is the default, field by field (the derive compares every field, so
        // a field added later is covered too).
        let rest = ReliableConfig {
            nick: defaults.nick.clone(),
            max_datagram: defaults.max_datagram,
            ..bench.clone()
        };
        assert_eq!(rest, defaults);
        // The CLI clamps the initial timeout into the chosen range; with no flags it stays.
        assert_eq!(
            bench.initial_rto,
            bench.initial_rto.clamp(bench.min_rto, bench.max_rto)
        );
        assert_eq!(bench.redundancy, Redundancy::Auto);
        assert!(bench.validate().is_ok());
        // Every workload's plain row uses it.
        assert_eq!(udpchat_config(System::Udpchat), bench);
    }

    #[test]
    fn the_tuned_udpchat_differs_only_in_its_named_setting() {
        let tuned = udpchat_config(System::UdpchatRedundancy3);
        assert_eq!(tuned.redundancy, Redundancy::Fixed(CHAT_REDUNDANCY));
        assert_eq!(
            ReliableConfig {
                redundancy: Redundancy::Auto,
                ..tuned
            },
            udpchat_cli_defaults()
        );
    }

    /// The rows of one process must not depend on what ran before them (`docs/bench.sh` runs
    /// seed 1 with every workload in one process and the other seeds one workload at a time):
    /// the same QUIC identity, used twice, gives the same row.
    #[test]
    fn a_quic_row_is_the_same_whatever_ran_before_it() {
        #![allow(clippy::unwrap_used)]
        let quic = QuicIdentity::generate().unwrap();
        for system in [System::Quic, System::QuicBbr] {
            let first = crate::bulk::run(system, 0.0, 200_000, 1, &quic).unwrap();
            let again = crate::bulk::run(system, 0.0, 200_000, 1, &quic).unwrap();
            assert_eq!(first.delivered, 200_000, "{system}");
            assert_eq!(first, again, "{system}");
        }
    }

    #[test]
    fn the_controller_rows_differ_from_the_defaults_only_in_their_controller() {
        let expected = [
            (System::UdpchatNewreno, CongestionControl::NewReno),
            (System::UdpchatCubic, CongestionControl::Cubic),
            (System::UdpchatBbr, CongestionControl::Bbr),
        ];
        for (system, cc) in expected {
            let config = udpchat_config(system);
            assert_eq!(config.congestion, cc, "{system}");
            assert_eq!(
                ReliableConfig {
                    congestion: udpchat_cli_defaults().congestion,
                    ..config
                },
                udpchat_cli_defaults()
            );
            for workload in [Workload::Chat, Workload::Bulk] {
                assert!(System::for_workload(workload).contains(&system));
            }
            assert!(!System::for_workload(Workload::DeadPeer).contains(&system));
        }
    }

    #[test]
    fn each_workload_runs_the_plain_udpchat_and_both_quic_controllers() {
        for workload in [Workload::Chat, Workload::Bulk, Workload::DeadPeer] {
            let systems = System::for_workload(workload);
            for system in [System::Udpchat, System::Quic, System::QuicBbr] {
                assert!(systems.contains(&system), "{workload:?} {system}");
            }
            assert_eq!(
                systems.contains(&System::UdpchatRedundancy3),
                workload == Workload::Chat
            );
        }
    }
}
