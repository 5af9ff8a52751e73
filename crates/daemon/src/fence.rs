//! Runs had.toml's `[fence]` command against a dead peer (one attempt per
//! `Action::Fence`; the cluster decides about retries). The peer's name is the command's
//! last argument and `HA_PEER`; exit 0 means the peer is fenced (powered off, cut from
//! the shared storage). The attempt runs in its own task; the loop gets the result.

use crate::logcat::{Dur, LogEvent, log};
use ha_config::FenceSettings;
use tokio::sync::mpsc;

/// The result of one attempt: fenced or not, and what the command said.
#[derive(Debug)]
pub struct FenceResult {
    pub ok: bool,
    pub detail: String,
}

/// Start one fencing attempt; its result comes back on `tx`.
pub fn spawn(
    cfg: Option<&FenceSettings>,
    node: &str,
    peer: &str,
    tx: mpsc::UnboundedSender<FenceResult>,
) {
    let Some(cfg) = cfg.cloned() else {
        // The cluster only asks when fencing is configured; answer rather than hang.
        let _ = tx.send(FenceResult {
            ok: false,
            detail: "no [fence] command configured".into(),
        });
        return;
    };
    let env = vec![
        ("HA_PEER".to_string(), peer.to_string()),
        ("HA_NODE".to_string(), node.to_string()),
    ];
    let peer = peer.to_string();
    log(&LogEvent::Fencing {
        node: &peer,
        program: &cfg.command.program.display().to_string(),
    });
    tokio::spawn(async move {
        let mut args = cfg.command.args.clone();
        args.push(peer.clone());
        let r = ha_agents::process::run(&cfg.command.program, &args, &env, cfg.timeout).await;
        let res = match r {
            Ok(out) if out.status.success() => {
                log(&LogEvent::Fenced { node: &peer });
                FenceResult {
                    ok: true,
                    detail: String::new(),
                }
            }
            Ok(out) => {
                let detail = format!(
                    "exited {:?}: {}",
                    out.status,
                    ha_agents::process::stderr_tail(&out.stderr)
                );
                log(&LogEvent::FenceFailed {
                    node: &peer,
                    reason: &detail,
                    retry: Dur(cfg.retry),
                });
                FenceResult { ok: false, detail }
            }
            Err(e) => {
                log(&LogEvent::FenceFailed {
                    node: &peer,
                    reason: &e.to_string(),
                    retry: Dur(cfg.retry),
                });
                FenceResult {
                    ok: false,
                    detail: e.to_string(),
                }
            }
        };
        let _ = tx.send(res);
    });
}
