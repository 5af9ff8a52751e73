//! One group operation's view of the network, shared by its IP resources: one rtnetlink
//! connection, one link dump and one address dump (kept current with the operation's own
//! adds and removals), one packet socket, and the gratuitous ARP bursts of all its addresses
//! paced by one task. Asking the kernel per address made a group of N addresses cost N dumps
//! of N addresses each: 1,000 addresses took seconds, and the work delayed the heartbeats.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

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
    /// By burst shape (in practice one): each list goes to its task as it is, not copied.
    bursts: Vec<(ArpConfig, Vec<BurstEntry>)>,
}

/// One connection and what its dumps said, updated with this operation's own changes.
pub(crate) struct NetView {
    pub nl: Netlink,
    pub links: Vec<Link>,
    /// By address, so that each resource's question costs the same with 1 or 1,000 others.
    addrs: HashMap<IpAddr, Entries>,
}

/// An address's entries: almost always one, kept in the table itself. A `Vec` each would
/// be one more allocation per address, held until the operation ends and then freed, but
/// a thousand of them leave their pages resident among what lives on (issue 14).
#[derive(Debug)]
enum Entries {
    One(Addr),
    Many(Vec<Addr>),
}

impl Entries {
    fn as_slice(&self) -> &[Addr] {
        match self {
            Entries::One(a) => std::slice::from_ref(a),
            Entries::Many(v) => v,
        }
    }

    fn push(&mut self, a: Addr) {
        match self {
            Entries::Many(v) => v.push(a),
            Entries::One(_) => {
                if let Entries::One(first) = std::mem::replace(self, Entries::Many(Vec::new())) {
                    *self = Entries::Many(vec![first, a]);
                }
            }
        }
    }

    fn retain(&mut self, keep: impl Fn(&Addr) -> bool) {
        match self {
            Entries::One(a) if !keep(a) => *self = Entries::Many(Vec::new()),
            Entries::One(_) => {}
            Entries::Many(v) => v.retain(keep),
        }
    }
}

fn push_one(addrs: &mut HashMap<IpAddr, Entries>, a: Addr) {
    match addrs.get_mut(&a.addr) {
        Some(e) => e.push(a),
        None => {
            addrs.insert(a.addr, Entries::One(a));
        }
    }
}

impl NetView {
    fn new(nl: Netlink, links: Vec<Link>, dump: Vec<Addr>) -> NetView {
        let mut addrs: HashMap<IpAddr, Entries> = HashMap::with_capacity(dump.len());
        for a in dump {
            push_one(&mut addrs, a);
        }
        NetView { nl, links, addrs }
    }

    /// Every address of the view.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Addr> {
        self.addrs.values().flat_map(Entries::as_slice)
    }

    /// The entries for `addr` (on any link).
    pub(crate) fn entries(&self, addr: IpAddr) -> &[Addr] {
        self.addrs.get(&addr).map_or(&[], Entries::as_slice)
    }

    /// Record an address this operation added (its `msg` may be left empty: see
    /// `IpResource::start_in`).
    pub(crate) fn added(&mut self, a: Addr) {
        push_one(&mut self.addrs, a);
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
    /// Ended by the resource's stop: a released address is never announced again.
    pub live: Live,
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
        match self.bursts.iter_mut().find(|(a, _)| *a == arp) {
            Some((_, list)) => list.push(entry),
            None => self.bursts.push((arp, vec![entry])),
        }
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
        for (arp, entries) in std::mem::take(&mut self.bursts) {
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
        if !e.live.get() {
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
        entries.retain(|e| e.live.get());
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
        entries.retain(|e| e.live.get());
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

/// Whether one burst of an address is still wanted: the address's counter has not moved
/// since the burst began (a stop, a newer burst or the address's end moves it).
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// The address's place in the table.
    slot: u32,
    generation: u32,
}

/// An address's burst counter: a place in one process-wide table rather than an allocation
/// of its own. A counter allocated per address costs 40 bytes of it for the daemon's life
/// (issue 14: idle RSS flat from 1 to 1,000 addresses), and one allocated per start would be
/// the one long-lived allocation among each address's transient ones, keeping the pages of
/// a whole acquisition resident.
///
/// A clone is the same address (a reload keeps a running address in its group's new list
/// while the old list still holds it): the place is freed, and its bursts end, with the last.
#[derive(Debug)]
pub(crate) struct BurstCounter(u32);

/// One address's place: its burst generation and how many counters share it.
#[derive(Clone, Copy)]
struct Slot {
    generation: u32,
    holders: u32,
}

struct Counters {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

static COUNTERS: std::sync::Mutex<Counters> = std::sync::Mutex::new(Counters {
    slots: Vec::new(),
    free: Vec::new(),
});

fn counters() -> std::sync::MutexGuard<'static, Counters> {
    // The table holds plain numbers: a panic elsewhere leaves nothing half-updated in it.
    COUNTERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BurstCounter {
    pub(crate) fn new() -> BurstCounter {
        let mut c = counters();
        let slot = match c.free.pop() {
            Some(i) => i,
            None => {
                // More than 4 billion live addresses cannot be: memory runs out first.
                let i = u32::try_from(c.slots.len()).unwrap_or(u32::MAX);
                c.slots.push(Slot {
                    generation: 0,
                    holders: 0,
                });
                i
            }
        };
        if let Some(s) = c.slots.get_mut(slot as usize) {
            s.holders = 1;
        }
        BurstCounter(slot)
    }
}

impl Clone for BurstCounter {
    fn clone(&self) -> BurstCounter {
        if let Some(s) = counters().slots.get_mut(self.0 as usize) {
            s.holders = s.holders.saturating_add(1);
        }
        BurstCounter(self.0)
    }
}

impl Drop for BurstCounter {
    fn drop(&mut self) {
        let mut c = counters();
        let Some(s) = c.slots.get_mut(self.0 as usize) else {
            return;
        };
        s.holders = s.holders.saturating_sub(1);
        if s.holders == 0 {
            // Generations only grow: a burst of this address still queued never matches
            // the place again, whoever takes it next.
            s.generation = s.generation.wrapping_add(1);
            c.free.push(self.0);
        }
    }
}

impl Live {
    /// A new burst of the address whose counter is `counter`; earlier ones end.
    pub(crate) fn begin(counter: &BurstCounter) -> Live {
        let slot = counter.0;
        let mut c = counters();
        let generation = match c.slots.get_mut(slot as usize) {
            Some(s) => {
                s.generation = s.generation.wrapping_add(1);
                s.generation
            }
            None => 0,
        };
        Live { slot, generation }
    }

    /// End every burst of the address whose counter is `counter`.
    pub(crate) fn end(counter: &BurstCounter) {
        if let Some(s) = counters().slots.get_mut(counter.0 as usize) {
            s.generation = s.generation.wrapping_add(1);
        }
    }

    pub(crate) fn get(&self) -> bool {
        counters()
            .slots
            .get(self.slot as usize)
            .is_some_and(|s| s.generation == self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_lives_until_its_address_stops_starts_again_or_goes() {
        let a = BurstCounter::new();
        let first = Live::begin(&a);
        assert!(first.get());
        // A newer burst of the same address ends the first.
        let second = Live::begin(&a);
        assert!(!first.get() && second.get());
        Live::end(&a);
        assert!(!second.get(), "a stopped address is not announced again");
        let third = Live::begin(&a);
        let b = BurstCounter::new();
        let other = Live::begin(&b);
        drop(a);
        assert!(!third.get(), "an address dropped is not announced again");
        assert!(other.get(), "another address's burst goes on");
        // Whoever takes the freed place next never revives the old address's bursts.
        let c = BurstCounter::new();
        let fresh = Live::begin(&c);
        assert!(fresh.get());
        assert!(!first.get() && !second.get() && !third.get());
    }

    #[test]
    fn a_shared_address_is_announced_until_its_last_holder_goes() {
        let a = BurstCounter::new();
        let kept = a.clone();
        let burst = Live::begin(&a);
        drop(a);
        assert!(burst.get(), "the address lives on in the other list");
        // Either holder stops it: they are the same address.
        Live::end(&kept);
        assert!(!burst.get());
        let again = Live::begin(&kept);
        drop(kept);
        assert!(
            !again.get(),
            "the last holder gone, the address is not announced"
        );
        // Its place is free once, not twice.
        let b = BurstCounter::new();
        let c = BurstCounter::new();
        assert_ne!(b.0, c.0);
    }
}
