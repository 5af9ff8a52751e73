//! The built-in IPaddr/IPaddr2/IPv6addr agent: a virtual address added and removed over
//! rtnetlink, announced with a gratuitous ARP burst (IPv4) or unsolicited neighbour
//! advertisements (IPv6).

mod batch;
mod garp;
#[cfg(test)]
mod lab_test;
mod na;
mod netlink;

use std::net::IpAddr;
use std::sync::Arc;

use ha_config::Word;
use ha_config::agent::IpPlan;
pub use ha_config::agent::{IpFlavour, IpSpec, IpSpecError};
use ha_core::logcat::{LogEvent, log};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};

use crate::{AgentError, ArpConfig, Op, RunState};
pub use batch::NetBatch;
use batch::{Announcer, BurstCounter, BurstEntry, Live, NetView};
use netlink::{Addr, errno, network_of, subnet_contains};

/// A virtual IP address resource. A clone is the same address, not a new one: see
/// [`crate::Resource`].
#[derive(Debug, Clone)]
pub struct IpResource {
    /// Shares the text haresources was parsed into (issue 14: one copy per token).
    name: Word,
    flavour: IpFlavour,
    spec: IpSpec,
    /// Shared by every address built with the same shape (in practice all of them): 8 bytes
    /// per address instead of 40 (issue 14).
    arp: Arc<ArpConfig>,
    /// Moved by each burst's start and by stop (see `batch::Live`), so a released VIP is
    /// never re-announced.
    burst: BurstCounter,
}

/// The last burst shape handed out, for the next address of the same shape to share: a
/// configuration has one `[arp]` shape, so its thousand addresses get one allocation.
fn shared_shape(arp: ArpConfig) -> Arc<ArpConfig> {
    static LAST: std::sync::Mutex<Option<Arc<ArpConfig>>> = std::sync::Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match &*last {
        Some(a) if **a == arp => Arc::clone(a),
        _ => Arc::clone(last.insert(Arc::new(arp))),
    }
}

/// Where the address goes, once omitted parts are filled in.
#[derive(Debug, Clone)]
struct Placement {
    index: u32,
    iface: String,
    prefix: u8,
}

impl IpResource {
    /// Parse the haresources arguments of an IPaddr/IPaddr2 resource.
    ///
    /// `::` splits haresources arguments, so an IPv6 address may arrive in pieces;
    /// they are rejoined when the whole parses as IPv6.
    pub fn new(
        name: &str,
        flavour: IpFlavour,
        args: &[String],
        arp: ArpConfig,
    ) -> Result<IpResource, AgentError> {
        Ok(Self::from_plan(IpPlan::new(name, flavour, args, arp)?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: IpPlan) -> Self {
        let IpPlan {
            name,
            flavour,
            spec,
            arp,
        } = p;
        IpResource {
            name,
            flavour,
            spec,
            arp: shared_shape(arp),
            burst: BurstCounter::new(),
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parsed argument.
    pub fn spec(&self) -> &IpSpec {
        &self.spec
    }

    /// Add the address (already present = success), then announce it with gratuitous ARP.
    pub async fn start(&self) -> Result<(), AgentError> {
        self.start_in(&mut NetBatch::new()).await
    }

    /// `start` within a group operation's batch (one view of the network for all its
    /// addresses, one task for all their bursts).
    pub async fn start_in(&self, batch: &mut NetBatch) -> Result<(), AgentError> {
        let op = Op::Start;
        let view = batch.view().await.map_err(|e| self.system(op, e))?;
        let place = self.place(view)?;
        let spec = &self.spec;
        let result = view
            .nl
            .add(place.index, spec.addr, place.prefix, |msg| {
                self.decorate(msg)
            })
            .await;
        match result {
            Ok(_) => {
                log(&LogEvent::AddressAdded {
                    resource: &self.name,
                    iface: &place.iface,
                    addr: spec.addr,
                    prefix: place.prefix,
                });
                // Without the message sent: it is built again should this batch remove the
                // address (a rollback), rather than a thousand of them held to the end of
                // the operation (issue 14).
                view.added(Addr {
                    index: place.index,
                    addr: spec.addr,
                    prefix: place.prefix,
                    msg: AddressMessage::default(),
                });
            }
            Err(e) if errno(&e) == Some(libc::EEXIST) => {
                tracing::debug!(resource = %self.name, "address already present");
            }
            Err(e) => {
                return Err(
                    self.system(op, format!("adding {} to {}: {e}", spec.addr, place.iface))
                );
            }
        }
        if let Err(e) = self.start_burst(batch, place.index) {
            // The address is up; a lost announcement only delays peers' ARP caches.
            log(&LogEvent::ArpStartFailed {
                resource: &self.name,
                reason: &e.to_string(),
            });
        }
        Ok(())
    }

    /// Remove the address wherever the interface rule says it is (absent = success).
    pub async fn stop(&self) -> Result<(), AgentError> {
        self.stop_in(&mut NetBatch::new()).await
    }

    /// `stop` within a group operation's batch.
    pub async fn stop_in(&self, batch: &mut NetBatch) -> Result<(), AgentError> {
        self.abort_burst();
        let op = Op::Stop;
        let view = batch.view().await.map_err(|e| self.system(op, e))?;
        for found in self.present(view) {
            // An empty message is an address this batch added (see `start_in`).
            let msg = if found.msg.attributes.is_empty() {
                view.nl
                    .add_message(found.index, found.addr, found.prefix, |m| self.decorate(m))
            } else {
                found.msg
            };
            match view.nl.del(msg).await {
                Ok(()) => log(&LogEvent::AddressRemoved {
                    resource: &self.name,
                    addr: self.spec.addr,
                }),
                Err(e) if matches!(errno(&e), Some(libc::ENOENT | libc::EADDRNOTAVAIL)) => {}
                Err(e) => {
                    return Err(self.system(op, format!("removing {}: {e}", self.spec.addr)));
                }
            }
            view.removed(found.index, found.addr);
        }
        Ok(())
    }

    /// Running when the address is on the named interface (or any interface if none was named).
    pub async fn status(&self) -> Result<RunState, AgentError> {
        self.status_in(&mut NetBatch::new()).await
    }

    /// `status` within a group operation's batch.
    pub async fn status_in(&self, batch: &mut NetBatch) -> Result<RunState, AgentError> {
        let view = batch.view().await.map_err(|e| self.system(Op::Status, e))?;
        Ok(if self.present(view).is_empty() {
            RunState::Stopped
        } else {
            RunState::Running
        })
    }

    /// Send one gratuitous ARP (IPv4) or unsolicited NA (IPv6) now (NOARP links: nothing).
    pub async fn announce(&self) -> Result<(), AgentError> {
        self.announce_in(&mut NetBatch::new()).await
    }

    /// `announce` with a batch's view and socket (one dump for a whole group's addresses).
    pub async fn announce_in(&self, batch: &mut NetBatch) -> Result<(), AgentError> {
        let view = batch.view().await.map_err(|e| self.system(Op::Start, e))?;
        let place = self.place(view)?;
        if let Some(sender) = self.announcer(batch, place.index)? {
            sender.send().map_err(|e| {
                self.system(
                    Op::Start,
                    format!("sending gratuitous ARP on {}: {e}", place.iface),
                )
            })?;
        }
        Ok(())
    }

    /// The gratuitous ARP burst (and refresh) alone, without adding the address: `SendArp`.
    pub(crate) async fn start_announcing(&self) -> Result<(), AgentError> {
        let mut batch = NetBatch::new();
        let view = batch.view().await.map_err(|e| self.system(Op::Start, e))?;
        let place = self.place(view)?;
        self.start_burst(&mut batch, place.index)
    }

    /// Stop a running burst or refresh.
    pub(crate) fn stop_announcing(&self) {
        self.abort_burst();
    }

    fn system(&self, op: Op, reason: String) -> AgentError {
        AgentError::System {
            resource: self.name.to_string(),
            op,
            reason,
        }
    }

    fn resolve_err(&self, op: Op, reason: String) -> AgentError {
        AgentError::Resolve {
            resource: self.name.to_string(),
            op,
            reason,
        }
    }

    /// Broadcast, label and (IPv6) no-DAD on the RTM_NEWADDR message.
    fn decorate(&self, msg: &mut AddressMessage) {
        if let Some(brd) = self.spec.broadcast {
            msg.attributes
                .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
            msg.attributes.push(AddressAttribute::Broadcast(brd));
        }
        if let Some(label) = self.spec.label() {
            msg.attributes
                .push(AddressAttribute::Label(label.to_string()));
        }
        if self.spec.addr.is_ipv6() {
            // The peer held this address a moment ago; DAD would only delay it by seconds.
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }

    /// Fill in the interface and prefix, from the address dump when omitted.
    fn place(&self, view: &NetView) -> Result<Placement, AgentError> {
        let op = Op::Start;
        let vip = self.spec.addr;
        if let Some(name) = self.spec.iface() {
            let link = view
                .link_by_name(name)
                .ok_or_else(|| self.resolve_err(op, format!("no interface named `{name}`")))?;
            let prefix = match self.spec.prefix {
                Some(p) => p,
                None => best_subnet(view.all().filter(|a| a.index == link.index), vip)
                    .map(|a| a.prefix)
                    .ok_or_else(|| {
                        self.resolve_err(
                            op,
                            format!(
                                "{name} has no subnet containing {vip}; write {}",
                                self.hint(Some(name))
                            ),
                        )
                    })?,
            };
            return Ok(Placement {
                index: link.index,
                iface: link.name.clone(),
                prefix,
            });
        }
        let base = best_subnet(view.all(), vip).ok_or_else(|| {
            self.resolve_err(
                op,
                format!(
                    "no interface has a subnet containing {vip}; write {}",
                    self.hint(None)
                ),
            )
        })?;
        let iface = match view.link_by_index(base.index) {
            Some(link) => link.name.clone(),
            None => format!("ifindex {}", base.index),
        };
        log(&LogEvent::AddressPlaced {
            resource: &self.name,
            flavour: self.flavour.as_str(),
            vip,
            iface: &iface,
            subnet: network_of(base.addr, base.prefix),
            prefix: base.prefix,
        });
        Ok(Placement {
            index: base.index,
            iface,
            prefix: self.spec.prefix.unwrap_or(base.prefix),
        })
    }

    fn hint(&self, iface: Option<&str>) -> String {
        let default_prefix = if self.spec.addr.is_ipv4() { 24 } else { 64 };
        format!(
            "{}::{}/{}/{}",
            self.flavour.as_str(),
            self.spec.addr,
            self.spec.prefix.unwrap_or(default_prefix),
            iface.unwrap_or("eth0")
        )
    }

    /// The view's entries that are this address on the relevant interface(s).
    fn present(&self, view: &NetView) -> Vec<Addr> {
        let index = match self.spec.iface() {
            None => None,
            Some(name) => match view.link_by_name(name) {
                Some(link) => Some(link.index),
                // No such interface: the address cannot be on it.
                None => return Vec::new(),
            },
        };
        view.entries(self.spec.addr)
            .iter()
            .filter(|a| index.is_none_or(|i| a.index == i))
            .cloned()
            .collect()
    }

    /// The announcement of this address on link `index`, through the batch's socket; `None`
    /// on links that do no ARP/ND.
    fn announcer(&self, batch: &mut NetBatch, index: u32) -> Result<Option<Announcer>, AgentError> {
        let Some(link) = batch
            .current_view()
            .and_then(|v| v.link_by_index(index))
            .cloned()
        else {
            return Ok(None);
        };
        let (true, Some(mac)) = (link.arp_capable, link.mac) else {
            tracing::debug!(resource = %self.name, iface = %link.name, "link does no ARP/ND; no announcement");
            return Ok(None);
        };
        batch
            .socket()
            .and_then(|fd| Announcer::new(fd, &link, mac, self.spec.addr))
            .map(Some)
            .map_err(|e| self.system(Op::Start, format!("packet socket on {}: {e}", link.name)))
    }

    /// First packet now; the rest `interval` apart, then the refresh, in the batch's shared
    /// task, which skips this address once `stop` ran.
    fn start_burst(&self, batch: &mut NetBatch, index: u32) -> Result<(), AgentError> {
        if self.arp.count == 0 && self.arp.refresh.is_none() {
            return Ok(());
        }
        let Some(announcer) = self.announcer(batch, index)? else {
            return Ok(());
        };
        if self.arp.count > 0 {
            announcer
                .send()
                .map_err(|e| self.system(Op::Start, format!("sending gratuitous ARP: {e}")))?;
        }
        if self.arp.count > 1 || self.arp.refresh.is_some() {
            let live = Live::begin(&self.burst);
            batch.queue(
                *self.arp,
                BurstEntry {
                    name: self.name.clone(),
                    announcer,
                    index,
                    vip: self.spec.addr,
                    live,
                },
            );
        }
        Ok(())
    }

    fn abort_burst(&self) {
        Live::end(&self.burst);
    }
}

/// The address whose subnet holds `vip` most specifically; a base address beats the VIP itself.
fn best_subnet<'a>(addrs: impl Iterator<Item = &'a Addr>, vip: IpAddr) -> Option<&'a Addr> {
    addrs
        .filter(|a| subnet_contains(a.addr, a.prefix, vip))
        .max_by_key(|a| (a.addr != vip, a.prefix, std::cmp::Reverse(a.index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ipv6_rejoined_from_split_arguments() {
        let r = IpResource::new(
            "IPaddr2::2001:db8::10/64/eth0",
            IpFlavour::IPaddr2,
            &args(&["2001:db8", "10/64/eth0"]),
            ArpConfig::default(),
        )
        .unwrap();
        assert_eq!(r.spec().addr, "2001:db8::10".parse::<IpAddr>().unwrap());
        assert_eq!(r.spec().prefix, Some(64));
    }

    #[test]
    fn argument_count_errors() {
        let e =
            IpResource::new("IPaddr", IpFlavour::IPaddr, &[], ArpConfig::default()).unwrap_err();
        assert!(e.to_string().contains("needs an address"), "{e}");
        let e = IpResource::new(
            "IPaddr::10.0.0.1::x",
            IpFlavour::IPaddr,
            &args(&["10.0.0.1", "x"]),
            ArpConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("takes one argument"), "{e}");
        let e = IpResource::new(
            "IPaddr::10.0.0.1/40",
            IpFlavour::IPaddr,
            &args(&["10.0.0.1/40"]),
            ArpConfig::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("IPaddr::10.0.0.1/40: bad IPaddr argument"),
            "{e}"
        );
    }
}
