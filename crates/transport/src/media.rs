//! The heartbeat edge: one UDP socket per interface for `bcast`/`ucast` (and one IPv6 one
//! for `ucast6`), one per `mcast`/`mcast6` line, one tty per `serial` port; fanned in for
//! receiving and written to all for sending.

mod serial;
mod udp6;

pub use ha_config::media::{MediaError, check_medium};
pub use serial::{Framer, ring_copy, to_tty};

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ha_config::Medium;
use ha_config::media::{iface_index, iface_v4, ucast6_dest};
use ha_core::logcat::{self, LogEvent};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{Interest, ReadBuf};
use tokio::net::UdpSocket;

use crate::auth::Auth;
use crate::liveness::MediumId;

/// Bytes read per datagram; IPv4 UDP cannot carry more.
const RECV_BUF: usize = 64 * 1024;
/// A failing destination is logged at most this often.
const SEND_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// One received datagram: the link it came in on, its source, its bytes.
pub type Received = (MediumId, SocketAddr, Vec<u8>);

/// One open socket and the link it belongs to.
#[derive(Debug)]
struct Sock {
    medium: MediumId,
    socket: SockIo,
}

/// How this runtime uses a socket.
#[derive(Debug)]
enum SockIo {
    /// Read ([`MediaSet::recv`]) and written here.
    Both(UdpSocket),
    /// Written only ([`MediaSet::send_only`]): registered for writability alone, so that
    /// arriving datagrams (the receive thread reads them) do not wake this runtime.
    Send(AsyncFd<std::net::UdpSocket>),
}

impl SockIo {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            SockIo::Both(s) => s.as_fd(),
            SockIo::Send(s) => s.get_ref().as_fd(),
        }
    }

    async fn send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            SockIo::Both(s) => s.send_to(bytes, to).await,
            SockIo::Send(s) => {
                s.async_io(Interest::WRITABLE, |s| s.send_to(bytes, to))
                    .await
            }
        }
    }
}

/// Where each packet goes: socket index and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dest {
    sock: usize,
    addr: SocketAddr,
}

#[derive(Debug)]
struct SendErrorLog {
    last_logged: Instant,
    suppressed: u64,
}

/// One open serial port and its link.
#[derive(Debug)]
struct Tty {
    medium: MediumId,
    port: serial::Port,
}

/// What serial ring forwarding needs: who we are and the keys to re-sign with.
#[derive(Debug)]
struct Ring {
    local: String,
    auth: Auth,
}

/// Source address reported for packets read from a serial line, which has none.
pub const SERIAL_FROM: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// All configured media, opened.
#[derive(Debug)]
pub struct MediaSet {
    names: Vec<String>,
    socks: Vec<Sock>,
    ttys: Vec<Tty>,
    ring: Mutex<Option<Ring>>,
    dests: Vec<Dest>,
    /// Where the next `recv` starts polling, so that a busy socket cannot starve the others.
    rotor: AtomicUsize,
    send_errors: Mutex<HashMap<SocketAddr, SendErrorLog>>,
}

impl MediaSet {
    /// Opens every medium, serial ports at Heartbeat's default speed; must be called inside
    /// a tokio runtime.
    pub fn open(media: &[Medium], udpport: u16) -> Result<MediaSet, MediaError> {
        Self::open_with_baud(media, udpport, ha_config::ha_cf::DEFAULT_BAUD)
    }

    /// Opens every medium, serial ports at `baud`; must be called inside a tokio runtime.
    pub fn open_with_baud(
        media: &[Medium],
        udpport: u16,
        baud: u32,
    ) -> Result<MediaSet, MediaError> {
        if media.is_empty() {
            return Err(MediaError::NoMedia);
        }
        let mut set = MediaSet {
            names: Vec::new(),
            socks: Vec::new(),
            ttys: Vec::new(),
            ring: Mutex::new(None),
            dests: Vec::new(),
            rotor: AtomicUsize::new(0),
            send_errors: Mutex::new(HashMap::new()),
        };
        // bcast and ucast on one interface share its socket, as they share
        // the port: a second bound socket would split the traffic between them.
        let mut iface_sock: HashMap<String, usize> = HashMap::new();
        let mut mcast_sock: HashMap<(String, Ipv4Addr, u16), usize> = HashMap::new();
        let mut iface6_sock: HashMap<String, usize> = HashMap::new();
        let mut mcast6_sock: HashMap<(String, Ipv6Addr, u16), usize> = HashMap::new();
        for m in media {
            match m {
                Medium::Bcast { iface } => {
                    let info = iface_v4("bcast", iface)?;
                    if info.addr.is_none() {
                        return Err(MediaError::NoIpv4 {
                            kind: "bcast",
                            iface: iface.clone(),
                        });
                    }
                    let bcast = info.broadcast.ok_or_else(|| MediaError::NoBroadcast {
                        iface: iface.clone(),
                    })?;
                    let sock = set.iface_socket(&mut iface_sock, "bcast", iface, udpport)?;
                    set.add_dest(sock, SocketAddr::V4(SocketAddrV4::new(bcast, udpport)));
                }
                Medium::Ucast { iface, peer } => {
                    let IpAddr::V4(peer4) = *peer else {
                        return Err(MediaError::Ipv6Peer {
                            iface: iface.clone(),
                            peer: *peer,
                        });
                    };
                    iface_v4("ucast", iface)?;
                    let sock = set.iface_socket(&mut iface_sock, "ucast", iface, udpport)?;
                    set.add_dest(sock, SocketAddr::V4(SocketAddrV4::new(peer4, udpport)));
                }
                Medium::Mcast {
                    iface,
                    group,
                    port,
                    ttl,
                    loopback,
                } => {
                    let key = (iface.clone(), *group, *port);
                    let sock = match mcast_sock.get(&key) {
                        Some(&s) => s,
                        None => {
                            let info = iface_v4("mcast", iface)?;
                            let local = info.addr.ok_or_else(|| MediaError::NoIpv4 {
                                kind: "mcast",
                                iface: iface.clone(),
                            })?;
                            let socket =
                                mcast_socket(iface, *group, *port, *ttl, *loopback, local)?;
                            let s = set.push_socket(iface, socket);
                            mcast_sock.insert(key, s);
                            s
                        }
                    };
                    set.add_dest(sock, SocketAddr::V4(SocketAddrV4::new(*group, *port)));
                }
                Medium::Ucast6 {
                    iface,
                    peer,
                    scope_id,
                } => {
                    let index = iface_index("ucast6", iface)?;
                    let dest = ucast6_dest(iface, index, *peer, *scope_id, udpport)?;
                    let sock = match iface6_sock.get(iface) {
                        Some(&s) => s,
                        None => {
                            let s = set.push_socket(iface, udp6::ucast6_socket(iface, udpport)?);
                            iface6_sock.insert(iface.clone(), s);
                            s
                        }
                    };
                    set.add_dest(sock, dest);
                }
                Medium::Mcast6 {
                    iface,
                    group,
                    port,
                    hops,
                    loopback,
                } => {
                    let index = iface_index("mcast6", iface)?;
                    let key = (iface.clone(), *group, *port);
                    let sock = match mcast6_sock.get(&key) {
                        Some(&s) => s,
                        None => {
                            let socket =
                                udp6::mcast6_socket(iface, index, *group, *port, *hops, *loopback)?;
                            let s = set.push_socket(iface, socket);
                            mcast6_sock.insert(key, s);
                            s
                        }
                    };
                    set.add_dest(sock, udp6::mcast6_dest(*group, *port, index));
                }
                Medium::Serial { device } => {
                    let port = serial::Port::open(device, baud)?;
                    let medium = set.link_id(device);
                    set.ttys.push(Tty { medium, port });
                }
            }
        }
        Ok(set)
    }

    /// Turns on Heartbeat's serial ring: a peer's message read on one serial port is copied
    /// to the others (only matters with two or more ports).
    pub fn set_ring(&self, local: &str, auth: Auth) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        *ring = Some(Ring {
            local: local.to_owned(),
            auth,
        });
    }

    /// Link names; the index is the [`MediumId`].
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Every socket with its link, for the receive thread (`recv.rs`).
    pub(crate) fn sockets(&self) -> impl Iterator<Item = (MediumId, BorrowedFd<'_>)> {
        self.socks.iter().map(|s| (s.medium, s.socket.as_fd()))
    }

    /// From now on the network sockets are only written here: the receive thread
    /// (`recv::spawn`) reads its copies. A socket registered for reading would wake this
    /// runtime at every datagram, ours looping back included, and at every datagram of a
    /// flood. [`MediaSet::recv`] then reads the serial ports only.
    pub fn send_only(&mut self) -> Result<(), MediaError> {
        for s in &mut self.socks {
            let SockIo::Both(u) = &s.socket else {
                continue;
            };
            let fail = |source| MediaError::Recv {
                link: self.names.get(s.medium.0).cloned().unwrap_or_default(),
                source,
            };
            // A copy first: the socket is swapped only once its replacement is registered.
            let copy = std::net::UdpSocket::from(u.as_fd().try_clone_to_owned().map_err(fail)?);
            // Deprecated because a borrowed raw fd could be closed while registered; the
            // AsyncFd owns this socket, so the descriptor lives as long as the registration.
            #[allow(deprecated)]
            let fd = AsyncFd::with_interest(copy, Interest::WRITABLE).map_err(fail)?;
            s.socket = SockIo::Send(fd);
        }
        Ok(())
    }

    /// The name of a link.
    pub(crate) fn link_name(&self, m: MediumId) -> String {
        self.names.get(m.0).cloned().unwrap_or_default()
    }

    /// Whether any serial port is configured.
    pub fn has_serial(&self) -> bool {
        !self.ttys.is_empty()
    }

    /// Receives the next message from a serial port (forwarding it on the ring). The daemon
    /// reads the network media through the receive thread and only the serial ports here:
    /// a serial line is not open to a LAN host's flood. Pending forever without ports.
    pub async fn recv_serial(&self) -> Result<Received, MediaError> {
        poll_fn(|cx| self.poll_recv_serial(cx)).await
    }

    /// Receives the next datagram from any medium. Cancel-safe. (The daemon reads through
    /// the receive thread instead, `recv::spawn`.)
    pub async fn recv(&self) -> Result<(MediumId, SocketAddr, Vec<u8>), MediaError> {
        let mut buf = vec![0u8; RECV_BUF];
        poll_fn(|cx| self.poll_recv(cx, &mut buf)).await
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<Received, MediaError>> {
        let n = self.socks.len();
        let start = self.rotor.fetch_add(1, Ordering::Relaxed) % n.max(1);
        for k in 0..n {
            let s = &self.socks[(start + k) % n];
            let SockIo::Both(socket) = &s.socket else {
                continue;
            };
            let mut rb = ReadBuf::new(buf);
            match socket.poll_recv_from(cx, &mut rb) {
                Poll::Ready(Ok(from)) => {
                    return Poll::Ready(Ok((s.medium, from, rb.filled().to_vec())));
                }
                Poll::Ready(Err(source)) => {
                    return Poll::Ready(Err(MediaError::Recv {
                        link: self.names[s.medium.0].clone(),
                        source,
                    }));
                }
                // Each pending socket has registered the waker.
                Poll::Pending => {}
            }
        }
        self.poll_recv_serial(cx)
    }

    fn poll_recv_serial(&self, cx: &mut Context<'_>) -> Poll<Result<Received, MediaError>> {
        for (i, t) in self.ttys.iter().enumerate() {
            match t.port.poll_recv(cx) {
                Poll::Ready(Ok(bytes)) => {
                    self.forward_on_ring(i, &bytes);
                    return Poll::Ready(Ok((t.medium, SERIAL_FROM, bytes)));
                }
                Poll::Ready(Err(source)) => {
                    return Poll::Ready(Err(MediaError::Recv {
                        link: self.names[t.medium.0].clone(),
                        source,
                    }));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    fn forward_on_ring(&self, from: usize, bytes: &[u8]) {
        if self.ttys.len() < 2 {
            return;
        }
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let Some(copy) = ring
            .as_ref()
            .and_then(|r| ring_copy(&r.auth, &r.local, bytes))
        else {
            return;
        };
        for (i, t) in self.ttys.iter().enumerate() {
            if i != from
                && let Err(e) = t.port.try_send(&copy)
            {
                self.log_send_error(SERIAL_FROM, &self.names[t.medium.0], &e);
            }
        }
    }

    /// Sends `bytes` to every medium's destinations; failures are logged
    /// (at most once a minute per destination), never returned.
    pub async fn send_all(&self, bytes: &[u8]) {
        for d in &self.dests {
            let s = &self.socks[d.sock];
            if let Err(e) = s.socket.send_to(bytes, d.addr).await {
                self.log_send_error(d.addr, &self.names[s.medium.0], &e);
            }
        }
        if !self.ttys.is_empty()
            && let Some(text) = to_tty(bytes)
        {
            for t in &self.ttys {
                if let Err(e) = t.port.try_send(&text) {
                    self.log_send_error(SERIAL_FROM, &self.names[t.medium.0], &e);
                }
            }
        }
    }

    fn log_send_error(&self, addr: SocketAddr, link: &str, e: &io::Error) {
        let Ok(mut log) = self.send_errors.lock() else {
            return;
        };
        let now = Instant::now();
        match log.get_mut(&addr) {
            Some(l) if now.duration_since(l.last_logged) < SEND_ERROR_LOG_INTERVAL => {
                l.suppressed += 1;
            }
            Some(l) => {
                logcat::log(&LogEvent::SendFailedAgain {
                    to: addr,
                    link,
                    reason: &e.to_string(),
                    suppressed: l.suppressed,
                });
                l.last_logged = now;
                l.suppressed = 0;
            }
            None => {
                logcat::log(&LogEvent::SendFailed {
                    to: addr,
                    link,
                    reason: &e.to_string(),
                });
                log.insert(
                    addr,
                    SendErrorLog {
                        last_logged: now,
                        suppressed: 0,
                    },
                );
            }
        }
    }

    fn link_id(&mut self, iface: &str) -> MediumId {
        match self.names.iter().position(|n| n == iface) {
            Some(i) => MediumId(i),
            None => {
                self.names.push(iface.to_owned());
                MediumId(self.names.len() - 1)
            }
        }
    }

    fn push_socket(&mut self, iface: &str, socket: UdpSocket) -> usize {
        let medium = self.link_id(iface);
        self.socks.push(Sock {
            medium,
            socket: SockIo::Both(socket),
        });
        self.socks.len() - 1
    }

    fn iface_socket(
        &mut self,
        cache: &mut HashMap<String, usize>,
        kind: &'static str,
        iface: &str,
        port: u16,
    ) -> Result<usize, MediaError> {
        if let Some(&s) = cache.get(iface) {
            return Ok(s);
        }
        let socket = udp_socket(kind, iface, |s| {
            s.set_broadcast(true).map_err(op("SO_BROADCAST"))?;
            s.attach_filter(&DROP_LOOPED_BACK)
                .map_err(op("SO_ATTACH_FILTER"))?;
            let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
            s.bind(&any.into()).map_err(op("bind"))
        })?;
        let s = self.push_socket(iface, socket);
        cache.insert(iface.to_owned(), s);
        Ok(s)
    }

    fn add_dest(&mut self, sock: usize, addr: SocketAddr) {
        let d = Dest { sock, addr };
        if !self.dests.contains(&d) {
            self.dests.push(d);
        }
    }
}

/// A socket filter that drops the copies of our own broadcasts the kernel loops back
/// (`PACKET_LOOPBACK`) and keeps everything that came in from a link. Without it every
/// heartbeat we send woke the receive thread and the loop a second time, only to be
/// recognised as ours and thrown away: at 1 s timers that echo was a third of an idle
/// node's wake-ups. A packet carrying our name from another host still arrives (it is not
/// looped back) and is still reported.
const DROP_LOOPED_BACK: [socket2::SockFilter; 4] = {
    use libc::{
        BPF_ABS, BPF_B, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, SKF_AD_OFF, SKF_AD_PKTTYPE,
    };
    // linux/if_packet.h; not in the libc crate.
    const PACKET_LOOPBACK: u32 = 5;
    // The opcodes fit in 16 bits and the ancillary offset is negative by the kernel's ABI.
    const LD_PKTTYPE: u16 = (BPF_LD | BPF_B | BPF_ABS) as u16;
    const IS: u16 = (BPF_JMP | BPF_JEQ | BPF_K) as u16;
    const RET: u16 = (BPF_RET | BPF_K) as u16;
    [
        socket2::SockFilter::new(LD_PKTTYPE, 0, 0, (SKF_AD_OFF + SKF_AD_PKTTYPE) as u32),
        socket2::SockFilter::new(IS, 0, 1, PACKET_LOOPBACK),
        socket2::SockFilter::new(RET, 0, 0, 0),
        socket2::SockFilter::new(RET, 0, 0, u32::MAX),
    ]
};

type OpResult = Result<(), (&'static str, io::Error)>;

fn op(name: &'static str) -> impl Fn(io::Error) -> (&'static str, io::Error) {
    move |e| (name, e)
}

/// A non-blocking UDP socket with SO_REUSEADDR, bound to `iface` (so that two
/// interfaces, or two lab nodes, never see each other's traffic), set up
/// further by `setup`, and handed to tokio.
fn udp_socket(
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
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| fail(("socket", e)))?;
    s.set_reuse_address(true)
        .map_err(|e| fail(("SO_REUSEADDR", e)))?;
    s.bind_device(Some(iface.as_bytes()))
        .map_err(|e| fail(("SO_BINDTODEVICE", e)))?;
    s.set_nonblocking(true)
        .map_err(|e| fail(("O_NONBLOCK", e)))?;
    setup(&s).map_err(fail)?;
    UdpSocket::from_std(s.into()).map_err(|e| fail(("register with tokio", e)))
}

fn mcast_socket(
    iface: &str,
    group: Ipv4Addr,
    port: u16,
    ttl: u8,
    loopback: bool,
    local: Ipv4Addr,
) -> Result<UdpSocket, MediaError> {
    udp_socket("mcast", iface, |s| {
        // Bound to the group, so unicast and broadcast to the port stay out.
        let at = SocketAddr::V4(SocketAddrV4::new(group, port));
        s.bind(&at.into()).map_err(op("bind"))?;
        s.join_multicast_v4(&group, &local)
            .map_err(op("IP_ADD_MEMBERSHIP"))?;
        s.set_multicast_if_v4(&local)
            .map_err(op("IP_MULTICAST_IF"))?;
        s.set_multicast_ttl_v4(u32::from(ttl))
            .map_err(op("IP_MULTICAST_TTL"))?;
        s.set_multicast_loop_v4(loopback)
            .map_err(op("IP_MULTICAST_LOOP"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::process::Command;
    use std::sync::{Arc, Barrier};

    #[tokio::test]
    async fn missing_interface_is_named() {
        let err = MediaSet::open(
            &[Medium::Bcast {
                iface: "hadnx9".into(),
            }],
            694,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "bcast hadnx9: no such interface");
        let err = MediaSet::open(
            &[Medium::Ucast {
                iface: "hadnx9".into(),
                peer: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            }],
            694,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "ucast hadnx9: no such interface");
        assert!(matches!(MediaSet::open(&[], 694), Err(MediaError::NoMedia)));
        // Loopback exists everywhere but has no broadcast address.
        let err = MediaSet::open(&[Medium::Bcast { iface: "lo".into() }], 694).unwrap_err();
        assert_eq!(err.to_string(), "bcast lo: no IPv4 broadcast address");
    }

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip {args:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Two namespaces joined by a veth pair; removed on drop, also on panic.
    struct Lab {
        ns: [String; 2],
        ifaces: [String; 2],
        addrs: [Ipv4Addr; 2],
    }

    impl Lab {
        fn new() -> Result<Lab, String> {
            Self::new_named("")
        }

        /// `tag` keeps two labs of one test process apart (tests run in parallel).
        fn new_named(tag: &str) -> Result<Lab, String> {
            let pid = std::process::id();
            let k = (pid % 250) as u8 + 1 + u8::from(!tag.is_empty());
            let lab = Lab {
                ns: [
                    format!("had-mt-{pid}{tag}-a"),
                    format!("had-mt-{pid}{tag}-b"),
                ],
                ifaces: [format!("hmt{pid}{tag}a"), format!("hmt{pid}{tag}b")],
                addrs: [Ipv4Addr::new(198, 19, k, 1), Ipv4Addr::new(198, 19, k, 2)],
            };
            // The guard exists before anything is created, so a failure
            // half-way still removes what was made.
            for ns in &lab.ns {
                ip(&["netns", "add", ns])?;
            }
            let [a, b] = &lab.ifaces;
            ip(&[
                "link", "add", a, "netns", &lab.ns[0], "type", "veth", "peer", "name", b, "netns",
                &lab.ns[1],
            ])?;
            for i in 0..2 {
                let cidr = format!("{}/24", lab.addrs[i]);
                ip(&[
                    "-n",
                    &lab.ns[i],
                    "addr",
                    "add",
                    &cidr,
                    "brd",
                    "+",
                    "dev",
                    &lab.ifaces[i],
                ])?;
                ip(&["-n", &lab.ns[i], "link", "set", &lab.ifaces[i], "up"])?;
                ip(&["-n", &lab.ns[i], "link", "set", "lo", "up"])?;
            }
            Ok(lab)
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            // Deleting a namespace destroys the veth end inside it.
            for ns in &self.ns {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }

    type Got = Vec<(MediumId, SocketAddr, Vec<u8>)>;
    /// What a node heard from the peer, and how many of its own packets came back to it.
    type Heard = (Vec<String>, Got, usize);

    /// Runs one node in namespace `ns`: open, wait for the peer, send
    /// `greeting` once (if first) or after receiving, collect `expect` packets.
    fn node(
        ns: String,
        media: Vec<Medium>,
        port: u16,
        barrier: Arc<Barrier>,
        sends_first: bool,
        expect: usize,
    ) -> std::thread::JoinHandle<Result<Heard, String>> {
        std::thread::spawn(move || {
            let f = File::open(format!("/var/run/netns/{ns}")).map_err(|e| e.to_string())?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let opened = MediaSet::open(&media, port);
                barrier.wait();
                let set = opened.map_err(|e| e.to_string())?;
                let greeting = format!("hello from {ns}").into_bytes();
                if sends_first {
                    set.send_all(&greeting).await;
                }
                let mut got = Vec::new();
                let mut own = 0;
                let deadline = tokio::time::sleep(Duration::from_secs(5));
                tokio::pin!(deadline);
                while got.len() < expect {
                    tokio::select! {
                        r = set.recv() => {
                            let (m, from, bytes) = r.map_err(|e| e.to_string())?;
                            // Keep only the peer's; count what came back of ours.
                            if bytes.starts_with(greeting.as_slice()) {
                                own += 1;
                            } else {
                                got.push((m, from, bytes));
                            }
                        }
                        () = &mut deadline => break,
                    }
                }
                if !sends_first {
                    set.send_all(&greeting).await;
                }
                // Catch stragglers: exactly `expect`, not more.
                while let Ok(Ok(r)) =
                    tokio::time::timeout(Duration::from_millis(300), set.recv()).await
                {
                    if r.2.starts_with(greeting.as_slice()) {
                        own += 1;
                    } else {
                        got.push(r);
                    }
                }
                Ok((set.names(), got, own))
            })
        })
    }

    #[test]
    fn link_local_ucast6_and_mcast6_between_two_namespaces() {
        if !ha_gate::lab_available("link_local_ucast6_and_mcast6_between_two_namespaces") {
            return;
        }
        let lab = Lab::new_named("v6").unwrap();
        let ll = ["fe80::a:1", "fe80::a:2"];
        for (i, addr) in ll.iter().enumerate() {
            let f = |k: &str| format!("/proc/sys/net/ipv6/conf/{}/{k}", lab.ifaces[i]);
            for (k, v) in [("disable_ipv6", "0"), ("accept_dad", "0")] {
                ip(&[
                    "netns",
                    "exec",
                    &lab.ns[i],
                    "sh",
                    "-c",
                    &format!("echo {v} > {}", f(k)),
                ])
                .unwrap();
            }
            ip(&[
                "-n",
                &lab.ns[i],
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                &lab.ifaces[i],
                "nodad",
            ])
            .unwrap();
        }
        let group: Ipv6Addr = "ff12::15:1".parse().unwrap();
        let (port, mport) = (694, 1695);
        let media = |i: usize| {
            let iface = lab.ifaces[i].clone();
            vec![
                // A link-local peer: its scope is the interface.
                Medium::Ucast6 {
                    iface: iface.clone(),
                    peer: ll[1 - i].parse().unwrap(),
                    scope_id: None,
                },
                Medium::Mcast6 {
                    iface,
                    group,
                    port: mport,
                    hops: 1,
                    loopback: false,
                },
            ]
        };
        let barrier = Arc::new(Barrier::new(2));
        let a = node(lab.ns[0].clone(), media(0), port, barrier.clone(), true, 2);
        let b = node(lab.ns[1].clone(), media(1), port, barrier, false, 2);
        let (names_a, got_a, _) = a.join().unwrap().unwrap();
        let (_, got_b, _) = b.join().unwrap().unwrap();
        assert_eq!(names_a, vec![lab.ifaces[0].clone()]);
        for (i, got) in [(1usize, &got_b), (0, &got_a)] {
            let mut from: Vec<(String, u16)> = got
                .iter()
                .map(|(m, f, bytes)| {
                    assert_eq!(*m, MediumId(0));
                    assert_eq!(bytes, &format!("hello from {}", lab.ns[1 - i]).into_bytes());
                    (f.ip().to_string(), f.port())
                })
                .collect();
            from.sort();
            assert_eq!(
                from,
                vec![
                    (ll[1 - i].to_string(), port),
                    (ll[1 - i].to_string(), mport)
                ],
                "node {i} received {got:?}"
            );
        }
    }

    #[test]
    fn bcast_ucast_and_mcast_between_two_namespaces() {
        if !ha_gate::lab_available("bcast_ucast_and_mcast_between_two_namespaces") {
            return;
        }
        let lab = Lab::new().unwrap();
        let port = 694;
        let group = Ipv4Addr::new(239, 255, lab.addrs[0].octets()[2], 1);
        let mport = 1694;
        let media = |i: usize| {
            let iface = lab.ifaces[i].clone();
            vec![
                Medium::Bcast {
                    iface: iface.clone(),
                },
                Medium::Ucast {
                    iface: iface.clone(),
                    peer: IpAddr::V4(lab.addrs[1 - i]),
                },
                // Pointing at ourselves is harmless (Heartbeat's shared ha.cf idiom).
                Medium::Ucast {
                    iface: iface.clone(),
                    peer: IpAddr::V4(lab.addrs[i]),
                },
                Medium::Mcast {
                    iface,
                    group,
                    port: mport,
                    ttl: 1,
                    loopback: false,
                },
            ]
        };
        let barrier = Arc::new(Barrier::new(2));
        let a = node(lab.ns[0].clone(), media(0), port, barrier.clone(), true, 3);
        let b = node(lab.ns[1].clone(), media(1), port, barrier, false, 3);
        let (names_a, got_a, own_a) = a.join().unwrap().unwrap();
        let (names_b, got_b, own_b) = b.join().unwrap().unwrap();
        // The kernel loops every broadcast back to the sender; the socket filter keeps
        // those copies out, so a node never wakes for its own broadcast. What still comes
        // back is the one unicast each node sent to its own address (over `lo`).
        assert_eq!((own_a, own_b), (1, 1), "own packets heard back");
        assert_eq!(names_a, vec![lab.ifaces[0].clone()]);
        assert_eq!(names_b, vec![lab.ifaces[1].clone()]);
        for (i, got) in [(1usize, &got_b), (0, &got_a)] {
            let peer = lab.addrs[1 - i];
            let mut ports: Vec<(IpAddr, u16)> = got
                .iter()
                .map(|(m, from, bytes)| {
                    assert_eq!(*m, MediumId(0));
                    assert_eq!(bytes, &format!("hello from {}", lab.ns[1 - i]).into_bytes());
                    (from.ip(), from.port())
                })
                .collect();
            ports.sort();
            // bcast and ucast from the interface socket, mcast from the group socket.
            assert_eq!(
                ports,
                vec![
                    (IpAddr::V4(peer), port),
                    (IpAddr::V4(peer), port),
                    (IpAddr::V4(peer), mport)
                ],
                "node {i} received {got:?}"
            );
        }
        drop(lab);
        assert!(
            !std::path::Path::new(&format!("/var/run/netns/had-mt-{}-a", std::process::id()))
                .exists()
        );
    }
}
