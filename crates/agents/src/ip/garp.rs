//! Gratuitous ARP: an ARP request for the VIP from the VIP, broadcast on one interface.
//! Sent through a send-only AF_PACKET socket (protocol 0 receives nothing, needs no promiscuity).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Arc;

use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike as _, sendto, socket,
};
use pnet_base::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};

const ETH_HEADER: usize = 14;
const ARP_IPV4: usize = 28;
/// Ethernet + ARP; the driver pads to the 60-byte minimum.
pub(crate) const FRAME_LEN: usize = ETH_HEADER + ARP_IPV4;
const BROADCAST: [u8; 6] = [0xff; 6];
pub(crate) const ETH_P_ARP: u16 = 0x0806;

/// Build the frame: sender IP = target IP = `vip`, sender MAC = `mac`, to ff:ff:ff:ff:ff:ff.
pub(crate) fn build_frame(mac: [u8; 6], vip: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut frame = [0u8; FRAME_LEN];
    let src = MacAddr::from(mac);
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(MacAddr::from(BROADCAST));
        eth.set_source(src);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[ETH_HEADER..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(src);
        arp.set_sender_proto_addr(vip);
        // RFC 5227 announcement: target hardware address zero, target IP = our own.
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(vip);
    }
    frame
}

/// `sockaddr_ll` for `ifindex` with `protocol` (host order) and a broadcast destination.
pub(crate) fn link_addr(ifindex: u32, protocol: u16) -> std::io::Result<LinkAddr> {
    let index = i32::try_from(ifindex).map_err(|_| std::io::Error::other("ifindex overflow"))?;
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: index,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_ll>())
        .map_err(|_| std::io::Error::other("sockaddr_ll size"))?;
    // SAFETY: `sll` is a fully initialised sockaddr_ll that lives across the call, and `len`
    // is its exact size; from_raw copies it and checks the family.
    let addr = unsafe { LinkAddr::from_raw((&raw const sll).cast::<libc::sockaddr>(), Some(len)) };
    addr.ok_or_else(|| std::io::Error::other("cannot build sockaddr_ll"))
}

/// A send-only AF_PACKET socket: protocol 0, so it is never attached to any receive path
/// (needs no promiscuity); each send names its interface, so one serves every link.
pub(crate) fn packet_socket() -> std::io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?)
}

/// A frame ready for one interface, sent through a (possibly shared) packet socket: a
/// gratuitous ARP or an unsolicited neighbour advertisement.
#[derive(Debug)]
pub(crate) struct FrameSender {
    fd: Arc<OwnedFd>,
    dest: LinkAddr,
    frame: Box<[u8]>,
}

impl FrameSender {
    /// `frame`, a whole Ethernet frame of type `ethertype`, for `ifindex` through `fd` (see
    /// [`packet_socket`]).
    pub(crate) fn new(
        fd: Arc<OwnedFd>,
        ifindex: u32,
        ethertype: u16,
        frame: Box<[u8]>,
    ) -> std::io::Result<FrameSender> {
        Ok(FrameSender {
            fd,
            dest: link_addr(ifindex, ethertype)?,
            frame,
        })
    }

    /// The gratuitous ARP for `vip` from `mac`.
    pub(crate) fn garp(
        fd: Arc<OwnedFd>,
        ifindex: u32,
        mac: [u8; 6],
        vip: Ipv4Addr,
    ) -> std::io::Result<FrameSender> {
        FrameSender::new(fd, ifindex, ETH_P_ARP, Box::new(build_frame(mac, vip)))
    }

    /// Send one frame.
    pub(crate) fn send(&self) -> std::io::Result<()> {
        let sent = sendto(
            self.fd.as_raw_fd(),
            &self.frame,
            &self.dest,
            MsgFlags::empty(),
        )?;
        if sent == self.frame.len() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "short send: {sent} of {} bytes",
                self.frame.len()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::Packet as _;
    use pnet_packet::arp::ArpPacket;
    use pnet_packet::ethernet::EthernetPacket;

    #[test]
    fn frame_is_a_gratuitous_request() {
        let mac = [0x02, 0, 0, 0, 0, 0x42];
        let vip: Ipv4Addr = "198.18.0.100".parse().unwrap();
        let frame = build_frame(mac, vip);
        let eth = EthernetPacket::new(&frame).unwrap();
        assert_eq!(eth.get_destination(), MacAddr::broadcast());
        assert_eq!(eth.get_source(), MacAddr::from(mac));
        assert_eq!(eth.get_ethertype(), EtherTypes::Arp);
        let arp = ArpPacket::new(eth.payload()).unwrap();
        assert_eq!(arp.get_operation(), ArpOperations::Request);
        assert_eq!(arp.get_sender_proto_addr(), vip);
        assert_eq!(arp.get_target_proto_addr(), vip);
        assert_eq!(arp.get_sender_hw_addr(), MacAddr::from(mac));
        assert_eq!(arp.get_hardware_type(), ArpHardwareTypes::Ethernet);
        assert_eq!(arp.get_protocol_type(), EtherTypes::Ipv4);
    }

    #[test]
    fn link_addr_carries_index() {
        let a = link_addr(7, ETH_P_ARP).unwrap();
        assert_eq!(a.ifindex(), 7);
        assert_eq!(a.protocol(), ETH_P_ARP.to_be());
        assert_eq!(a.addr(), Some(BROADCAST));
    }
}
