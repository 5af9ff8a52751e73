//! Ping nodes in ha.cf (`ping IP…`, `ping_group NAME IP…`, `deadping T`): upstream
//! addresses had pings itself to break ties between the nodes (ipfail's job in Heartbeat).
//! A `ping` line makes one ping node per address, named by it; a `ping_group` is one ping
//! node that is up while any of its addresses answers. `ping6 IP…` is `ping` for IPv6
//! (Heartbeat's ping6 plugin); a `ping_group` may mix both families (had's extension).

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// One ping node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingNode {
    /// The address as written (`ping`) or the group's name (`ping_group`).
    pub name: String,
    /// The addresses pinged; the node is up while any answers.
    pub addrs: Vec<IpAddr>,
}

/// Resolve a `ping` address: an IPv4 literal, else a host name through `resolve`.
pub(crate) fn ping_addr(
    text: &str,
    resolve: &dyn Fn(&str, bool) -> Option<IpAddr>,
) -> Result<IpAddr, String> {
    if let Ok(a) = text.parse::<std::net::Ipv4Addr>() {
        return Ok(IpAddr::V4(a));
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Err(format!(
            "`{text}` is an IPv6 address: write it on a `ping6` line (as in Heartbeat)"
        ));
    }
    match resolve(text, true) {
        Some(a @ IpAddr::V4(_)) => Ok(a),
        _ => Err(format!(
            "`{text}` is not an IPv4 address or a resolvable host name"
        )),
    }
}

/// A `ping6` address: a numeric IPv6 unicast address (link-local ones need an interface,
/// which `ping6` cannot name, so they are refused).
pub(crate) fn ping6_addr(text: &str) -> Result<Ipv6Addr, String> {
    let a: Ipv6Addr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv6 address"))?;
    if a.is_multicast() || a.is_unspecified() || a.is_unicast_link_local() {
        return Err(format!(
            "`{text}` cannot be pinged as a ping node (multicast, unspecified or link-local)"
        ));
    }
    Ok(a)
}

/// A `ping_group` member: IPv4 as for `ping`, or IPv6 as for `ping6`.
pub(crate) fn group_member(
    text: &str,
    resolve: &dyn Fn(&str, bool) -> Option<IpAddr>,
) -> Result<IpAddr, String> {
    if text.parse::<Ipv6Addr>().is_ok() {
        return ping6_addr(text).map(IpAddr::V6);
    }
    ping_addr(text, resolve)
}

/// Heartbeat's rule: `deadping` must exceed twice `keepalive`.
pub(crate) fn deadping_ok(deadping: Duration, keepalive: Duration) -> bool {
    deadping > keepalive * 2
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use std::net::IpAddr;

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
    fn ping6_and_mixed_groups() {
        let (cf, d) = parse("ping6 2001:db8::fe\nping_group up 198.18.0.3 2001:db8::fd\n");
        assert!(d.is_empty(), "{d}");
        assert_eq!(cf.ping[0].name, "2001:db8::fe");
        assert_eq!(
            cf.ping[0].addrs,
            vec!["2001:db8::fe".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            cf.ping[1].addrs,
            vec![
                "198.18.0.3".parse::<IpAddr>().unwrap(),
                "2001:db8::fd".parse::<IpAddr>().unwrap()
            ]
        );
    }

    #[test]
    fn bad_ping_lines_are_errors() {
        let (_, d) = parse("ping upstream-router\n");
        assert!(d.has_errors(), "{d}");
        let (_, d) = parse("ping_group lonely\n");
        assert!(d.has_errors(), "{d}");
        let (_, d) = parse("ping ::1\n");
        assert!(d.to_string().contains("ping6"), "{d}");
        let (_, d) = parse("deadping 2\n");
        assert!(d.to_string().contains("twice `keepalive`"), "{d}");
        let (_, d) = parse("ping6 198.18.0.1\n");
        assert!(d.to_string().contains("ha.cf:5:"), "{d}");
        assert!(d.to_string().contains("not an IPv6 address"), "{d}");
        let (_, d) = parse("ping6 fe80::1\n");
        assert!(d.to_string().contains("link-local"), "{d}");
        let (_, d) = parse("ping_group up 198.18.0.3 ff02::1\n");
        assert!(d.to_string().contains("ha.cf:5:"), "{d}");
        assert!(d.to_string().contains("multicast"), "{d}");
        // Another respawned program still gets its warning.
        let (_, d) = parse("respawn hacluster /usr/lib/heartbeat/dopd\n");
        assert!(!d.is_empty() && !d.has_errors(), "{d}");
    }
}
