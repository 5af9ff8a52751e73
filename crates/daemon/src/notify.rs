//! Runs had.toml's `[notify]` hooks (Keepalived's notify_master/backup/fault, per group):
//! each in its own task through `ha_agents::process::run`, bounded by the configured
//! timeout, so a slow hook never holds up the daemon loop or the next failover.
//!
//! Environment: `HA_GROUP` (the group key), `HA_STATE` (`active`, `standby`, `fault`),
//! `HA_REASON`, `HA_NODE` (this node), `HA_PEER`, `HA_RESOURCES` (the group's resources,
//! space-separated). The state-specific hook runs first, then `command`.

use crate::logcat::{LogEvent, log};
use ha_config::{CommandLine, NotifySettings};

use crate::cluster::NotifyState;

/// What one notification is about.
#[derive(Clone, Debug)]
pub struct Event {
    pub group: String,
    pub resources: Vec<String>,
    pub state: NotifyState,
    pub reason: String,
    pub node: String,
    pub peer: String,
}

impl Event {
    /// The hook's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HA_GROUP".into(), self.group.clone()),
            ("HA_STATE".into(), self.state.as_str().into()),
            // May quote a peer's or a program's words: no control character reaches a hook.
            ("HA_REASON".into(), ha_logsafe::escape(&self.reason, 256)),
            ("HA_NODE".into(), self.node.clone()),
            ("HA_PEER".into(), self.peer.clone()),
            ("HA_RESOURCES".into(), self.resources.join(" ")),
        ]
    }
}

/// The hooks that run for `state`, in order.
pub fn hooks_for(cfg: &NotifySettings, state: NotifyState) -> Vec<CommandLine> {
    let specific = match state {
        NotifyState::Active => &cfg.active,
        NotifyState::Standby => &cfg.standby,
        NotifyState::Fault => &cfg.fault,
    };
    specific.iter().chain(cfg.command.iter()).cloned().collect()
}

/// Start the hooks for `ev` in the background.
pub fn spawn(cfg: &NotifySettings, ev: Event) {
    let hooks = hooks_for(cfg, ev.state);
    if hooks.is_empty() {
        return;
    }
    let timeout = cfg.timeout;
    tokio::spawn(async move {
        let env = ev.env();
        for h in hooks {
            let name = h.program.display().to_string();
            match ha_agents::process::run(&h.program, &h.args, &env, timeout).await {
                Ok(out) if out.status.success() => log(&LogEvent::NotifyDone {
                    group: &ev.group,
                    name: &name,
                    state: ev.state.as_str(),
                }),
                Ok(out) => log(&LogEvent::NotifyExited {
                    group: &ev.group,
                    name: &name,
                    state: ev.state.as_str(),
                    status: &format!("{:?}", out.status),
                    output: &ha_agents::process::stderr_tail(&out.stderr),
                }),
                Err(e) => log(&LogEvent::NotifyFailed {
                    group: &ev.group,
                    name: &name,
                    state: ev.state.as_str(),
                    reason: &e.to_string(),
                }),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cl(p: &str) -> CommandLine {
        CommandLine {
            program: PathBuf::from(p),
            args: vec![],
        }
    }

    #[test]
    fn specific_hook_then_the_general_one() {
        let cfg = NotifySettings {
            command: Some(cl("/all")),
            fault: Some(cl("/fault")),
            ..Default::default()
        };
        let names = |s| {
            hooks_for(&cfg, s)
                .into_iter()
                .map(|c| c.program)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(NotifyState::Fault),
            vec![PathBuf::from("/fault"), PathBuf::from("/all")]
        );
        assert_eq!(names(NotifyState::Active), vec![PathBuf::from("/all")]);
    }

    #[tokio::test]
    async fn a_hook_sees_group_state_and_reason() {
        ha_agents::process::init_reaper().expect("reaper");
        let out = std::env::temp_dir().join(format!("had-notify-test-{}", std::process::id()));
        let ev = Event {
            group: "IPaddr::198.18.0.100".into(),
            resources: vec!["IPaddr::198.18.0.100".into(), "web".into()],
            state: NotifyState::Active,
            reason: "node2 is dead".into(),
            node: "node1".into(),
            peer: "node2".into(),
        };
        let args = vec![
            "-c".to_string(),
            format!(
                "printf '%s|%s|%s|%s' \"$HA_GROUP\" \"$HA_STATE\" \"$HA_REASON\" \"$HA_RESOURCES\" > {}",
                out.display()
            ),
        ];
        let res = ha_agents::process::run(
            std::path::Path::new("/bin/sh"),
            &args,
            &ev.env(),
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("runs");
        assert!(res.status.success());
        let got = std::fs::read_to_string(&out).expect("hook wrote");
        let _ = std::fs::remove_file(&out);
        assert_eq!(
            got,
            "IPaddr::198.18.0.100|active|node2 is dead|IPaddr::198.18.0.100 web"
        );
    }
}
