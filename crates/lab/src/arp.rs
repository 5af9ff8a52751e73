//! An ARP watcher in the client namespace: asks for many addresses at a steady pace and
//! records when each first answers from a given MAC, the client's view of "the VIPs are up"
//! at scale (an HTTP probe per address would wait on the kernel's ARP retries instead).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};

use crate::node::IFACE;
use crate::{netns, packet};

const ETH_P_ARP: u16 = 0x0806;
const FRAME_LEN: usize = 42;
/// Requests sent back to back before the watcher pauses a millisecond.
const CHUNK: usize = 50;
/// `PACKET_IGNORE_OUTGOING` from linux/if_packet.h.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// Receive buffer of the watcher's socket: room for tens of thousands of ARP frames.
const RCVBUF: libc::c_int = 16 << 20;
/// The longest the loop waits for a frame before it looks at the clock again.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// What the watcher saw of one address.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArpSeen {
    /// First reply from the expected MAC (monotonic and wall clock).
    pub answered: Option<(Instant, SystemTime)>,
}

#[derive(Debug, Default)]
struct Shared {
    seen: Vec<ArpSeen>,
    /// Gratuitous ARP frames (sender IP = target IP, one of the targets) from the MAC.
    garps: u64,
}

/// A running watcher; stops (and joins its thread) on `stop` or drop.
#[derive(Debug)]
pub struct ArpWatch {
    targets: Vec<Ipv4Addr>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
}

/// The interface's MAC inside namespace `ns`.
pub(crate) fn mac_of(ns: &str) -> anyhow::Result<[u8; 6]> {
    let text = netns::ip_output(&["-n", ns, "-o", "link", "show", IFACE])?;
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .context("no link/ether in `ip link` output")?;
    parse_mac(mac)
}

fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let mut out = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("bad MAC {s}");
    }
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {s}"))?;
    }
    Ok(out)
}

fn request(src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet/IPv4, 6/4, request.
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&src_mac);
    f[28..32].copy_from_slice(&src_ip.octets());
    f[38..42].copy_from_slice(&target.octets());
    f
}

impl ArpWatch {
    /// Start asking, from the client namespace `ns` with source `src_of(target)`, every
    /// `every` for each target not yet answered by `mac`.
    pub(crate) fn start(
        ns: &str,
        targets: Vec<Ipv4Addr>,
        src_of: impl Fn(Ipv4Addr) -> Ipv4Addr + Send + 'static,
        mac: [u8; 6],
        every: Duration,
    ) -> anyhow::Result<ArpWatch> {
        let shared = Arc::new(Mutex::new(Shared {
            seen: vec![ArpSeen::default(); targets.len()],
            garps: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, sh2, st2) = (targets.clone(), shared.clone(), stop.clone());
        let setup = || -> anyhow::Result<(OwnedFd, [u8; 6], i32)> {
            let (fd, index) = packet::socket(ETH_P_ARP)?;
            // A thousand addresses' replies and gratuitous ARPs arrive in one burst; the
            // default buffer holds ≈ 280 frames, and a dropped reply is asked again only a
            // round later, which would measure the watcher, not the daemon.
            // FORCE: root may pass net.core.rmem_max; a refusal leaves the default.
            let size: libc::c_int = RCVBUF;
            // SAFETY: setsockopt with an int of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
            // Our own requests would come back on this socket: thousands a second that
            // the loop would read before the replies that matter (Linux 4.20+).
            let one: libc::c_int = 1;
            // SAFETY: setsockopt with an int of the right size.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    PACKET_IGNORE_OUTGOING,
                    (&raw const one).cast(),
                    std::mem::size_of::<libc::c_int>() as u32,
                );
            }
            Ok((fd, mac_of_local()?, index))
        };
        let thread = packet::spawn_in(ns, "ARP watcher", setup, move |(fd, my_mac, index)| {
            run(&fd, my_mac, index, &t2, &src_of, mac, every, &sh2, &st2);
        })?;
        Ok(ArpWatch {
            targets,
            shared,
            stop,
            thread: Some(thread),
            started: Instant::now(),
        })
    }

    /// How many targets have answered.
    pub fn answered(&self) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.answered.is_some())
            .count()
    }

    /// The first answer of any target, if one came.
    pub fn first_answer(&self) -> Option<Instant> {
        self.lock()
            .seen
            .iter()
            .filter_map(|s| s.answered.map(|(i, _)| i))
            .min()
    }

    /// Gratuitous ARPs seen from the MAC for the targets.
    pub fn garps(&self) -> u64 {
        self.lock().garps
    }

    /// Wait until every target answered; the instant and wall time of the last answer.
    pub fn wait_all(&self, timeout: Duration) -> Option<(Instant, SystemTime)> {
        let until = Instant::now() + timeout;
        loop {
            {
                let g = self.lock();
                if g.seen.iter().all(|s| s.answered.is_some()) {
                    return g
                        .seen
                        .iter()
                        .filter_map(|s| s.answered)
                        .max_by_key(|(i, _)| *i);
                }
            }
            if Instant::now() > until {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The instant the watcher started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The targets watched.
    pub fn targets(&self) -> &[Ipv4Addr] {
        &self.targets
    }

    /// Stop the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ArpWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

fn mac_of_local() -> anyhow::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{IFACE}/address"))
        .context("reading the client's MAC")?;
    parse_mac(text.trim())
}

#[allow(clippy::too_many_arguments)]
fn run(
    fd: &OwnedFd,
    my_mac: [u8; 6],
    index: i32,
    targets: &[Ipv4Addr],
    src_of: &dyn Fn(Ipv4Addr) -> Ipv4Addr,
    mac: [u8; 6],
    every: Duration,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
) {
    let pos: std::collections::HashMap<Ipv4Addr, usize> =
        targets.iter().enumerate().map(|(i, a)| (*a, i)).collect();
    // SAFETY: zeroed sockaddr_ll is a valid value; the fields that matter are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ARP.to_be();
    sll.sll_ifindex = index;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let mut next = Instant::now();
    let mut round: Vec<Ipv4Addr> = Vec::new();
    let mut cursor = 0;
    let mut next_chunk = Instant::now();
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if cursor >= round.len() && now >= next {
            next += every;
            let g = shared.lock().unwrap_or_else(|p| p.into_inner());
            round = targets
                .iter()
                .zip(&g.seen)
                .filter(|(_, s)| s.answered.is_none())
                .map(|(a, _)| *a)
                .collect();
            cursor = 0;
        }
        // A round goes out in chunks a millisecond apart: a thousand requests at once would
        // overflow the nodes' receive backlog (netdev_max_backlog) and be asked again only a
        // round later, which would measure the lab rather than had.
        if cursor < round.len() && now >= next_chunk {
            let end = (cursor + CHUNK).min(round.len());
            for t in &round[cursor..end] {
                let frame = request(my_mac, src_of(*t), *t);
                // SAFETY: sendto with a valid buffer and sockaddr_ll of the right size.
                unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&raw const sll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    );
                }
            }
            cursor = end;
            next_chunk = now + Duration::from_millis(1);
        }
        // Every frame waiting, then a wait until the next chunk or round is due, on a
        // high-resolution timer: with a jiffy-based one a round of 1,000 requests, meant to
        // go out in 20 ms, took 200 ms, and the start of 1,000 addresses measured the watcher.
        packet::drain(fd, &mut buf, |f| seen(f, mac, &pos, shared));
        let now = Instant::now();
        let due = if cursor < round.len() {
            next_chunk
        } else {
            next
        };
        let wait = due.saturating_duration_since(now).min(IDLE_WAIT);
        packet::wait_readable(fd, wait);
    }
}

/// Records what frame `f` says of the targets, if it is an ARP frame from `mac`.
fn seen(
    f: &[u8],
    mac: [u8; 6],
    pos: &std::collections::HashMap<Ipv4Addr, usize>,
    shared: &Mutex<Shared>,
) {
    if f.len() < FRAME_LEN || f[12..14] != ETH_P_ARP.to_be_bytes() || f[22..28] != mac {
        return;
    }
    let op = u16::from_be_bytes([f[20], f[21]]);
    let sender = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
    let target = Ipv4Addr::new(f[38], f[39], f[40], f[41]);
    let Some(&i) = pos.get(&sender) else { return };
    let mut g = shared.lock().unwrap_or_else(|p| p.into_inner());
    if op == 1 && sender == target {
        g.garps += 1;
    } else if op == 2 && g.seen[i].answered.is_none() {
        g.seen[i].answered = Some((Instant::now(), SystemTime::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_request_is_laid_out() {
        let m = parse_mac("02:00:00:00:00:2a").expect("valid MAC");
        assert_eq!(m, [2, 0, 0, 0, 0, 0x2a]);
        assert!(parse_mac("02:00").is_err());
        let f = request(
            m,
            Ipv4Addr::new(198, 18, 0, 50),
            Ipv4Addr::new(198, 19, 0, 1),
        );
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[12..14], &[8, 6]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[38..42], &[198, 19, 0, 1]);
    }

    #[test]
    fn replies_and_gratuitous_arps_from_the_mac_are_told_apart() {
        let (node, other) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let (a, b) = (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2));
        let pos = [(a, 0), (b, 1)].into_iter().collect();
        let shared = Mutex::new(Shared {
            seen: vec![ArpSeen::default(); 2],
            garps: 0,
        });
        let reply = |mac, ip| {
            let mut f = request(mac, ip, Ipv4Addr::new(198, 19, 255, 1));
            f[21] = 2;
            f
        };
        // A gratuitous ARP (sender = target) counts, and is no answer.
        seen(&request(node, a, a), node, &pos, &shared);
        // A reply from another MAC, a short frame and an address not asked for: nothing.
        seen(&reply(other, b), node, &pos, &shared);
        seen(&reply(node, b)[..30], node, &pos, &shared);
        seen(
            &reply(node, Ipv4Addr::new(198, 19, 0, 9)),
            node,
            &pos,
            &shared,
        );
        {
            let g = shared.lock().expect("not poisoned");
            assert_eq!(g.garps, 1);
            assert!(g.seen.iter().all(|s| s.answered.is_none()));
        }
        seen(&reply(node, b), node, &pos, &shared);
        let first = shared.lock().expect("not poisoned").seen[1].answered;
        assert!(first.is_some());
        // The first answer is the one kept.
        seen(&reply(node, b), node, &pos, &shared);
        let g = shared.lock().expect("not poisoned");
        assert_eq!(g.seen[1].answered, first);
        assert!(g.seen[0].answered.is_none());
    }
}
