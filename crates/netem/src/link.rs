//! Two network namespaces joined through the relay: the setup, and the loop that moves packets.
//!
//! ```text
//!  namespace A (udpchat-PID-N-a)                               namespace B (udpchat-PID-N-b)
//!  10.77.0.1/24 on ucPIDxNa  ──fd──▶ [ Relay: A→B impairment ] ──fd──▶  ucPIDxNb 10.77.0.2/24
//!                            ◀──fd── [ Relay: B→A impairment ] ◀──fd──
//!                         (this process, in the root namespace)
//! ```
//!
//! [`NamespaceLink::create`] makes both namespaces, creates both TUN devices here (so this
//! process holds their file descriptors), moves each into its namespace and gives it its address.
//! A packet one namespace sends to the other's address leaves through its TUN device, is read by
//! [`run_relay`], goes through the [`Relay`] and is written to the other device, where the other
//! namespace's kernel receives it as if from a wire. TUN devices carry bare IP packets (no
//! Ethernet, no ARP), so nothing else crosses.
//!
//! Teardown is the guards' drop order: the devices first (closing a TUN descriptor destroys its
//! device, wherever it was moved), then the namespaces (`ip netns del`). [`TunPair::open_existing`]
//! relays between two TUN devices someone else made (`ip tuntap add`), and leaves them alone.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Instant;

use tun_rs::{AsyncDevice, DeviceBuilder};

use crate::error::NetemError;
use crate::namespace::{sweep_stale, Namespace, RunNames};
use crate::privilege;
use crate::relay::{Direction, Relay};

/// The largest IP packet a TUN device hands over (its MTU is 1500; this is room for any).
const MAX_PACKET: usize = 65_536;

/// The addresses of the two sides, on one subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAddresses {
    /// Side A's address.
    pub a: Ipv4Addr,
    /// Side B's address.
    pub b: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
}

impl Default for LinkAddresses {
    /// 10.77.0.1/24 and 10.77.0.2/24.
    fn default() -> Self {
        LinkAddresses {
            a: Ipv4Addr::new(10, 77, 0, 1),
            b: Ipv4Addr::new(10, 77, 0, 2),
            prefix: 24,
        }
    }
}

/// The two TUN devices the relay reads and writes.
pub struct TunPair {
    a: AsyncDevice,
    b: AsyncDevice,
    names: [String; 2],
}

impl std::fmt::Debug for TunPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunPair")
            .field("names", &self.names)
            .finish()
    }
}

impl TunPair {
    /// Creates two new TUN devices, down and without addresses. They vanish when this is
    /// dropped. Must be called within a tokio runtime.
    pub fn create(a: &str, b: &str) -> Result<TunPair, NetemError> {
        let open = |name: &str| {
            DeviceBuilder::new()
                .name(name)
                .enable(false)
                .build_async()
                .map_err(|e| NetemError::tun(name, e))
        };
        Ok(TunPair {
            a: open(a)?,
            b: open(b)?,
            names: [a.to_owned(), b.to_owned()],
        })
    }

    /// Attaches to two existing TUN devices of this namespace (e.g. `ip tuntap add dev NAME mode
    /// tun`), leaving their state and addresses as they are.
    pub fn open_existing(a: &str, b: &str) -> Result<TunPair, NetemError> {
        privilege::require_tun()?;
        let open = |name: &str| {
            if !std::path::Path::new("/sys/class/net").join(name).exists() {
                return Err(NetemError::Tun {
                    device: name.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such interface (create it with `ip tuntap add dev NAME mode tun`)",
                    ),
                });
            }
            DeviceBuilder::new()
                .name(name)
                .inherit_enable_state()
                .build_async()
                .map_err(|e| NetemError::tun(name, e))
        };
        Ok(TunPair {
            a: open(a)?,
            b: open(b)?,
            names: [a.to_owned(), b.to_owned()],
        })
    }

    /// The devices' names, A's first.
    pub fn names(&self) -> [&str; 2] {
        [&self.names[0], &self.names[1]]
    }

    /// The device a packet travelling `direction` is written to.
    fn destination(&self, direction: Direction) -> &AsyncDevice {
        match direction {
            Direction::AToB => &self.b,
            Direction::BToA => &self.a,
        }
    }
}

/// Two namespaces joined through two TUN devices, all removed when this is dropped.
#[derive(Debug)]
pub struct NamespaceLink {
    // Declared first, dropped first: the devices go before their namespaces.
    devices: TunPair,
    namespace_a: Namespace,
    namespace_b: Namespace,
    addresses: LinkAddresses,
    swept: Vec<String>,
}

impl NamespaceLink {
    /// Checks the privilege, then creates the namespaces and devices and configures them.
    /// Nothing is left behind if any step fails. Must be called within a tokio runtime.
    pub fn create(addresses: LinkAddresses) -> Result<NamespaceLink, NetemError> {
        privilege::require_namespaces()?;
        let swept = sweep_stale()?;
        let names = RunNames::fresh();
        let namespace_a = Namespace::create(&names.namespace_a)?;
        let namespace_b = Namespace::create(&names.namespace_b)?;
        for namespace in [&namespace_a, &namespace_b] {
            ipv4_only(namespace)?;
        }
        let devices = TunPair::create(&names.device_a, &names.device_b)?;
        let prefix = addresses.prefix;
        for (namespace, device, address) in [
            (&namespace_a, &names.device_a, addresses.a),
            (&namespace_b, &names.device_b, addresses.b),
        ] {
            crate::namespace::ip(&["link", "set", device, "netns", namespace.name()])?;
            let cidr = format!("{address}/{prefix}");
            namespace.ip(&["addr", "add", &cidr, "dev", device])?;
            namespace.ip(&["link", "set", device, "up"])?;
        }
        Ok(NamespaceLink {
            devices,
            namespace_a,
            namespace_b,
            addresses,
            swept,
        })
    }

    /// The namespaces left by processes that are gone (killed), removed before this one was made.
    pub fn swept(&self) -> &[String] {
        &self.swept
    }

    /// The devices, for [`run_relay`].
    pub fn devices(&self) -> &TunPair {
        &self.devices
    }

    /// Side A's namespace.
    pub fn namespace_a(&self) -> &Namespace {
        &self.namespace_a
    }

    /// Side B's namespace.
    pub fn namespace_b(&self) -> &Namespace {
        &self.namespace_b
    }

    /// The sides' addresses.
    pub fn addresses(&self) -> LinkAddresses {
        self.addresses
    }
}

/// Switches IPv6 off in `namespace` (before any device arrives), so that IPv6 autoconfiguration
/// chatter (router solicitations, MLD reports) does not cross the relay and show in its counters:
/// the link is IPv4 only. A kernel without IPv6 has nothing to switch off.
fn ipv4_only(namespace: &Namespace) -> Result<(), NetemError> {
    crate::namespace::in_namespace(namespace.path(), || {
        for which in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{which}/disable_ipv6");
            match std::fs::write(&path, b"1") {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NetemError::io(format!("cannot write {path}"), e));
                }
                _ => {}
            }
        }
        Ok(())
    })?
}

/// Relays packets between the two devices through `relay` until `stop` completes. A packet a
/// device refuses is counted ([`Relay::count_write_error`]) and the loop goes on; a device that
/// cannot be read any more ends it with an error.
pub async fn run_relay(
    devices: &TunPair,
    relay: &mut Relay,
    stop: impl Future<Output = ()>,
) -> Result<(), NetemError> {
    let mut buf_a = vec![0u8; MAX_PACKET];
    let mut buf_b = vec![0u8; MAX_PACKET];
    tokio::pin!(stop);
    loop {
        let now = Instant::now();
        while let Some((direction, packet)) = relay.poll(now) {
            if devices.destination(direction).send(&packet).await.is_err() {
                relay.count_write_error(direction);
            }
        }
        let wake = relay.next_release();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            read = devices.a.recv(&mut buf_a) => {
                let len = read.map_err(|e| NetemError::tun(&devices.names[0], e))?;
                // A packet that is not IP is counted by the relay and dropped.
                let _ = relay.offer(Instant::now(), Direction::AToB, buf_a[..len].to_vec());
            }
            read = devices.b.recv(&mut buf_b) => {
                let len = read.map_err(|e| NetemError::tun(&devices.names[1], e))?;
                let _ = relay.offer(Instant::now(), Direction::BToA, buf_b[..len].to_vec());
            }
            () = sleep => {}
        }
    }
}
