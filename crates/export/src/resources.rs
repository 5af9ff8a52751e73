//! haresources resources → Pacemaker primitives: addresses → IPaddr2, Heartbeat's built-in
//! agents → their OCF counterparts, services → lsb/systemd/service as had resolves them,
//! had.toml monitors → monitor operations and failure thresholds.

use std::time::Duration;

use ha_config::agent::{IpFlavour, IpSpec};
use ha_config::{Check, Config, GroupSpec, MonitorSpec, ResourceSpec};

use crate::model::{
    Attrs, Builder, ExportError, Group, Level, Operation, Primitive, Promotable, secs,
};
use crate::resolve::Service;

/// IPaddr2's own defaults, which had's `[arp]` defaults equal.
const IPADDR2_ARP_COUNT: u32 = 5;
const IPADDR2_ARP_INTERVAL: Duration = Duration::from_millis(200);
/// had watches every address it holds (netlink); Pacemaker needs an operation for it.
const IP_MONITOR: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(20));
/// Shortest monitor timeout exported: had's in-process checks may answer within a second, a
/// forked agent on a loaded node may not (Pacemaker's agents advertise 20 s).
const MIN_MONITOR_TIMEOUT: Duration = Duration::from_secs(20);

impl Builder<'_> {
    pub(crate) fn group(&mut self, g: &GroupSpec) -> Result<Group, ExportError> {
        let mut primitives = Vec::new();
        let mut promotables = Vec::new();
        for (ri, r) in g.resources.iter().enumerate() {
            match self.primitive(g, ri, r)? {
                Member::Primitive(p) => primitives.push(p),
                Member::Promotable(p) => promotables.push(p),
            }
        }
        if primitives.is_empty() {
            return Err(ExportError::Resource {
                line: g.line,
                resource: g.key().to_string(),
                reason: "nothing but DRBD in this line: add the resources that use the disk".into(),
            });
        }
        let id = self.ids.unique(&format!("grp-{}", primitives[0].id));
        let locations = self.locations(&id, g);
        let link_rules = self.link_rules(&id, g);
        for p in &mut promotables {
            p.colocation_id = self.ids.unique(&format!("{id}-with-{}", p.id));
            p.order_id = self.ids.unique(&format!("{}-before-{id}", p.id));
        }
        Ok(Group {
            id,
            primitives,
            locations,
            link_rules,
            promotables,
            line: g.line,
            description: format!(
                "haresources line {}: {} {}",
                g.line,
                g.node,
                g.resources
                    .iter()
                    .map(|r| r.raw.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        })
    }

    /// The monitors had would bind to resource `ri` of `g` (monitor::bind's rule: the first
    /// resource matching by raw text, agent name or group key).
    fn monitors_of(&self, g: &GroupSpec, ri: usize) -> Vec<&MonitorSpec> {
        self.config
            .had
            .monitors
            .iter()
            .filter(|m| bound_to(self.config, m) == Some((g.line, ri)))
            .collect()
    }

    /// The gathered per-monitor remarks, one note each.
    pub(crate) fn monitor_notes(&mut self) {
        if !self.weak_checks.is_empty() {
            let list = std::mem::take(&mut self.weak_checks).join("; ");
            self.note(
                Level::Review,
                format!(
                    "checks Pacemaker does not make itself: {list}. Its monitor asks the agent (the unit's or script's status, the OCF monitor action); where that is weaker, use an agent that checks more (ocf:heartbeat:apache with statusurl, ocf:heartbeat:nginx) or wrap the check in a small OCF agent."
                ),
            );
        }
        if !self.raised_timeouts.is_empty() {
            let list = std::mem::take(&mut self.raised_timeouts).join(", ");
            self.note(
                Level::Info,
                format!(
                    "monitor timeouts raised to {}: {list}. Pacemaker forks the agent for every monitor, which can take longer than had's check on a loaded node.",
                    secs(MIN_MONITOR_TIMEOUT)
                ),
            );
        }
    }

    pub(crate) fn unbound_monitors(&mut self) {
        let lost: Vec<String> = self
            .config
            .had
            .monitors
            .iter()
            .filter(|m| bound_to(self.config, m).is_none())
            .map(|m| format!("had.toml:{} ({})", m.line, m.resource))
            .collect();
        if !lost.is_empty() {
            self.note(
                Level::Review,
                format!(
                    "monitors that name no resource were not carried: {}.",
                    lost.join(", ")
                ),
            );
        }
    }

    fn primitive(
        &mut self,
        g: &GroupSpec,
        ri: usize,
        r: &ResourceSpec,
    ) -> Result<Member, ExportError> {
        let bad = |reason: String| ExportError::Resource {
            line: g.line,
            resource: r.raw.to_string(),
            reason,
        };
        let args = &r.args();
        let mut params: Vec<(String, String)> = Vec::new();
        let (wanted_id, class, provider, agent): (String, &'static str, Option<&str>, String);
        let mut default_monitor = None;
        if IpFlavour::from_agent(r.agent()).is_some() {
            // `::` also splits an IPv6 address: join the pieces back, as the agent does.
            let spec = IpSpec::parse(&args.join("::")).map_err(|e| bad(e.reason))?;
            params.push(("ip".into(), spec.addr.to_string()));
            if let Some(p) = spec.prefix {
                params.push(("cidr_netmask".into(), p.to_string()));
            }
            if let Some(i) = spec.iface() {
                params.push(("nic".into(), i.to_string()));
            }
            if let Some((_, label)) = spec.label().and_then(|l| l.split_once(':')) {
                params.push(("iflabel".into(), label.to_string()));
            }
            if let Some(b) = spec.broadcast {
                params.push(("broadcast".into(), b.to_string()));
            }
            let arp = self.config.had.arp;
            if arp.count != IPADDR2_ARP_COUNT {
                params.push(("arp_count".into(), arp.count.to_string()));
            }
            if arp.interval != IPADDR2_ARP_INTERVAL {
                params.push(("arp_interval".into(), arp.interval.as_millis().to_string()));
            }
            if arp.refresh.is_some() {
                params.push(("arp_count_refresh".into(), "1".into()));
            }
            wanted_id = format!("ip-{}", spec.addr);
            (class, provider, agent) = ("ocf", Some("heartbeat"), "IPaddr2".into());
            default_monitor = Some(IP_MONITOR);
        } else {
            match r.agent() {
                "Filesystem" => {
                    let (d, m, t, o) = match args.as_slice() {
                        [d, m, t] => (d, m, t, None),
                        [d, m, t, o] => (d, m, t, Some(o)),
                        _ => {
                            return Err(bad(
                                "Filesystem takes device::mountpoint::fstype[::options]".into(),
                            ));
                        }
                    };
                    params.push(("device".into(), d.to_string()));
                    params.push(("directory".into(), m.to_string()));
                    params.push(("fstype".into(), t.to_string()));
                    if let Some(o) = o.filter(|o| !o.is_empty()) {
                        params.push(("options".into(), o.to_string()));
                    }
                    wanted_id = format!("fs-{m}");
                    (class, provider, agent) = ("ocf", Some("heartbeat"), "Filesystem".into());
                }
                "MailTo" => {
                    let Some(to) = args.first().filter(|a| !a.is_empty()) else {
                        return Err(bad("MailTo takes address[::subject]".into()));
                    };
                    params.push(("email".into(), to.to_string()));
                    if let Some(s) = args.get(1) {
                        params.push(("subject".into(), s.to_string()));
                    }
                    wanted_id = "mailto".into();
                    (class, provider, agent) = ("ocf", Some("heartbeat"), "MailTo".into());
                }
                "SendArp" => {
                    let Some((ip, nic)) = args.first().and_then(|a| a.split_once('/')) else {
                        return Err(bad("SendArp takes ip/interface".into()));
                    };
                    params.push(("ip".into(), ip.to_string()));
                    params.push(("nic".into(), nic.to_string()));
                    wanted_id = format!("sendarp-{ip}");
                    (class, provider, agent) = ("ocf", Some("heartbeat"), "SendArp".into());
                }
                "apache" => {
                    if let Some(c) = args.first() {
                        params.push(("configfile".into(), c.to_string()));
                    }
                    wanted_id = "apache".into();
                    (class, provider, agent) = ("ocf", Some("heartbeat"), "apache".into());
                }
                "drbddisk" => return self.drbd(g, r).map(Member::Promotable),
                a if ha_config::agent::is_ocf(a) => {
                    let (p, t, rest) = split_ocf(a, args).map_err(bad)?;
                    params = rest;
                    wanted_id = t.to_string();
                    let p = p.to_string();
                    let t = t.to_string();
                    let prim = self.finish(g, ri, r, wanted_id, "ocf", Some(p), t, params, None);
                    return Ok(Member::Primitive(prim));
                }
                _ => {
                    let (c, a) = self.service(g, r);
                    wanted_id = r.agent().to_string();
                    (class, provider, agent) = (c, None, a);
                }
            }
        }
        let provider = provider.map(str::to_string);
        let prim = self.finish(
            g,
            ri,
            r,
            wanted_id,
            class,
            provider,
            agent,
            params,
            default_monitor,
        );
        Ok(Member::Primitive(prim))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        g: &GroupSpec,
        ri: usize,
        r: &ResourceSpec,
        wanted_id: String,
        class: &'static str,
        provider: Option<String>,
        agent: String,
        params: Vec<(String, String)>,
        default_monitor: Option<(Duration, Duration)>,
    ) -> Primitive {
        let id = self.ids.unique(&wanted_id);
        // Link monitors watch the group's node, not this resource: see `tracking.rs`.
        let monitors: Vec<MonitorSpec> = self
            .monitors_of(g, ri)
            .into_iter()
            .filter(|m| !matches!(m.check, Check::Link(_)))
            .cloned()
            .collect();
        let mut ops = Vec::new();
        let mut meta = Vec::new();
        for m in &monitors {
            self.check_notes(m, &id, class);
        }
        if monitors.is_empty() {
            if let Some((interval, timeout)) = default_monitor {
                ops.push(self.op(&id, "monitor", interval, timeout));
            }
        } else {
            // Pacemaker allows one monitor per interval: had.toml may watch a resource twice.
            let mut seen = Vec::new();
            for m in &monitors {
                if !seen.contains(&m.interval) {
                    seen.push(m.interval);
                    let timeout = m.timeout.max(MIN_MONITOR_TIMEOUT);
                    if timeout != m.timeout {
                        self.raised_timeouts.push(format!(
                            "had.toml:{} {} ({id})",
                            m.line,
                            secs(m.timeout)
                        ));
                    }
                    ops.push(self.op(&id, "monitor", m.interval, timeout));
                }
            }
            // had: `restarts` restarts in place, then fail over; Pacemaker moves the resource
            // away after `migration-threshold` failures. A weighted check moves nothing by
            // itself (it lowers the priority), so it keeps Pacemaker's restart in place.
            if let Some(m) = monitors.iter().find(|m| m.weight == 0) {
                meta.push(("migration-threshold".into(), (m.restarts + 1).to_string()));
                meta.push(("failure-timeout".into(), secs(m.window)));
            }
        }
        let params = Attrs::new(&mut self.ids, &id, "instance_attributes", params);
        let meta = Attrs::new(&mut self.ids, &id, "meta_attributes", meta);
        Primitive {
            id,
            class,
            provider,
            agent,
            params,
            meta,
            ops,
            from: r.raw.to_string(),
        }
    }

    fn op(
        &mut self,
        prim: &str,
        name: &'static str,
        interval: Duration,
        timeout: Duration,
    ) -> Operation {
        Operation {
            id: self
                .ids
                .unique(&format!("{prim}-{name}-{}", secs(interval))),
            name,
            interval,
            timeout,
        }
    }

    fn check_notes(&mut self, m: &MonitorSpec, id: &str, class: &str) {
        let how = match &m.check {
            Check::Status => None,
            Check::Process(p) => Some(format!("process `{p}` alive")),
            Check::Tcp { host, port } => Some(format!("TCP connect to {host}:{port}")),
            Check::Http { url } => Some(format!("HTTP GET {url}")),
            // Carried as an ethmonitor clone and a rule (tracking.rs), never reaching here.
            Check::Link(_) => None,
            Check::Command { program, args } => {
                let mut c = program.display().to_string();
                for a in args {
                    c.push(' ');
                    c.push_str(a);
                }
                Some(format!("`{c}` exits 0"))
            }
        };
        if let Some(how) = how {
            self.weak_checks
                .push(format!("had.toml:{} {how} → {id} ({class})", m.line));
        }
        if m.failures > 1 {
            self.note(
                Level::Review,
                format!(
                    "had.toml:{}: `failures = {}` has no Pacemaker equivalent: the first failed monitor of {id} counts.",
                    m.line, m.failures
                ),
            );
        }
    }

    /// A service name, resolved as had resolves it.
    fn service(&mut self, g: &GroupSpec, r: &ResourceSpec) -> (&'static str, String) {
        let name = r.agent().to_string();
        let args = r.args();
        if !args.is_empty() {
            self.note(
                Level::Danger,
                format!(
                    "haresources:{}: `{}` passes arguments ({}) to its script; Pacemaker's lsb/systemd classes pass none. Put them in the script (or an OCF agent) before switching.",
                    g.line,
                    r.raw,
                    args.join(" ")
                ),
            );
        }
        match self.host.locate(&name) {
            Service::ResourceD(p) => {
                self.note(
                    Level::Review,
                    format!(
                        "`{name}` is the Heartbeat resource.d script {}: Pacemaker runs it as lsb:{name}, so install it as /etc/init.d/{name} on every node. Its `status` must exit 0 when running and 3 when stopped (Heartbeat read the printed text).",
                        p.display()
                    ),
                );
                ("lsb", name)
            }
            Service::InitD(p) => {
                if self.host.unit(&name).is_some() {
                    self.note(
                        Level::Info,
                        format!(
                            "`{name}`: had runs {} (found before the systemd unit), so the export says lsb:{name}; systemd:{name} works as well on a systemd host.",
                            p.display()
                        ),
                    );
                }
                ("lsb", name)
            }
            Service::Systemd(_) => ("systemd", name),
            Service::Unknown => {
                self.note(
                    Level::Review,
                    format!(
                        "`{name}` was found neither as a script nor as a systemd unit on this machine: exported as service:{name} (Pacemaker picks systemd or LSB on each node). Install it everywhere."
                    ),
                );
                ("service", name)
            }
        }
    }

    fn drbd(&mut self, g: &GroupSpec, r: &ResourceSpec) -> Result<Promotable, ExportError> {
        let res = r.args().first().cloned().unwrap_or_else(|| "all".into());
        if res == "all" {
            return Err(ExportError::Resource {
                line: g.line,
                resource: r.raw.to_string(),
                reason: "drbddisk without a resource name means every DRBD resource; Pacemaker needs one ocf:linbit:drbd clone per resource: write drbddisk::NAME".into(),
            });
        }
        let pid = self.ids.unique(&format!("drbd-{res}"));
        let params = Attrs::new(
            &mut self.ids,
            &pid,
            "instance_attributes",
            vec![("drbd_resource".into(), res.to_string())],
        );
        let ops = vec![self.op(
            &pid,
            "monitor",
            Duration::from_secs(29),
            Duration::from_secs(20),
        )];
        let id = self.ids.unique(&format!("ms-{pid}"));
        let meta = Attrs::new(
            &mut self.ids,
            &id,
            "meta_attributes",
            vec![
                ("promotable".into(), "true".into()),
                ("promoted-max".into(), "1".into()),
                ("promoted-node-max".into(), "1".into()),
                ("clone-max".into(), "2".into()),
                ("notify".into(), "true".into()),
            ],
        );
        self.note(
            Level::Review,
            format!(
                "haresources:{}: drbddisk::{res} becomes the promotable clone {id} (ocf:linbit:drbd, package drbd-utils), promoted where the group runs and before it starts. Heartbeat's drbddisk only promoted; the clone also runs DRBD on the other node.",
                g.line
            ),
        );
        Ok(Promotable {
            id,
            meta,
            primitive: Primitive {
                id: pid,
                class: "ocf",
                provider: Some("linbit".into()),
                agent: "drbd".into(),
                params,
                meta: Attrs::default(),
                ops,
                from: r.raw.to_string(),
            },
            colocation_id: String::new(),
            order_id: String::new(),
        })
    }
}

enum Member {
    Primitive(Primitive),
    Promotable(Promotable),
}

/// (group line, resource index) a monitor binds to, as ha-daemon's `monitor::bind` does.
pub(crate) fn bound_to(config: &Config, m: &MonitorSpec) -> Option<(usize, usize)> {
    for g in &config.haresources.groups {
        for (ri, r) in g.resources.iter().enumerate() {
            if r.raw == m.resource || r.agent() == m.resource || g.key() == m.resource {
                return Some((g.line, ri));
            }
        }
    }
    None
}

/// Provider, agent and parameters of an OCF resource.
type OcfParts<'a> = (&'a str, &'a str, Vec<(String, String)>);

/// `ocf::provider::agent::k=v...` or `ocf:provider:agent::k=v...` → parts.
fn split_ocf<'a>(agent: &'a str, args: &'a [ha_config::Word]) -> Result<OcfParts<'a>, String> {
    let usage = "write ocf::provider::agent[::name=value...]";
    let (p, a, rest): (&str, &str, &[ha_config::Word]) = if agent == "ocf" {
        match args {
            [p, a, rest @ ..] => (p, a, rest),
            _ => return Err(format!("missing provider or agent; {usage}")),
        }
    } else {
        let mut it = agent.splitn(3, ':').skip(1);
        match (it.next(), it.next()) {
            (Some(p), Some(a)) => (p, a, args),
            _ => return Err(format!("missing provider or agent; {usage}")),
        }
    };
    for v in [p, a] {
        if v.is_empty()
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!(
                "`{v}` is not an OCF provider or agent name; {usage}"
            ));
        }
    }
    let mut params = Vec::new();
    for kv in rest {
        match kv.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                params.push((k.to_string(), v.to_string()));
            }
            _ => return Err(format!("OCF parameters are name=value, got `{kv}`")),
        }
    }
    Ok((p, a, params))
}
