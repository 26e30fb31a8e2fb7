//! udpchat's lab: what a lossy network does to datagrams, applied in a simulator, a proxy or a chat.
//!
//! The heart is [`Impairment`], a pure model of one direction of a bad link (loss, burst loss,
//! delay and jitter, duplication, reordering, corruption, a rate limit with a finite queue), with
//! all its randomness from one seed. Three things drive it:
//! - [`sim::Simulator`]: two sans-IO endpoints joined by two impaired links on a virtual clock,
//!   replaying a scenario exactly from a seed;
//! - [`proxy::Proxy`]: a real UDP relay (a userspace `tc netem`) between any two UDP programs;
//! - [`ImpairedEndpoint`]: wraps any [`udpchat_reliable::Endpoint`] so a chat impairs its own
//!   traffic, with no change to the driver.
//!
//! [`parse`] turns what people type (`20%`, `30ms`, `1mbit`) into these types; the binary's
//! flags (clap) call it, and the lab itself does not depend on clap. [`pcap`] writes what any of
//! them sees as a capture for Wireshark ([`capture`] does it off the hot path for real traffic),
//! and [`wire`] describes a datagram in one line for live traces. [`encrypted`] wraps a run's
//! endpoints in `udpchat_secure` with keys from the seed. [`batch_socket`] is the batched
//! UDP I/O (GSO, GRO, `recvmmsg`) that the proxy and the chat's driver share. [`dumbbell`] runs
//! several endpoint pairs over one shared bottleneck queue, for fairness between flows.

pub mod batch_socket;
pub mod capture;
pub mod dumbbell;
pub mod encrypted;
pub mod experiment;
pub mod gilbert;
pub mod impaired;
pub mod impairment;
pub mod parse;
pub mod pcap;
pub mod probability;
pub mod proxy;
pub mod sim;
pub mod tcp;
pub mod wire;

#[cfg(test)]
mod impairment_properties;
#[cfg(test)]
mod statistical_tests;
#[cfg(test)]
mod test_endpoint;

pub use gilbert::GilbertElliott;
pub use impaired::ImpairedEndpoint;
pub use impairment::{
    derive_seed, DropCause, Fate, Impairment, ImpairmentConfig, ImpairmentStats, Released, Verdict,
};
pub use parse::{BitRate, ParseError, QueueLimit};
pub use probability::Probability;
