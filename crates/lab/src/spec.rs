//! `ClusterSpec`: the one writer of a lab cluster's ha.cf, haresources, authkeys and had.toml
//! (lab tests, the demo, drills and the bench). Rendering is pure (a [`Net`] stands in for
//! the lab) and unit-tested; [`ClusterSpec::write`] puts the files into each node, owned by
//! root and never group/other-writable, as had's StrictModes wants them.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::Lab;

/// What rendering needs from the lab: the node interface's name and each node's address.
#[derive(Debug, Clone)]
pub struct Net {
    /// The interface every node has (`eth0` in the lab).
    pub iface: String,
    /// Each node's name and address on that interface.
    pub addrs: Vec<(String, IpAddr)>,
}

impl Net {
    /// The lab's interface and node addresses.
    pub fn of(lab: &Lab) -> Net {
        Net {
            iface: lab.iface().to_owned(),
            addrs: lab
                .nodes()
                .iter()
                .map(|n| (n.name().to_owned(), IpAddr::V4(n.ip())))
                .collect(),
        }
    }
}

/// One heartbeat medium (an ha.cf line, or one line per peer for `ucast`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// `bcast <iface>`.
    Bcast,
    /// `ucast <iface> <peer>` for every other node of the spec.
    Ucast,
    /// `mcast <iface> <group> <port> <ttl> 0`.
    Mcast {
        /// The multicast group.
        group: IpAddr,
        /// Its UDP port.
        port: u16,
        /// The TTL.
        ttl: u8,
    },
    /// Lines as written, with `IFACE` replaced by the interface's name.
    Line(String),
}

/// One resource of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `IPaddr::<addr>/<prefix>/<iface>`.
    Ip(IpAddr, u8),
    /// A resource as haresources spells it (`web::198.18.1.100`, a bare address, ...).
    Raw(String),
}

/// A haresources line: the preferred node and its resources, in start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    owner: String,
    resources: Vec<Resource>,
}

impl Group {
    /// A group preferring `owner`, with no resources yet.
    pub fn new(owner: &str) -> Group {
        Group {
            owner: owner.to_owned(),
            resources: Vec::new(),
        }
    }

    /// Adds `IPaddr::addr/prefix/<iface>`.
    pub fn ip(mut self, addr: impl Into<IpAddr>, prefix: u8) -> Group {
        self.resources.push(Resource::Ip(addr.into(), prefix));
        self
    }

    /// Adds a resource as written (`web::<vip>`, `apache`, a bare VIP, ...).
    pub fn res(mut self, r: impl Into<String>) -> Group {
        self.resources.push(Resource::Raw(r.into()));
        self
    }

    fn render(&self, iface: &str) -> String {
        let mut line = self.owner.clone();
        for r in &self.resources {
            line.push(' ');
            match r {
                Resource::Ip(a, p) => {
                    let _ = write!(line, "IPaddr::{a}/{p}/{iface}");
                }
                Resource::Raw(s) => line.push_str(s),
            }
        }
        line
    }
}

/// Heartbeat's logging in a lab node: files in the node's own /var/log (a lab directory),
/// not syslog. had logs to stderr, which the lab captures.
pub const HEARTBEAT_LOGGING: &str =
    "logfile /var/log/ha-log\ndebugfile /var/log/ha-debug\nlogfacility none";

/// A duration as ha.cf and had.toml write it: whole seconds bare, else milliseconds.
pub fn ha_time(d: Duration) -> String {
    if d.subsec_nanos() == 0 && d.as_secs() > 0 {
        d.as_secs().to_string()
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A whole cluster's configuration; build it, then [`write`](Self::write) it into a lab.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    comment: String,
    nodes: Vec<String>,
    logfacility: Option<String>,
    keepalive: Option<String>,
    warntime: Option<String>,
    deadtime: Option<String>,
    initdead: Option<String>,
    udpport: Option<u16>,
    media: Vec<Media>,
    node_media: Vec<(String, String)>,
    auto_failback: Option<String>,
    lines: Vec<String>,
    node_lines: Vec<(String, String)>,
    auth: String,
    node_auth: Vec<(String, String)>,
    groups: Vec<Group>,
    had_toml: Vec<String>,
    node_had_toml: Vec<(String, String)>,
    scripts: Vec<(String, String)>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self::new("lab cluster")
    }
}

impl ClusterSpec {
    /// Two nodes (node1, node2), `logfacility local0`, `bcast`, `auth 1` sha1; no timers,
    /// groups or had.toml yet. `comment` heads ha.cf.
    pub fn new(comment: &str) -> ClusterSpec {
        ClusterSpec {
            comment: comment.to_owned(),
            nodes: vec!["node1".into(), "node2".into()],
            logfacility: Some("local0".into()),
            keepalive: None,
            warntime: None,
            deadtime: None,
            initdead: None,
            udpport: None,
            media: vec![Media::Bcast],
            node_media: Vec::new(),
            auto_failback: None,
            lines: Vec::new(),
            node_lines: Vec::new(),
            auth: "1 sha1 secret".into(),
            node_auth: Vec::new(),
            groups: Vec::new(),
            had_toml: Vec::new(),
            node_had_toml: Vec::new(),
            scripts: Vec::new(),
        }
    }

    /// The cluster's nodes, in the order of the `node` line.
    pub fn nodes<S: AsRef<str>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.nodes = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
        self
    }

    /// The node names.
    pub fn node_names(&self) -> &[String] {
        &self.nodes
    }

    /// `logfacility`, or none (`None`: a node that logs by its own lines, or only to stderr).
    pub fn logfacility(mut self, f: Option<&str>) -> Self {
        self.logfacility = f.map(str::to_owned);
        self
    }

    /// keepalive, warntime, deadtime and initdead, as ha.cf writes them (`500ms`, `2`).
    pub fn timers(
        mut self,
        keepalive: &str,
        warntime: &str,
        deadtime: &str,
        initdead: &str,
    ) -> Self {
        self.keepalive = Some(keepalive.to_owned());
        self.warntime = Some(warntime.to_owned());
        self.deadtime = Some(deadtime.to_owned());
        self.initdead = Some(initdead.to_owned());
        self
    }

    /// The same from durations.
    pub fn timers_d(
        self,
        keepalive: Duration,
        warntime: Duration,
        deadtime: Duration,
        initdead: Duration,
    ) -> Self {
        self.timers(
            &ha_time(keepalive),
            &ha_time(warntime),
            &ha_time(deadtime),
            &ha_time(initdead),
        )
    }

    /// `udpport` (written before the media, which take the port when read).
    pub fn udpport(mut self, port: u16) -> Self {
        self.udpport = Some(port);
        self
    }

    /// The media of every node (replaces the default `bcast`).
    pub fn media(mut self, media: impl IntoIterator<Item = Media>) -> Self {
        self.media = media.into_iter().collect();
        self
    }

    /// Media lines for `node` alone (after the common media; `IFACE` is replaced).
    pub fn node_media(mut self, node: &str, lines: &str) -> Self {
        self.node_media.push((node.to_owned(), lines.to_owned()));
        self
    }

    /// `auto_failback` (`on`, `off`, `legacy`).
    pub fn auto_failback(mut self, v: &str) -> Self {
        self.auto_failback = Some(v.to_owned());
        self
    }

    /// Further ha.cf lines for every node, after the others (`IFACE` is replaced).
    pub fn line(mut self, lines: &str) -> Self {
        self.lines.push(lines.to_owned());
        self
    }

    /// ha.cf lines for `node` alone, first after the comment (its logging, say).
    pub fn node_line(mut self, node: &str, lines: &str) -> Self {
        self.node_lines.push((node.to_owned(), lines.to_owned()));
        self
    }

    /// `node` runs Debian's Heartbeat: its logging lines ([`HEARTBEAT_LOGGING`]).
    pub fn heartbeat_on(self, node: &str) -> Self {
        self.node_line(node, HEARTBEAT_LOGGING)
    }

    /// The authkeys method and key of every node as key 1 (`sha1 secret`, `md5 motdepasse`).
    pub fn auth(self, method_and_key: &str) -> Self {
        self.auth_lines(&format!("1 {method_and_key}"))
    }

    /// authkeys' key lines as written (`1 sha1 k\n2 crc`); key 1 is the one in use.
    pub fn auth_lines(mut self, lines: &str) -> Self {
        self.auth = lines.to_owned();
        self
    }

    /// Different key lines for `node` (wrong-key tests), as [`auth_lines`](Self::auth_lines).
    pub fn node_auth_lines(mut self, node: &str, lines: &str) -> Self {
        self.node_auth.push((node.to_owned(), lines.to_owned()));
        self
    }

    /// Adds a resource group (a haresources line).
    pub fn group(mut self, g: Group) -> Self {
        self.groups.push(g);
        self
    }

    /// Adds the groups of haresources text as written: each line is the preferred node and
    /// its resources (for resources [`Group`] has no helper for: IPaddr2, IPv6addr, ...).
    pub fn haresources_lines(mut self, text: &str) -> Self {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            if let Some(owner) = words.next() {
                let g = words.fold(Group::new(owner), Group::res);
                self.groups.push(g);
            }
        }
        self
    }

    /// Adds a had.toml section (or several) for every node.
    pub fn had_toml(mut self, text: &str) -> Self {
        self.had_toml.push(text.to_owned());
        self
    }

    /// Adds had.toml text for `node` alone.
    pub fn node_had_toml(mut self, node: &str, text: &str) -> Self {
        self.node_had_toml.push((node.to_owned(), text.to_owned()));
        self
    }

    /// An executable file written into every node's config dir (`resource.d/web`, ...).
    pub fn script(mut self, rel: &str, text: &str) -> Self {
        self.scripts.push((rel.to_owned(), text.to_owned()));
        self
    }

    /// The deadtime as written, if set.
    pub fn deadtime(&self) -> Option<&str> {
        self.deadtime.as_deref()
    }

    /// `node`'s ha.cf.
    pub fn ha_cf(&self, node: &str, net: &Net) -> String {
        let fill = |s: &str| s.replace("IFACE", &net.iface);
        let mut out = String::new();
        for l in self.comment.lines() {
            let _ = writeln!(out, "# {l}");
        }
        let mut push = |text: &str| {
            for l in text.lines() {
                out.push_str(l);
                out.push('\n');
            }
        };
        for (_, l) in self.node_lines.iter().filter(|(n, _)| n == node) {
            push(&fill(l));
        }
        if let Some(f) = &self.logfacility {
            push(&format!("logfacility {f}"));
        }
        for (k, v) in [
            ("keepalive", &self.keepalive),
            ("warntime", &self.warntime),
            ("deadtime", &self.deadtime),
            ("initdead", &self.initdead),
        ] {
            if let Some(v) = v {
                push(&format!("{k} {v}"));
            }
        }
        if let Some(p) = self.udpport {
            push(&format!("udpport {p}"));
        }
        for m in &self.media {
            match m {
                Media::Bcast => push(&format!("bcast {}", net.iface)),
                Media::Ucast => {
                    for peer in self.nodes.iter().filter(|p| p.as_str() != node) {
                        if let Some((_, ip)) = net.addrs.iter().find(|(n, _)| n == peer) {
                            push(&format!("ucast {} {ip}", net.iface));
                        }
                    }
                }
                Media::Mcast { group, port, ttl } => {
                    push(&format!("mcast {} {group} {port} {ttl} 0", net.iface));
                }
                Media::Line(l) => push(&fill(l)),
            }
        }
        for (_, l) in self.node_media.iter().filter(|(n, _)| n == node) {
            push(&fill(l));
        }
        if let Some(a) = &self.auto_failback {
            push(&format!("auto_failback {a}"));
        }
        push(&format!("node {}", self.nodes.join(" ")));
        for l in &self.lines {
            push(&fill(l));
        }
        out
    }

    /// The haresources every node reads.
    pub fn haresources(&self, net: &Net) -> String {
        self.groups
            .iter()
            .map(|g| g.render(&net.iface) + "\n")
            .collect()
    }

    /// `node`'s authkeys.
    pub fn authkeys(&self, node: &str) -> String {
        let auth = self
            .node_auth
            .iter()
            .rev()
            .find(|(n, _)| n == node)
            .map_or(self.auth.as_str(), |(_, a)| a.as_str());
        format!("auth 1\n{}\n", auth.trim_end())
    }

    /// `node`'s had.toml, if it has one.
    pub fn had_toml_for(&self, node: &str) -> Option<String> {
        let parts: Vec<&str> = self
            .had_toml
            .iter()
            .map(String::as_str)
            .chain(
                self.node_had_toml
                    .iter()
                    .filter(|(n, _)| n == node)
                    .map(|(_, t)| t.as_str()),
            )
            .collect();
        if parts.is_empty() {
            return None;
        }
        let mut out = String::new();
        for p in parts {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(p.trim_start_matches('\n'));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Some(out)
    }

    /// Writes every node's files into the lab.
    pub fn write(&self, lab: &Lab) -> anyhow::Result<()> {
        let net = Net::of(lab);
        for n in &self.nodes {
            self.write_node(lab, n, &net)?;
        }
        Ok(())
    }

    /// Writes `node`'s files: ha.cf, haresources, had.toml 0644, authkeys 0600, scripts
    /// 0755, all owned by root.
    pub fn write_node(&self, lab: &Lab, node: &str, net: &Net) -> anyhow::Result<()> {
        let n = lab.node(node);
        let mut files = vec![
            ("ha.cf".to_owned(), self.ha_cf(node, net), 0o644),
            ("haresources".to_owned(), self.haresources(net), 0o644),
            ("authkeys".to_owned(), self.authkeys(node), 0o600),
        ];
        if let Some(t) = self.had_toml_for(node) {
            files.push(("had.toml".to_owned(), t, 0o644));
        }
        for (rel, text) in &self.scripts {
            files.push((rel.clone(), text.clone(), 0o755));
        }
        for (rel, text, mode) in files {
            n.write_file(&rel, &text, mode)?;
            let path = n.config_dir().join(&rel);
            std::os::unix::fs::chown(&path, Some(0), Some(0))
                .with_context(|| format!("chown root {}", path.display()))?;
            let meta = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?;
            if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
                bail!(
                    "{}: owner {} mode {:o}; had's StrictModes wants root and no g+w/o+w",
                    path.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn net() -> Net {
        Net {
            iface: "eth0".into(),
            addrs: vec![
                ("node1".into(), IpAddr::V4(Ipv4Addr::new(198, 18, 7, 11))),
                ("node2".into(), IpAddr::V4(Ipv4Addr::new(198, 18, 7, 12))),
            ],
        }
    }

    #[test]
    fn seed_002_renders_as_written_by_hand() {
        let vip = Ipv4Addr::new(198, 18, 7, 100);
        let s = ClusterSpec::new("seed 002")
            .timers("1", "3", "5", "10")
            .auto_failback("on")
            .auth("md5 motdepasse")
            .group(Group::new("node1").ip(vip, 24).res(format!("web::{vip}")));
        assert_eq!(
            s.ha_cf("node1", &net()),
            "# seed 002\nlogfacility local0\nkeepalive 1\nwarntime 3\ndeadtime 5\ninitdead 10\n\
             bcast eth0\nauto_failback on\nnode node1 node2\n"
        );
        assert_eq!(
            s.haresources(&net()),
            "node1 IPaddr::198.18.7.100/24/eth0 web::198.18.7.100\n"
        );
        assert_eq!(s.authkeys("node2"), "auth 1\n1 md5 motdepasse\n");
        assert_eq!(s.had_toml_for("node1"), None);
        assert_eq!(s.deadtime(), Some("5"));
    }

    #[test]
    fn per_node_lines_media_keys_and_toml() {
        let s = ClusterSpec::new("interop lab\nnode2 runs heartbeat")
            .logfacility(None)
            .timers("200ms", "500ms", "1", "3")
            .udpport(1694)
            .media([
                Media::Ucast,
                Media::Line("mcast6 IFACE ff12::694:16 694 1 0".into()),
            ])
            .node_media("node2", "baud 115200\nserial /dev/pts/9")
            .heartbeat_on("node2")
            .line("crm off")
            .auth("sha1 k")
            .node_auth_lines("node2", "1 sha1 other\n2 crc")
            .had_toml("[[monitor]]\nresource = \"web\"\n")
            .node_had_toml("node2", "\n[fence]\ncommand = \"/x\"\n");
        let n = net();
        assert_eq!(
            s.ha_cf("node1", &n),
            "# interop lab\n# node2 runs heartbeat\nkeepalive 200ms\nwarntime 500ms\n\
             deadtime 1\ninitdead 3\nudpport 1694\nucast eth0 198.18.7.12\n\
             mcast6 eth0 ff12::694:16 694 1 0\nnode node1 node2\ncrm off\n"
        );
        assert_eq!(
            s.ha_cf("node2", &n),
            "# interop lab\n# node2 runs heartbeat\nlogfile /var/log/ha-log\n\
             debugfile /var/log/ha-debug\nlogfacility none\n\
             keepalive 200ms\nwarntime 500ms\ndeadtime 1\ninitdead 3\nudpport 1694\n\
             ucast eth0 198.18.7.11\nmcast6 eth0 ff12::694:16 694 1 0\nbaud 115200\n\
             serial /dev/pts/9\nnode node1 node2\ncrm off\n"
        );
        assert_eq!(s.authkeys("node1"), "auth 1\n1 sha1 k\n");
        assert_eq!(s.authkeys("node2"), "auth 1\n1 sha1 other\n2 crc\n");
        assert_eq!(
            s.had_toml_for("node1").unwrap(),
            "[[monitor]]\nresource = \"web\"\n"
        );
        assert_eq!(
            s.had_toml_for("node2").unwrap(),
            "[[monitor]]\nresource = \"web\"\n\n[fence]\ncommand = \"/x\"\n"
        );
    }

    #[test]
    fn groups_nodes_mcast_and_times() {
        let a = Ipv4Addr::new(198, 18, 7, 100);
        let b = Ipv4Addr::new(198, 18, 200, 1);
        let s = ClusterSpec::new("x")
            .nodes(["alpha", "beta", "gamma"])
            .media([Media::Mcast {
                group: IpAddr::V4(Ipv4Addr::new(239, 255, 7, 1)),
                port: 694,
                ttl: 1,
            }])
            .group(Group::new("alpha").ip(a, 24).ip(b, 16))
            .group(Group::new("beta").res(a.to_string()).res("apache"))
            .haresources_lines("gamma IPaddr2::2001:db8::1/64/eth0  web6\n\n");
        assert_eq!(
            s.haresources(&net()),
            "alpha IPaddr::198.18.7.100/24/eth0 IPaddr::198.18.200.1/16/eth0\n\
             beta 198.18.7.100 apache\ngamma IPaddr2::2001:db8::1/64/eth0 web6\n"
        );
        let cf = s.ha_cf("alpha", &net());
        assert!(cf.contains("\nmcast eth0 239.255.7.1 694 1 0\n"), "{cf}");
        assert!(cf.ends_with("node alpha beta gamma\n"), "{cf}");
        assert!(!cf.contains("keepalive"), "{cf}");
        assert_eq!(ha_time(Duration::from_secs(5)), "5");
        assert_eq!(ha_time(Duration::from_millis(1500)), "1500ms");
        assert_eq!(ha_time(Duration::from_millis(200)), "200ms");
        assert_eq!(ha_time(Duration::ZERO), "0ms");
    }
}
