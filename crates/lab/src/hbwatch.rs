//! A heartbeat watcher in a node's namespace: records when the node's interface sent a
//! frame of its daemon's heartbeat traffic. A daemon busy adding or removing a thousand
//! addresses shows as a silence on the wire long before its peer logs a late heartbeat
//! (warntime is ¾ of deadtime), so the bench reads the longest silence from here.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::packet;

const ETH_P_IP: u16 = 0x0800;
/// Every protocol: a socket bound to one protocol only gets frames received, while the
/// frames a node sends reach only the taps of all protocols (`ptype_all`).
const ETH_P_ALL: u16 = 0x0003;
/// The longest the loop waits for a frame before it looks at the stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// Which IPv4 frames are a daemon's heartbeat traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HbMatch {
    /// UDP from or to this port (had and Heartbeat: `udpport`, 694; corosync knet: 5405).
    UdpPort(u16),
    /// This IP protocol (VRRP: 112).
    IpProto(u8),
}

/// A running watcher; stops (and joins its thread) on `stop` or drop.
#[derive(Debug)]
pub struct HbWatch {
    sent: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HbWatch {
    /// Start recording the frames matching `m` that namespace `ns`'s interface sends.
    pub(crate) fn start(ns: &str, m: HbMatch) -> anyhow::Result<HbWatch> {
        let mac = crate::arp::mac_of(ns)?;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        let setup = || -> anyhow::Result<OwnedFd> {
            let (fd, index) = packet::socket(ETH_P_ALL)?;
            // Bound to the lab interface: loopback carries the daemon's control traffic,
            // not its heartbeats.
            // SAFETY: zeroed sockaddr_ll is valid; family, protocol and index are set.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = index;
            // SAFETY: bind with a sockaddr_ll of the right size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                bail!(
                    "binding the packet socket: {}",
                    std::io::Error::last_os_error()
                );
            }
            Ok(fd)
        };
        let thread = packet::spawn_in(ns, "heartbeat watcher", setup, move |fd| {
            run(&fd, mac, m, &sent2, &stop2);
        })?;
        Ok(HbWatch {
            sent,
            stop,
            thread: Some(thread),
        })
    }

    /// When each matching frame was seen leaving, in order.
    pub fn sent(&self) -> Vec<Instant> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
}

impl Drop for HbWatch {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(fd: &OwnedFd, mac: [u8; 6], m: HbMatch, sent: &Mutex<Vec<Instant>>, stop: &AtomicBool) {
    // The headers fit in the buffer; the payload does not matter.
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::SeqCst) {
        packet::drain(fd, &mut buf, |f| {
            if is_heartbeat(f, mac, m) {
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Instant::now());
            }
        });
        packet::wait_readable(fd, IDLE_WAIT);
    }
}

/// Whether Ethernet frame `f` was sent by `mac` and is IPv4 traffic matching `m`.
fn is_heartbeat(f: &[u8], mac: [u8; 6], m: HbMatch) -> bool {
    if f.len() < 34 || f[6..12] != mac || f[12..14] != ETH_P_IP.to_be_bytes() {
        return false;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let proto = f[23];
    match m {
        HbMatch::IpProto(p) => proto == p,
        HbMatch::UdpPort(port) => {
            let at = 14 + ihl;
            // A later fragment has no UDP header: the first one was counted.
            let first_fragment = u16::from_be_bytes([f[20], f[21]]) & 0x1fff == 0;
            proto == 17
                && first_fragment
                && ihl >= 20
                && f.len() >= at + 4
                && (u16::from_be_bytes([f[at], f[at + 1]]) == port
                    || u16::from_be_bytes([f[at + 2], f[at + 3]]) == port)
        }
    }
}

/// The longest silence in `[from, to]`: between two frames sent in it, or from the last of
/// them to `to` (a node silent at the end of the window was silent, too). None when no frame
/// was sent in the window.
pub fn longest_silence(sent: &[Instant], from: Instant, to: Instant) -> Option<Duration> {
    let inside: Vec<Instant> = sent
        .iter()
        .copied()
        .filter(|t| *t >= from && *t <= to)
        .collect();
    let last = *inside.last()?;
    let between = inside
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default();
    Some(between.max(to.saturating_duration_since(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: [u8; 6], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[8, 0]);
        f[14] = 0x45;
        f[23] = 17;
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn only_the_nodes_own_frames_of_its_daemons_traffic_count() {
        let (me, peer) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let hb = HbMatch::UdpPort(694);
        assert!(is_heartbeat(&udp(me, 40000, 694), me, hb));
        assert!(is_heartbeat(&udp(me, 694, 694), me, hb));
        assert!(!is_heartbeat(&udp(peer, 40000, 694), me, hb), "the peer's");
        assert!(!is_heartbeat(&udp(me, 40000, 80), me, hb), "another port");
        let mut frag = udp(me, 40000, 694);
        frag[21] = 10;
        assert!(!is_heartbeat(&frag, me, hb), "a later fragment");
        let mut vrrp = udp(me, 0, 0);
        vrrp[23] = 112;
        assert!(is_heartbeat(&vrrp, me, HbMatch::IpProto(112)));
        assert!(!is_heartbeat(&vrrp, me, hb));
        assert!(!is_heartbeat(&udp(me, 40000, 694)[..30], me, hb), "short");
    }

    #[test]
    fn the_longest_silence_is_between_frames_or_after_the_last() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sent = [at(0), at(1000), at(2600), at(3600), at(9000)];
        assert_eq!(
            longest_silence(&sent, at(0), at(4000)),
            Some(Duration::from_millis(1600))
        );
        // A silence running at the window's end counts up to it.
        assert_eq!(
            longest_silence(&sent, at(0), at(6000)),
            Some(Duration::from_millis(2400))
        );
        // Frames outside the window are not part of it.
        assert_eq!(
            longest_silence(&sent, at(2000), at(3700)),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(longest_silence(&sent, at(4000), at(8000)), None);
    }
}
