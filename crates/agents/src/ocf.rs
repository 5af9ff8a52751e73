//! OCF resource agents (`<OCF_ROOT>/resource.d/<provider>/<agent>`), written in haresources as
//! `ocf::provider::agent[::name=value...]` or `ocf:provider:agent[::name=value...]`.
//! Heartbeat R1 had no OCF syntax; this one keeps haresources' `::` separator and passes each
//! `name=value` as `OCF_RESKEY_name=value`, as Pacemaker does with instance attributes.

use std::path::{Path, PathBuf};

use ha_config::agent::OcfPlan;

use crate::process::{self, ExitStatus, Output};
use crate::{AgentError, Op, OpTimeouts, RunState};

/// OCF exit code: success (and "running" for monitor).
const OCF_SUCCESS: i32 = 0;
/// OCF exit code: the resource is cleanly stopped.
const OCF_NOT_RUNNING: i32 = 7;
/// OCF exit code: running in the promoted role (still running).
const OCF_RUNNING_PROMOTED: i32 = 8;

/// An OCF agent bound to its parameters.
#[derive(Debug, Clone)]
pub struct OcfResource {
    name: String,
    provider: String,
    agent: String,
    path: PathBuf,
    root: PathBuf,
    params: Vec<(String, String)>,
    timeouts: OpTimeouts,
}

pub use ha_config::agent::is_ocf;

impl OcfResource {
    /// Parse `ocf::provider::agent::k=v...` (agent `ocf`) or `ocf:provider:agent::k=v...`
    /// and check that the agent exists under `root` and is executable.
    pub fn new(
        name: &str,
        agent_field: &str,
        args: &[String],
        root: &Path,
        timeouts: OpTimeouts,
    ) -> Result<OcfResource, AgentError> {
        Ok(Self::from_plan(OcfPlan::new(
            name,
            agent_field,
            args,
            root,
            timeouts,
        )?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: OcfPlan) -> Self {
        let OcfPlan {
            name,
            provider,
            agent,
            path,
            root,
            params,
            timeouts,
        } = p;
        OcfResource {
            name,
            provider,
            agent,
            path,
            root,
            params,
            timeouts,
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent program.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `OCF_RESOURCE_INSTANCE`: the haresources text with everything but `[A-Za-z0-9_.-]`
    /// replaced by `_` (agents use it in state file names).
    pub fn instance(&self) -> String {
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The environment of one action.
    pub fn environment(&self, op: Op) -> Vec<(String, String)> {
        let mut env = vec![
            ("OCF_ROOT".to_owned(), self.root.display().to_string()),
            ("OCF_RA_VERSION_MAJOR".to_owned(), "1".to_owned()),
            ("OCF_RA_VERSION_MINOR".to_owned(), "0".to_owned()),
            ("OCF_RESOURCE_INSTANCE".to_owned(), self.instance()),
            ("OCF_RESOURCE_TYPE".to_owned(), self.agent.clone()),
            ("OCF_RESOURCE_PROVIDER".to_owned(), self.provider.clone()),
            // Agents size their own waits by the caller's limit (Pacemaker's meta attribute).
            (
                "OCF_RESKEY_CRM_meta_timeout".to_owned(),
                self.timeouts.for_op(op).as_millis().to_string(),
            ),
        ];
        env.extend(
            self.params
                .iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.clone())),
        );
        env
    }

    /// `start`; exit 0 is success (OCF agents must succeed when already running).
    pub async fn start(&self) -> Result<(), AgentError> {
        let out = self.invoke(Op::Start, "start").await?;
        match out.status {
            ExitStatus::Code(OCF_SUCCESS) => Ok(()),
            status => Err(self.failed(Op::Start, status, &out)),
        }
    }

    /// `stop`; exit 0 is success, and so is 7 (not running), as Pacemaker reads it.
    pub async fn stop(&self) -> Result<(), AgentError> {
        let out = self.invoke(Op::Stop, "stop").await?;
        match out.status {
            ExitStatus::Code(OCF_SUCCESS | OCF_NOT_RUNNING) => Ok(()),
            status => Err(self.failed(Op::Stop, status, &out)),
        }
    }

    /// `monitor`: 0 (or 8, promoted) → running, 7 → stopped, anything else is an error
    /// (the resource is in an unknown, failed state).
    pub async fn status(&self) -> Result<RunState, AgentError> {
        let out = self.invoke(Op::Status, "monitor").await?;
        judge_monitor(out.status).ok_or_else(|| self.failed(Op::Status, out.status, &out))
    }

    fn failed(&self, op: Op, status: ExitStatus, out: &Output) -> AgentError {
        AgentError::Failed {
            resource: self.name.clone(),
            op,
            status,
            stderr_tail: process::stderr_tail(&out.stderr),
        }
    }

    async fn invoke(&self, op: Op, action: &str) -> Result<Output, AgentError> {
        tracing::debug!(resource = %self.name, agent = %self.path.display(), action, "running");
        process::run(
            &self.path,
            &[action.to_owned()],
            &self.environment(op),
            self.timeouts.for_op(op),
        )
        .await
        .map_err(|e| AgentError::from_run(&self.name, op, e))
    }
}

/// The run state an OCF `monitor` exit status means, `None` for an error code.
pub fn judge_monitor(status: ExitStatus) -> Option<RunState> {
    match status {
        ExitStatus::Code(OCF_SUCCESS | OCF_RUNNING_PROMOTED) => Some(RunState::Running),
        ExitStatus::Code(OCF_NOT_RUNNING) => Some(RunState::Stopped),
        _ => None,
    }
}

/// The OCF agents called `agent` under `root` (any provider), for a "did you mean" hint.
pub fn find_by_name(root: &Path, agent: &str) -> Vec<PathBuf> {
    ha_config::agent::find_ocf_by_name(root, agent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn fake_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resource.d/acme");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("Thing"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(p.join("Thing"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(p.join("NotExec"), "#!/bin/sh\n").unwrap();
        dir
    }

    #[test]
    fn both_spellings_and_parameters() {
        let root = fake_root();
        let t = OpTimeouts::default();
        let a = OcfResource::new(
            "ocf::acme::Thing::ip=198.18.0.5::cidr_netmask=24",
            "ocf",
            &args(&["acme", "Thing", "ip=198.18.0.5", "cidr_netmask=24"]),
            root.path(),
            t,
        )
        .unwrap();
        let b = OcfResource::new(
            "ocf:acme:Thing::ip=198.18.0.5::cidr_netmask=24",
            "ocf:acme:Thing",
            &args(&["ip=198.18.0.5", "cidr_netmask=24"]),
            root.path(),
            t,
        )
        .unwrap();
        assert_eq!(a.path(), b.path());
        let env = a.environment(Op::Start);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("OCF_RESKEY_ip"), Some("198.18.0.5"));
        assert_eq!(get("OCF_RESKEY_cidr_netmask"), Some("24"));
        assert_eq!(get("OCF_RESOURCE_TYPE"), Some("Thing"));
        assert_eq!(get("OCF_RESOURCE_PROVIDER"), Some("acme"));
        assert_eq!(get("OCF_RESKEY_CRM_meta_timeout"), Some("60000"));
        assert_eq!(
            get("OCF_ROOT"),
            Some(root.path().display().to_string().as_str())
        );
        assert_eq!(
            get("OCF_RESOURCE_INSTANCE"),
            Some("ocf__acme__Thing__ip_198.18.0.5__cidr_netmask_24")
        );
        // A value may contain `=`; only the first one splits.
        let c = OcfResource::new(
            "x",
            "ocf",
            &args(&["acme", "Thing", "opts=a=b"]),
            root.path(),
            t,
        )
        .unwrap();
        assert!(
            c.environment(Op::Stop)
                .contains(&("OCF_RESKEY_opts".into(), "a=b".into()))
        );
    }

    #[test]
    fn bad_forms_are_refused_with_the_syntax() {
        let root = fake_root();
        let t = OpTimeouts::default();
        let err = |agent: &str, a: &[&str]| {
            OcfResource::new("r", agent, &args(a), root.path(), t)
                .unwrap_err()
                .to_string()
        };
        assert!(err("ocf", &["acme"]).contains("missing provider or agent"));
        assert!(err("ocf:acme", &[]).contains("missing provider or agent"));
        assert!(err("ocf", &["acme", "Thing", "novalue"]).contains("name=value, got `novalue`"));
        assert!(err("ocf", &["acme", "Thing", "a-b=1"]).contains("name=value"));
        assert!(err("ocf", &["..", "Thing"]).contains("not an OCF provider"));
        assert!(err("ocf", &["acme", "Missing"]).contains("cannot locate"));
        assert!(err("ocf", &["acme", "NotExec"]).contains("cannot locate"));
        assert!(is_ocf("ocf") && is_ocf("ocf:heartbeat:Dummy") && !is_ocf("ocfs2"));
    }

    #[test]
    fn monitor_codes() {
        assert_eq!(judge_monitor(ExitStatus::Code(0)), Some(RunState::Running));
        assert_eq!(judge_monitor(ExitStatus::Code(8)), Some(RunState::Running));
        assert_eq!(judge_monitor(ExitStatus::Code(7)), Some(RunState::Stopped));
        assert_eq!(judge_monitor(ExitStatus::Code(1)), None);
        assert_eq!(judge_monitor(ExitStatus::Signal(9)), None);
    }

    #[test]
    fn hint_finds_agents_by_name() {
        let root = fake_root();
        let found = find_by_name(root.path(), "Thing");
        assert_eq!(found, vec![root.path().join("resource.d/acme/Thing")]);
        assert!(find_by_name(root.path(), "Other").is_empty());
        assert!(find_by_name(Path::new("/nonexistent-ocf"), "Thing").is_empty());
    }
}
