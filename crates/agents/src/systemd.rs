//! systemd service units as resources: `systemctl start|stop|is-active <agent>.service`.

use std::path::PathBuf;

use ha_config::agent::SystemdPlan;

use crate::process::{self, Output};
use crate::{AgentError, Op, OpTimeouts, RunState};

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

    /// The resource a checked plan describes.
    pub fn from_plan(p: SystemdPlan) -> Self {
        SystemdResource::new(&p.name, &p.unit, p.systemctl, p.timeouts)
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
