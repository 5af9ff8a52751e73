//! The few rtnetlink queries IPaddr needs: links by name/index, the address dump, add, delete.
//! One connection per group operation (see `batch`), in the caller's network namespace.

use std::net::IpAddr;

use futures::TryStreamExt as _;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::Handle;

/// An open rtnetlink connection; its driver task stops when this is dropped.
pub(crate) struct Netlink {
    handle: Handle,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The parts of a link IPaddr cares about.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    /// Loopback or NOARP links get no gratuitous ARP.
    pub arp_capable: bool,
}

/// One address from the dump.
#[derive(Debug, Clone)]
pub(crate) struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
    pub msg: AddressMessage,
}

/// The errno carried by a netlink error reply, if that is what failed.
pub(crate) fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(msg.raw_code().abs()),
        _ => None,
    }
}

impl Netlink {
    /// Open a connection and drive it on the current runtime.
    pub(crate) fn connect() -> std::io::Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let driver = tokio::spawn(conn);
        Ok(Netlink { handle, driver })
    }

    /// The rtnetlink handle, for test setup this module does not wrap.
    #[cfg(test)]
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The link called `name`, or `None` if there is none (test setup; the agent reads the
    /// batch's link dump).
    #[cfg(test)]
    pub(crate) async fn link_by_name(&self, name: &str) -> Result<Option<Link>, rtnetlink::Error> {
        let req = self.handle.link().get().match_name(name.to_owned());
        first_link(req.execute()).await
    }

    /// Every link.
    pub(crate) async fn links(&self) -> Result<Vec<Link>, rtnetlink::Error> {
        let msgs: Vec<LinkMessage> = self.handle.link().get().execute().try_collect().await?;
        Ok(msgs.into_iter().map(to_link).collect())
    }

    /// Every address on every link.
    pub(crate) async fn addresses(&self) -> Result<Vec<Addr>, rtnetlink::Error> {
        let msgs: Vec<AddressMessage> = self.handle.address().get().execute().try_collect().await?;
        Ok(msgs.into_iter().filter_map(to_addr).collect())
    }

    /// RTM_NEWADDR with exclusive create; the caller decides what EEXIST means. The message
    /// sent, which also removes the address again.
    pub(crate) async fn add(
        &self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
        edit: impl FnOnce(&mut AddressMessage),
    ) -> Result<AddressMessage, rtnetlink::Error> {
        let mut req = self.handle.address().add(index, addr, prefix);
        edit(req.message_mut());
        let msg = req.message_mut().clone();
        req.execute().await?;
        Ok(msg)
    }

    /// The message `add` sends for these arguments, not sent.
    pub(crate) fn add_message(
        &self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
        edit: impl FnOnce(&mut AddressMessage),
    ) -> AddressMessage {
        let mut req = self.handle.address().add(index, addr, prefix);
        edit(req.message_mut());
        req.message_mut().clone()
    }

    /// RTM_DELADDR of an address exactly as the dump reported it.
    pub(crate) async fn del(&self, msg: AddressMessage) -> Result<(), rtnetlink::Error> {
        self.handle.address().del(msg).execute().await
    }
}

#[cfg(test)]
async fn first_link(
    stream: impl futures::Stream<Item = Result<LinkMessage, rtnetlink::Error>>,
) -> Result<Option<Link>, rtnetlink::Error> {
    let mut stream = std::pin::pin!(stream);
    match stream.try_next().await {
        Ok(msg) => Ok(msg.map(to_link)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn to_link(msg: LinkMessage) -> Link {
    let mut name = String::new();
    let mut mac = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => {}
        }
    }
    let flags = msg.header.flags;
    Link {
        index: msg.header.index,
        name,
        mac,
        arp_capable: !flags.intersects(LinkFlags::Loopback | LinkFlags::Noarp),
    }
}

fn to_addr(msg: AddressMessage) -> Option<Addr> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
    let mut local = None;
    let mut address = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    Some(Addr {
        index: msg.header.index,
        addr: local.or(address)?,
        prefix: msg.header.prefix_len,
        msg,
    })
}

/// Whether `addr` lies in `net/prefix` (same family only).
pub(crate) fn subnet_contains(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The network address of `addr/prefix`, for log lines.
pub(crate) fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn containment() {
        assert!(subnet_contains(ip("198.18.0.1"), 24, ip("198.18.0.200")));
        assert!(!subnet_contains(ip("198.18.0.1"), 24, ip("198.18.1.1")));
        assert!(subnet_contains(ip("10.0.0.1"), 0, ip("192.0.2.1")));
        assert!(subnet_contains(ip("10.0.0.1"), 32, ip("10.0.0.1")));
        assert!(!subnet_contains(ip("10.0.0.1"), 32, ip("10.0.0.2")));
        assert!(subnet_contains(ip("2001:db8::1"), 64, ip("2001:db8::ffff")));
        assert!(!subnet_contains(ip("2001:db8::1"), 64, ip("2001:db9::1")));
        assert!(!subnet_contains(ip("10.0.0.1"), 8, ip("::1")));
    }

    #[test]
    fn network() {
        assert_eq!(network_of(ip("198.18.0.77"), 24), ip("198.18.0.0"));
        assert_eq!(network_of(ip("2001:db8::1"), 64), ip("2001:db8::"));
    }
}
