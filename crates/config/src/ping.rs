//! Ping nodes in ha.cf (`ping IP…`, `ping_group NAME IP…`, `deadping T`): upstream
//! addresses had pings itself to break ties between the nodes (ipfail's job in Heartbeat).
//! A `ping` line makes one ping node per address, named by it; a `ping_group` is one ping
//! node that is up while any of its addresses answers.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// One ping node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingNode {
    /// The address as written (`ping`) or the group's name (`ping_group`).
    pub name: String,
    /// The addresses pinged; the node is up while any answers.
    pub addrs: Vec<Ipv4Addr>,
}

/// Resolve a ping address: an IPv4 literal, else a host name through `resolve`.
pub(crate) fn ping_addr(
    text: &str,
    resolve: &dyn Fn(&str, bool) -> Option<IpAddr>,
) -> Result<Ipv4Addr, String> {
    if let Ok(a) = text.parse::<Ipv4Addr>() {
        return Ok(a);
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(format!("`{text}`: had pings IPv4 addresses only"));
    }
    match resolve(text, true) {
        Some(IpAddr::V4(a)) => Ok(a),
        _ => Err(format!(
            "`{text}` is not an IPv4 address or a resolvable host name"
        )),
    }
}

/// Heartbeat's rule: `deadping` must exceed twice `keepalive`.
pub(crate) fn deadping_ok(deadping: Duration, keepalive: Duration) -> bool {
    deadping > keepalive * 2
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::diag::Diagnostics;
    use crate::ha_cf::{HaCf, Medium};

    const BASE: &str = "node a b\nbcast eth0\nkeepalive 1\ndeadtime 10\n";

    fn parse(extra: &str) -> (HaCf, Diagnostics) {
        let mut d = Diagnostics::new();
        // No resolver: a unit test must not wait on DNS.
        let cf = HaCf::parse_with(
            Path::new("ha.cf"),
            &format!("{BASE}{extra}"),
            694,
            &crate::ha_cf::no_resolver,
            &mut d,
        );
        (cf, d)
    }

    #[test]
    fn ping_lines_become_typed_ping_nodes_without_warnings() {
        let (cf, d) = parse(
            "ping 198.18.0.1 198.18.0.2\nping_group up 198.18.0.3 198.18.0.4\ndeadping 5\n\
             respawn hacluster /usr/lib/heartbeat/ipfail\n",
        );
        assert!(d.is_empty(), "{d}");
        let names: Vec<&str> = cf.ping.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["198.18.0.1", "198.18.0.2", "up"]);
        assert_eq!(cf.ping[2].addrs.len(), 2);
        assert_eq!(cf.deadping, Some(std::time::Duration::from_secs(5)));
        assert!(matches!(cf.media[0], Medium::Bcast { .. }));
    }

    #[test]
    fn bad_ping_lines_are_errors() {
        let (_, d) = parse("ping upstream-router\n");
        assert!(d.has_errors(), "{d}");
        let (_, d) = parse("ping_group lonely\n");
        assert!(d.has_errors(), "{d}");
        let (_, d) = parse("ping ::1\n");
        assert!(d.to_string().contains("IPv4"), "{d}");
        let (_, d) = parse("deadping 2\n");
        assert!(d.to_string().contains("twice `keepalive`"), "{d}");
        // Another respawned program still gets its warning.
        let (_, d) = parse("respawn hacluster /usr/lib/heartbeat/dopd\n");
        assert!(!d.is_empty() && !d.has_errors(), "{d}");
    }
}
