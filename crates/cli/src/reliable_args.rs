//! The flags of `udpchat chat --mode reliable`, and the bookkeeping behind its exit code 3.
//!
//! Every flag maps onto one field of [`ReliableConfig`]; a flag left out keeps that field's
//! documented default, so the CLI, the lab and the tests share one set of defaults. The flags are
//! `Option`s so that giving one in raw mode is a usage error rather than a flag silently ignored.
//!
//! [`Undelivered`] wraps the output sink and remembers the text of every accepted line until it
//! is delivered, so that when the chat ends with messages given up on, it can name them (and the
//! process exits with code 3): a reliable chat never exits 0 having silently lost a message.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

#[cfg(test)]
use clap::error::ErrorKind;
use clap::{value_parser, Args, ValueEnum};
use udpchat_core::packet::MAX_BUNDLE;
use udpchat_driver::Sink;
use udpchat_lab::parse::parse_duration;
use udpchat_reliable::endpoint::NickError;
use udpchat_reliable::{
    Arq, ConfigError, CongestionControl, Delivery, Event, MessageId, Redundancy, ReliableConfig,
    ReliableEndpoint, SendError, Stats,
};

/// Tuning of the reliable transport. Each applies only with `--mode reliable`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Reliable mode (with --mode reliable)")]
pub struct ReliableArgs {
    /// ARQ scheme: selective-repeat resends only what is missing; go-back-n resends everything
    /// from the first hole (cumulative acks only); stop-and-wait keeps one packet in flight
    /// [default: selective-repeat].
    #[arg(long, value_enum, value_name = "SCHEME")]
    pub arq: Option<ArqArg>,

    /// Congestion control: newreno (slow start, halve on loss), cubic (RFC 9438 with HyStart++),
    /// bbr (model-based: paces at its bottleneck-bandwidth estimate; random loss does not shrink
    /// it) or none (only the receive window limits the sender; for experiments)
    /// [default: newreno].
    #[arg(long, value_enum, value_name = "CC")]
    pub cc: Option<CcArg>,

    /// Deliver each message as soon as it is complete, even if an earlier one is still missing
    /// (shows head-of-line blocking by its absence).
    #[arg(long)]
    pub unordered: bool,

    /// Smallest retransmission timeout, e.g. 50ms or 1s; more than 0 [default: 50ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub min_rto: Option<Duration>,

    /// Largest retransmission timeout, backoff included; at least --min-rto [default: 3s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub max_rto: Option<Duration>,

    /// Consecutive timeouts without progress before giving up on the peer: every message not
    /// acknowledged is then reported lost. The give-up comes within (N+1) x --max-rto
    /// [default: 10].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_retries: Option<u32>,

    /// On quit (end of input, /quit, Ctrl-C), how long to wait for outstanding messages to be
    /// acknowledged before reporting them lost [default: 3s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub linger: Option<Duration>,

    /// Receive window in packets: how far ahead of the first missing packet the peer may send
    /// (1-65536) [default: 1024].
    #[arg(long, value_name = "PACKETS", value_parser = value_parser!(u32).range(1..=65_536),
          allow_negative_numbers = true)]
    pub window: Option<u32>,

    /// Redundancy for chat latency under loss: each datagram carrying a new line also carries
    /// copies of up to N recent unacknowledged ones (and the last line before a pause gets up to
    /// N copies of its own), so a lost line is repaired without waiting a round trip. `auto`
    /// adds copies only while lines are being lost, as many as the measured loss rate calls for
    /// (none on a clean path, at most 3); a number forces that many (0-15; 0 turns it off).
    /// Copies are never sent while data waits for the window, nor beyond half of it
    /// [default: auto].
    #[arg(long, value_name = "auto|N", value_parser = parse_redundancy)]
    pub redundancy: Option<Redundancy>,

    /// At the end of input (Ctrl-D, the end of a piped file) finish sending but go on receiving
    /// until the peer finishes too, then leave (a half-close, as TCP's FIN): two piped sides
    /// exchange everything. /quit and Ctrl-C still close at once [default: off: the end of input
    /// closes the chat, as /quit]. Also in tcp mode, the one flag of these it takes: a Fin frame,
    /// then the write side is shut down.
    #[arg(long)]
    pub half_close: bool,
}

/// `--redundancy`: `auto`, or a number of copies below [`MAX_BUNDLE`].
fn parse_redundancy(text: &str) -> Result<Redundancy, String> {
    if text == "auto" {
        return Ok(Redundancy::Auto);
    }
    match text.parse::<u8>() {
        Ok(n) if usize::from(n) < MAX_BUNDLE => Ok(Redundancy::Fixed(n)),
        _ => Err(format!(
            "expected auto or a number of copies from 0 to {}",
            MAX_BUNDLE - 1
        )),
    }
}

/// `--arq` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArqArg {
    /// Resend only what is missing (selective acks, fast retransmit).
    SelectiveRepeat,
    /// Resend everything from the first hole on a timeout.
    GoBackN,
    /// One packet in flight at a time.
    StopAndWait,
}

/// `--cc` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CcArg {
    /// NewReno-style congestion window.
    Newreno,
    /// CUBIC with HyStart++.
    Cubic,
    /// Model-based (bottleneck bandwidth and min-RTT estimates, pacing), in the spirit of BBR.
    Bbr,
    /// No congestion window.
    None,
}

impl CcArg {
    /// The controller this value selects.
    pub fn congestion(self) -> CongestionControl {
        match self {
            CcArg::Newreno => CongestionControl::NewReno,
            CcArg::Cubic => CongestionControl::Cubic,
            CcArg::Bbr => CongestionControl::Bbr,
            CcArg::None => CongestionControl::None,
        }
    }
}

impl ReliableArgs {
    /// True if any reliable-mode flag was given.
    pub fn any_given(&self) -> bool {
        self.arq.is_some()
            || self.cc.is_some()
            || self.unordered
            || self.min_rto.is_some()
            || self.max_rto.is_some()
            || self.max_retries.is_some()
            || self.linger.is_some()
            || self.window.is_some()
            || self.redundancy.is_some()
            || self.half_close
    }

    /// The transport configuration these flags describe.
    pub fn config(&self, nick: String, max_datagram: usize) -> Result<ReliableConfig, clap::Error> {
        let defaults = ReliableConfig::default();
        let config = ReliableConfig {
            nick,
            max_datagram,
            arq: match self.arq {
                None => defaults.arq,
                Some(ArqArg::SelectiveRepeat) => Arq::SelectiveRepeat,
                Some(ArqArg::GoBackN) => Arq::GoBackN,
                Some(ArqArg::StopAndWait) => Arq::StopAndWait,
            },
            congestion: self.cc.map_or(defaults.congestion, CcArg::congestion),
            delivery: if self.unordered {
                Delivery::Unordered
            } else {
                Delivery::Ordered
            },
            min_rto: self.min_rto.unwrap_or(defaults.min_rto),
            max_rto: self.max_rto.unwrap_or(defaults.max_rto),
            max_retries: self.max_retries.unwrap_or(defaults.max_retries),
            linger: self.linger.unwrap_or(defaults.linger),
            window: self.window.unwrap_or(defaults.window),
            redundancy: self.redundancy.unwrap_or(defaults.redundancy),
            ..defaults
        };
        // The initial timeout must lie within the range the user chose.
        let config = ReliableConfig {
            initial_rto: config
                .initial_rto
                .clamp(config.min_rto, config.max_rto.max(config.min_rto)),
            ..config
        };
        config.validate().map_err(|e| usage(&flag_message(&e)))?;
        Ok(config)
    }

    /// The endpoint these flags describe, with a fresh random seed for its connection ids.
    pub fn endpoint(
        &self,
        nick: String,
        peer: Option<SocketAddr>,
        max_datagram: usize,
    ) -> Result<ReliableEndpoint, clap::Error> {
        let config = self.config(nick, max_datagram)?;
        ReliableEndpoint::new(config, peer, fresh_seed()).map_err(|e| usage(&e.to_string()))
    }
}

/// What is wrong with the reliable flags, in terms of the flags.
fn flag_message(error: &ConfigError) -> String {
    match error {
        ConfigError::Window(_) => format!("--window: {error}"),
        ConfigError::Rto => {
            "--min-rto must be more than 0 and at most --max-rto (the timeouts must satisfy \
             0 < min-rto <= initial-rto <= max-rto)"
                .to_owned()
        }
        ConfigError::Redundancy(_) => format!("--redundancy: {error}"),
        ConfigError::Datagram(_) => format!("--max-datagram: {error}"),
        _ => error.to_string(),
    }
}

/// A usage error of `udpchat chat` (exit code 2), as clap prints them, with chat's usage line.
pub fn usage(message: &str) -> clap::Error {
    crate::usage_error("chat", message)
}

/// A seed that differs between runs, so a restarted chat gets new connection ids: the
/// standard library's per-process random hash keys, mixed with the clock and the process id.
fn fresh_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

/// Wraps a [`Sink`] and keeps the text of every accepted line until it is acknowledged, so the
/// lines given up on can be named at the end.
pub struct Undelivered<'a, S: Sink + ?Sized> {
    inner: &'a mut S,
    pending: BTreeMap<MessageId, String>,
    lost: Vec<(MessageId, String)>,
}

impl<'a, S: Sink + ?Sized> Undelivered<'a, S> {
    /// Tracks what goes through `inner`.
    pub fn new(inner: &'a mut S) -> Self {
        Undelivered {
            inner,
            pending: BTreeMap::new(),
            lost: Vec::new(),
        }
    }

    /// The messages reported lost, in the order they were.
    pub fn lost(&self) -> &[(MessageId, String)] {
        &self.lost
    }
}

impl<S: Sink + ?Sized> Sink for Undelivered<'_, S> {
    fn event(&mut self, event: Event) {
        match &event {
            Event::Delivered { id, .. } => {
                self.pending.remove(id);
            }
            Event::Lost { id } => {
                let text = self.pending.remove(id).unwrap_or_default();
                self.lost.push((*id, text));
            }
            _ => {}
        }
        self.inner.event(event);
    }

    fn accepted(&mut self, id: MessageId, line: &str) {
        self.pending.insert(id, line.to_owned());
        self.inner.accepted(id, line);
    }

    fn refused(&mut self, line: &str, error: &SendError) {
        self.inner.refused(line, error);
    }

    fn nick(&mut self, nick: &str, result: Result<(), NickError>) {
        self.inner.nick(nick, result);
    }

    fn socket_error(&mut self, error: &io::Error) {
        self.inner.socket_error(error);
    }

    fn stats(&mut self, stats: &Stats) {
        self.inner.stats(stats);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_give_the_documented_defaults() {
        // The chat passes `--max-datagram`, by default the transport's own cap.
        let cap = udpchat_reliable::transport::config::DEFAULT_PMTU_CAP;
        let config = ReliableArgs::default().config(String::new(), cap).unwrap();
        assert_eq!(config, ReliableConfig::default());
    }

    #[test]
    fn flags_reach_the_config() {
        let args = ReliableArgs {
            arq: Some(ArqArg::GoBackN),
            cc: Some(CcArg::None),
            unordered: true,
            min_rto: Some(Duration::from_millis(50)),
            max_rto: Some(Duration::from_millis(500)),
            max_retries: Some(3),
            linger: Some(Duration::from_secs(1)),
            window: Some(32),
            redundancy: Some(Redundancy::Fixed(3)),
            half_close: true,
        };
        assert!(args.any_given());
        let config = args.config("me".into(), 1200).unwrap();
        assert_eq!(config.arq, Arq::GoBackN);
        assert_eq!(config.congestion, CongestionControl::None);
        assert_eq!(config.delivery, Delivery::Unordered);
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.window, 32);
        assert_eq!(config.redundancy, Redundancy::Fixed(3));
        assert_eq!(
            ReliableArgs::default()
                .config("me".into(), 1200)
                .unwrap()
                .redundancy,
            Redundancy::Auto
        );
        assert_eq!(config.initial_rto, Duration::from_millis(500));
        assert!(!ReliableArgs::default().any_given());
        for (arg, cc) in [
            (CcArg::Newreno, CongestionControl::NewReno),
            (CcArg::Cubic, CongestionControl::Cubic),
            (CcArg::Bbr, CongestionControl::Bbr),
            (CcArg::None, CongestionControl::None),
        ] {
            let args = ReliableArgs {
                cc: Some(arg),
                ..ReliableArgs::default()
            };
            assert_eq!(args.config(String::new(), 1200).unwrap().congestion, cc);
        }
    }

    #[test]
    fn impossible_values_are_usage_errors() {
        let args = ReliableArgs {
            window: Some(0),
            ..ReliableArgs::default()
        };
        assert_eq!(
            args.config(String::new(), 1200).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        let args = ReliableArgs {
            min_rto: Some(Duration::from_secs(5)),
            ..ReliableArgs::default()
        };
        assert!(args.config(String::new(), 1200).is_err());
        let args = ReliableArgs {
            redundancy: Some(Redundancy::Fixed(16)),
            ..ReliableArgs::default()
        };
        assert!(args.config(String::new(), 1200).is_err());
        assert_eq!(parse_redundancy("auto"), Ok(Redundancy::Auto));
        assert_eq!(parse_redundancy("0"), Ok(Redundancy::Fixed(0)));
        assert!(parse_redundancy("16").is_err());
        assert!(parse_redundancy("-1").is_err());
        assert!(parse_redundancy("some").is_err());
    }

    struct Null;
    impl Sink for Null {
        fn event(&mut self, _: Event) {}
        fn refused(&mut self, _: &str, _: &SendError) {}
        fn socket_error(&mut self, _: &io::Error) {}
        fn stats(&mut self, _: &Stats) {}
    }

    #[test]
    fn lost_lines_are_remembered_by_text() {
        let mut null = Null;
        let mut tracker = Undelivered::new(&mut null);
        tracker.accepted(MessageId(0), "first");
        tracker.accepted(MessageId(1), "second");
        tracker.event(Event::Delivered {
            id: MessageId(0),
            rtt: None,
        });
        tracker.event(Event::Lost { id: MessageId(1) });
        assert_eq!(tracker.lost(), &[(MessageId(1), "second".to_owned())]);
    }
}
