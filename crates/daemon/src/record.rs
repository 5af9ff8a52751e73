//! `had --record FILE`: the node's inputs with their instants, and its outputs, as JSON lines
//! (design.md §2); [`replay`] runs a record through a fresh [`Node`] and says where its
//! outputs differ, so that a lab run becomes a unit test. No key is ever written: the record
//! holds the auth methods, and signed packets are compared without their signatures.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use ha_config::{AuthMethod, Authkeys, AutoFailback, NodeName};
use ha_logsafe::Untrusted;
use ha_transport::auth::{Auth, DropReason};
use ha_transport::codec::Message;
use ha_transport::liveness::{LivenessConfig, MediumId, PeerFloor};
use serde::{Deserialize, Serialize};

use crate::cluster::{
    AdminCommand, CheckOutcome, CheckRule, ClusterConfig, GroupId, GroupInfo, Op, OpOutcome, Scope,
};
use crate::control::Origin;
use crate::node::{Input, Node, NodeSetup, Output, Reconfig};

/// One line of a record. Instants are nanoseconds since the node started: a replay must see
/// the very same offsets, or a deadline met by a few microseconds would be missed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// The first line: how the node was built.
    Init(Box<Init>),
    /// An input.
    In { ns: u64, input: RecInput },
    /// An output, as [`describe`] writes it.
    Out { ns: u64, output: String },
    /// The loop took every output: the inputs before this line were one wake-up.
    Drain { ns: u64 },
    /// A reload: the configuration the node was given (the files themselves are not
    /// recorded, nor the keys).
    Reconfig { ns: u64, reconfig: Box<RecReconfig> },
}

/// [`Reconfig`] without its secrets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecReconfig {
    /// (key, preferred here, resources).
    pub groups: Vec<(String, bool, Vec<String>)>,
    pub auto_failback: String,
    /// New keys: the active index and each key's method.
    pub auth: Option<(u8, Vec<(u8, String)>)>,
    pub failback_delay: Option<Duration>,
    pub priority: Option<SetTo<u32>>,
    pub fencing: Option<SetTo<Duration>>,
}

/// A changed setting that may be set to nothing: JSON would write `Some(None)` as `null`,
/// the same as unchanged.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SetTo<T> {
    pub to: Option<T>,
}

/// [`NodeSetup`] without its secrets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Init {
    pub version: String,
    pub local: String,
    pub peer: String,
    /// hb_uuid, hex.
    pub uuid: String,
    pub generation: u64,
    pub media: Vec<String>,
    pub keepalive: Duration,
    pub deadtime: Duration,
    pub warntime: Duration,
    pub initdead: Duration,
    /// The active key index and each key's method (never the key).
    pub auth_active: u8,
    pub auth_methods: Vec<(u8, String)>,
    pub unix_now_at_start: u64,
    pub local_addrs: Vec<IpAddr>,
    /// (node, generation, seq).
    pub peer_floors: Vec<(String, u64, u64)>,
    /// (key, preferred here, resources).
    pub groups: Vec<(String, bool, Vec<String>)>,
    pub auto_failback: String,
    pub report_timeout: Duration,
    pub fencing: Option<Duration>,
    pub priority: Option<u32>,
    pub failback_delay: Duration,
    pub ping_grace: Duration,
    pub not_released: Vec<(usize, String)>,
    pub load: String,
}

/// [`Input`] as written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RecInput {
    Timeout,
    Load(String),
    QueueFull(u64),
    /// `msg`: the message in classic text, without its `auth` line.
    Verified {
        medium: usize,
        from: SocketAddr,
        msg: String,
    },
    /// A serial datagram, checked with the keys when recorded: its message (as `Verified`)
    /// or `None` when it failed (a replay has no keys to check it again).
    Datagram {
        medium: usize,
        from: SocketAddr,
        msg: Option<String>,
    },
    SerialError(String),
    Rejected {
        from: SocketAddr,
        claimed_src: Option<String>,
        reason: String,
    },
    Outcome {
        group: usize,
        op: String,
        ok: bool,
        detail: String,
    },
    Check {
        group: usize,
        monitor: usize,
        ok: bool,
        rule: CheckRule,
        detail: String,
    },
    Ping(u32),
    Fenced {
        ok: bool,
        detail: String,
    },
    /// `cmd` as the audit line names it (`standby all`, `cleanup`).
    Admin {
        cmd: String,
        origin: RecOrigin,
    },
    LocalAddrs(Vec<IpAddr>),
}

/// [`Origin`] as written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecOrigin {
    Client { uid: u32, pid: Option<i32> },
    Fifo,
    Signal(String),
}

/// Writes a record as the daemon runs. Write errors stop the recording (said once), never
/// the daemon.
pub struct Recorder {
    out: Option<std::io::BufWriter<std::fs::File>>,
    start: Instant,
    /// The keys, to check serial datagrams as the node will (never written).
    auth: Auth,
    since_drain: bool,
}

impl Recorder {
    /// Creates `path` (0600: the record holds the cluster's traffic) and writes the init line.
    pub fn create(
        path: &Path,
        setup: &NodeSetup,
        keys: &Authkeys,
        start: Instant,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let mut r = Self {
            out: Some(std::io::BufWriter::new(f)),
            start,
            auth: Auth::new(keys),
            since_drain: true,
        };
        r.write(&Line::Init(Box::new(init_of(setup, keys))));
        Ok(r)
    }

    /// Records an input about to be handled at `now`.
    pub fn input(&mut self, now: Instant, input: &Input) {
        let input = rec_input(input, &self.auth);
        let ns = self.ns(now);
        self.since_drain = true;
        self.write(&Line::In { ns, input });
    }

    /// Records an output as it is carried out.
    pub fn output(&mut self, now: Instant, o: &Output) {
        let output = describe(o, self.start);
        let ns = self.ns(now);
        self.since_drain = true;
        self.write(&Line::Out { ns, output });
    }

    /// The loop took every output (written only after something happened).
    pub fn drained(&mut self, now: Instant) {
        if std::mem::take(&mut self.since_drain) {
            let ns = self.ns(now);
            self.write(&Line::Drain { ns });
            if let Some(w) = &mut self.out
                && let Err(e) = w.flush()
            {
                self.failed(&e);
            }
        }
    }

    /// Records a reload about to be handed to the node at `now`.
    pub fn reconfig(&mut self, now: Instant, r: &Reconfig) {
        if let Some(auth) = &r.auth {
            self.auth = auth.clone();
        }
        let reconfig = Box::new(RecReconfig {
            groups: r.groups.iter().map(group_line).collect(),
            auto_failback: r.auto_failback.as_str().to_string(),
            auth: r.auth.as_ref().map(|a| (a.active_index(), methods_of(a))),
            failback_delay: r.failback_delay,
            priority: r.priority.map(|to| SetTo { to }),
            fencing: r.fencing.map(|to| SetTo { to }),
        });
        let ns = self.ns(now);
        self.since_drain = true;
        self.write(&Line::Reconfig { ns, reconfig });
    }

    fn ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    fn write(&mut self, line: &Line) {
        let Some(w) = &mut self.out else { return };
        let r = serde_json::to_writer(&mut *w, line)
            .map_err(std::io::Error::other)
            .and_then(|()| w.write_all(b"\n"));
        if let Err(e) = r {
            self.failed(&e);
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.out = None;
        crate::logcat::log(&crate::logcat::LogEvent::RecordStopped {
            reason: &e.to_string(),
        });
    }
}

fn init_of(s: &NodeSetup, keys: &Authkeys) -> Init {
    let l = &s.live;
    Init {
        version: env!("CARGO_PKG_VERSION").to_string(),
        local: l.local.to_string(),
        peer: s.cluster.peer.clone(),
        uuid: l.uuid.iter().map(|b| format!("{b:02x}")).collect(),
        generation: l.generation,
        media: l.media.clone(),
        keepalive: l.keepalive,
        deadtime: l.deadtime,
        warntime: l.warntime,
        initdead: l.initdead,
        auth_active: keys.active,
        auth_methods: keys
            .keys
            .iter()
            .map(|(i, k)| (*i, k.method.as_str().to_string()))
            .collect(),
        unix_now_at_start: l.unix_now_at_start,
        local_addrs: l.local_addrs.clone(),
        peer_floors: l
            .peer_floors
            .iter()
            .map(|f| (f.node.to_string(), f.generation, f.seq))
            .collect(),
        groups: s.cluster.groups.iter().map(group_line).collect(),
        auto_failback: s.cluster.auto_failback.as_str().to_string(),
        report_timeout: s.cluster.report_timeout,
        fencing: s.fencing,
        priority: s.priority,
        failback_delay: s.failback_delay,
        ping_grace: s.ping_grace,
        not_released: s
            .not_released
            .iter()
            .map(|(g, why)| (g.0, why.clone()))
            .collect(),
        load: s.load.clone(),
    }
}

fn group_line(g: &GroupInfo) -> (String, bool, Vec<String>) {
    (
        g.key.clone(),
        g.preferred_local,
        g.resources.iter().map(|r| r.raw.to_string()).collect(),
    )
}

fn group_of((key, preferred_local, resources): &(String, bool, Vec<String>)) -> GroupInfo {
    GroupInfo {
        key: key.clone(),
        preferred_local: *preferred_local,
        resources: resources
            .iter()
            .map(|s| ha_config::ResourceSpec::from(s.as_str()))
            .collect(),
    }
}

fn methods_of(a: &Auth) -> Vec<(u8, String)> {
    a.methods()
        .into_iter()
        .map(|(i, m)| (i, m.as_str().to_string()))
        .collect()
}

/// Keys of the recorded methods, all with one stand-in secret: what they sign differs from
/// the original only in the signatures, which [`describe`] leaves out.
fn stand_in_auth(active: u8, methods: &[(u8, String)]) -> Result<Auth, String> {
    let mut keys = Vec::new();
    for (idx, m) in methods {
        let m = AuthMethod::from_name(m).ok_or_else(|| format!("unknown auth method {m}"))?;
        keys.push((*idx, m, b"replay-stand-in".to_vec()));
    }
    Ok(Auth::from_keys(active, keys))
}

fn auto_failback_of(s: &str) -> Result<AutoFailback, String> {
    match s {
        "on" => Ok(AutoFailback::On),
        "off" => Ok(AutoFailback::Off),
        "legacy" => Ok(AutoFailback::Legacy),
        other => Err(format!("unknown auto_failback {other}")),
    }
}

fn reconfig_of(r: &RecReconfig) -> Result<Reconfig, String> {
    Ok(Reconfig {
        groups: r.groups.iter().map(group_of).collect(),
        auto_failback: auto_failback_of(&r.auto_failback)?,
        auth: match &r.auth {
            Some((active, methods)) => Some(stand_in_auth(*active, methods)?),
            None => None,
        },
        failback_delay: r.failback_delay,
        priority: r.priority.as_ref().map(|p| p.to),
        fencing: r.fencing.as_ref().map(|f| f.to),
    })
}

/// The node a record describes, with a stand-in key of each recorded method: what it signs
/// differs from the original only in the signatures, which [`describe`] leaves out.
fn setup_of(i: &Init) -> Result<NodeSetup, String> {
    let mut uuid = [0u8; 16];
    for (k, b) in uuid.iter_mut().enumerate() {
        *b = i
            .uuid
            .get(2 * k..2 * k + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad uuid {:?}", i.uuid))?;
    }
    let auto_failback = auto_failback_of(&i.auto_failback)?;
    Ok(NodeSetup {
        live: LivenessConfig {
            local: NodeName::from(i.local.as_str()),
            uuid,
            generation: i.generation,
            peers: vec![NodeName::from(i.peer.as_str())],
            media: i.media.clone(),
            keepalive: i.keepalive,
            deadtime: i.deadtime,
            warntime: i.warntime,
            initdead: i.initdead,
            auth: stand_in_auth(i.auth_active, &i.auth_methods)?,
            unix_now_at_start: i.unix_now_at_start,
            local_addrs: i.local_addrs.clone(),
            peer_floors: i
                .peer_floors
                .iter()
                .map(|(n, generation, seq)| PeerFloor {
                    node: NodeName::from(n.as_str()),
                    generation: *generation,
                    seq: *seq,
                })
                .collect(),
        },
        cluster: ClusterConfig {
            local: i.local.clone(),
            peer: i.peer.clone(),
            groups: i.groups.iter().map(group_of).collect(),
            auto_failback,
            report_timeout: i.report_timeout,
        },
        fencing: i.fencing,
        priority: i.priority,
        failback_delay: i.failback_delay,
        ping_grace: i.ping_grace,
        not_released: i
            .not_released
            .iter()
            .map(|(g, why)| (GroupId(*g), why.clone()))
            .collect(),
        load: i.load.clone(),
    })
}

/// A message as classic text without its signature.
fn unsigned_text(msg: &Message) -> String {
    let mut m = msg.clone();
    m.remove("auth");
    String::from_utf8_lossy(&ha_transport::codec::encode_classic(&m)).into_owned()
}

fn message_of(text: &str) -> Result<Message, String> {
    ha_transport::codec::decode(text.as_bytes())
        .map(|d| d.msg)
        .map_err(|e| format!("recorded message does not decode: {e}"))
}

fn rec_input(input: &Input, auth: &Auth) -> RecInput {
    match input {
        Input::Timeout => RecInput::Timeout,
        Input::Load(s) => RecInput::Load(s.clone()),
        Input::QueueFull(n) => RecInput::QueueFull(*n),
        Input::Verified { medium, from, msg } => RecInput::Verified {
            medium: medium.0,
            from: *from,
            msg: unsigned_text(msg),
        },
        Input::Datagram {
            medium,
            from,
            bytes,
        } => RecInput::Datagram {
            medium: medium.0,
            from: *from,
            msg: auth.verify(bytes).ok().map(|m| unsigned_text(&m)),
        },
        Input::SerialError(e) => RecInput::SerialError(e.clone()),
        Input::Rejected {
            from,
            claimed_src,
            reason,
        } => RecInput::Rejected {
            from: *from,
            claimed_src: claimed_src.map(|c| c.as_str().to_string()),
            reason: reason.as_str().to_string(),
        },
        Input::Outcome(OpOutcome {
            group,
            op,
            ok,
            detail,
        }) => RecInput::Outcome {
            group: group.0,
            op: op_name(*op).to_string(),
            ok: *ok,
            detail: detail.clone(),
        },
        Input::Check(CheckOutcome {
            group,
            monitor,
            ok,
            rule,
            detail,
        }) => RecInput::Check {
            group: group.0,
            monitor: *monitor,
            ok: *ok,
            rule: *rule,
            detail: detail.clone(),
        },
        Input::Ping(n) => RecInput::Ping(*n),
        Input::Fenced { ok, detail } => RecInput::Fenced {
            ok: *ok,
            detail: detail.clone(),
        },
        Input::Admin { cmd, origin } => RecInput::Admin {
            cmd: crate::node::describe(*cmd),
            origin: match origin {
                Origin::Client { uid, pid } => RecOrigin::Client {
                    uid: *uid,
                    pid: *pid,
                },
                Origin::Fifo => RecOrigin::Fifo,
                Origin::Signal(s) => RecOrigin::Signal(s.to_string()),
            },
        },
        Input::LocalAddrs(a) => RecInput::LocalAddrs(a.clone()),
    }
}

const OPS: [Op; 5] = [
    Op::Start,
    Op::Stop,
    Op::Restart,
    Op::ReloadStop,
    Op::ReloadStart,
];

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Start => "start",
        Op::Stop => "stop",
        Op::Restart => "restart",
        Op::ReloadStop => "reload_stop",
        Op::ReloadStart => "reload_start",
    }
}

/// The input a record line stands for; `None` for a serial datagram that failed its check.
fn input_of(r: &RecInput) -> Result<Option<Input>, String> {
    Ok(Some(match r {
        RecInput::Timeout => Input::Timeout,
        RecInput::Load(s) => Input::Load(s.clone()),
        RecInput::QueueFull(n) => Input::QueueFull(*n),
        RecInput::Verified { medium, from, msg }
        | RecInput::Datagram {
            medium,
            from,
            msg: Some(msg),
        } => Input::Verified {
            medium: MediumId(*medium),
            from: *from,
            msg: message_of(msg)?,
        },
        RecInput::Datagram { msg: None, .. } => return Ok(None),
        RecInput::SerialError(e) => Input::SerialError(e.clone()),
        RecInput::Rejected {
            from,
            claimed_src,
            reason,
        } => Input::Rejected {
            from: *from,
            claimed_src: claimed_src.as_deref().map(Untrusted::new),
            reason: DropReason::ALL
                .into_iter()
                .find(|d| d.as_str() == reason)
                .ok_or_else(|| format!("unknown drop reason {reason}"))?,
        },
        RecInput::Outcome {
            group,
            op,
            ok,
            detail,
        } => Input::Outcome(OpOutcome {
            group: GroupId(*group),
            op: OPS
                .into_iter()
                .find(|o| op_name(*o) == op)
                .ok_or_else(|| format!("unknown operation {op}"))?,
            ok: *ok,
            detail: detail.clone(),
        }),
        RecInput::Check {
            group,
            monitor,
            ok,
            rule,
            detail,
        } => Input::Check(CheckOutcome {
            group: GroupId(*group),
            monitor: *monitor,
            ok: *ok,
            rule: *rule,
            detail: detail.clone(),
        }),
        RecInput::Ping(n) => Input::Ping(*n),
        RecInput::Fenced { ok, detail } => Input::Fenced {
            ok: *ok,
            detail: detail.clone(),
        },
        RecInput::Admin { cmd, origin } => Input::Admin {
            cmd: command_of(cmd)?,
            origin: match origin {
                RecOrigin::Client { uid, pid } => Origin::Client {
                    uid: *uid,
                    pid: *pid,
                },
                RecOrigin::Fifo => Origin::Fifo,
                RecOrigin::Signal(s) => Origin::Signal(match s.as_str() {
                    "SIGTERM" => "SIGTERM",
                    "SIGINT" => "SIGINT",
                    "SIGHUP" => "SIGHUP",
                    _ => "signal",
                }),
            },
        },
        RecInput::LocalAddrs(a) => Input::LocalAddrs(a.clone()),
    }))
}

fn command_of(s: &str) -> Result<AdminCommand, String> {
    let scope = |w: &str| Scope::parse(w).ok_or_else(|| format!("unknown scope in {s:?}"));
    match s.split_once(' ') {
        None if s == "cleanup" => Ok(AdminCommand::Cleanup),
        None if s == "shutdown" => Ok(AdminCommand::Shutdown),
        Some(("standby", w)) => Ok(AdminCommand::Standby(scope(w)?)),
        Some(("takeover", w)) => Ok(AdminCommand::Takeover(scope(w)?)),
        _ => Err(format!("unknown admin command {s:?}")),
    }
}

/// An output as a record compares it: signed packets without their signature, instants
/// relative to the node's start.
pub fn describe(o: &Output, start: Instant) -> String {
    match o {
        Output::Transmit(bytes) => match ha_transport::codec::decode(bytes) {
            Ok(d) => format!("transmit {}", unsigned_text(&d.msg).escape_debug()),
            Err(e) => format!("transmit undecodable ({e})"),
        },
        Output::PeerDead { since, not_held } => format!(
            "peer dead since {} ns, not held {:?}",
            since.saturating_duration_since(start).as_nanos(),
            not_held.iter().map(|g| g.0).collect::<Vec<_>>()
        ),
        other => format!("{other:?}"),
    }
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Inputs handed to the node.
    pub inputs: usize,
    /// Outputs compared (all equal).
    pub outputs: usize,
    /// Reloads among the inputs.
    pub reloads: usize,
}

/// Runs a record through a fresh node: `Ok` when every output came out as recorded, in the
/// same order and at the same wake-ups; `Err` names the first line that differs.
pub fn replay(text: &str) -> Result<Replayed, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().ok_or("empty record")?;
    let Line::Init(init) =
        serde_json::from_str(first).map_err(|e| format!("line 1: not a record: {e}"))?
    else {
        return Err("line 1: no init line".into());
    };
    let base = Instant::now();
    let at = |ns: u64| base + Duration::from_nanos(ns);
    let mut node = Node::new(setup_of(&init)?, base);
    let mut expected: Vec<(usize, String)> = Vec::new();
    let mut done = Replayed::default();
    for (n, text) in lines {
        let line: Line = serde_json::from_str(text).map_err(|e| format!("line {}: {e}", n + 1))?;
        match line {
            Line::Init(_) => return Err(format!("line {}: a second init line", n + 1)),
            Line::In { ns, input } => {
                if let Some(input) = input_of(&input).map_err(|e| format!("line {}: {e}", n + 1))? {
                    let _ = node.handle(at(ns), input);
                    done.inputs += 1;
                }
            }
            Line::Out { output, .. } => expected.push((n + 1, output)),
            Line::Drain { .. } => {
                let mut got = Vec::new();
                while let Some(o) = node.poll_output() {
                    got.push(describe(&o, base));
                }
                for (i, g) in got.iter().enumerate() {
                    match expected.get(i) {
                        Some((_, e)) if e == g => {}
                        Some((line, e)) => {
                            return Err(format!(
                                "line {line}: recorded {e:?}, the replay gave {g:?}"
                            ));
                        }
                        None => {
                            return Err(format!(
                                "line {}: the replay gave {g:?} more than recorded",
                                n + 1
                            ));
                        }
                    }
                }
                if let Some((line, e)) = expected.get(got.len()) {
                    return Err(format!(
                        "line {line}: recorded {e:?}, the replay gave nothing"
                    ));
                }
                done.outputs += got.len();
                expected.clear();
            }
            Line::Reconfig { ns, reconfig } => {
                let r = reconfig_of(&reconfig).map_err(|e| format!("line {}: {e}", n + 1))?;
                // A refused one (busy) changed nothing, in the daemon as here.
                let _ = node.reconfigure(at(ns), r);
                done.inputs += 1;
                done.reloads += 1;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// node2's record of `tests/record.rs`: node1 serves, is killed, node2 takes over after
    /// deadtime (200 ms / 1 s timers), a reload there adds an address to the group, then
    /// node2 stops on SIGTERM.
    const FAILOVER: &str = include_str!("../../../tests/data/record-failover.jsonl");

    #[test]
    fn the_recorded_lab_failover_replays_to_the_same_outputs() {
        let t = Instant::now();
        let r = replay(FAILOVER).expect("the replay gives the recorded outputs");
        eprintln!(
            "{} inputs, {} outputs replayed in {:?}",
            r.inputs,
            r.outputs,
            t.elapsed()
        );
        assert!(r.inputs > 50 && r.outputs > 20, "{r:?}");
        assert_eq!(r.reloads, 1, "{r:?}");
        for decision in [
            "peer dead since",
            "Act(Start(GroupId(0)))",
            "Act(StartResources { group: GroupId(0), resources: [2] })",
            "Act(Exit)",
        ] {
            assert!(FAILOVER.contains(decision), "{decision} not in the record");
        }
    }

    #[test]
    fn a_replay_notices_a_record_that_does_not_match() {
        // Without the peer's first status, the node never hears it when it did.
        let first_peer = FAILOVER
            .lines()
            .position(|l| l.contains("\"verified\"") && l.contains("src=node1"))
            .expect("a status of node1");
        let cut: String = FAILOVER
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != first_peer)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        let e = replay(&cut).expect_err("a changed record must not replay");
        eprintln!("{e}");
        assert!(e.starts_with("line "), "{e}");
        // Without the reload, the new address is never started.
        let no_reload: String = FAILOVER
            .lines()
            .filter(|l| !l.contains("\"reconfig\""))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = replay(&no_reload).expect_err("a record without its reload must not replay");
        assert!(e.contains("StartResources"), "{e}");
        // A shifted instant moves the takeover.
        let late: String = FAILOVER
            .lines()
            .map(|l| match serde_json::from_str::<Line>(l) {
                Ok(Line::In {
                    ns,
                    input: RecInput::Timeout,
                }) => serde_json::to_string(&Line::In {
                    ns: ns + 400_000_000,
                    input: RecInput::Timeout,
                })
                .expect("json"),
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        assert!(
            replay(&late).is_err(),
            "timeouts 400 ms late replayed alike"
        );
    }

    fn setup() -> NodeSetup {
        let text = FAILOVER.lines().next().expect("init line");
        let Ok(Line::Init(init)) = serde_json::from_str(text) else {
            panic!("no init line");
        };
        setup_of(&init).expect("setup")
    }

    #[test]
    fn every_input_survives_the_record_and_no_key_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.jsonl");
        let keys = Authkeys {
            active: 2,
            keys: [
                (
                    1,
                    ha_config::AuthKey {
                        method: AuthMethod::Sha1,
                        secret: b"old-secret-1".to_vec(),
                    },
                ),
                (
                    2,
                    ha_config::AuthKey {
                        method: AuthMethod::Sha256,
                        secret: b"new-secret-2".to_vec(),
                    },
                ),
            ]
            .into(),
        };
        let start = Instant::now();
        let mut rec = Recorder::create(&path, &setup(), &keys, start).expect("create");
        let from: SocketAddr = "198.18.0.2:694".parse().expect("addr");
        let mut msg = Message::with_type("status");
        msg.push_str("src", "node1");
        msg.push_bin("srcuuid", vec![0, 1, 254, 255]);
        let rule = CheckRule::failover_after(3);
        let inputs = vec![
            Input::Timeout,
            Input::Load("0.10 0.20 0.30 1/99 42".into()),
            Input::QueueFull(7),
            Input::Verified {
                medium: MediumId(1),
                from,
                msg: msg.clone(),
            },
            Input::Datagram {
                medium: MediumId(0),
                from,
                bytes: Auth::new(&keys).sign(&mut msg.clone()),
            },
            Input::SerialError("read failed".into()),
            Input::Rejected {
                from,
                claimed_src: Some(Untrusted::new("node9")),
                reason: DropReason::ALL[0],
            },
            Input::Outcome(OpOutcome {
                group: GroupId(0),
                op: Op::ReloadStart,
                ok: false,
                detail: "web failed to start".into(),
            }),
            Input::Check(CheckOutcome {
                group: GroupId(0),
                monitor: 2,
                ok: false,
                rule,
                detail: "refused".into(),
            }),
            Input::Ping(1),
            Input::Fenced {
                ok: true,
                detail: String::new(),
            },
            Input::Admin {
                cmd: AdminCommand::Standby(Scope::Foreign),
                origin: Origin::Client {
                    uid: 0,
                    pid: Some(12),
                },
            },
            Input::Admin {
                cmd: AdminCommand::Shutdown,
                origin: Origin::Signal("SIGTERM"),
            },
            Input::Admin {
                cmd: AdminCommand::Cleanup,
                origin: Origin::Fifo,
            },
            Input::LocalAddrs(vec!["198.18.0.1".parse().expect("ip")]),
        ];
        for (k, i) in inputs.iter().enumerate() {
            rec.input(start + Duration::from_millis(k as u64), i);
        }
        // A reload with new keys: their methods are written, never the keys.
        let new_keys = Authkeys {
            active: 3,
            keys: [(
                3,
                ha_config::AuthKey {
                    method: AuthMethod::Md5,
                    secret: b"reloaded-secret-3".to_vec(),
                },
            )]
            .into(),
        };
        let reconfig = Reconfig {
            groups: setup().cluster.groups,
            auto_failback: AutoFailback::Off,
            auth: Some(Auth::new(&new_keys)),
            failback_delay: Some(Duration::from_secs(5)),
            priority: Some(None),
            fencing: None,
        };
        rec.reconfig(start + Duration::from_millis(900), &reconfig);
        rec.drained(start + Duration::from_secs(1));
        drop(rec);
        let text = std::fs::read_to_string(&path).expect("record");
        for secret in ["old-secret-1", "new-secret-2", "reloaded-secret-3"] {
            assert!(!text.contains(secret), "{secret} written");
        }
        let rec_back = text
            .lines()
            .find_map(|l| match serde_json::from_str(l) {
                Ok(Line::Reconfig { reconfig, .. }) => Some(reconfig_of(&reconfig).expect("back")),
                _ => None,
            })
            .expect("the reconfig line");
        let lines = |g: &[GroupInfo]| g.iter().map(group_line).collect::<Vec<_>>();
        assert_eq!(lines(&rec_back.groups), lines(&reconfig.groups));
        assert_eq!(rec_back.auto_failback, AutoFailback::Off);
        assert_eq!(
            rec_back.auth.map(|a| (a.active_index(), a.methods())),
            Some((3, vec![(3, AuthMethod::Md5)]))
        );
        assert_eq!(rec_back.failback_delay, Some(Duration::from_secs(5)));
        assert_eq!(rec_back.priority, Some(None));
        assert_eq!(rec_back.fencing, None);
        let mut back = Vec::new();
        for l in text.lines().skip(1) {
            if let Line::In { input, .. } = serde_json::from_str(l).expect("line") {
                back.push(input_of(&input).expect("input").expect("kept"));
            }
        }
        // The serial datagram comes back as the message it carried (checked when recorded).
        let mut want = inputs;
        want[4] = Input::Verified {
            medium: MediumId(0),
            from,
            msg: msg_of(&back[4]),
        };
        assert_eq!(back, want);
        assert!(
            matches!(&back[4], Input::Verified { msg: m, .. } if m.get("src") == Some("node1"))
        );
    }

    fn msg_of(i: &Input) -> Message {
        match i {
            Input::Verified { msg, .. } => msg.clone(),
            _ => Message::new(),
        }
    }
}
