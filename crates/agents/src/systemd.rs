//! systemd service units as resources: `systemctl start|stop|is-active <agent>.service`.

use std::path::{Path, PathBuf};

use ha_config::ResourceSpec;

use crate::process::{self, Output};
use crate::{AgentEnv, AgentError, Op, OpTimeouts, RunState};

/// Where unit files (and generated units) live, in systemd's precedence order.
const UNIT_DIRS: [&str; 7] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
];

const SYSTEMCTL_CANDIDATES: [&str; 2] = ["/usr/bin/systemctl", "/bin/systemctl"];

/// A resource backed by a systemd service unit.
#[derive(Debug, Clone)]
pub struct SystemdResource {
    name: String,
    unit: String,
    systemctl: PathBuf,
    timeouts: OpTimeouts,
}

impl SystemdResource {
    /// A unit resource driven through `systemctl` at the given path.
    pub fn new(name: &str, unit: &str, systemctl: PathBuf, timeouts: OpTimeouts) -> Self {
        SystemdResource {
            name: name.to_owned(),
            unit: unit.to_owned(),
            systemctl,
            timeouts,
        }
    }

    /// `<agent>.service` if a unit file for it exists; `None` otherwise.
    pub(crate) fn locate(
        spec: &ResourceSpec,
        env: &AgentEnv,
    ) -> Result<Option<SystemdResource>, AgentError> {
        let unit = format!("{}.service", spec.agent);
        if !UNIT_DIRS.iter().any(|d| Path::new(d).join(&unit).exists()) {
            return Ok(None);
        }
        if !spec.args.is_empty() {
            return Err(AgentError::InvalidArgs {
                resource: spec.raw.clone(),
                reason: format!(
                    "systemd unit {unit} takes no `::` arguments; put them in the unit or a resource.d script"
                ),
            });
        }
        let Some(systemctl) = SYSTEMCTL_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            return Err(AgentError::Unavailable {
                resource: spec.raw.clone(),
                reason: "systemd is running but systemctl was not found".into(),
            });
        };
        Ok(Some(SystemdResource::new(
            &spec.raw,
            &unit,
            systemctl,
            env.timeouts,
        )))
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The unit name, e.g. `nginx.service`.
    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// `systemctl start` (systemd treats starting an active unit as success).
    pub async fn start(&self) -> Result<(), AgentError> {
        self.expect_success(Op::Start, "start").await
    }

    /// `systemctl stop` (stopping an inactive unit is success).
    pub async fn stop(&self) -> Result<(), AgentError> {
        self.expect_success(Op::Stop, "stop").await
    }

    /// `systemctl is-active`: exit 0 → running, anything else → stopped.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        let out = self.systemctl(Op::Status, "is-active").await?;
        Ok(if out.status.success() {
            RunState::Running
        } else {
            RunState::Stopped
        })
    }

    async fn expect_success(&self, op: Op, verb: &str) -> Result<(), AgentError> {
        let out = self.systemctl(op, verb).await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(AgentError::Failed {
                resource: self.name.clone(),
                op,
                status: out.status,
                stderr_tail: process::stderr_tail(&out.stderr),
            })
        }
    }

    async fn systemctl(&self, op: Op, verb: &str) -> Result<Output, AgentError> {
        let args = [verb.to_owned(), self.unit.clone()];
        process::run(&self.systemctl, &args, &[], self.timeouts.for_op(op))
            .await
            .map_err(|e| AgentError::from_run(&self.name, op, e))
    }
}
