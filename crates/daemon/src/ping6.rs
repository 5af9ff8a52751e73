//! ICMPv6 echo for `ping6` and the IPv6 members of `ping_group`: the packets and the raw
//! socket, beside the IPv4 ones in `ping.rs`. The kernel fills in the ICMPv6 checksum on a
//! raw ICMPv6 socket (RFC 3542 §3.1), and hands back the message without the IPv6 header.

use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use tokio::net::UdpSocket;

const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;

use crate::ping::EchoId;

/// An ICMPv6 echo request with our identifier, sequence number and payload (checksum left
/// to the kernel).
pub fn echo_request(me: EchoId, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = ECHO_REQUEST;
    p[4..6].copy_from_slice(&me.id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(&me.token);
    p
}

/// The sequence number of an ICMPv6 message (no IPv6 header) that is an echo reply carrying
/// our identifier and payload (the kernel checked its checksum); `None` for anything else.
pub fn reply_seq(msg: &[u8], me: EchoId) -> Option<u16> {
    let ok = msg.len() == 16
        && msg[0] == ECHO_REPLY
        && msg[1] == 0
        && msg[4..6] == me.id.to_be_bytes()
        && msg[8..16] == me.token;
    ok.then(|| u16::from_be_bytes([msg[6], msg[7]]))
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
        let me = EchoId {
            id: 0x1234,
            token: *b"8bytes!!",
        };
        let p = echo_request(me, 7);
        assert_eq!(&p[..8], &[128, 0, 0, 0, 0x12, 0x34, 0, 7]);
        let mut reply = p;
        reply[0] = ECHO_REPLY;
        assert_eq!(reply_seq(&reply, me), Some(7));
        assert_eq!(reply_seq(&reply, EchoId { id: 0x1235, ..me }), None);
        let forger = EchoId {
            token: *b"guessed!",
            ..me
        };
        assert_eq!(reply_seq(&reply, forger), None, "payload");
        assert_eq!(reply_seq(&p, me), None, "our own request is not a reply");
        assert_eq!(reply_seq(&reply[..7], me), None);
    }
}
