//! Reload (SIGHUP, `hactl reload`): re-read the configuration directory and apply what can
//! change while running, or refuse the whole new configuration with the reason and keep the
//! running one.
//!
//! Applied: authkeys at once; haresources by group key (new groups added, removed groups
//! stopped and retired, a changed group of a group running here gets just its added
//! resources started and its removed ones stopped, unchanged groups untouched);
//! `auto_failback`; had.toml's `[arp]`. Reported as needing a restart: media, `udpport`,
//! timers, node list, logging, and had.toml monitors.
//!
//! Invariant kept with `daemon.rs`: `config.haresources.groups` is in cluster slot order
//! (see `cluster/reload.rs`), retired groups included, so index `i` there is `GroupId(i)`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ha_agents::{AgentEnv, Resource};
use ha_config::{Config, GroupSpec, NodeName, Target};
use ha_transport::auth::Auth;
use ha_transport::liveness::Liveness;
use tracing::{error, info, warn};

use crate::cluster::{Cluster, GroupId, GroupInfo, GroupState};
use crate::groups::{Groups, ResourceView};

/// The agent environment for a configuration directory, as `had` builds it at start.
pub fn agent_env(config_dir: &Path, config: &Config) -> AgentEnv {
    AgentEnv {
        resource_dirs: vec![
            config_dir.join("resource.d"),
            PathBuf::from("/etc/ha.d/resource.d"),
            PathBuf::from("/etc/init.d"),
        ],
        systemd: ha_agents::detect_systemd(),
        arp: ha_agents::ArpConfig {
            count: config.had.arp.count,
            interval: config.had.arp.interval,
            refresh: config.had.arp.refresh,
        },
        ..AgentEnv::default()
    }
}

/// Everything a reload may change, borrowed from the daemon loop.
pub struct Running<'a> {
    pub cluster: &'a mut Cluster,
    pub live: &'a mut Liveness,
    pub groups: &'a mut Groups,
    pub config: &'a mut Config,
    pub local: &'a NodeName,
    pub peer: &'a NodeName,
}

/// Re-read `config.dir` and apply it. `Ok` carries the summary for hactl and the log;
/// `Err` the reason the new configuration was refused (nothing was changed then).
pub fn reload(now: std::time::Instant, r: Running<'_>) -> Result<String, String> {
    if let Some(why) = r.cluster.reload_blocker() {
        return Err(format!("reload refused: {why}"));
    }
    let dir = r.config.dir.clone();
    // The checks `had` makes at start: a reload must not take what a start would refuse.
    let dirs = crate::validate::Dirs::default();
    let checked =
        crate::validate::validate(&dir, &Target::here(r.local.clone()), &dirs).map_err(|d| {
            format!(
                "reload refused, the running configuration stays: {} is invalid:\n{d}",
                dir.display()
            )
        })?;
    if checked.peer.as_ref() != Some(r.peer) {
        return Err(format!(
            "reload refused: the peer must stay {} (ha.cf now names {}); changing nodes needs a restart",
            r.peer,
            checked
                .config
                .ha_cf
                .nodes
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Unchanged resources keep their running objects; the rest are the ones just built.
    let mut built: Vec<Vec<Arc<Resource>>> = Vec::new();
    for (g, fresh) in checked
        .config
        .haresources
        .groups
        .iter()
        .zip(checked.resources)
    {
        let rs = g
            .resources
            .iter()
            .zip(fresh)
            .map(|(spec, res)| {
                reuse(r.groups, r.config, g.key(), &spec.raw).unwrap_or_else(|| Arc::new(res))
            })
            .collect();
        built.push(rs);
    }
    let new = checked.config;

    let mut notes = Vec::new();
    let restart = needs_restart(r.config, &new);
    if r.config.authkeys != new.authkeys {
        r.live.set_auth(Auth::new(&new.authkeys));
        notes.push("authkeys applied".to_string());
    }
    let infos: Vec<GroupInfo> = new
        .haresources
        .groups
        .iter()
        .map(|g| GroupInfo {
            key: g.key().to_string(),
            preferred_local: g.node == *r.local,
        })
        .collect();
    let old_specs = r.config.haresources.groups.clone();
    let remap = r.cluster.reconfigure(now, &infos, new.ha_cf.auto_failback);

    // Slot-ordered specs: the old ones stay for retired slots (status shows nothing of
    // them, the stop of a running one still needs its resources).
    let mut specs: Vec<GroupSpec> = old_specs.clone();
    for (i, (slot, rs)) in remap.slots.iter().zip(built).enumerate() {
        let spec = new.haresources.groups[i].clone();
        if remap.added.contains(slot) {
            r.groups.keys.push(spec.key().to_string());
            push_view(r.groups, rs.len());
            r.groups.resources.push(rs);
            specs.push(spec);
            notes.push(format!("group {} added", specs[slot.0].key()));
            continue;
        }
        let old_raw: Vec<&str> = old_specs[slot.0]
            .resources
            .iter()
            .map(|s| s.raw.as_str())
            .collect();
        let new_raw: Vec<&str> = spec.resources.iter().map(|s| s.raw.as_str()).collect();
        if old_raw != new_raw {
            let running = r.cluster.group_states().get(slot.0) == Some(&GroupState::Running);
            let old_rs = r.groups.resources[slot.0].clone();
            let added: Vec<Arc<Resource>> = rs
                .iter()
                .filter(|n| !old_rs.iter().any(|o| Arc::ptr_eq(o, n)))
                .cloned()
                .collect();
            let removed: Vec<Arc<Resource>> = old_rs
                .iter()
                .filter(|o| !rs.iter().any(|n| Arc::ptr_eq(o, n)))
                .cloned()
                .collect();
            notes.push(format!(
                "group {}: {} resource(s) added, {} removed{}",
                spec.key(),
                added.len(),
                removed.len(),
                if running { " (applied here now)" } else { "" }
            ));
            rebuild_view(r.groups, slot.0, &old_rs, &rs);
            r.groups.resources[slot.0] = rs;
            if running {
                spawn_delta(spec.key().to_string(), slot.0, added, removed, r.groups);
            }
        } else if old_specs[slot.0].node != spec.node {
            notes.push(format!(
                "group {}: preferred node now {}",
                spec.key(),
                spec.node
            ));
        }
        specs[slot.0] = spec;
    }
    for g in &remap.retired {
        notes.push(format!(
            "group {} removed{}",
            specs[g.0].key(),
            if r.cluster.group_states()[g.0].is_held() {
                " (stopping here)"
            } else {
                ""
            }
        ));
    }
    if r.config.ha_cf.auto_failback != new.ha_cf.auto_failback {
        notes.push(format!("auto_failback now {:?}", new.ha_cf.auto_failback));
    }
    if r.config.had.arp != new.had.arp {
        notes.push("[arp] applied to new resources".into());
    }
    if r.config.had.group != new.had.group {
        r.groups.configure(&new.had.group);
        r.cluster.set_failback_delay(new.had.group.failback_delay);
        notes.push("[group] applied".into());
    }
    if r.config.had.priority != new.had.priority {
        r.cluster
            .set_priority(new.had.priority_of(r.cluster.local_name()));
        notes.push("[priority] applied".into());
    }
    for w in &new.warnings {
        warn!("{w}");
    }
    let keep_monitors = r.config.had.monitors.clone();
    let mut applied = new;
    applied.haresources.groups = specs;
    if applied.had.monitors != keep_monitors {
        notes.push("had.toml monitors changed: restart had to apply them".into());
        applied.had.monitors = keep_monitors;
    }
    if !restart.is_empty() {
        notes.push(format!(
            "not applied until a restart: {}",
            restart.join(", ")
        ));
        // Keep reporting what actually runs.
        let running = r.config.ha_cf.clone();
        let af = applied.ha_cf.auto_failback;
        applied.ha_cf = running;
        applied.ha_cf.auto_failback = af;
    }
    if r.config.had.fence != applied.had.fence {
        r.cluster
            .set_fencing(applied.had.fence.as_ref().map(|f| f.retry));
        notes.push("[fence] applied".into());
    }
    if r.config.had.notify != applied.had.notify {
        notes.push("[notify] applied".into());
    }
    *r.config = applied;
    if notes.is_empty() {
        notes.push("no change".into());
    }
    Ok(format!("reload: {}", notes.join("; ")))
}

/// The running resource object for `raw` in the group keyed `key`, so an unchanged
/// resource keeps its identity (and an IP its ARP burst state) across the reload.
fn reuse(groups: &Groups, config: &Config, key: &str, raw: &str) -> Option<Arc<Resource>> {
    let slot = config
        .haresources
        .groups
        .iter()
        .position(|g| g.key() == key)?;
    let j = config.haresources.groups[slot]
        .resources
        .iter()
        .position(|s| s.raw == raw)?;
    groups.resources.get(slot)?.get(j).cloned()
}

/// ha.cf changes a running daemon cannot take.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.ha_cf, &new.ha_cf);
    let mut out = Vec::new();
    if a.media != b.media || a.udpport != b.udpport || a.baud != b.baud {
        out.push("heartbeat media");
    }
    if a.keepalive != b.keepalive
        || a.deadtime != b.deadtime
        || a.warntime != b.warntime
        || a.initdead != b.initdead
    {
        out.push("timers");
    }
    if a.nodes != b.nodes {
        out.push("node list");
    }
    if a.ping != b.ping || a.deadping != b.deadping {
        out.push("ping nodes");
    }
    if a.logfile != b.logfile || a.debugfile != b.debugfile || a.logfacility != b.logfacility {
        out.push("logging");
    }
    out
}

fn push_view(groups: &Groups, n: usize) {
    if let Ok(mut v) = groups.view.lock() {
        v.push(
            (0..n)
                .map(|_| ResourceView {
                    state: "stopped",
                    last_error: None,
                })
                .collect(),
        );
    }
}

fn rebuild_view(groups: &Groups, slot: usize, old: &[Arc<Resource>], new: &[Arc<Resource>]) {
    if let Ok(mut v) = groups.view.lock()
        && let Some(row) = v.get_mut(slot)
    {
        let fresh = new
            .iter()
            .map(|n| {
                old.iter()
                    .position(|o| Arc::ptr_eq(o, n))
                    .and_then(|j| row.get(j).cloned())
                    .unwrap_or(ResourceView {
                        state: "stopped",
                        last_error: None,
                    })
            })
            .collect();
        *row = fresh;
    }
}

/// Bring a running group to its new resource list: stop what left (right to left), start
/// what is new (left to right). Failures are logged and shown in the status view; the
/// group's monitors (if any) decide about failing over, as for any other fault.
fn spawn_delta(
    key: String,
    slot: usize,
    added: Vec<Arc<Resource>>,
    removed: Vec<Arc<Resource>>,
    groups: &Groups,
) {
    let view = groups.view.clone();
    let all = groups.resources.get(slot).cloned().unwrap_or_default();
    // Agent work, on the agents' thread; one view of the network for the whole delta.
    crate::agent_rt::spawn(async move {
        let mut batch = ha_agents::NetBatch::new();
        for r in removed.iter().rev() {
            match r.stop_in(&mut batch).await {
                Ok(()) => info!(group = %key, resource = r.name(), "reload: stopped {}", r.name()),
                Err(e) => {
                    error!(group = %key, resource = r.name(), "reload: stop of {} failed: {e}", r.name())
                }
            }
        }
        for r in &added {
            let idx = all.iter().position(|a| Arc::ptr_eq(a, r));
            let (state, err) = match r.start_in(&mut batch).await {
                Ok(()) => {
                    info!(group = %key, resource = r.name(), "reload: started {}", r.name());
                    ("running", None)
                }
                Err(e) => {
                    error!(group = %key, resource = r.name(), "reload: start of {} failed: {e}", r.name());
                    ("failed", Some(e.to_string()))
                }
            };
            if let (Some(i), Ok(mut v)) = (idx, view.lock())
                && let Some(slot) = v.get_mut(slot).and_then(|row| row.get_mut(i))
            {
                slot.state = state;
                slot.last_error = err;
            }
        }
    });
}

/// Slot `g` of the status view is a live group (not retired by a reload).
pub fn shown(cluster: &Cluster, g: usize) -> bool {
    !cluster.is_retired(GroupId(g))
}
