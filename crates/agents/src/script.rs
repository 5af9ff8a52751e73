//! resource.d scripts and LSB init scripts: `<script> <args...> start|stop|status`.
//! Status is judged from stdout text as Heartbeat does, with LSB exit codes taking precedence.

use std::path::{Path, PathBuf};

use ha_config::agent::ScriptPlan;
use ha_core::logcat::{LogEvent, log};

use crate::process::{self, Output};
use crate::{AgentError, Op, OpTimeouts, RunState};

pub use ha_config::agent::ScriptKind;

/// A resource run through an executable script.
#[derive(Debug, Clone)]
pub struct ScriptResource {
    name: String,
    path: PathBuf,
    args: Vec<String>,
    kind: ScriptKind,
    timeouts: OpTimeouts,
}

impl ScriptResource {
    /// A script resource for an explicit path.
    pub fn new(
        name: &str,
        path: PathBuf,
        args: Vec<String>,
        kind: ScriptKind,
        timeouts: OpTimeouts,
    ) -> ScriptResource {
        ScriptResource {
            name: name.to_owned(),
            path,
            args,
            kind,
            timeouts,
        }
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: ScriptPlan) -> ScriptResource {
        let ScriptPlan {
            name,
            path,
            args,
            kind,
            timeouts,
        } = p;
        ScriptResource::new(&name, path, args, kind, timeouts)
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The script that is run.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How its status is judged.
    pub fn kind(&self) -> ScriptKind {
        self.kind
    }

    /// Start unless status already says running (as Heartbeat skips running resources).
    pub async fn start(&self) -> Result<(), AgentError> {
        if self.status().await? == RunState::Running {
            log(&LogEvent::ScriptRunning {
                resource: &self.name,
            });
            return Ok(());
        }
        self.expect_success(Op::Start).await
    }

    /// Run `start` without the status probe first, for a caller that has just seen the
    /// resource stopped (saves one fork of the script per start).
    pub async fn start_unchecked(&self) -> Result<(), AgentError> {
        self.expect_success(Op::Start).await
    }

    /// Run `stop`; exit 0 is success (LSB scripts return 0 when already stopped).
    pub async fn stop(&self) -> Result<(), AgentError> {
        self.expect_success(Op::Stop).await
    }

    /// Run `status` and judge it; see [`judge_status`].
    pub async fn status(&self) -> Result<RunState, AgentError> {
        let out = self.invoke(Op::Status).await?;
        Ok(judge_status(self.kind, &out))
    }

    async fn expect_success(&self, op: Op) -> Result<(), AgentError> {
        let out = self.invoke(op).await?;
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

    async fn invoke(&self, op: Op) -> Result<Output, AgentError> {
        let mut args = self.args.clone();
        args.push(op.as_str().to_owned());
        let timeout = self.timeouts.for_op(op);
        tracing::debug!(resource = %self.name, script = %self.path.display(), %op, "running");
        process::run(&self.path, &args, &[], timeout)
            .await
            .map_err(|e| AgentError::from_run(&self.name, op, e))
    }
}

/// Judge a status run: for LSB scripts exit 0 → running and 3 → stopped whatever the text;
/// otherwise (and for other exit codes) the stdout text decides, see [`judge_status_text`].
pub fn judge_status(kind: ScriptKind, out: &Output) -> RunState {
    if kind == ScriptKind::Lsb {
        match out.status.code() {
            Some(0) => return RunState::Running,
            Some(3) => return RunState::Stopped,
            _ => {}
        }
    }
    judge_status_text(&out.stdout)
}

/// Heartbeat's text rule, as shell `case` globs over stdout:
/// `*[Nn][Oo][Tt]\ *[Rr]unning*` → stopped; `*[Rr]unning*` or `*OK*` → running; else stopped.
pub fn judge_status_text(stdout: &str) -> RunState {
    let bytes = stdout.as_bytes();
    let running_at = |from: usize| find_running(&bytes[from..]).is_some();
    // "not" (any case) then a space, then "running" anywhere after it.
    let negated = bytes
        .windows(4)
        .enumerate()
        .any(|(i, w)| w[..3].eq_ignore_ascii_case(b"not") && w[3] == b' ' && running_at(i + 4));
    if negated {
        RunState::Stopped
    } else if find_running(bytes).is_some() || stdout.contains("OK") {
        RunState::Running
    } else {
        RunState::Stopped
    }
}

/// Position of `[Rr]unning` in `bytes`.
fn find_running(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(7)
        .position(|w| (w[0] == b'R' || w[0] == b'r') && &w[1..] == b"unning")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ExitStatus;

    #[test]
    fn text_judgement_table() {
        use RunState::{Running, Stopped};
        let table = [
            ("INFO: Running OK", Running),
            ("INFO: Resource is stopped", Stopped),
            ("httpd is running", Running),
            ("Running", Running),
            ("apache2 is not running", Stopped),
            ("NOT running", Stopped),
            ("Not Running", Stopped),
            ("not currently running", Stopped),
            ("notrunning", Running),
            ("is RUNNING", Stopped),
            ("status: OK", Running),
            ("ok", Stopped),
            ("stopped", Stopped),
            ("", Stopped),
            ("running\nbut not yet ready", Running),
            ("not ready\nrunning", Stopped),
            ("cannot stat pidfile; running", Stopped),
        ];
        for (text, want) in table {
            assert_eq!(judge_status_text(text), want, "{text:?}");
        }
    }

    fn out(code: i32, stdout: &str) -> Output {
        Output {
            status: ExitStatus::Code(code),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn lsb_exit_codes_win_over_text() {
        assert_eq!(
            judge_status(ScriptKind::Lsb, &out(0, "")),
            RunState::Running
        );
        assert_eq!(
            judge_status(ScriptKind::Lsb, &out(3, "running")),
            RunState::Stopped
        );
        // Other LSB codes fall back to the text rule.
        assert_eq!(
            judge_status(ScriptKind::Lsb, &out(1, "is running")),
            RunState::Running
        );
        assert_eq!(
            judge_status(ScriptKind::Lsb, &out(4, "")),
            RunState::Stopped
        );
    }

    #[test]
    fn resource_d_ignores_exit_code() {
        assert_eq!(
            judge_status(ScriptKind::ResourceD, &out(0, "")),
            RunState::Stopped
        );
        assert_eq!(
            judge_status(ScriptKind::ResourceD, &out(3, "Running OK")),
            RunState::Running
        );
    }
}
