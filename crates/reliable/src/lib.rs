//! udpchat's transports, as sans-IO state machines.
//!
//! Both modes implement one surface, [`Endpoint`], in the style of quinn-proto: datagrams come in
//! through `handle_datagram(now, from, bytes)`, what to send comes out of `poll_transmit(now)`,
//! timers are `poll_timeout()` / `handle_timeout(now)`, and what the application should see comes
//! out of `poll_event()`. Nothing here owns a socket, reads a clock or draws global randomness:
//! time is an argument and randomness a seed, so the same code runs over a real socket, through
//! the lab's proxy, and inside its deterministic simulator.

pub mod driver;
pub mod endpoint;
pub mod raw;
pub mod transport;

pub use driver::{Input, Sink};
pub use endpoint::{DropCause, Endpoint, Event, MessageId, NickError, SendError, Stats, Transmit};
pub use raw::{RawConfig, RawEndpoint};
pub use transport::{
    Arq, ConfigError, CongestionControl, Delivery, ReliableConfig, ReliableEndpoint,
};
