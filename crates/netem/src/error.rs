//! [`NetemError`]: why the relay could not be set up or stopped working.

use std::io;

use thiserror::Error;

/// What the user is told when the process lacks the privilege: one line, and what to do.
pub const NOT_PERMITTED: &str = "needs root: creating network namespaces and TUN devices takes \
     CAP_NET_ADMIN (and CAP_SYS_ADMIN for namespaces); run it with sudo";

/// Why the relay could not be set up or failed.
#[derive(Debug, Error)]
pub enum NetemError {
    /// The process lacks CAP_NET_ADMIN (or the system refused an operation for lack of it).
    /// Nothing was left set up.
    #[error("{NOT_PERMITTED}")]
    NotPermitted,
    /// iproute2's `ip` command is not installed.
    #[error("the `ip` command (iproute2) is not installed: apt-get install iproute2")]
    IpMissing,
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// `/dev/net/tun` or a TUN device failed.
    #[error("TUN device {device}: {source}")]
    Tun {
        /// The device's name.
        device: String,
        /// The system's error.
        source: io::Error,
    },
    /// Another system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        source: io::Error,
    },
    /// The kernel does not offer this TCP congestion control.
    #[error(
        "this kernel does not offer TCP congestion control {asked:?}; it offers: {offered} \
             (net.ipv4.tcp_available_congestion_control)"
    )]
    CongestionControl {
        /// What was asked for.
        asked: String,
        /// What the kernel lists.
        offered: String,
    },
}

impl NetemError {
    /// An I/O error, or [`NetemError::NotPermitted`] if the system said "operation not
    /// permitted" (a user namespace may show every capability and still be refused).
    pub fn io(what: impl Into<String>, source: io::Error) -> NetemError {
        if source.kind() == io::ErrorKind::PermissionDenied {
            NetemError::NotPermitted
        } else {
            NetemError::Io {
                what: what.into(),
                source,
            }
        }
    }

    /// A TUN error, or [`NetemError::NotPermitted`] as for [`NetemError::io`].
    pub fn tun(device: &str, source: io::Error) -> NetemError {
        if source.kind() == io::ErrorKind::PermissionDenied {
            NetemError::NotPermitted
        } else {
            NetemError::Tun {
                device: device.to_owned(),
                source,
            }
        }
    }

    /// True for the error whose exit code is `EX_NOPERM` (77) in the binary.
    pub fn is_not_permitted(&self) -> bool {
        matches!(self, NetemError::NotPermitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_become_the_one_line_refusal() {
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(NetemError::io("open", denied).is_not_permitted());
        let denied = io::Error::from_raw_os_error(1); // EPERM
        assert!(NetemError::tun("uc1a", denied).is_not_permitted());
        let other = io::Error::from(io::ErrorKind::NotFound);
        assert!(!NetemError::io("open", other).is_not_permitted());
        let line = NetemError::NotPermitted.to_string();
        assert!(
            !line.contains('\n') && line.contains("CAP_NET_ADMIN"),
            "{line}"
        );
    }
}
