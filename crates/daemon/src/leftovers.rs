//! The start-up release of what a previous `had` left up (killed with -9, crashed, or its
//! guard killed too): every resource of every group is probed with its agent's status (the
//! addresses through one netlink view), and what `cluster::leftovers::plan` picks is stopped
//! with the normal stop and its retries, before the daemon takes part in the cluster. This is
//! what Keepalived does with its addresses at start and Pacemaker's start-up probes do.

use std::time::Instant;

use crate::logcat::{LogEvent, log};
use ha_agents::{NetBatch, RunState};

use crate::cluster::GroupId;
use crate::cluster::leftovers::{Found, failed_groups, plan};
use crate::groups::Groups;

/// Probe every group and stop what a previous run left up (on the agents' thread). Returns
/// the groups a leftover of which could not be stopped, with the reason: the caller marks
/// them `stop_failed` in the cluster.
pub async fn release(groups: &Groups) -> Vec<(GroupId, String)> {
    let keys = groups.keys.clone();
    let res = groups.resources.clone();
    let view = groups.view.clone();
    let (retries, delay) = (groups.stop_retries, groups.stop_retry_delay);
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Agents never run on the heartbeat thread (it may be realtime).
    crate::agent_rt::spawn(async move {
        let t0 = Instant::now();
        let mut batch = NetBatch::new();
        let mut found = Vec::with_capacity(res.len());
        for group in &res {
            let mut f = Vec::with_capacity(group.len());
            for r in group.iter() {
                f.push(match r.status_in(&mut batch).await {
                    Ok(RunState::Running) => Found::Running,
                    Ok(RunState::Stopped) => Found::Stopped,
                    Err(e) => Found::Unknown(e.to_string()),
                });
            }
            found.push(f);
        }
        let steps = plan(&found);
        if steps.is_empty() {
            log(&LogEvent::LeftoversNone {
                ms: t0.elapsed().as_millis() as u64,
            });
            let _ = tx.send(Vec::new());
            return;
        }
        let mut results = Vec::with_capacity(steps.len());
        for step in &steps {
            let key = keys.get(step.group.0).map(String::as_str).unwrap_or("");
            let Some(r) = res.get(step.group.0).and_then(|g| g.get(step.resource)) else {
                continue;
            };
            log(&LogEvent::LeftoverReleasing {
                group: key,
                resource: r.name(),
                why: &step.why,
            });
            let t = Instant::now();
            let policy = crate::groups::StopPolicy {
                key,
                retries,
                delay,
                retry_line: crate::groups::stop_retry,
            };
            let slot = crate::groups::Slot {
                view: &view,
                group: step.group,
                i: step.resource,
            };
            let out = crate::groups::stop_one(&policy, r, &mut batch, Some(slot)).await;
            if out.is_ok() {
                log(&LogEvent::Stopped {
                    group: key,
                    resource: r.name(),
                    ms: t.elapsed().as_millis() as u64,
                });
            }
            results.push((step, out));
        }
        let failed = failed_groups(results);
        for (g, e) in &failed {
            let key = keys.get(g.0).map(String::as_str).unwrap_or("");
            log(&LogEvent::LeftoverStuck {
                group: key,
                reason: &e.to_string(),
            });
        }
        log(&LogEvent::LeftoversDone {
            found: steps.len(),
            failed: failed.len(),
            ms: t0.elapsed().as_millis() as u64,
        });
        let _ = tx.send(failed.into_iter().collect());
    });
    // The sender is dropped unsent only if the task panicked (a bug; release builds abort):
    // then nothing is known, and every group is treated as possibly left up.
    let n = groups.keys.len();
    rx.await.unwrap_or_else(|_| {
        (0..n)
            .map(|g| (GroupId(g), "the start-up probe did not finish".to_string()))
            .collect()
    })
}
