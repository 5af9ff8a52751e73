//! `apache[::configfile]`: Heartbeat's shipped apache agent semantics. Start and stop through
//! `apache2ctl` (Debian) or `apachectl`, with `-f configfile` when one is given; status from
//! the server's PID file (the config's `PidFile`, else Debian's default) and a live process.

use std::path::{Path, PathBuf};

use ha_config::agent::ApachePlan;

use crate::process::{self, Output};
use crate::{AgentError, Op, OpTimeouts, RunState};

/// Debian's `APACHE_PID_FILE` (/etc/apache2/envvars).
const DEFAULT_PID_FILE: &str = "/run/apache2/apache2.pid";

/// An apache resource.
#[derive(Debug, Clone)]
pub struct ApacheResource {
    name: String,
    config: Option<PathBuf>,
    ctl: PathBuf,
    timeouts: OpTimeouts,
}

impl ApacheResource {
    /// Parse the optional config file argument; find apachectl.
    pub fn new(name: &str, args: &[String], timeouts: OpTimeouts) -> Result<Self, AgentError> {
        Ok(Self::from_plan(ApachePlan::new(name, args, timeouts)?))
    }

    /// As [`ApacheResource::new`] with an explicit control program.
    pub fn with_ctl(
        name: &str,
        args: &[String],
        ctl: PathBuf,
        timeouts: OpTimeouts,
    ) -> Result<Self, AgentError> {
        Ok(Self::from_plan(ApachePlan::with_ctl(
            name, args, ctl, timeouts,
        )?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: ApachePlan) -> Self {
        let ApachePlan {
            name,
            config,
            ctl,
            timeouts,
        } = p;
        Self {
            name,
            config,
            ctl,
            timeouts,
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The control program's arguments and environment for `verb` (`start`/`stop`).
    pub fn command(&self, verb: &str) -> (Vec<String>, Vec<(String, String)>) {
        match &self.config {
            // Debian's apache2ctl passes APACHE_ARGUMENTS on to apache2 after its envvars.
            Some(c) if self.ctl.ends_with("apache2ctl") => (
                vec![verb.to_owned()],
                vec![("APACHE_ARGUMENTS".to_owned(), format!("-f {}", c.display()))],
            ),
            Some(c) => (
                vec![
                    "-f".to_owned(),
                    c.display().to_string(),
                    "-k".to_owned(),
                    verb.to_owned(),
                ],
                Vec::new(),
            ),
            None => (vec![verb.to_owned()], Vec::new()),
        }
    }

    /// The PID file: the config's `PidFile` when set to a plain path, else Debian's default.
    pub fn pid_file(&self) -> PathBuf {
        self.config
            .as_deref()
            .and_then(|c| std::fs::read_to_string(c).ok())
            .and_then(|text| pid_file_in(&text))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PID_FILE))
    }

    /// Start unless running.
    pub async fn start(&self) -> Result<(), AgentError> {
        if self.status().await? == RunState::Running {
            return Ok(());
        }
        let out = self.ctl(Op::Start, "start").await?;
        self.judge(Op::Start, out)?;
        // apachectl returns once the parent forked; wait for the PID file like the agent does.
        let deadline = tokio::time::Instant::now() + self.timeouts.start;
        while tokio::time::Instant::now() < deadline {
            if self.status().await? == RunState::Running {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(AgentError::System {
            resource: self.name.clone(),
            op: Op::Start,
            reason: format!("apache did not write {}", self.pid_file().display()),
        })
    }

    /// Stop if running.
    pub async fn stop(&self) -> Result<(), AgentError> {
        if self.status().await? == RunState::Stopped {
            return Ok(());
        }
        let out = self.ctl(Op::Stop, "stop").await?;
        self.judge(Op::Stop, out)?;
        let deadline = tokio::time::Instant::now() + self.timeouts.stop;
        while tokio::time::Instant::now() < deadline {
            if self.status().await? == RunState::Stopped {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(AgentError::System {
            resource: self.name.clone(),
            op: Op::Stop,
            reason: "apache still runs after stop".into(),
        })
    }

    /// Running when the PID file names a live apache process.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        Ok(if pid_alive(&self.pid_file()) {
            RunState::Running
        } else {
            RunState::Stopped
        })
    }

    fn judge(&self, op: Op, out: Output) -> Result<(), AgentError> {
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

    async fn ctl(&self, op: Op, verb: &str) -> Result<Output, AgentError> {
        let (args, env) = self.command(verb);
        process::run(&self.ctl, &args, &env, self.timeouts.for_op(op))
            .await
            .map_err(|e| AgentError::from_run(&self.name, op, e))
    }
}

/// `PidFile /path` from an apache config (quoted or not); `None` for variables or none.
fn pid_file_in(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        if !w.next()?.eq_ignore_ascii_case("PidFile") {
            return None;
        }
        let p = w.next()?.trim_matches('"');
        (p.starts_with('/') && !p.contains('$')).then(|| PathBuf::from(p))
    })
}

/// The PID in `file` is a live process whose name looks like apache (`apache2`, `httpd`).
fn pid_alive(file: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| matches!(c.trim(), "apache2" | "httpd" | "apache"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_and_commands() {
        let t = OpTimeouts::default();
        let deb = ApacheResource::with_ctl(
            "apache::/etc/apache2/apache2.conf",
            &args(&["/etc/apache2/apache2.conf"]),
            "/usr/sbin/apache2ctl".into(),
            t,
        )
        .expect("valid");
        let (a, e) = deb.command("start");
        assert_eq!(a, ["start"]);
        assert_eq!(
            e,
            [(
                "APACHE_ARGUMENTS".to_string(),
                "-f /etc/apache2/apache2.conf".to_string()
            )]
        );
        let other = ApacheResource::with_ctl(
            "apache::/etc/httpd/httpd.conf",
            &args(&["/etc/httpd/httpd.conf"]),
            "/usr/sbin/apachectl".into(),
            t,
        )
        .expect("valid");
        assert_eq!(
            other.command("stop").0,
            ["-f", "/etc/httpd/httpd.conf", "-k", "stop"]
        );
        let bare = ApacheResource::with_ctl("apache", &[], "/usr/sbin/apache2ctl".into(), t)
            .expect("valid");
        assert_eq!(bare.command("stop"), (args(&["stop"]), Vec::new()));
        assert_eq!(bare.pid_file(), PathBuf::from(DEFAULT_PID_FILE));
        assert!(ApacheResource::with_ctl("x", &args(&["httpd.conf"]), "/x".into(), t).is_err());
        assert!(ApacheResource::with_ctl("x", &args(&["/a", "/b"]), "/x".into(), t).is_err());
    }

    #[test]
    fn pid_file_directive() {
        assert_eq!(
            pid_file_in("ServerRoot /etc\n  PidFile \"/run/httpd.pid\"\n"),
            Some(PathBuf::from("/run/httpd.pid"))
        );
        assert_eq!(pid_file_in("PidFile ${APACHE_PID_FILE}\n"), None);
        assert_eq!(pid_file_in("# nothing\n"), None);
    }

    #[test]
    fn status_needs_a_live_apache_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pid");
        std::fs::write(&f, format!("{}\n", std::process::id())).expect("write");
        // This test process is alive but not apache.
        assert!(!pid_alive(&f));
        assert!(!pid_alive(&dir.path().join("missing")));
    }
}
