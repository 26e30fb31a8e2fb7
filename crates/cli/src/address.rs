//! Where datagrams go: `HOST:PORT` flags (`chat --peer`, `proxy --forward`), checked as far as
//! they can be before any name is resolved.
//!
//! The syntax is checked by clap through [`parse_destination`], so a missing or impossible port
//! is a usage error (exit code 2) like any bad value. Port 0 is refused: it means "any port" when
//! binding, but as a destination the kernel refuses every send to it. A literal address of the
//! other IP family than the local socket's is refused by [`check_families`], naming both flags,
//! instead of failing later with "Network is unreachable". A name that does not resolve is not a
//! usage error: it is found out when the chat or proxy starts (exit code 1).

use std::net::{IpAddr, SocketAddr};

/// Checks that `text` reads as `HOST:PORT` with a port from 1 to 65535; returns it unchanged (the
/// host may be a name, resolved later).
pub fn parse_destination(text: &str) -> Result<String, String> {
    let example = "expected HOST:PORT, e.g. 192.168.1.20:2323, [::1]:2323 or localhost:2323";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return check_port(addr.port()).map(|()| text.to_owned());
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(format!("the port is missing: {example}"));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("the port is missing: {example}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("the port {port:?} is not a number from 1 to 65535"))?;
    check_port(port)?;
    let bracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    if host.is_empty() {
        return Err(format!("the host is missing: {example}"));
    }
    if !bracketed && (host.contains(':') || host.contains('[') || host.contains(']')) {
        return Err(format!(
            "an IPv6 address goes in brackets before its port: {example}"
        ));
    }
    Ok(text.to_owned())
}

/// True if a socket bound at `local` reaches IPv4 addresses too: an IPv6 socket bound to `[::]`
/// (or to an IPv4-mapped address) sends to them as `::ffff:a.b.c.d`.
pub fn dual_stack(local: SocketAddr) -> bool {
    match local.ip() {
        IpAddr::V4(_) => false,
        IpAddr::V6(ip) => ip.is_unspecified() || ip.to_ipv4_mapped().is_some(),
    }
}

fn check_port(port: u16) -> Result<(), String> {
    if port == 0 {
        return Err(
            "port 0 is not a destination (nothing can be sent to it): give the port the other \
             side listens on"
                .to_owned(),
        );
    }
    Ok(())
}

/// Checks that a socket bound at `local` (given as flag `local_flag`) can send to `destination`
/// (flag `destination_flag`) when the latter is a literal address. An IPv4 socket cannot reach an
/// IPv6 address; an IPv6 socket reaches IPv4 addresses (as IPv4-mapped IPv6 addresses) only when
/// bound to the unspecified address `[::]`, which is dual-stack; bound to `[::1]` it is not.
pub fn check_families(
    local_flag: &str,
    local: SocketAddr,
    destination_flag: &str,
    destination: &str,
) -> Result<(), String> {
    let Ok(to) = destination.parse::<SocketAddr>() else {
        // A name: its addresses are chosen by family when it is resolved.
        return Ok(());
    };
    match (local, to) {
        (SocketAddr::V4(_), SocketAddr::V6(_)) => Err(format!(
            "{destination_flag} {destination} is IPv6 but {local_flag} {local} is IPv4: give an \
             IPv6 {local_flag}, e.g. {local_flag} [::]:{port}",
            port = local.port()
        )),
        (SocketAddr::V6(_), SocketAddr::V4(_)) if !dual_stack(local) => Err(format!(
            "{destination_flag} {destination} is IPv4 but {local_flag} {local} is IPv6, which \
             cannot reach IPv4 addresses: give an IPv4 {local_flag} (e.g. {local_flag} \
             0.0.0.0:{port}) or the dual-stack {local_flag} [::]:{port}",
            port = local.port()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn destinations_need_a_host_and_a_usable_port() {
        for good in [
            "127.0.0.1:2323",
            "[::1]:9",
            "localhost:2323",
            "chat.example:1",
            "[::ffff:127.0.0.1]:65535",
        ] {
            assert_eq!(parse_destination(good).unwrap(), good);
        }
        for (bad, why) in [
            ("127.0.0.1", "port is missing"),
            ("localhost", "port is missing"),
            ("::1", "port is missing"),
            ("127.0.0.1:0", "port 0"),
            ("[::1]:0", "port 0"),
            ("localhost:0", "port 0"),
            ("127.0.0.1:99999", "not a number from 1 to 65535"),
            ("127.0.0.1:-1", "not a number from 1 to 65535"),
            ("127.0.0.1:", "not a number from 1 to 65535"),
            (":2323", "host is missing"),
            // A valid IPv6 address on its own, so no port.
            ("::1:2323", "port is missing"),
            ("fe80::g:2323", "in brackets"),
            ("[nope]:2323", "in brackets"),
        ] {
            let err = parse_destination(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn families_must_be_able_to_meet() {
        let v4: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let v6: SocketAddr = "[::1]:0".parse().unwrap();
        let any6: SocketAddr = "[::]:0".parse().unwrap();
        let check = |local, to| check_families("--bind", local, "--peer", to);
        assert!(check(v4, "127.0.0.1:9").is_ok());
        assert!(check(v6, "[::1]:9").is_ok());
        // The dual-stack socket reaches IPv4 through mapped addresses.
        assert!(check(any6, "127.0.0.1:9").is_ok());
        // Names are resolved later, by family.
        assert!(check(v6, "localhost:9").is_ok());
        let err = check(v6, "127.0.0.1:9").unwrap_err();
        assert!(
            err.contains("--peer 127.0.0.1:9") && err.contains("--bind [::1]:0"),
            "{err}"
        );
        let err = check(v4, "[::1]:9").unwrap_err();
        assert!(
            err.contains("--peer [::1]:9") && err.contains("--bind 127.0.0.1:0"),
            "{err}"
        );
    }
}
