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

use std::sync::Arc;

use ha_config::ResourceSpec;
use ha_config::agent::ResourcePlan;
pub use ha_config::agent::{AgentEnv, ArpConfig, OpTimeouts, SpecError, detect_systemd};

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

/// Whether a resource is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Active (address present, service running).
    Running,
    /// Not active.
    Stopped,
}

/// A resource from haresources, ready to start, stop and probe.
///
/// The agents other than the address one are behind a pointer: an enum is as large as its
/// largest variant, and a group may hold a thousand addresses for each script or mount.
///
/// A clone is the same running resource (what it knows of its state is shared): a reload
/// keeps a running resource in its group's new list while the old one is still held.
#[derive(Debug, Clone)]
pub enum Resource {
    /// Built-in IPaddr/IPaddr2 over netlink.
    Ip(IpResource),
    /// A resource.d script or LSB init script.
    Script(Arc<ScriptResource>),
    /// A systemd service unit.
    Systemd(Arc<SystemdResource>),
    /// `Filesystem::device::mountpoint::fstype[::options]`.
    Filesystem(Arc<FilesystemResource>),
    /// `MailTo::addr::subject`.
    MailTo(Arc<MailToResource>),
    /// `drbddisk::resource`.
    Drbd(Arc<DrbdResource>),
    /// `apache[::configfile]`.
    Apache(Arc<ApacheResource>),
    /// `ocf::provider::agent::name=value...`.
    Ocf(Arc<OcfResource>),
    /// `SendArp::ip/iface`: gratuitous ARP only.
    SendArp(Arc<SendArpResource>),
}

impl Resource {
    /// Resolve `spec` to an agent (`ResourcePlan::from_spec`, the resolution `had` and
    /// `hactl check` validate with) and build it.
    pub fn from_spec(spec: &ResourceSpec, env: &AgentEnv) -> Result<Resource, AgentError> {
        Ok(Resource::from_plan(ResourcePlan::from_spec(spec, env)?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(plan: ResourcePlan) -> Resource {
        match plan {
            ResourcePlan::Ip(p) => Resource::Ip(IpResource::from_plan(p)),
            ResourcePlan::Script(p) => Resource::Script(Arc::new(ScriptResource::from_plan(p))),
            ResourcePlan::Systemd(p) => Resource::Systemd(Arc::new(SystemdResource::from_plan(p))),
            ResourcePlan::Filesystem(p) => {
                Resource::Filesystem(Arc::new(FilesystemResource::from_plan(p)))
            }
            ResourcePlan::MailTo(p) => Resource::MailTo(Arc::new(MailToResource::from_plan(p))),
            ResourcePlan::Drbd(p) => Resource::Drbd(Arc::new(DrbdResource::from_plan(p))),
            ResourcePlan::Apache(p) => Resource::Apache(Arc::new(ApacheResource::from_plan(p))),
            ResourcePlan::Ocf(p) => Resource::Ocf(Arc::new(OcfResource::from_plan(p))),
            ResourcePlan::SendArp(p) => Resource::SendArp(Arc::new(SendArpResource::from_plan(p))),
        }
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
