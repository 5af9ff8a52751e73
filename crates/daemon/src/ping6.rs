//! ICMPv6 echo for `ping6` and the IPv6 members of `ping_group`: the packets and the raw
//! socket, beside the IPv4 ones in `ping.rs`. The kernel fills in the ICMPv6 checksum on a
//! raw ICMPv6 socket (RFC 3542 §3.1), and hands back the message without the IPv6 header.

use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use tokio::net::UdpSocket;

const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;

/// An ICMPv6 echo request with our identifier and sequence number (checksum left to the
/// kernel).
pub fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"had-ping");
    p
}

/// Whether an ICMPv6 message (no IPv6 header) is an echo reply to `id`.
pub fn is_reply_to(msg: &[u8], id: u16) -> bool {
    msg.len() >= 8 && msg[0] == ECHO_REPLY && msg[1] == 0 && msg[4..6] == id.to_be_bytes()
}

/// The raw ICMPv6 socket, polled through tokio as `ping.rs` does for IPv4.
pub fn open() -> std::io::Result<UdpSocket> {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_packets() {
        let p = echo_request(0x1234, 7);
        assert_eq!(&p[..8], &[128, 0, 0, 0, 0x12, 0x34, 0, 7]);
        let mut reply = p;
        reply[0] = ECHO_REPLY;
        assert!(is_reply_to(&reply, 0x1234));
        assert!(!is_reply_to(&reply, 0x1235));
        assert!(!is_reply_to(&p, 0x1234), "our own request is not a reply");
        assert!(!is_reply_to(&reply[..7], 0x1234));
    }
}
