//! The mapping from keepalived's model to had's four files. Pure: the random key comes in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use ha_config::{Diagnostic, Diagnostics, Severity};

use crate::model::{Dropped, Instance, Keepalived, Notify, SyncGroup, Tracked};

/// One node's side of the import.
pub struct Side<'a> {
    /// The node's name in ha.cf.
    pub node: String,
    /// Its keepalived.conf as read.
    pub conf: &'a Keepalived,
    /// The file it came from.
    pub path: &'a Path,
}

/// The written files and the human report.
#[derive(Debug, Default)]
pub struct Output {
    /// `(file name, contents)`: ha.cf, haresources, authkeys, had.toml.
    pub files: Vec<(String, String)>,
    /// Everything not carried, one line each (`file:line: what: why`).
    pub dropped: Vec<String>,
    /// Remarks on the mapping (placeholders, assumptions, behaviour worth knowing).
    pub notes: Vec<String>,
}

/// One resource group: the instances that move together, on each side.
struct Group<'a> {
    name: String,
    local: Vec<&'a Instance>,
    peer: Vec<&'a Instance>,
    local_sync: Option<&'a SyncGroup>,
    peer_sync: Option<&'a SyncGroup>,
}

/// A had.toml monitor, before deduplication across the two nodes.
#[derive(Clone, Debug, PartialEq)]
struct Mon {
    resource: String,
    check: String,
    interval: Option<String>,
    timeout: Option<String>,
    failures: Option<u32>,
    rise: Option<u32>,
    weight: i32,
    origin: String,
}

impl Mon {
    /// The same check, wherever it was written.
    fn same(&self, o: &Mon) -> bool {
        Mon {
            origin: String::new(),
            ..self.clone()
        } == Mon {
            origin: String::new(),
            ..o.clone()
        }
    }
}

fn secs(v: f64) -> String {
    let ms = (v * 1000.0).round() as u64;
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// ha.cf's time syntax: plain seconds or `ms` (never `s`).
fn hacf_time(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn err(diags: &mut Diagnostics, file: &Path, line: usize, msg: String, help: Option<String>) {
    let mut d = Diagnostic::new(Severity::Error, file, msg);
    d.line = line;
    d.help = help;
    diags.push(d);
}

fn warn(diags: &mut Diagnostics, file: &Path, line: usize, msg: String) {
    let mut d = Diagnostic::new(Severity::Warning, file, msg);
    d.line = line;
    diags.push(d);
}

/// Build the groups: each sync group is one group, every other instance one of its own.
fn groups<'a>(
    local: &'a Keepalived,
    peer: Option<&'a Keepalived>,
    path: &Path,
    diags: &mut Diagnostics,
) -> Vec<Group<'a>> {
    let mut out = Vec::new();
    let mut used = Vec::new();
    for sg in &local.sync_groups {
        let mut g = Group {
            name: sg.name.clone(),
            local: Vec::new(),
            peer: Vec::new(),
            local_sync: Some(sg),
            peer_sync: peer.and_then(|p| p.sync_groups.iter().find(|s| s.name == sg.name)),
        };
        for m in &sg.members {
            match local.instances.iter().find(|i| &i.name == m) {
                Some(i) => {
                    g.local.push(i);
                    used.push(m.clone());
                }
                None => warn(
                    diags,
                    path,
                    sg.line,
                    format!(
                        "vrrp_sync_group `{}` names `{m}`, which is no vrrp_instance",
                        sg.name
                    ),
                ),
            }
        }
        if !g.local.is_empty() {
            out.push(g);
        }
    }
    for i in &local.instances {
        if used.contains(&i.name) {
            continue;
        }
        out.push(Group {
            name: i.name.clone(),
            local: vec![i],
            peer: Vec::new(),
            local_sync: None,
            peer_sync: None,
        });
    }
    if let Some(p) = peer {
        for g in &mut out {
            for li in &g.local {
                // Same name, else the same virtual_router_id on the same interface.
                let found = p
                    .instances
                    .iter()
                    .find(|pi| pi.name == li.name)
                    .or_else(|| {
                        p.instances.iter().find(|pi| {
                            pi.vrid.is_some() && pi.vrid == li.vrid && pi.interface == li.interface
                        })
                    });
                if let Some(pi) = found {
                    g.peer.push(pi);
                }
            }
        }
    }
    out
}

/// keepalived's default priority.
const DEFAULT_PRIORITY: u32 = 100;

/// The full import; `key` is the new HMAC secret (hex).
pub fn emit(
    local: &Side<'_>,
    peer: Option<&Side<'_>>,
    peer_node: &str,
    peer_priority: Option<u32>,
    key: &str,
    diags: &mut Diagnostics,
) -> Output {
    let mut out = Output::default();
    let lpath = local.path;
    let conf = local.conf;
    // After a typo such as `vrp_instance` the missing instance is no news.
    if conf.instances.is_empty() && !diags.has_errors() {
        err(
            diags,
            lpath,
            0,
            "no vrrp_instance: nothing for had to run".into(),
            Some("had moves addresses between two nodes; a keepalived.conf with only virtual_server (LVS) blocks has no VRRP part to import".into()),
        );
    }
    for side in std::iter::once(local).chain(peer) {
        for d in &side.conf.dropped {
            out.dropped.push(fmt_dropped(d));
        }
    }
    let groups = groups(conf, peer.map(|p| p.conf), lpath, diags);
    if let Some(p) = peer {
        for pi in &p.conf.instances {
            if !groups
                .iter()
                .any(|g| g.peer.iter().any(|x| x.name == pi.name))
            {
                warn(
                    diags,
                    p.path,
                    pi.line,
                    format!(
                        "vrrp_instance `{}` has no counterpart in {}: not imported",
                        pi.name,
                        lpath.display()
                    ),
                );
            }
        }
    }

    // haresources, and what each group needs elsewhere.
    let mut haresources = String::new();
    let mut group_keys = Vec::new();
    let mut auto_failback_off = Vec::new();
    let mut failback_delay: Option<f64> = None;
    let mut keepalive: Option<f64> = None;
    let mut deadtime_ms: u64 = 0;
    let mut media: Vec<String> = Vec::new();
    let mut monitors: Vec<(Option<String>, Mon)> = Vec::new();
    let mut priorities: BTreeMap<String, u32> = BTreeMap::new();
    let mut notify = NotifyOut::default();
    for g in &groups {
        let first = g.local[0];
        let lprio = first.priority.unwrap_or(DEFAULT_PRIORITY);
        let pfirst = g.peer.first().copied();
        let pprio = pfirst
            .map(|p| p.priority.unwrap_or(DEFAULT_PRIORITY))
            .or(peer_priority);
        for i in g.local.iter().skip(1) {
            if i.priority.unwrap_or(DEFAULT_PRIORITY) != lprio {
                warn(
                    diags,
                    &i.file,
                    i.line,
                    format!(
                        "vrrp_sync_group `{}`: instances with different priorities; had uses `{}`'s ({lprio})",
                        g.name, first.name
                    ),
                );
            }
        }
        let preferred_local = match pprio {
            Some(pp) if pp != lprio => lprio > pp,
            _ => {
                let lstate = first.state.as_deref().unwrap_or("BACKUP");
                let pstate = pfirst.and_then(|p| p.state.as_deref());
                match (lstate, pstate) {
                    ("MASTER", _) => true,
                    (_, Some("MASTER")) => false,
                    _ if lprio == 255 => true,
                    _ if peer.is_none() && pprio.is_none() => {
                        out.notes.push(format!("group `{}`: state BACKUP and no --peer: the peer is taken as the preferred node", g.name));
                        false
                    }
                    _ => {
                        out.notes.push(format!("group `{}`: equal priorities and states on both nodes: {} is taken as the preferred node", g.name, local.node));
                        true
                    }
                }
            }
        };
        let owner = if preferred_local {
            local.node.clone()
        } else {
            peer_node.to_string()
        };
        // Addresses.
        let mut resources = Vec::new();
        for i in &g.local {
            for v in &i.vips {
                match vip_resource(i, v, &mut out, diags) {
                    Some(r) => resources.push(r),
                    None => continue,
                }
            }
        }
        if resources.is_empty() {
            err(
                diags,
                &first.file,
                first.line,
                format!("vrrp_instance `{}` has no usable virtual_ipaddress", g.name),
                Some("add e.g. `virtual_ipaddress { 192.0.2.10/24 dev eth0 }`".into()),
            );
            continue;
        }
        if let Some(pi) = pfirst {
            let mine: Vec<&str> = g
                .local
                .iter()
                .flat_map(|i| i.vips.iter().map(|v| v.addr.as_str()))
                .collect();
            let theirs: Vec<&str> = g
                .peer
                .iter()
                .flat_map(|i| i.vips.iter().map(|v| v.addr.as_str()))
                .collect();
            if mine != theirs {
                warn(
                    diags,
                    &pi.file,
                    pi.line,
                    format!(
                        "vrrp_instance `{}`: the peer's virtual_ipaddress ({}) differs from this file's ({}); had uses this file's",
                        pi.name,
                        theirs.join(" "),
                        mine.join(" ")
                    ),
                );
            }
            if pi.vrid != first.vrid {
                warn(
                    diags,
                    &pi.file,
                    pi.line,
                    format!(
                        "vrrp_instance `{}`: virtual_router_id {:?} here, {:?} in {}: keepalived would never pair these (both MASTER: split brain)",
                        pi.name,
                        pi.vrid,
                        first.vrid,
                        lpath.display()
                    ),
                );
            }
            if pi.auth.as_ref().map(|a| &a.0) != first.auth.as_ref().map(|a| &a.0) {
                warn(
                    diags,
                    &pi.file,
                    pi.line,
                    format!(
                        "vrrp_instance `{}`: auth_pass differs between the two files: keepalived would drop the peer's adverts (both MASTER: split brain); had uses one new key",
                        pi.name
                    ),
                );
            }
        }
        let key = resources[0].clone();
        let _ = writeln!(haresources, "{owner} {}", resources.join(" "));
        group_keys.push((g.name.clone(), key.clone()));
        // Failback.
        let pref_inst = if preferred_local { Some(first) } else { pfirst };
        if let Some(pi) = pref_inst
            && let Some(line) = pi.nopreempt
        {
            if pi.state.as_deref() == Some("MASTER") {
                out.dropped.push(format!("{}:{line}: nopreempt: keepalived clears it with `state MASTER` (it logs a warning); set both nodes to `state BACKUP` for non-preemptive failover", pi.file.display()));
            } else {
                auto_failback_off.push(g.name.clone());
            }
        }
        // Without the peer's file, a nopreempt here is the best evidence of the admin's wish.
        if pfirst.is_none()
            && !preferred_local
            && first.nopreempt.is_some()
            && first.state.as_deref() != Some("MASTER")
        {
            auto_failback_off.push(g.name.clone());
        }
        for i in g.local.iter().chain(g.peer.iter()) {
            if let Some(d) = i.preempt_delay {
                failback_delay = Some(failback_delay.map_or(d, |x: f64| x.max(d)));
            }
        }
        // Timers: keepalive = advert_int; deadtime = the backup's master-down interval.
        let advert = first.advert_int.unwrap_or(1.0);
        keepalive = Some(keepalive.map_or(advert, |k: f64| k.min(advert)));
        let backup_prio = if preferred_local {
            pprio.unwrap_or(DEFAULT_PRIORITY)
        } else {
            lprio
        };
        let skew = f64::from(256 - backup_prio.min(255)) / 256.0 * advert;
        let down = ((3.0 * advert + skew) * 1000.0).ceil() as u64;
        deadtime_ms = deadtime_ms.max(down);
        // Media.
        for (side_i, is_local) in g
            .local
            .iter()
            .map(|i| (*i, true))
            .chain(g.peer.iter().map(|i| (*i, false)))
        {
            let Some(ifc) = &side_i.interface else {
                if is_local {
                    err(
                        diags,
                        &side_i.file,
                        side_i.line,
                        format!("vrrp_instance `{}` has no `interface`", side_i.name),
                        Some("add e.g. `interface eth0`".into()),
                    );
                }
                continue;
            };
            if side_i.unicast_src.is_some() || !side_i.unicast_peers.is_empty() {
                for ip in side_i.unicast_peers.iter().chain(side_i.unicast_src.iter()) {
                    let l = format!("ucast {ifc} {ip}");
                    if !media.contains(&l) {
                        media.push(l);
                    }
                }
            } else if is_local {
                let l = match &conf.mcast_group4 {
                    Some(grp) => format!("mcast {ifc} {grp} 694 1 0"),
                    None => format!("bcast {ifc}"),
                };
                if !media.contains(&l) {
                    media.push(l);
                }
            }
        }
        // Monitors and priorities.
        let sides: Vec<(&Side<'_>, &[&Instance], Option<&SyncGroup>)> =
            std::iter::once((local, g.local.as_slice(), g.local_sync))
                .chain(peer.map(|p| (p, g.peer.as_slice(), g.peer_sync)))
                .collect();
        for (side, insts, sync) in sides {
            if insts.is_empty() {
                continue;
            }
            let node = side.node.clone();
            priorities
                .entry(node.clone())
                .or_insert(insts[0].priority.unwrap_or(DEFAULT_PRIORITY));
            for m in side_monitors(side, insts, sync, &key, &mut out, diags) {
                monitors.push((Some(node.clone()), m));
            }
            for i in insts {
                notify.take(&i.notify, &side.path.display().to_string(), &mut out);
            }
            if let Some(s) = sync {
                notify.take(&s.notify, &side.path.display().to_string(), &mut out);
            }
        }
        if peer.is_none()
            && let Some(pp) = pprio
        {
            priorities.entry(peer_node.to_string()).or_insert(pp);
        }
    }

    // Monitors found on both nodes are written once, for both; the rest are pinned. Without
    // the peer's file, the peer is taken to run the same checks (the seeds' "only state and
    // priority change").
    let mut mons: Vec<(Option<String>, Mon)> = Vec::new();
    for (node, m) in &monitors {
        let both = peer.is_none() || monitors.iter().any(|(n, o)| n != node && o.same(m));
        let pin = if both { None } else { node.clone() };
        if !mons.iter().any(|(p, o)| *p == pin && o.same(m)) {
            mons.push((pin, m.clone()));
        }
    }
    let weighted = mons.iter().any(|(_, m)| m.weight != 0);
    if weighted && priorities.len() < 2 {
        err(
            diags,
            lpath,
            conf.instances.first().map_or(0, |i| i.line),
            "weighted checks (a `weight` other than 0) need the peer's priority".into(),
            Some(
                "give the peer's file with `--peer FILE`, or its priority with `--peer-priority N`"
                    .into(),
            ),
        );
    }
    if weighted {
        never_moves(
            &groups,
            &mons,
            &priorities,
            local,
            peer_node,
            &group_keys,
            &mut out,
        );
    }
    if !auto_failback_off.is_empty() && auto_failback_off.len() < groups.len() {
        out.notes.push(format!("nopreempt is set for {} only; ha.cf's auto_failback is one setting for all groups: off", auto_failback_off.join(", ")));
    }

    let header = header(&out, local, peer);
    // ha.cf
    let mut hacf = header.clone();
    let ka = keepalive.unwrap_or(1.0);
    let ka_ms = (ka * 1000.0).round().max(1.0) as u64;
    let _ = writeln!(
        hacf,
        "# advert_int {} -> keepalive; deadtime = VRRP's master-down interval (3 x advert_int + skew)",
        secs(ka)
    );
    let _ = writeln!(hacf, "keepalive {}", hacf_time(ka_ms));
    let _ = writeln!(
        hacf,
        "deadtime {}",
        hacf_time(deadtime_ms.max(2 * ka_ms + 1))
    );
    for m in &media {
        let _ = writeln!(hacf, "{m}");
    }
    let _ = writeln!(
        hacf,
        "auto_failback {}",
        if auto_failback_off.is_empty() {
            "on"
        } else {
            "off"
        }
    );
    let _ = writeln!(hacf, "node {} {}", local.node, peer_node);
    let _ = writeln!(hacf, "logfacility daemon");
    out.files.push(("ha.cf".into(), hacf));
    out.files
        .push(("haresources".into(), format!("{header}{haresources}")));
    let mut ak = header.clone();
    let _ = writeln!(
        ak,
        "# A new key: keepalived's auth_pass travels in clear text and is not reused."
    );
    let _ = writeln!(ak, "# Both nodes need this same file (mode 0600).");
    let _ = writeln!(ak, "auth 1\n1 sha256 {key}");
    out.files.push(("authkeys".into(), ak));
    out.notes.push(
        "authkeys holds a NEW random sha256 key: copy the same authkeys to both nodes (mode 0600)"
            .into(),
    );
    // had.toml
    let mut t = header;
    if weighted {
        let _ = writeln!(
            t,
            "# Keepalived priorities: with weighted monitors, a group runs where base + weights is higher."
        );
        let _ = writeln!(t, "[priority]");
        for (n, p) in &priorities {
            let _ = writeln!(t, "{} = {p}", toml_key(n));
        }
        let _ = writeln!(t);
    }
    if let Some(d) = failback_delay.filter(|d| *d > 0.0) {
        let _ = writeln!(
            t,
            "[group]\nfailback_delay = \"{}\"  # preempt_delay\n",
            secs(d)
        );
    }
    if !notify.is_empty() {
        let _ = writeln!(
            t,
            "# keepalived passed TYPE NAME STATE PRIORITY as arguments; had sets HA_GROUP, HA_STATE,"
        );
        let _ = writeln!(
            t,
            "# HA_REASON, HA_NODE, HA_PEER, HA_RESOURCES in the environment instead."
        );
        let _ = writeln!(t, "[notify]");
        for (k, v) in [
            ("command", &notify.any),
            ("active", &notify.master),
            ("standby", &notify.backup),
            ("fault", &notify.fault),
        ] {
            if let Some(v) = v {
                let _ = writeln!(t, "{k} = {}", toml_str(v));
            }
        }
        let _ = writeln!(t);
    }
    for (node, m) in &mons {
        let _ = writeln!(t, "# {}", m.origin);
        let _ = writeln!(t, "[[monitor]]");
        let _ = writeln!(t, "resource = {}", toml_str(&m.resource));
        let _ = writeln!(t, "check = {}", toml_str(&m.check));
        if let Some(i) = &m.interval {
            let _ = writeln!(t, "interval = \"{i}\"");
        }
        if let Some(i) = &m.timeout {
            let _ = writeln!(t, "timeout = \"{i}\"");
        }
        if let Some(f) = m.failures.filter(|f| *f > 1) {
            let _ = writeln!(t, "failures = {f}");
        }
        if let Some(r) = m.rise.filter(|r| *r > 1) {
            let _ = writeln!(t, "rise = {r}");
        }
        if m.weight != 0 {
            let _ = writeln!(t, "weight = {}", m.weight);
        }
        if let Some(n) = node {
            let _ = writeln!(t, "node = {}", toml_str(n));
        }
        let _ = writeln!(t);
    }
    out.files.push(("had.toml".into(), t));
    out
}

/// The comment block at the top of every written file.
fn header(out: &Output, local: &Side<'_>, peer: Option<&Side<'_>>) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "# Written by `hactl import keepalived` from {}{}.",
        local.path.display(),
        peer.map(|p| format!(" and {}", p.path.display()))
            .unwrap_or_default()
    );
    if out.dropped.is_empty() {
        let _ = writeln!(
            h,
            "# Everything in the keepalived configuration was carried over."
        );
    } else {
        let _ = writeln!(
            h,
            "# NOT CARRIED (had has no equivalent, or does it another way):"
        );
        for d in &out.dropped {
            let _ = writeln!(h, "#   {}", d.replace('\n', " "));
        }
    }
    let _ = writeln!(h);
    h
}

fn fmt_dropped(d: &Dropped) -> String {
    format!("{}:{}: {}: {}", d.file.display(), d.line, d.what, d.why)
}

fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        toml_str(s)
    }
}

/// One `virtual_ipaddress` entry as an IPaddr2 resource.
fn vip_resource(
    i: &Instance,
    v: &crate::model::Vip,
    out: &mut Output,
    diags: &mut Diagnostics,
) -> Option<String> {
    let (addr, prefix) = match v.addr.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v.addr.as_str(), None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        err(
            diags,
            &i.file,
            v.line,
            format!("`{}` is not an IP address", v.addr),
            None,
        );
        return None;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    // keepalived adds an address written without a prefix as a host address (/32, /128).
    let prefix: u8 = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                err(
                    diags,
                    &i.file,
                    v.line,
                    format!("`{}`: bad prefix length", v.addr),
                    None,
                );
                return None;
            }
        },
    };
    let Some(dev) = v.dev.clone().or_else(|| i.interface.clone()) else {
        err(
            diags,
            &i.file,
            v.line,
            format!(
                "`{}`: no interface (neither `dev` nor the instance's `interface`)",
                v.addr
            ),
            None,
        );
        return None;
    };
    let mut iface = dev.clone();
    if let Some(l) = &v.label {
        if ip.is_ipv4() && l.starts_with(&format!("{dev}:")) && l.len() <= 15 {
            iface = l.clone();
        } else {
            out.dropped.push(format!("{}:{}: label {l}: had labels take the form `{dev}:NAME` (IPv4 only, 15 characters)", i.file.display(), v.line));
        }
    }
    if let Some(s) = &v.scope
        && s != "global"
    {
        out.dropped.push(format!(
            "{}:{}: scope {s} on {}: had adds addresses with scope global",
            i.file.display(),
            v.line,
            v.addr
        ));
    }
    let mut r = format!("IPaddr2::{ip}/{prefix}/{iface}");
    if let Some(b) = &v.brd {
        match b.parse::<std::net::Ipv4Addr>() {
            Ok(b) if ip.is_ipv4() => {
                let _ = write!(r, "/{b}");
            }
            _ => out.dropped.push(format!(
                "{}:{}: brd {b} on {}: had computes the broadcast address",
                i.file.display(),
                v.line,
                v.addr
            )),
        }
    }
    if v.excluded {
        out.notes.push(format!(
            "{} (virtual_ipaddress_excluded) moves with the group like the others",
            v.addr
        ));
    }
    Some(r)
}

/// Where a program lives when a script names it without a path.
const SEARCH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A script line as a had check.
fn script_check(cmd: &str) -> Result<String, String> {
    if cmd.contains([
        '|', '&', ';', '<', '>', '$', '`', '\'', '"', '(', ')', '*', '?',
    ]) {
        return Err("needs a shell (pipes, quotes, variables): put it in a script file and use `command:/path/to/script`".into());
    }
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let Some(prog) = words.first() else {
        return Err("empty script".into());
    };
    let base = prog.rsplit('/').next().unwrap_or(prog);
    match (base, &words[1..]) {
        ("pidof", [name]) if !name.starts_with('-') => return Ok(format!("process:{name}")),
        ("killall", ["-0", name]) if !name.starts_with('-') => {
            return Ok(format!("process:{name}"));
        }
        _ => {}
    }
    let path = if prog.starts_with('/') {
        prog.to_string()
    } else {
        match SEARCH
            .iter()
            .map(|d| format!("{d}/{prog}"))
            .find(|p| Path::new(p).is_file())
        {
            Some(p) => p,
            None => {
                return Err(format!(
                    "`{prog}` is not an absolute path and is not in {} here: write the full path",
                    SEARCH.join(":")
                ));
            }
        }
    };
    let mut c = format!("command:{path}");
    for w in &words[1..] {
        c.push(' ');
        c.push_str(w);
    }
    Ok(c)
}

fn clamp_weight(w: i32, what: &str, out: &mut Output) -> i32 {
    if w.abs() > 253 {
        out.notes
            .push(format!("{what}: weight {w} clamped to ±253"));
    }
    w.clamp(-253, 253)
}

/// The monitors one node's file asks for in one group.
fn side_monitors(
    side: &Side<'_>,
    insts: &[&Instance],
    sync: Option<&SyncGroup>,
    key: &str,
    out: &mut Output,
    diags: &mut Diagnostics,
) -> Vec<Mon> {
    let conf = side.conf;
    let file = side.path.display().to_string();
    let mut mons = Vec::new();
    let tracked =
        |f: fn(&Instance) -> &Vec<Tracked>, s: fn(&SyncGroup) -> &Vec<Tracked>| -> Vec<Tracked> {
            insts
                .iter()
                .flat_map(|i| f(i).iter().cloned())
                .chain(sync.into_iter().flat_map(|g| s(g).iter().cloned()))
                .collect()
        };
    for t in tracked(|i| &i.scripts, |g| &g.scripts) {
        let Some(sc) = conf.scripts.iter().find(|s| s.name == t.name) else {
            warn(
                diags,
                side.path,
                t.line,
                format!(
                    "track_script `{}`: no vrrp_script of that name (keepalived ignores it)",
                    t.name
                ),
            );
            continue;
        };
        if t.reverse || sc.reverse {
            out.dropped.push(format!("{file}:{}: weight ... reverse on `{}`: not carried (had applies weights the usual way round)", t.line, t.name));
            continue;
        }
        let Some(cmd) = &sc.script else { continue };
        let check = match script_check(cmd) {
            Ok(c) => c,
            Err(why) => {
                out.dropped.push(format!(
                    "{file}:{}: vrrp_script {} (\"{cmd}\"): {why}",
                    sc.line, sc.name
                ));
                continue;
            }
        };
        let interval = sc.interval.unwrap_or(1.0);
        let weight = clamp_weight(t.weight.or(sc.weight).unwrap_or(0), &sc.name, out);
        mons.push(Mon {
            resource: key.to_string(),
            check,
            interval: Some(secs(interval)),
            timeout: Some(secs(sc.timeout.unwrap_or(interval))),
            failures: sc.fall,
            rise: sc.rise,
            weight,
            origin: format!("vrrp_script {} (\"{cmd}\", {file}:{})", sc.name, sc.line),
        });
    }
    for t in tracked(|i| &i.processes, |g| &g.processes) {
        let Some(p) = conf.processes.iter().find(|p| p.name == t.name) else {
            warn(
                diags,
                side.path,
                t.line,
                format!(
                    "track_process `{}`: no vrrp_track_process of that name",
                    t.name
                ),
            );
            continue;
        };
        let Some(name) = &p.process else { continue };
        let weight = clamp_weight(t.weight.or(p.weight).unwrap_or(0), &p.name, out);
        mons.push(Mon {
            resource: key.to_string(),
            check: format!("process:{name}"),
            interval: Some("1s".into()),
            timeout: Some("1s".into()),
            failures: None,
            rise: None,
            weight,
            origin: format!("vrrp_track_process {} ({file}:{})", p.name, p.line),
        });
    }
    let mut links: Vec<(String, i32, String)> = Vec::new();
    for i in insts {
        if !i.dont_track_primary
            && let Some(ifc) = &i.interface
        {
            links.push((ifc.clone(), 0, format!("the interface of vrrp_instance {} (keepalived tracks it unless dont_track_primary)", i.name)));
        }
    }
    for t in tracked(|i| &i.interfaces, |g| &g.interfaces) {
        let w = clamp_weight(t.weight.unwrap_or(0), &t.name, out);
        links.retain(|(n, _, _)| *n != t.name);
        links.push((
            t.name.clone(),
            w,
            format!("track_interface {} ({file}:{})", t.name, t.line),
        ));
    }
    for (ifc, w, origin) in links {
        mons.push(Mon {
            resource: key.to_string(),
            check: format!("link:{ifc}"),
            interval: None,
            timeout: None,
            failures: None,
            rise: None,
            weight: w,
            origin,
        });
    }
    mons
}

/// Warn when no combination of check results can move a group (seed 001 as written).
fn never_moves(
    groups: &[Group<'_>],
    mons: &[(Option<String>, Mon)],
    prio: &BTreeMap<String, u32>,
    local: &Side<'_>,
    peer_node: &str,
    keys: &[(String, String)],
    out: &mut Output,
) {
    for (g, (_, key)) in groups.iter().zip(keys) {
        let nodes = [local.node.as_str(), peer_node];
        let range = |n: &str| -> Option<(i64, i64)> {
            let base = i64::from(*prio.get(n)?);
            let (mut lo, mut hi) = (base, base);
            for (pin, m) in mons {
                if m.resource != *key || m.weight == 0 || pin.as_deref().is_some_and(|p| p != n) {
                    continue;
                }
                let w = i64::from(m.weight);
                if w > 0 {
                    hi += w;
                } else {
                    lo += w;
                }
            }
            Some((lo.clamp(1, 254), hi.clamp(1, 254)))
        };
        let (Some(a), Some(b)) = (range(nodes[0]), range(nodes[1])) else {
            continue;
        };
        let has_weights = mons
            .iter()
            .any(|(_, m)| m.resource == *key && m.weight != 0);
        if has_weights && (a.0 > b.1 || b.0 > a.1) {
            let (hi_n, lo_n, hi_min, lo_max) = if a.0 > b.1 {
                (nodes[0], nodes[1], a.0, b.1)
            } else {
                (nodes[1], nodes[0], b.0, a.1)
            };
            out.notes.push(format!(
                "group `{}`: no check result can move it: {hi_n}'s priority stays at least {hi_min} even with every weighted check failing, above {lo_n}'s highest {lo_max} (keepalived behaves the same); for a failing service to move it, use a negative weight larger than the gap, or weight 0",
                g.name
            ));
        }
    }
}

#[derive(Default)]
struct NotifyOut {
    master: Option<String>,
    backup: Option<String>,
    fault: Option<String>,
    any: Option<String>,
}

impl NotifyOut {
    fn is_empty(&self) -> bool {
        self.master.is_none() && self.backup.is_none() && self.fault.is_none() && self.any.is_none()
    }

    fn take(&mut self, n: &Notify, file: &str, out: &mut Output) {
        let mut put = |slot: &mut Option<String>, v: &Option<(String, usize)>, what: &str| {
            let Some((cmd, line)) = v else { return };
            if !cmd.starts_with('/') || cmd.contains(['|', '&', ';', '<', '>', '$', '`', '\'', '"'])
            {
                out.dropped.push(format!("{file}:{line}: {what} \"{cmd}\": had runs hooks without a shell from an absolute path"));
                return;
            }
            match slot {
                Some(s) if s != cmd => out.dropped.push(format!("{file}:{line}: {what} \"{cmd}\": had has one {what} hook for all groups; kept \"{s}\"")),
                _ => *slot = Some(cmd.clone()),
            }
        };
        put(&mut self.master, &n.master, "notify_master");
        put(&mut self.backup, &n.backup, "notify_backup");
        put(&mut self.fault, &n.fault, "notify_fault");
        put(&mut self.any, &n.any, "notify");
        if let Some((cmd, line)) = &n.stop {
            if self.backup.is_none() {
                put(&mut self.backup, &n.stop, "notify_stop");
            } else {
                out.dropped.push(format!("{file}:{line}: notify_stop \"{cmd}\": had's standby hook (notify_backup) runs on a stop too"));
            }
        }
    }
}
