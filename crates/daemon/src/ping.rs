//! Ping nodes (ha.cf `ping`, `ping_group`, `deadping`): had sends ICMP echo requests to
//! each address every keepalive from a raw ICMP socket in the daemon (no `ping` process)
//! and counts the ping nodes that answered within `deadping`. The count goes to the
//! cluster (`ClusterInput::PingCount`), which compares it with the peer's (`cluster/ping.rs`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::logcat::{Dur, LogEvent, log};
use ha_config::PingNode;
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

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

/// What identifies our echo requests: a random identifier and a random payload, chosen at
/// start, so that a host that does not see our requests cannot forge the replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoId {
    /// The ICMP identifier.
    pub id: u16,
    /// The payload every request carries and every reply must echo.
    pub token: [u8; 8],
}

impl EchoId {
    /// A fresh random identity (the standard library's OS-seeded hasher keys are the
    /// randomness: no extra dependency for 10 bytes).
    pub fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let r = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_u32(std::process::id());
            h.finish()
        };
        let a = r(1);
        Self {
            id: (a >> 48) as u16,
            token: r(2).to_be_bytes(),
        }
    }
}

/// Sequence numbers sent lately, for matching replies.
#[derive(Debug, Default)]
pub struct Outstanding {
    sent: std::collections::VecDeque<(u16, Instant)>,
}

/// How many requests stay answerable: more than deadping ever spans at keepalive.
const OUTSTANDING: usize = 256;

impl Outstanding {
    /// Records a request sent at `now`.
    pub fn sent(&mut self, seq: u16, now: Instant) {
        if self.sent.len() == OUTSTANDING {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
    }

    /// Whether a reply with `seq` answers a request sent within `max_age`.
    pub fn answers(&self, seq: u16, now: Instant, max_age: Duration) -> bool {
        self.sent
            .iter()
            .any(|&(s, at)| s == seq && now.saturating_duration_since(at) < max_age)
    }
}

/// An ICMP echo request (type 8) with our identifier, sequence number and payload.
pub fn echo_request(me: EchoId, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8;
    p[4..6].copy_from_slice(&me.id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(&me.token);
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

/// The sequence number of a raw-socket datagram (IPv4 header + ICMP) that is an intact echo
/// reply carrying our identifier and payload; `None` for anything else.
pub fn reply_seq(datagram: &[u8], me: EchoId) -> Option<u16> {
    let ihl = usize::from(datagram.first()? & 0x0f) * 4;
    let icmp = datagram.get(ihl..)?;
    let ok = icmp.len() == 16
        && icmp[0] == 0
        && icmp[1] == 0
        && icmp[4..6] == me.id.to_be_bytes()
        && icmp[8..16] == me.token
        && checksum(icmp) == 0;
    ok.then(|| u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// Ping the nodes every `every`; send the count of live ping nodes on `tx` whenever it
/// changes (once settled). Failing to open the socket is logged: the tiebreak is then off.
/// The task is the caller's to own.
pub fn spawn(
    nodes: Vec<PingNode>,
    deadping: Duration,
    every: Duration,
    tx: mpsc::UnboundedSender<u32>,
) -> Option<tokio::task::JoinHandle<()>> {
    if nodes.is_empty() {
        return None;
    }
    let sock = match socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::Icmp,
    ) {
        Ok(s) => s,
        Err(e) => {
            log(&LogEvent::IcmpUnavailable {
                reason: &e.to_string(),
            });
            return None;
        }
    };
    // tokio's datagram socket only calls sendto/recvfrom on the descriptor, which is what
    // a raw ICMP socket needs too; this keeps the daemon free of `unsafe` fd registration.
    let sock = match UdpSocket::from_std(std::net::UdpSocket::from(sock)) {
        Ok(s) => s,
        Err(e) => {
            log(&LogEvent::IcmpUnpollable {
                reason: &e.to_string(),
            });
            return None;
        }
    };
    let sock6 = open_v6_if_needed(&nodes);
    Some(tokio::spawn(run(
        sock,
        sock6,
        PingTracker::new(nodes, deadping, Instant::now()),
        every,
        tx,
    )))
}

/// The ICMPv6 socket when an IPv6 address is to be pinged (`ping6`, `ping_group`).
fn open_v6_if_needed(nodes: &[PingNode]) -> Option<UdpSocket> {
    if !nodes.iter().flat_map(|n| &n.addrs).any(IpAddr::is_ipv6) {
        return None;
    }
    crate::ping6::open()
        .inspect_err(|e| {
            log(&LogEvent::Icmp6Unavailable {
                reason: &e.to_string(),
            })
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
    let me = EchoId::random();
    let mut outstanding = Outstanding::default();
    let mut seq: u16 = 0;
    let mut tick = tokio::time::interval(every);
    let mut last: Option<u32> = None;
    let mut buf = [0u8; 1500];
    let mut buf6 = [0u8; 1500];
    log(&LogEvent::Pinging {
        count: tracker.total(),
        every: Dur(every),
        deadping: Dur(tracker.deadping),
    });
    loop {
        tokio::select! {
            _ = tick.tick() => {
                seq = seq.wrapping_add(1);
                outstanding.sent(seq, Instant::now());
                let pkt = echo_request(me, seq);
                let pkt6 = crate::ping6::echo_request(me, seq);
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
                    let now = Instant::now();
                    if crate::ping6::reply_seq(&buf6[..n], me)
                        .is_some_and(|s| outstanding.answers(s, now, tracker.deadping))
                    {
                        tracker.on_reply(now, from.ip());
                    }
                }
                Err(e) => {
                    log(&LogEvent::Icmp6ReceiveFailed { reason: &e.to_string() });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, SocketAddr::V4(from))) => {
                    let now = Instant::now();
                    // Only an answer to a request of ours, from an address we pinged, counts.
                    if reply_seq(&buf[..n], me)
                        .is_some_and(|s| outstanding.answers(s, now, tracker.deadping))
                    {
                        tracker.on_reply(now, IpAddr::V4(*from.ip()));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    log(&LogEvent::IcmpReceiveFailed { reason: &e.to_string() });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        let now = Instant::now();
        if tracker.settled(now) {
            let n = tracker.alive(now);
            if last != Some(n) {
                log(&LogEvent::PingReachable {
                    reachable: n,
                    total: tracker.total(),
                });
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

    /// The reply a ping node sends: type 0, the checksum adjusted, the rest echoed.
    fn reply_to(req: &[u8; 16]) -> Vec<u8> {
        let mut icmp = req.to_vec();
        icmp[0] = 0;
        icmp[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut d = vec![0x45u8; 20];
        d.extend_from_slice(&icmp);
        d
    }

    #[test]
    fn only_intact_replies_to_our_requests_count() {
        let me = EchoId {
            id: 0x1234,
            token: *b"8bytes!!",
        };
        let p = echo_request(me, 7);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        let reply = reply_to(&p);
        assert_eq!(reply_seq(&reply, me), Some(7));
        let other_id = EchoId { id: 0x1235, ..me };
        assert_eq!(reply_seq(&reply, other_id), None, "identifier");
        let other_token = EchoId {
            token: *b"guessed!",
            ..me
        };
        assert_eq!(reply_seq(&reply, other_token), None, "payload");
        let forged = reply_to(&echo_request(other_token, 7));
        assert_eq!(reply_seq(&forged, me), None, "payload of a forger");
        let mut corrupt = reply.clone();
        corrupt[30] ^= 1;
        assert_eq!(reply_seq(&corrupt, me), None, "checksum");
        let mut request = vec![0x45u8; 20];
        request.extend_from_slice(&p);
        assert_eq!(reply_seq(&request, me), None, "our own request is no reply");
        assert_eq!(reply_seq(&[0x45], me), None);
    }

    #[test]
    fn a_reply_must_answer_a_recent_request() {
        let t = Instant::now();
        let mut o = Outstanding::default();
        o.sent(5, t);
        let ttl = Duration::from_secs(2);
        assert!(o.answers(5, t + Duration::from_secs(1), ttl));
        assert!(!o.answers(6, t, ttl), "a sequence number never sent");
        assert!(!o.answers(5, t + ttl, ttl), "too old");
        for s in 0..300u16 {
            o.sent(s.wrapping_add(100), t);
        }
        assert!(!o.answers(5, t, ttl), "forgotten");
    }

    #[test]
    fn identities_differ_between_starts() {
        let a = EchoId::random();
        let b = EchoId::random();
        assert_ne!(a, b);
    }
}
