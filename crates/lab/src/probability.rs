//! A validated probability: a number in `[0, 1]`, checked once where it enters the program.
//!
//! Every knob of the impairment model that says "how often" is a [`Probability`], so a loss of
//! `1.3` or `NaN` cannot reach the model: it is refused with a typed error at the edge (the CLI
//! flag parser, a config file, a test). Sampling draws one uniform `f64` in `[0, 1)` from the
//! caller's RNG, so `0` never fires and `1` always does.

use std::fmt;

use rand::Rng;
use serde::Serialize;
use thiserror::Error;

/// A probability in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize)]
#[serde(transparent)]
pub struct Probability(f64);

/// Why a number is not a probability.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum ProbabilityError {
    /// The number is NaN.
    #[error("a probability must be a number, not NaN")]
    NotANumber,
    /// The number is below 0 or above 1.
    #[error("a probability must be between 0 and 1 (0% and 100%), got {0}")]
    OutOfRange(f64),
}

impl Probability {
    /// Never.
    pub const ZERO: Probability = Probability(0.0);
    /// Always.
    pub const ONE: Probability = Probability(1.0);

    /// Checks that `p` is in `[0, 1]`.
    pub fn new(p: f64) -> Result<Probability, ProbabilityError> {
        if p.is_nan() {
            Err(ProbabilityError::NotANumber)
        } else if !(0.0..=1.0).contains(&p) {
            Err(ProbabilityError::OutOfRange(p))
        } else {
            Ok(Probability(p))
        }
    }

    /// The probability as a number in `[0, 1]`.
    pub fn get(self) -> f64 {
        self.0
    }

    /// True if this probability is zero (the knob is off).
    pub fn is_zero(self) -> bool {
        self.0 == 0.0
    }

    /// `1 - p`.
    pub fn complement(self) -> Probability {
        Probability(1.0 - self.0)
    }

    /// Draws once: true with probability `p`. Always consumes exactly one `f64` from `rng`, so
    /// the stream position does not depend on the value of `p`.
    pub fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> bool {
        rng.random::<f64>() < self.0
    }
}

impl fmt::Display for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rounded to a millionth of a percent so 0.3 shows as "30%", not "30.000000000000004%".
        let percent = (self.0 * 100.0 * 1e6).round() / 1e6;
        write!(f, "{percent}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn accepts_the_closed_unit_interval() {
        assert_eq!(Probability::new(0.0).map(Probability::get), Ok(0.0));
        assert_eq!(Probability::new(1.0).map(Probability::get), Ok(1.0));
        assert_eq!(Probability::new(0.25).map(Probability::get), Ok(0.25));
    }

    #[test]
    fn refuses_nan_and_out_of_range() {
        assert_eq!(
            Probability::new(f64::NAN),
            Err(ProbabilityError::NotANumber)
        );
        assert_eq!(
            Probability::new(-0.1),
            Err(ProbabilityError::OutOfRange(-0.1))
        );
        assert_eq!(
            Probability::new(1.01),
            Err(ProbabilityError::OutOfRange(1.01))
        );
        assert!(Probability::new(f64::INFINITY).is_err());
    }

    #[test]
    fn zero_never_fires_and_one_always_does() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..10_000 {
            assert!(!Probability::ZERO.sample(&mut rng));
            assert!(Probability::ONE.sample(&mut rng));
        }
    }

    #[test]
    fn displays_as_percent() {
        assert_eq!(
            Probability::new(0.3).map(|p| p.to_string()).ok().as_deref(),
            Some("30%")
        );
    }
}
