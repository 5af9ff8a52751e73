//! Prometheus metrics: what the loop counts between scrapes (`Metrics`: durations, failures,
//! monitor results), rendered with a status snapshot into the text exposition format (`render`).
//! Pure: instants come from the caller. The HTTP side is `metrics_http.rs`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::cluster::Op;
use crate::control::Snapshot;

/// Upper bounds (seconds) of the duration histograms: from a few milliseconds (a handover,
/// an address) to a minute (a slow service start).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative histogram with the fixed `BUCKETS`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if s <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += s;
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Counters and histograms the daemon loop feeds; gauges come from the snapshot at scrape time.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Group key → peer silent since (its last heartbeat), for groups to take over.
    failover_from: BTreeMap<String, Instant>,
    /// Group key → our release began, until the peer reports holding it.
    handover_from: BTreeMap<String, Instant>,
    failover: BTreeMap<String, Histogram>,
    handover: BTreeMap<String, Histogram>,
    /// (group, op) → durations of successful and failed operations.
    ops: BTreeMap<(String, &'static str), Histogram>,
    op_failures: BTreeMap<(String, &'static str), u64>,
    /// (resource, check passed) → count.
    monitor: BTreeMap<(String, bool), u64>,
    /// Transition kind (`starting`, `stopped`, `failed`…) → count.
    transitions: BTreeMap<String, u64>,
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Start => "start",
        Op::Stop => "stop",
        Op::Restart => "restart",
        Op::ReloadStop => "reload_stop",
        Op::ReloadStart => "reload_start",
    }
}

impl Metrics {
    /// The peer was declared dead; it was last heard at `silent_since`. Every group not held
    /// here is now a failover whose duration ends when it runs here.
    pub fn peer_dead(&mut self, silent_since: Instant, not_held_here: &[String]) {
        for g in not_held_here {
            self.failover_from.insert(g.clone(), silent_since);
        }
    }

    /// The peer is heard again: pending failovers are moot.
    pub fn peer_up(&mut self) {
        self.failover_from.clear();
    }

    /// We began releasing `group` while the peer was alive: a handover, measured until the
    /// peer reports holding it (`peer_holds`).
    pub fn release_started(&mut self, now: Instant, group: &str) {
        self.handover_from.insert(group.to_string(), now);
    }

    /// We began starting `group`: whatever handover of it was pending did not happen.
    pub fn start_started(&mut self, group: &str) {
        self.handover_from.remove(group);
    }

    /// Whether any handover waits for the peer's report (so the loop can skip the check).
    pub fn handover_pending(&self) -> bool {
        !self.handover_from.is_empty()
    }

    /// The groups whose handover is pending.
    pub fn pending_handovers(&self) -> impl Iterator<Item = &str> {
        self.handover_from.keys().map(String::as_str)
    }

    /// The peer's report says it holds `group`: a pending handover of it is complete.
    pub fn peer_holds(&mut self, now: Instant, group: &str) {
        if let Some(t0) = self.handover_from.remove(group) {
            self.handover
                .entry(group.to_string())
                .or_default()
                .observe(now.saturating_duration_since(t0));
        }
    }

    /// A group operation finished after `elapsed`.
    pub fn outcome(&mut self, now: Instant, group: &str, op: Op, ok: bool, elapsed: Duration) {
        let name = op_name(op);
        self.ops
            .entry((group.to_string(), name))
            .or_default()
            .observe(elapsed);
        if !ok {
            *self
                .op_failures
                .entry((group.to_string(), name))
                .or_insert(0) += 1;
        }
        if ok
            && op == Op::Start
            && let Some(t0) = self.failover_from.remove(group)
        {
            self.failover
                .entry(group.to_string())
                .or_default()
                .observe(now.saturating_duration_since(t0));
        }
    }

    /// A monitor check on `resource` passed or failed.
    pub fn monitor(&mut self, resource: &str, ok: bool) {
        *self.monitor.entry((resource.to_string(), ok)).or_insert(0) += 1;
    }

    /// The cluster recorded a transition (`what`: starting, running, stopping, failed…).
    pub fn transition(&mut self, what: &str) {
        *self.transitions.entry(what.to_string()).or_insert(0) += 1;
    }

    /// The failover histogram of `group` (tests).
    pub fn failover_of(&self, group: &str) -> Option<&Histogram> {
        self.failover.get(group)
    }

    /// The handover histogram of `group` (tests).
    pub fn handover_of(&self, group: &str) -> Option<&Histogram> {
        self.handover.get(group)
    }
}

/// Escapes a label value as the exposition format requires (`\`, `"`, newline).
fn esc(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// One metric family at a time: `# HELP` and `# TYPE`, then its samples.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        for (le, c) in BUCKETS.iter().zip(h.counts) {
            let le = le.to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &l, c as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// The statuses a node or link is shown in; each gets a 0/1 sample so a dashboard can
/// graph any of them and an alert can test `== 1` without regexes.
const PEER_STATUSES: [&str; 5] = ["init", "up", "active", "dead", "gone"];
const GROUP_STATES: [&str; 6] = [
    "stopped",
    "starting",
    "running",
    "stopping",
    "failed",
    "stop_failed",
];

/// The exposition text for one scrape.
pub fn render(s: &Snapshot, m: &Metrics) -> String {
    let mut o = Out(String::new());
    let node = s.node.name.as_str();
    let peer = s.peer.name.as_str();

    o.family(
        "had_info",
        "gauge",
        "Constant 1; the labels name this node, its peer and had's version.",
    );
    o.sample(
        "had_info",
        &[("node", node), ("peer", peer), ("version", &s.version)],
        1.0,
    );
    o.family(
        "had_uptime_seconds",
        "gauge",
        "Seconds since this had started.",
    );
    o.sample("had_uptime_seconds", &[], secs(s.node.uptime_ms));
    o.family(
        "had_node_active",
        "gauge",
        "1 when this node advertises status active (communication with the peer is up).",
    );
    o.sample(
        "had_node_active",
        &[("node", node)],
        f64::from(u8::from(s.node.status == "active")),
    );
    o.family(
        "had_node_standby",
        "gauge",
        "1 while this node is in standby for some groups.",
    );
    o.sample(
        "had_node_standby",
        &[("node", node)],
        f64::from(u8::from(s.node.standby)),
    );
    o.family(
        "had_node_shutting_down",
        "gauge",
        "1 while this node releases everything to stop.",
    );
    o.sample(
        "had_node_shutting_down",
        &[("node", node)],
        f64::from(u8::from(s.node.shutting_down)),
    );

    o.family(
        "had_peer_status",
        "gauge",
        "1 for the peer's current status (init, up, active, dead, gone), 0 for the others.",
    );
    for st in PEER_STATUSES {
        let v = f64::from(u8::from(s.peer.status == st));
        o.sample("had_peer_status", &[("peer", peer), ("status", st)], v);
    }
    o.family(
        "had_peer_last_heartbeat_age_seconds",
        "gauge",
        "Seconds since the last authenticated heartbeat from the peer (absent: never heard).",
    );
    if let Some(ms) = s.peer.last_heard_ms {
        o.sample(
            "had_peer_last_heartbeat_age_seconds",
            &[("peer", peer)],
            secs(ms),
        );
    }
    o.family(
        "had_peer_deadtime_seconds",
        "gauge",
        "Silence after which the peer is declared dead.",
    );
    o.sample(
        "had_peer_deadtime_seconds",
        &[("peer", peer)],
        secs(s.peer.deadtime_ms),
    );
    o.family(
        "had_link_up",
        "gauge",
        "1 when the heartbeat link to the peer is up.",
    );
    for l in &s.peer.links {
        let v = f64::from(u8::from(l.status == "up"));
        o.sample("had_link_up", &[("peer", peer), ("link", &l.name)], v);
    }
    o.family(
        "had_link_last_heartbeat_age_seconds",
        "gauge",
        "Seconds since the last heartbeat on this link.",
    );
    for l in &s.peer.links {
        if let Some(ms) = l.last_heard_ms {
            o.sample(
                "had_link_last_heartbeat_age_seconds",
                &[("peer", peer), ("link", &l.name)],
                secs(ms),
            );
        }
    }

    o.family(
        "had_packets_sent_total",
        "counter",
        "Heartbeat packets sent (each medium counts once).",
    );
    o.sample("had_packets_sent_total", &[], s.packets.sent as f64);
    o.family(
        "had_packets_received_total",
        "counter",
        "Heartbeat packets received and accepted.",
    );
    o.sample("had_packets_received_total", &[], s.packets.received as f64);
    o.family(
        "had_packets_dropped_total",
        "counter",
        "Heartbeat packets dropped, by reason (bad_auth, replay, malformed…).",
    );
    for (reason, n) in &s.packets.dropped {
        o.sample(
            "had_packets_dropped_total",
            &[("reason", reason)],
            *n as f64,
        );
    }
    o.family(
        "had_late_heartbeats_total",
        "counter",
        "Heartbeats that arrived after warntime.",
    );
    o.sample("had_late_heartbeats_total", &[], s.packets.late as f64);
    o.family(
        "had_packets_own_name_elsewhere_total",
        "counter",
        "Signed packets carrying this node's name from an address not ours (a clone or a replay).",
    );
    o.sample(
        "had_packets_own_name_elsewhere_total",
        &[],
        s.packets.own_name_elsewhere as f64,
    );
    o.family(
        "had_rexmit_limited_total",
        "counter",
        "Retransmissions and NAKs withheld by the per-peer rate limit.",
    );
    o.sample(
        "had_rexmit_limited_total",
        &[],
        s.packets.rexmit_limited as f64,
    );

    o.family(
        "had_group_held",
        "gauge",
        "1 when this node holds the resource group.",
    );
    for g in &s.groups {
        let v = f64::from(u8::from(g.held_by.as_deref() == Some(node)));
        o.sample("had_group_held", &[("group", &g.key)], v);
    }
    o.family(
        "had_group_state",
        "gauge",
        "1 for the group's state on this node, 0 for the other states.",
    );
    for g in &s.groups {
        for st in GROUP_STATES {
            let v = f64::from(u8::from(g.state == st));
            o.sample("had_group_state", &[("group", &g.key), ("state", st)], v);
        }
    }
    o.family(
        "had_group_refused",
        "gauge",
        "1 when this node refuses the group (failed, unhealthy, standby, shutdown or ping).",
    );
    for g in &s.groups {
        let v = f64::from(u8::from(g.refused_here));
        o.sample("had_group_refused", &[("group", &g.key)], v);
    }

    o.family(
        "had_transitions_total",
        "counter",
        "Resource group transitions on this node, by kind.",
    );
    for (what, n) in &m.transitions {
        o.sample("had_transitions_total", &[("what", what)], *n as f64);
    }
    o.family(
        "had_failover_duration_seconds",
        "histogram",
        "From the peer's last heartbeat to the group running here, after the peer died.",
    );
    for (g, h) in &m.failover {
        o.histogram("had_failover_duration_seconds", &[("group", g)], h);
    }
    o.family(
        "had_handover_duration_seconds",
        "histogram",
        "From this node beginning a planned release to the peer reporting it holds the group.",
    );
    for (g, h) in &m.handover {
        o.histogram("had_handover_duration_seconds", &[("group", g)], h);
    }
    o.family(
        "had_group_operation_duration_seconds",
        "histogram",
        "Duration of group operations (start, stop, restart), successful or not.",
    );
    for ((g, op), h) in &m.ops {
        o.histogram(
            "had_group_operation_duration_seconds",
            &[("group", g), ("op", op)],
            h,
        );
    }
    o.family(
        "had_group_operation_failures_total",
        "counter",
        "Group operations that failed.",
    );
    for ((g, op), n) in &m.op_failures {
        o.sample(
            "had_group_operation_failures_total",
            &[("group", g), ("op", op)],
            *n as f64,
        );
    }
    o.family(
        "had_monitor_checks_total",
        "counter",
        "Monitor checks run, by resource and result (pass, fail).",
    );
    for ((r, ok), n) in &m.monitor {
        let result = if *ok { "pass" } else { "fail" };
        o.sample(
            "had_monitor_checks_total",
            &[("resource", r), ("result", result)],
            *n as f64,
        );
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{GroupStatus, Link, LocalNode, Packets, PeerNode, SCHEMA_VERSION};

    fn snap() -> Snapshot {
        Snapshot {
            schema: SCHEMA_VERSION,
            version: "0.1.0".into(),
            nodes: vec!["node1".into(), "node2".into()],
            node: LocalNode {
                name: "node1".into(),
                status: "active".into(),
                pid: 1,
                uptime_ms: 12_500,
                generation: 3,
                standby: false,
                shutting_down: false,
                auto_failback: "on".into(),
                keepalive_ms: 1000,
                deadtime_ms: 5000,
                auth: "md5".into(),
                realtime: None,
            },
            peer: PeerNode {
                name: "node2".into(),
                status: "active".into(),
                last_heard_ms: Some(250),
                deadtime_ms: 5000,
                generation: Some(4),
                links: vec![Link {
                    name: "eth0".into(),
                    status: "up".into(),
                    last_heard_ms: Some(250),
                }],
                rsc_hold: Some("none".into()),
                stable: Some(true),
            },
            groups: vec![GroupStatus {
                key: "IPaddr::198.18.0.100/24/eth0 \"q\"".into(),
                preferred: "node1".into(),
                state: "running".into(),
                held_by: Some("node1".into()),
                refused_here: false,
                refused_for: Vec::new(),
                priority: None,
                resources: vec![],
            }],
            packets: Packets {
                sent: 10,
                received: 9,
                dropped: [("bad_auth".to_string(), 2u64), ("replay".into(), 0)]
                    .into_iter()
                    .collect(),
                late: 1,
                own_name_elsewhere: 3,
                rexmit_limited: 0,
            },
            transitions: vec![],
        }
    }

    #[test]
    fn failover_runs_from_last_heartbeat_to_running_here() {
        let t0 = Instant::now();
        let mut m = Metrics::default();
        m.peer_dead(t0, &["web".to_string()]);
        // A failed start does not end the failover; the successful one does.
        m.outcome(
            t0 + Duration::from_secs(5),
            "web",
            Op::Start,
            false,
            Duration::ZERO,
        );
        assert!(m.failover_of("web").is_none());
        m.outcome(
            t0 + Duration::from_millis(5040),
            "web",
            Op::Start,
            true,
            Duration::from_millis(40),
        );
        let h = m.failover_of("web").expect("observed");
        assert_eq!(h.count(), 1);
        assert!((h.sum - 5.04).abs() < 1e-9, "{}", h.sum);
        // Once: a later start (failback) is not a failover.
        m.outcome(
            t0 + Duration::from_secs(9),
            "web",
            Op::Start,
            true,
            Duration::ZERO,
        );
        assert_eq!(m.failover_of("web").map(Histogram::count), Some(1));
        // Peer back before we took over: nothing to measure.
        m.peer_dead(t0, &["db".to_string()]);
        m.peer_up();
        m.outcome(
            t0 + Duration::from_secs(9),
            "db",
            Op::Start,
            true,
            Duration::ZERO,
        );
        assert!(m.failover_of("db").is_none());
    }

    #[test]
    fn handover_ends_when_the_peer_holds_it_or_never_if_we_start_it_again() {
        let t0 = Instant::now();
        let mut m = Metrics::default();
        m.release_started(t0, "web");
        assert!(m.handover_pending());
        m.peer_holds(t0 + Duration::from_millis(30), "web");
        assert!(!m.handover_pending());
        let h = m.handover_of("web").expect("observed");
        assert_eq!(h.count(), 1);
        assert_eq!(h.counts[3], 1, "30 ms lands in le=0.05 and above only");
        assert_eq!(h.counts[2], 0);
        m.release_started(t0, "db");
        m.start_started("db");
        m.peer_holds(t0 + Duration::from_secs(1), "db");
        assert!(m.handover_of("db").is_none());
    }

    #[test]
    fn render_has_help_type_and_escaped_labels() {
        let mut m = Metrics::default();
        m.transition("starting");
        m.monitor("apache2", true);
        m.monitor("apache2", false);
        m.outcome(
            Instant::now(),
            "web",
            Op::Stop,
            false,
            Duration::from_millis(120),
        );
        let t = render(&snap(), &m);
        for line in [
            "had_peer_status{peer=\"node2\",status=\"active\"} 1",
            "had_peer_status{peer=\"node2\",status=\"dead\"} 0",
            "had_peer_last_heartbeat_age_seconds{peer=\"node2\"} 0.25",
            "had_link_up{peer=\"node2\",link=\"eth0\"} 1",
            "had_packets_dropped_total{reason=\"bad_auth\"} 2",
            "had_late_heartbeats_total 1",
            "had_packets_own_name_elsewhere_total 3",
            "had_group_held{group=\"IPaddr::198.18.0.100/24/eth0 \\\"q\\\"\"} 1",
            "had_transitions_total{what=\"starting\"} 1",
            "had_monitor_checks_total{resource=\"apache2\",result=\"fail\"} 1",
            "had_group_operation_failures_total{group=\"web\",op=\"stop\"} 1",
            "had_group_operation_duration_seconds_bucket{group=\"web\",op=\"stop\",le=\"0.25\"} 1",
            "had_group_operation_duration_seconds_bucket{group=\"web\",op=\"stop\",le=\"0.1\"} 0",
            "had_group_operation_duration_seconds_bucket{group=\"web\",op=\"stop\",le=\"+Inf\"} 1",
            "had_group_operation_duration_seconds_count{group=\"web\",op=\"stop\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing `{line}` in\n{t}");
        }
        // Every sample belongs to a family announced with HELP and TYPE before it.
        let mut typed = std::collections::BTreeSet::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap_or("").to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap_or("");
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "untyped sample `{l}`");
            }
        }
    }
}
