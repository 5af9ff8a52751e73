//! What a haresources resource means on this machine: its agent located (built-in, a
//! `resource.d` or init script, a systemd unit, an OCF agent) and its arguments parsed, as a
//! [`ResourcePlan`]. Pure apart from looking at files: `had` and `hactl check` resolve
//! resources through this one path (`crate::validate`), and ha-agents runs what it resolved.

mod ip;
mod plan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Config, ResourceSpec, Word};

pub use ip::{IpFlavour, IpPlan, IpSpec, IpSpecError};
pub use plan::{
    ApachePlan, DrbdPlan, FilesystemPlan, MailToPlan, OcfPlan, SENDMAIL_CANDIDATES, ScriptKind,
    ScriptPlan, SendArpPlan, SystemdPlan, find_ocf_by_name, is_ocf,
};

/// Where and how agents run.
#[derive(Debug, Clone)]
pub struct AgentEnv {
    /// Directories searched for resource scripts, in order; a script in a directory named
    /// `init.d` is treated as an LSB init script.
    pub resource_dirs: Vec<PathBuf>,
    /// Whether systemd units may serve as resources (see [`detect_systemd`]).
    pub systemd: bool,
    /// Per-operation time limits (had.toml's `[agent]`).
    pub timeouts: OpTimeouts,
    /// Limits of the resources had.toml's `[[resource]]` names, by that name (a resource's
    /// raw text or its agent name); they win over `timeouts` (see [`AgentEnv::timeouts_for`]).
    pub resource_timeouts: BTreeMap<String, OpTimeouts>,
    /// Gratuitous ARP burst sent after an IP address is added.
    pub arp: ArpConfig,
    /// `OCF_ROOT` for `ocf:` resources (default `/usr/lib/ocf`).
    pub ocf_root: PathBuf,
}

impl Default for AgentEnv {
    fn default() -> Self {
        AgentEnv {
            resource_dirs: vec![
                PathBuf::from("/etc/ha.d/resource.d"),
                PathBuf::from("/etc/init.d"),
            ],
            systemd: detect_systemd(),
            timeouts: OpTimeouts::default(),
            resource_timeouts: BTreeMap::new(),
            arp: ArpConfig::default(),
            ocf_root: PathBuf::from("/usr/lib/ocf"),
        }
    }
}

impl AgentEnv {
    /// The limits for `spec`: those of a `[[resource]]` naming its raw text, else one naming
    /// its agent, else the common ones.
    pub fn timeouts_for(&self, spec: &ResourceSpec) -> OpTimeouts {
        self.resource_timeouts
            .get(spec.raw.as_str())
            .or_else(|| self.resource_timeouts.get(spec.agent()))
            .copied()
            .unwrap_or(self.timeouts)
    }
}

/// The agent environment for a configuration directory, as `had` builds it at start.
pub fn agent_env(config_dir: &Path, config: &Config) -> AgentEnv {
    let d = OpTimeouts::default();
    let a = &config.had.agent;
    let timeouts = OpTimeouts {
        start: a.start,
        stop: a.stop,
        ..d
    };
    let resource_timeouts = config
        .had
        .resources
        .iter()
        .map(|r| {
            let t = OpTimeouts {
                start: r.start.unwrap_or(a.start),
                stop: r.stop.unwrap_or(a.stop),
                ..d
            };
            (r.name.clone(), t)
        })
        .collect();
    AgentEnv {
        timeouts,
        resource_timeouts,
        resource_dirs: vec![
            config_dir.join("resource.d"),
            PathBuf::from("/etc/ha.d/resource.d"),
            PathBuf::from("/etc/init.d"),
        ],
        systemd: detect_systemd(),
        arp: ArpConfig {
            count: config.had.arp.count,
            interval: config.had.arp.interval,
            refresh: config.had.arp.refresh,
        },
        ..AgentEnv::default()
    }
}

/// An agent operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Acquire.
    Start,
    /// Release.
    Stop,
    /// Probe.
    Status,
}

impl Op {
    /// The word scripts receive as their last argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
            Op::Status => "status",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time limits for each agent operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpTimeouts {
    /// Limit for `start`.
    pub start: Duration,
    /// Limit for `stop`.
    pub stop: Duration,
    /// Limit for `status`.
    pub status: Duration,
}

impl Default for OpTimeouts {
    fn default() -> Self {
        OpTimeouts {
            start: Duration::from_secs(60),
            stop: Duration::from_secs(60),
            status: Duration::from_secs(20),
        }
    }
}

impl OpTimeouts {
    /// The limit for `op`.
    pub fn for_op(&self, op: Op) -> Duration {
        match op {
            Op::Start => self.start,
            Op::Stop => self.stop,
            Op::Status => self.status,
        }
    }
}

/// Gratuitous ARP burst shape: `count` packets, `interval` apart, the first at once; then,
/// with `refresh`, one more packet every `refresh` for as long as the address is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpConfig {
    /// Number of packets (0 = send none).
    pub count: u32,
    /// Gap between packets.
    pub interval: Duration,
    /// Period of the refresh after the burst (`None` = no refresh).
    pub refresh: Option<Duration>,
}

impl Default for ArpConfig {
    fn default() -> Self {
        // IPaddr2's arp_count / arp_interval defaults.
        ArpConfig {
            count: 5,
            interval: Duration::from_millis(200),
            refresh: None,
        }
    }
}

/// True when systemd is the init system (the `sd_booted` rule: `/run/systemd/system` exists).
pub fn detect_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Why a resource cannot be built here (ha-agents' `AgentError` carries it unchanged).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    /// No built-in agent, script or unit answers to this name.
    #[error("{resource}: cannot locate resource script `{agent}` (looked in {looked_in})")]
    NotFound {
        /// The resource as written.
        resource: String,
        /// The agent name searched for.
        agent: String,
        /// Every place searched, comma-separated.
        looked_in: String,
    },
    /// A program the agent needs is not installed on this machine (`drbdadm`, `apachectl`,
    /// `systemctl`).
    #[error("{resource}: {reason}")]
    Unavailable {
        /// The resource as written.
        resource: String,
        /// What is missing and how to install it.
        reason: String,
    },
    /// The arguments cannot work with this agent.
    #[error("{resource}: {reason}")]
    InvalidArgs {
        /// The resource as written.
        resource: String,
        /// What is wrong.
        reason: String,
    },
}

impl SpecError {
    /// The resource as written.
    pub fn resource(&self) -> &str {
        match self {
            SpecError::NotFound { resource, .. }
            | SpecError::Unavailable { resource, .. }
            | SpecError::InvalidArgs { resource, .. } => resource,
        }
    }

    /// True when the error is about this machine (an agent or program not installed here)
    /// rather than about what haresources says: another node may well have it.
    pub fn depends_on_machine(&self) -> bool {
        matches!(
            self,
            SpecError::NotFound { .. } | SpecError::Unavailable { .. }
        )
    }
}

/// A resource from haresources with its agent found and its arguments checked: everything
/// ha-agents needs to run it.
#[derive(Debug, Clone)]
pub enum ResourcePlan {
    /// Built-in IPaddr/IPaddr2/IPv6addr.
    Ip(IpPlan),
    /// A resource.d script or LSB init script.
    Script(ScriptPlan),
    /// A systemd service unit.
    Systemd(SystemdPlan),
    /// `Filesystem::device::mountpoint::fstype[::options]`.
    Filesystem(FilesystemPlan),
    /// `MailTo::addr::subject`.
    MailTo(MailToPlan),
    /// `drbddisk::resource`.
    Drbd(DrbdPlan),
    /// `apache[::configfile]`.
    Apache(ApachePlan),
    /// `ocf::provider::agent::name=value...`.
    Ocf(OcfPlan),
    /// `SendArp::ip/iface`: gratuitous ARP only.
    SendArp(SendArpPlan),
}

impl ResourcePlan {
    /// Resolve `spec` to an agent: the built-in ones (IPaddr, IPaddr2, Filesystem, MailTo,
    /// drbddisk, apache: they replace Heartbeat's scripts of the same names), then each
    /// `resource_dir/<agent>` (regular and executable), then `<agent>.service` when systemd runs.
    pub fn from_spec(spec: &ResourceSpec, env: &AgentEnv) -> Result<ResourcePlan, SpecError> {
        use ResourcePlan as P;
        if let Some(flavour) = IpFlavour::from_agent(spec.agent()) {
            return IpPlan::from_words(&spec.raw, flavour, &spec.args(), env.arp).map(P::Ip);
        }
        // The other agents keep their own strings: they are few, and their arguments end up
        // in command lines.
        let args: Vec<String> = spec.args().iter().map(Word::to_string).collect();
        let (raw, args, t) = (spec.raw.as_str(), &args[..], env.timeouts_for(spec));
        match spec.agent() {
            "Filesystem" => return FilesystemPlan::new(raw, args, t).map(P::Filesystem),
            "MailTo" => return MailToPlan::new(raw, args, t.start).map(P::MailTo),
            "drbddisk" => return DrbdPlan::new(raw, args, t).map(P::Drbd),
            "apache" => return ApachePlan::new(raw, args, t).map(P::Apache),
            "SendArp" => return SendArpPlan::new(raw, args, env.arp).map(P::SendArp),
            a if is_ocf(a) => {
                return OcfPlan::new(raw, a, args, &env.ocf_root, t).map(P::Ocf);
            }
            _ => {}
        }
        if let Some(script) = ScriptPlan::locate(spec, env)? {
            return Ok(P::Script(script));
        }
        if env.systemd
            && let Some(unit) = SystemdPlan::locate(spec, env)?
        {
            return Ok(P::Systemd(unit));
        }
        let mut looked: Vec<String> = env
            .resource_dirs
            .iter()
            .map(|d| d.join(spec.agent()).display().to_string())
            .collect();
        if env.systemd {
            looked.push(format!("systemd unit {}.service", spec.agent()));
        }
        // OCF agents are only used when asked for (their parameters are name=value, not
        // positional); point at the syntax when the name is one.
        let mut looked = looked.join(", ");
        if let Some(found) = find_ocf_by_name(&env.ocf_root, spec.agent()).first()
            && let Some(provider) = found.parent().and_then(|p| p.file_name())
        {
            looked.push_str(&format!(
                "; {} is an OCF agent: write ocf::{}::{}[::name=value...]",
                found.display(),
                provider.to_string_lossy(),
                spec.agent()
            ));
        }
        Err(SpecError::NotFound {
            resource: spec.raw.to_string(),
            agent: spec.agent().to_string(),
            looked_in: looked,
        })
    }

    /// The script or agent this resource runs as root, when it is one the configuration
    /// chose (a `resource.d` or init script, an OCF agent), for the StrictModes check.
    pub fn program(&self) -> Option<&Path> {
        match self {
            ResourcePlan::Script(p) => Some(&p.path),
            ResourcePlan::Ocf(p) => Some(&p.path),
            _ => None,
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        match self {
            ResourcePlan::Ip(p) => &p.name,
            ResourcePlan::Script(p) => &p.name,
            ResourcePlan::Systemd(p) => &p.name,
            ResourcePlan::Filesystem(p) => &p.name,
            ResourcePlan::MailTo(p) => &p.name,
            ResourcePlan::Drbd(p) => &p.name,
            ResourcePlan::Apache(p) => &p.name,
            ResourcePlan::Ocf(p) => &p.name,
            ResourcePlan::SendArp(p) => &p.ip.name,
        }
    }
}
