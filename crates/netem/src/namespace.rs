//! Network namespaces, made and removed with iproute2's `ip`, each one an RAII guard.
//!
//! `ip netns add NAME` creates a namespace and pins it with a bind mount under `/run/netns`, so it
//! outlives the process unless removed: [`Namespace`]'s `Drop` runs `ip netns del NAME`, on
//! success, on error and on unwinding (the binary turns SIGINT and SIGTERM into a normal return,
//! so they unwind the same way). Only SIGKILL can leave one behind; names carry the creating
//! process's id ([`RunNames::fresh`]), which keeps parallel runs apart and lets
//! [`sweep_stale`] remove the leftovers of processes that no longer exist.
//!
//! Calling `ip` rather than speaking netlink ourselves keeps this module small and its commands
//! the ones a reader would type; [`in_namespace`] is the one place a thread enters a namespace
//! (setns(2), through nix's safe wrapper) to create sockets there.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::CloneFlags;

use crate::error::NetemError;

/// Every namespace this crate creates is named `udpchat-PID-N-SIDE`.
pub const PREFIX: &str = "udpchat-";

/// Runs `ip ARGS` and returns its standard output; a failure carries what `ip` said.
pub fn ip(args: &[&str]) -> Result<String, NetemError> {
    let output = Command::new("ip").args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            NetemError::IpMissing
        } else {
            NetemError::io("cannot run `ip`", e)
        }
    })?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        return Err(NetemError::NotPermitted);
    }
    Err(NetemError::Ip {
        args: args.join(" "),
        stderr,
    })
}

/// A network namespace, deleted when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates the namespace `name` and brings its loopback up.
    pub fn create(name: &str) -> Result<Namespace, NetemError> {
        ip(&["netns", "add", name])?;
        // From here on the guard exists: a failure below still removes the namespace.
        let namespace = Namespace {
            name: name.to_owned(),
        };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Its name, as `ip netns exec NAME` takes it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that pins it (what setns(2) opens).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NAME ARGS` (an `ip` command inside this namespace).
    pub fn ip(&self, args: &[&str]) -> Result<String, NetemError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Nothing to do with a failure here but say so: the sweep removes it next time.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "udpchat: warning: could not remove namespace {}: {e}",
                self.name
            );
        }
    }
}

/// The names one run uses: two namespaces and two TUN devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNames {
    /// Side A's namespace.
    pub namespace_a: String,
    /// Side B's namespace.
    pub namespace_b: String,
    /// Side A's TUN device (at most 15 bytes, the kernel's IFNAMSIZ less the NUL).
    pub device_a: String,
    /// Side B's TUN device.
    pub device_b: String,
}

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

impl RunNames {
    /// Names no other run on this machine uses: this process's id and a counter.
    pub fn fresh() -> RunNames {
        RunNames::for_run(std::process::id(), NEXT_RUN.fetch_add(1, Ordering::Relaxed))
    }

    /// The names of run `n` of process `pid`. Devices are `ucPIDxN` plus the side: a pid has at
    /// most 7 digits (pid_max is at most 2^22), which leaves 5 for `x`, N and the side.
    pub fn for_run(pid: u32, n: u32) -> RunNames {
        let n = n % 1000;
        RunNames {
            namespace_a: format!("{PREFIX}{pid}-{n}-a"),
            namespace_b: format!("{PREFIX}{pid}-{n}-b"),
            device_a: format!("uc{pid}x{n}a"),
            device_b: format!("uc{pid}x{n}b"),
        }
    }
}

/// The process id in a namespace name this crate made (`udpchat-PID-N-SIDE`), if it is one.
pub fn owner_pid(namespace: &str) -> Option<u32> {
    let rest = namespace.strip_prefix(PREFIX)?;
    let mut parts = rest.split('-');
    let pid = parts.next()?.parse().ok()?;
    let _run: u32 = parts.next()?.parse().ok()?;
    let side = parts.next()?;
    (matches!(side, "a" | "b") && parts.next().is_none()).then_some(pid)
}

/// The namespaces `ip netns list` shows.
pub fn list() -> Result<Vec<String>, NetemError> {
    // Lines are `NAME` or `NAME (id: N)`.
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Deletes the namespaces this crate made in processes that no longer exist (left by a
/// SIGKILL), and returns their names. Those of live processes, and every other namespace, are
/// left alone.
pub fn sweep_stale() -> Result<Vec<String>, NetemError> {
    let mut removed = Vec::new();
    for name in list()? {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if PathBuf::from(format!("/proc/{pid}")).exists() {
            continue;
        }
        ip(&["netns", "del", &name])?;
        removed.push(name);
    }
    Ok(removed)
}

/// Runs `f` on a new thread that has entered the namespace pinned at `path`, and returns what it
/// returns. Sockets created by `f` belong to that namespace for good, whichever thread uses them
/// afterwards; only this short-lived thread ever changes namespace.
pub fn in_namespace<T, F>(path: PathBuf, f: F) -> Result<T, NetemError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let thread = std::thread::Builder::new()
        .name("udpchat-netns".to_owned())
        .spawn(move || {
            let file = std::fs::File::open(&path)
                .map_err(|e| NetemError::io(format!("cannot open {}", path.display()), e))?;
            nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                NetemError::io(
                    format!("cannot enter {}", path.display()),
                    io::Error::from(errno),
                )
            })?;
            Ok(f())
        })
        .map_err(|e| NetemError::io("cannot start a thread", e))?;
    thread.join().map_err(|_| NetemError::Io {
        what: "a thread inside a namespace".to_owned(),
        source: io::Error::other("it panicked"),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_run_and_fit_the_kernels_limit() {
        let names = RunNames::for_run(4_194_304, 999);
        assert!(names.device_a.len() <= 15, "{}", names.device_a);
        assert_ne!(names.device_a, names.device_b);
        assert_ne!(RunNames::fresh(), RunNames::fresh());
        assert_eq!(owner_pid(&names.namespace_a), Some(4_194_304));
        assert_eq!(owner_pid(&names.namespace_b), Some(4_194_304));
    }

    #[test]
    fn only_our_own_names_are_swept() {
        assert_eq!(owner_pid("udpchat-12-0-a"), Some(12));
        for other in [
            "udpchat-12-0-c",
            "udpchat-12-a",
            "udpchat-x-0-a",
            "udpchat-12-0-a-extra",
            "blue",
            "udpchat",
        ] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }
}
