//! Reliable mode: our own transport on top of UDP, as a sans-IO state machine.
//!
//! UDP delivers datagrams at most once, in any order, or not at all. This module turns that into
//! "every message exactly once, in order, or the application is told which ones did not make it",
//! with the mechanisms TCP and QUIC use, each in a module of its own so it can be read and tested
//! alone:
//!
//! - [`config`]: every knob, with documented defaults;
//! - [`rtt`]: the round-trip estimator and retransmission timeout (RFC 6298);
//! - [`sack`]: the received-set bookkeeping behind cumulative + selective acks;
//! - [`reorder`]: the bounded buffer that restores sending order;
//! - [`fragment`]: splitting messages larger than a datagram, and reassembly; [`pmtu`]: how
//!   large a datagram the path carries (DPLPMTUD, RFC 8899); [`pieces`]: how a packet cut for a
//!   larger path MTU crosses a path that shrank;
//! - [`congestion`]: the [`congestion::Controller`] trait and one file per algorithm (NewReno,
//!   CUBIC, a BBR-like model, none);
//! - [`rate`]: delivery-rate samples for the controllers; [`pacer`]: spreading packets out at
//!   the controller's pacing rate;
//! - [`sender`] and [`receiver`]: the two halves of a session; [`redundancy`]: how many copies
//!   the sender adds, fixed or following the loss it measures;
//! - [`conn`]: [`ReliableEndpoint`], the session itself (handshake, ids, keepalive, close).
//!
//! What is public: [`ReliableEndpoint`] (through the crate's `Endpoint` trait), its
//! configuration ([`config`]) and the congestion-controller trait ([`congestion`]), which later
//! algorithms implement. The mechanisms (`rtt`, `sack`, `reorder`, `fragment`, `sender`,
//! `receiver`) are crate-private: no other crate drives them, so they may change shape freely.
//!
//! The wire and the state machine are specified, with the reasons for each mechanism, in
//! `docs/protocol.md`.

pub mod config;
pub mod congestion;
pub mod conn;
pub(crate) mod fragment;
pub(crate) mod pacer;
pub(crate) mod pieces;
pub(crate) mod pmtu;
pub(crate) mod rate;
pub(crate) mod receiver;
pub(crate) mod redundancy;
pub(crate) mod reorder;
pub(crate) mod rtt;
pub(crate) mod sack;
pub(crate) mod sender;

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod pair;
#[cfg(test)]
mod tests;

pub use config::{Arq, ConfigError, CongestionControl, Delivery, Redundancy, ReliableConfig};
pub use conn::ReliableEndpoint;
