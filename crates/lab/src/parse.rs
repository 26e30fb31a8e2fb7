//! Parsers for the values people type: probabilities, durations, bit rates and queue sizes.
//!
//! These are the edge where text becomes validated values, shared by the CLI flags (the binary's
//! clap flags call them as value parsers, so a bad value is a usage error with exit code 2), the
//! per-direction override syntax and the tests. They are plain functions: the lab itself does
//! not depend on clap. Each failure is a [`ParseError`] whose message says what was expected,
//! with an example; a negative value is named as such.
//!
//! Accepted forms:
//! - probability: `0.2`, `20%`, `0.5%`
//! - duration: `30ms`, `1s`, `1.5s`, `250us`, `2m`; a bare number is milliseconds (`30` = 30 ms),
//!   as netem's users expect from `--delay MS`
//! - bit rate: `1mbit`, `500kbit`, `2gbit`, `64000bit` or `64000` (bits per second), or bytes per
//!   second as `100kbps`/`1mbps`/`500bps` (tc's spelling: `bps` is *bytes* per second); k/m/g are
//!   powers of 1000; at least [`MIN_RATE`] (8 kbit/s)
//! - queue limit: `100` (packets), `100p`, or bytes as `64kb`, `1500b`, `1mb` (powers of 1000)
//! - seed: a whole number from 0 to 2^64-1

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::probability::{Probability, ProbabilityError};

/// The slowest link rate a user may ask for, in bits per second: 8 kbit/s (1000 bytes/s), so a
/// default-sized datagram of 1200 bytes takes 1.2 s to serialize. Below it a chat's lines take
/// minutes to cross and a piped chat minutes to exit, which is never what was meant (`1bit` is
/// a typo for `1mbit`). [`BitRate::from_bits_per_second`] itself takes any positive rate, for
/// tests and benches that want one.
pub const MIN_RATE: u64 = 8_000;

/// Why a value could not be parsed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParseError {
    /// A negative number where only zero or more makes sense.
    #[error("invalid {what} {input:?}: it cannot be negative")]
    Negative {
        /// What kind of value it is (`duration`, `rate`, ...).
        what: &'static str,
        /// What was typed.
        input: String,
    },
    /// Not a probability.
    #[error("invalid probability {input:?}: expected a number in 0..1 or a percentage (e.g. 0.2 or 20%)")]
    Probability {
        /// What was typed.
        input: String,
    },
    /// A number outside 0..1 / 0%..100%.
    #[error("invalid probability {input:?}: {source}")]
    ProbabilityRange {
        /// What was typed.
        input: String,
        /// What is wrong with it.
        source: ProbabilityError,
    },
    /// Not a duration.
    #[error("invalid duration {input:?}: expected a number with a unit, e.g. 30ms, 1s, 1.5s, 250us (a bare number means milliseconds)")]
    Duration {
        /// What was typed.
        input: String,
    },
    /// Not a bit rate.
    #[error("invalid rate {input:?}: expected a positive rate such as 1mbit, 500kbit, 64000bit (bits/s) or 100kbps (bytes/s)")]
    Rate {
        /// What was typed.
        input: String,
    },
    /// A rate below [`MIN_RATE`].
    #[error("invalid rate {input:?}: the slowest link udpchat simulates is 8kbit (1000 bytes/s); did you mean mbit or kbit?")]
    RateTooLow {
        /// What was typed.
        input: String,
    },
    /// Not a seed.
    #[error("invalid seed {input:?}: expected a whole number from 0 to 18446744073709551615")]
    Seed {
        /// What was typed.
        input: String,
    },
    /// Not a queue limit.
    #[error("invalid queue limit {input:?}: expected a positive packet count (e.g. 100) or a byte size (e.g. 64kb, 1500b)")]
    Queue {
        /// What was typed.
        input: String,
    },
    /// Not a positive count.
    #[error("invalid count {input:?}: expected a positive whole number")]
    Count {
        /// What was typed.
        input: String,
    },
    /// A malformed burst-loss specification.
    #[error("invalid burst loss {input:?}: {reason}; expected MEAN_LOSS,MEAN_BURST (e.g. 5%,3) or ge:P,R[,LOSS_BAD[,LOSS_GOOD]] (e.g. ge:1%,30%)")]
    BurstLoss {
        /// What was typed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed per-direction override list.
    #[error("invalid direction override {input:?}: {reason}")]
    Override {
        /// What was typed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses `0.2` or `20%` into a [`Probability`].
pub fn parse_probability(input: &str) -> Result<Probability, ParseError> {
    let text = input.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (text, 1.0),
    };
    let value: f64 = number.parse().map_err(|_| ParseError::Probability {
        input: input.to_owned(),
    })?;
    Probability::new(value / scale).map_err(|source| ParseError::ProbabilityRange {
        input: input.to_owned(),
        source,
    })
}

/// Parses `30ms`, `1s`, `1.5s`, `250us`, `2m`, or a bare number of milliseconds.
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    refuse_negative("duration", input)?;
    let err = || ParseError::Duration {
        input: input.to_owned(),
    };
    let text = input.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| err())?;
    let seconds_per_unit = match unit.trim() {
        "" | "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| err())
}

/// A link rate in bits per second, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BitRate(NonZeroU64);

impl BitRate {
    /// A rate of `bits` bits per second, if not zero.
    pub fn from_bits_per_second(bits: u64) -> Option<BitRate> {
        NonZeroU64::new(bits).map(BitRate)
    }

    /// Bits per second.
    pub fn bits_per_second(self) -> u64 {
        self.0.get()
    }

    /// How long `bytes` bytes take to serialize onto the link at this rate.
    pub fn transmission_time(self, bytes: usize) -> Duration {
        let bits = bytes as u128 * 8;
        let nanos = bits * 1_000_000_000 / u128::from(self.0.get());
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl FromStr for BitRate {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<BitRate, ParseError> {
        refuse_negative("rate", input)?;
        let err = || ParseError::Rate {
            input: input.to_owned(),
        };
        let text = input.trim().to_ascii_lowercase();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().map_err(|_| err())?;
        let bits_per_unit = match unit.trim() {
            "" | "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            "bps" => 8.0,
            "kbps" => 8e3,
            "mbps" => 8e6,
            "gbps" => 8e9,
            _ => return Err(err()),
        };
        let bits = (value * bits_per_unit).round();
        if !bits.is_finite() || bits < 1.0 || bits > u64::MAX as f64 {
            return Err(err());
        }
        if bits < MIN_RATE as f64 {
            return Err(ParseError::RateTooLow {
                input: input.to_owned(),
            });
        }
        BitRate::from_bits_per_second(bits as u64).ok_or_else(err)
    }
}

impl fmt::Display for BitRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0.get();
        if bits % 1_000_000_000 == 0 {
            write!(f, "{}gbit", bits / 1_000_000_000)
        } else if bits % 1_000_000 == 0 {
            write!(f, "{}mbit", bits / 1_000_000)
        } else if bits % 1_000 == 0 {
            write!(f, "{}kbit", bits / 1_000)
        } else {
            write!(f, "{bits}bit")
        }
    }
}

/// How much a finite queue holds before it drops the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueLimit {
    /// At most this many datagrams.
    Packets(NonZeroU64),
    /// At most this many bytes of datagrams.
    Bytes(NonZeroU64),
}

impl QueueLimit {
    /// A limit of `n` packets, if not zero.
    pub fn packets(n: u64) -> Option<QueueLimit> {
        NonZeroU64::new(n).map(QueueLimit::Packets)
    }

    /// A limit of `n` bytes, if not zero.
    pub fn bytes(n: u64) -> Option<QueueLimit> {
        NonZeroU64::new(n).map(QueueLimit::Bytes)
    }

    /// True if a queue holding `packets` datagrams of `bytes` bytes in all has no room for one
    /// more of `len` bytes.
    pub fn is_full(self, packets: usize, bytes: usize, len: usize) -> bool {
        match self {
            QueueLimit::Packets(max) => packets as u64 >= max.get(),
            QueueLimit::Bytes(max) => (bytes + len) as u64 > max.get(),
        }
    }
}

impl FromStr for QueueLimit {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<QueueLimit, ParseError> {
        refuse_negative("queue limit", input)?;
        let err = || ParseError::Queue {
            input: input.to_owned(),
        };
        let text = input.trim().to_ascii_lowercase();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: u64 = number.parse().map_err(|_| err())?;
        let limit = match unit.trim() {
            "" | "p" | "packets" => QueueLimit::packets(value),
            "b" => QueueLimit::bytes(value),
            "kb" => value.checked_mul(1_000).and_then(QueueLimit::bytes),
            "mb" => value.checked_mul(1_000_000).and_then(QueueLimit::bytes),
            _ => None,
        };
        limit.ok_or_else(err)
    }
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueLimit::Packets(n) => write!(f, "{n} packets"),
            QueueLimit::Bytes(n) => write!(f, "{n} bytes"),
        }
    }
}

/// Parses a positive whole number (for counts such as `--corrupt-bits`).
pub fn parse_count(input: &str) -> Result<NonZeroU64, ParseError> {
    refuse_negative("count", input)?;
    input
        .trim()
        .parse::<NonZeroU64>()
        .map_err(|_| ParseError::Count {
            input: input.to_owned(),
        })
}

/// Parses a seed: a whole number from 0 to 2^64-1.
pub fn parse_seed(input: &str) -> Result<u64, ParseError> {
    refuse_negative("seed", input)?;
    input.trim().parse().map_err(|_| ParseError::Seed {
        input: input.to_owned(),
    })
}

/// A [`ParseError::Negative`] if `input` is a number with a minus sign, so that `-5ms` is
/// refused for what it is rather than as an unknown unit.
fn refuse_negative(what: &'static str, input: &str) -> Result<(), ParseError> {
    match input.trim().strip_prefix('-') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
            Err(ParseError::Negative {
                what,
                input: input.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// Parses a [`BitRate`] (for clap's `value_parser`).
pub fn parse_rate(input: &str) -> Result<BitRate, ParseError> {
    input.parse()
}

/// Parses a [`QueueLimit`] (for clap's `value_parser`).
pub fn parse_queue(input: &str) -> Result<QueueLimit, ParseError> {
    input.parse()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn probabilities_as_fraction_or_percent() {
        assert_eq!(parse_probability("0.2").unwrap().get(), 0.2);
        assert_eq!(parse_probability("20%").unwrap().get(), 0.2);
        assert_eq!(parse_probability(" 0.5% ").unwrap().get(), 0.005);
        assert_eq!(parse_probability("100%").unwrap().get(), 1.0);
        assert_eq!(parse_probability("0").unwrap().get(), 0.0);
    }

    #[test]
    fn bad_probabilities_say_why() {
        assert!(matches!(
            parse_probability("abc"),
            Err(ParseError::Probability { .. })
        ));
        assert!(matches!(
            parse_probability("120%"),
            Err(ParseError::ProbabilityRange { .. })
        ));
        assert!(matches!(
            parse_probability("-0.1"),
            Err(ParseError::ProbabilityRange { .. })
        ));
        assert!(parse_probability("NaN").is_err());
        let message = parse_probability("2").unwrap_err().to_string();
        assert!(message.contains("between 0 and 1"), "{message}");
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("30ms").unwrap(), Duration::from_millis(30));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_millis(30));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "ms", "5 parsecs", "1e400s", "1.2.3s", "-ms"] {
            assert!(
                matches!(parse_duration(bad), Err(ParseError::Duration { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn negative_values_are_named_as_negative() {
        for (result, what) in [
            (parse_duration("-5ms").map(|_| ()), "duration"),
            (parse_duration(" -0.5s").map(|_| ()), "duration"),
            (parse_rate("-1").map(|_| ()), "rate"),
            (parse_rate("-1mbit").map(|_| ()), "rate"),
            (parse_queue("-1").map(|_| ()), "queue limit"),
            (parse_count("-3").map(|_| ()), "count"),
            (parse_seed("-1").map(|_| ()), "seed"),
        ] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, ParseError::Negative { what: w, .. } if w == what),
                "{err:?}"
            );
            assert!(err.to_string().contains("cannot be negative"), "{err}");
        }
    }

    #[test]
    fn seeds_are_whole_numbers_of_64_bits() {
        assert_eq!(parse_seed("0").unwrap(), 0);
        assert_eq!(parse_seed("18446744073709551615").unwrap(), u64::MAX);
        for bad in ["18446744073709551616", "1.5", "x", ""] {
            assert!(
                matches!(parse_seed(bad), Err(ParseError::Seed { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn rates_below_the_minimum_are_refused() {
        assert_eq!(parse_rate("8kbit").unwrap().bits_per_second(), MIN_RATE);
        assert_eq!(parse_rate("1000bps").unwrap().bits_per_second(), MIN_RATE);
        for slow in ["1bit", "1", "7999", "7.9kbit", "999bps"] {
            assert!(
                matches!(parse_rate(slow), Err(ParseError::RateTooLow { .. })),
                "{slow:?} was accepted"
            );
        }
    }

    #[test]
    fn rates_in_bits_and_bytes() {
        assert_eq!(parse_rate("1mbit").unwrap().bits_per_second(), 1_000_000);
        assert_eq!(parse_rate("500kbit").unwrap().bits_per_second(), 500_000);
        assert_eq!(parse_rate("1.5mbit").unwrap().bits_per_second(), 1_500_000);
        assert_eq!(parse_rate("64000").unwrap().bits_per_second(), 64_000);
        assert_eq!(parse_rate("100kbps").unwrap().bits_per_second(), 800_000);
        assert_eq!(parse_rate("1MBit").unwrap().to_string(), "1mbit");
    }

    #[test]
    fn bad_rates_are_refused() {
        for bad in ["0", "0kbit", "fast", "10furlongs", ""] {
            assert!(
                matches!(parse_rate(bad), Err(ParseError::Rate { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn transmission_time_is_bits_over_rate() {
        let rate = parse_rate("1mbit").unwrap();
        // 1250 bytes = 10 000 bits = 10 ms at 1 Mbit/s.
        assert_eq!(rate.transmission_time(1250), Duration::from_millis(10));
    }

    #[test]
    fn queue_limits_in_packets_or_bytes() {
        assert_eq!(
            parse_queue("100").unwrap(),
            QueueLimit::packets(100).unwrap()
        );
        assert_eq!(parse_queue("7p").unwrap(), QueueLimit::packets(7).unwrap());
        assert_eq!(
            parse_queue("64kb").unwrap(),
            QueueLimit::bytes(64_000).unwrap()
        );
        assert_eq!(
            parse_queue("1500b").unwrap(),
            QueueLimit::bytes(1500).unwrap()
        );
        for bad in ["0", "0kb", "-1", "lots", "5gb"] {
            assert!(parse_queue(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn queue_fullness() {
        let packets = QueueLimit::packets(2).unwrap();
        assert!(!packets.is_full(1, 10_000, 100));
        assert!(packets.is_full(2, 0, 1));
        let bytes = QueueLimit::bytes(1000).unwrap();
        assert!(!bytes.is_full(5, 900, 100));
        assert!(bytes.is_full(0, 901, 100));
    }
}
