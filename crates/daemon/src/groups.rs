//! Runs group operations on the resource agents: start left to right with rollback,
//! stop right to left with retries. Each operation reports back as one outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logcat::{LogEvent, log};
use ha_agents::{NetBatch, Resource, RunState};
use ha_config::GroupSettings;

use crate::cluster::{GroupId, Op, OpOutcome};

/// Last known state of each resource, for the status view: one per resource for the
/// daemon's life, so a byte for the state and the error boxed (24 bytes, not 40).
#[derive(Clone, Debug, Default)]
pub struct ResourceView {
    state: u8,
    last_error: Option<Box<str>>,
}

/// The states a resource's row shows, by `ResourceView::state`.
const VIEW_STATES: [&str; 6] = [
    "stopped",
    "starting",
    "running",
    "failed",
    "stopping",
    "stop_failed",
];

impl ResourceView {
    /// A row saying `stopped`, without error.
    pub fn stopped() -> Self {
        Self::default()
    }

    /// What the row says.
    pub fn state(&self) -> &'static str {
        VIEW_STATES
            .get(usize::from(self.state))
            .copied()
            .unwrap_or("stopped")
    }

    /// The last error the row shows.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn set_state(&mut self, state: &'static str) {
        // Only the states of the table are ever set (`set_view`'s callers, all literals).
        if let Some(i) = VIEW_STATES.iter().position(|s| *s == state) {
            self.state = i as u8;
        }
    }
}

/// The resources of every group plus their last known state.
pub struct Groups {
    pub keys: Vec<String>,
    pub resources: Vec<Arc<[Resource]>>,
    pub view: Arc<Mutex<Vec<Vec<ResourceView>>>>,
    /// Each changed group's resource list before the last reload: `Action::StopResources`
    /// names positions in it.
    pub before_reload: HashMap<usize, Arc<[Resource]>>,
    pub stop_retries: u32,
    pub stop_retry_delay: Duration,
}

/// The group's resources in one shared allocation of their own size, read by the
/// operations, the monitors and the guard's record alike: one `Arc` per resource would cost
/// an allocation (and a pointer in each of those lists) per address for the daemon's life
/// (issue 14: idle RSS flat from 1 to 1,000 addresses).
pub(crate) fn shared(group: Vec<Resource>) -> Arc<[Resource]> {
    Arc::from(group)
}

/// The result of one group operation: the core's input, and how long it took.
#[derive(Debug)]
pub struct Outcome {
    pub done: OpOutcome,
    pub elapsed: Duration,
}

impl Outcome {
    /// `op` on `group` ended with `result` (the reason as text when it failed), `t0` its start.
    fn of(group: GroupId, op: Op, result: Result<(), String>, t0: Instant) -> Self {
        let (ok, detail) = match result {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e),
        };
        Outcome {
            done: OpOutcome {
                group,
                op,
                ok,
                detail,
            },
            elapsed: t0.elapsed(),
        }
    }
}

impl Groups {
    /// Wrap built resources; all start as `stopped` until checked.
    pub fn new(keys: Vec<String>, resources: Vec<Vec<Resource>>) -> Self {
        let view = resources
            .iter()
            .map(|g| g.iter().map(|_| ResourceView::stopped()).collect())
            .collect();
        Self {
            keys,
            resources: resources.into_iter().map(shared).collect(),
            view: Arc::new(Mutex::new(view)),
            before_reload: HashMap::new(),
            stop_retries: 3,
            stop_retry_delay: Duration::from_secs(1),
        }
    }

    /// Apply had.toml's `[group]` (stop retries and their pause) to later operations.
    pub fn configure(&mut self, settings: &GroupSettings) {
        self.stop_retries = settings.stop_retries;
        self.stop_retry_delay = settings.stop_retry_delay;
    }

    /// Spawn the operation; its outcome is sent on `tx`.
    pub fn spawn(&self, group: GroupId, op: Op, tx: tokio::sync::mpsc::UnboundedSender<Outcome>) {
        let Some(res) = self.resources.get(group.0).cloned() else {
            return;
        };
        let key = self.keys.get(group.0).cloned().unwrap_or_default();
        let view = self.view.clone();
        let retries = self.stop_retries;
        let delay = self.stop_retry_delay;
        // On the agents' thread: this work must never hold the heartbeat loop.
        crate::agent_rt::spawn(async move {
            let t0 = Instant::now();
            let result = match op {
                Op::Start => start_group(&key, group, &res, &view).await,
                Op::Stop => stop_group(&key, group, &res, &view, retries, delay).await,
                Op::Restart => restart_group(&key, group, 0, &res, &view, retries, delay).await,
                // Carried by their own actions (`spawn_reload_*`): never spawned bare.
                Op::ReloadStop | Op::ReloadStart => Err(format!("{op:?} without its resources")),
            };
            let _ = tx.send(Outcome::of(group, op, result, t0));
        });
    }
}

impl Groups {
    /// Spawn a restart in place of the group's resources from index `from` rightwards.
    pub fn spawn_restart(
        &self,
        group: GroupId,
        from: usize,
        tx: tokio::sync::mpsc::UnboundedSender<Outcome>,
    ) {
        let Some(res) = self.resources.get(group.0).cloned() else {
            return;
        };
        let key = self.keys.get(group.0).cloned().unwrap_or_default();
        let view = self.view.clone();
        let (retries, delay) = (self.stop_retries, self.stop_retry_delay);
        // On the agents' thread: this work must never hold the heartbeat loop.
        crate::agent_rt::spawn(async move {
            let t0 = Instant::now();
            let result = restart_group(&key, group, from, &res, &view, retries, delay).await;
            let _ = tx.send(Outcome::of(group, Op::Restart, result, t0));
        });
    }
}

impl Groups {
    /// Stop the resources at `positions` (in that order) of the group's list before the
    /// last reload; the outcome is `Op::ReloadStop`. They left the group: no status row.
    pub fn spawn_reload_stop(
        &self,
        group: GroupId,
        positions: &[usize],
        tx: tokio::sync::mpsc::UnboundedSender<Outcome>,
    ) {
        let before = self.before_reload.get(&group.0);
        let res: Vec<Resource> = positions
            .iter()
            .filter_map(|&i| before.and_then(|b| b.get(i)).cloned())
            .collect();
        let missing = res.len() != positions.len();
        let key = self.keys.get(group.0).cloned().unwrap_or_default();
        let (retries, delay) = (self.stop_retries, self.stop_retry_delay);
        crate::agent_rt::spawn(async move {
            let t0 = Instant::now();
            let result = if missing {
                // The cluster and this list disagree: say so rather than guess what runs.
                Err("reload: resources to stop not found".to_string())
            } else {
                stop_listed(&key, &res, retries, delay).await
            };
            let _ = tx.send(Outcome::of(group, Op::ReloadStop, result, t0));
        });
    }

    /// Start the resources at `positions` (left to right) of the group's current list; a
    /// failure rolls the whole group back, right to left. The outcome is `Op::ReloadStart`.
    pub fn spawn_reload_start(
        &self,
        group: GroupId,
        positions: &[usize],
        tx: tokio::sync::mpsc::UnboundedSender<Outcome>,
    ) {
        let res = self.resources.get(group.0).cloned().unwrap_or_default();
        let key = self.keys.get(group.0).cloned().unwrap_or_default();
        let view = self.view.clone();
        let positions = positions.to_vec();
        crate::agent_rt::spawn(async move {
            let t0 = Instant::now();
            let result = start_listed(&key, group, &res, &positions, &view).await;
            let _ = tx.send(Outcome::of(group, Op::ReloadStart, result, t0));
        });
    }
}

/// Stop `res` in the order given, retrying each failed stop; every one is tried even after
/// one fails. They left their group: no status row to update.
async fn stop_listed(
    key: &str,
    res: &[Resource],
    retries: u32,
    delay: Duration,
) -> Result<(), String> {
    let policy = StopPolicy {
        key,
        retries,
        delay,
        retry_line: reload_stop_retry,
    };
    let mut failed = None;
    let mut batch = NetBatch::new();
    for r in res {
        match stop_one(&policy, r, &mut batch, None).await {
            Ok(()) => log(&LogEvent::ReloadStopped {
                group: key,
                resource: r.name(),
            }),
            Err(e) => failed = Some(e),
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Start `res[i]` for each `i` of `positions`, left to right, skipping what runs; on failure
/// roll the whole group back right to left (it ran whole before: everything may be up).
async fn start_listed(
    key: &str,
    g: GroupId,
    res: &[Resource],
    positions: &[usize],
    view: &Mutex<Vec<Vec<ResourceView>>>,
) -> Result<(), String> {
    let mut batch = NetBatch::new();
    for &i in positions {
        let Some(r) = res.get(i) else {
            return Err(format!("reload: no resource at position {i}"));
        };
        if let Ok(RunState::Running) = r.status_in(&mut batch).await {
            log(&LogEvent::AlreadyRunning {
                group: key,
                resource: r.name(),
            });
            set_view(view, g, i, "running", None);
            continue;
        }
        set_view(view, g, i, "starting", None);
        match r.start_in(&mut batch).await {
            Ok(()) => {
                log(&LogEvent::ReloadStarted {
                    group: key,
                    resource: r.name(),
                });
                set_view(view, g, i, "running", None);
            }
            Err(e) => {
                log(&LogEvent::GivingUp {
                    group: key,
                    resource: r.name(),
                    reason: &e.to_string(),
                });
                set_view(view, g, i, "failed", Some(e.to_string()));
                batch.invalidate();
                for (j, r2) in res.iter().enumerate().rev() {
                    if let Err(e2) = r2.stop_in(&mut batch).await {
                        log(&LogEvent::RollbackStopFailed {
                            group: key,
                            resource: r2.name(),
                            reason: &e2.to_string(),
                        });
                    } else if j != i {
                        set_view(view, g, j, "stopped", None);
                    }
                }
                return Err(format!("{} failed to start: {e}", r.name()));
            }
        }
    }
    Ok(())
}

/// Stop `res[from..]` right to left, then start them left to right. A failed stop leaves the
/// group as it is (the cluster then refuses it: something may still run); a failed start
/// rolls back the whole group, as a failed group start does.
async fn restart_group(
    key: &str,
    g: GroupId,
    from: usize,
    res: &[Resource],
    view: &Mutex<Vec<Vec<ResourceView>>>,
    retries: u32,
    delay: Duration,
) -> Result<(), String> {
    let from = from.min(res.len());
    let names: Vec<&str> = res[from..].iter().map(|r| r.name()).collect();
    log(&LogEvent::RestartingInPlace {
        group: key,
        resources: &names.join(" "),
    });
    stop_range(key, g, res, from, view, retries, delay).await?;
    start_group_from(key, g, res, from, view).await
}

fn set_view(
    view: &Mutex<Vec<Vec<ResourceView>>>,
    g: GroupId,
    i: usize,
    state: &'static str,
    err: Option<String>,
) {
    if let Ok(mut v) = view.lock()
        && let Some(slot) = v.get_mut(g.0).and_then(|r| r.get_mut(i))
    {
        slot.set_state(state);
        if err.is_some() || state == "running" {
            slot.last_error = err.map(String::into_boxed_str);
        }
    }
}

async fn start_group(
    key: &str,
    g: GroupId,
    res: &[Resource],
    view: &Mutex<Vec<Vec<ResourceView>>>,
) -> Result<(), String> {
    log(&LogEvent::Acquiring { group: key });
    start_group_from(key, g, res, 0, view).await
}

/// Start `res[from..]` left to right, skipping what runs; on failure roll back the whole
/// group right to left.
async fn start_group_from(
    key: &str,
    g: GroupId,
    res: &[Resource],
    from: usize,
    view: &Mutex<Vec<Vec<ResourceView>>>,
) -> Result<(), String> {
    // One view of the network for the whole operation: N addresses cost one dump, not 2N.
    let mut batch = NetBatch::new();
    for (i, r) in res.iter().enumerate().skip(from) {
        // Heartbeat skips a resource that already runs (an admin may have started it).
        let seen = r.status_in(&mut batch).await;
        if let Ok(RunState::Running) = seen {
            log(&LogEvent::AlreadyRunning {
                group: key,
                resource: r.name(),
            });
            set_view(view, g, i, "running", None);
            continue;
        }
        set_view(view, g, i, "starting", None);
        let t = Instant::now();
        // Stopped just now: the agent need not ask again (a status answer that was an
        // error leaves the agent's own check in place).
        let started = if matches!(seen, Ok(RunState::Stopped)) {
            r.start_stopped_in(&mut batch).await
        } else {
            r.start_in(&mut batch).await
        };
        match started {
            Ok(()) => {
                log(&LogEvent::Started {
                    group: key,
                    resource: r.name(),
                    ms: t.elapsed().as_millis() as u64,
                });
                set_view(view, g, i, "running", None);
            }
            Err(e) => {
                let msg = format!("{} failed to start: {e}", r.name());
                log(&LogEvent::GivingUp {
                    group: key,
                    resource: r.name(),
                    reason: &e.to_string(),
                });
                set_view(view, g, i, "failed", Some(e.to_string()));
                // Roll back what this attempt may have brought up, right to left.
                batch.invalidate();
                for (j, r2) in res.iter().enumerate().take(i + 1).rev() {
                    if let Err(e2) = r2.stop_in(&mut batch).await {
                        log(&LogEvent::RollbackStopFailed {
                            group: key,
                            resource: r2.name(),
                            reason: &e2.to_string(),
                        });
                    } else if j != i {
                        set_view(view, g, j, "stopped", None);
                    }
                }
                return Err(msg);
            }
        }
    }
    Ok(())
}

async fn stop_group(
    key: &str,
    g: GroupId,
    res: &[Resource],
    view: &Mutex<Vec<Vec<ResourceView>>>,
    retries: u32,
    delay: Duration,
) -> Result<(), String> {
    log(&LogEvent::Releasing { group: key });
    stop_range(key, g, res, 0, view, retries, delay).await
}

/// Stop `res[from..]` right to left, retrying each failed stop; every resource is tried even
/// after one fails.
async fn stop_range(
    key: &str,
    g: GroupId,
    res: &[Resource],
    from: usize,
    view: &Mutex<Vec<Vec<ResourceView>>>,
    retries: u32,
    delay: Duration,
) -> Result<(), String> {
    let mut failed = None;
    let mut batch = NetBatch::new();
    for (i, r) in res.iter().enumerate().skip(from).rev() {
        let t = Instant::now();
        let policy = StopPolicy {
            key,
            retries,
            delay,
            retry_line: stop_retry,
        };
        let slot = Slot { view, group: g, i };
        match stop_one(&policy, r, &mut batch, Some(slot)).await {
            Ok(()) => log(&LogEvent::Stopped {
                group: key,
                resource: r.name(),
                ms: t.elapsed().as_millis() as u64,
            }),
            Err(e) => failed = Some(e),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How a stop is retried, and the line a failed attempt that will be retried writes.
pub(crate) struct StopPolicy<'a> {
    /// The group's key, for the lines.
    pub key: &'a str,
    /// Attempts after the first.
    pub retries: u32,
    /// The pause before each retry.
    pub delay: Duration,
    /// `StopRetry`, or `ReloadStopRetry` for a resource a reload removed.
    pub retry_line: RetryLine,
}

/// Builds the line for a failed stop attempt: (group, resource, attempt, reason).
pub(crate) type RetryLine = for<'b> fn(&'b str, &'b str, u32, &'b str) -> LogEvent<'b>;

/// The line of a group's stop that is retried.
pub(crate) fn stop_retry<'b>(
    group: &'b str,
    resource: &'b str,
    attempt: u32,
    reason: &'b str,
) -> LogEvent<'b> {
    LogEvent::StopRetry {
        group,
        resource,
        attempt,
        reason,
    }
}

/// The line of a reload's stop that is retried.
fn reload_stop_retry<'b>(
    group: &'b str,
    resource: &'b str,
    attempt: u32,
    reason: &'b str,
) -> LogEvent<'b> {
    LogEvent::ReloadStopRetry {
        group,
        resource,
        attempt,
        reason,
    }
}

/// A resource's row in the status view.
pub(crate) struct Slot<'a> {
    pub view: &'a Mutex<Vec<Vec<ResourceView>>>,
    pub group: GroupId,
    pub i: usize,
}

impl Slot<'_> {
    fn set(&self, state: &'static str, err: Option<String>) {
        set_view(self.view, self.group, self.i, state, err);
    }
}

/// Stop `r` with the policy's retries; a stop that still fails after them is logged as a
/// STOP failure and marked `stop_failed` in its row (when it has one). Group stops, a
/// reload's removed resources and the start-up release of leftovers (`leftovers.rs`) all
/// stop through here.
pub(crate) async fn stop_one(
    p: &StopPolicy<'_>,
    r: &Resource,
    batch: &mut NetBatch,
    slot: Option<Slot<'_>>,
) -> Result<(), String> {
    if let Some(s) = &slot {
        s.set("stopping", None);
    }
    let mut attempt = 0;
    loop {
        match r.stop_in(batch).await {
            Ok(()) => {
                if let Some(s) = &slot {
                    s.set("stopped", None);
                }
                return Ok(());
            }
            Err(e) if attempt < p.retries => {
                attempt += 1;
                log(&(p.retry_line)(p.key, r.name(), attempt, &e.to_string()));
                tokio::time::sleep(p.delay).await;
                // The retry looks at the network afresh.
                batch.invalidate();
            }
            Err(e) => {
                // Still running after every retry: keep the group marked as held so the
                // peer never starts it on top (documented escalation: admin action).
                log(&LogEvent::StopFailure {
                    group: p.key,
                    resource: r.name(),
                    reason: &e.to_string(),
                });
                if let Some(s) = &slot {
                    s.set("stop_failed", Some(e.to_string()));
                }
                return Err(format!("{} failed to stop: {e}", r.name()));
            }
        }
    }
}
