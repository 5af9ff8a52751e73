//! ha-agents: the resource agents that acquire and release what haresources lists.
//! One [`Resource`] type with start/stop/status, each op bounded by a timeout and idempotent.

pub mod apache;
pub mod drbd;
mod error;
pub mod filesystem;
pub mod ip;
pub mod link;
pub mod mailto;
pub mod ocf;
pub mod process;
pub mod script;
pub mod sendarp;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ha_config::ResourceSpec;

pub use apache::ApacheResource;
pub use drbd::DrbdResource;
pub use error::{AgentError, Op};
pub use filesystem::FilesystemResource;
pub use ip::{IpFlavour, IpResource, IpSpec, IpSpecError, NetBatch};
pub use mailto::MailToResource;
pub use ocf::OcfResource;
pub use script::{ScriptKind, ScriptResource, judge_status_text};
pub use sendarp::SendArpResource;
pub use systemd::SystemdResource;

/// Where and how agents run.
#[derive(Debug, Clone)]
pub struct AgentEnv {
    /// Directories searched for resource scripts, in order; a script in a directory named
    /// `init.d` is treated as an LSB init script.
    pub resource_dirs: Vec<PathBuf>,
    /// Whether systemd units may serve as resources (see [`detect_systemd`]).
    pub systemd: bool,
    /// Per-operation time limits.
    pub timeouts: OpTimeouts,
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
            arp: ArpConfig::default(),
            ocf_root: PathBuf::from("/usr/lib/ocf"),
        }
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

/// Whether a resource is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Active (address present, service running).
    Running,
    /// Not active.
    Stopped,
}

/// A resource from haresources, ready to start, stop and probe.
#[derive(Debug)]
pub enum Resource {
    /// Built-in IPaddr/IPaddr2 over netlink.
    Ip(IpResource),
    /// A resource.d script or LSB init script.
    Script(ScriptResource),
    /// A systemd service unit.
    Systemd(SystemdResource),
    /// `Filesystem::device::mountpoint::fstype[::options]`.
    Filesystem(FilesystemResource),
    /// `MailTo::addr::subject`.
    MailTo(MailToResource),
    /// `drbddisk::resource`.
    Drbd(DrbdResource),
    /// `apache[::configfile]`.
    Apache(ApacheResource),
    /// `ocf::provider::agent::name=value...`.
    Ocf(OcfResource),
    /// `SendArp::ip/iface`: gratuitous ARP only.
    SendArp(SendArpResource),
}

impl Resource {
    /// Resolve `spec` to an agent: the built-in ones (IPaddr, IPaddr2, Filesystem, MailTo,
    /// drbddisk, apache: they replace Heartbeat's scripts of the same names), then each
    /// `resource_dir/<agent>` (regular and executable), then `<agent>.service` when systemd runs.
    pub fn from_spec(spec: &ResourceSpec, env: &AgentEnv) -> Result<Resource, AgentError> {
        if let Some(flavour) = IpFlavour::from_agent(&spec.agent) {
            return IpResource::new(&spec.raw, flavour, &spec.args, env.arp).map(Resource::Ip);
        }
        let (raw, args, t) = (&spec.raw, &spec.args, env.timeouts);
        match spec.agent.as_str() {
            "Filesystem" => return FilesystemResource::new(raw, args, t).map(Resource::Filesystem),
            "MailTo" => return MailToResource::new(raw, args, t.start).map(Resource::MailTo),
            "drbddisk" => return DrbdResource::new(raw, args, t).map(Resource::Drbd),
            "apache" => return ApacheResource::new(raw, args, t).map(Resource::Apache),
            "SendArp" => return SendArpResource::new(raw, args, env.arp).map(Resource::SendArp),
            a if ocf::is_ocf(a) => {
                return OcfResource::new(raw, a, args, &env.ocf_root, t).map(Resource::Ocf);
            }
            _ => {}
        }
        if let Some(script) = ScriptResource::locate(spec, env)? {
            return Ok(Resource::Script(script));
        }
        if env.systemd
            && let Some(unit) = SystemdResource::locate(spec, env)?
        {
            return Ok(Resource::Systemd(unit));
        }
        let mut looked: Vec<String> = env
            .resource_dirs
            .iter()
            .map(|d| d.join(&spec.agent).display().to_string())
            .collect();
        if env.systemd {
            looked.push(format!("systemd unit {}.service", spec.agent));
        }
        // OCF agents are only used when asked for (their parameters are name=value, not
        // positional); point at the syntax when the name is one.
        let mut looked = looked.join(", ");
        if let Some(found) = ocf::find_by_name(&env.ocf_root, &spec.agent).first()
            && let Some(provider) = found.parent().and_then(|p| p.file_name())
        {
            looked.push_str(&format!(
                "; {} is an OCF agent: write ocf::{}::{}[::name=value...]",
                found.display(),
                provider.to_string_lossy(),
                spec.agent
            ));
        }
        Err(AgentError::NotFound {
            resource: spec.raw.clone(),
            agent: spec.agent.clone(),
            looked_in: looked,
        })
    }

    /// The script or agent this resource runs as root, when it is one the configuration
    /// chose (a `resource.d` or init script, an OCF agent), for the StrictModes check.
    pub fn program(&self) -> Option<&std::path::Path> {
        match self {
            Resource::Script(r) => Some(r.path()),
            Resource::Ocf(r) => Some(r.path()),
            _ => None,
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        match self {
            Resource::Ip(r) => r.name(),
            Resource::Script(r) => r.name(),
            Resource::Systemd(r) => r.name(),
            Resource::Filesystem(r) => r.name(),
            Resource::MailTo(r) => r.name(),
            Resource::Drbd(r) => r.name(),
            Resource::Apache(r) => r.name(),
            Resource::Ocf(r) => r.name(),
            Resource::SendArp(r) => r.name(),
        }
    }

    /// Acquire the resource; success if it is already active.
    pub async fn start(&self) -> Result<(), AgentError> {
        match self {
            Resource::Ip(r) => r.start().await,
            Resource::Script(r) => r.start().await,
            Resource::Systemd(r) => r.start().await,
            Resource::Filesystem(r) => r.start().await,
            Resource::MailTo(r) => r.start().await,
            Resource::Drbd(r) => r.start().await,
            Resource::Apache(r) => r.start().await,
            Resource::Ocf(r) => r.start().await,
            Resource::SendArp(r) => r.start().await,
        }
    }

    /// Acquire a resource the caller has just found stopped with [`Resource::status`]: like
    /// `start`, minus the scripts' own status probe, which would only repeat that answer.
    pub async fn start_stopped(&self) -> Result<(), AgentError> {
        match self {
            Resource::Script(r) => r.start_unchecked().await,
            other => other.start().await,
        }
    }

    /// Release the resource; success if it is already inactive.
    pub async fn stop(&self) -> Result<(), AgentError> {
        match self {
            Resource::Ip(r) => r.stop().await,
            Resource::Script(r) => r.stop().await,
            Resource::Systemd(r) => r.stop().await,
            Resource::Filesystem(r) => r.stop().await,
            Resource::MailTo(r) => r.stop().await,
            Resource::Drbd(r) => r.stop().await,
            Resource::Apache(r) => r.stop().await,
            Resource::Ocf(r) => r.stop().await,
            Resource::SendArp(r) => r.stop().await,
        }
    }

    /// `status` within a group operation: IP addresses read the batch's one view of the
    /// network instead of dumping every address each.
    pub async fn status_in(&self, batch: &mut NetBatch) -> Result<RunState, AgentError> {
        match self {
            Resource::Ip(r) => r.status_in(batch).await,
            other => other.status().await,
        }
    }

    /// `start` within a group operation (see [`Resource::status_in`]). Any other agent may
    /// change addresses, so the batch forgets its view first.
    pub async fn start_in(&self, batch: &mut NetBatch) -> Result<(), AgentError> {
        match self {
            Resource::Ip(r) => r.start_in(batch).await,
            other => {
                batch.invalidate();
                other.start().await
            }
        }
    }

    /// `start_stopped` within a group operation (see [`Resource::start_in`]).
    pub async fn start_stopped_in(&self, batch: &mut NetBatch) -> Result<(), AgentError> {
        match self {
            Resource::Ip(r) => r.start_in(batch).await,
            other => {
                batch.invalidate();
                other.start_stopped().await
            }
        }
    }

    /// `stop` within a group operation (see [`Resource::start_in`]).
    pub async fn stop_in(&self, batch: &mut NetBatch) -> Result<(), AgentError> {
        match self {
            Resource::Ip(r) => r.stop_in(batch).await,
            other => {
                batch.invalidate();
                other.stop().await
            }
        }
    }

    /// Probe whether the resource is active.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        match self {
            Resource::Ip(r) => r.status().await,
            Resource::Script(r) => r.status().await,
            Resource::Systemd(r) => r.status().await,
            Resource::Filesystem(r) => r.status().await,
            Resource::MailTo(r) => r.status().await,
            Resource::Drbd(r) => r.status().await,
            Resource::Apache(r) => r.status().await,
            Resource::Ocf(r) => r.status().await,
            Resource::SendArp(r) => r.status().await,
        }
    }
}
