//! Corosync's node list: ha.cf's nodes plus those given with `--node`, each with the
//! addresses given, read from `ucast` lines, or left to corosync to resolve by name.

use std::net::IpAddr;

use ha_config::Medium;

use crate::model::{Builder, ClusterNode, ExportError, Level, Options};

impl Builder<'_> {
    pub(crate) fn nodes(&mut self, opts: &Options) -> Result<Vec<ClusterNode>, ExportError> {
        let cf = &self.config.ha_cf;
        let mut names: Vec<String> = cf.nodes.iter().map(|n| n.as_str().to_string()).collect();
        for (i, n) in opts.nodes.iter().enumerate() {
            if opts.nodes[..i].iter().any(|m| m.name == n.name) {
                return Err(ExportError::Option(format!(
                    "--node {} is given twice",
                    n.name
                )));
            }
            if !names.contains(&n.name) {
                self.note(
                    Level::Info,
                    format!(
                        "node `{}` is not in ha.cf: added from --node (Pacemaker is not limited to two nodes).",
                        n.name
                    ),
                );
                names.push(n.name.clone());
            }
        }
        let guessed = self.ucast_addresses(&names, opts);
        let mut out = Vec::new();
        let mut unresolved = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let addrs: Vec<String> = match opts.nodes.iter().find(|n| &n.name == name) {
                Some(n) => n.addrs.iter().map(IpAddr::to_string).collect(),
                None => match guessed.get(i).filter(|a| !a.is_empty()) {
                    Some(a) => a.iter().map(IpAddr::to_string).collect(),
                    None => {
                        unresolved.push(name.clone());
                        vec![name.clone()]
                    }
                },
            };
            out.push(ClusterNode {
                id: u32::try_from(i + 1).unwrap_or(u32::MAX),
                name: name.clone(),
                addrs,
            });
        }
        if let Some(first) = out.first() {
            let links = first.addrs.len();
            if let Some(bad) = out.iter().find(|n| n.addrs.len() != links) {
                return Err(ExportError::Option(format!(
                    "node `{}` has {} address(es) but `{}` has {links}: every node needs one address per Corosync link (--node NAME=ADDR0,ADDR1)",
                    bad.name,
                    bad.addrs.len(),
                    first.name
                )));
            }
        }
        if !unresolved.is_empty() {
            let ifaces: Vec<&str> = cf.media.iter().map(Medium::iface).collect();
            self.note(
                Level::Review,
                format!(
                    "no address is known for {}: corosync.conf names {} in `ring0_addr`, and corosync resolves the name at start. It must resolve (DNS or /etc/hosts, identically on every node) to the node's address on the heartbeat network ({}), never to 127.0.1.1. Or export again with --node NAME=ADDRESS.",
                    unresolved.join(", "),
                    if unresolved.len() == 1 { "it" } else { "them" },
                    if ifaces.is_empty() { "?".to_string() } else { ifaces.join(", ") }
                ),
            );
        }
        let ifaces: Vec<&str> = {
            let mut v: Vec<&str> = cf.media.iter().map(Medium::iface).collect();
            v.dedup();
            v
        };
        let links = out.first().map_or(0, |n| n.addrs.len());
        if ifaces.len() > links {
            self.note(
                Level::Review,
                format!(
                    "ha.cf sends heartbeats on {} interfaces ({}); corosync.conf has {links} link(s). For the same redundancy give each node one address per network: --node NAME=ADDR0,ADDR1.",
                    ifaces.len(),
                    ifaces.join(", ")
                ),
            );
        }
        Ok(out)
    }

    /// Addresses of `names` taken from `ucast` lines. On each interface, as many addresses
    /// as nodes are read in `node` order (one Corosync link per interface); a file listing
    /// only the peer's address (one node's own file) gives the peer's.
    fn ucast_addresses(&mut self, names: &[String], opts: &Options) -> Vec<Vec<IpAddr>> {
        let mut by_iface: Vec<(&str, Vec<IpAddr>)> = Vec::new();
        for m in &self.config.ha_cf.media {
            let (iface, peer) = match m {
                Medium::Ucast { iface, peer } => (iface, *peer),
                Medium::Ucast6 { iface, peer, .. } => (iface, IpAddr::V6(*peer)),
                _ => continue,
            };
            let pos = match by_iface.iter().position(|(i, _)| i == iface) {
                Some(p) => p,
                None => {
                    by_iface.push((iface.as_str(), Vec::new()));
                    by_iface.len() - 1
                }
            };
            let list = &mut by_iface[pos].1;
            if !list.contains(&peer) {
                list.push(peer);
            }
        }
        let cf_nodes = self.config.ha_cf.nodes.len();
        let mut out = vec![Vec::new(); names.len()];
        if by_iface.is_empty() {
            return out;
        }
        if by_iface.iter().all(|(_, a)| a.len() == cf_nodes) {
            let mut pairs = Vec::new();
            for (i, name) in names.iter().take(cf_nodes).enumerate() {
                out[i] = by_iface.iter().map(|(_, a)| a[i]).collect();
                let list: Vec<String> = out[i].iter().map(IpAddr::to_string).collect();
                pairs.push(format!("{name}={}", list.join(",")));
            }
            self.note(
                Level::Review,
                format!(
                    "node addresses were taken from the `ucast` lines in `node` order ({}): check them, or give --node NAME=ADDRESS.",
                    pairs.join(" ")
                ),
            );
        } else if let [(_, addrs)] = by_iface.as_slice()
            && addrs.len() == 1
            && cf_nodes == 2
            && let Some(local) = &opts.local_node
            && let Some(peer) = (0..2).find(|&i| names[1 - i] == *local)
        {
            out[peer] = vec![addrs[0]];
            self.note(
                Level::Review,
                format!(
                    "the `ucast` line gives the peer's address: {}={}; this node's own address is not in ha.cf.",
                    names[peer], addrs[0]
                ),
            );
        }
        out
    }
}
