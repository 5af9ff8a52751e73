//! The node: Liveness and Cluster composed into one pure machine that also holds what the
//! daemon loop used to decide (which peer message feeds which cluster input, the admin
//! refusals, comm-up). No runtime and no sockets here: `daemon.rs` turns sockets, timers,
//! signals and agent outcomes into [`Input`], and carries out every [`Output`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::NodeName;
use crate::auth::DropReason;
use crate::codec::Message;
use crate::liveness::{Liveness, LivenessConfig, LivenessEvent, MediumId, NodeStatus};
use crate::message::MessageType;
use ha_logsafe::Untrusted;

use crate::auth::Auth;
use crate::cluster::{
    Action, AdminCommand, Busy, CheckOutcome, Cluster, ClusterConfig, ClusterInput, GroupId,
    GroupInfo, OpOutcome, Remap,
};
use crate::config::AutoFailback;
use crate::config::Origin;
use crate::logcat::{LogEvent, Peer, log};
use crate::netlog::NetLog;

/// What the node is built from: the two machines' settings and the start-up facts.
#[derive(Debug)]
pub struct NodeSetup {
    /// Liveness settings (the keys among them: never recorded).
    pub live: LivenessConfig,
    /// Cluster settings.
    pub cluster: ClusterConfig,
    /// `[fence] retry`, when fencing is configured.
    pub fencing: Option<Duration>,
    /// This node's `[priority]`, if any.
    pub priority: Option<u32>,
    /// `[group] failback_delay`.
    pub failback_delay: Duration,
    /// ipfail's giveup delay.
    pub ping_grace: Duration,
    /// Groups a previous run left up that could not be released, with why.
    pub not_released: Vec<(GroupId, String)>,
    /// The first `/proc/loadavg` line.
    pub load: String,
}

/// One thing that happened to the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The deadline from [`Node::poll_timeout`] passed.
    Timeout,
    /// A fresh `/proc/loadavg` line (the `ld` field of our statuses).
    Load(String),
    /// The receive thread's running total of authentic packets it had no room for.
    QueueFull(u64),
    /// An authenticated message from the receive thread.
    Verified {
        medium: MediumId,
        from: SocketAddr,
        msg: Message,
    },
    /// A raw datagram (serial media), authenticated here.
    Datagram {
        medium: MediumId,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A serial medium failed to read.
    SerialError(String),
    /// The receive thread dropped a packet.
    Rejected {
        from: SocketAddr,
        claimed_src: Option<Untrusted>,
        reason: DropReason,
    },
    /// A group operation finished.
    Outcome(OpOutcome),
    /// A monitor ran.
    Check(CheckOutcome),
    /// How many ping nodes answer.
    Ping(u32),
    /// The fence command finished.
    Fenced { ok: bool, detail: String },
    /// An admin command (hactl, the FIFO, a signal).
    Admin { cmd: AdminCommand, origin: Origin },
    /// This host's addresses changed (read again at a reload).
    LocalAddrs(Vec<IpAddr>),
}

/// A reload's new configuration, read and checked by the daemon: the node decides what
/// starts and stops. Each `Some` is a setting that changed.
#[derive(Clone, Debug)]
pub struct Reconfig {
    /// haresources' groups, in file order.
    pub groups: Vec<GroupInfo>,
    /// ha.cf's `auto_failback`.
    pub auto_failback: AutoFailback,
    /// New keys (authkeys changed).
    pub auth: Option<Auth>,
    /// `[group] failback_delay`.
    pub failback_delay: Option<Duration>,
    /// This node's `[priority]`.
    pub priority: Option<Option<u32>>,
    /// `[fence] retry`, or no fencing.
    pub fencing: Option<Option<Duration>>,
}

/// One thing the node wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send these signed bytes on every medium.
    Transmit(Vec<u8>),
    /// Persist the peers' replay floors (fsync'ed: they must survive a crash of ours).
    StoreFloors(Vec<crate::liveness::PeerFloor>),
    /// Carry out a cluster action (start/stop/restart/reload a group, fence, notify,
    /// announce, exit); messages to the peer never come out here, they go out as `Transmit`.
    Act(Action),
    /// A graceful shutdown begins (systemd hears `STOPPING=1`).
    Stopping,
    /// The peer was declared dead, silent since `since`; `not_held` are the groups this
    /// node did not hold then (their failover clocks start).
    PeerDead {
        since: Instant,
        not_held: Vec<GroupId>,
    },
    /// The peer was heard again (failover clocks stop).
    PeerUp,
}

/// Liveness and Cluster as one machine.
pub struct Node {
    live: Liveness,
    cluster: Cluster,
    netlog: NetLog,
    order: crate::cluster::ReportOrder,
    peer: NodeName,
    queue_full_seen: u64,
    /// The instant of the last input: what the machines are told while outputs are polled.
    now: Instant,
    out: VecDeque<Output>,
}

impl Node {
    /// Builds both machines as of `start` (Liveness queues its first status).
    pub fn new(setup: NodeSetup, start: Instant) -> Self {
        let peer = setup
            .live
            .peers
            .iter()
            .find(|p| **p != setup.live.local)
            .cloned()
            .unwrap_or_else(|| NodeName::from(setup.cluster.peer.as_str()));
        let mut live = Liveness::new(setup.live, start);
        live.set_load(setup.load);
        let mut cluster = Cluster::new(setup.cluster, start);
        for (g, why) in &setup.not_released {
            cluster.leftover_not_released(start, *g, why);
        }
        cluster.set_fencing(setup.fencing);
        cluster.set_priority(setup.priority);
        cluster.set_failback_delay(setup.failback_delay);
        cluster.set_ping_grace(setup.ping_grace);
        Self {
            live,
            cluster,
            netlog: NetLog::default(),
            order: crate::cluster::ReportOrder::default(),
            peer,
            queue_full_seen: 0,
            now: start,
            out: VecDeque::new(),
        }
    }

    /// Takes one input. `Err` only for an admin command the node refuses, with the reason
    /// (the audit line is written either way).
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<(), String> {
        self.now = now;
        match input {
            Input::Timeout => {
                self.live.handle_timeout(now);
                self.cluster.handle_timeout(now);
                self.netlog.flush(now);
            }
            Input::Load(ld) => self.live.set_load(ld),
            Input::QueueFull(total) => {
                if total > self.queue_full_seen {
                    self.queue_full_seen = total;
                    self.netlog.queue_full(now, total);
                }
            }
            Input::Verified { medium, from, msg } => {
                self.live.handle_verified(now, medium, from, msg)
            }
            Input::Datagram {
                medium,
                from,
                bytes,
            } => self.live.handle_datagram(now, medium, from, &bytes),
            Input::SerialError(reason) => self
                .netlog
                .emit(now, &LogEvent::SerialError { reason: &reason }),
            Input::Rejected {
                from,
                claimed_src,
                reason,
            } => self.netlog.dropped(now, from, claimed_src, reason),
            Input::Outcome(o) => self.cluster.handle(now, ClusterInput::Outcome(o)),
            Input::Check(c) => self.cluster.handle(now, ClusterInput::Check(c)),
            Input::Ping(n) => self.cluster.handle(now, ClusterInput::PingCount(n)),
            Input::Fenced { ok, detail } => self
                .cluster
                .handle(now, ClusterInput::Fenced { ok, detail }),
            Input::Admin { cmd, origin } => return self.admit(now, cmd, origin),
            Input::LocalAddrs(a) => self.live.set_local_addrs(a),
        }
        Ok(())
    }

    /// A reload: the groups remapped by key (their starts and stops come out as actions
    /// through [`Node::poll_output`]), then the changed settings. `Busy` (nothing changed)
    /// while a group starts, stops or restarts: its outcome would meet a changed group.
    pub fn reconfigure(&mut self, now: Instant, r: Reconfig) -> Result<Remap, Busy> {
        self.now = now;
        let remap = self.cluster.reconfigure(now, &r.groups, r.auto_failback)?;
        if let Some(auth) = r.auth {
            self.live.set_auth(auth);
        }
        if let Some(d) = r.failback_delay {
            self.cluster.set_failback_delay(d);
        }
        if let Some(p) = r.priority {
            self.cluster.set_priority(p);
        }
        if let Some(f) = r.fencing {
            self.cluster.set_fencing(f);
        }
        Ok(remap)
    }

    /// The next thing to do, until `None`: the two machines run until both are quiet.
    pub fn poll_output(&mut self) -> Option<Output> {
        while self.out.is_empty() && self.round() {}
        self.out.pop_front()
    }

    /// The one next instant at which `Input::Timeout` is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.live.poll_timeout(),
            self.cluster.poll_timeout(),
            self.netlog.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The cluster machine, for status views.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The liveness machine, for status views.
    pub fn liveness(&self) -> &Liveness {
        &self.live
    }

    /// One pass over both machines, as the loop always made it: transmits, liveness events
    /// into the cluster, floors, then the cluster's actions. False when nothing moved.
    fn round(&mut self) -> bool {
        let now = self.now;
        let mut progressed = false;
        while let Some(t) = self.live.poll_transmit() {
            self.out.push_back(Output::Transmit(t.bytes));
            progressed = true;
        }
        while let Some(ev) = self.live.poll_event() {
            progressed = true;
            self.observe(&ev, now);
            if let Some(input) =
                on_liveness_event(ev, &self.peer, &mut self.order, &mut self.netlog, now)
            {
                self.cluster.handle(now, input);
            }
        }
        if let Some(floors) = self.live.poll_floors() {
            self.out.push_back(Output::StoreFloors(floors));
        }
        while let Some(a) = self.cluster.poll_action() {
            progressed = true;
            match a {
                Action::SendReport(r) => self.live.send(now, r.to_message()),
                Action::SendStarting => self.live.send(now, MessageType::Starting.message()),
                Action::Send(m) => self.live.send(now, m),
                Action::SendShutdone => {
                    log(&LogEvent::Relinquished {});
                    let mut m = MessageType::Shutdone.message();
                    m.push_str("st", "dead");
                    self.live.send(now, m);
                }
                // The cluster says it once: our status becomes `active`.
                Action::CommUp => {
                    log(&LogEvent::CommUp {});
                    self.live.set_local_status(now, NodeStatus::Active);
                }
                a => self.out.push_back(Output::Act(a)),
            }
        }
        progressed
    }

    /// What a liveness event means for the failover clocks: a dead peer starts them (from
    /// its last heartbeat), a live one stops them. Taken before the cluster reacts.
    fn observe(&mut self, ev: &LivenessEvent, now: Instant) {
        match ev {
            LivenessEvent::PeerDead { node, .. } if *node == self.peer => {
                let silent = self
                    .live
                    .snapshot(now)
                    .peers
                    .iter()
                    .find(|p| p.node == self.peer.as_str())
                    .and_then(|p| p.last_heard_ms)
                    .map(Duration::from_millis)
                    .unwrap_or_default();
                let not_held = (0..self.cluster.group_states().len())
                    .filter(|i| {
                        !self
                            .cluster
                            .group_states()
                            .get(*i)
                            .is_some_and(|s| s.is_held())
                    })
                    .map(GroupId)
                    .collect();
                self.out.push_back(Output::PeerDead {
                    since: now.checked_sub(silent).unwrap_or(now),
                    not_held,
                });
            }
            LivenessEvent::PeerUp { node, .. } | LivenessEvent::PeerRestarted { node }
                if *node == self.peer =>
            {
                self.out.push_back(Output::PeerUp)
            }
            _ => {}
        }
    }

    /// An admin command from hactl, the FIFO or a signal: the one place that refuses one
    /// (with its reason) or hands it to the cluster; either way one audit line.
    fn admit(&mut self, now: Instant, cmd: AdminCommand, origin: Origin) -> Result<(), String> {
        match cmd {
            AdminCommand::Shutdown => {
                if self.cluster.is_shutting_down() {
                    log(&LogEvent::AdminShutdownAgain { origin });
                    return Ok(());
                }
                self.out.push_back(Output::Stopping);
                log(&LogEvent::AdminShutdown { origin });
            }
            AdminCommand::Cleanup => log(&LogEvent::AdminCleanup { origin }),
            AdminCommand::Standby(_) | AdminCommand::Takeover(_) => {
                let what = describe(cmd);
                if let Some(why) = self.cluster.admin_refusal(cmd) {
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
            }
        }
        self.cluster.handle(now, ClusterInput::Admin(cmd));
        Ok(())
    }
}

/// `standby all`, `takeover local`: an admin command as the audit line names it.
pub fn describe(cmd: AdminCommand) -> String {
    match cmd {
        AdminCommand::Standby(s) => format!("standby {}", s.as_str()),
        AdminCommand::Takeover(s) => format!("takeover {}", s.as_str()),
        AdminCommand::Cleanup => "cleanup".into(),
        AdminCommand::Shutdown => "shutdown".into(),
    }
}

/// The cluster input for a liveness event, and its log line (through the limiter: every
/// event here comes from a packet, or from the absence of packets). `order` drops a peer
/// report older than the last one taken.
pub fn on_liveness_event(
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
        LivenessEvent::OwnWakeLate { late, grace } => {
            log.emit(
                now,
                &LogEvent::OwnWakeLate {
                    late_ms: late.as_millis() as u64,
                    grace_ms: grace.as_millis() as u64,
                },
            );
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
                    min_ms: crate::liveness::PEER_DEADTIME_MIN.as_millis() as u64,
                    max_ms: crate::liveness::PEER_DEADTIME_MAX.as_millis() as u64,
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
            let ty = MessageType::of(&msg);
            match ty {
                // Full and partial reports, and Heartbeat's standby/takeover protocol.
                Some(
                    t @ (MessageType::Resource
                    | MessageType::AskResources
                    | MessageType::HbTakeover),
                ) => {
                    let t = t.as_str();
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
                Some(t @ (MessageType::IpRequest | MessageType::IpRequestResp)) => {
                    let t = t.as_str();
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
                Some(MessageType::Starting) => Some(ClusterInput::PeerStarting),
                Some(MessageType::Shutdone) => {
                    log.emit(now, &LogEvent::ShutdownNotice { node: &from });
                    Some(ClusterInput::PeerShutdown)
                }
                _ => {
                    tracing::debug!(
                        node = %from,
                        "ignoring message type {:?}",
                        msg.msg_type().map(ha_logsafe::Untrusted::new)
                    );
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
