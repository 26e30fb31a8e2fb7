//! The privilege check made before anything is created: does this process hold CAP_NET_ADMIN
//! (TUN devices, moving and configuring interfaces) and CAP_SYS_ADMIN (`ip netns add` mounts the
//! namespace)?
//!
//! Read from `/proc/self/status` (`CapEff`, the effective set, in hex), so no system call of our
//! own is needed. Checking first is what makes "nothing half set up" hold in the common case
//! (a user without sudo); a refusal that comes later anyway (inside a user namespace, which shows
//! every capability but is refused by the initial namespace) is mapped to the same error by
//! [`crate::NetemError::io`], and the guards remove what was already made.

use crate::error::NetemError;

/// Capability number of CAP_NET_ADMIN (linux/capability.h).
pub const CAP_NET_ADMIN: u32 = 12;
/// Capability number of CAP_SYS_ADMIN.
pub const CAP_SYS_ADMIN: u32 = 21;

/// The effective capability set in a `/proc/PID/status` text, if it has a `CapEff:` line.
pub fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// True if `caps` holds capability number `cap`.
pub fn holds(caps: u64, cap: u32) -> bool {
    cap < 64 && caps & (1u64 << cap) != 0
}

/// Checks that this process holds every capability in `needed`, or says it needs root.
pub fn require(needed: &[u32]) -> Result<(), NetemError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| NetemError::io("cannot read /proc/self/status", e))?;
    let caps = effective_caps(&status).unwrap_or(0);
    if needed.iter().all(|&cap| holds(caps, cap)) {
        Ok(())
    } else {
        Err(NetemError::NotPermitted)
    }
}

/// Checks for what two namespaces joined by TUN devices need.
pub fn require_namespaces() -> Result<(), NetemError> {
    require(&[CAP_NET_ADMIN, CAP_SYS_ADMIN])
}

/// Checks for what relaying between existing TUN devices needs.
pub fn require_tun() -> Result<(), NetemError> {
    require(&[CAP_NET_ADMIN])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn capabilities_are_read_from_the_status_text() {
        let root = "Name:\tudpchat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        let caps = effective_caps(root).unwrap();
        assert!(holds(caps, CAP_NET_ADMIN) && holds(caps, CAP_SYS_ADMIN));
        // setpriv --bounding-set -net_admin: bit 12 cleared.
        let dropped = "CapEff:\t000001ffffffefff\n";
        let caps = effective_caps(dropped).unwrap();
        assert!(!holds(caps, CAP_NET_ADMIN) && holds(caps, CAP_SYS_ADMIN));
        assert_eq!(effective_caps("Name:\tx\n"), None);
        assert_eq!(effective_caps("CapEff:\tnot-hex\n"), None);
        assert!(!holds(u64::MAX, 64));
    }
}
