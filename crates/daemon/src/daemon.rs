//! The daemon loop: owns the IO (sockets, timers, signals, control socket, agent tasks) and
//! feeds the two pure state machines, `Liveness` and `Cluster`. Nothing here decides policy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ha_config::{AutoFailback, Config, NodeName};
use ha_transport::auth::Auth;
use ha_transport::codec::Message;
use ha_transport::liveness::{Liveness, LivenessConfig, LivenessEvent, NodeStatus};
use ha_transport::media::MediaSet;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::cluster::{
    Action, AdminCommand, Cluster, ClusterConfig, ClusterInput, GroupInfo, PeerState,
};
use crate::control::{self, Origin, Request, Response};
use crate::groups::{Groups, Outcome};
use crate::logcat::{Dur, LogEvent, Peer, log};
use crate::metrics::Metrics;
use crate::metrics_http::ScrapeRequest;
use crate::netlog::NetLog;
use crate::sd_notify::Notifier;

/// Authentic messages handled per wake-up before timers and the other sources get a look.
const RECV_BUDGET: usize = 32;

/// Everything the loop needs, prepared by `main` before the runtime starts.
pub struct DaemonSetup {
    pub config: Config,
    pub local: NodeName,
    pub peer: NodeName,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub groups: Groups,
}

type ControlMsg = (Request, Origin, oneshot::Sender<Response>);

/// Run until a graceful shutdown completes. Returns the process exit code.
pub async fn run(setup: DaemonSetup) -> anyhow::Result<i32> {
    let DaemonSetup {
        mut config,
        local,
        peer,
        state_dir,
        socket,
        mut groups,
    } = setup;
    groups.configure(&config.had.group);
    // The ha.cf the sockets and timers were set up with; a reload does not change these.
    let hacf = config.ha_cf.clone();
    let uuid = ha_transport::persist::load_or_create_uuid(&state_dir)
        .with_context(|| format!("cannot read or create {}/hb_uuid", state_dir.display()))?;
    let generation = ha_transport::persist::next_generation(&state_dir)
        .with_context(|| format!("cannot update {}/hb_generation", state_dir.display()))?;
    // What earlier runs consumed of each peer: its old packets stay replays after our restart.
    let peer_floors = ha_transport::persist::load_peer_floors(&state_dir)
        .with_context(|| format!("cannot read {}/had_peer_generations", state_dir.display()))?;

    // First, so that a second had refuses to start before it touches anything.
    let read_gid = config
        .had
        .control
        .read_group
        .as_deref()
        .and_then(crate::validate::read_group_gid);
    let listener = bind_control(&socket, read_gid)?;
    // What a previous run left up goes before we take part (cluster/leftovers.rs).
    let not_released = crate::leftovers::release(&groups).await;
    // From here on, what we hold is released even if we are killed (guard.rs).
    let mut guard = crate::guard::Guard::spawn(crate::guard::Hello::new(&config, &groups));

    let media = MediaSet::open_with_baud(&hacf.media, hacf.udpport, hacf.baud)
        .context("cannot open heartbeat media")?;
    media.set_ring(local.as_str(), Auth::new(&config.authkeys));
    // Reading, checking and authenticating the network media run on their own thread
    // (recv.rs): no datagram rate can make a timer or one of our heartbeats wait behind
    // receive work. Serial ports (no LAN host can flood them) stay on the loop.
    let mut inbound = ha_transport::recv::spawn_with(
        &media,
        Auth::new(&config.authkeys),
        crate::realtime::join_heartbeat_path,
    )
    .context("cannot start the receive thread")?;
    let mut netlog = NetLog::default();
    let mut queue_full_seen = 0u64;
    let start = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut live = Liveness::new(
        LivenessConfig {
            local: local.clone(),
            uuid,
            generation,
            peers: vec![peer.clone()],
            media: media.names(),
            keepalive: hacf.keepalive,
            deadtime: hacf.deadtime,
            warntime: hacf.warntime,
            initdead: hacf.initdead,
            auth: Auth::new(&config.authkeys),
            unix_now_at_start: unix_now,
            local_addrs: local_addrs(),
            peer_floors,
        },
        start,
    );
    live.set_load(read_loadavg());

    let group_infos: Vec<GroupInfo> = config
        .haresources
        .groups
        .iter()
        .map(|g| GroupInfo {
            key: g.key().to_string(),
            preferred_local: g.node == local,
            resources: g.resources.iter().map(|r| r.raw.clone()).collect(),
        })
        .collect();
    let mut cluster = Cluster::new(
        ClusterConfig {
            local: local.to_string(),
            peer: peer.to_string(),
            groups: group_infos.clone(),
            auto_failback: hacf.auto_failback,
            // A peer answers `starting` within one round trip; a Heartbeat peer in legacy
            // mode never does, so do not wait on it for longer than a couple of heartbeats.
            report_timeout: (hacf.keepalive * 2).max(Duration::from_secs(2)),
        },
        start,
    );
    for (g, why) in &not_released {
        cluster.leftover_not_released(start, *g, why);
    }
    log(&LogEvent::Starting {
        version: env!("CARGO_PKG_VERSION"),
        node: &local,
        peer: &peer,
        groups: group_infos.len(),
        keepalive: Dur(hacf.keepalive),
        deadtime: Dur(hacf.deadtime),
        initdead: Dur(hacf.initdead),
    });

    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outcome>();
    let (mon_tx, mut mon_rx) = mpsc::unbounded_channel::<crate::monitor::CheckResult>();
    // One switch per group: its monitors run only while they have something to say.
    let monitor_active: Vec<tokio::sync::watch::Sender<bool>> = (0..groups.resources.len())
        .map(|_| tokio::sync::watch::channel(false).0)
        .collect();
    for m in crate::monitor::bind(&config, &groups.resources) {
        // A monitor pinned to the other node (Keepalived: that node's track_script).
        if m.spec.node.as_deref().is_some_and(|n| n != local.as_str()) {
            continue;
        }
        log(&LogEvent::MonitorStarted {
            resource: &m.spec.resource,
            interval: Dur(m.spec.interval),
            timeout: Dur(m.spec.timeout),
            failures: m.spec.failures.max(1),
        });
        let Some(active) = monitor_active.get(m.group.0).map(|s| s.subscribe()) else {
            continue;
        };
        tokio::spawn(crate::monitor::run(m, mon_tx.clone(), active));
    }
    let mut check_log = crate::monitor::CheckLog::default();
    let (fence_tx, mut fence_rx) = mpsc::unbounded_channel::<crate::fence::FenceResult>();
    cluster.set_fencing(config.had.fence.as_ref().map(|f| f.retry));
    cluster.set_priority(config.had.priority_of(local.as_str()));
    cluster.set_failback_delay(config.had.group.failback_delay);
    // ipfail's giveup delay: both nodes losing the same upstream must not move anything.
    cluster.set_ping_grace(hacf.keepalive * 2);
    let (ping_tx, mut ping_rx) = mpsc::unbounded_channel::<u32>();
    crate::ping::spawn(
        hacf.ping.clone(),
        hacf.deadping.unwrap_or(hacf.deadtime),
        hacf.keepalive,
        ping_tx,
    );
    let (fifo_tx, mut fifo_rx) = mpsc::unbounded_channel::<AdminCommand>();
    crate::fifo::spawn(&state_dir, fifo_tx);
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlMsg>(16);
    tokio::spawn(accept_loop(
        listener,
        ctl_tx,
        control::READ_TIMEOUT,
        read_gid,
    ));

    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("SIGHUP handler")?;

    let mut metrics = Metrics::default();
    let (scrape_tx, mut scrape_rx) = mpsc::channel::<ScrapeRequest>(4);
    if let Some(m) = config.had.metrics {
        match crate::metrics_http::bind(m.listen).await {
            Ok(l) => {
                log(&LogEvent::MetricsServing { from: m.listen });
                tokio::spawn(crate::metrics_http::serve(l, scrape_tx));
            }
            Err(e) => log(&LogEvent::MetricsOff {
                from: m.listen,
                reason: &e.to_string(),
            }),
        }
    }
    // Configuration valid, media and control socket bound: systemd may start what follows us.
    let mut sd = Notifier::from_env();
    sd.ready();
    // Fed from this loop, not from a task of its own, so a stuck loop stops the pings.
    let watchdog = if sd.active() {
        crate::sd_notify::watchdog_from_env()
    } else {
        None
    };
    let mut next_ping = watchdog.map(|_| Instant::now());
    let mut noted_seen = 0u64;
    let mut last_role = (usize::MAX, false, false, u8::MAX);

    let mut last_load = Instant::now();
    let mut comm_up = false;
    let mut report_order = crate::cluster::ReportOrder::default();
    let mut exit = false;
    let mut ops_running: HashMap<usize, Instant> = HashMap::new();

    loop {
        if let (Some(every), Some(at)) = (watchdog, next_ping)
            && Instant::now() >= at
        {
            sd.watchdog();
            next_ping = Some(Instant::now() + every);
        }
        // Let both machines emit everything they have, then carry it out.
        loop {
            let mut progressed = false;
            while let Some(t) = live.poll_transmit() {
                media.send_all(&t.bytes).await;
                progressed = true;
            }
            while let Some(ev) = live.poll_event() {
                progressed = true;
                let now = Instant::now();
                observe_liveness(&mut metrics, &ev, &peer, &live, &cluster, &groups, now);
                if let Some(input) =
                    on_liveness_event(ev, &peer, &mut report_order, &mut netlog, now)
                {
                    cluster.handle(now, input);
                }
            }
            // Rare (a peer restarted or died) and must survive a crash of ours: fsync'ed here.
            if let Some(floors) = live.poll_floors() {
                store_peer_floors(&state_dir, &floors);
            }
            while let Some(a) = cluster.poll_action() {
                progressed = true;
                let now = Instant::now();
                match a {
                    Action::Start(g) | Action::Stop(g) => {
                        let op = if matches!(a, Action::Start(_)) {
                            crate::cluster::Op::Start
                        } else {
                            crate::cluster::Op::Stop
                        };
                        ops_running.insert(g.0, now);
                        // The guard hears of a start before the agents begin it.
                        guard.sync(cluster.group_states(), &groups);
                        if let Some(key) = groups.keys.get(g.0) {
                            if op == crate::cluster::Op::Start {
                                metrics.start_started(key);
                            } else if matches!(cluster.peer(), PeerState::Alive { .. }) {
                                metrics.release_started(now, key);
                            }
                        }
                        groups.spawn(g, op, out_tx.clone());
                    }
                    Action::Restart { group, from } => {
                        ops_running.insert(group.0, now);
                        groups.spawn_restart(group, from, out_tx.clone());
                    }
                    Action::StopResources { group, resources } => {
                        ops_running.insert(group.0, now);
                        groups.spawn_reload_stop(group, &resources, out_tx.clone());
                    }
                    Action::StartResources { group, resources } => {
                        ops_running.insert(group.0, now);
                        guard.sync(cluster.group_states(), &groups);
                        groups.spawn_reload_start(group, &resources, out_tx.clone());
                    }
                    Action::SendReport(r) => live.send(now, r.to_message()),
                    Action::SendStarting => live.send(now, Message::with_type("starting")),
                    Action::Send(m) => live.send(now, m),
                    Action::SendShutdone => {
                        log(&LogEvent::Relinquished {});
                        let mut m = Message::with_type("shutdone");
                        m.push_str("st", "dead");
                        live.send(now, m);
                    }
                    Action::CommUp => {
                        if !comm_up {
                            comm_up = true;
                            log(&LogEvent::CommUp {});
                            live.set_local_status(now, NodeStatus::Active);
                        }
                    }
                    Action::Exit => exit = true,
                    Action::Fence => crate::fence::spawn(
                        config.had.fence.as_ref(),
                        local.as_str(),
                        peer.as_str(),
                        fence_tx.clone(),
                    ),
                    Action::Notify {
                        group,
                        state,
                        reason,
                    } => crate::notify::spawn(
                        &config.had.notify,
                        crate::notify::Event {
                            group: groups.keys.get(group.0).cloned().unwrap_or_default(),
                            resources: groups
                                .resources
                                .get(group.0)
                                .map(|rs| rs.iter().map(|r| r.name().to_string()).collect())
                                .unwrap_or_default(),
                            state,
                            reason,
                            node: local.to_string(),
                            peer: peer.to_string(),
                        },
                    ),
                    Action::Announce(g) => crate::announce::spawn(
                        &groups,
                        g,
                        config.had.arp.count,
                        config.had.arp.interval,
                    ),
                }
            }
            if !progressed {
                break;
            }
        }
        observe_cluster(
            &mut metrics,
            &mut noted_seen,
            &cluster,
            &config,
            peer.as_str(),
        );
        guard.sync(cluster.group_states(), &groups);
        // Formatted only when the role changed: this runs once per wake-up.
        if sd.active() {
            let role = role_key(&cluster);
            if role != last_role {
                last_role = role;
                sd.status(&role_line(&cluster, &groups, &local, &peer));
            }
        }
        if exit {
            // Give the shutdone packet its way out before the sockets close.
            while let Some(t) = live.poll_transmit() {
                media.send_all(&t.bytes).await;
            }
            store_peer_floors(&state_dir, &live.peer_floors());
            guard.goodbye();
            log(&LogEvent::HadStopped {});
            let _ = std::fs::remove_file(&socket);
            return Ok(0);
        }

        for (g, tx) in monitor_active.iter().enumerate() {
            let need = cluster.monitor_needed(crate::cluster::GroupId(g));
            tx.send_if_modified(|v| std::mem::replace(v, need) != need);
        }
        let deadline = [
            live.poll_timeout(),
            cluster.poll_timeout(),
            netlog.poll_timeout(),
            next_ping,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));

        // Timers first, receive work last and bounded: our heartbeats go out on time
        // whatever arrives.
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if now.duration_since(last_load) >= hacf.keepalive {
                    live.set_load(read_loadavg());
                    last_load = now;
                    let lost = inbound.shared.queue_full();
                    if lost > queue_full_seen {
                        queue_full_seen = lost;
                        netlog.queue_full(now, lost);
                    }
                }
                live.handle_timeout(now);
                cluster.handle_timeout(now);
                netlog.flush(now);
            },
            Some(o) = out_rx.recv() => {
                ops_running.remove(&o.group.0);
                let key = groups.keys.get(o.group.0).cloned().unwrap_or_default();
                let ms = o.elapsed.as_millis() as u64;
                metrics.outcome(Instant::now(), &key, o.op, o.ok, o.elapsed);
                let group = key.as_str();
                let op = format!("{:?}", o.op);
                log(&match (o.op, o.ok) {
                    (crate::cluster::Op::Start, true) => LogEvent::Acquired { group, ms },
                    (crate::cluster::Op::Stop, true) => LogEvent::Released { group, ms },
                    (crate::cluster::Op::Restart, true) => LogEvent::RestartedInPlace { group, ms },
                    (crate::cluster::Op::ReloadStop | crate::cluster::Op::ReloadStart, true) => LogEvent::ReloadApplied { group, ms },
                    (_, false) => LogEvent::OperationFailed { group, op: &op, ms, reason: &o.detail },
                });
                cluster.handle(Instant::now(), ClusterInput::Outcome { group: o.group, op: o.op, ok: o.ok, detail: o.detail });
            },
            Some(r) = mon_rx.recv() => {
                let key = groups.keys.get(r.group.0).cloned().unwrap_or_default();
                // A weighted or link check acts wherever the group is: log it as acting.
                let here = r.rule.everywhere
                    || cluster.group_states().get(r.group.0) == Some(&crate::cluster::GroupState::Running);
                if let Some(spec) = config.had.monitors.get(r.monitor) {
                    metrics.monitor(&spec.resource, r.ok);
                }
                match check_log.line(&r, &key, here) {
                    Some(crate::monitor::LogLine::Warn(l)) => log(&LogEvent::MonitorWarning { group: &key, text: &l }),
                    Some(crate::monitor::LogLine::Info(l)) => log(&LogEvent::MonitorNote { group: &key, text: &l }),
                    None => {}
                }
                cluster.handle(Instant::now(), r.into_input());
            },
            Some(reply) = scrape_rx.recv() => {
                let s = snapshot(&cluster, &live, &inbound.shared, &groups, &config, &local, &peer, start, Instant::now());
                let _ = reply.send(crate::metrics::render(&s, &metrics));
            },
            Some((req, origin, reply)) = ctl_rx.recv() => {
                let resp = if req == Request::Reload {
                    live.set_local_addrs(local_addrs());
                    sd.send("RELOADING=1");
                    let r = do_reload(&mut cluster, &mut live, &mut groups, &mut config, &local, &peer, origin);
                    inbound.shared.set_auth(Auth::new(&config.authkeys));
                    sd.ready();
                    r
                } else {
                    handle_request(req, origin, &mut cluster, &live, &inbound.shared, &groups, &config, &local, &peer, start)
                };
                let _ = reply.send(resp);
            },
            Some(n) = ping_rx.recv() => cluster.handle(Instant::now(), ClusterInput::PingCount(n)),
            Some(f) = fence_rx.recv() => {
                cluster.handle(Instant::now(), ClusterInput::Fenced { ok: f.ok, detail: f.detail });
            },
            Some(cmd) = fifo_rx.recv() => {
                // As from hactl: refused commands are logged with their reason.
                let _ = admit(&mut cluster, cmd, Origin::Fifo, Instant::now());
            },
            _ = sigterm.recv() => begin_shutdown(&mut cluster, &sd, "SIGTERM"),
            _ = sigint.recv() => begin_shutdown(&mut cluster, &sd, "SIGINT"),
            _ = sighup.recv() => {
                live.set_local_addrs(local_addrs());
                sd.send("RELOADING=1");
                do_reload(&mut cluster, &mut live, &mut groups, &mut config, &local, &peer, Origin::Signal("SIGHUP"));
                inbound.shared.set_auth(Auth::new(&config.authkeys));
                sd.ready();
            },
            Some(first) = inbound.messages.recv() => {
                let mut next = Some(first);
                for _ in 0..RECV_BUDGET {
                    let Some(m) = next.take() else { break };
                    live.handle_verified(Instant::now(), m.medium, m.from, m.msg);
                    next = inbound.messages.try_recv().ok();
                }
                // One more than the budget was taken: it must not be lost.
                if let Some(m) = next {
                    live.handle_verified(Instant::now(), m.medium, m.from, m.msg);
                }
            },
            r = media.recv_serial(), if media.has_serial() => match r {
                Ok((m, from, bytes)) => live.handle_datagram(Instant::now(), m, from, &bytes),
                Err(e) => {
                    netlog.emit(Instant::now(), &LogEvent::SerialError { reason: &e.to_string() });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(r) = inbound.rejected.recv() => {
                let now = Instant::now();
                netlog.dropped(now, r.from, r.claimed_src, r.reason);
                // The whole (small) queue at once: one wake-up per notice would be waste.
                while let Ok(r) = inbound.rejected.try_recv() {
                    netlog.dropped(now, r.from, r.claimed_src, r.reason);
                }
            },
        }
    }
}

/// Reload the configuration (see `reload.rs`), log the outcome, answer hactl.
fn do_reload(
    cluster: &mut Cluster,
    live: &mut Liveness,
    groups: &mut Groups,
    config: &mut Config,
    local: &NodeName,
    peer: &NodeName,
    origin: Origin,
) -> Response {
    log(&LogEvent::AdminReload {
        origin,
        dir: &config.dir.display().to_string(),
    });
    let running = crate::reload::Running {
        cluster,
        live,
        groups,
        config,
        local,
        peer,
    };
    match crate::reload::reload(Instant::now(), running) {
        crate::reload::ReloadResult::Applied(a) => {
            let a = a.to_string();
            log(&LogEvent::ReloadDone { summary: &a });
            Response::ok(a)
        }
        crate::reload::ReloadResult::Refused(e) => {
            let e = e.to_string();
            log(&LogEvent::ReloadRefused { reason: &e });
            Response::err(e)
        }
    }
}

fn begin_shutdown(cluster: &mut Cluster, sd: &Notifier, signal: &'static str) {
    let origin = Origin::Signal(signal);
    if cluster.is_shutting_down() {
        log(&LogEvent::AdminShutdownAgain { origin });
    } else {
        sd.send("STOPPING=1");
        log(&LogEvent::AdminShutdown { origin });
        cluster.handle(Instant::now(), ClusterInput::Admin(AdminCommand::Shutdown));
    }
}

/// An admin command from hactl or the FIFO: refused with its reason, or handed to the
/// cluster; either way one audit line.
fn admit(
    cluster: &mut Cluster,
    cmd: AdminCommand,
    origin: Origin,
    now: Instant,
) -> Result<(), String> {
    let what = describe(cmd);
    if let Some(why) = cluster.admin_refusal(cmd) {
        log(&LogEvent::AdminRefused {
            what: &what,
            origin,
            reason: &why,
        });
        return Err(why);
    }
    log(&LogEvent::AdminRequested {
        what: &what,
        origin,
    });
    cluster.handle(now, ClusterInput::Admin(cmd));
    Ok(())
}

/// `standby all`, `takeover local`, `cleanup`: an admin command as the audit line names it.
fn describe(cmd: AdminCommand) -> String {
    match cmd {
        AdminCommand::Standby(s) => format!("standby {}", s.as_str()),
        AdminCommand::Takeover(s) => format!("takeover {}", s.as_str()),
        AdminCommand::Cleanup => "cleanup".into(),
        AdminCommand::Shutdown => "shutdown".into(),
    }
}

/// What a liveness event means for the metrics: a dead peer starts failover clocks (from its
/// last heartbeat), a live one stops them.
fn observe_liveness(
    m: &mut Metrics,
    ev: &LivenessEvent,
    peer: &NodeName,
    live: &Liveness,
    cluster: &Cluster,
    groups: &Groups,
    now: Instant,
) {
    match ev {
        LivenessEvent::PeerDead { node, .. } if node == peer => {
            let silent = live
                .snapshot(now)
                .peers
                .iter()
                .find(|p| p.node == peer.as_str())
                .and_then(|p| p.last_heard_ms)
                .map(Duration::from_millis)
                .unwrap_or_default();
            let not_held: Vec<String> = groups
                .keys
                .iter()
                .enumerate()
                .filter(|(i, _)| !cluster.group_states().get(*i).is_some_and(|s| s.is_held()))
                .map(|(_, k)| k.clone())
                .collect();
            m.peer_dead(now.checked_sub(silent).unwrap_or(now), &not_held);
        }
        LivenessEvent::PeerUp { node, .. } | LivenessEvent::PeerRestarted { node }
            if node == peer =>
        {
            m.peer_up()
        }
        _ => {}
    }
}

/// After the machines ran: count new transitions, and end handovers the peer's report completes.
fn observe_cluster(
    m: &mut Metrics,
    seen: &mut u64,
    cluster: &Cluster,
    config: &Config,
    peer: &str,
) {
    let total = cluster.transitions_total();
    if total > *seen {
        let new = usize::try_from(total - *seen).unwrap_or(usize::MAX);
        let log: Vec<_> = cluster.transitions().collect();
        for t in &log[log.len().saturating_sub(new)..] {
            m.transition(&t.what);
        }
        *seen = total;
    }
    if !m.handover_pending() {
        return;
    }
    let Some(report) = cluster.peer_report() else {
        return;
    };
    let done: Vec<String> = m
        .pending_handovers()
        .filter(|k| {
            config
                .haresources
                .groups
                .iter()
                .find(|g| g.key() == *k)
                .is_some_and(|g| report.holds(k, g.node.as_str() == peer))
        })
        .map(str::to_string)
        .collect();
    let now = Instant::now();
    for k in done {
        m.peer_holds(now, &k);
    }
}

/// What `role_line` depends on, cheap to compare.
fn role_key(cluster: &Cluster) -> (usize, bool, bool, u8) {
    let held = cluster
        .group_states()
        .iter()
        .filter(|s| s.is_held())
        .count();
    let peer = match cluster.peer() {
        PeerState::Unknown => 0,
        PeerState::Alive { .. } => 1,
        PeerState::Dead => 2,
        PeerState::Gone => 3,
    };
    (held, cluster.is_standby(), cluster.is_shutting_down(), peer)
}

/// The one-line `STATUS=` systemd shows: this node's role and the peer's state.
fn role_line(cluster: &Cluster, groups: &Groups, local: &NodeName, peer: &NodeName) -> String {
    let held: Vec<&str> = groups
        .keys
        .iter()
        .enumerate()
        .filter(|(i, _)| cluster.group_states().get(*i).is_some_and(|s| s.is_held()))
        .map(|(_, k)| k.as_str())
        .collect();
    let role = if cluster.is_shutting_down() {
        "stopping (releasing resources)".to_string()
    } else if held.is_empty() {
        format!("{local}: passive, holding nothing")
    } else {
        format!(
            "{local}: active, holding {}/{} group(s)",
            held.len(),
            groups.keys.len()
        )
    };
    let standby = if cluster.is_standby() {
        ", in standby"
    } else {
        ""
    };
    let peer_state = match cluster.peer() {
        PeerState::Unknown => "not heard yet",
        PeerState::Alive { .. } => "alive",
        PeerState::Dead => "dead",
        PeerState::Gone => "gone",
    };
    format!("{role}{standby}; peer {peer} {peer_state}")
}

/// The cluster input for a liveness event, and its log line (through the limiter: every
/// event here comes from a packet, or from the absence of packets). `order` drops a peer
/// report older than the last one taken.
pub(crate) fn on_liveness_event(
    ev: LivenessEvent,
    peer: &NodeName,
    order: &mut crate::cluster::ReportOrder,
    log: &mut NetLog,
    now: Instant,
) -> Option<ClusterInput> {
    // Node names here are configured names (Liveness matched them); the catalogue escapes
    // what came from a packet. One event, one line: the peer's restart and return are
    // written here and nowhere else (Liveness only reports them).
    match ev {
        LivenessEvent::PeerUp {
            node,
            status,
            returning_after_partition,
            restarted,
        } => {
            if returning_after_partition {
                log.emit(now, &LogEvent::PeerReturning { node: &node });
            } else if restarted {
                log.emit(now, &LogEvent::PeerRestarted { node: &node });
            }
            log.emit(
                now,
                &LogEvent::StatusUpdate {
                    node: &node,
                    status: status.as_str(),
                },
            );
            (node == *peer).then_some(ClusterInput::PeerUp {
                returning_after_partition,
                restarted,
            })
        }
        LivenessEvent::PeerStatus { node, status } => {
            log.emit(
                now,
                &LogEvent::StatusUpdate {
                    node: &node,
                    status: status.as_str(),
                },
            );
            None
        }
        LivenessEvent::PeerDead { node, never_heard } => {
            log.emit(
                now,
                &if never_heard {
                    LogEvent::PeerNeverHeard { node: &node }
                } else {
                    LogEvent::PeerDead { node: &node }
                },
            );
            (node == *peer).then_some(ClusterInput::PeerDead)
        }
        LivenessEvent::PeerRestarted { node } => {
            log.emit(now, &LogEvent::PeerRestarted { node: &node });
            (node == *peer).then_some(ClusterInput::PeerUp {
                returning_after_partition: false,
                restarted: true,
            })
        }
        LivenessEvent::LinkUp { node, link } => {
            log.emit(
                now,
                &LogEvent::LinkUp {
                    node: &node,
                    link: &link,
                },
            );
            None
        }
        LivenessEvent::LinkDown { node, link } => {
            log.emit(
                now,
                &LogEvent::LinkDead {
                    node: &node,
                    link: &link,
                },
            );
            None
        }
        LivenessEvent::Late { node, interval } => {
            let ms = interval.as_millis() as u64;
            log.emit(now, &LogEvent::LateHeartbeat { node: &node, ms });
            None
        }
        LivenessEvent::Lost { node, seq } => {
            log.emit(now, &LogEvent::PacketLost { node: &node, seq });
            None
        }
        LivenessEvent::DeadtimeClamped {
            node,
            advertised_ms,
            used,
        } => {
            log.emit(
                now,
                &LogEvent::DeadtimeClamped {
                    node: &node,
                    advertised_ms,
                    min_ms: ha_transport::liveness::PEER_DEADTIME_MIN.as_millis() as u64,
                    max_ms: ha_transport::liveness::PEER_DEADTIME_MAX.as_millis() as u64,
                    used_ms: used.as_millis() as u64,
                },
            );
            None
        }
        LivenessEvent::OwnNameElsewhere { addr } => {
            log.emit(now, &LogEvent::OwnNameElsewhere { from: addr });
            None
        }
        LivenessEvent::AuthFailed {
            addr,
            claimed_src,
            reason,
        } => {
            log.dropped(now, addr, claimed_src, reason);
            None
        }
        LivenessEvent::SameUuid { node } => {
            log.emit(now, &LogEvent::SameUuid { node: &node });
            None
        }
        LivenessEvent::Message { from, msg } => {
            if from != *peer {
                return None;
            }
            if order.is_stale(&msg) {
                tracing::debug!(node = %from, "older resource report from {from} arrived late: ignored");
                return None;
            }
            match msg.msg_type() {
                // Full and partial reports, and Heartbeat's standby/takeover protocol.
                Some(t @ ("resource" | "ask_resources" | "hb_takeover")) => {
                    let input = crate::cluster::input_from_message(&msg);
                    match &input {
                        None => log.emit(
                            now,
                            &LogEvent::MalformedMessage {
                                kind: Peer(t),
                                node: &from,
                            },
                        ),
                        Some(ClusterInput::Heartbeat(i)) => log.emit(
                            now,
                            &LogEvent::PeerMessage {
                                kind: Peer(t),
                                node: &from,
                                input: Peer(&format!("{i:?}")),
                            },
                        ),
                        // The bench's gap split times a handover's message from this line.
                        Some(ClusterInput::PeerReport(r)) => log.emit(
                            now,
                            &LogEvent::PeerMessage {
                                kind: Peer(t),
                                node: &from,
                                input: Peer(&format!(
                                    "holds {:?}, stable {}",
                                    r.rsc_hold, r.stable
                                )),
                            },
                        ),
                        _ => {}
                    }
                    input
                }
                // auto_failback legacy: Heartbeat's ip-request exchange (cluster/legacy.rs).
                Some(t @ ("ip-request" | "ip-request-resp")) => {
                    let input = crate::cluster::legacy_input_from_message(&msg);
                    match &input {
                        None => log.emit(
                            now,
                            &LogEvent::MalformedMessage {
                                kind: Peer(t),
                                node: &from,
                            },
                        ),
                        Some(i) => log.emit(
                            now,
                            &LogEvent::PeerMessage {
                                kind: Peer(t),
                                node: &from,
                                input: Peer(&format!("{i:?}")),
                            },
                        ),
                    }
                    input
                }
                Some("starting") => Some(ClusterInput::PeerStarting),
                Some("shutdone") => {
                    log.emit(now, &LogEvent::ShutdownNotice { node: &from });
                    Some(ClusterInput::PeerShutdown)
                }
                other => {
                    tracing::debug!(
                        node = %from,
                        "ignoring message type {:?}",
                        other.map(ha_logsafe::Untrusted::new)
                    );
                    None
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_request(
    req: Request,
    origin: Origin,
    cluster: &mut Cluster,
    live: &Liveness,
    recv: &ha_transport::recv::RecvShared,
    groups: &Groups,
    config: &Config,
    local: &NodeName,
    peer: &NodeName,
    start: Instant,
) -> Response {
    let now = Instant::now();
    match req {
        Request::Status => {
            let mut r = Response::ok("status");
            r.status = Some(snapshot(
                cluster, live, recv, groups, config, local, peer, start, now,
            ));
            r
        }
        Request::Standby { scope } | Request::Takeover { scope } => {
            let (cmd, answer) = if matches!(req, Request::Standby { .. }) {
                (
                    AdminCommand::Standby(scope),
                    format!(
                        "standby: handing {} resource groups to {peer}",
                        scope.as_str()
                    ),
                )
            } else {
                (
                    AdminCommand::Takeover(scope),
                    format!(
                        "takeover: taking {} resource groups from {peer}",
                        scope.as_str()
                    ),
                )
            };
            match admit(cluster, cmd, origin, now) {
                Err(why) => Response::err(why),
                Ok(()) => Response::ok(answer),
            }
        }
        Request::Cleanup => {
            log(&LogEvent::AdminCleanup { origin });
            cluster.handle(now, ClusterInput::Admin(AdminCommand::Cleanup));
            Response::ok("cleanup: failures forgotten on this node")
        }
        // Handled by `do_reload` in the loop, which has the mutable state it needs.
        Request::Reload => Response::err("reload: internal routing error"),
        Request::Parameter { name } => match crate::params::hb_parameter(&config.ha_cf, &name) {
            Some(v) => Response::ok(v),
            None => Response::err(format!("parameter {name} is not set")),
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn snapshot(
    cluster: &Cluster,
    live: &Liveness,
    recv: &ha_transport::recv::RecvShared,
    groups: &Groups,
    config: &Config,
    local: &NodeName,
    peer: &NodeName,
    start: Instant,
    now: Instant,
) -> control::Snapshot {
    let ls = live.snapshot(now);
    let p = ls.peers.iter().find(|p| p.node == peer.as_str());
    let report = cluster.peer_report();
    let peer_status = match cluster.peer() {
        PeerState::Gone => "gone".to_string(),
        // Heard, but no status packet yet since it (re)started: it is up, not unknown.
        _ => match p {
            Some(p) if p.status == "init" && p.last_heard_ms.is_some() => "up".into(),
            Some(p) => p.status.clone(),
            None => "init".into(),
        },
    };
    let refused: std::collections::BTreeSet<usize> = cluster.refused().map(|g| g.0).collect();
    let view = groups.view.lock().map(|v| v.clone()).unwrap_or_default();
    let gs = config
        .haresources
        .groups
        .iter()
        .enumerate()
        .filter(|(i, _)| crate::reload::shown(cluster, *i))
        .map(|(i, g)| {
            let st = cluster.group_states().get(i).copied();
            let here = st.is_some_and(|s| s.is_held());
            let key = g.key().to_string();
            let senders_local = g.node == *peer;
            let there = report.is_some_and(|r| r.holds(&key, senders_local));
            let held_by = if here {
                Some(local.to_string())
            } else if there {
                Some(peer.to_string())
            } else {
                None
            };
            control::GroupStatus {
                key,
                preferred: g.node.to_string(),
                state: st.map(|s| s.as_str()).unwrap_or("stopped").to_string(),
                held_by,
                refused_here: refused.contains(&i),
                priority: cluster
                    .effective_priority(crate::cluster::GroupId(i))
                    .map(|here| control::Priorities {
                        here,
                        peer: report.and_then(|r| r.prio.get(g.key()).copied()),
                    }),
                resources: g
                    .resources
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        let v = view.get(i).and_then(|v| v.get(j));
                        control::ResourceStatus {
                            name: r.raw.clone(),
                            state: v.map(|v| v.state).unwrap_or("stopped").to_string(),
                            last_error: v.and_then(|v| v.last_error.clone()),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    control::Snapshot {
        schema: control::SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        nodes: config.ha_cf.nodes.iter().map(|n| n.to_string()).collect(),
        node: control::LocalNode {
            name: local.to_string(),
            status: ls.local_status.clone(),
            pid: std::process::id(),
            uptime_ms: now.duration_since(start).as_millis() as u64,
            generation: ls.generation,
            standby: cluster.is_standby(),
            shutting_down: cluster.is_shutting_down(),
            auto_failback: match config.ha_cf.auto_failback {
                AutoFailback::On => "on",
                AutoFailback::Off => "off",
                AutoFailback::Legacy => "legacy",
            }
            .to_string(),
            keepalive_ms: config.ha_cf.keepalive.as_millis() as u64,
            deadtime_ms: config.ha_cf.deadtime.as_millis() as u64,
            auth: config
                .authkeys
                .active_key()
                .map(|k| k.method.as_str().to_string())
                .unwrap_or_default(),
            realtime: crate::realtime::state(),
        },
        peer: control::PeerNode {
            name: peer.to_string(),
            status: peer_status,
            last_heard_ms: p.and_then(|p| p.last_heard_ms),
            deadtime_ms: p.map(|p| p.deadtime_ms).unwrap_or(0),
            generation: p.and_then(|p| p.generation),
            links: p
                .map(|p| {
                    p.links
                        .iter()
                        .map(|l| control::Link {
                            name: l.name.clone(),
                            status: l.status.clone(),
                            last_heard_ms: l.last_heard_ms,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            rsc_hold: report.map(|r| r.rsc_hold.as_str().to_string()),
            stable: report.map(|r| r.stable),
        },
        groups: gs,
        packets: control::Packets {
            sent: ls.sent,
            received: ls.received + recv.received(),
            dropped: {
                // Dropped on the receive thread, and by Liveness after authentication.
                let mut d = ls.dropped.clone();
                for (r, n) in recv.dropped() {
                    *d.entry(r.as_str().to_string()).or_insert(0) += n;
                }
                *d.entry("queue_full".to_string()).or_insert(0) += recv.queue_full();
                d
            },
            late: ls.late,
            own_name_elsewhere: ls.own_name_elsewhere,
            rexmit_limited: ls.rexmit_limited,
        },
        transitions: cluster
            .transitions()
            .map(|t| control::TransitionEntry {
                at_ms: t.at_ms,
                group: t.group.clone(),
                what: t.what.clone(),
                reason: t.reason.clone(),
            })
            .collect(),
    }
}

/// Every address of this host, for telling our own looped-back packets from
/// another node that uses our name; empty (everything foreign) if unreadable.
fn local_addrs() -> Vec<std::net::IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        log(&LogEvent::NoLocalAddrs {});
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let a = a.address?;
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .collect()
}

fn store_peer_floors(state_dir: &std::path::Path, floors: &[ha_transport::liveness::PeerFloor]) {
    if let Err(e) = ha_transport::persist::store_peer_floors(state_dir, floors) {
        // Not fatal: only our next restart loses the replay floor.
        log(&LogEvent::FloorsNotWritten {
            path: &format!(
                "{}/{}",
                state_dir.display(),
                ha_transport::persist::PEER_FLOORS_FILE
            ),
            reason: &e.to_string(),
        });
    }
}

fn read_loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

/// Binds the control socket: root's only (0600), or also connectable by `read_gid` (0660,
/// group `read_gid`), whose members are then held to read-only requests in `serve_client`.
fn bind_control(path: &std::path::Path, read_gid: Option<u32>) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        // 0755 whatever the umask: had refuses a run dir others can write (StrictModes).
        ha_transport::persist::create_state_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A stale socket from a crashed daemon would make bind fail; a live daemon answers.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another had is already running (control socket {} answers)",
                path.display()
            );
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    if let Some(gid) = read_gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot chgrp {} to gid {gid}", path.display()))?;
    }
    let mode = if read_gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    Ok(l)
}

async fn accept_loop(
    listener: UnixListener,
    tx: mpsc::Sender<ControlMsg>,
    read_timeout: Duration,
    read_gid: Option<u32>,
) {
    // Bounded: a local client opening connections without end cannot make us hold more.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(control::MAX_CLIENTS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(
                        "control socket: {} clients already connected; one more turned away",
                        control::MAX_CLIENTS
                    );
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_client(stream, tx, read_timeout, read_gid).await {
                        tracing::debug!("control client: {e}");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                log(&LogEvent::ControlAcceptFailed {
                    reason: &e.to_string(),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_client(
    stream: UnixStream,
    tx: mpsc::Sender<ControlMsg>,
    read_timeout: Duration,
    read_gid: Option<u32>,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    // Root may do anything; members of `[control] read_group` may only look. Judged on each
    // request from the kernel's credentials of the peer, whatever the socket's mode lets in.
    let cred = stream.peer_cred()?;
    let origin = Origin::Client {
        uid: cred.uid(),
        pid: cred.pid(),
    };
    let me = nix::unistd::geteuid().as_raw();
    let access = control::access(
        cred.uid(),
        me,
        read_gid,
        cred.gid(),
        cred.pid()
            .and_then(peer_groups)
            .unwrap_or_default()
            .as_slice(),
    );
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = Vec::new();
        let limit = control::MAX_REQUEST as u64 + 1;
        let mut bounded = (&mut rd).take(limit);
        let read = bounded.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(read_timeout, read).await {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("{origin}: no request within {read_timeout:?}"),
        };
        if n == 0 {
            return Ok(());
        }
        let too_big = line.len() > control::MAX_REQUEST;
        let resp = if access == control::Access::None {
            log(&LogEvent::ControlNotRoot { origin });
            Response::err("permission denied: hactl must run as root")
        } else {
            match control::decode_request(&line) {
                Err(e) => Response::err(e),
                Ok(req) => match control::authorize(access, &req) {
                    Err(why) => {
                        log(&LogEvent::ControlRefused {
                            request: &format!("{req:?}"),
                            origin,
                            reason: &why.to_string(),
                        });
                        Response::err(why)
                    }
                    Ok(()) => {
                        let (otx, orx) = oneshot::channel();
                        tx.send((req, origin, otx)).await?;
                        orx.await?
                    }
                },
            }
        };
        wr.write_all(&control::encode_response(&resp)?).await?;
        if too_big {
            // The rest of that line is not worth reading.
            return Ok(());
        }
    }
}

/// The supplementary groups of process `pid` (the `Groups:` line of its status), as the
/// kernel holds them: SO_PEERCRED carries only the primary group.
fn peer_groups(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A control socket whose requests all get `ok`, with a short read timeout; its tasks
    /// end when the returned set drops.
    async fn serve(
        dir: &std::path::Path,
        timeout: Duration,
    ) -> (PathBuf, mpsc::Receiver<Origin>, tokio::task::JoinSet<()>) {
        let path = dir.join("had.sock");
        let listener = bind_control(&path, None).expect("bind");
        let (tx, mut rx) = mpsc::channel::<ControlMsg>(16);
        let (otx, orx) = mpsc::channel(64);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(accept_loop(listener, tx, timeout, None));
        tasks.spawn(async move {
            while let Some((_, origin, reply)) = rx.recv().await {
                let _ = otx.send(origin).await;
                let _ = reply.send(Response::ok("done"));
            }
        });
        (path, orx, tasks)
    }

    async fn read_all(s: &mut UnixStream) -> String {
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn requests_are_capped_clients_bounded_and_timed_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let timeout = Duration::from_millis(1500);
        let (path, mut origins, _tasks) = serve(dir.path(), timeout).await;

        // A request carries its sender's credentials to the loop.
        let mut s = UnixStream::connect(&path).await.expect("connect");
        s.write_all(b"{\"cmd\":\"cleanup\"}\n")
            .await
            .expect("write");
        let mut line = vec![0u8; 256];
        let n = s.read(&mut line).await.expect("answer");
        assert!(String::from_utf8_lossy(&line[..n]).contains("done"));
        assert_eq!(
            origins.recv().await,
            Some(Origin::Client {
                uid: nix::unistd::geteuid().as_raw(),
                pid: Some(std::process::id() as i32)
            })
        );
        drop(s);

        // Over 64 KiB without a newline: refused, closed, never parsed.
        let mut s = UnixStream::connect(&path).await.expect("connect");
        let big = vec![b'x'; control::MAX_REQUEST + 10];
        let (mut rd, mut wr) = s.split();
        let (_, answer) = tokio::join!(wr.write_all(&big), async {
            let mut out = String::new();
            let _ = rd.read_to_string(&mut out).await;
            out
        });
        assert!(answer.contains("longer than 65536 bytes"), "{answer:?}");

        // Idle clients hold at most MAX_CLIENTS slots; one more is turned away at once,
        // and the idle ones are dropped after the read timeout.
        let t0 = Instant::now();
        let mut idle = Vec::new();
        for _ in 0..control::MAX_CLIENTS {
            idle.push(UnixStream::connect(&path).await.expect("connect"));
        }
        let mut extra = UnixStream::connect(&path).await.expect("connect");
        assert_eq!(read_all(&mut extra).await, "");
        let turned_away = t0.elapsed();
        assert!(turned_away < timeout, "turned away after {turned_away:?}");
        assert_eq!(read_all(&mut idle[0]).await, "");
        let timed_out = t0.elapsed();
        assert!(
            timed_out >= timeout,
            "idle client closed after {timed_out:?}"
        );
        eprintln!(
            "extra client turned away after {turned_away:?}, idle ones closed after {timed_out:?}"
        );
        drop(idle);
        // Slots come back.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut s = UnixStream::connect(&path).await.expect("connect");
        s.write_all(b"{\"cmd\":\"cleanup\"}\n")
            .await
            .expect("write");
        let n = s.read(&mut line).await.expect("answer");
        assert!(String::from_utf8_lossy(&line[..n]).contains("done"));
    }
}
