//! Ping nodes (ha.cf `ping`, `ping_group`, `deadping`): had sends ICMP echo requests to
//! each address every keepalive from a raw ICMP socket in the daemon (no `ping` process)
//! and counts the ping nodes that answered within `deadping`. The count goes to the
//! cluster (`ClusterInput::PingCount`), which compares it with the peer's (`cluster/ping.rs`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ha_config::PingNode;
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Which ping nodes answered lately. Pure: instants are passed in.
#[derive(Debug)]
pub struct PingTracker {
    nodes: Vec<PingNode>,
    last_reply: Vec<Option<Instant>>,
    deadping: Duration,
    started: Instant,
}

impl PingTracker {
    /// A tracker that has heard nothing yet.
    pub fn new(nodes: Vec<PingNode>, deadping: Duration, now: Instant) -> Self {
        let n = nodes.len();
        Self {
            nodes,
            last_reply: vec![None; n],
            deadping,
            started: now,
        }
    }

    /// An echo reply from `from` arrived.
    pub fn on_reply(&mut self, now: Instant, from: IpAddr) {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.addrs.contains(&from) {
                self.last_reply[i] = Some(now);
            }
        }
    }

    /// Ping nodes heard within deadping.
    pub fn alive(&self, now: Instant) -> u32 {
        self.last_reply
            .iter()
            .filter(|t| t.is_some_and(|t| now.saturating_duration_since(t) < self.deadping))
            .count() as u32
    }

    /// The count is meaningful once every node answered or deadping passed since start:
    /// before that a node we have not pinged yet would look dead.
    pub fn settled(&self, now: Instant) -> bool {
        self.last_reply.iter().all(Option::is_some)
            || now.saturating_duration_since(self.started) >= self.deadping
    }

    /// Every address to ping.
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.nodes.iter().flat_map(|n| n.addrs.iter().copied())
    }

    /// How many ping nodes there are.
    pub fn total(&self) -> usize {
        self.nodes.len()
    }
}

/// An ICMP echo request (type 8) with our identifier and sequence number.
pub fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"had-ping");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether a raw-socket datagram (IPv4 header + ICMP) is an echo reply to `id`.
pub fn is_reply_to(datagram: &[u8], id: u16) -> bool {
    let Some(&vihl) = datagram.first() else {
        return false;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let Some(icmp) = datagram.get(ihl..) else {
        return false;
    };
    icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes()
}

/// Ping the nodes every `every`; send the count of live ping nodes on `tx` whenever it
/// changes (once settled). Failing to open the socket is logged: the tiebreak is then off.
pub fn spawn(
    nodes: Vec<PingNode>,
    deadping: Duration,
    every: Duration,
    tx: mpsc::UnboundedSender<u32>,
) {
    if nodes.is_empty() {
        return;
    }
    let sock = match socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    ) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot open an ICMP socket for ping nodes ({e}); the ping tiebreak is off");
            return;
        }
    };
    // tokio's datagram socket only calls sendto/recvfrom on the descriptor, which is what
    // a raw ICMP socket needs too; this keeps the daemon free of `unsafe` fd registration.
    let sock = match UdpSocket::from_std(std::net::UdpSocket::from(sock)) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot poll the ICMP socket ({e}); the ping tiebreak is off");
            return;
        }
    };
    let sock6 = open_v6_if_needed(&nodes);
    tokio::spawn(run(
        sock,
        sock6,
        PingTracker::new(nodes, deadping, Instant::now()),
        every,
        tx,
    ));
}

/// The ICMPv6 socket when an IPv6 address is to be pinged (`ping6`, `ping_group`).
fn open_v6_if_needed(nodes: &[PingNode]) -> Option<UdpSocket> {
    if !nodes.iter().flat_map(|n| &n.addrs).any(IpAddr::is_ipv6) {
        return None;
    }
    crate::ping6::open()
        .inspect_err(|e| {
            warn!("cannot open an ICMPv6 socket ({e}); IPv6 ping nodes will count as unreachable")
        })
        .ok()
}

/// Receives from the ICMPv6 socket, or never when there is none.
async fn recv6(sock6: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match sock6 {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn run(
    sock: UdpSocket,
    sock6: Option<UdpSocket>,
    mut tracker: PingTracker,
    every: Duration,
    tx: mpsc::UnboundedSender<u32>,
) {
    let id = (std::process::id() & 0xffff) as u16;
    let mut seq: u16 = 0;
    let mut tick = tokio::time::interval(every);
    let mut last: Option<u32> = None;
    let mut buf = [0u8; 1500];
    let mut buf6 = [0u8; 1500];
    info!(
        "pinging {} ping node(s) every {every:?} (deadping {:?})",
        tracker.total(),
        tracker.deadping
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {
                seq = seq.wrapping_add(1);
                let pkt = echo_request(id, seq);
                let pkt6 = crate::ping6::echo_request(id, seq);
                for a in tracker.addrs().collect::<Vec<_>>() {
                    // An unreachable address is what we measure: errors are not fatal.
                    let _ = match (a, &sock6) {
                        (IpAddr::V4(_), _) => sock.try_send_to(&pkt, SocketAddr::new(a, 0)),
                        (IpAddr::V6(_), Some(s6)) => s6.try_send_to(&pkt6, SocketAddr::new(a, 0)),
                        (IpAddr::V6(_), None) => Ok(0),
                    };
                }
            }
            r = recv6(sock6.as_ref(), &mut buf6) => match r {
                Ok((n, from)) => {
                    if crate::ping6::is_reply_to(&buf6[..n], id) {
                        tracker.on_reply(Instant::now(), from.ip());
                    }
                }
                Err(e) => {
                    warn!("ICMPv6 receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V4(from))) => {
                    if is_reply_to(&buf[..n], id) {
                        tracker.on_reply(Instant::now(), IpAddr::V4(*from.ip()));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!("ICMP receive failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        let now = Instant::now();
        if tracker.settled(now) {
            let n = tracker.alive(now);
            if last != Some(n) {
                info!("ping nodes: {n} of {} reachable", tracker.total());
                last = Some(n);
                if tx.send(n).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, addrs: &[[u8; 4]]) -> PingNode {
        PingNode {
            name: name.into(),
            addrs: addrs.iter().map(|a| IpAddr::from(*a)).collect(),
        }
    }

    #[test]
    fn counts_nodes_heard_within_deadping_and_groups_once() {
        let t = Instant::now();
        let mut p = PingTracker::new(
            vec![
                node("198.18.0.1", &[[198, 18, 0, 1]]),
                node("up", &[[198, 18, 0, 2], [198, 18, 0, 3]]),
            ],
            Duration::from_secs(2),
            t,
        );
        assert!(!p.settled(t));
        p.on_reply(t, IpAddr::from([198, 18, 0, 3]));
        p.on_reply(t, IpAddr::from([198, 18, 0, 2]));
        assert_eq!(p.alive(t), 1, "a group counts once");
        assert!(!p.settled(t));
        p.on_reply(t, IpAddr::from([198, 18, 0, 1]));
        assert!(p.settled(t));
        assert_eq!(p.alive(t + Duration::from_secs(1)), 2);
        assert_eq!(
            p.alive(t + Duration::from_secs(2)),
            0,
            "silent for deadping"
        );
        let q = PingTracker::new(
            vec![node("x", &[[198, 18, 0, 9]])],
            Duration::from_secs(2),
            t,
        );
        assert!(q.settled(t + Duration::from_secs(2)));
        assert_eq!(q.alive(t + Duration::from_secs(2)), 0);
    }

    #[test]
    fn echo_packets() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        let mut reply = vec![0x45u8; 20];
        reply.extend_from_slice(&p);
        reply[20] = 0;
        assert!(is_reply_to(&reply, 0x1234));
        assert!(!is_reply_to(&reply, 0x1235));
        reply[20] = 8;
        assert!(
            !is_reply_to(&reply, 0x1234),
            "our own request is not a reply"
        );
        assert!(!is_reply_to(&[0x45], 0x1234));
    }
}
