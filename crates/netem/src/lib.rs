//! udpchat's TUN relay: the lab's [`udpchat_lab::Impairment`] applied to IP packets, so that the
//! kernel's own TCP (or any program) meets the same loss, delay, jitter, reordering, duplication,
//! corruption and rate limit as udpchat's transports do in the lab. A userspace `tc netem`, for
//! kernels without it (ours).
//!
//! The shape, top-down:
//! - [`packet`]: a checked view of an IP packet (header length, protocol, TCP sequence numbers);
//! - [`relay`]: [`Relay`], the packet path as a pure state machine (two seeded impairments);
//! - [`privilege`]: the one check made before anything is created (CAP_NET_ADMIN);
//! - [`namespace`]: network namespaces and `ip` (iproute2) commands, each namespace an RAII guard;
//! - [`link`]: two namespaces joined through two TUN devices, and the async loop that moves
//!   packets between the devices through a [`Relay`];
//! - [`kernel_tcp`]: `udpchat lab --real`'s `kernel-tcp` runs, kernel TCP sockets in the two
//!   namespaces sending the lab's chat workload;
//! - [`lab_runner`]: [`TunLab`], the lab's hook into all of this (kernel TCP, and udpchat's own
//!   modes through the same relay with `--tun`).
//!
//! Linux only (network namespaces, TUN, `TCP_CONGESTION`): on other systems the crate is empty.
//!
//! Everything that touches the system needs root (CAP_NET_ADMIN); without it, [`NetemError::NotPermitted`]
//! is returned before anything is set up. Whatever is set up is removed when its guard drops, on
//! success, on error, and on unwinding.

#![cfg(target_os = "linux")]

pub mod error;
pub mod kernel_tcp;
pub mod lab_runner;
pub mod link;
pub mod namespace;
pub mod packet;
pub mod privilege;
pub mod relay;

pub use error::NetemError;
pub use lab_runner::TunLab;
pub use link::{LinkAddresses, NamespaceLink, TunPair};
pub use relay::{Direction, DirectionStats, Relay};
