//! Re-announcing a running group's addresses (gratuitous ARP) without touching the
//! resources: after a split brain heals, the peer's announcements may have pointed the
//! LAN's ARP caches at it, and stopping its copy of the address sends nothing to undo that.

use std::time::Duration;

use crate::logcat::{LogEvent, log};
use ha_agents::{NetBatch, Resource};

use crate::cluster::GroupId;
use crate::groups::Groups;

/// Send `count` gratuitous ARPs (at least one), `interval` apart, for every address of group
/// `g`, in a task of its own so the loop never waits on it.
pub fn spawn(groups: &Groups, g: GroupId, count: u32, interval: Duration) {
    let Some(res) = groups.resources.get(g.0).cloned() else {
        return;
    };
    let key = groups.keys.get(g.0).cloned().unwrap_or_default();
    // On the agents' thread, with one view of the network per round: a group of a thousand
    // addresses is one dump, not a thousand.
    crate::agent_rt::spawn(async move {
        for i in 0..count.max(1) {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            let mut batch = NetBatch::new();
            for r in res.iter() {
                if let Resource::Ip(ip) = r
                    && let Err(e) = ip.announce_in(&mut batch).await
                {
                    log(&LogEvent::ArpFailed {
                        group: &key,
                        resource: ip.name(),
                        reason: &e.to_string(),
                    });
                }
            }
        }
        log(&LogEvent::Reannounced { group: &key });
    });
}
