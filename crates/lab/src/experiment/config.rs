//! What an experiment sweeps: [`ExperimentConfig`], one plain struct with documented defaults,
//! shared by `udpchat lab`'s flags, the tests and `results.json` (which stores it whole, so a run
//! can be repeated exactly).
//!
//! A sweep is the product of its loss rates, its burst lengths and its [`Mode`]s, each run once
//! per seed. Every other knob of the link (delay, jitter, duplication, reordering, corruption, rate)
//! is fixed for the whole sweep and applies to both directions.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};
use thiserror::Error;
use udpchat_reliable::{Arq, CongestionControl, Delivery, Redundancy, ReliableConfig};

use crate::gilbert::{GilbertElliott, GilbertElliottError};
use crate::impairment::ImpairmentConfig;
use crate::parse::QueueLimit;
use crate::probability::Probability;
use crate::tcp::TcpCongestion;

/// A transport (and its settings) the sweep runs. Serialized as its [`Mode::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Raw mode: one datagram per message, nothing resent.
    Raw,
    /// Reliable mode with its defaults (selective repeat, ordered delivery, the default
    /// controller).
    Reliable,
    /// Reliable mode delivering each message as soon as it is complete (no head-of-line
    /// blocking).
    Unordered,
    /// Reliable mode, selective repeat (the default ARQ; the same as `reliable`, named for
    /// comparisons with the other schemes).
    SelectiveRepeat,
    /// Reliable mode, go-back-n.
    GoBackN,
    /// Reliable mode, stop-and-wait.
    StopAndWait,
    /// Reliable mode without congestion control (`--cc none`): only the receive window limits
    /// the sender, so it shows what the congestion window costs under random loss.
    NoCc,
    /// Reliable mode with `--cc newreno`.
    Newreno,
    /// Reliable mode with `--cc cubic`.
    Cubic,
    /// Reliable mode with `--cc bbr` (the model-based controller).
    Bbr,
    /// TCP (smoltcp 0.12, [`crate::tcp`]) with CUBIC, Nagle off: a real TCP on the same links.
    Tcp,
    /// TCP (smoltcp) with Reno.
    TcpReno,
    /// The Linux kernel's own TCP with this congestion control, between two network namespaces
    /// joined through the TUN relay (`--real` only, as root; see [`super::kernel`]).
    KernelTcp(KernelCc),
}

/// A congestion control of the Linux kernel's TCP, set per socket with `TCP_CONGESTION`
/// (`kernel-tcp:NAME`). Whether this kernel offers it is checked when a run starts, against
/// `net.ipv4.tcp_available_congestion_control`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelCc {
    /// CUBIC, Linux's default.
    Cubic,
    /// NewReno.
    Reno,
    /// BBR (v1 in mainline Linux).
    Bbr,
}

impl KernelCc {
    /// Every one, the default first.
    pub const ALL: [KernelCc; 3] = [KernelCc::Cubic, KernelCc::Reno, KernelCc::Bbr];

    /// The kernel's name for it (what `TCP_CONGESTION` takes).
    pub fn name(self) -> &'static str {
        match self {
            KernelCc::Cubic => "cubic",
            KernelCc::Reno => "reno",
            KernelCc::Bbr => "bbr",
        }
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Mode {
    /// Every mode, in the order `--modes` lists them in help texts.
    pub const ALL: [Mode; 12] = [
        Mode::Raw,
        Mode::Reliable,
        Mode::Unordered,
        Mode::SelectiveRepeat,
        Mode::GoBackN,
        Mode::StopAndWait,
        Mode::NoCc,
        Mode::Newreno,
        Mode::Cubic,
        Mode::Bbr,
        Mode::Tcp,
        Mode::TcpReno,
    ];

    /// The name `--modes` takes and tables show.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Reliable => "reliable",
            Mode::Unordered => "unordered",
            Mode::SelectiveRepeat => "selective-repeat",
            Mode::GoBackN => "go-back-n",
            Mode::StopAndWait => "stop-and-wait",
            Mode::NoCc => "no-cc",
            Mode::Newreno => "newreno",
            Mode::Cubic => "cubic",
            Mode::Bbr => "bbr",
            Mode::Tcp => "tcp",
            Mode::TcpReno => "tcp-reno",
            Mode::KernelTcp(KernelCc::Cubic) => "kernel-tcp:cubic",
            Mode::KernelTcp(KernelCc::Reno) => "kernel-tcp:reno",
            Mode::KernelTcp(KernelCc::Bbr) => "kernel-tcp:bbr",
        }
    }

    /// The kernel TCP modes, which run only with `--real` (they are not in [`Mode::ALL`], the
    /// modes of the simulator).
    pub const KERNEL: [Mode; 3] = [
        Mode::KernelTcp(KernelCc::Cubic),
        Mode::KernelTcp(KernelCc::Reno),
        Mode::KernelTcp(KernelCc::Bbr),
    ];

    /// True for the modes that run the kernel's TCP (`--real` only).
    pub fn is_kernel(self) -> bool {
        matches!(self, Mode::KernelTcp(_))
    }

    /// The reliable transport's configuration for this mode; `None` for raw mode and TCP. Its defaults,
    /// but for redundancy, which is off (`--redundancy 0`): the lab compares ARQ schemes and
    /// checks their transmissions per message against theory (1/(1−p) for selective repeat),
    /// and copies that repair losses before any resend would hide exactly that. The default's
    /// redundancy (`auto`) is measured by the bench and the `chat_latency` example.
    pub fn reliable_config(self) -> Option<ReliableConfig> {
        let base = ReliableConfig::default();
        let (arq, delivery) = match self {
            Mode::Raw | Mode::Tcp | Mode::TcpReno | Mode::KernelTcp(_) => return None,
            Mode::Reliable
            | Mode::SelectiveRepeat
            | Mode::NoCc
            | Mode::Newreno
            | Mode::Cubic
            | Mode::Bbr => (Arq::SelectiveRepeat, Delivery::Ordered),
            Mode::Unordered => (Arq::SelectiveRepeat, Delivery::Unordered),
            Mode::GoBackN => (Arq::GoBackN, Delivery::Ordered),
            Mode::StopAndWait => (Arq::StopAndWait, Delivery::Ordered),
        };
        let congestion = match self {
            Mode::NoCc => CongestionControl::None,
            Mode::Newreno => CongestionControl::NewReno,
            Mode::Cubic => CongestionControl::Cubic,
            Mode::Bbr => CongestionControl::Bbr,
            _ => base.congestion,
        };
        Some(ReliableConfig {
            arq,
            delivery,
            congestion,
            redundancy: Redundancy::Fixed(0),
            ..base
        })
    }

    /// smoltcp's congestion controller for a TCP mode; `None` for the others.
    pub fn tcp_congestion(self) -> Option<TcpCongestion> {
        match self {
            Mode::Tcp => Some(TcpCongestion::Cubic),
            Mode::TcpReno => Some(TcpCongestion::Reno),
            _ => None,
        }
    }

    /// True for the reliable modes that resend only what was lost, for which the expected number
    /// of transmissions per message is `1/(1-p)`.
    pub fn is_selective(self) -> bool {
        matches!(
            self,
            Mode::Reliable
                | Mode::Unordered
                | Mode::SelectiveRepeat
                | Mode::NoCc
                | Mode::Newreno
                | Mode::Cubic
                | Mode::Bbr
        )
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name `--modes` does not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown mode {0:?}: expected raw, reliable, unordered, selective-repeat, go-back-n, stop-and-wait, no-cc, newreno, cubic, bbr, tcp, tcp-reno or kernel-tcp[:cubic|reno|bbr] (with --real)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        let name = s.trim().to_ascii_lowercase();
        // `kernel-tcp` alone is CUBIC, the kernel's default.
        let name = if name == "kernel-tcp" {
            "kernel-tcp:cubic".to_owned()
        } else {
            name
        };
        Mode::ALL
            .into_iter()
            .chain(Mode::KERNEL)
            .find(|m| m.name() == name)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// How loss is distributed at one point of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LossPattern {
    /// Each datagram lost independently (Bernoulli).
    Independent,
    /// Gilbert–Elliott bursts with this mean length in packets, at the same mean loss.
    Bursts {
        /// Mean burst length, in packets (at least 1).
        mean_burst: f64,
    },
}

impl fmt::Display for LossPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossPattern::Independent => f.write_str("indep"),
            LossPattern::Bursts { mean_burst } => write!(f, "burst {mean_burst}"),
        }
    }
}

/// One point of the sweep: a mean loss rate and how it is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepPoint {
    /// Mean loss rate of each direction.
    pub loss: Probability,
    /// How the losses are spread.
    pub pattern: LossPattern,
}

impl SweepPoint {
    /// The link configuration of this point: `base` with its loss replaced.
    pub fn link(&self, base: &ImpairmentConfig) -> Result<ImpairmentConfig, ConfigError> {
        let mut link = base.clone();
        match self.pattern {
            LossPattern::Independent => {
                link.loss = self.loss;
                link.burst_loss = None;
            }
            LossPattern::Bursts { mean_burst } => {
                link.loss = Probability::ZERO;
                link.burst_loss = Some(GilbertElliott::from_mean(self.loss, mean_burst).map_err(
                    |source| ConfigError::Burst {
                        loss: self.loss,
                        source,
                    },
                )?);
            }
        }
        Ok(link)
    }
}

/// Why an experiment cannot run as configured.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// A list that must not be empty is.
    #[error("nothing to run: the {0} list is empty")]
    Empty(&'static str),
    /// No message to send, or no seed to run.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// Messages too small to carry their number (each message's text starts with it).
    #[error("messages of {size} B cannot carry their numbers: use --size {min} or more")]
    SizeTooSmall {
        /// The requested size.
        size: usize,
        /// The smallest that works for this many messages.
        min: usize,
    },
    /// A loss rate and burst length no Gilbert–Elliott channel has.
    #[error("burst loss at {loss}: {source}")]
    Burst {
        /// The mean loss.
        loss: Probability,
        /// What is wrong.
        source: GilbertElliottError,
    },
}

/// An experiment: the sweep, the traffic, the modes and the seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentConfig {
    /// Mean loss rates, each direction. Default 0, 1%, 5%, 10%, 20%, 30%.
    pub losses: Vec<Probability>,
    /// Loss patterns: independent, and/or bursts of a mean length. Default independent only.
    pub patterns: Vec<LossPattern>,
    /// Everything else about the link, both directions (its loss fields are replaced at each
    /// point). Default: delay 20 ms, jitter 5 ms (uniform, may reorder), nothing else.
    pub link: ImpairmentConfig,
    /// Messages sent from A to B per run. Default 1000.
    pub messages: u32,
    /// Size of each message, in bytes. Default 64.
    pub size: usize,
    /// Time between two messages. Default 10 ms.
    #[serde(serialize_with = "millis")]
    pub interval: Duration,
    /// Transports compared. Default raw and reliable.
    pub modes: Vec<Mode>,
    /// Runs per point and mode, each with its own seed. Default 5.
    pub seeds: u32,
    /// First seed; the runs use `seed`, `seed + 1`, ... Default 1.
    pub seed: u64,
    /// The path MTU, both directions: a datagram larger than this many bytes (of UDP payload) is
    /// dropped without a word, as by a router that sends no ICMP ([`crate::sim::Scenario::mtu`]).
    /// Default: none (any size gets through).
    pub mtu: Option<usize>,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        let percent = |p: f64| Probability::new(p / 100.0).unwrap_or(Probability::ZERO);
        ExperimentConfig {
            losses: [0.0, 1.0, 5.0, 10.0, 20.0, 30.0]
                .into_iter()
                .map(percent)
                .collect(),
            patterns: vec![LossPattern::Independent],
            link: ImpairmentConfig {
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(5),
                ..ImpairmentConfig::default()
            },
            messages: 1000,
            size: 64,
            interval: Duration::from_millis(10),
            modes: vec![Mode::Raw, Mode::Reliable],
            seeds: 5,
            seed: 1,
            mtu: None,
        }
    }
}

impl ExperimentConfig {
    /// Checks the configuration and lists the sweep's points (patterns outer, losses inner).
    pub fn points(&self) -> Result<Vec<SweepPoint>, ConfigError> {
        if self.losses.is_empty() {
            return Err(ConfigError::Empty("loss"));
        }
        if self.patterns.is_empty() {
            return Err(ConfigError::Empty("burst"));
        }
        if self.modes.is_empty() {
            return Err(ConfigError::Empty("modes"));
        }
        if self.messages == 0 {
            return Err(ConfigError::Zero("--messages"));
        }
        if self.seeds == 0 {
            return Err(ConfigError::Zero("--seeds"));
        }
        let min = message_text(self.messages - 1, 0).len();
        if self.size < min {
            return Err(ConfigError::SizeTooSmall {
                size: self.size,
                min,
            });
        }
        let mut points = Vec::new();
        for &pattern in &self.patterns {
            for &loss in &self.losses {
                let point = SweepPoint { loss, pattern };
                point.link(&self.link)?;
                points.push(point);
            }
        }
        Ok(points)
    }

    /// The seeds the runs use, in order.
    pub fn seed_list(&self) -> Vec<u64> {
        (0..u64::from(self.seeds))
            .map(|i| self.seed.wrapping_add(i))
            .collect()
    }

    /// The text of message `index`: its number, then padding up to `size` bytes. The simulator
    /// matches deliveries to sends by text, so every text is distinct.
    pub fn message(&self, index: u32) -> String {
        message_text(index, self.size)
    }
}

impl ExperimentConfig {
    /// The `udpchat lab` command line that runs this sweep again, every knob spelled out.
    pub fn command(&self) -> String {
        let list = |items: Vec<String>| items.join(",");
        let mut args = vec![
            "udpchat lab".to_owned(),
            format!(
                "--loss {}",
                list(self.losses.iter().map(|p| p.to_string()).collect())
            ),
        ];
        if self.patterns != [LossPattern::Independent] {
            let bursts = self
                .patterns
                .iter()
                .map(|p| match p {
                    LossPattern::Independent => "none".to_owned(),
                    LossPattern::Bursts { mean_burst } => mean_burst.to_string(),
                })
                .collect();
            args.push(format!("--burst {}", list(bursts)));
        }
        args.push(format!("--delay {}", duration_arg(self.link.delay)));
        args.push(format!("--jitter {}", duration_arg(self.link.jitter)));
        args.extend(self.link_knob_args());
        args.push(format!("--messages {}", self.messages));
        args.push(format!("--size {}", self.size));
        args.push(format!("--interval {}", duration_arg(self.interval)));
        args.push(format!(
            "--modes {}",
            list(self.modes.iter().map(|m| m.name().to_owned()).collect())
        ));
        if let Some(mtu) = self.mtu {
            args.push(format!("--mtu {mtu}"));
        }
        args.push(format!("--seeds {}", self.seeds));
        args.push(format!("--seed {}", self.seed));
        args.join(" ")
    }
}

impl ExperimentConfig {
    /// The flags for the link's knobs other than loss, delay and jitter, each only when it is not
    /// the default (so the commands of sweeps that leave them alone stay as they were).
    fn link_knob_args(&self) -> Vec<String> {
        let link = &self.link;
        let defaults = ImpairmentConfig::default();
        let mut args = Vec::new();
        if link.jitter_reorders != defaults.jitter_reorders {
            args.push("--no-jitter-reorder".to_owned());
        }
        for (flag, p) in [
            ("duplicate", link.duplicate),
            ("reorder", link.reorder),
            ("corrupt", link.corrupt),
        ] {
            if !p.is_zero() {
                args.push(format!("--{flag} {p}"));
            }
        }
        if link.corrupt_bits != defaults.corrupt_bits {
            args.push(format!("--corrupt-bits {}", link.corrupt_bits));
        }
        if let Some(rate) = link.rate {
            args.push(format!("--rate {rate}"));
        }
        if link.queue != defaults.queue {
            args.push(format!(
                "--queue {}",
                match link.queue {
                    QueueLimit::Packets(n) => format!("{n}p"),
                    QueueLimit::Bytes(n) => format!("{n}b"),
                }
            ));
        }
        if link.limit != defaults.limit {
            args.push(format!("--limit {}", link.limit));
        }
        args
    }
}

/// A duration as `udpchat lab` parses it back exactly: `20ms`, `250us` or `1500ns`.
pub fn duration_arg(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

fn message_text(index: u32, size: usize) -> String {
    let mut text = format!("m{index}.");
    while text.len() < size {
        text.push('x');
    }
    text
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kernel_tcp_modes_parse_by_name_and_are_not_simulator_modes() {
        assert_eq!(
            "kernel-tcp".parse::<Mode>().unwrap(),
            Mode::KernelTcp(KernelCc::Cubic)
        );
        for mode in Mode::KERNEL {
            assert_eq!(mode.name().parse::<Mode>().unwrap(), mode);
            assert!(mode.is_kernel() && mode.reliable_config().is_none());
            assert!(!Mode::ALL.contains(&mode));
            assert_eq!(
                serde_json::to_string(&mode).unwrap(),
                format!("\"{}\"", mode.name())
            );
        }
        assert!("kernel-tcp:vegas".parse::<Mode>().is_err());
        assert_eq!(serde_json::to_string(&Mode::NoCc).unwrap(), "\"no-cc\"");
        assert!(crate::experiment::run::endpoints(Mode::KernelTcp(KernelCc::Bbr), 1).is_err());
    }

    #[test]
    fn the_default_sweep_is_valid_and_has_six_points() {
        let config = ExperimentConfig::default();
        let points = config.points().unwrap();
        assert_eq!(points.len(), 6);
        assert_eq!(points[3].loss, Probability::new(0.1).unwrap());
        assert_eq!(config.seed_list(), vec![1, 2, 3, 4, 5]);
        assert_eq!(config.message(7).len(), 64);
        assert_ne!(config.message(7), config.message(8));
    }

    #[test]
    fn modes_parse_by_name_and_configure_the_transport() {
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>().unwrap(), mode);
        }
        assert!("kcp".parse::<Mode>().is_err());
        assert_eq!(
            "tcp".parse::<Mode>().unwrap().tcp_congestion(),
            Some(TcpCongestion::Cubic)
        );
        assert_eq!(Mode::TcpReno.tcp_congestion(), Some(TcpCongestion::Reno));
        assert_eq!(Mode::Tcp.reliable_config(), None);
        assert_eq!(Mode::Raw.reliable_config(), None);
        assert_eq!(Mode::GoBackN.reliable_config().unwrap().arq, Arq::GoBackN);
        assert_eq!(
            Mode::Unordered.reliable_config().unwrap().delivery,
            Delivery::Unordered
        );
    }

    #[test]
    fn bad_sweeps_are_refused_with_a_reason() {
        let tiny = ExperimentConfig {
            size: 2,
            ..ExperimentConfig::default()
        };
        assert!(matches!(
            tiny.points(),
            Err(ConfigError::SizeTooSmall { min: 5, .. })
        ));
        let impossible = ExperimentConfig {
            losses: vec![Probability::new(0.9).unwrap()],
            patterns: vec![LossPattern::Bursts { mean_burst: 1.0 }],
            ..ExperimentConfig::default()
        };
        assert!(matches!(
            impossible.points(),
            Err(ConfigError::Burst { .. })
        ));
        let none = ExperimentConfig {
            modes: vec![],
            ..ExperimentConfig::default()
        };
        assert_eq!(none.points(), Err(ConfigError::Empty("modes")));
    }

    #[test]
    fn the_command_names_every_knob_that_is_not_the_default() {
        let plain = ExperimentConfig::default().command();
        assert_eq!(
            plain,
            "udpchat lab --loss 0%,1%,5%,10%,20%,30% --delay 20ms --jitter 5ms --messages 1000 \
             --size 64 --interval 10ms --modes raw,reliable --seeds 5 --seed 1"
        );
        let mut config = ExperimentConfig::default();
        config.link.jitter_reorders = false;
        config.link.corrupt = Probability::new(0.01).unwrap();
        config.link.corrupt_bits = std::num::NonZeroU32::new(3).unwrap();
        config.link.rate = crate::parse::BitRate::from_bits_per_second(1_000_000);
        config.link.queue = QueueLimit::bytes(64_000).unwrap();
        config.link.limit = std::num::NonZeroUsize::new(50).unwrap();
        let command = config.command();
        for part in [
            " --jitter 5ms --no-jitter-reorder --corrupt 1% --corrupt-bits 3 --rate 1mbit",
            " --queue 64000b --limit 50 --messages",
        ] {
            assert!(command.contains(part), "{command}");
        }
    }

    #[test]
    fn a_burst_point_keeps_the_mean_loss() {
        let point = SweepPoint {
            loss: Probability::new(0.1).unwrap(),
            pattern: LossPattern::Bursts { mean_burst: 4.0 },
        };
        let link = point.link(&ImpairmentConfig::default()).unwrap();
        assert!(link.loss.is_zero());
        let ge = link.burst_loss.unwrap();
        assert!((ge.mean_loss() - 0.1).abs() < 1e-12);
        assert!((ge.mean_bad_run() - 4.0).abs() < 1e-12);
    }
}
