//! Burst loss: the Gilbert–Elliott two-state channel.
//!
//! Real links lose packets in bursts (a Wi-Fi fade, a full router queue), which hurts a transport
//! far more than the same average loss spread evenly. The Gilbert–Elliott model captures that
//! with a two-state Markov chain: in the *good* state packets are lost with a small probability,
//! in the *bad* state with a large one, and after each packet the channel moves good→bad with
//! probability `p` and bad→good with probability `r`. It is the model behind netem's
//! `loss gemodel p r 1-h 1-k`; the parameters here are named and ordered the same way.
//!
//! Most people think in "mean loss and mean burst length" instead; [`GilbertElliott::from_mean`]
//! converts: with loss only in the bad state (the simple Gilbert model), bursts last `1/r`
//! packets on average and the long-run loss is `p / (p + r)`.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::Serialize;
use thiserror::Error;

use crate::parse::{parse_probability, ParseError};
use crate::probability::Probability;

/// The parameters of a Gilbert–Elliott channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GilbertElliott {
    /// Probability of moving good → bad after a packet (netem's `p`).
    pub p: Probability,
    /// Probability of moving bad → good after a packet (netem's `r`).
    pub r: Probability,
    /// Loss probability in the bad state (netem's `1-h`); 100% in the simple Gilbert model.
    pub loss_bad: Probability,
    /// Loss probability in the good state (netem's `1-k`); 0% in the simple Gilbert model.
    pub loss_good: Probability,
}

/// Why a mean-loss/mean-burst pair has no Gilbert–Elliott channel.
#[derive(Debug, Clone, Copy, PartialEq, Error)]
pub enum GilbertElliottError {
    /// Bursts shorter than one packet do not exist.
    #[error("the mean burst length must be at least 1 packet, got {0}")]
    BurstTooShort(f64),
    /// 100% loss has no bursts (the channel never leaves the bad state).
    #[error("the mean loss must be below 100% for a burst model")]
    LossTooHigh,
    /// The mean loss is too high for bursts this short: the channel would have to enter the bad
    /// state more often than after every good packet.
    #[error("a mean loss of {loss} with bursts of {burst} packets is impossible: with bursts that short the loss can be at most {max}")]
    Unreachable {
        /// The requested mean loss.
        loss: Probability,
        /// The requested mean burst length.
        burst: f64,
        /// The most loss reachable with that burst length.
        max: Probability,
    },
}

impl GilbertElliott {
    /// The simple Gilbert channel with long-run loss `mean_loss` and bursts of `mean_burst`
    /// consecutive losses on average: `r = 1 / mean_burst`, `p = mean_loss * r / (1 - mean_loss)`,
    /// loss 100% in the bad state and 0% in the good one.
    pub fn from_mean(
        mean_loss: Probability,
        mean_burst: f64,
    ) -> Result<GilbertElliott, GilbertElliottError> {
        if mean_burst.is_nan() || mean_burst < 1.0 {
            return Err(GilbertElliottError::BurstTooShort(mean_burst));
        }
        if mean_loss.get() >= 1.0 {
            return Err(GilbertElliottError::LossTooHigh);
        }
        let r = 1.0 / mean_burst;
        let p = mean_loss.get() * r / (1.0 - mean_loss.get());
        let p = Probability::new(p).map_err(|_| GilbertElliottError::Unreachable {
            loss: mean_loss,
            burst: mean_burst,
            // p <= 1 <=> loss <= 1 / (1 + r) = burst / (burst + 1).
            max: Probability::new(mean_burst / (mean_burst + 1.0)).unwrap_or(Probability::ONE),
        })?;
        Ok(GilbertElliott {
            p,
            r: Probability::new(r).unwrap_or(Probability::ONE),
            loss_bad: Probability::ONE,
            loss_good: Probability::ZERO,
        })
    }

    /// The long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        let (p, r) = (self.p.get(), self.r.get());
        if p + r == 0.0 {
            // The chain never moves: it stays in the good state it starts in.
            return self.loss_good.get();
        }
        let bad = p / (p + r);
        bad * self.loss_bad.get() + (1.0 - bad) * self.loss_good.get()
    }

    /// Mean number of packets the channel stays in the bad state once it gets there.
    pub fn mean_bad_run(&self) -> f64 {
        1.0 / self.r.get()
    }
}

impl FromStr for GilbertElliott {
    type Err = ParseError;

    /// `MEAN_LOSS,MEAN_BURST` (e.g. `5%,3`) or `ge:P,R[,LOSS_BAD[,LOSS_GOOD]]` (netem's order).
    fn from_str(input: &str) -> Result<GilbertElliott, ParseError> {
        let fail = |reason: String| ParseError::BurstLoss {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim();
        if let Some(params) = text.strip_prefix("ge:") {
            let parts: Vec<&str> = params.split(',').collect();
            if !(2..=4).contains(&parts.len()) {
                return Err(fail("ge: takes 2 to 4 probabilities".to_owned()));
            }
            let mut probs = Vec::with_capacity(parts.len());
            for part in parts {
                probs.push(parse_probability(part).map_err(|e| fail(e.to_string()))?);
            }
            Ok(GilbertElliott {
                p: probs[0],
                r: probs[1],
                loss_bad: probs.get(2).copied().unwrap_or(Probability::ONE),
                loss_good: probs.get(3).copied().unwrap_or(Probability::ZERO),
            })
        } else {
            let Some((loss, burst)) = text.split_once(',') else {
                return Err(fail("missing the mean burst length".to_owned()));
            };
            let loss = parse_probability(loss).map_err(|e| fail(e.to_string()))?;
            let burst: f64 = burst
                .trim()
                .parse()
                .map_err(|_| fail(format!("{:?} is not a number of packets", burst.trim())))?;
            GilbertElliott::from_mean(loss, burst).map_err(|e| fail(e.to_string()))
        }
    }
}

impl fmt::Display for GilbertElliott {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ge:{},{},{},{}",
            self.p, self.r, self.loss_bad, self.loss_good
        )
    }
}

/// Which state a Gilbert–Elliott channel is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelState {
    /// Few or no losses. Every channel starts here.
    #[default]
    Good,
    /// Many or all packets lost.
    Bad,
}

impl GilbertElliott {
    /// Decides the fate of one packet in `state` and moves the chain on. Returns true if the
    /// packet is lost. Always draws two numbers, so streams stay aligned whatever the outcome.
    pub fn step<R: Rng + ?Sized>(&self, state: &mut ChannelState, rng: &mut R) -> bool {
        let (loss, leave) = match state {
            ChannelState::Good => (self.loss_good, self.p),
            ChannelState::Bad => (self.loss_bad, self.r),
        };
        let lost = loss.sample(rng);
        if leave.sample(rng) {
            *state = match state {
                ChannelState::Good => ChannelState::Bad,
                ChannelState::Bad => ChannelState::Good,
            };
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn prob(p: f64) -> Probability {
        Probability::new(p).unwrap()
    }

    #[test]
    fn from_mean_solves_for_p_and_r() {
        let ge = GilbertElliott::from_mean(prob(0.1), 4.0).unwrap();
        assert!((ge.r.get() - 0.25).abs() < 1e-12);
        assert!((ge.p.get() - 0.1 * 0.25 / 0.9).abs() < 1e-12);
        assert!((ge.mean_loss() - 0.1).abs() < 1e-12);
        assert!((ge.mean_bad_run() - 4.0).abs() < 1e-12);
    }

    #[test]
    fn from_mean_refuses_impossible_channels() {
        assert_eq!(
            GilbertElliott::from_mean(prob(0.1), 0.5),
            Err(GilbertElliottError::BurstTooShort(0.5))
        );
        assert_eq!(
            GilbertElliott::from_mean(Probability::ONE, 3.0),
            Err(GilbertElliottError::LossTooHigh)
        );
        // Bursts of 1 packet allow at most 50% loss.
        assert!(matches!(
            GilbertElliott::from_mean(prob(0.6), 1.0),
            Err(GilbertElliottError::Unreachable { .. })
        ));
    }

    #[test]
    fn parses_both_forms() {
        let simple: GilbertElliott = "5%,3".parse().unwrap();
        assert!((simple.mean_loss() - 0.05).abs() < 1e-12);
        assert!((simple.mean_bad_run() - 3.0).abs() < 1e-12);
        let full: GilbertElliott = "ge:1%,30%,90%,0.1%".parse().unwrap();
        assert_eq!(full.p, prob(0.01));
        assert_eq!(full.r, prob(0.3));
        assert_eq!(full.loss_bad, prob(0.9));
        assert_eq!(full.loss_good, prob(0.001));
        let short: GilbertElliott = "ge:0.01,0.3".parse().unwrap();
        assert_eq!(short.loss_bad, Probability::ONE);
        assert_eq!(short.loss_good, Probability::ZERO);
    }

    #[test]
    fn bad_specs_are_refused_with_reasons() {
        for bad in [
            "5%",
            "5%,x",
            "ge:1%",
            "ge:1%,2%,3%,4%,5%",
            "ge:1%,200%",
            "90%,1",
        ] {
            let err = bad.parse::<GilbertElliott>().unwrap_err();
            assert!(
                matches!(err, ParseError::BurstLoss { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn chain_without_loss_in_good_state_only_loses_in_bad() {
        let ge = GilbertElliott::from_mean(prob(0.2), 5.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut state = ChannelState::Good;
        for _ in 0..10_000 {
            let before = state;
            let lost = ge.step(&mut state, &mut rng);
            assert_eq!(lost, before == ChannelState::Bad);
        }
    }
}
