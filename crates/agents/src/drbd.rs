//! `drbddisk[::resource]`: promote a DRBD resource to Primary on start and demote it on stop,
//! through `drbdadm`, as Heartbeat's drbddisk does (resource `all` when none is named).
//! Promotion is retried: right after the peer demotes, DRBD may still refuse for a moment.

use std::path::PathBuf;
use std::time::Duration;

use ha_config::agent::DrbdPlan;
use ha_core::logcat::{LogEvent, log};

use crate::process::{self, Output};
use crate::{AgentError, Op, OpTimeouts, RunState};

/// A drbddisk resource.
#[derive(Debug, Clone)]
pub struct DrbdResource {
    name: String,
    res: String,
    drbdadm: PathBuf,
    timeouts: OpTimeouts,
    /// Promotion attempts and the pause between them.
    attempts: u32,
    pause: Duration,
}

impl DrbdResource {
    /// Parse the arguments; `drbdadm` from the usual places (a clear error if absent).
    pub fn new(name: &str, args: &[String], timeouts: OpTimeouts) -> Result<Self, AgentError> {
        Ok(Self::from_plan(DrbdPlan::new(name, args, timeouts)?))
    }

    /// As [`DrbdResource::new`] with an explicit `drbdadm`.
    pub fn with_drbdadm(
        name: &str,
        args: &[String],
        drbdadm: PathBuf,
        timeouts: OpTimeouts,
    ) -> Result<Self, AgentError> {
        Ok(Self::from_plan(DrbdPlan::with_drbdadm(
            name, args, drbdadm, timeouts,
        )?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: DrbdPlan) -> Self {
        let DrbdPlan {
            name,
            res,
            drbdadm,
            timeouts,
        } = p;
        Self {
            name,
            res,
            drbdadm,
            timeouts,
            attempts: 6,
            pause: Duration::from_secs(1),
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The DRBD resource (`all` when none was named).
    pub fn drbd_resource(&self) -> &str {
        &self.res
    }

    /// The `drbdadm` arguments for `op`.
    pub fn command(&self, op: Op) -> Vec<String> {
        let verb = match op {
            Op::Start => "primary",
            Op::Stop => "secondary",
            Op::Status => "role",
        };
        vec![verb.to_owned(), self.res.clone()]
    }

    /// `drbdadm primary`, retried; success if already Primary.
    pub async fn start(&self) -> Result<(), AgentError> {
        let mut last = None;
        let attempts = self.attempts.max(1);
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.pause).await;
            }
            let out = self.drbdadm(Op::Start).await?;
            if out.status.success() {
                return Ok(());
            }
            log(&LogEvent::DrbdPrimaryFailed {
                resource: &self.name,
                res: &self.res,
                reason: &process::stderr_tail(&out.stderr),
                attempt: attempt + 1,
                attempts,
            });
            last = Some(out);
        }
        Err(self.failed(Op::Start, last))
    }

    /// `drbdadm secondary`; success if already Secondary.
    pub async fn stop(&self) -> Result<(), AgentError> {
        let out = self.drbdadm(Op::Stop).await?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed(Op::Stop, Some(out)))
        }
    }

    /// `drbdadm role`: running when the local role (before the `/`) is Primary on every line.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        let out = self.drbdadm(Op::Status).await?;
        if !out.status.success() {
            return Ok(RunState::Stopped);
        }
        Ok(judge_role(&out.stdout))
    }

    fn failed(&self, op: Op, out: Option<Output>) -> AgentError {
        match out {
            Some(out) => AgentError::Failed {
                resource: self.name.clone(),
                op,
                status: out.status,
                stderr_tail: process::stderr_tail(&out.stderr),
            },
            None => AgentError::System {
                resource: self.name.clone(),
                op,
                reason: "drbdadm was not run".into(),
            },
        }
    }

    async fn drbdadm(&self, op: Op) -> Result<Output, AgentError> {
        process::run(
            &self.drbdadm,
            &self.command(op),
            &[],
            self.timeouts.for_op(op),
        )
        .await
        .map_err(|e| AgentError::from_run(&self.name, op, e))
    }
}

/// `Primary/Secondary` (DRBD 8) or `Primary` (DRBD 9), one line per resource.
fn judge_role(stdout: &str) -> RunState {
    let mut lines = stdout.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut any = false;
    let all_primary = lines.all(|l| {
        any = true;
        l.split('/').next() == Some("Primary")
    });
    if any && all_primary {
        RunState::Running
    } else {
        RunState::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_and_commands() {
        let t = OpTimeouts::default();
        let d =
            DrbdResource::with_drbdadm("drbddisk::r0", &args(&["r0"]), "/x".into(), t).expect("r0");
        assert_eq!(d.command(Op::Start), ["primary", "r0"]);
        assert_eq!(d.command(Op::Stop), ["secondary", "r0"]);
        assert_eq!(d.command(Op::Status), ["role", "r0"]);
        let all = DrbdResource::with_drbdadm("drbddisk", &[], "/x".into(), t).expect("all");
        assert_eq!(all.drbd_resource(), "all");
        for bad in [&["-c"][..], &["a b"], &["r0", "r1"], &[""]] {
            assert!(
                DrbdResource::with_drbdadm("x", &args(bad), "/x".into(), t).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn role_output() {
        assert_eq!(judge_role("Primary/Secondary\n"), RunState::Running);
        assert_eq!(judge_role("Primary\n"), RunState::Running);
        assert_eq!(judge_role("Secondary/Primary\n"), RunState::Stopped);
        assert_eq!(judge_role("Primary\nSecondary\n"), RunState::Stopped);
        assert_eq!(judge_role(""), RunState::Stopped);
    }

    /// Without DRBD in this kernel, a stand-in drbdadm records the calls and keeps the role.
    #[tokio::test(flavor = "current_thread")]
    async fn start_stop_status_through_a_stand_in_drbdadm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("calls");
        let role = dir.path().join("role");
        let fails = dir.path().join("fails");
        std::fs::write(&role, "Secondary/Secondary\n").expect("role");
        std::fs::write(&fails, "2").expect("fails");
        let fake = dir.path().join("drbdadm");
        std::fs::write(
            &fake,
            format!(
                r#"#!/bin/sh
echo "$*" >> {log}
case "$1" in
  primary) n=$(cat {fails}); if [ "$n" -gt 0 ]; then echo $((n-1)) > {fails}; echo "busy" >&2; exit 11; fi
           echo Primary/Secondary > {role};;
  secondary) echo Secondary/Primary > {role};;
  role) cat {role};;
esac
"#,
                log = log.display(),
                role = role.display(),
                fails = fails.display()
            ),
        )
        .expect("write");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut d =
            DrbdResource::with_drbdadm("drbddisk::r0", &args(&["r0"]), fake, OpTimeouts::default())
                .expect("valid");
        d.pause = Duration::from_millis(10);
        assert_eq!(d.status().await.expect("status"), RunState::Stopped);
        d.start().await.expect("promoted on the third try");
        assert_eq!(d.status().await.expect("status"), RunState::Running);
        d.stop().await.expect("demoted");
        assert_eq!(d.status().await.expect("status"), RunState::Stopped);
        let calls = std::fs::read_to_string(&log).expect("log");
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            [
                "role r0",
                "primary r0",
                "primary r0",
                "primary r0",
                "role r0",
                "secondary r0",
                "role r0"
            ]
        );
        // Promotion refused every time: a clear failure after the attempts.
        std::fs::write(&fails, "100").expect("fails");
        d.attempts = 2;
        let e = d.start().await.expect_err("refused");
        assert!(
            e.to_string().contains("start failed with exit code 11"),
            "{e}"
        );
    }
}
