//! The lab's floor: what the packets of an idle node cost here, with no daemon behind them.
//!
//! Two threads per node, in the node's own namespace: one sends a heartbeat-sized broadcast
//! every `every` on the lab's interface, the other blocks in `recv` for the peer's. No
//! decoding, no signing, no state: only the timer wake-up, the send (on this lab's veth and
//! bridge the sender also pays for delivering the frame to every other namespace) and the
//! receive wake-up. A daemon's idle CPU cannot go below this figure in the same lab; the
//! bench reports it beside had's (issue 14's "≤ 0.01 s per 60 s" line is measured here).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::netns;
use crate::node::IFACE;

/// Bytes per datagram: an idle had status heartbeat is 200–250 bytes.
const SIZE: usize = 220;

/// A running floor pair; stops (and joins its threads) on `stop` or drop.
#[derive(Debug)]
pub struct Floor {
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<UdpSocket>>,
    /// Per node: its sender's and receiver's thread ids (for their schedstat).
    tids: Vec<[Arc<AtomicI32>; 2]>,
    /// Per node: datagrams its receiver got.
    received: Vec<Arc<AtomicU64>>,
    threads: Vec<JoinHandle<()>>,
}

impl Floor {
    /// Starts a sender and a receiver in each of `namespaces`, on UDP `port`, broadcasting to
    /// `broadcast` every `every`.
    pub fn start(
        namespaces: &[&str],
        broadcast: Ipv4Addr,
        port: u16,
        every: Duration,
    ) -> anyhow::Result<Floor> {
        let mut f = Floor {
            stop: Arc::new(AtomicBool::new(false)),
            sockets: Vec::new(),
            tids: Vec::new(),
            received: Vec::new(),
            threads: Vec::new(),
        };
        for (i, ns) in namespaces.iter().enumerate() {
            let sock = Arc::new(netns::in_netns(ns, || socket(port))?);
            let tids = [Arc::new(AtomicI32::new(0)), Arc::new(AtomicI32::new(0))];
            let (s, tid, stop) = (sock.clone(), tids[0].clone(), f.stop.clone());
            let to = SocketAddrV4::new(broadcast, port);
            let phase = every.mul_f64(i as f64 / namespaces.len() as f64);
            f.threads.push(thread::spawn(move || {
                tid.store(gettid(), Ordering::SeqCst);
                let msg = [b'x'; SIZE];
                // The nodes' sends spread over the period, as two daemons started apart: a
                // receive wake-up then never rides on the node's own timer wake-up.
                let mut next = Instant::now() + phase;
                thread::sleep(phase);
                while !stop.load(Ordering::SeqCst) {
                    let _ = s.send_to(&msg, to);
                    next += every;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            }));
            let (s, tid, stop) = (sock.clone(), tids[1].clone(), f.stop.clone());
            let got = Arc::new(AtomicU64::new(0));
            f.received.push(got.clone());
            f.threads.push(thread::spawn(move || {
                tid.store(gettid(), Ordering::SeqCst);
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::SeqCst) {
                    // Blocks until a datagram, or until `stop` shuts the socket down (then 0
                    // bytes and no address: std's `recv_from` would not take that).
                    // SAFETY: recv into a buffer we own.
                    let n =
                        unsafe { libc::recv(s.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if n > 0 {
                        got.fetch_add(1, Ordering::Relaxed);
                    } else if stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
            }));
            f.sockets.push(sock);
            f.tids.push(tids);
        }
        let t0 = Instant::now();
        while f
            .tids
            .iter()
            .flatten()
            .any(|t| t.load(Ordering::SeqCst) == 0)
        {
            if t0.elapsed() > Duration::from_secs(5) {
                bail!("the floor's threads did not start");
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(f)
    }

    /// CPU time so far of node `i`'s two threads (nanoseconds, from their schedstat).
    pub fn cpu_ns(&self, i: usize) -> Option<u64> {
        let me = std::process::id();
        self.tids.get(i)?.iter().try_fold(0u64, |sum, t| {
            let tid = t.load(Ordering::SeqCst);
            let s = std::fs::read_to_string(format!("/proc/{me}/task/{tid}/schedstat")).ok()?;
            Some(sum + s.split_whitespace().next()?.parse::<u64>().ok()?)
        })
    }

    /// Datagrams node `i`'s receiver got so far (its own broadcasts are filtered out).
    pub fn received(&self, i: usize) -> u64 {
        self.received
            .get(i)
            .map_or(0, |r| r.load(Ordering::Relaxed))
    }

    /// Stops the threads and waits for them.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in &self.sockets {
            // SAFETY: shutdown on a socket we own; it only wakes the blocked receiver.
            unsafe { libc::shutdown(s.as_raw_fd(), libc::SHUT_RDWR) };
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.halt();
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A UDP socket as had opens one for `bcast`: bound to the lab's interface, broadcast
/// allowed, and the kernel's looped-back copies of its own broadcasts filtered out (the
/// filter is had's `DROP_LOOPED_BACK` of crates/transport/src/media.rs, written out again:
/// the lab measures had from outside and links none of its crates).
fn socket(port: u16) -> anyhow::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
        .with_context(|| format!("binding UDP port {port}"))?;
    s.set_broadcast(true).context("SO_BROADCAST")?;
    let fd = s.as_raw_fd();
    let name = IFACE.as_bytes();
    // SAFETY: setsockopt with the interface name's bytes and their length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as u32,
        )
    };
    if rc != 0 {
        bail!("SO_BINDTODEVICE: {}", std::io::Error::last_os_error());
    }
    // Load the packet type; drop it when it is PACKET_LOOPBACK (5), else keep it whole.
    let code = |c: u32| c as u16;
    let mut filter = [
        libc::sock_filter {
            code: code(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS),
            jt: 0,
            jf: 0,
            k: (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32,
        },
        libc::sock_filter {
            code: code(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            jt: 0,
            jf: 1,
            k: 5,
        },
        libc::sock_filter {
            code: code(libc::BPF_RET | libc::BPF_K),
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: code(libc::BPF_RET | libc::BPF_K),
            jt: 0,
            jf: 0,
            k: u32::MAX,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: setsockopt with a sock_fprog pointing at a filter that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const prog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as u32,
        )
    };
    if rc != 0 {
        bail!("SO_ATTACH_FILTER: {}", std::io::Error::last_os_error());
    }
    Ok(s)
}
