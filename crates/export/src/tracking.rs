//! had.toml's Keepalived-style tracking → Pacemaker: `[priority]` → a location score per
//! node, `link:IF` monitors → an `ocf:heartbeat:ethmonitor` clone and a rule keeping the
//! group off nodes whose link is down; weights, `rise`, per-node monitors and
//! `failback_delay` have no equivalent and are noted.

use std::time::Duration;

use ha_config::{Check, GroupSpec};

use crate::model::{
    Attrs, Builder, Level, LinkRule, LinkWatch, Location, Operation, PREFER_SCORE, Primitive, secs,
};
use crate::resources::bound_to;

/// ethmonitor's own advertised monitor interval and timeout.
const ETHMONITOR_OP: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(60));

impl Builder<'_> {
    /// The group's location preferences: its haresources node at [`PREFER_SCORE`], or with
    /// `[priority]` every listed node at its priority (the haresources node one higher on a
    /// tie, as had breaks ties).
    pub(crate) fn locations(&mut self, group_id: &str, g: &GroupSpec) -> Vec<Location> {
        let prio = &self.config.had.priority;
        let mut wanted: Vec<(String, u32)> = if prio.is_empty() {
            vec![(g.node.as_str().to_string(), PREFER_SCORE)]
        } else {
            prio.iter().map(|p| (p.node.clone(), p.priority)).collect()
        };
        let preferred = g.node.as_str();
        if let Some(mine) = wanted.iter().find(|(n, _)| n == preferred).map(|(_, s)| *s)
            && wanted.iter().any(|(n, s)| n != preferred && *s == mine)
            && let Some(w) = wanted.iter_mut().find(|(n, _)| n == preferred)
        {
            w.1 += 1;
        }
        wanted
            .into_iter()
            .map(|(node, score)| Location {
                id: self.ids.unique(&format!("{group_id}-prefers-{node}")),
                node,
                score,
            })
            .collect()
    }

    /// The highest location score any group gets.
    pub(crate) fn max_location_score(&self) -> u32 {
        self.config
            .had
            .priority
            .iter()
            .map(|p| p.priority + 1)
            .max()
            .unwrap_or(PREFER_SCORE)
            .max(PREFER_SCORE)
    }

    /// One rule per `link:IF` monitor of the group, and the ethmonitor clone it reads.
    pub(crate) fn link_rules(&mut self, group_id: &str, g: &GroupSpec) -> Vec<LinkRule> {
        let config = self.config;
        let mut ifaces: Vec<&str> = Vec::new();
        for m in &config.had.monitors {
            if let Check::Link(iface) = &m.check
                && bound_to(config, m).is_some_and(|(line, _)| line == g.line)
                && !ifaces.contains(&iface.as_str())
            {
                ifaces.push(iface);
            }
        }
        let mut rules = Vec::new();
        for iface in ifaces {
            let attribute = format!("ethmonitor-{iface}");
            if !self.links.iter().any(|l| l.iface == iface) {
                let watch = self.link_watch(iface);
                self.links.push(watch);
            }
            let id = self.ids.unique(&format!("{group_id}-needs-{iface}"));
            let rule_id = self.ids.unique(&format!("{id}-rule"));
            let expr_ids = [
                self.ids.unique(&format!("{rule_id}-expression")),
                self.ids.unique(&format!("{rule_id}-expression-0")),
            ];
            rules.push(LinkRule {
                id,
                rule_id,
                expr_ids,
                attribute,
            });
        }
        rules
    }

    fn link_watch(&mut self, iface: &str) -> LinkWatch {
        let pid = self.ids.unique(&format!("ethmon-{iface}"));
        let params = Attrs::new(
            &mut self.ids,
            &pid,
            "instance_attributes",
            vec![("interface".into(), iface.to_string())],
        );
        let (interval, timeout) = ETHMONITOR_OP;
        let op = Operation {
            id: self
                .ids
                .unique(&format!("{pid}-monitor-{}", secs(interval))),
            name: "monitor",
            interval,
            timeout,
        };
        let id = self.ids.unique(&format!("cl-{pid}"));
        self.note(
            Level::Review,
            format!(
                "link:{iface} → the clone {id} (ocf:heartbeat:ethmonitor) on every node, and a rule keeping the group off nodes whose {iface} is down. had watched carrier through netlink events; ethmonitor polls every {} (and may also judge the link by traffic).",
                secs(interval)
            ),
        );
        LinkWatch {
            id,
            iface: iface.to_string(),
            primitive: Primitive {
                id: pid,
                class: "ocf",
                provider: Some("heartbeat".into()),
                agent: "ethmonitor".into(),
                params,
                meta: Attrs::default(),
                ops: vec![op],
                from: format!("link:{iface}"),
            },
        }
    }

    /// What Keepalived-style settings could not carry.
    pub(crate) fn tracking_notes(&mut self) {
        let had = &self.config.had;
        let weighted: Vec<String> = had
            .monitors
            .iter()
            .filter(|m| m.weight != 0)
            .map(|m| format!("had.toml:{} ({} weight {})", m.line, m.resource, m.weight))
            .collect();
        let mut notes = Vec::new();
        if !had.priority.is_empty() {
            let list: Vec<String> = had
                .priority
                .iter()
                .map(|p| format!("{}={}", p.node, p.priority))
                .collect();
            notes.push((
                Level::Info,
                format!(
                    "[priority] ({}) → location scores: each group prefers the node with the highest priority.",
                    list.join(", ")
                ),
            ));
        }
        if !weighted.is_empty() {
            notes.push((
                Level::Review,
                format!(
                    "weighted checks are not carried: {}. In had a failing one lowers the node's priority and the group moves only when the sum falls below the peer's; in Pacemaker its monitor restarts the resource in place (no migration-threshold is set for it). To move on failure, set migration-threshold on the resource.",
                    weighted.join(", ")
                ),
            ));
        }
        for m in &had.monitors {
            if m.rise > 1 {
                notes.push((
                    Level::Review,
                    format!(
                        "had.toml:{}: `rise = {}` has no Pacemaker equivalent: one passing monitor clears the failure.",
                        m.line, m.rise
                    ),
                ));
            }
        }
        let per_node: Vec<String> = had
            .monitors
            .iter()
            .filter_map(|m| {
                m.node
                    .as_ref()
                    .map(|n| format!("had.toml:{} ({n})", m.line))
            })
            .collect();
        if !per_node.is_empty() {
            notes.push((
                Level::Review,
                format!(
                    "monitors that run on one node only in had: {}; Pacemaker monitors a resource wherever it runs.",
                    per_node.join(", ")
                ),
            ));
        }
        if !had.group.failback_delay.is_zero() {
            notes.push((
                Level::Review,
                format!(
                    "[group] failback_delay = {} is not carried: Pacemaker moves a group back as soon as stickiness allows (set resource-stickiness and move it by hand, or use a time-based rule).",
                    secs(had.group.failback_delay)
                ),
            ));
        }
        for (level, text) in notes {
            self.note(level, text);
        }
    }
}
