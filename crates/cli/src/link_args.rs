//! The link (impairment) flags, declared once for `udpchat chat`, `udpchat proxy` and
//! `udpchat lab`.
//!
//! [`LinkArgs`] holds the knobs every command takes alike (`--delay`, `--jitter`, `--rate`, ...),
//! so their help texts cannot drift apart. A chat or a proxy applies one loss rate and may
//! override each knob per direction ([`ImpairmentArgs`]); the lab sweeps a list of loss rates
//! instead (see `crate::lab`), with the same help text ([`LOSS_HELP`], [`SEED_HELP`]).
//!
//! Asymmetric links take per-direction overrides, one knob per flag, repeatable:
//!
//! ```text
//! --up KNOB=VALUE     client -> forward (proxy), outgoing (chat)
//! --down KNOB=VALUE   forward -> client (proxy), incoming (chat; implies --impair-incoming)
//! ```
//!
//! where KNOB is a flag name without its dashes (`loss`, `burst-loss`, `delay`, `jitter`,
//! `jitter-reorder`, `duplicate`, `reorder`, `corrupt`, `corrupt-bits`, `rate`, `queue`, `limit`)
//! and VALUE is what that flag takes (`burst-loss=none`, `rate=none` and `jitter-reorder=no`
//! switch a knob off). Example: `--delay 20ms --down loss=30% --down rate=1mbit` gives 20 ms each
//! way, and loss and a rate limit only on the way back.
//!
//! Every value is checked by clap through the lab's plain parsers ([`udpchat_lab::parse`]), so a
//! bad one is a usage error (exit code 2) naming the flag and saying what was expected. Values
//! may start with a dash (`allow_hyphen_values`) so that `--delay -5ms` reaches the parser and is
//! refused as negative, rather than being taken for an unknown flag `-5ms`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::{NonZeroU32, NonZeroUsize};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use udpchat_lab::parse::{
    parse_count, parse_duration, parse_probability, parse_queue, parse_rate, parse_seed, BitRate,
    ParseError, QueueLimit, MIN_RATE,
};
use udpchat_lab::{GilbertElliott, ImpairedEndpoint, ImpairmentConfig, Probability};
use udpchat_reliable::Endpoint;

/// The help heading of the link flags.
pub const LINK_HEADING: &str = "Link impairment";

/// `--loss`'s help, shared by the chat and proxy (one rate) and the lab (a list to sweep).
pub const LOSS_HELP: &str = "Loss probability of each datagram, independent of the others: 0.2 \
    or 20%. The lab takes a comma-separated list of mean loss rates to sweep (spread in bursts \
    with --burst) [lab default: 0,1%,5%,10%,20%,30%]";

/// `--seed`'s help, shared by the chat, the proxy and the lab.
pub const SEED_HELP: &str = "Seed of all impairment randomness: the same flags and seed give \
    every datagram the same fate (0 to 2^64-1) [default: random, printed at start; lab: 1, its \
    runs use SEED, SEED+1, ...]";

/// `--rate`'s help: it names the smallest rate, [`MIN_RATE`].
const RATE_HELP: &str = "Link rate: 1mbit, 500kbit, 64000bit, or bytes/s as 100kbps; at least \
    8kbit (a 1200-byte datagram then takes 1.2 s). Datagrams take bits/rate to serialize and wait \
    in a finite queue (--queue) [default: unlimited]";

/// The knobs of a link, the same for every command. Every knob is off unless given (the lab's
/// own defaults are said in the help texts).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = LINK_HEADING)]
pub struct LinkArgs {
    /// Fixed one-way delay: 30ms, 1s, 1.5s (a bare number is milliseconds) [default: 0; lab:
    /// 20ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub delay: Option<Duration>,
    /// Jitter: each datagram's delay is DELAY plus a uniform draw from [-JITTER, +JITTER], never
    /// below zero. Reorders datagrams, as netem does, unless --no-jitter-reorder [default: 0;
    /// lab: 5ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub jitter: Option<Duration>,
    /// Keep datagrams in order despite jitter (a datagram waits for the one before it).
    #[arg(long)]
    pub no_jitter_reorder: bool,
    /// Probability that a datagram is sent twice [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub duplicate: Option<Probability>,
    /// Probability that a datagram skips the delay and overtakes those queued (needs --delay or
    /// --rate to have an effect, as in netem) [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub reorder: Option<Probability>,
    /// Probability that a datagram has bits flipped (udpchat's CRC will reject it) [default: 0].
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub corrupt: Option<Probability>,
    /// How many distinct bits a corrupted datagram has flipped [default: 1].
    #[arg(long, value_name = "N", value_parser = parse_corrupt_bits, allow_hyphen_values = true)]
    pub corrupt_bits: Option<NonZeroU32>,
    #[arg(long, value_name = "BITS/S", value_parser = parse_rate, allow_hyphen_values = true,
          help = RATE_HELP)]
    pub rate: Option<BitRate>,
    /// The rate limiter's queue, tail drop when full: packets (100) or bytes (64kb, 1500b)
    /// [default: 1000 packets].
    #[arg(long, value_name = "N", value_parser = parse_queue, allow_hyphen_values = true)]
    pub queue: Option<QueueLimit>,
    /// Most datagrams held at once per direction, to bound memory [default: 10000].
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_hyphen_values = true)]
    pub limit: Option<NonZeroUsize>,
}

// The help text names the smallest rate; keep the two in step.
const _: () = assert!(MIN_RATE == 8_000);

impl LinkArgs {
    /// Sets, in `config`, every knob given as a flag; the others keep `config`'s values.
    pub fn apply(&self, config: &mut ImpairmentConfig) {
        let c = config;
        if let Some(v) = self.delay {
            c.delay = v;
        }
        if let Some(v) = self.jitter {
            c.jitter = v;
        }
        if self.no_jitter_reorder {
            c.jitter_reorders = false;
        }
        if let Some(v) = self.duplicate {
            c.duplicate = v;
        }
        if let Some(v) = self.reorder {
            c.reorder = v;
        }
        if let Some(v) = self.corrupt {
            c.corrupt = v;
        }
        if let Some(v) = self.corrupt_bits {
            c.corrupt_bits = v;
        }
        if let Some(v) = self.rate {
            c.rate = Some(v);
        }
        if let Some(v) = self.queue {
            c.queue = v;
        }
        if let Some(v) = self.limit {
            c.limit = v;
        }
    }

    /// Warnings about flags that will have no effect (a modifier without the knob it modifies),
    /// for the directions in use, each named (e.g. `up`, `outgoing`).
    pub fn warnings_for(&self, directions: &[(&str, ImpairmentConfig)]) -> Vec<String> {
        let mut warnings = Vec::new();
        let none = |inert: fn(&ImpairmentConfig) -> bool| directions.iter().all(|(_, c)| inert(c));
        for (name, c) in directions {
            if !c.reorder.is_zero() && c.delay.is_zero() && c.rate.is_none() {
                warnings.push(format!(
                    "{name}: reorder has no effect without a delay or a rate (nothing is queued \
                     for a datagram to overtake)"
                ));
            }
        }
        if self.queue.is_some() && none(|c| c.rate.is_none()) {
            warnings.push("--queue has no effect without a --rate".to_owned());
        }
        if self.corrupt_bits.is_some() && none(|c| c.corrupt.is_zero()) {
            warnings.push("--corrupt-bits has no effect without --corrupt".to_owned());
        }
        if self.no_jitter_reorder && none(|c| c.jitter.is_zero()) {
            warnings.push("--no-jitter-reorder has no effect without --jitter".to_owned());
        }
        warnings
    }
}

/// The impairment flags of `udpchat proxy` and `udpchat chat`: one loss rate, the link's knobs,
/// the seed and the per-direction overrides.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = LINK_HEADING)]
pub struct ImpairmentArgs {
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true,
          help = LOSS_HELP)]
    pub loss: Option<Probability>,
    /// Burst loss (Gilbert-Elliott): MEAN_LOSS,MEAN_BURST (e.g. 5%,3: 5% loss in bursts of 3
    /// on average) or netem's ge:P,R,LOSS_BAD,LOSS_GOOD (the last two optional).
    #[arg(long, value_name = "SPEC", allow_hyphen_values = true)]
    pub burst_loss: Option<GilbertElliott>,
    /// The knobs every command shares.
    #[command(flatten)]
    pub link: LinkArgs,
    #[arg(long, value_name = "N", value_parser = parse_seed, allow_hyphen_values = true,
          help = SEED_HELP)]
    pub seed: Option<u64>,
    /// Override one knob for the up direction (proxy: client to forward; chat: outgoing), as
    /// KNOB=VALUE, e.g. loss=10%. Repeatable.
    #[arg(long, value_name = "KNOB=VALUE")]
    pub up: Vec<KnobSetting>,
    /// Override one knob for the down direction (proxy: forward to client; chat: incoming), as
    /// KNOB=VALUE, e.g. delay=80ms. Repeatable.
    #[arg(long, value_name = "KNOB=VALUE")]
    pub down: Vec<KnobSetting>,
}

/// `udpchat chat`'s impairment flags: the shared ones, and whether incoming datagrams are
/// impaired too.
#[derive(Debug, Clone, Default, Args)]
pub struct ChatImpairmentArgs {
    /// The knobs (outgoing; `--down` overrides the incoming direction).
    #[command(flatten)]
    pub link: ImpairmentArgs,
    /// Impair incoming datagrams too, with the same knobs (overridden by --down KNOB=VALUE).
    /// Without it, only outgoing datagrams are impaired (unless --down is given).
    #[arg(long, help_heading = LINK_HEADING)]
    pub impair_incoming: bool,
}

/// The directions a chat's impairment resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatImpairment {
    /// Applied to outgoing datagrams.
    pub outgoing: ImpairmentConfig,
    /// Applied to incoming datagrams, if asked for.
    pub incoming: Option<ImpairmentConfig>,
    /// The seed.
    pub seed: u64,
}

impl ChatImpairment {
    /// Wraps `endpoint` so its traffic goes through these impairments.
    pub fn wrap<E: Endpoint>(&self, endpoint: E) -> ImpairedEndpoint<E> {
        ImpairedEndpoint::new(
            endpoint,
            self.outgoing.clone(),
            self.incoming.clone(),
            self.seed,
        )
    }

    /// One short label, e.g. `loss 30%, delay 20ms` or `out: loss 30%; in: delay 5ms`.
    pub fn label(&self) -> String {
        match &self.incoming {
            None => self.outgoing.describe(),
            Some(incoming) => format!(
                "out: {}; in: {}",
                self.outgoing.describe(),
                incoming.describe()
            ),
        }
    }

    /// Lines for the user saying what is impaired, e.g.
    /// `impairing outgoing datagrams: loss 30%, delay 20ms (seed 7)`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "impairing outgoing datagrams: {} (seed {})",
            self.outgoing.describe(),
            self.seed
        )];
        if let Some(incoming) = &self.incoming {
            lines.push(format!(
                "impairing incoming datagrams: {}",
                incoming.describe()
            ));
        }
        lines
    }
}

impl ChatImpairmentArgs {
    /// Warnings about flags that will have no effect (see [`ImpairmentArgs::warnings`]), for
    /// the directions the chat impairs.
    pub fn warnings(&self) -> Vec<String> {
        let mut directions = vec![("outgoing", self.link.up_config())];
        if self.impair_incoming || !self.link.down.is_empty() {
            directions.push(("incoming", self.link.down_config()));
        }
        self.link.warnings_for(&directions)
    }

    /// What to apply, or `None` if no impairment flag was given (the chat then runs unwrapped).
    pub fn resolve(&self) -> Option<ChatImpairment> {
        let incoming_asked = self.impair_incoming || !self.link.down.is_empty();
        let outgoing = self.link.up_config();
        let incoming = incoming_asked.then(|| self.link.down_config());
        let any = !outgoing.is_perfect() || incoming.as_ref().is_some_and(|c| !c.is_perfect());
        any.then(|| ChatImpairment {
            outgoing,
            incoming,
            seed: self.link.seed_or_random(),
        })
    }
}

impl ImpairmentArgs {
    /// The knobs given as plain flags (both directions, before overrides).
    pub fn base_config(&self) -> ImpairmentConfig {
        let mut c = ImpairmentConfig::default();
        if let Some(v) = self.loss {
            c.loss = v;
        }
        c.burst_loss = self.burst_loss;
        self.link.apply(&mut c);
        c
    }

    /// The up direction: the plain flags, then each `--up` in order.
    pub fn up_config(&self) -> ImpairmentConfig {
        let mut c = self.base_config();
        for setting in &self.up {
            setting.apply(&mut c);
        }
        c
    }

    /// The down direction: the plain flags, then each `--down` in order.
    pub fn down_config(&self) -> ImpairmentConfig {
        let mut c = self.base_config();
        for setting in &self.down {
            setting.apply(&mut c);
        }
        c
    }

    /// `--seed`, or a fresh random one (from the OS-seeded hasher keys std already has).
    pub fn seed_or_random(&self) -> u64 {
        self.seed
            .unwrap_or_else(|| RandomState::new().hash_one("udpchat impairment seed"))
    }

    /// Warnings about flags that will have no effect as configured (a modifier without the knob
    /// it modifies), for the proxy's two directions.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings_for(&[("up", self.up_config()), ("down", self.down_config())])
    }

    /// [`LinkArgs::warnings_for`], and a seed given where nothing is random.
    fn warnings_for(&self, directions: &[(&str, ImpairmentConfig)]) -> Vec<String> {
        let mut warnings = self.link.warnings_for(directions);
        if self.seed.is_some() && directions.iter().all(|(_, c)| !c.is_random()) {
            warnings.push("--seed has no effect: no knob draws random numbers".to_owned());
        }
        warnings
    }
}

fn parse_corrupt_bits(input: &str) -> Result<NonZeroU32, ParseError> {
    let n = parse_count(input)?;
    NonZeroU32::try_from(n).map_err(|_| ParseError::Count {
        input: input.to_owned(),
    })
}

fn parse_limit(input: &str) -> Result<NonZeroUsize, ParseError> {
    let n = parse_count(input)?;
    NonZeroUsize::try_from(n).map_err(|_| ParseError::Count {
        input: input.to_owned(),
    })
}

/// One `KNOB=VALUE` override.
#[derive(Debug, Clone, PartialEq)]
pub enum KnobSetting {
    /// `loss=P`
    Loss(Probability),
    /// `burst-loss=SPEC` or `burst-loss=none`
    BurstLoss(Option<GilbertElliott>),
    /// `delay=DURATION`
    Delay(Duration),
    /// `jitter=DURATION`
    Jitter(Duration),
    /// `jitter-reorder=yes|no`
    JitterReorder(bool),
    /// `duplicate=P`
    Duplicate(Probability),
    /// `reorder=P`
    Reorder(Probability),
    /// `corrupt=P`
    Corrupt(Probability),
    /// `corrupt-bits=N`
    CorruptBits(NonZeroU32),
    /// `rate=BITS/S` or `rate=none`
    Rate(Option<BitRate>),
    /// `queue=N`
    Queue(QueueLimit),
    /// `limit=N`
    Limit(NonZeroUsize),
}

impl KnobSetting {
    /// Sets this knob in `config`.
    pub fn apply(&self, config: &mut ImpairmentConfig) {
        match self {
            KnobSetting::Loss(v) => config.loss = *v,
            KnobSetting::BurstLoss(v) => config.burst_loss = *v,
            KnobSetting::Delay(v) => config.delay = *v,
            KnobSetting::Jitter(v) => config.jitter = *v,
            KnobSetting::JitterReorder(v) => config.jitter_reorders = *v,
            KnobSetting::Duplicate(v) => config.duplicate = *v,
            KnobSetting::Reorder(v) => config.reorder = *v,
            KnobSetting::Corrupt(v) => config.corrupt = *v,
            KnobSetting::CorruptBits(v) => config.corrupt_bits = *v,
            KnobSetting::Rate(v) => config.rate = *v,
            KnobSetting::Queue(v) => config.queue = *v,
            KnobSetting::Limit(v) => config.limit = *v,
        }
    }
}

const KNOBS: &str = "loss, burst-loss, delay, jitter, jitter-reorder, duplicate, reorder, \
                     corrupt, corrupt-bits, rate, queue, limit";

impl FromStr for KnobSetting {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<KnobSetting, ParseError> {
        let fail = |reason: String| ParseError::Override {
            input: input.to_owned(),
            reason,
        };
        let Some((knob, value)) = input.split_once('=') else {
            return Err(fail(format!(
                "expected KNOB=VALUE with KNOB one of: {KNOBS}"
            )));
        };
        let value = value.trim();
        let off = matches!(value, "none" | "off");
        let setting = match knob.trim() {
            "loss" => KnobSetting::Loss(parse_probability(value)?),
            "burst-loss" if off => KnobSetting::BurstLoss(None),
            "burst-loss" => KnobSetting::BurstLoss(Some(value.parse()?)),
            "delay" => KnobSetting::Delay(parse_duration(value)?),
            "jitter" => KnobSetting::Jitter(parse_duration(value)?),
            "jitter-reorder" => KnobSetting::JitterReorder(match value {
                "yes" | "on" | "true" => true,
                "no" | "off" | "false" => false,
                _ => return Err(fail("jitter-reorder takes yes or no".to_owned())),
            }),
            "duplicate" => KnobSetting::Duplicate(parse_probability(value)?),
            "reorder" => KnobSetting::Reorder(parse_probability(value)?),
            "corrupt" => KnobSetting::Corrupt(parse_probability(value)?),
            "corrupt-bits" => KnobSetting::CorruptBits(parse_corrupt_bits(value)?),
            "rate" if off => KnobSetting::Rate(None),
            "rate" => KnobSetting::Rate(Some(parse_rate(value)?)),
            "queue" => KnobSetting::Queue(parse_queue(value)?),
            "limit" => KnobSetting::Limit(parse_limit(value)?),
            other => return Err(fail(format!("unknown knob {other:?}; knobs are: {KNOBS}"))),
        };
        Ok(setting)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        chat: ChatImpairmentArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
    }

    #[test]
    fn plain_flags_set_both_directions() {
        let cli = parse(&["--loss", "30%", "--delay", "20ms", "--jitter", "5ms"]).unwrap();
        let link = &cli.chat.link;
        assert_eq!(link.up_config(), link.down_config());
        assert_eq!(link.up_config().loss.get(), 0.3);
        assert_eq!(link.up_config().delay, Duration::from_millis(20));
        assert!(link.up_config().jitter_reorders);
    }

    #[test]
    fn overrides_change_one_direction_in_order() {
        let cli = parse(&[
            "--loss",
            "10%",
            "--down",
            "loss=50%",
            "--down",
            "rate=1mbit",
            "--up",
            "delay=1s",
            "--up",
            "delay=2s",
            "--down",
            "burst-loss=5%,3",
        ])
        .unwrap();
        let link = &cli.chat.link;
        let (up, down) = (link.up_config(), link.down_config());
        assert_eq!(up.loss.get(), 0.1);
        assert_eq!(up.delay, Duration::from_secs(2));
        assert_eq!(up.rate, None);
        assert_eq!(down.loss.get(), 0.5);
        assert_eq!(down.rate.unwrap().bits_per_second(), 1_000_000);
        assert!(down.burst_loss.is_some());
        assert_eq!(down.delay, Duration::ZERO);
    }

    #[test]
    fn bad_values_are_usage_errors_that_say_why() {
        for (args, needle) in [
            (&["--loss", "150%"][..], "between 0 and 1"),
            (&["--loss", "lots"][..], "e.g. 0.2 or 20%"),
            (&["--delay", "soon"][..], "30ms"),
            (&["--rate", "fast"][..], "1mbit"),
            (&["--burst-loss", "5%"][..], "mean burst"),
            (&["--up", "speed=3"][..], "unknown knob"),
            (&["--down", "loss"][..], "KNOB=VALUE"),
            (&["--down", "loss=2"][..], "between 0 and 1"),
            (&["--queue", "0"][..], "queue"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
            let text = err.to_string();
            assert!(text.contains(needle), "{args:?}: {text}");
        }
    }

    #[test]
    fn negative_values_reach_the_parser_and_are_named_as_negative() {
        for args in [
            &["--delay", "-5ms"][..],
            &["--jitter", "-1ms"][..],
            &["--rate", "-1"][..],
            &["--seed", "-1"][..],
            &["--queue", "-3"][..],
            &["--limit", "-3"][..],
            &["--corrupt-bits", "-1"][..],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
            let text = err.to_string();
            assert!(text.contains(&format!("for '{} <", args[0])), "{text}");
            assert!(text.contains("cannot be negative"), "{text}");
        }
        let text = parse(&["--loss", "-5%"]).unwrap_err().to_string();
        assert!(
            text.contains("'--loss <P>'") && text.contains("between 0 and 1"),
            "{text}"
        );
    }

    #[test]
    fn rates_too_slow_to_carry_a_datagram_are_refused() {
        for args in [&["--rate", "1bit"][..], &["--up", "rate=7kbit"][..]] {
            let text = parse(args).unwrap_err().to_string();
            assert!(text.contains("8kbit"), "{text}");
        }
        assert!(parse(&["--rate", "8kbit"]).is_ok());
    }

    /// Every flag that chat, proxy and lab share has one help text, whichever command shows it.
    #[test]
    fn shared_flags_have_the_same_help_everywhere() {
        use clap::CommandFactory;
        let mut cli = crate::Cli::command();
        cli.build();
        let help = |sub: &str, flag: &str| {
            cli.find_subcommand(sub)
                .and_then(|c| c.get_arguments().find(|a| a.get_long() == Some(flag)))
                .map(|a| a.get_help().map(ToString::to_string).unwrap_or_default())
        };
        let shared = [
            "loss",
            "delay",
            "jitter",
            "no-jitter-reorder",
            "duplicate",
            "reorder",
            "corrupt",
            "corrupt-bits",
            "rate",
            "queue",
            "limit",
            "seed",
        ];
        for flag in shared {
            let chat = help("chat", flag);
            assert!(
                chat.as_ref().is_some_and(|h| !h.is_empty()),
                "chat --{flag}"
            );
            assert_eq!(chat, help("proxy", flag), "--{flag}: chat vs proxy");
            assert_eq!(chat, help("lab", flag), "--{flag}: chat vs lab");
        }
    }

    #[test]
    fn chat_without_flags_is_not_impaired() {
        assert_eq!(parse(&[]).unwrap().chat.resolve(), None);
        // A seed alone changes nothing either.
        assert_eq!(parse(&["--seed", "4"]).unwrap().chat.resolve(), None);
    }

    #[test]
    fn chat_impairs_incoming_only_when_asked() {
        let out_only = parse(&["--loss", "30%", "--seed", "9"])
            .unwrap()
            .chat
            .resolve()
            .unwrap();
        assert_eq!(out_only.incoming, None);
        assert_eq!(out_only.label(), "loss 30%");
        assert_eq!(out_only.seed, 9);
        let both = parse(&["--loss", "30%", "--impair-incoming"])
            .unwrap()
            .chat
            .resolve()
            .unwrap();
        assert_eq!(both.incoming.as_ref(), Some(&both.outgoing));
        assert_eq!(both.label(), "out: loss 30%; in: loss 30%");
        let down_only = parse(&["--down", "delay=40ms"])
            .unwrap()
            .chat
            .resolve()
            .unwrap();
        assert!(down_only.outgoing.is_perfect());
        assert_eq!(down_only.incoming.unwrap().delay, Duration::from_millis(40));
    }

    #[test]
    fn flags_without_effect_are_warned_about() {
        let warnings = |args: &[&str]| parse(args).unwrap().chat.warnings();
        assert_eq!(warnings(&["--reorder", "10%"]).len(), 1);
        assert!(warnings(&["--reorder", "10%", "--delay", "10ms"]).is_empty());
        assert_eq!(
            warnings(&["--queue", "10"]),
            ["--queue has no effect without a --rate"]
        );
        assert!(warnings(&["--queue", "10", "--down", "rate=1mbit"]).is_empty());
        assert_eq!(warnings(&["--corrupt-bits", "2"]).len(), 1);
        assert_eq!(
            warnings(&["--no-jitter-reorder", "--delay", "5ms"]).len(),
            1
        );
        assert_eq!(warnings(&["--seed", "3", "--delay", "5ms"]).len(), 1);
        assert!(warnings(&["--seed", "3", "--loss", "1%"]).is_empty());
        // The proxy impairs both directions: a knob in either one counts.
        let cli = parse(&["--queue", "10", "--up", "rate=1mbit"]).unwrap();
        assert!(cli.chat.link.warnings().is_empty());
    }
}
