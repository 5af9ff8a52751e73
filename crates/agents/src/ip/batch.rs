//! One group operation's view of the network, shared by its IP resources: one rtnetlink
//! connection, one link dump and one address dump (kept current with the operation's own
//! adds and removals), one packet socket, and the gratuitous ARP bursts of all its addresses
//! paced by one task. Asking the kernel per address made a group of N addresses cost N dumps
//! of N addresses each: 1,000 addresses took seconds, and the work delayed the heartbeats.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ha_core::logcat::{LogEvent, log};

use crate::ArpConfig;

use super::garp::{FrameSender, packet_socket};
use super::na;
use super::netlink::{Addr, Link, Netlink};

/// Bursts sent between two yields to the runtime, so that a thousand announcements never
/// hold the daemon's thread for more than a moment.
const SENDS_PER_YIELD: usize = 64;

/// Network state shared by the IP resources of one group operation (see the module doc).
#[derive(Default)]
pub struct NetBatch {
    view: Option<NetView>,
    socket: Option<Arc<OwnedFd>>,
    bursts: Vec<(ArpConfig, BurstEntry)>,
}

/// One connection and what its dumps said, updated with this operation's own changes.
pub(crate) struct NetView {
    pub nl: Netlink,
    pub links: Vec<Link>,
    /// By address, so that each resource's question costs the same with 1 or 1,000 others.
    addrs: HashMap<IpAddr, Vec<Addr>>,
}

impl NetView {
    fn new(nl: Netlink, links: Vec<Link>, dump: Vec<Addr>) -> NetView {
        let mut addrs: HashMap<IpAddr, Vec<Addr>> = HashMap::new();
        for a in dump {
            addrs.entry(a.addr).or_default().push(a);
        }
        NetView { nl, links, addrs }
    }

    /// Every address of the view.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Addr> {
        self.addrs.values().flatten()
    }

    /// The entries for `addr` (on any link).
    pub(crate) fn entries(&self, addr: IpAddr) -> &[Addr] {
        self.addrs.get(&addr).map_or(&[], Vec::as_slice)
    }

    /// Record an address this operation added.
    pub(crate) fn added(&mut self, a: Addr) {
        self.addrs.entry(a.addr).or_default().push(a);
    }

    /// Record an address this operation removed from link `index`.
    pub(crate) fn removed(&mut self, index: u32, addr: IpAddr) {
        if let Some(v) = self.addrs.get_mut(&addr) {
            v.retain(|a| a.index != index);
        }
    }

    pub(crate) fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub(crate) fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }
}

/// One address's announcements, in the batch's shared task.
pub(crate) struct BurstEntry {
    pub name: ha_config::Word,
    pub announcer: Announcer,
    pub index: u32,
    pub vip: IpAddr,
    /// Cleared by the resource's stop: a released address is never announced again.
    pub live: Arc<AtomicBool>,
}

/// The announcement for the address's family: gratuitous ARP or unsolicited NA.
#[derive(Debug)]
pub(crate) struct Announcer(FrameSender);

impl Announcer {
    pub(crate) fn send(&self) -> std::io::Result<()> {
        self.0.send()
    }

    /// The announcement of `vip` from `link` through the shared `socket`.
    pub(crate) fn new(
        socket: Arc<OwnedFd>,
        link: &Link,
        mac: [u8; 6],
        vip: IpAddr,
    ) -> std::io::Result<Announcer> {
        match vip {
            IpAddr::V4(v) => FrameSender::garp(socket, link.index, mac, v),
            IpAddr::V6(v) => na::sender(socket, link.index, mac, v),
        }
        .map(Announcer)
    }
}

impl NetBatch {
    /// An empty batch; nothing is asked of the kernel until an IP resource needs it.
    pub fn new() -> NetBatch {
        NetBatch::default()
    }

    /// The view, opened (one connection, two dumps) on first use.
    pub(crate) async fn view(&mut self) -> Result<&mut NetView, String> {
        if self.view.is_none() {
            let nl = Netlink::connect().map_err(|e| format!("cannot open rtnetlink: {e}"))?;
            let links = nl.links().await.map_err(|e| format!("link dump: {e}"))?;
            let addrs = nl
                .addresses()
                .await
                .map_err(|e| format!("address dump: {e}"))?;
            self.view = Some(NetView::new(nl, links, addrs));
        }
        self.view
            .as_mut()
            .ok_or_else(|| "no network view".to_string())
    }

    /// The view if it is open.
    pub(crate) fn current_view(&self) -> Option<&NetView> {
        self.view.as_ref()
    }

    /// Forget the view: something other than this batch (a script) may have changed the
    /// addresses. The bursts collected so far start now rather than after that work.
    pub fn invalidate(&mut self) {
        self.view = None;
        self.flush();
    }

    /// The packet socket every announcement of this batch sends through.
    pub(crate) fn socket(&mut self) -> std::io::Result<Arc<OwnedFd>> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        let s = Arc::new(packet_socket()?);
        self.socket = Some(s.clone());
        Ok(s)
    }

    /// Queue the rest of an address's burst (and its refresh) for the shared task.
    pub(crate) fn queue(&mut self, arp: ArpConfig, entry: BurstEntry) {
        self.bursts.push((arp, entry));
    }

    /// Start the queued bursts: one task per burst shape (in practice one).
    pub fn flush(&mut self) {
        if self.bursts.is_empty() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime nothing could have queued: start() runs inside one.
            self.bursts.clear();
            return;
        };
        let mut all = std::mem::take(&mut self.bursts);
        while let Some((arp, _)) = all.first() {
            let arp = *arp;
            let (same, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|(a, _)| *a == arp);
            all = rest;
            let entries = same.into_iter().map(|(_, e)| e).collect();
            rt.spawn(run_bursts(arp, entries));
        }
    }
}

impl Drop for NetBatch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Send to every live entry; the first failure and the count, for one log line.
async fn send_all(
    entries: &[BurstEntry],
    held: Option<&HashSet<(u32, IpAddr)>>,
) -> (usize, Option<String>) {
    let mut failed = 0;
    let mut first = None;
    for (i, e) in entries.iter().enumerate() {
        if i > 0 && i % SENDS_PER_YIELD == 0 {
            tokio::task::yield_now().await;
        }
        // Checked right before the send, with no await between: stop() clears it first.
        if !e.live.load(Ordering::SeqCst) {
            continue;
        }
        if held.is_some_and(|h| !h.contains(&(e.index, e.vip))) {
            continue;
        }
        if let Err(err) = e.announcer.send() {
            failed += 1;
            first.get_or_insert_with(|| format!("{}: {err}", e.name));
        }
    }
    (failed, first)
}

/// The rest of each burst, `interval` apart, then the refresh every `refresh` for the
/// addresses still held; ends when every address was released.
async fn run_bursts(arp: ArpConfig, mut entries: Vec<BurstEntry>) {
    for _ in 1..arp.count {
        tokio::time::sleep(arp.interval).await;
        entries.retain(|e| e.live.load(Ordering::SeqCst));
        if entries.is_empty() {
            return;
        }
        if let (n @ 1.., Some(first)) = send_all(&entries, None).await {
            log(&LogEvent::ArpBurstFailed {
                failed: n,
                reason: &first,
            });
        }
    }
    let Some(period) = arp.refresh else { return };
    // A switch or router that missed (or aged out) the burst learns the VIPs' MAC again
    // within one period; logged once per failure streak, not per packet.
    let mut failing = false;
    loop {
        tokio::time::sleep(period).await;
        entries.retain(|e| e.live.load(Ordering::SeqCst));
        if entries.is_empty() {
            return;
        }
        // Announcing an address someone removed by hand would pull its traffic here for
        // nothing (or from the node that holds it now); one dump tells for all of them.
        let held = held_now().await;
        match send_all(&entries, held.as_ref()).await {
            (0, _) if failing => {
                failing = false;
                log(&LogEvent::ArpRefreshWorks {});
            }
            (n @ 1.., Some(first)) if !failing => {
                failing = true;
                log(&LogEvent::ArpRefreshFailed {
                    failed: n,
                    reason: &first,
                });
            }
            _ => {}
        }
    }
}

/// Every (link, address) present now; `None` when it cannot be told (a failed dump is no
/// reason to stop announcing addresses `stop` has not released).
async fn held_now() -> Option<HashSet<(u32, IpAddr)>> {
    let nl = Netlink::connect().ok()?;
    let addrs = nl.addresses().await.ok()?;
    Some(addrs.into_iter().map(|a| (a.index, a.addr)).collect())
}

/// A fresh liveness token for one address's announcements.
pub(crate) fn token() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(true))
}
