//! udpchat's transports, as sans-IO state machines.
//!
//! Both modes implement one surface, [`Endpoint`], in the style of quinn-proto: datagrams come in
//! through `handle_datagram(now, from, bytes)`, what to send comes out of `poll_transmit(now)`,
//! timers are `poll_timeout()` / `handle_timeout(now)`, and what the application should see comes
//! out of `poll_event()`. Nothing here owns a socket, reads a clock or draws global randomness:
//! time is an argument and randomness a seed, so the same code runs over a real socket, through
//! the lab's proxy, and inside its deterministic simulator. The crate has no async runtime: the
//! tokio driver that runs an endpoint over a real socket is the `udpchat-driver` crate.
//!
//! **Public surface.** [`Endpoint`] and the values that cross it ([`Event`], [`Stats`],
//! [`MessageId`], the error types); the two endpoints, [`RawEndpoint`] and [`ReliableEndpoint`],
//! with their configurations; and [`transport::congestion`], the congestion-controller trait
//! that new algorithms implement. The mechanisms inside the reliable transport (sender,
//! receiver, SACK bookkeeping, RTT estimator, reorder buffer, fragmentation) and raw mode's
//! duplicate filter are crate-private: no other crate drives them, and they may change shape.

pub mod endpoint;
pub mod raw;
pub mod transport;

pub use endpoint::{
    DropCause, Endpoint, Event, HandshakeFailure, MessageId, NickError, SendError, Stats, Transmit,
};
pub use raw::{RawConfig, RawEndpoint};
pub use transport::{
    Arq, ConfigError, CongestionControl, Delivery, Redundancy, ReliableConfig, ReliableEndpoint,
};
