//! The deterministic soak of the core: two nodes, each a real `Liveness` and a real `Cluster`
//! glued as the daemon glues them, exchanging real signed wire packets over two virtual links,
//! driven through thousands of seeded random fault schedules in virtual time (loss,
//! partitions, one-way cuts, one link cut, freezes, crashes, graceful restarts, standby,
//! takeover, cleanup, failing starts), with the ownership invariants checked throughout.
//!
//! Replay one schedule: `HA_SIM_SEED=<seed> cargo test -p ha-daemon soak -- --nocapture`
//! (the seed is printed by a failing run). `HA_SIM_SCHEDULES=<n>` changes how many run.
//!
//! The invariants:
//! - **Exclusive while connected.** A group may be physically up on both nodes only while
//!   they cannot talk (a partition, a frozen or lossy side), plus a handover bound `H` after
//!   they can talk again: `H = keepalive + 500 ms + 6 × max latency + max op time`. Why: the
//!   first fresh status from each side arrives within one keepalive plus a latency; a message
//!   lost in the cut is repaired by a retransmission requested 50–250 ms after the gap is seen
//!   and resent at once (≤ 250 ms + 2 latencies); the report exchange that decides the loser
//!   costs two more latencies; the loser's stop takes at most one op time. "Can talk" means
//!   both processes run (not frozen, not down), no loss phase, and at least one link carries
//!   packets both ways.
//! - **Settled: exactly one holder, the right one.** After the last fault, with both nodes up
//!   and connected for a settle time (initdead + 3 deadtimes + the report timeout + 1 s), every
//!   group that some node may run is up on exactly one node, nothing is starting or stopping,
//!   and the holder is the one the rules say: a node that failed the group (and was not cleaned
//!   up) never; a node in standby for it only when the peer cannot run it; with
//!   `auto_failback on` or `legacy` the preferred node; with `off` the node that held it alone
//!   when the settle began, if it may still run it (no needless move).
//! - **Views agree.** Each node sees the peer alive, and the peer's last report lists exactly
//!   the groups the peer holds.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ha_config::{AutoFailback, NodeName};
use ha_transport::auth::{Auth, AuthMethod};
use ha_transport::codec::Message;
use ha_transport::liveness::{Liveness, LivenessConfig, LivenessEvent, MediumId, NodeStatus};

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

/// splitmix64: tiny, seedable, good enough to draw schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn dur(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.below(span + 1))
    }
}

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
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        medium: usize,
        bytes: Vec<u8>,
    },
    /// An agent operation finished (the physical state changes now).
    OpDone {
        node: usize,
        boot: u64,
        group: GroupId,
        op: Op,
        ok: bool,
    },
    Inject(Fault),
    /// The end of a fault with a duration.
    End(Fault),
    /// The node's process starts (after a crash or a graceful exit).
    Boot {
        node: usize,
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

struct Node {
    proc: Option<Proc>,
    /// Incremented on every start of the process: outcomes of an earlier life are dropped.
    boot: u64,
    /// Physically up here (resources started and not yet stopped).
    held: [bool; 2],
    fail_next_start: BTreeSet<usize>,
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

fn cluster_config(n: usize, p: &Params) -> ClusterConfig {
    ClusterConfig {
        local: name(n).into(),
        peer: name(1 - n).into(),
        groups: KEYS
            .iter()
            .enumerate()
            .map(|(g, k)| GroupInfo {
                key: (*k).into(),
                preferred_local: g == n,
                resources: vec![(*k).into()],
            })
            .collect(),
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
            held: [false; 2],
            fail_next_start: BTreeSet::new(),
        };
        World {
            p,
            t0,
            now: t0,
            rng: Rng(seed),
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

    fn boot(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.boot += 1;
        let lc = live_config(n, node.boot, &self.p);
        let cc = cluster_config(n, &self.p);
        // A power cycle or a clean exit left nothing up.
        debug_assert!(!node.held.iter().any(|&h| h));
        node.proc = Some(Proc {
            live: Liveness::new(lc, self.now),
            cluster: Cluster::new(cc, self.now),
            comm_up: false,
            frozen: false,
            inbox: VecDeque::new(),
            outcomes: VecDeque::new(),
            order: ReportOrder::default(),
            netlog: crate::netlog::NetLog::default(),
        });
        self.note(|| format!("{} boots", name(n)));
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
                if let Some(input) = crate::daemon::on_liveness_event(
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

    fn act(&mut self, n: usize, a: Action) {
        let now = self.now;
        let boot = self.nodes[n].boot;
        match a {
            Action::Start(g) | Action::Restart { group: g, .. } => {
                self.nodes[n].held[g.0] = true;
                let ok = !self.nodes[n].fail_next_start.remove(&g.0);
                let d = self.rng.dur(Duration::ZERO, self.p.op_max);
                let op = if matches!(a, Action::Start(_)) {
                    Op::Start
                } else {
                    Op::Restart
                };
                self.note(|| format!("{} starts group {}", name(n), g.0));
                self.at(
                    now + d,
                    Ev::OpDone {
                        node: n,
                        boot,
                        group: g,
                        op,
                        ok,
                    },
                );
            }
            Action::Stop(g) => {
                self.note(|| format!("{} stops group {}", name(n), g.0));
                let d = self.rng.dur(Duration::ZERO, self.p.op_max);
                self.at(
                    now + d,
                    Ev::OpDone {
                        node: n,
                        boot,
                        group: g,
                        op: Op::Stop,
                        ok: true,
                    },
                );
            }
            Action::Exit => {
                self.note(|| format!("{} exits", name(n)));
                // Give the last packets their way out, then the process is gone.
                self.flush_tx(n);
                self.nodes[n].proc = None;
            }
            other => {
                let Some(pr) = self.nodes[n].proc.as_mut() else {
                    return;
                };
                match other {
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
                    Action::SendStarting => pr.live.send(now, Message::with_type("starting")),
                    Action::Send(m) => pr.live.send(now, m),
                    Action::SendShutdone => {
                        let mut m = Message::with_type("shutdone");
                        m.push_str("st", "dead");
                        pr.live.send(now, m);
                    }
                    Action::CommUp if !pr.comm_up => {
                        pr.comm_up = true;
                        pr.live.set_local_status(now, NodeStatus::Active);
                    }
                    // No fencing, notify hooks or ARP in the simulation.
                    _ => {}
                }
            }
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
            && let Ok(d) = ha_transport::codec::decode(&bytes)
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

    fn op_done(&mut self, n: usize, boot: u64, group: GroupId, op: Op, ok: bool) {
        if self.nodes[n].boot != boot || self.nodes[n].proc.is_none() {
            return;
        }
        // The agent finished: what it did is real now, whether the daemon runs or is frozen.
        match (op, ok) {
            (Op::Stop, _) | (Op::Start | Op::Restart, false) => {
                self.nodes[n].held[group.0] = false;
            }
            _ => {}
        }
        self.note(|| format!("{} {op:?} group {} done ok={ok}", name(n), group.0));
        let input = ClusterInput::Outcome {
            group,
            op,
            ok,
            detail: "sim".into(),
        };
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
                    self.nodes[node].held = [false; 2];
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
            Fault::Cleanup { node } => self.admin(node, AdminCommand::Cleanup),
            Fault::FailStart { node, group } => {
                self.nodes[node].fail_next_start.insert(group);
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
        if self.nodes[n].proc.is_some() {
            // A graceful stop still releasing: try again a little later.
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
                    } => self.op_done(node, boot, group, op, ok),
                    Ev::Inject(f) => self.inject(f),
                    Ev::End(f) => self.end(f),
                    Ev::Boot { node } => self.boot_event(node),
                }
            } else if let Some((_, n)) = timer {
                let now = self.now;
                if let Some(pr) = self.nodes[n].proc.as_mut() {
                    pr.live.handle_timeout(now);
                    pr.cluster.handle_timeout(now);
                }
                self.pump(n);
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
            let both = self.nodes[0].held[g] && self.nodes[1].held[g];
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
                !pr.cluster.refuse.contains(&g),
                pr.cluster.standby.contains(&g),
            ),
            None => (false, false),
        }
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
                if st.is_held() != self.nodes[n].held[g] {
                    return err(format!(
                        "{}: group {g} is {st:?} but physically held={}",
                        name(n),
                        self.nodes[n].held[g]
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
                .filter(|&g| self.nodes[peer].held[g])
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
            let holders: Vec<usize> = (0..2).filter(|&n| self.nodes[n].held[g]).collect();
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
    match rng.below(100) {
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
        _ => Fault::FailStart {
            node,
            group: rng.below(2) as usize,
        },
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
}

/// Runs the schedule of `seed`; `Err` holds the violation and the schedule's trace.
fn run_schedule(seed: u64, tracing: bool) -> Result<Run, (String, Vec<String>)> {
    let mut rng = Rng(seed);
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
            | Fault::Shutdown { dur, .. } => dur,
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
        let holders: Vec<usize> = (0..2).filter(|&n| w.nodes[n].held[g]).collect();
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
    for seed in first..first + count {
        match run_schedule(seed, false) {
            Ok(r) => {
                faults += r.faults;
                virt += r.virtual_time;
                worst = worst.max(r.worst_overlap);
                events += r.datagrams;
            }
            Err((why, _)) => {
                // Run it again with the trace on, for the report.
                let trace = run_schedule(seed, true)
                    .err()
                    .map(|e| e.1)
                    .unwrap_or_default();
                panic!(
                    "soak: seed {seed} violates an invariant: {why}\n\
                     replay: HA_SIM_SEED={seed} cargo test -p ha-daemon soak -- --nocapture\n{}",
                    trace.join("\n")
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "soak: {count} schedules from seed {first} ({faults} faults, {:.0} s virtual, {events} events) \
         in {secs:.2} s = {:.0} schedules/s; longest overlap while connected {worst:?}",
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
        if let Some(i) = crate::daemon::on_liveness_event(ev, &peer, &mut order, &mut log, now) {
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
    b2.send(t1, Message::with_type("starting"));
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
                starting |= msg.msg_type() == Some("starting");
            }
            _ => {}
        }
    }
    assert!(restarted, "the restart must be seen");
    assert!(starting, "its `starting` must be delivered");
}
