//! What the heartbeat media of ha.cf need from this machine (interfaces, their addresses, a
//! serial device), found without opening a socket: `check_medium` is what `had` and `hactl
//! check` validate with, and ha-transport's `MediaSet::open` uses the same lookups and errors.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use crate::Medium;

/// Why the media could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// `open` was given no media.
    #[error("no heartbeat media configured (bcast, ucast or mcast)")]
    NoMedia,
    /// The interface does not exist.
    #[error("{kind} {iface}: no such interface")]
    NoSuchInterface {
        /// `bcast`, `ucast` or `mcast`.
        kind: &'static str,
        /// Interface name.
        iface: String,
    },
    /// The interface has no IPv4 address (needed for broadcast and multicast).
    #[error("{kind} {iface}: no IPv4 address")]
    NoIpv4 {
        /// `bcast` or `mcast`.
        kind: &'static str,
        /// Interface name.
        iface: String,
    },
    /// The interface has no IPv4 broadcast address (loopback, point-to-point).
    #[error("bcast {iface}: no IPv4 broadcast address")]
    NoBroadcast {
        /// Interface name.
        iface: String,
    },
    /// `ucast` to an IPv6 peer (Heartbeat's `ucast` is IPv4 only).
    #[error("ucast {iface}: peer {peer} is not an IPv4 address")]
    Ipv6Peer {
        /// Interface name.
        iface: String,
        /// The peer.
        peer: IpAddr,
    },
    /// A socket operation failed while setting a medium up.
    #[error("{kind} {iface}: {op}: {source}")]
    Socket {
        /// `bcast`, `ucast` or `mcast`.
        kind: &'static str,
        /// Interface name.
        iface: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A numeric `%scope` on a `ucast6` peer is not the interface's index.
    #[error("ucast6 {iface}: scope %{scope} is not the interface's index {index}")]
    ScopeMismatch {
        /// Interface name.
        iface: String,
        /// The interface's index.
        index: u32,
        /// The scope written in ha.cf.
        scope: u32,
    },
    /// A serial port could not be opened or set up.
    #[error("serial {device}: {op}: {source}")]
    Serial {
        /// Device path.
        device: String,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Receiving failed.
    #[error("receive on {link}: {source}")]
    Recv {
        /// Link name.
        link: String,
        /// The OS error.
        source: io::Error,
    },
}

/// The IPv4 address and broadcast address of an interface.
pub struct IfaceV4 {
    /// Its primary IPv4 address.
    pub addr: Option<Ipv4Addr>,
    /// That address's broadcast address.
    pub broadcast: Option<Ipv4Addr>,
}

/// The primary IPv4 address of `iface` and its broadcast address, or the error naming the
/// medium (`kind`) when the interface does not exist.
pub fn iface_v4(kind: &'static str, iface: &str) -> Result<IfaceV4, MediaError> {
    if nix::net::if_::if_nametoindex(iface).is_err() {
        return Err(MediaError::NoSuchInterface {
            kind,
            iface: iface.to_owned(),
        });
    }
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| MediaError::Socket {
        kind,
        iface: iface.to_owned(),
        op: "getifaddrs",
        source: e.into(),
    })?;
    let mut out = IfaceV4 {
        addr: None,
        broadcast: None,
    };
    for a in addrs.filter(|a| a.interface_name == iface) {
        let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) else {
            continue;
        };
        // The first IPv4 address is the primary one, as SIOCGIFADDR reports.
        if out.addr.is_none() {
            out.addr = Some(sin.ip());
            out.broadcast = a
                .broadcast
                .as_ref()
                .and_then(|b| b.as_sockaddr_in())
                .map(|b| b.ip());
        }
    }
    Ok(out)
}

/// What ha-transport's `MediaSet::open` would refuse about `m`, found without opening a socket, so that a
/// configuration check names it before start. Keep in step with `open`.
pub fn check_medium(m: &Medium) -> Result<(), MediaError> {
    match m {
        Medium::Bcast { iface } => {
            let info = iface_v4("bcast", iface)?;
            if info.addr.is_none() {
                return Err(MediaError::NoIpv4 {
                    kind: "bcast",
                    iface: iface.clone(),
                });
            }
            if info.broadcast.is_none() {
                return Err(MediaError::NoBroadcast {
                    iface: iface.clone(),
                });
            }
        }
        Medium::Ucast { iface, peer } => {
            if peer.is_ipv6() {
                return Err(MediaError::Ipv6Peer {
                    iface: iface.clone(),
                    peer: *peer,
                });
            }
            iface_v4("ucast", iface)?;
        }
        Medium::Mcast { iface, .. } => {
            if iface_v4("mcast", iface)?.addr.is_none() {
                return Err(MediaError::NoIpv4 {
                    kind: "mcast",
                    iface: iface.clone(),
                });
            }
        }
        Medium::Ucast6 {
            iface,
            peer,
            scope_id,
        } => {
            let index = iface_index("ucast6", iface)?;
            ucast6_dest(iface, index, *peer, *scope_id, 0)?;
        }
        Medium::Mcast6 { iface, .. } => {
            iface_index("mcast6", iface)?;
        }
        Medium::Serial { device } => {
            // Opening a tty has effects (DTR, the line settings): only see that it is there.
            if let Err(source) = std::fs::metadata(device) {
                return Err(MediaError::Serial {
                    device: device.clone(),
                    op: "open",
                    source,
                });
            }
        }
    }
    Ok(())
}

impl MediaError {
    /// True when the error is about this machine's interfaces rather than the configuration.
    pub fn depends_on_machine(&self) -> bool {
        matches!(
            self,
            MediaError::NoSuchInterface { .. }
                | MediaError::NoIpv4 { .. }
                | MediaError::NoBroadcast { .. }
                | MediaError::ScopeMismatch { .. }
                | MediaError::Serial { .. }
        )
    }
}

/// The interface's index, or the error naming the medium.
pub fn iface_index(kind: &'static str, iface: &str) -> Result<u32, MediaError> {
    nix::net::if_::if_nametoindex(iface).map_err(|_| MediaError::NoSuchInterface {
        kind,
        iface: iface.to_owned(),
    })
}

/// Where `ucast6` packets go: a link-local peer gets the interface as its scope (Heartbeat's
/// rule); a numeric scope written in ha.cf must be that interface's index.
pub fn ucast6_dest(
    iface: &str,
    index: u32,
    peer: Ipv6Addr,
    scope_id: Option<u32>,
    port: u16,
) -> Result<SocketAddr, MediaError> {
    let scope = if peer.is_unicast_link_local() {
        match scope_id {
            Some(s) if s != index => {
                return Err(MediaError::ScopeMismatch {
                    iface: iface.to_owned(),
                    index,
                    scope: s,
                });
            }
            _ => index,
        }
    } else {
        0
    };
    Ok(SocketAddr::V6(SocketAddrV6::new(peer, port, 0, scope)))
}
