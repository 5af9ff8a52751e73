//! IPv6 UDP media (`ucast6`, `mcast6`): sockets with Heartbeat's options, IPv6-only so that
//! they share the port with the IPv4 sockets of `bcast`/`ucast` on the same node.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{MediaError, OpResult, op};
#[cfg(test)]
use ha_config::media::ucast6_dest;

/// A non-blocking IPv6-only UDP socket with SO_REUSEADDR, bound to `iface`, set up further
/// by `setup`, and handed to tokio.
fn udp6_socket(
    kind: &'static str,
    iface: &str,
    setup: impl FnOnce(&Socket) -> OpResult,
) -> Result<UdpSocket, MediaError> {
    let fail = |(op, source): (&'static str, io::Error)| MediaError::Socket {
        kind,
        iface: iface.to_owned(),
        op,
        source,
    };
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail(("socket", e)))?;
    s.set_only_v6(true).map_err(|e| fail(("IPV6_V6ONLY", e)))?;
    s.set_reuse_address(true)
        .map_err(|e| fail(("SO_REUSEADDR", e)))?;
    s.bind_device(Some(iface.as_bytes()))
        .map_err(|e| fail(("SO_BINDTODEVICE", e)))?;
    s.set_nonblocking(true)
        .map_err(|e| fail(("O_NONBLOCK", e)))?;
    setup(&s).map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(|e| fail(("register with tokio", e)))
}

/// The `ucast6` socket of an interface: `[::]:port`, as Heartbeat's receive socket.
pub(super) fn ucast6_socket(iface: &str, port: u16) -> Result<UdpSocket, MediaError> {
    udp6_socket("ucast6", iface, |s| {
        let any = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, port, 0, 0));
        s.bind(&any.into()).map_err(op("bind"))
    })
}

/// The `mcast6` socket: bound to `[group]:port` so that unicast to the port stays out, joined
/// on the interface, sending through it with the configured hops and loop.
pub(super) fn mcast6_socket(
    iface: &str,
    index: u32,
    group: Ipv6Addr,
    port: u16,
    hops: u8,
    loopback: bool,
) -> Result<UdpSocket, MediaError> {
    udp6_socket("mcast6", iface, |s| {
        // A link-scoped group needs the interface as scope to be bound.
        let at = SocketAddr::V6(SocketAddrV6::new(group, port, 0, index));
        s.bind(&at.into()).map_err(op("bind"))?;
        s.join_multicast_v6(&group, index)
            .map_err(op("IPV6_JOIN_GROUP"))?;
        s.set_multicast_if_v6(index)
            .map_err(op("IPV6_MULTICAST_IF"))?;
        s.set_multicast_hops_v6(u32::from(hops))
            .map_err(op("IPV6_MULTICAST_HOPS"))?;
        s.set_multicast_loop_v6(loopback)
            .map_err(op("IPV6_MULTICAST_LOOP"))
    })
}

/// The destination of `mcast6` packets.
pub(super) fn mcast6_dest(group: Ipv6Addr, port: u16, index: u32) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(group, port, 0, index))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn link_local_peers_take_the_interface_scope() {
        let ll: Ipv6Addr = "fe80::2".parse().unwrap();
        let global: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let d = ucast6_dest("eth1", 4, ll, None, 694).unwrap();
        assert_eq!(d.to_string(), "[fe80::2%4]:694");
        assert_eq!(ucast6_dest("eth1", 4, ll, Some(4), 694).unwrap(), d);
        let e = ucast6_dest("eth1", 4, ll, Some(5), 694).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ucast6 eth1: scope %5 is not the interface's index 4"
        );
        let g = ucast6_dest("eth1", 4, global, None, 694).unwrap();
        assert_eq!(g.to_string(), "[2001:db8::2]:694");
    }
}
