//! The Pacemaker cluster a had configuration amounts to, built purely from the parsed
//! [`Config`]: groups, primitives, constraints, properties and Corosync's node list, plus
//! the notes an admin must read before switching. The renderers only print this.

use std::net::IpAddr;
use std::time::Duration;

use ha_config::{AutoFailback, Config};

use crate::fence::FenceAdvice;
use crate::id::Ids;
use crate::resolve::Host;

/// Score of the location constraint for a group's preferred node.
pub const PREFER_SCORE: u32 = 100;
/// `resource-stickiness` for `auto_failback off`: above [`PREFER_SCORE`], so a group stays
/// where it runs when its preferred node comes back.
pub const STICKY_SCORE: u32 = 200;
/// had's default start/stop limit (ha-agents `OpTimeouts`), Pacemaker's op default here.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// corosync detects a lost node after token + consensus (1.2 × token).
const TOKEN_TO_DETECTION: f64 = 2.2;
const MIN_TOKEN_MS: u64 = 1000;

/// What the admin is told; `Danger` lines are printed loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Must be dealt with before the cluster is safe.
    Danger,
    /// Check this before switching.
    Review,
    /// For information.
    Info,
}

/// One note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// How important.
    pub level: Level,
    /// The text, one paragraph.
    pub text: String,
}

/// A node as Corosync and Pacemaker know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Corosync `nodeid` and the CIB node id.
    pub id: u32,
    /// The node name (`uname -n`).
    pub name: String,
    /// `ring0_addr`, `ring1_addr`, ...: addresses, or the name for corosync to resolve.
    pub addrs: Vec<String>,
}

/// One operation of a primitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Its CIB id.
    pub id: String,
    /// `monitor`, `start`, `stop`.
    pub name: &'static str,
    /// Interval (zero for start/stop).
    pub interval: Duration,
    /// Timeout.
    pub timeout: Duration,
}

/// A name/value pair with its CIB id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// `nvpair` id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A set of pairs (`instance_attributes`, `meta_attributes`) with its id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attrs {
    /// The set's id (empty when there are no pairs).
    pub id: String,
    /// The pairs, in order.
    pub pairs: Vec<Pair>,
}

impl Attrs {
    pub(crate) fn new(
        ids: &mut Ids,
        owner: &str,
        kind: &str,
        pairs: Vec<(String, String)>,
    ) -> Attrs {
        if pairs.is_empty() {
            return Attrs::default();
        }
        let id = ids.unique(&format!("{owner}-{kind}"));
        let pairs = pairs
            .into_iter()
            .map(|(name, value)| Pair {
                id: ids.unique(&format!("{id}-{name}")),
                name,
                value,
            })
            .collect();
        Attrs { id, pairs }
    }
}

/// A Pacemaker primitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primitive {
    /// Its id.
    pub id: String,
    /// `ocf`, `lsb`, `systemd`, `service`.
    pub class: &'static str,
    /// OCF provider.
    pub provider: Option<String>,
    /// The agent (`type`).
    pub agent: String,
    /// `instance_attributes`.
    pub params: Attrs,
    /// `meta_attributes`.
    pub meta: Attrs,
    /// Operations.
    pub ops: Vec<Operation>,
    /// The haresources text it comes from.
    pub from: String,
}

impl Primitive {
    /// `class:provider:type` as crm writes it.
    pub fn spec(&self) -> String {
        match &self.provider {
            Some(p) => format!("{}:{p}:{}", self.class, self.agent),
            None => format!("{}:{}", self.class, self.agent),
        }
    }
}

/// A promotable clone a group depends on (DRBD): promoted where the group runs, first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotable {
    /// The clone's id.
    pub id: String,
    /// Its meta attributes (`promotable=true`, counts).
    pub meta: Attrs,
    /// The cloned primitive.
    pub primitive: Primitive,
    /// Colocation constraint id (group with the promoted instance).
    pub colocation_id: String,
    /// Order constraint id (promote, then start the group).
    pub order_id: String,
}

/// A location preference of a group for a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The constraint's id.
    pub id: String,
    /// The node.
    pub node: String,
    /// Its score.
    pub score: u32,
}

/// "Not where `attribute` (set by an ethmonitor clone) is missing or 0".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRule {
    /// The location constraint's id.
    pub id: String,
    /// Its rule's id.
    pub rule_id: String,
    /// The two expressions' ids (not defined, down).
    pub expr_ids: [String; 2],
    /// The node attribute ethmonitor maintains (`ethmonitor-IFACE`).
    pub attribute: String,
}

/// An `ocf:heartbeat:ethmonitor` clone watching one interface on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkWatch {
    /// The clone's id.
    pub id: String,
    /// The interface.
    pub iface: String,
    /// The cloned primitive.
    pub primitive: Primitive,
}

/// One haresources line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group id.
    pub id: String,
    /// Its members in start order.
    pub primitives: Vec<Primitive>,
    /// Where the group prefers to run: the haresources node, or every node by its
    /// `[priority]`.
    pub locations: Vec<Location>,
    /// Links the group's node must have carrier on (`link:` monitors).
    pub link_rules: Vec<LinkRule>,
    /// Promotable clones this group needs (drbddisk).
    pub promotables: Vec<Promotable>,
    /// haresources line.
    pub line: usize,
    /// `haresources line N: NODE RES...`, the CIB's `description`.
    pub description: String,
}

/// The whole Pacemaker + Corosync configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `cluster_name` / `cluster-name`.
    pub name: String,
    /// The nodes, in ha.cf order then the added ones.
    pub nodes: Vec<ClusterNode>,
    /// Groups in haresources order.
    pub groups: Vec<Group>,
    /// Interface watchers the groups' link rules need.
    pub links: Vec<LinkWatch>,
    /// `cib-bootstrap-options`.
    pub properties: Attrs,
    /// `rsc_defaults`.
    pub rsc_defaults: Attrs,
    /// `op_defaults`.
    pub op_defaults: Attrs,
    /// Corosync `totem.token` in ms.
    pub token_ms: u64,
    /// The `[fence]` advice, when had.toml has one.
    pub fence: Option<FenceAdvice>,
    /// Everything to read before switching.
    pub notes: Vec<Note>,
    /// Where the configuration came from.
    pub source: String,
}

/// `--node NAME=ADDR[,ADDR...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    /// Node name.
    pub name: String,
    /// One address per Corosync link.
    pub addrs: Vec<IpAddr>,
}

impl NodeAddr {
    /// Parses `NAME=ADDR[,ADDR...]`.
    pub fn parse(s: &str) -> Result<NodeAddr, String> {
        let (name, addrs) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: write NAME=ADDRESS[,ADDRESS...]"))?;
        if !valid_node_name(name) {
            return Err(format!(
                "`{name}` is not a node name (letters, digits, `-`, `_`, `.`; as `uname -n` prints it)"
            ));
        }
        let addrs = addrs
            .split(',')
            .map(|a| {
                a.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("`{a}` (for node `{name}`) is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NodeAddr {
            name: name.to_ascii_lowercase(),
            addrs,
        })
    }
}

fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// How to export.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Corosync's `cluster_name` (default `had`).
    pub cluster_name: Option<String>,
    /// Node addresses given on the command line; names not in ha.cf are added.
    pub nodes: Vec<NodeAddr>,
    /// This machine's node name, to tell whose address a lone `ucast` line holds.
    pub local_node: Option<String>,
}

/// Why a configuration cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// A haresources resource has no Pacemaker form.
    #[error("haresources:{line}: `{resource}`: {reason}")]
    Resource {
        /// Line of its group.
        line: usize,
        /// The resource text.
        resource: String,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// A command-line option is unusable.
    #[error("{0}")]
    Option(String),
}

/// Builds the cluster for `config`.
pub fn build(config: &Config, opts: &Options, host: &Host) -> Result<Cluster, ExportError> {
    let mut b = Builder {
        config,
        host,
        ids: Ids::default(),
        notes: Vec::new(),
        links: Vec::new(),
        weak_checks: Vec::new(),
        raised_timeouts: Vec::new(),
    };
    let name = cluster_name(opts)?;
    let nodes = b.nodes(opts)?;
    let mut groups = Vec::new();
    for g in &config.haresources.groups {
        groups.push(b.group(g)?);
    }
    b.unbound_monitors();
    b.monitor_notes();
    b.tracking_notes();
    let fence = config.had.fence.as_ref().map(FenceAdvice::new);
    let properties = b.properties(&name, fence.as_ref());
    let rsc_defaults = b.rsc_defaults();
    let op_defaults = Attrs::new(
        &mut b.ids,
        "op-options",
        "",
        vec![("timeout".into(), secs(OP_TIMEOUT))],
    );
    let token_ms = b.token();
    b.misc_notes(nodes.len());
    let mut notes = b.notes;
    notes.sort_by_key(|n| n.level);
    Ok(Cluster {
        name,
        nodes,
        groups,
        links: b.links,
        properties,
        rsc_defaults,
        op_defaults,
        token_ms,
        fence,
        notes,
        source: config.dir.display().to_string(),
    })
}

fn cluster_name(opts: &Options) -> Result<String, ExportError> {
    let name = opts.cluster_name.clone().unwrap_or_else(|| "had".into());
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(name)
    } else {
        Err(ExportError::Option(format!(
            "cluster name `{name}`: use 1 to 32 letters, digits, `-` or `_`"
        )))
    }
}

/// Whole seconds as `Ns`, else `Nms` (both forms Pacemaker reads).
pub fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The conversion's state: the source, the IDs handed out and the notes gathered.
pub(crate) struct Builder<'a> {
    pub(crate) config: &'a Config,
    pub(crate) host: &'a Host,
    pub(crate) ids: Ids,
    pub(crate) notes: Vec<Note>,
    pub(crate) links: Vec<LinkWatch>,
    /// had.toml checks that Pacemaker's agent monitors may not match (one note for all).
    pub(crate) weak_checks: Vec<String>,
    /// Monitor timeouts raised to the minimum (one note for all).
    pub(crate) raised_timeouts: Vec<String>,
}

impl Builder<'_> {
    pub(crate) fn note(&mut self, level: Level, text: impl Into<String>) {
        self.notes.push(Note {
            level,
            text: text.into(),
        });
    }
    fn properties(&mut self, name: &str, fence: Option<&FenceAdvice>) -> Attrs {
        let cf = &self.config.ha_cf;
        let v = vec![
            ("stonith-enabled".to_string(), "false".to_string()),
            ("cluster-name".into(), name.to_string()),
            // Heartbeat's initdead: how long a starting node waits for the others.
            ("dc-deadtime".into(), secs(cf.initdead)),
        ];
        let text = match fence {
            Some(f) => format!(
                "STONITH IS OFF (stonith-enabled=false). had fenced the peer with `{}`, but Pacemaker can only fence through a fence agent{}. Until one is configured and tested, a node that hangs instead of dying can leave resources running on two nodes.",
                f.command,
                f.agent.map(|a| format!(" ({a})")).unwrap_or_default()
            ),
            None => "STONITH IS OFF (stonith-enabled=false): had.toml has no [fence], so there is no fence device to carry. Pacemaker is built around fencing; without it a node that hangs instead of dying can leave resources running on two nodes. Configure a fence agent (fence-agents package), test it, then set stonith-enabled=true.".into(),
        };
        self.note(Level::Danger, text);
        Attrs::new(&mut self.ids, "cib-bootstrap-options", "", v)
    }

    fn rsc_defaults(&mut self) -> Attrs {
        let stickiness = match self.config.ha_cf.auto_failback {
            AutoFailback::On => 0,
            AutoFailback::Off => STICKY_SCORE.max(self.max_location_score() + PREFER_SCORE),
            AutoFailback::Legacy => {
                self.note(
                    Level::Review,
                    "auto_failback is `legacy` (not set): exported as `on` (resource-stickiness=0, groups return to their preferred node). Set `auto_failback on|off` to say which you want.",
                );
                0
            }
        };
        Attrs::new(
            &mut self.ids,
            "rsc-options",
            "",
            vec![("resource-stickiness".into(), stickiness.to_string())],
        )
    }

    fn token(&mut self) -> u64 {
        let dead = self.config.ha_cf.deadtime.as_millis() as f64;
        let raw = (dead / TOKEN_TO_DETECTION / 100.0).round() as u64 * 100;
        let token = raw.max(MIN_TOKEN_MS);
        self.note(
            Level::Info,
            format!(
                "deadtime {} → totem token {token} ms: corosync declares a node lost after token + consensus (1.2 × token) ≈ {} ms{}.",
                secs(self.config.ha_cf.deadtime),
                (token as f64 * TOKEN_TO_DETECTION) as u64,
                if raw < MIN_TOKEN_MS { ", raised to corosync's practical minimum" } else { "" }
            ),
        );
        token
    }

    fn misc_notes(&mut self, node_count: usize) {
        let cf = &self.config.ha_cf;
        if !cf.ping.is_empty() {
            self.note(
                Level::Review,
                "ha.cf `ping` nodes are not carried: use an ocf:pacemaker:ping clone and a location rule on its `pingd` attribute.",
            );
        }
        if !self.config.had.notify.is_empty() {
            self.note(
                Level::Review,
                "had.toml [notify] hooks are not carried: Pacemaker alerts (`crm configure alert ID PATH`) call a program with CRM_alert_* variables instead of HA_STATE; adapt the script.",
            );
        }
        if node_count == 2 {
            self.note(
                Level::Info,
                "two nodes: corosync.conf sets `two_node: 1` (quorum with one node left, which also turns on wait_for_all: both nodes must be seen once after a cold start).",
            );
        }
        self.note(
            Level::Info,
            "corosync (knet) talks UDP port 5405 between the node addresses, with its own key: create /etc/corosync/authkey with `corosync-keygen` on one node and copy it (mode 0400) to the others. authkeys is not used.",
        );
    }
}
