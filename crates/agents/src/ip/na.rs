//! Unsolicited neighbour advertisement (RFC 4861 §7.2.6): IPv6's gratuitous ARP. An ICMPv6
//! type 136 with the override flag, target = the VIP, to all-nodes (ff02::1), hop limit 255,
//! sent through the same kind of send-only AF_PACKET socket as the GARP.

use std::net::Ipv6Addr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::garp::FrameSender;

const ETH_HEADER: usize = 14;
const IPV6_HEADER: usize = 40;
/// ICMPv6 NA (24 bytes) + one target link-layer address option (8 bytes).
const NA_LEN: usize = 32;
/// The whole Ethernet frame.
pub(crate) const FRAME_LEN: usize = ETH_HEADER + IPV6_HEADER + NA_LEN;
const ETH_P_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// R=0, S=0 (unsolicited), O=1: receivers replace the cached link-layer address.
const FLAG_OVERRIDE: u8 = 0x20;
const OPT_TARGET_LL: u8 = 2;
/// ff02::1 and its Ethernet mapping 33:33:00:00:00:01 (RFC 2464 §7).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

/// Build the frame announcing that `vip` is at `mac`.
pub(crate) fn build_frame(mac: [u8; 6], vip: Ipv6Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&ALL_NODES_MAC);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    let ip = &mut f[ETH_HEADER..ETH_HEADER + IPV6_HEADER];
    ip[0] = 0x60; // version 6, traffic class and flow label 0
    ip[4..6].copy_from_slice(&(NA_LEN as u16).to_be_bytes());
    ip[6] = ICMPV6;
    // RFC 4861 §7.1.2: receivers drop neighbour discovery with any other hop limit.
    ip[7] = 255;
    ip[8..24].copy_from_slice(&vip.octets());
    ip[24..40].copy_from_slice(&ALL_NODES.octets());
    let na = &mut f[ETH_HEADER + IPV6_HEADER..];
    na[0] = NEIGHBOR_ADVERTISEMENT;
    na[4] = FLAG_OVERRIDE;
    na[8..24].copy_from_slice(&vip.octets());
    na[24] = OPT_TARGET_LL;
    na[25] = 1; // in units of 8 bytes
    na[26..32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(vip, ALL_NODES, na);
    na[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The ICMPv6 checksum: one's complement sum over the pseudo-header (RFC 8200 §8.1) and the
/// message, whose checksum field is zero.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |b| u32::from(*b));
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The unsolicited neighbour advertisement of `vip` from `mac` on `ifindex`, through `fd`
/// (see [`super::garp::packet_socket`]).
pub(crate) fn sender(
    fd: Arc<OwnedFd>,
    ifindex: u32,
    mac: [u8; 6],
    vip: Ipv6Addr,
) -> std::io::Result<FrameSender> {
    FrameSender::new(fd, ifindex, ETH_P_IPV6, Box::new(build_frame(mac, vip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The frame for 2001:db8::10 at 02:00:00:00:00:42, written out field by field from
    /// RFC 4861 §4.4 / RFC 8200 §3. The checksum 0xf8cb was computed outside this code (a
    /// separate Python one's-complement sum over the pseudo-header and message) and is
    /// checked below once more with a sum written differently (32-bit words).
    const EXPECTED: [u8; FRAME_LEN] = [
        // Ethernet: dst 33:33:00:00:00:01, src 02:00:00:00:00:42, type 0x86dd
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x42, 0x86, 0xdd,
        // IPv6: version 6, payload 32, next header 58, hop limit 255
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
        // source 2001:db8::10
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10,
        // destination ff02::1
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01,
        // ICMPv6 type 136, code 0, checksum, flags R=0 S=0 O=1, reserved
        0x88, 0x00, 0xf8, 0xcb, 0x20, 0x00, 0x00, 0x00, // target 2001:db8::10
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10,
        // option 2 (target link-layer address), length 1, the MAC
        0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x42,
    ];

    #[test]
    fn frame_matches_the_rfc_layout_byte_for_byte() {
        let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let frame = build_frame([0x02, 0, 0, 0, 0, 0x42], vip);
        assert_eq!(frame, EXPECTED);
    }

    #[test]
    fn checksum_verifies_with_an_independent_sum() {
        // Sum of 32-bit big-endian words of pseudo-header + message, folded twice: a message
        // with a correct checksum sums to 0xffff.
        let mut words: Vec<u8> = Vec::new();
        words.extend_from_slice(&EXPECTED[22..54]); // source + destination
        words.extend_from_slice(&[0, 0, 0, 32, 0, 0, 0, 58]);
        words.extend_from_slice(&EXPECTED[54..]);
        let mut acc: u64 = 0;
        for w in words.chunks(4) {
            acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        assert_eq!(acc, 0xffff);
        // And a different VIP changes the checksum consistently.
        let other = build_frame([0x02, 0, 0, 0, 0, 0x42], "2001:db8::11".parse().unwrap());
        let mut copy = other;
        copy[56] = 0;
        copy[57] = 0;
        let want = icmpv6_checksum(
            "2001:db8::11".parse().unwrap(),
            ALL_NODES,
            &copy[ETH_HEADER + IPV6_HEADER..],
        );
        assert_eq!(u16::from_be_bytes([other[56], other[57]]), want);
    }

    #[test]
    fn link_addr_is_for_ipv6() {
        let a = crate::ip::garp::link_addr(3, ETH_P_IPV6).unwrap();
        assert_eq!(a.ifindex(), 3);
        assert_eq!(a.protocol(), ETH_P_IPV6.to_be());
    }
}
