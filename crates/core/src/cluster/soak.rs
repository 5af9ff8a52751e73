//! The deterministic soak of the core: two nodes, each a real `Liveness` and a real `Cluster`
//! glued as `Node` glues them, exchanging real signed wire packets over two virtual links,
//! driven through thousands of seeded random fault schedules in virtual time (loss,
//! partitions, one-way cuts, one link cut, freezes, crashes, graceful restarts, standby,
//! takeover, cleanup, failing starts, kill -9 of the daemon alone with its guard releasing,
//! kill -9 of the daemon and its guard with the restart's leftover release, a leftover that
//! cannot be stopped, reloads adding or removing a resource, a reload whose new resource fails
//! to start), with the ownership invariants checked throughout.
//!
//! Each group is an address, and for part of the time a service behind it (a reload adds or
//! removes it), tracked resource by resource. Every output of the cluster is carried out or
//! checked: starts, stops, a reload's `StopResources`/`StartResources` change what is up;
//! reports, `starting`, `shutdone` and Heartbeat messages go out through `Liveness` (the real
//! codec and signature) and come back through `node::on_liveness_event` (the mapping the
//! daemon's `Node` uses); `Notify` and `Announce` are checked against what is up; `Fence`
//! and `Restart` are violations (the simulation configures no fence command and no monitor).
//! The guard's order is the real `leftovers::guard_order`, the restart's release the real
//! `leftovers::plan`, `failed_groups` and `Cluster::leftover_not_released`, a reload the real
//! `Cluster::reconfigure`.
//!
//! Replay one schedule: `HA_SIM_SEED=<seed> cargo test -p ha-core --lib soak -- --nocapture`
//! (the seed is printed by a failing run). `HA_SIM_SCHEDULES=<n>` changes how many run.
//!
//! The invariants:
//! - **Exclusive while connected.** A resource of a group may be physically up on both nodes
//!   only while they cannot talk (a partition, a frozen or lossy side, a daemon killed or
//!   still releasing its leftovers at start), plus a handover bound `H` after they can talk
//!   again: `H = keepalive + 500 ms + 6 × max latency + max op time`. Why: the first fresh
//!   status from each side arrives within one keepalive plus a latency; a message lost in the
//!   cut is repaired by a retransmission requested 50–250 ms after the gap is seen and resent
//!   at once (≤ 250 ms + 2 latencies); the report exchange that decides the loser costs two
//!   more latencies; the loser's stop takes at most one op time. "Can talk" means both
//!   processes run (not frozen, not down, not releasing leftovers), no loss phase, and at
//!   least one link carries packets both ways. A killed daemon whose guard died too leaves its
//!   resources up, and its node cannot talk until its restart released them: the overlap is
//!   allowed until then plus `H`. The one exemption: a leftover whose stop failed (the group
//!   is `stop_failed` there) stays up until the admin stopped it by hand; while it is up the
//!   peer must not *start* the group once they talked for `H`.
//! - **Settled: exactly one holder, the right one.** After the last fault, with both nodes up
//!   and connected for a settle time (initdead + 3 deadtimes + the report timeout + 1 s), every
//!   group that some node may run is up on exactly one node, nothing is starting or stopping,
//!   and the holder is the one the rules say: a node that failed the group (and was not cleaned
//!   up) never; a node in standby for it only when the peer cannot run it; with
//!   `auto_failback on` or `legacy` the preferred node; with `off` the node that held it alone
//!   when the settle began, if it may still run it (no needless move). A running group has
//!   exactly the resources of its node's list up; any other group none.
//! - **Views agree.** Each node sees the peer alive, and the peer's last report lists exactly
//!   the groups the peer holds.
//! - **Outputs are true.** `Notify active` while the group's address is up here, `standby`
//!   while nothing of it is, `fault` while it is failed or stop-failed; `Announce` only for a
//!   group running here whose address is up here, and never in the same step as its stop; a
//!   refused reload
//!   changes nothing, an accepted one reports the delta it carries out.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::auth::{Auth, AuthMethod};
use crate::codec::Message;
use crate::config::ResourceSpec;
use crate::liveness::{Liveness, LivenessConfig, LivenessEvent, MediumId, NodeStatus};
use crate::message::MessageType;
use crate::rng::Rng;
use crate::{AutoFailback, NodeName};

use super::leftovers::{Found, Step};
use super::*;

const MEDIA: usize = 2;
const LAT_MIN_MS: u64 = 1;
const LAT_MAX_MS: u64 = 5;
/// Datagrams a frozen process's socket keeps (the rest are dropped, as a full buffer does).
const FROZEN_INBOX: usize = 256;
const KEYS: [&str; 2] = [
    "IPaddr::198.18.0.100/24/eth0",
    "IPaddr::198.18.0.101/24/eth0",
];
/// The service a reload puts behind each group's address (position 1 of its list).
const SVCS: [&str; 2] = ["web0", "web1"];
/// How often an admin retries a refused reload, or waits for a daemon to reload.
const RELOAD_TRIES: u32 = 40;
/// The longest a guard takes to remove one address (one netlink call).
const GUARD_ADDR_MS: u64 = 2;

/// One injected fault; those with a duration end by themselves.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Random loss on every link, both ways.
    Loss {
        percent: u64,
        dur: Duration,
    },
    /// Every link cut both ways (split brain).
    Partition {
        dur: Duration,
    },
    /// One link of the two cut both ways.
    LinkCut {
        medium: usize,
        dur: Duration,
    },
    /// Packets from `from` to the other node lost on every link.
    OneWay {
        from: usize,
        dur: Duration,
    },
    /// SIGSTOP of the daemon, SIGCONT after `dur` (its agents keep running).
    Freeze {
        node: usize,
        dur: Duration,
    },
    /// Power cycle: the node and its resources are gone, back after `dur`.
    Crash {
        node: usize,
        dur: Duration,
    },
    /// SIGTERM (graceful stop), started again `dur` after it exits.
    Shutdown {
        node: usize,
        dur: Duration,
    },
    /// kill -9 of the daemon alone (its resources stay up), started again after `dur`. With
    /// `guard` its guard releases what it held (addresses first); without, the guard was
    /// killed too and the restart releases the leftovers; `stuck`: that group's leftover then
    /// fails to stop (the admin stops it by hand later and runs `hactl cleanup`).
    Kill {
        node: usize,
        dur: Duration,
        guard: bool,
        stuck: Option<usize>,
    },
    Standby {
        node: usize,
        scope: Scope,
    },
    Takeover {
        node: usize,
        scope: Scope,
    },
    Cleanup {
        node: usize,
    },
    /// The node's next start of the group fails (rolled back).
    FailStart {
        node: usize,
        group: usize,
    },
    /// The admin edits haresources on both nodes, `node` first, the other `lag` later, to add
    /// (or remove) the group's service, and reloads each (retrying while refused). With
    /// `fail`, the new service fails to start on `node` (the group is rolled back).
    Reload {
        node: usize,
        group: usize,
        add: bool,
        fail: bool,
        lag: Duration,
    },
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        medium: usize,
        bytes: Vec<u8>,
    },
    /// An agent operation finished (the physical state changes now). `res`: the positions
    /// a reload's operation touches (empty for whole-group operations).
    OpDone {
        node: usize,
        boot: u64,
        group: GroupId,
        op: Op,
        ok: bool,
        res: Vec<usize>,
    },
    Inject(Fault),
    /// The end of a fault with a duration.
    End(Fault),
    /// The node's process starts (after a crash or a graceful exit).
    Boot {
        node: usize,
    },
    /// The guard of a killed daemon finished stopping one resource.
    GuardStop {
        node: usize,
        group: usize,
        res: usize,
    },
    /// The starting daemon finished stopping the leftover `step` of its plan.
    LeftoverStop {
        node: usize,
        step: usize,
    },
    /// The admin stopped a stuck leftover by hand and runs `hactl cleanup` (retried until
    /// the daemon runs).
    AdminFix {
        node: usize,
        group: usize,
        tries: u32,
    },
    /// The admin reloads the node's haresources (retried while refused or down).
    Reload {
        node: usize,
        group: usize,
        add: bool,
        tries: u32,
    },
}

struct Timed {
    at: Instant,
    order: u64,
    ev: Ev,
}

impl PartialEq for Timed {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}

/// A running daemon process: the two machines as `daemon.rs` drives them.
struct Proc {
    live: Liveness,
    cluster: Cluster,
    comm_up: bool,
    frozen: bool,
    /// Datagrams received while frozen, handled on SIGCONT.
    inbox: VecDeque<(usize, Vec<u8>)>,
    /// Outcomes of operations that finished while frozen.
    outcomes: VecDeque<ClusterInput>,
    order: ReportOrder,
    netlog: crate::netlog::NetLog,
}

/// A start-up release in progress: the plan and the results so far.
struct Release {
    steps: Vec<Step>,
    results: Vec<Result<(), String>>,
}

struct Node {
    proc: Option<Proc>,
    /// Incremented on every start of the process: outcomes of an earlier life are dropped.
    boot: u64,
    /// Physically up here, per group and resource position (0: the address, 1: the service).
    up: [[bool; 2]; 2],
    fail_next_start: BTreeSet<usize>,
    /// Whether haresources on this node gives the group its service (what a start reads).
    file_svc: [bool; 2],
    /// The next start of a reload's new resources fails for these groups.
    fail_next_reload_start: BTreeSet<usize>,
    /// The next start-up release of these groups' leftovers fails.
    fail_next_leftover_stop: BTreeSet<usize>,
    /// Leftovers whose stop failed: up until the admin stops them by hand.
    stuck: [bool; 2],
    /// The start-up release, while it runs (the process is not up yet).
    releasing: Option<Release>,
}

impl Node {
    fn holds(&self, g: usize) -> bool {
        self.up[g].iter().any(|&u| u)
    }
}

/// Parameters of one schedule.
#[derive(Clone, Debug)]
struct Params {
    ka: Duration,
    dt: Duration,
    op_max: Duration,
    af: AutoFailback,
    /// Links between the nodes (1 or 2).
    media: usize,
}

impl Params {
    fn initdead(&self) -> Duration {
        self.dt * 2
    }
    fn report_timeout(&self) -> Duration {
        // As the daemon sets it.
        (self.ka * 2).max(Duration::from_secs(2))
    }
    fn handover_bound(&self) -> Duration {
        self.ka + Duration::from_millis(500) + Duration::from_millis(6 * LAT_MAX_MS) + self.op_max
    }
    fn settle(&self) -> Duration {
        // A booted or healed node hears its peer within a keepalive, the report exchange
        // settles in a few latencies, a move costs a stop and a start; a deadtime, the report
        // timeout and 2 s (the legacy exchange retries each second) cover all of it.
        self.dt + self.report_timeout() + self.op_max * 2 + Duration::from_secs(2)
    }
}

/// A violation of an invariant, with enough to understand it.
#[derive(Debug)]
struct Violation(String);

/// How often each kind of output and fault happened (summed over a soak).
#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    notify: u64,
    announce: u64,
    announce_stale: u64,
    guard_stops: u64,
    /// Guard stops that hit a group the restarted daemon held again.
    guard_after_restart: u64,
    leftover_stops: u64,
    stuck: u64,
    reloads: u64,
    reloads_refused: u64,
    reload_ops: u64,
    reload_failed: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.notify += o.notify;
        self.announce += o.announce;
        self.announce_stale += o.announce_stale;
        self.guard_stops += o.guard_stops;
        self.guard_after_restart += o.guard_after_restart;
        self.leftover_stops += o.leftover_stops;
        self.stuck += o.stuck;
        self.reloads += o.reloads;
        self.reloads_refused += o.reloads_refused;
        self.reload_ops += o.reload_ops;
        self.reload_failed += o.reload_failed;
    }
}

struct World {
    p: Params,
    t0: Instant,
    now: Instant,
    rng: Rng,
    nodes: [Node; 2],
    queue: BinaryHeap<Reverse<Timed>>,
    order: u64,
    loss: u32,
    loss_p: f64,
    partition: u32,
    link_cut: [u32; MEDIA],
    one_way: [u32; 2],
    /// When both nodes became able to talk (None: they cannot now).
    connected_since: Option<Instant>,
    /// Per group: since when it is up on both nodes.
    both_since: [Option<Instant>; 2],
    /// The longest time a group was up on both nodes while they could talk.
    worst_overlap: Duration,
    /// A violation found while carrying out an output (checked after each step).
    violation: Option<Violation>,
    counts: Counts,
    trace: Vec<String>,
    tracing: bool,
    steps: u64,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1 + i as u8)), 694)
}

fn name(i: usize) -> &'static str {
    ["node1", "node2"][i]
}

fn live_config(n: usize, generation: u64, p: &Params) -> LivenessConfig {
    let mut uuid = [0u8; 16];
    uuid[0] = n as u8 + 1;
    LivenessConfig {
        local: NodeName::from(name(n)),
        uuid,
        generation,
        peers: vec![NodeName::from("node1"), NodeName::from("node2")],
        media: ["eth0", "eth1"][..p.media]
            .iter()
            .map(|m| m.to_string())
            .collect(),
        keepalive: p.ka,
        deadtime: p.dt,
        warntime: p.dt / 2,
        initdead: p.initdead(),
        // crc keeps thousands of simulated minutes fast in debug builds; the codec and the
        // verifier run all the same.
        auth: Auth::from_keys(1, [(1, AuthMethod::Crc, Vec::new())]),
        unix_now_at_start: 1_700_000_000,
        local_addrs: vec![addr(n).ip()],
        // A rebooted node starts without the floors an earlier run persisted.
        peer_floors: Vec::new(),
    }
}

/// The group list haresources gives node `n`, with or without each group's service.
fn group_infos(n: usize, svc: [bool; 2]) -> Vec<GroupInfo> {
    KEYS.iter()
        .enumerate()
        .map(|(g, k)| GroupInfo {
            key: (*k).into(),
            preferred_local: g == n,
            resources: if svc[g] {
                [(*k).into(), SVCS[g].into()].into()
            } else {
                [(*k).into()].into()
            },
        })
        .collect()
}

fn cluster_config(n: usize, p: &Params) -> ClusterConfig {
    cluster_config_with(n, p, [false; 2])
}

fn cluster_config_with(n: usize, p: &Params, svc: [bool; 2]) -> ClusterConfig {
    ClusterConfig {
        local: name(n).into(),
        peer: name(1 - n).into(),
        groups: group_infos(n, svc),
        auto_failback: p.af,
        report_timeout: p.report_timeout(),
    }
}

impl World {
    fn new(seed: u64, p: Params, tracing: bool) -> Self {
        let t0 = Instant::now();
        let node = || Node {
            proc: None,
            boot: 0,
            up: [[false; 2]; 2],
            fail_next_start: BTreeSet::new(),
            file_svc: [false; 2],
            fail_next_reload_start: BTreeSet::new(),
            fail_next_leftover_stop: BTreeSet::new(),
            stuck: [false; 2],
            releasing: None,
        };
        World {
            p,
            t0,
            now: t0,
            rng: Rng::new(seed),
            nodes: [node(), node()],
            queue: BinaryHeap::new(),
            order: 0,
            loss: 0,
            loss_p: 0.0,
            partition: 0,
            link_cut: [0; MEDIA],
            one_way: [0; 2],
            connected_since: None,
            both_since: [None; 2],
            worst_overlap: Duration::ZERO,
            violation: None,
            counts: Counts::default(),
            trace: Vec::new(),
            tracing,
            steps: 0,
        }
    }

    fn at(&mut self, at: Instant, ev: Ev) {
        self.order += 1;
        self.queue.push(Reverse(Timed {
            at,
            order: self.order,
            ev,
        }));
    }

    fn note(&mut self, s: impl FnOnce() -> String) {
        if self.tracing {
            let ms = self.now.duration_since(self.t0).as_millis();
            self.trace.push(format!("{ms:>7} ms  {}", s()));
        }
    }

    fn violate(&mut self, s: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation(s));
        }
    }

    /// The process starts: first the start-up release of what a previous run left up
    /// (`leftovers::plan` over what the probe finds), then the two machines.
    fn boot(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.boot += 1;
        // The probe asks every configured resource; what is up is a leftover.
        let found: Vec<Vec<Found>> = (0..2)
            .map(|g| {
                let len = if node.file_svc[g] { 2 } else { 1 };
                (0..len)
                    .map(|i| {
                        if node.up[g][i] {
                            Found::Running
                        } else {
                            Found::Stopped
                        }
                    })
                    .collect()
            })
            .collect();
        let steps = super::leftovers::plan(&found);
        if steps.is_empty() {
            self.join(n, Vec::new());
            return;
        }
        self.note(|| format!("{} boots: {} leftover(s) to release", name(n), steps.len()));
        self.nodes[n].releasing = Some(Release {
            steps,
            results: Vec::new(),
        });
        let d = self.rng.dur(Duration::ZERO, self.p.op_max);
        self.at(self.now + d, Ev::LeftoverStop { node: n, step: 0 });
    }

    fn leftover_stop(&mut self, n: usize, step: usize) {
        let node = &mut self.nodes[n];
        let Some(rel) = node.releasing.as_mut() else {
            return;
        };
        let Some(s) = rel.steps.get(step).cloned() else {
            return;
        };
        let (g, i) = (s.group.0, s.resource);
        let r = if node.fail_next_leftover_stop.remove(&g) {
            node.stuck[g] = true;
            Err(format!("{} failed to stop (sim)", [KEYS[g], SVCS[g]][i]))
        } else {
            node.up[g][i] = false;
            // A leftover stuck in an earlier life is released now: nothing for the admin.
            node.stuck[g] &= node.up[g].contains(&true);
            Ok(())
        };
        rel.results.push(r);
        self.counts.leftover_stops += 1;
        if step + 1 < rel.steps.len() {
            let d = self.rng.dur(Duration::ZERO, self.p.op_max);
            self.at(
                self.now + d,
                Ev::LeftoverStop {
                    node: n,
                    step: step + 1,
                },
            );
            return;
        }
        let Some(rel) = self.nodes[n].releasing.take() else {
            return;
        };
        let failed = super::leftovers::failed_groups(rel.steps.iter().zip(rel.results));
        self.join(n, failed.into_iter().collect());
    }

    /// The release is over: the daemon opens its media and takes part.
    fn join(&mut self, n: usize, not_released: Vec<(GroupId, String)>) {
        let node = &mut self.nodes[n];
        let lc = live_config(n, node.boot, &self.p);
        let cc = cluster_config_with(n, &self.p, node.file_svc);
        let mut cluster = Cluster::new(cc, self.now);
        for (g, why) in &not_released {
            cluster.leftover_not_released(self.now, *g, why);
        }
        node.proc = Some(Proc {
            live: Liveness::new(lc, self.now),
            cluster,
            comm_up: false,
            frozen: false,
            inbox: VecDeque::new(),
            outcomes: VecDeque::new(),
            order: ReportOrder::default(),
            netlog: crate::netlog::NetLog::default(),
        });
        for (g, _) in &not_released {
            self.counts.stuck += 1;
            let fix = self.rng.dur(self.p.ka, self.p.dt * 2);
            self.at(
                self.now + fix,
                Ev::AdminFix {
                    node: n,
                    group: g.0,
                    tries: 0,
                },
            );
        }
        self.note(|| format!("{} joins (not released: {not_released:?})", name(n)));
        self.pump(n);
    }

    fn running(&self, n: usize) -> bool {
        self.nodes[n].proc.as_ref().is_some_and(|p| !p.frozen)
    }

    fn can_talk(&self) -> bool {
        self.running(0)
            && self.running(1)
            && self.loss == 0
            && self.partition == 0
            && self.one_way == [0, 0]
            && self.link_cut[..self.p.media].contains(&0)
    }

    /// Lets node `n` emit and carry out everything, as the daemon's inner loop does.
    fn pump(&mut self, n: usize) {
        loop {
            let mut progressed = false;
            let Some(pr) = self.nodes[n].proc.as_mut() else {
                return;
            };
            if pr.frozen {
                return;
            }
            let mut tx = Vec::new();
            while let Some(t) = pr.live.poll_transmit() {
                tx.push(t.bytes);
            }
            let peer = NodeName::from(name(1 - n));
            let mut seen = Vec::new();
            while let Some(ev) = pr.live.poll_event() {
                progressed = true;
                if self.tracing {
                    seen.push(match &ev {
                        LivenessEvent::Message { msg, .. } => format!(
                            "message t={} seq={}",
                            msg.msg_type().unwrap_or("?"),
                            msg.get("seq").unwrap_or("?")
                        ),
                        other => format!("{other:?}"),
                    });
                }
                if let Some(input) = crate::node::on_liveness_event(
                    ev,
                    &peer,
                    &mut pr.order,
                    &mut pr.netlog,
                    self.now,
                ) {
                    if self.tracing {
                        seen.push(format!("  -> {input:?}"));
                    }
                    pr.cluster.handle(self.now, input);
                }
            }
            let mut actions = Vec::new();
            while let Some(a) = pr.cluster.poll_action() {
                actions.push(a);
            }
            progressed |= !tx.is_empty() || !actions.is_empty();
            for e in seen {
                self.note(|| format!("{} event {e}", name(n)));
            }
            for bytes in tx {
                self.transmit(n, bytes);
            }
            for a in actions {
                self.act(n, a);
            }
            if !progressed {
                return;
            }
        }
    }

    /// The length of group `g`'s resource list as node `n`'s cluster runs it.
    fn list_len(&self, n: usize, g: GroupId) -> usize {
        self.nodes[n]
            .proc
            .as_ref()
            .map_or(1, |pr| pr.cluster.group_resources(g).len().clamp(1, 2))
    }

    fn op_later(&mut self, n: usize, group: GroupId, op: Op, ok: bool, res: Vec<usize>) {
        let d = self.rng.dur(Duration::ZERO, self.p.op_max);
        let boot = self.nodes[n].boot;
        self.at(
            self.now + d,
            Ev::OpDone {
                node: n,
                boot,
                group,
                op,
                ok,
                res,
            },
        );
    }

    fn act(&mut self, n: usize, a: Action) {
        let now = self.now;
        match a {
            Action::Start(g) => {
                // The resources come up one by one as the start runs: all counted up at once.
                for i in 0..self.list_len(n, g) {
                    self.nodes[n].up[g.0][i] = true;
                }
                self.peer_starts_on_stuck(n, g.0);
                let ok = !self.nodes[n].fail_next_start.remove(&g.0);
                self.note(|| format!("{} starts group {}", name(n), g.0));
                self.op_later(n, g, Op::Start, ok, Vec::new());
            }
            Action::Stop(g) => {
                self.note(|| format!("{} stops group {}", name(n), g.0));
                self.op_later(n, g, Op::Stop, true, Vec::new());
            }
            Action::StopResources { group, resources } => {
                self.counts.reload_ops += 1;
                self.note(|| format!("{} stops {resources:?} of group {}", name(n), group.0));
                self.op_later(n, group, Op::ReloadStop, true, resources);
            }
            Action::StartResources { group, resources } => {
                self.counts.reload_ops += 1;
                for &i in &resources {
                    if let Some(u) = self.nodes[n].up[group.0].get_mut(i) {
                        *u = true;
                    }
                }
                let ok = !self.nodes[n].fail_next_reload_start.remove(&group.0);
                self.note(|| format!("{} starts {resources:?} of group {}", name(n), group.0));
                self.op_later(n, group, Op::ReloadStart, ok, resources);
            }
            Action::Restart { group, .. } => self.violate(format!(
                "{}: restart in place of group {} without a monitor",
                name(n),
                group.0
            )),
            Action::Fence => self.violate(format!(
                "{}: fence requested with no fence command configured",
                name(n)
            )),
            Action::Notify {
                group,
                state,
                reason,
            } => self.check_notify(n, group.0, state, &reason),
            Action::Announce(g) => self.check_announce(n, g.0),
            Action::Exit => {
                self.note(|| format!("{} exits", name(n)));
                // Give the last packets their way out, then the process is gone.
                self.flush_tx(n);
                self.nodes[n].proc = None;
            }
            Action::SendReport(_)
            | Action::SendStarting
            | Action::Send(_)
            | Action::SendShutdone
            | Action::CommUp => {
                let Some(pr) = self.nodes[n].proc.as_mut() else {
                    return;
                };
                match a {
                    Action::SendReport(r) => {
                        if self.tracing {
                            let ms = now.duration_since(self.t0).as_millis();
                            self.trace.push(format!(
                                "{ms:>7} ms  {} reports hold={:?} refuse={:?} want={:?} standby={:?} stable={}",
                                name(n), r.hold, r.refuse, r.want, r.standby, r.stable
                            ));
                        }
                        pr.live.send(now, r.to_message())
                    }
                    Action::SendStarting => pr.live.send(now, MessageType::Starting.message()),
                    Action::Send(m) => pr.live.send(now, m),
                    Action::SendShutdone => {
                        let mut m = MessageType::Shutdone.message();
                        m.push_str("st", "dead");
                        pr.live.send(now, m);
                    }
                    Action::CommUp if !pr.comm_up => {
                        pr.comm_up = true;
                        pr.live.set_local_status(now, NodeStatus::Active);
                    }
                    _ => {}
                }
            }
        }
    }

    /// A start on top of a leftover the peer could not stop, once the two talked for `H`:
    /// the peer's report says it holds the group, so this must never happen.
    fn peer_starts_on_stuck(&mut self, n: usize, g: usize) {
        let peer = 1 - n;
        if !self.nodes[peer].stuck[g] || self.nodes[peer].proc.is_none() {
            return;
        }
        if let Some(c) = self.connected_since
            && self.now.saturating_duration_since(c) > self.p.handover_bound()
        {
            self.violate(format!(
                "{} starts group {g} while {} holds a leftover of it it could not stop (connected since {} ms)",
                name(n),
                name(peer),
                c.duration_since(self.t0).as_millis()
            ));
        }
    }

    /// The notify hooks hear the truth: the state they are told is what is up here.
    fn check_notify(&mut self, n: usize, g: usize, state: NotifyState, reason: &str) {
        self.counts.notify += 1;
        let node = &self.nodes[n];
        let st = node.proc.as_ref().map(|pr| pr.cluster.group_states()[g]);
        let ok = match state {
            NotifyState::Active => node.up[g][0],
            NotifyState::Standby => !node.holds(g),
            NotifyState::Fault => {
                matches!(st, Some(GroupState::Failed | GroupState::StopFailed))
                    && (st == Some(GroupState::StopFailed) || !node.holds(g))
            }
        };
        if !ok || reason.is_empty() {
            self.violate(format!(
                "{}: notify {} for group {g} ({reason:?}) while up={:?}, state {st:?}",
                name(n),
                state.as_str(),
                node.up[g]
            ));
        }
    }

    /// A gratuitous ARP after a split brain: only for what runs here. The peer may hold the
    /// address again by then (a node waking from a freeze reads its queued reports in order,
    /// the oldest first): counted, since the peer announces again once this node gives up.
    fn check_announce(&mut self, n: usize, g: usize) {
        self.counts.announce += 1;
        if self.nodes[1 - n].up[g][0] {
            self.counts.announce_stale += 1;
        }
        let st = self.nodes[n]
            .proc
            .as_ref()
            .map(|pr| pr.cluster.group_states()[g]);
        if st != Some(GroupState::Running) || !self.nodes[n].up[g][0] {
            self.violate(format!(
                "{}: announce of group {g} while state {st:?}, address up here {}, on the peer {}",
                name(n),
                self.nodes[n].up[g][0],
                self.nodes[1 - n].up[g][0]
            ));
        }
    }

    fn flush_tx(&mut self, n: usize) {
        let mut tx = Vec::new();
        if let Some(pr) = self.nodes[n].proc.as_mut() {
            while let Some(t) = pr.live.poll_transmit() {
                tx.push(t.bytes);
            }
        }
        for b in tx {
            self.transmit(n, b);
        }
    }

    fn transmit(&mut self, from: usize, bytes: Vec<u8>) {
        for m in 0..self.p.media {
            if self.partition > 0 || self.link_cut[m] > 0 || self.one_way[from] > 0 {
                continue;
            }
            if self.loss > 0 && self.rng.chance(self.loss_p) {
                continue;
            }
            let lat = LAT_MIN_MS + self.rng.below(LAT_MAX_MS - LAT_MIN_MS + 1);
            let at = self.now + Duration::from_millis(lat);
            self.at(
                at,
                Ev::Deliver {
                    to: 1 - from,
                    medium: m,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    fn deliver(&mut self, to: usize, medium: usize, bytes: Vec<u8>) {
        let now = self.now;
        let Some(pr) = self.nodes[to].proc.as_mut() else {
            return;
        };
        if pr.frozen {
            if pr.inbox.len() < FROZEN_INBOX {
                pr.inbox.push_back((medium, bytes));
            }
            return;
        }
        pr.live
            .handle_datagram(now, MediumId(medium), addr(1 - to), &bytes);
        if self.tracing
            && let Ok(d) = crate::codec::decode(&bytes)
        {
            let f = |k: &str| d.msg.get(k).unwrap_or("-").to_string();
            let line = format!(
                "{} got t={} seq={} hg={} on eth{medium}",
                name(to),
                f("t"),
                f("seq"),
                f("hg")
            );
            self.note(|| line);
        }
        self.pump(to);
    }

    fn op_done(&mut self, n: usize, boot: u64, group: GroupId, op: Op, ok: bool, res: &[usize]) {
        if self.nodes[n].boot != boot || self.nodes[n].proc.is_none() {
            return;
        }
        // The agent finished: what it did is real now, whether the daemon runs or is frozen.
        let up = &mut self.nodes[n].up[group.0];
        match (op, ok) {
            // A failed start is rolled back, the whole group right to left.
            (Op::Stop, _) | (Op::Start | Op::Restart | Op::ReloadStart, false) => {
                *up = [false; 2];
            }
            (Op::ReloadStop, true) => {
                for &i in res {
                    if let Some(u) = up.get_mut(i) {
                        *u = false;
                    }
                }
            }
            _ => {}
        }
        if op == Op::ReloadStart && !ok {
            self.counts.reload_failed += 1;
        }
        self.note(|| format!("{} {op:?} group {} done ok={ok}", name(n), group.0));
        let input = ClusterInput::Outcome(OpOutcome {
            group,
            op,
            ok,
            detail: "sim".into(),
        });
        let now = self.now;
        let Some(pr) = self.nodes[n].proc.as_mut() else {
            return;
        };
        if pr.frozen {
            pr.outcomes.push_back(input);
            return;
        }
        pr.cluster.handle(now, input);
        self.pump(n);
    }

    fn admin(&mut self, n: usize, cmd: AdminCommand) {
        let now = self.now;
        let Some(pr) = self.nodes[n].proc.as_mut() else {
            return;
        };
        if pr.frozen {
            return;
        }
        // As the control socket does: a refused command changes nothing.
        if let Some(why) = pr.cluster.admin_refusal(cmd) {
            self.note(|| format!("{} refuses {cmd:?}: {why}", name(n)));
            return;
        }
        pr.cluster.handle(now, ClusterInput::Admin(cmd));
        self.note(|| format!("{} admin {cmd:?}", name(n)));
        self.pump(n);
    }

    /// `hactl reload` after the admin edited haresources here: through the real
    /// `reconfigure`; refused during a transition (then nothing changes, and the admin
    /// retries), waited for while the daemon is down or frozen.
    fn reload(&mut self, n: usize, g: usize, add: bool, tries: u32) {
        let now = self.now;
        let retry = |w: &mut World| {
            if tries < RELOAD_TRIES {
                let later = w.now + w.p.ka;
                w.at(
                    later,
                    Ev::Reload {
                        node: n,
                        group: g,
                        add,
                        tries: tries + 1,
                    },
                );
            }
        };
        if !self.running(n) || self.nodes[n].releasing.is_some() {
            retry(self);
            return;
        }
        self.nodes[n].file_svc[g] = add;
        let infos = group_infos(n, self.nodes[n].file_svc);
        let af = self.p.af;
        let Some(pr) = self.nodes[n].proc.as_mut() else {
            return;
        };
        let before: Vec<Vec<ResourceSpec>> = (0..2)
            .map(|i| pr.cluster.group_resources(GroupId(i)).to_vec())
            .collect();
        let states: Vec<GroupState> = pr.cluster.group_states().to_vec();
        self.counts.reloads += 1;
        match pr.cluster.reconfigure(now, &infos, af) {
            Ok(remap) => {
                let want: Vec<GroupId> = (0..2)
                    .filter(|&i| before[i][..] != infos[i].resources[..])
                    .map(GroupId)
                    .collect();
                let changed: Vec<GroupId> = remap.changed.iter().map(|d| d.group).collect();
                let applied_ok = remap
                    .changed
                    .iter()
                    .all(|d| d.applied_here == (states[d.group.0] == GroupState::Running));
                if remap.slots != [GroupId(0), GroupId(1)]
                    || !remap.added.is_empty()
                    || !remap.retired.is_empty()
                    || changed != want
                    || !applied_ok
                {
                    self.violate(format!(
                        "{}: reload of group {g} (service {add}) gave {remap:?}, states {states:?}",
                        name(n)
                    ));
                }
                self.note(|| format!("{} reloads: group {g} service {add}", name(n)));
                self.pump(n);
            }
            Err(busy) => {
                self.counts.reloads_refused += 1;
                let after: Vec<Vec<ResourceSpec>> = (0..2)
                    .map(|i| pr.cluster.group_resources(GroupId(i)).to_vec())
                    .collect();
                if after != before
                    || pr.cluster.group_states() != states.as_slice()
                    || pr.cluster.poll_action().is_some()
                {
                    self.violate(format!("{}: a refused reload changed something", name(n)));
                }
                self.note(|| format!("{} refuses the reload: {busy}", name(n)));
                retry(self);
            }
        }
    }

    /// The admin stops by hand what the daemon could not.
    fn unstick(&mut self, n: usize, g: usize) {
        if self.nodes[n].stuck[g] {
            self.nodes[n].stuck[g] = false;
            self.nodes[n].up[g] = [false; 2];
            self.note(|| format!("admin stops group {g}'s leftovers on {} by hand", name(n)));
        }
    }

    /// `hactl cleanup` clears every group's failure on the node: the admin stops by hand all
    /// that failed to stop there first, not only the group that called them.
    fn admin_fix(&mut self, n: usize, g: usize, tries: u32) {
        for g in 0..2 {
            self.unstick(n, g);
        }
        if self.running(n) {
            self.admin(n, AdminCommand::Cleanup);
        } else if tries < RELOAD_TRIES {
            let later = self.now + self.p.ka;
            self.at(
                later,
                Ev::AdminFix {
                    node: n,
                    group: g,
                    tries: tries + 1,
                },
            );
        }
    }

    /// kill -9 of the daemon: its process is gone, what it started stays up. Its guard (if
    /// alive) releases what the daemon held, in `guard_order`: the addresses within
    /// milliseconds, then the rest one stop after the other.
    fn kill(&mut self, n: usize, guard: bool, stuck: Option<usize>) {
        let Some(pr) = self.nodes[n].proc.take() else {
            return;
        };
        if let Some(g) = stuck {
            self.nodes[n].fail_next_leftover_stop.insert(g);
        }
        if !guard {
            return;
        }
        // What the guard was told: the held groups with their resources as the cluster runs
        // them (`Guard::sync`).
        let shape: Vec<Option<Vec<bool>>> = (0..2)
            .map(|g| {
                pr.cluster.group_states()[g].is_held().then(|| {
                    pr.cluster
                        .group_resources(GroupId(g))
                        .iter()
                        .map(|r| r.starts_with("IPaddr"))
                        .collect()
                })
            })
            .collect();
        let mut t = self.now;
        for (g, i) in super::leftovers::guard_order(&shape) {
            let is_addr = shape[g].as_ref().is_some_and(|s| s[i]);
            t += if is_addr {
                Duration::from_millis(self.rng.below(GUARD_ADDR_MS + 1))
            } else {
                self.rng.dur(Duration::ZERO, self.p.op_max)
            };
            self.at(
                t,
                Ev::GuardStop {
                    node: n,
                    group: g,
                    res: i,
                },
            );
        }
    }

    fn inject(&mut self, f: Fault) {
        self.note(|| format!("inject {f:?}"));
        let now = self.now;
        match f {
            Fault::Loss { percent, dur } => {
                self.loss += 1;
                self.loss_p = percent as f64 / 100.0;
                self.at(now + dur, Ev::End(f));
            }
            Fault::Partition { dur } => {
                self.partition += 1;
                self.at(now + dur, Ev::End(f));
            }
            Fault::LinkCut { medium, dur } => {
                self.link_cut[medium] += 1;
                self.at(now + dur, Ev::End(f));
            }
            Fault::OneWay { from, dur } => {
                self.one_way[from] += 1;
                self.at(now + dur, Ev::End(f));
            }
            Fault::Freeze { node, dur } => {
                if let Some(pr) = self.nodes[node].proc.as_mut()
                    && !pr.frozen
                {
                    pr.frozen = true;
                    self.at(now + dur, Ev::End(f));
                }
            }
            Fault::Crash { node, dur } => {
                if self.nodes[node].proc.take().is_some() {
                    self.nodes[node].up = [[false; 2]; 2];
                    self.nodes[node].stuck = [false; 2];
                    self.at(now + dur, Ev::Boot { node });
                }
            }
            Fault::Kill {
                node,
                dur,
                guard,
                stuck,
            } => {
                if self.nodes[node].proc.is_some() {
                    self.kill(node, guard, stuck);
                    self.at(now + dur, Ev::Boot { node });
                }
            }
            Fault::Shutdown { node, dur } => {
                if self.nodes[node].proc.as_ref().is_some_and(|p| !p.frozen) {
                    self.admin(node, AdminCommand::Shutdown);
                    // Booted again after `dur`, or as soon as it has exited (`boot_event`).
                    self.at(now + dur, Ev::Boot { node });
                }
            }
            Fault::Standby { node, scope } => self.admin(node, AdminCommand::Standby(scope)),
            Fault::Takeover { node, scope } => self.admin(node, AdminCommand::Takeover(scope)),
            Fault::Cleanup { node } => {
                // `hactl cleanup` comes after the admin stopped by hand what failed to stop.
                for g in 0..2 {
                    self.unstick(node, g);
                }
                self.admin(node, AdminCommand::Cleanup)
            }
            Fault::FailStart { node, group } => {
                self.nodes[node].fail_next_start.insert(group);
            }
            Fault::Reload {
                node,
                group,
                add,
                fail,
                lag,
            } => {
                if fail {
                    self.nodes[node].fail_next_reload_start.insert(group);
                }
                self.reload(node, group, add, 0);
                self.at(
                    now + lag,
                    Ev::Reload {
                        node: 1 - node,
                        group,
                        add,
                        tries: 0,
                    },
                );
            }
        }
    }

    fn end(&mut self, f: Fault) {
        self.note(|| format!("end {f:?}"));
        match f {
            Fault::Loss { .. } => self.loss -= 1,
            Fault::Partition { .. } => self.partition -= 1,
            Fault::LinkCut { medium, .. } => self.link_cut[medium] -= 1,
            Fault::OneWay { from, .. } => self.one_way[from] -= 1,
            Fault::Freeze { node, .. } => self.thaw(node),
            _ => {}
        }
    }

    /// SIGCONT: the daemon handles what queued up while it was stopped, datagrams first (its
    /// loop's `biased` select), then its agents' outcomes; its overdue timers run next.
    fn thaw(&mut self, n: usize) {
        let now = self.now;
        let Some(pr) = self.nodes[n].proc.as_mut() else {
            return;
        };
        pr.frozen = false;
        while let Some(pr) = self.nodes[n].proc.as_mut()
            && let Some((m, b)) = pr.inbox.pop_front()
        {
            pr.live.handle_datagram(now, MediumId(m), addr(1 - n), &b);
            self.pump(n);
        }
        while let Some(pr) = self.nodes[n].proc.as_mut()
            && let Some(i) = pr.outcomes.pop_front()
        {
            pr.cluster.handle(now, i);
            self.pump(n);
        }
    }

    fn boot_event(&mut self, n: usize) {
        if self.nodes[n].proc.is_some() || self.nodes[n].releasing.is_some() {
            // A graceful stop still releasing, or a start still releasing leftovers: try
            // again a little later.
            let later = self.now + self.p.ka;
            self.at(later, Ev::Boot { node: n });
            return;
        }
        self.boot(n);
    }

    /// The earliest timer of a running node.
    fn next_timer(&self) -> Option<(Instant, usize)> {
        (0..2)
            .filter_map(|n| {
                let pr = self.nodes[n].proc.as_ref()?;
                if pr.frozen {
                    return None;
                }
                let t = [pr.live.poll_timeout(), pr.cluster.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()?;
                Some((t, n))
            })
            .min()
    }

    /// Advances to `until`, checking the exclusive-while-connected invariant at every step.
    fn run_until(&mut self, until: Instant) -> Result<(), Violation> {
        loop {
            self.steps += 1;
            if self.steps > 5_000_000 {
                return Err(Violation("no progress: the machines spin".into()));
            }
            let timer = self.next_timer();
            let ev_at = self.queue.peek().map(|Reverse(t)| t.at);
            let next = [timer.map(|t| t.0.max(self.now)), ev_at]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&t| t <= until) else {
                self.advance_clock(until)?;
                return Ok(());
            };
            self.advance_clock(next)?;
            if ev_at == Some(next) {
                let Some(Reverse(t)) = self.queue.pop() else {
                    continue;
                };
                match t.ev {
                    Ev::Deliver { to, medium, bytes } => self.deliver(to, medium, bytes),
                    Ev::OpDone {
                        node,
                        boot,
                        group,
                        op,
                        ok,
                        res,
                    } => self.op_done(node, boot, group, op, ok, &res),
                    Ev::Inject(f) => self.inject(f),
                    Ev::End(f) => self.end(f),
                    Ev::Boot { node } => self.boot_event(node),
                    Ev::GuardStop { node, group, res } => {
                        // The guard's own process: it stops what it was told, whatever the
                        // daemon (or its successor) does meanwhile.
                        self.counts.guard_stops += 1;
                        // The restarted daemon holds the group again: the old guard stops
                        // what the new daemon runs (`had` does not wait for an old guard).
                        if self.nodes[node]
                            .proc
                            .as_ref()
                            .is_some_and(|pr| pr.cluster.group_states()[group].is_held())
                        {
                            self.counts.guard_after_restart += 1;
                        }
                        let nd = &mut self.nodes[node];
                        nd.up[group][res] = false;
                        // A leftover stuck in an earlier life, released now.
                        nd.stuck[group] &= nd.up[group].contains(&true);
                        self.note(|| {
                            format!("{}'s guard released {res} of group {group}", name(node))
                        });
                    }
                    Ev::LeftoverStop { node, step } => self.leftover_stop(node, step),
                    Ev::AdminFix { node, group, tries } => self.admin_fix(node, group, tries),
                    Ev::Reload {
                        node,
                        group,
                        add,
                        tries,
                    } => self.reload(node, group, add, tries),
                }
            } else if let Some((_, n)) = timer {
                let now = self.now;
                if let Some(pr) = self.nodes[n].proc.as_mut() {
                    pr.live.handle_timeout(now);
                    pr.cluster.handle_timeout(now);
                }
                self.pump(n);
            }
            if let Some(v) = self.violation.take() {
                return Err(v);
            }
            self.track()?;
        }
    }

    fn advance_clock(&mut self, to: Instant) -> Result<(), Violation> {
        self.now = self.now.max(to);
        self.check_overlap()
    }

    /// Updates the connected and both-held clocks after a step.
    fn track(&mut self) -> Result<(), Violation> {
        let talk = self.can_talk();
        match (talk, self.connected_since) {
            (true, None) => self.connected_since = Some(self.now),
            (false, Some(_)) => self.connected_since = None,
            _ => {}
        }
        for g in 0..2 {
            let both = self.nodes[0].holds(g) && self.nodes[1].holds(g);
            match (both, self.both_since[g]) {
                (true, None) => self.both_since[g] = Some(self.now),
                (false, Some(_)) => self.both_since[g] = None,
                _ => {}
            }
        }
        self.check_overlap()
    }

    fn check_overlap(&mut self) -> Result<(), Violation> {
        let Some(c) = self.connected_since else {
            return Ok(());
        };
        for g in 0..2 {
            // A leftover that could not be stopped waits for the admin (see the header).
            if self.nodes[0].stuck[g] || self.nodes[1].stuck[g] {
                continue;
            }
            if let Some(b) = self.both_since[g] {
                let over = self.now.saturating_duration_since(b.max(c));
                self.worst_overlap = self.worst_overlap.max(over);
                if over > self.p.handover_bound() {
                    return Err(Violation(format!(
                        "group {g} up on both nodes for {over:?} while they can talk (bound {:?}; \
                         both since {} ms, connected since {} ms)",
                        self.p.handover_bound(),
                        b.duration_since(self.t0).as_millis(),
                        c.duration_since(self.t0).as_millis(),
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether node `n` may run group `g`: up, and not failed there. The second value says
    /// whether it stands by for it.
    fn eligibility(&self, n: usize, g: usize) -> (bool, bool) {
        match &self.nodes[n].proc {
            Some(pr) => (
                !pr.cluster.refusal(GroupId(g)).contains(Reason::Failed),
                pr.cluster.is_standby_for(GroupId(g)),
            ),
            None => (false, false),
        }
    }

    /// Whether anything is still under way that the settle must not begin before: a start-up
    /// release, a stuck leftover waiting for the admin, a reload the admin still retries.
    fn busy(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| n.releasing.is_some() || n.stuck.contains(&true))
            || self.queue.iter().any(|Reverse(t)| {
                matches!(
                    t.ev,
                    Ev::AdminFix { .. } | Ev::Reload { .. } | Ev::LeftoverStop { .. }
                )
            })
    }

    /// The settled-state invariants; `sticky[g]` is the lone holder when the settle began.
    fn check_settled(&self, sticky: [Option<usize>; 2]) -> Result<(), Violation> {
        let err = |s: String| Err(Violation(s));
        for n in 0..2 {
            let Some(pr) = self.nodes[n].proc.as_ref() else {
                return err(format!("{} is down after the settle", name(n)));
            };
            for (g, st) in pr.cluster.group_states().iter().enumerate() {
                if matches!(st, GroupState::Starting | GroupState::Stopping) {
                    return err(format!("{}: group {g} still {st:?}", name(n)));
                }
                let len = pr.cluster.group_resources(GroupId(g)).len();
                let want: [bool; 2] =
                    std::array::from_fn(|i| *st == GroupState::Running && i < len);
                let up = self.nodes[n].up[g];
                if st.is_held() != self.nodes[n].holds(g)
                    || (*st == GroupState::Running && up != want)
                {
                    return err(format!(
                        "{}: group {g} is {st:?} with {len} resource(s) but physically up={up:?}",
                        name(n),
                    ));
                }
            }
            let peer = 1 - n;
            let Some(r) = pr.cluster.peer_report() else {
                return err(format!(
                    "{} has no report from its peer ({:?})",
                    name(n),
                    pr.cluster.peer()
                ));
            };
            let peer_holds: BTreeSet<String> = (0..2)
                .filter(|&g| self.nodes[peer].holds(g))
                .map(|g| KEYS[g].to_string())
                .collect();
            if r.hold.as_ref() != Some(&peer_holds) {
                return err(format!(
                    "{} believes {} holds {:?}, it holds {peer_holds:?}",
                    name(n),
                    name(peer),
                    r.hold
                ));
            }
        }
        for (g, lone) in sticky.into_iter().enumerate() {
            let holders: Vec<usize> = (0..2).filter(|&n| self.nodes[n].holds(g)).collect();
            let el: Vec<(bool, bool)> = (0..2).map(|n| self.eligibility(n, g)).collect();
            let able: Vec<usize> = (0..2).filter(|&n| el[n].0).collect();
            let expected: Option<Vec<usize>> = match able.as_slice() {
                [] => Some(vec![]),
                [one] => Some(vec![*one]),
                _ => {
                    let keen: Vec<usize> = (0..2).filter(|&n| !el[n].1).collect();
                    match keen.as_slice() {
                        [one] => Some(vec![*one]),
                        _ => match self.p.af {
                            AutoFailback::Off => match lone {
                                Some(s) if !el[s].1 => Some(vec![s]),
                                _ => None,
                            },
                            _ => Some(vec![g]),
                        },
                    }
                }
            };
            if holders.len() > 1 || (holders.is_empty() && !able.is_empty()) {
                return err(format!(
                    "group {g}: held by {holders:?}, eligible (may run, standby) {el:?}"
                ));
            }
            if let Some(e) = expected
                && e != holders
            {
                return err(format!(
                    "group {g}: held by {holders:?}, the rules say {e:?} (eligible {el:?}, {:?}, lone holder at settle start {:?})",
                    self.p.af, lone
                ));
            }
        }
        Ok(())
    }
}

fn draw_fault(rng: &mut Rng, p: &Params) -> Fault {
    let node = rng.below(2) as usize;
    let short = Duration::from_millis(50);
    let dur = rng.dur(short, p.dt * 3);
    let scope = [Scope::All, Scope::Local, Scope::Foreign][rng.below(3) as usize];
    let group = rng.below(2) as usize;
    match rng.below(133) {
        0..10 => Fault::Loss {
            percent: 10 + rng.below(41),
            dur,
        },
        10..22 => Fault::Partition { dur },
        22..30 => Fault::LinkCut {
            medium: rng.below(p.media as u64) as usize,
            dur,
        },
        30..38 => Fault::OneWay { from: node, dur },
        38..50 => Fault::Freeze {
            node,
            dur: rng.dur(p.dt / 2, p.dt * 3),
        },
        // Restarts also within the first second of the start.
        50..62 => Fault::Crash {
            node,
            dur: rng.dur(Duration::ZERO, p.dt * 2),
        },
        62..70 => Fault::Shutdown {
            node,
            dur: rng.dur(Duration::ZERO, p.dt),
        },
        70..80 => Fault::Standby { node, scope },
        80..88 => Fault::Takeover { node, scope },
        88..93 => Fault::Cleanup { node },
        93..100 => Fault::FailStart { node, group },
        // kill -9, restarted after 0–2 deadtimes: also before the guard finished releasing.
        100..122 => {
            let k = rng.below(22);
            Fault::Kill {
                node,
                dur: rng.dur(Duration::ZERO, p.dt * 2),
                guard: k < 10,
                stuck: (k >= 18).then_some(group),
            }
        }
        _ => {
            let fail = rng.chance(0.3);
            Fault::Reload {
                node,
                group,
                add: fail || rng.chance(0.6),
                fail,
                lag: rng.dur(Duration::ZERO, p.dt),
            }
        }
    }
}

fn draw_params(rng: &mut Rng) -> Params {
    let ka = Duration::from_millis(100 + 50 * rng.below(19));
    let dt = ka * (3 + rng.below(6) as u32);
    let op_max = rng.dur(Duration::ZERO, (dt / 2).min(Duration::from_millis(500)));
    let af = [AutoFailback::On, AutoFailback::Off, AutoFailback::Legacy][rng.below(3) as usize];
    // Half the schedules have one link: half the packets, and no link is spare.
    let media = 1 + rng.below(2) as usize;
    Params {
        ka,
        dt,
        op_max,
        af,
        media,
    }
}

/// Outcome of one schedule.
struct Run {
    faults: usize,
    virtual_time: Duration,
    worst_overlap: Duration,
    datagrams: u64,
    counts: Counts,
}

/// Runs the schedule of `seed`; `Err` holds the violation and the schedule's trace.
fn run_schedule(seed: u64, tracing: bool) -> Result<Run, (String, Vec<String>)> {
    let mut rng = Rng::new(seed);
    let p = draw_params(&mut rng);
    let mut w = World::new(seed ^ 0x5eed_5eed, p.clone(), tracing);
    // Both start at once, or one later (even after the other's initdead).
    let late = rng.below(2) as usize;
    w.boot(1 - late);
    let delay = rng.dur(Duration::ZERO, p.initdead() * 2);
    w.at(w.t0 + delay, Ev::Boot { node: late });
    let faults = 1 + rng.below(5) as usize;
    let mut t = w.t0 + rng.dur(Duration::ZERO, p.initdead());
    let mut last_end = t.max(w.t0 + delay);
    let mut schedule = Vec::new();
    for _ in 0..faults {
        let f = draw_fault(&mut rng, &p);
        let d = match f {
            Fault::Loss { dur, .. }
            | Fault::Partition { dur }
            | Fault::LinkCut { dur, .. }
            | Fault::OneWay { dur, .. }
            | Fault::Freeze { dur, .. }
            | Fault::Crash { dur, .. }
            | Fault::Kill { dur, .. }
            | Fault::Shutdown { dur, .. } => dur,
            Fault::Reload { lag, .. } => lag,
            _ => Duration::ZERO,
        };
        w.at(t, Ev::Inject(f));
        schedule.push(format!("{:>7} ms  {f:?}", (t - w.t0).as_millis()));
        last_end = last_end.max(t + d);
        // Faults overlap often: the next comes within two deadtimes.
        t += rng.dur(Duration::ZERO, p.dt * 2);
    }
    let fail = |w: &World, v: Violation| {
        let mut lines = vec![format!("params: {p:?}"), "schedule:".into()];
        lines.extend(schedule.iter().cloned());
        lines.push(format!(
            "violation at {} ms: {}",
            (w.now - w.t0).as_millis(),
            v.0
        ));
        lines.extend(w.trace.iter().cloned());
        (v.0.clone(), lines)
    };
    // Run through the faults; a graceful stop may still be releasing at their end.
    if let Err(v) = w.run_until(last_end + p.op_max + p.ka) {
        return Err(fail(&w, v));
    }
    // A release at start, a stuck leftover the admin has yet to fix, a reload the admin
    // still retries: the settle begins after them.
    for _ in 0..200 {
        if !w.busy() {
            break;
        }
        let next = w.now + p.ka;
        if let Err(v) = w.run_until(next) {
            return Err(fail(&w, v));
        }
    }
    // Every node up for the settle: boot what is still down.
    for n in 0..2 {
        if w.nodes[n].proc.is_none()
            && !w
                .queue
                .iter()
                .any(|Reverse(t)| matches!(t.ev, Ev::Boot { node } if node == n))
        {
            let now = w.now;
            w.at(now, Ev::Boot { node: n });
        }
    }
    let start = w.now + p.ka;
    if let Err(v) = w.run_until(start) {
        return Err(fail(&w, v));
    }
    let sticky: [Option<usize>; 2] = std::array::from_fn(|g| {
        let holders: Vec<usize> = (0..2).filter(|&n| w.nodes[n].holds(g)).collect();
        let steady = (0..2).all(|n| {
            w.nodes[n].proc.as_ref().is_some_and(|pr| {
                !matches!(
                    pr.cluster.group_states()[g],
                    GroupState::Starting | GroupState::Stopping
                )
            })
        });
        match holders.as_slice() {
            [one] if steady && w.can_talk() => Some(*one),
            _ => None,
        }
    });
    if let Err(v) = w.run_until(start + p.settle()) {
        return Err(fail(&w, v));
    }
    if let Err(v) = w.check_settled(sticky) {
        return Err(fail(&w, v));
    }
    Ok(Run {
        faults,
        virtual_time: w.now - w.t0,
        worst_overlap: w.worst_overlap,
        datagrams: w.order,
        counts: w.counts,
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `count` schedules from `first`; panics with the first failing seed and its trace.
fn soak(first: u64, count: u64) {
    let started = std::time::Instant::now();
    let (mut faults, mut virt, mut worst, mut events) =
        (0usize, Duration::ZERO, Duration::ZERO, 0u64);
    let mut counts = Counts::default();
    for seed in first..first + count {
        match run_schedule(seed, false) {
            Ok(r) => {
                faults += r.faults;
                virt += r.virtual_time;
                worst = worst.max(r.worst_overlap);
                events += r.datagrams;
                counts.add(&r.counts);
            }
            Err((why, _)) => {
                // Run it again with the trace on, for the report.
                let trace = run_schedule(seed, true)
                    .err()
                    .map(|e| e.1)
                    .unwrap_or_default();
                panic!(
                    "soak: seed {seed} violates an invariant: {why}\n\
                     replay: HA_SIM_SEED={seed} cargo test -p ha-core --lib soak -- --nocapture\n{}",
                    trace.join("\n")
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "soak: {count} schedules from seed {first} ({faults} faults, {:.0} s virtual, {events} events) \
         in {secs:.2} s = {:.0} schedules/s; longest overlap while connected {worst:?}; {counts:?}",
        virt.as_secs_f64(),
        count as f64 / secs.max(1e-9)
    );
}

/// Shards so that `cargo test`'s threads share the work; each runs its own seeds.
const SHARDS: u64 = 4;

fn shard(i: u64) {
    if let Some(seed) = env_u64("HA_SIM_SEED") {
        if i == 0 {
            match run_schedule(seed, true) {
                Ok(r) => println!(
                    "seed {seed}: ok ({} faults, {:?} virtual, longest overlap while connected {:?})",
                    r.faults, r.virtual_time, r.worst_overlap
                ),
                Err((why, trace)) => panic!("seed {seed}: {why}\n{}", trace.join("\n")),
            }
        }
        return;
    }
    let total = env_u64("HA_SIM_SCHEDULES").unwrap_or(10_000);
    let per = total.div_ceil(SHARDS);
    soak(i * per, per);
}

#[test]
fn soak_shard_0() {
    shard(0);
}

#[test]
fn soak_shard_1() {
    shard(1);
}

#[test]
fn soak_shard_2() {
    shard(2);
}

#[test]
fn soak_shard_3() {
    shard(3);
}

// Regressions the soak found, each as the smallest sequence that showed it.

fn params() -> Params {
    Params {
        ka: Duration::from_millis(300),
        dt: Duration::from_millis(900),
        op_max: Duration::ZERO,
        af: AutoFailback::On,
        media: 1,
    }
}

fn report_msg(hg: u64, seq: u64, hold: &[usize]) -> Message {
    let mut r = PeerReport {
        rsc_hold: HoldSet::None,
        stable: true,
        hold: Some(hold.iter().map(|&g| KEYS[g].to_string()).collect()),
        refuse: BTreeSet::new(),
        want: BTreeSet::new(),
        standby: BTreeSet::new(),
        ping: None,
        info: None,
        prio: std::collections::BTreeMap::new(),
    }
    .to_message();
    r.push_str("src", "node2");
    r.push_str("seq", format!("{seq:x}"));
    r.push_str("hg", format!("{hg:x}"));
    r
}

/// Seed 41: node2 took group 0 over a partition, then released it; its three reports
/// (holds 0 and 1, stopping 0, holds only 1) reached node1 newest first over two links, and
/// node1 kept believing node2 held group 0.
#[test]
fn seed_41_a_late_older_report_does_not_replace_a_newer_one() {
    let now = Instant::now();
    let mut c = Cluster::new(cluster_config(0, &params()), now);
    let mut order = ReportOrder::default();
    let mut log = crate::netlog::NetLog::default();
    let peer = NodeName::from("node2");
    let up = LivenessEvent::PeerUp {
        node: peer.clone(),
        status: NodeStatus::Active,
        returning_after_partition: false,
        restarted: false,
    };
    for ev in [
        up,
        LivenessEvent::Message {
            from: peer.clone(),
            msg: report_msg(1, 0x18, &[1]),
        },
        LivenessEvent::Message {
            from: peer.clone(),
            msg: report_msg(1, 0x16, &[0, 1]),
        },
        LivenessEvent::Message {
            from: peer.clone(),
            msg: report_msg(1, 0x17, &[0, 1]),
        },
    ] {
        if let Some(i) = crate::node::on_liveness_event(ev, &peer, &mut order, &mut log, now) {
            c.handle(now, i);
        }
    }
    let want: BTreeSet<String> = [KEYS[1].to_string()].into();
    assert_eq!(c.peer_report().and_then(|r| r.hold.clone()), Some(want));
    // A restarted peer (newer generation) starts its seqs again: its reports count.
    assert!(!order.is_stale(&report_msg(2, 1, &[])));
}

/// Seed 3042: node2 started during a partition; when it healed, node2's `starting` was lost
/// and its report reached node1 before any status. node1 took node2 as alive from the report
/// and never sent its own, so node2 decided alone after its report timeout and started the
/// group node1 held (auto_failback off: it should have stayed on node1).
#[test]
fn seed_3042_a_peer_back_through_its_report_gets_ours() {
    let now = Instant::now();
    let mut c = Cluster::new(cluster_config(0, &params()), now);
    c.handle(now, ClusterInput::PeerDead);
    while c.poll_action().is_some() {}
    let (r, _) = PeerReport::from_message(&report_msg(1, 0xd, &[])).expect("a report");
    c.handle(now, ClusterInput::PeerReport(r));
    let mut sent = false;
    while let Some(a) = c.poll_action() {
        sent |= matches!(a, Action::SendReport(_));
    }
    assert!(sent, "the returning peer must get our report");
}

/// Seed 1080: node1 crashed and restarted within a deadtime; node2 first heard the new
/// generation through its report, then its restart status and its `starting`, which were
/// taken for duplicates (the restart consumed with them): node2 never answered, node1
/// never got a report and the groups never went back.
#[test]
fn seed_1080_a_restart_heard_first_through_a_later_message_is_not_lost() {
    let p = params();
    let t0 = Instant::now();
    let mut a = Liveness::new(live_config(1, 1, &p), t0);
    let mut b = Liveness::new(live_config(0, 1, &p), t0);
    let drain = |l: &mut Liveness| {
        let mut v = Vec::new();
        while let Some(t) = l.poll_transmit() {
            v.push(t.bytes);
        }
        v
    };
    for bytes in drain(&mut b) {
        a.handle_datagram(t0, MediumId(0), addr(0), &bytes);
    }
    while a.poll_event().is_some() {}
    // node1 restarts: its status, its `starting`, its report, sent together.
    let t1 = t0 + Duration::from_millis(500);
    let mut b2 = Liveness::new(live_config(0, 2, &p), t1);
    b2.send(t1, MessageType::Starting.message());
    let (r, _) = PeerReport::from_message(&report_msg(2, 1, &[])).expect("a report");
    b2.send(t1, r.to_message());
    let mut out = drain(&mut b2);
    assert_eq!(out.len(), 3);
    // The report overtakes the other two.
    out.rotate_right(1);
    for bytes in &out {
        a.handle_datagram(t1, MediumId(0), addr(0), bytes);
    }
    let mut restarted = false;
    let mut starting = false;
    while let Some(ev) = a.poll_event() {
        match ev {
            LivenessEvent::PeerRestarted { .. } => restarted = true,
            LivenessEvent::PeerUp { restarted: r, .. } => restarted |= r,
            LivenessEvent::Message { msg, .. } => {
                starting |= MessageType::of(&msg) == Some(MessageType::Starting);
            }
            _ => {}
        }
    }
    assert!(restarted, "the restart must be seen");
    assert!(starting, "its `starting` must be delivered");
}

/// Seed 7592: node1 was killed with its guard, and its restart could not stop the leftover
/// of group 0 (`stop_failed`, held); node2 had taken group 0 over meanwhile. When the admin
/// cleaned node1 up, node1's report stopped holding group 0: node2 read that as the end of a
/// split brain and re-announced group 0, in the same step in which it gave group 0 back to
/// its preferred node1. The gratuitous ARPs of an address on its way out point the LAN at
/// the wrong node.
#[test]
fn seed_7592_no_announce_for_a_group_being_given_back() {
    let now = Instant::now();
    let mut c = Cluster::new(cluster_config(1, &params()), now);
    let peer = NodeName::from("node1");
    let mut order = ReportOrder::default();
    let mut log = crate::netlog::NetLog::default();
    let mut feed = |c: &mut Cluster, ev: LivenessEvent| {
        if let Some(i) = crate::node::on_liveness_event(ev, &peer, &mut order, &mut log, now) {
            c.handle(now, i);
        }
        std::iter::from_fn(|| c.poll_action()).collect::<Vec<_>>()
    };
    // node1 is dead: node2 runs both groups.
    c.handle(now, ClusterInput::PeerDead);
    for a in std::iter::from_fn(|| c.poll_action()).collect::<Vec<_>>() {
        if let Action::Start(g) = a {
            c.handle(
                now,
                ClusterInput::Outcome(OpOutcome {
                    group: g,
                    op: Op::Start,
                    ok: true,
                    detail: "sim".into(),
                }),
            );
        }
    }
    while c.poll_action().is_some() {}
    assert_eq!(c.group_states(), [GroupState::Running; 2]);
    // node1 is back holding its group 0 as a leftover it could not stop (held, refused).
    let msg = |seq: u64, hold: &[usize], refuse: &[usize]| {
        let mut r = PeerReport {
            rsc_hold: HoldSet::None,
            stable: true,
            hold: Some(hold.iter().map(|&g| KEYS[g].to_string()).collect()),
            refuse: refuse.iter().map(|&g| KEYS[g].to_string()).collect(),
            want: BTreeSet::new(),
            standby: BTreeSet::new(),
            ping: None,
            info: None,
            prio: std::collections::BTreeMap::new(),
        }
        .to_message();
        r.push_str("src", "node1");
        r.push_str("seq", format!("{seq:x}"));
        r.push_str("hg", "2");
        // Through the real codec, as it travels.
        let bytes = crate::codec::encode_netstring(&r);
        crate::codec::decode(&bytes).expect("decodes").msg
    };
    feed(
        &mut c,
        LivenessEvent::PeerUp {
            node: peer.clone(),
            status: NodeStatus::Active,
            returning_after_partition: true,
            restarted: true,
        },
    );
    feed(
        &mut c,
        LivenessEvent::Message {
            from: peer.clone(),
            msg: msg(1, &[0], &[0]),
        },
    );
    assert_eq!(c.group_states(), [GroupState::Running; 2]);
    // The admin stopped the leftover and ran `hactl cleanup`: group 0 goes back to node1.
    let out = feed(
        &mut c,
        LivenessEvent::Message {
            from: peer.clone(),
            msg: msg(2, &[], &[]),
        },
    );
    assert!(out.contains(&Action::Stop(GroupId(0))), "{out:?}");
    assert!(!out.contains(&Action::Announce(GroupId(0))), "{out:?}");
}
