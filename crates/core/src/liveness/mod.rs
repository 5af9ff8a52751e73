//! Peer liveness as a pure (sans-IO) state machine: status heartbeats out,
//! authentication, generation and sequence checks in, deadtime/initdead/
//! warntime timers, link tracking and retransmission. Time is passed in;
//! packets and events are pulled out with `poll_*`, quinn-proto style.

mod history;
mod peer;
mod seq;
mod snapshot;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sim;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::NodeName;
use ha_logsafe::Untrusted;

use crate::auth::{Auth, DropReason};
use crate::codec::{self, Message};
use crate::message::{self, Generation, MessageType, Millis, Seq};

use history::{History, Lookup, Sent};
use peer::{LinkState, Peer, PeerState};
use seq::Verdict;

pub use snapshot::{LinkSnapshot, LivenessSnapshot, PeerSnapshot};

/// Most seqs answered for one `NS_rexmit` request (Heartbeat's limit).
const MAX_REXMIT_PER_REQUEST: u64 = 50;
/// A seq is not resent again within this time (`max_rexmit_delay` − 10 ms).
const RESEND_GUARD: Duration = Duration::from_millis(240);
/// Range of the random wait before the first request for a missing seq.
const FIRST_REQUEST_MIN_MS: u64 = 50;
const FIRST_REQUEST_MAX_MS: u64 = 250;
/// Source addresses remembered for the once-per-address "another node uses
/// our name" report; the set is cleared when full so a flood of spoofed
/// sources cannot grow it.
const MAX_WARNED_ADDRS: usize = 1024;
/// A wake-up later than this (and than half a keepalive) means we were not running: timers
/// resolve to the millisecond, and a late millisecond or two is only their rounding.
const STALL_MIN: Duration = Duration::from_millis(2);
/// Retransmission answers and NAKs one peer may get in a burst: one full
/// Heartbeat request (`MAX_REXMIT_PER_REQUEST`).
const REXMIT_BURST: u64 = 50;
/// Sustained retransmission answers and NAKs per second and peer. A peer that
/// really lost packets needs at most what we send (a status per keepalive and
/// the odd report); a replayed or forged `NS_rexmit` flood gets no more than this.
const REXMIT_PER_SEC: u64 = 25;
/// Range an advertised `dt` is clamped into. Below 50 ms one scheduling
/// hiccup of a loaded host declares the peer dead (the shortest setting the
/// bench found safe under stress-ng is keepalive 10 ms, deadtime 50 ms; ha.cf
/// validation warns that a shorter deadtime means this); above an hour a peer
/// is in effect never declared dead (`dt=ffffffffffffffff` would disable
/// failover for good).
pub const PEER_DEADTIME_MIN: Duration = Duration::from_millis(50);
/// Upper end of the range for an advertised `dt` (see [`PEER_DEADTIME_MIN`]).
pub const PEER_DEADTIME_MAX: Duration = Duration::from_secs(3600);

/// Everything the liveness machine needs to know at start.
#[derive(Debug, Clone)]
pub struct LivenessConfig {
    /// This node's name (`src` of what we send).
    pub local: NodeName,
    /// This node's UUID (`hb_uuid`).
    pub uuid: [u8; 16],
    /// This start's generation (`hb_generation`).
    pub generation: u64,
    /// The other configured nodes.
    pub peers: Vec<NodeName>,
    /// Link names (interface names); the index is the [`MediumId`].
    pub media: Vec<String>,
    /// Interval between our status packets.
    pub keepalive: Duration,
    /// Our deadtime, advertised as `dt`.
    pub deadtime: Duration,
    /// A status interval above this is reported as late.
    pub warntime: Duration,
    /// Deadtime for peers not heard from since start.
    pub initdead: Duration,
    /// Keys for signing and verifying.
    pub auth: Auth,
    /// Unix time in seconds at the `now` passed to [`Liveness::new`] (for `ts`).
    pub unix_now_at_start: u64,
    /// This host's addresses: a signed packet with our name from anywhere
    /// else comes from another node that uses our name.
    pub local_addrs: Vec<IpAddr>,
    /// What each peer may no longer send, as persisted by an earlier run
    /// (`persist::load_peer_floors`).
    pub peer_floors: Vec<PeerFloor>,
}

/// The oldest evidence still accepted from a peer: anything with an older
/// generation, or this generation and a seq up to `seq`, is a replay. Kept in
/// the state dir so that it survives our restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFloor {
    /// The peer.
    pub node: NodeName,
    /// Its highest generation seen.
    pub generation: u64,
    /// Highest seq of that generation already consumed (0: none).
    pub seq: u64,
}

/// Index of a medium (link) in [`LivenessConfig::media`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MediumId(pub usize);

/// A packet to send on every medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The signed wire bytes.
    pub bytes: Vec<u8>,
}

/// A node's status as Heartbeat names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    /// Never heard from (or, sent by a peer, still starting).
    Init,
    /// Running, communication not yet up.
    Up,
    /// Running and managing resources.
    Active,
    /// Declared dead.
    Dead,
}

impl NodeStatus {
    /// `init`, `up`, `active` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Init => "init",
            NodeStatus::Up => "up",
            NodeStatus::Active => "active",
            NodeStatus::Dead => "dead",
        }
    }

    /// Parses a status word; unknown words are `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "init" => Some(NodeStatus::Init),
            "up" => Some(NodeStatus::Up),
            "active" => Some(NodeStatus::Active),
            "dead" => Some(NodeStatus::Dead),
            _ => None,
        }
    }
}

/// Something the cluster layer should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum LivenessEvent {
    /// First status from a peer, or a status after it was declared dead.
    PeerUp {
        /// The peer.
        node: NodeName,
        /// The status it reports.
        status: NodeStatus,
        /// Declared dead, now heard again with the same generation (split brain healed).
        returning_after_partition: bool,
        /// Heard again with a newer generation than before.
        restarted: bool,
    },
    /// A live peer's reported status changed.
    PeerStatus {
        /// The peer.
        node: NodeName,
        /// Its new status.
        status: NodeStatus,
    },
    /// Nothing from the peer on any medium within its deadtime (or initdead).
    PeerDead {
        /// The peer.
        node: NodeName,
        /// Nothing was ever received from it (initdead expired).
        never_heard: bool,
    },
    /// A live peer started again (newer generation).
    PeerRestarted {
        /// The peer.
        node: NodeName,
    },
    /// A link to a peer carries packets again.
    LinkUp {
        /// The peer.
        node: NodeName,
        /// Link (interface) name.
        link: String,
    },
    /// Nothing from a peer on this link within its deadtime.
    LinkDown {
        /// The peer.
        node: NodeName,
        /// Link (interface) name.
        link: String,
    },
    /// Two statuses from a peer arrived more than warntime apart.
    Late {
        /// The peer.
        node: NodeName,
        /// Time between the two statuses.
        interval: Duration,
    },
    /// An accepted, in-order application message for us (or for all).
    Message {
        /// The sender.
        from: NodeName,
        /// The message, control fields included.
        msg: Message,
    },
    /// A peer advertised a `dt` outside [`PEER_DEADTIME_MIN`]..=[`PEER_DEADTIME_MAX`]
    /// (reported once per peer).
    DeadtimeClamped {
        /// The peer.
        node: NodeName,
        /// The advertised value, in milliseconds.
        advertised_ms: u64,
        /// The deadtime it is judged by instead.
        used: Duration,
    },
    /// A correctly signed packet carrying our own node name arrived from an
    /// address that is not ours (reported once per address).
    OwnNameElsewhere {
        /// Source address.
        addr: SocketAddr,
    },
    /// The peer uses this node's `hb_uuid` (a cloned state directory).
    SameUuid {
        /// The peer.
        node: NodeName,
    },
    /// A packet failed authentication (one event per packet: the log limiter decides).
    AuthFailed {
        /// Source address.
        addr: SocketAddr,
        /// The `src` the packet claims, escaped and cut short.
        claimed_src: Option<Untrusted>,
        /// Why it failed.
        reason: DropReason,
    },
    /// Our own deadline was met late (this process or the whole host was paused): the
    /// peers' silence meanwhile proves nothing, so the judgement of those whose time ran out
    /// waits `grace` more.
    OwnWakeLate {
        /// How late the wake-up was.
        late: Duration,
        /// The extra wait given to the peers whose time ran out.
        grace: Duration,
    },
    /// The peer says a packet we asked for again is gone for good (`NS_nak_rexmit`).
    Lost {
        /// The peer.
        node: NodeName,
        /// The lost sequence number.
        seq: u64,
    },
}

/// The liveness state machine.
#[derive(Debug)]
pub struct Liveness {
    cfg: LivenessConfig,
    start: Instant,
    local_status: NodeStatus,
    load: String,
    /// Last seq used; 0 before the first.
    seq: u64,
    auth_epoch: u64,
    next_status: Instant,
    peers: Vec<Peer>,
    history: History,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LivenessEvent>,
    name_warned: HashSet<SocketAddr>,
    local_addrs: HashSet<IpAddr>,
    own_name_elsewhere: u64,
    rexmit_limited: u64,
    floors_dirty: bool,
    rng: u64,
    sent: u64,
    received: u64,
    dropped: BTreeMap<DropReason, u64>,
    late: u64,
}

impl Liveness {
    /// Starts the machine and queues the first status (`st=up`).
    pub fn new(cfg: LivenessConfig, now: Instant) -> Self {
        let peers = cfg
            .peers
            .iter()
            .filter(|p| **p != cfg.local)
            .map(|p| {
                let mut peer = Peer::new(p.clone(), cfg.media.len());
                if let Some(f) = cfg.peer_floors.iter().find(|f| f.node == *p) {
                    peer.floor = (f.generation, f.seq);
                }
                peer
            })
            .collect();
        let local_addrs = cfg.local_addrs.iter().copied().collect();
        let seed = cfg
            .uuid
            .iter()
            .fold(cfg.generation ^ 0x9e37_79b9_7f4a_7c15, |acc, &b| {
                acc.rotate_left(8) ^ u64::from(b)
            });
        let mut me = Liveness {
            cfg,
            start: now,
            local_status: NodeStatus::Up,
            load: "n/a".to_owned(),
            seq: 0,
            auth_epoch: 0,
            next_status: now,
            peers,
            history: History::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            name_warned: HashSet::new(),
            local_addrs,
            own_name_elsewhere: 0,
            rexmit_limited: 0,
            floors_dirty: false,
            rng: seed,
            sent: 0,
            received: 0,
            dropped: DropReason::ALL.iter().map(|&r| (r, 0)).collect(),
            late: 0,
        };
        me.send_status(now);
        me
    }

    /// Processes one received datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        medium: MediumId,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        self.received += 1;
        match self.cfg.auth.verify(bytes) {
            Ok(m) => self.handle_verified(now, medium, from, m),
            Err(reason) => self.auth_failed(from, bytes, reason),
        }
    }

    /// Processes a message the receive path already authenticated with [`Auth::verify`]
    /// (and counted as received).
    pub fn handle_verified(
        &mut self,
        now: Instant,
        medium: MediumId,
        from: SocketAddr,
        msg: Message,
    ) {
        let Some(src) = msg.get("src").map(NodeName::from) else {
            self.drop_packet(DropReason::Malformed);
            return;
        };
        if src == self.cfg.local {
            // Our own broadcast (or ucast-to-self) looping back, unless it
            // comes from elsewhere: a cloned machine, or a host replaying ours.
            if !self.local_addrs.contains(&from.ip()) {
                self.own_name_elsewhere(from);
            }
            return;
        }
        let Some(idx) = self.peers.iter().position(|p| p.name == src) else {
            self.drop_packet(DropReason::UnknownNode);
            return;
        };
        if let Some(uuid) = msg.get_bin("srcuuid") {
            // A copied state directory (a cloned VM) gives both nodes one hb_uuid: Heartbeat
            // peers then mix the two up. Said once each time the peer's UUID changes to ours.
            if uuid == self.cfg.uuid && self.peers[idx].uuid.as_deref() != Some(uuid) {
                self.events
                    .push_back(LivenessEvent::SameUuid { node: src.clone() });
            }
            self.peers[idx].uuid = Some(uuid.to_vec());
        }
        if MessageType::of(&msg).is_some_and(MessageType::is_unsequenced) {
            self.handle_unsequenced(now, idx, msg);
        } else {
            self.handle_sequenced(now, idx, medium, msg);
        }
    }

    /// Sends due statuses, declares deaths and link deaths, asks for retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        // How late this wake-up is against the deadline we asked for, before anything moves it.
        let late = self
            .poll_timeout()
            .map_or(Duration::ZERO, |due| now.saturating_duration_since(due));
        if now >= self.next_status {
            self.send_status(now);
        }
        let ours = self.cfg.deadtime;
        let initdead_at = self.start + self.cfg.initdead;
        if late >= STALL_MIN && late * 2 > self.cfg.keepalive {
            self.grant_grace(now, late);
        }
        for i in 0..self.peers.len() {
            for l in 0..self.peers[i].links.len() {
                let p = &self.peers[i];
                if p.link_deadline(&p.links[l], ours).is_some_and(|d| d <= now) {
                    self.peers[i].links[l].state = LinkState::Dead;
                    self.events.push_back(LivenessEvent::LinkDown {
                        node: self.peers[i].name.clone(),
                        link: self.link_name(l),
                    });
                }
            }
            let p = &mut self.peers[i];
            if p.death_deadline(ours, initdead_at)
                .is_some_and(|d| d <= now)
            {
                let never_heard = p.last_heard.is_none();
                p.state = PeerState::Dead;
                p.grace = None;
                p.seq.forget_missing();
                // Whatever it sent so far must not revive it, also after our restart.
                if let Some(last) = p.seq.last()
                    && p.seq_generation > 0
                    && (p.seq_generation, last) > p.floor
                {
                    p.floor = (p.seq_generation, last);
                    self.floors_dirty = true;
                }
                tracing::debug!(node = %p.name, never_heard, "peer dead");
                self.events.push_back(LivenessEvent::PeerDead {
                    node: p.name.clone(),
                    never_heard,
                });
            }
        }
        for i in 0..self.peers.len() {
            if self.peers[i].state != PeerState::Alive {
                continue;
            }
            for s in self.peers[i].seq.due_requests(now) {
                let mut m = MessageType::NsRexmit.message();
                m.push_str("dest", self.peers[i].name.as_str());
                m.push_str("firstseq", s.to_string());
                m.push_str("lastseq", s.to_string());
                self.queue(now, m);
            }
        }
    }

    /// After a late wake-up of ours, a peer whose silence would be judged now (or before it
    /// could have been heard again) gets one more pair of keepalives: while we were not
    /// running we heard nothing, from a live peer or a dead one, and a pause of the whole
    /// host stops the peer's sender as well, so both would declare the other dead at once.
    /// Once per silence, so a host kept busy delays a real death by one grace only.
    fn grant_grace(&mut self, now: Instant, late: Duration) {
        let grace = self.cfg.keepalive * 2;
        let until = now + grace;
        let ours = self.cfg.deadtime;
        let initdead_at = self.start + self.cfg.initdead;
        let mut granted = false;
        for p in &mut self.peers {
            if p.grace.is_some() || p.state == PeerState::Dead {
                continue;
            }
            let soonest = p
                .links
                .iter()
                .filter_map(|l| p.link_deadline(l, ours))
                .chain(p.death_deadline(ours, initdead_at))
                .min();
            if soonest.is_some_and(|d| d < until) {
                p.grace = Some(until);
                granted = true;
            }
        }
        if granted {
            self.events
                .push_back(LivenessEvent::OwnWakeLate { late, grace });
        }
    }

    /// The next packet to send on every medium.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the cluster layer.
    pub fn poll_event(&mut self) -> Option<LivenessEvent> {
        self.events.pop_front()
    }

    /// The one next deadline at which [`Liveness::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ours = self.cfg.deadtime;
        let initdead_at = self.start + self.cfg.initdead;
        let mut next = self.next_status;
        for p in &self.peers {
            let link_deadlines = p.links.iter().filter_map(|l| p.link_deadline(l, ours));
            let rexmit = match p.state {
                PeerState::Alive => p.seq.next_due(),
                _ => None,
            };
            for d in link_deadlines
                .chain(p.death_deadline(ours, initdead_at))
                .chain(rexmit)
            {
                next = next.min(d);
            }
        }
        Some(next)
    }

    /// Changes our status, sending a status packet at once if it changed.
    pub fn set_local_status(&mut self, now: Instant, st: NodeStatus) {
        if st != self.local_status {
            self.local_status = st;
            self.send_status(now);
        }
    }

    /// Sends an application message: control fields, seq, signature, history.
    pub fn send(&mut self, now: Instant, msg: Message) {
        self.queue(now, msg);
    }

    /// Sets the `ld` field text (first line of `/proc/loadavg`).
    pub fn set_load(&mut self, ld: String) {
        self.load = ld;
    }

    /// Replaces the keys (authkeys reload).
    pub fn set_auth(&mut self, auth: Auth) {
        self.cfg.auth = auth;
        self.auth_epoch += 1;
    }

    /// Our current view of a peer (`init` for nodes we do not know).
    pub fn peer_status(&self, node: &NodeName) -> NodeStatus {
        self.peers
            .iter()
            .find(|p| p.name == *node)
            .map_or(NodeStatus::Init, Peer::status)
    }

    /// Our own status.
    pub fn local_status(&self) -> NodeStatus {
        self.local_status
    }

    /// Replaces this host's addresses (see [`LivenessConfig::local_addrs`]).
    pub fn set_local_addrs(&mut self, addrs: impl IntoIterator<Item = IpAddr>) {
        self.local_addrs = addrs.into_iter().collect();
    }

    /// Every peer's floor once one moved (a new generation, a peer declared
    /// dead), for the daemon to persist (`persist::store_peer_floors`) so that
    /// it survives our restart; `None` while nothing changed.
    pub fn poll_floors(&mut self) -> Option<Vec<PeerFloor>> {
        std::mem::take(&mut self.floors_dirty).then(|| self.peer_floors())
    }

    /// Every peer's floor, including what was consumed of its current
    /// generation (taken at our shutdown).
    pub fn peer_floors(&self) -> Vec<PeerFloor> {
        self.peers
            .iter()
            .filter_map(|p| {
                // While the peer lives, what we consumed of its current
                // generation is a floor too.
                let current = match p.seq.last() {
                    Some(last) if p.seq_generation > 0 => (p.seq_generation, last),
                    _ => (0, 0),
                };
                let (generation, seq) = p.floor.max(current);
                (generation > 0).then(|| PeerFloor {
                    node: p.name.clone(),
                    generation,
                    seq,
                })
            })
            .collect()
    }

    /// State for `hactl status`.
    pub fn snapshot(&self, now: Instant) -> LivenessSnapshot {
        let age = |t: Option<Instant>| t.map(|t| millis(now.saturating_duration_since(t)));
        LivenessSnapshot {
            local_status: self.local_status.as_str().to_owned(),
            generation: self.cfg.generation,
            seq: self.seq,
            peers: self
                .peers
                .iter()
                .map(|p| PeerSnapshot {
                    node: p.name.as_str().to_owned(),
                    status: p.status().as_str().to_owned(),
                    last_heard_ms: age(p.last_heard),
                    deadtime_ms: millis(p.deadtime_or(self.cfg.deadtime)),
                    generation: (p.generation != 0).then_some(p.generation),
                    links: p
                        .links
                        .iter()
                        .enumerate()
                        .map(|(i, l)| LinkSnapshot {
                            name: self.link_name(i),
                            status: l.state.as_str().to_owned(),
                            last_heard_ms: age(l.last_heard),
                        })
                        .collect(),
                })
                .collect(),
            sent: self.sent,
            received: self.received,
            dropped: self
                .dropped
                .iter()
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            late: self.late,
            own_name_elsewhere: self.own_name_elsewhere,
            rexmit_limited: self.rexmit_limited,
        }
    }

    fn link_name(&self, i: usize) -> String {
        self.cfg
            .media
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("medium{i}"))
    }

    fn drop_packet(&mut self, reason: DropReason) {
        *self.dropped.entry(reason).or_insert(0) += 1;
    }

    fn auth_failed(&mut self, from: SocketAddr, bytes: &[u8], reason: DropReason) {
        self.drop_packet(reason);
        let claimed_src = codec::peek_src(bytes).map(Untrusted::from_bytes);
        self.events.push_back(LivenessEvent::AuthFailed {
            addr: from,
            claimed_src,
            reason,
        });
    }

    fn own_name_elsewhere(&mut self, from: SocketAddr) {
        self.own_name_elsewhere += 1;
        if self.name_warned.contains(&from) {
            return;
        }
        if self.name_warned.len() >= MAX_WARNED_ADDRS {
            self.name_warned.clear();
        }
        self.name_warned.insert(from);
        self.events
            .push_back(LivenessEvent::OwnNameElsewhere { addr: from });
    }

    /// Notes that fresh evidence (a seq not seen before) arrived from peer `idx` on `medium`.
    fn heard(&mut self, now: Instant, idx: usize, medium: MediumId) {
        self.peers[idx].last_heard = Some(now);
        self.peers[idx].grace = None;
        self.heard_link(now, idx, medium);
    }

    /// Notes that `medium` carries packets from peer `idx`, without extending the peer's life.
    fn heard_link(&mut self, now: Instant, idx: usize, medium: MediumId) {
        let link_name = self.link_name(medium.0);
        let p = &mut self.peers[idx];
        if let Some(link) = p.links.get_mut(medium.0) {
            link.last_heard = Some(now);
            if link.state != LinkState::Up {
                link.state = LinkState::Up;
                self.events.push_back(LivenessEvent::LinkUp {
                    node: p.name.clone(),
                    link: link_name,
                });
            }
        }
    }

    /// Whether `msg` is addressed to us or to everyone; `destuuid` wins over `dest`.
    fn for_us(&self, msg: &Message) -> bool {
        // A legacy Heartbeat that takes a group alone answers its own request
        // (`ip-request-resp` addressed to itself): the peer must hear it to let go.
        if MessageType::of(msg) == Some(MessageType::IpRequestResp)
            && msg.get("dest").is_some()
            && msg.get("dest").map(NodeName::from) == msg.get("src").map(NodeName::from)
        {
            return true;
        }
        if let Some(uuid) = msg.get_bin("destuuid") {
            return uuid == self.cfg.uuid;
        }
        match msg.get("dest") {
            Some(dest) => NodeName::from(dest) == self.cfg.local,
            None => true,
        }
    }

    fn handle_unsequenced(&mut self, now: Instant, idx: usize, msg: Message) {
        // Stricter than Heartbeat, which skips all checks for NS_ types: an
        // old generation is a replay whatever the type.
        let p = &self.peers[idx];
        let known = p.generation.max(p.seq_generation).max(p.floor.0);
        if Generation::of(&msg).is_some_and(|hg| hg.0 < known) {
            self.drop_packet(DropReason::Replay);
            return;
        }
        // Without a seq there is no telling a fresh NS_ packet from a
        // replayed one, so it never counts as a sign of life (Heartbeat's
        // statuses, sent every keepalive, carry liveness alone).
        if !self.for_us(&msg) {
            self.drop_packet(DropReason::NotForUs);
            return;
        }
        match MessageType::of(&msg) {
            Some(MessageType::NsRexmit) => self.answer_rexmit(now, idx, &msg),
            Some(MessageType::NsNakRexmit) => {
                if let Ok(message::Message::NsNakRexmit { first: Seq(seq) }) =
                    message::Message::decode(&msg)
                    && self.peers[idx].seq.give_up(seq)
                {
                    self.events.push_back(LivenessEvent::Lost {
                        node: self.peers[idx].name.clone(),
                        seq,
                    });
                }
            }
            // NS_ackmsg and friends belong to flow control, which we keep off.
            _ => {}
        }
    }

    fn handle_sequenced(&mut self, now: Instant, idx: usize, medium: MediumId, msg: Message) {
        let (Some(Seq(seq)), Some(Generation(hg))) = (Seq::of(&msg), Generation::of(&msg)) else {
            self.drop_packet(DropReason::BadSeq);
            return;
        };
        let is_status = MessageType::of(&msg) == Some(MessageType::Status);
        let p = &mut self.peers[idx];
        // The floor covers what an earlier run of ours already consumed: after
        // our restart, copies of a dead peer's last packets are no first contact.
        if hg < p.generation
            || hg < p.seq_generation
            || hg < p.floor.0
            || (hg == p.floor.0 && seq <= p.floor.1)
        {
            self.drop_packet(DropReason::Replay);
            return;
        }
        if hg > p.seq_generation {
            // Seqs restart with each generation. Heartbeat resets only on a
            // status, so the new generation's first messages could be taken
            // for duplicates (or, on first contact, accepted twice).
            if p.seq_generation == 0 {
                p.seq.reset();
            } else {
                p.seq.new_generation();
            }
            p.seq_generation = hg;
        }
        // The generation is taken only from a status that is not a duplicate:
        // one dropped below must not use up the restart.
        let new_generation = is_status && hg > p.generation;
        let restarted = new_generation && p.generation != 0;
        let mut returning = false;
        if is_status && !new_generation && p.state == PeerState::Dead && p.last_status_seq != 0 {
            if seq <= p.last_status_seq {
                // A stale copy cannot revive a dead node.
                self.drop_packet(DropReason::Duplicate);
                return;
            }
            returning = true;
            // What it sent while we thought it dead is stale; asking for
            // it again would feed the cluster layer outdated messages.
            p.seq.reset();
        }
        let jitter = self.next_jitter();
        let p = &mut self.peers[idx];
        let verdict = p.seq.classify(seq, now + jitter);
        if verdict != Verdict::Duplicate {
            p.note_first_receipt(seq, now, medium.0);
        }
        match verdict {
            Verdict::Duplicate => {
                self.drop_packet(DropReason::Duplicate);
                // A copy proves nothing about the node (anyone can replay
                // it), but a fresh message arriving again over a second
                // medium within one keepalive still proves that link.
                let p = &self.peers[idx];
                let fresh_copy = p.first_receipt(seq).is_some_and(|(at, m)| {
                    m != medium.0 && now.saturating_duration_since(at) <= self.cfg.keepalive
                });
                if p.state != PeerState::Dead && fresh_copy {
                    self.heard_link(now, idx, medium);
                }
                return;
            }
            Verdict::Gap(ref missing) => {
                tracing::debug!(node = %p.name, lost = missing.len(), seq, "lost packets");
            }
            Verdict::Reset => {
                tracing::debug!(node = %p.name, seq, "sequence gap too wide; tracking reset");
            }
            Verdict::Accept | Verdict::Recovered => {}
        }
        if new_generation {
            let p = &mut self.peers[idx];
            p.generation = hg;
            if hg > p.floor.0 {
                // Older generations are replays from now on, also after our restart.
                p.floor = (hg, 0);
                self.floors_dirty = true;
            }
        }
        self.heard(now, idx, medium);
        if !self.for_us(&msg) {
            self.drop_packet(DropReason::NotForUs);
            return;
        }
        match MessageType::of(&msg) {
            Some(MessageType::Status) => self.on_status(now, idx, seq, &msg, restarted, returning),
            Some(MessageType::Reqnodes) => self.answer_reqnodes(now, idx),
            // We never send reqnodes, so a reply is nothing to act on.
            Some(MessageType::Repnodes) => {}
            _ => {
                let from = self.peers[idx].name.clone();
                self.events.push_back(LivenessEvent::Message { from, msg });
            }
        }
    }

    fn on_status(
        &mut self,
        now: Instant,
        idx: usize,
        seq: u64,
        msg: &Message,
        restarted: bool,
        returning: bool,
    ) {
        let warntime = self.cfg.warntime;
        let p = &mut self.peers[idx];
        if seq < p.last_status_seq && !restarted && !returning {
            // A retransmitted or reordered older status: it proved the peer
            // alive, but its content is superseded.
            return;
        }
        // A status always decodes: a missing or unknown `st` reads `up`, a bad `dt` none.
        let (st, dt) = match message::Message::decode(msg) {
            Ok(message::Message::Status { st, dt }) => (st, dt),
            _ => (None, None),
        };
        let st = st.unwrap_or(NodeStatus::Up);
        if let Some(Millis(dt)) = dt {
            let advertised = Duration::from_millis(dt);
            let used = advertised.clamp(PEER_DEADTIME_MIN, PEER_DEADTIME_MAX);
            if used != advertised && !p.dt_clamp_reported {
                p.dt_clamp_reported = true;
                self.events.push_back(LivenessEvent::DeadtimeClamped {
                    node: p.name.clone(),
                    advertised_ms: dt,
                    used,
                });
            }
            p.deadtime = Some(used);
        }
        let was_alive = p.state == PeerState::Alive;
        if was_alive
            && let Some(prev) = p.last_status_at
            && now.saturating_duration_since(prev) > warntime
        {
            let interval = now.saturating_duration_since(prev);
            self.late += 1;
            self.events.push_back(LivenessEvent::Late {
                node: p.name.clone(),
                interval,
            });
        }
        p.last_status_at = Some(now);
        p.last_status_seq = seq;
        let old = p.reported;
        p.reported = st;
        let node = p.name.clone();
        if !was_alive {
            p.state = PeerState::Alive;
            self.events.push_back(LivenessEvent::PeerUp {
                node,
                status: st,
                returning_after_partition: returning,
                restarted,
            });
            return;
        }
        if restarted {
            self.events
                .push_back(LivenessEvent::PeerRestarted { node: node.clone() });
        }
        if old != st {
            self.events
                .push_back(LivenessEvent::PeerStatus { node, status: st });
        }
    }

    fn answer_reqnodes(&mut self, now: Instant, idx: usize) {
        let mut names: Vec<&str> = self
            .peers
            .iter()
            .map(|p| p.name.as_str())
            .chain(std::iter::once(self.cfg.local.as_str()))
            .collect();
        names.sort_unstable();
        let nodelist: String = names.iter().map(|n| format!("{n} ")).collect();
        let mut m = MessageType::Repnodes.message();
        m.push_str("dest", self.peers[idx].name.as_str());
        m.push_str("nodelist", nodelist);
        m.push_str("delnodelist", " ");
        self.queue(now, m);
    }

    fn answer_rexmit(&mut self, now: Instant, idx: usize, msg: &Message) {
        // Heartbeat reads these with atoi: decimal, unlike every other seq.
        let Ok(message::Message::NsRexmit {
            first: Seq(first),
            last: Seq(last),
        }) = message::Message::decode(msg)
        else {
            self.drop_packet(DropReason::BadSeq);
            return;
        };
        let last = last.min(first.saturating_add(MAX_REXMIT_PER_REQUEST - 1));
        let requester = self.peers[idx].name.clone();
        for s in first..=last {
            // Every answer, copy or NAK, spends a token of the requester's
            // bucket: a replayed request cannot make us flood the LAN.
            let resend = match self.history.lookup(s) {
                // Seqs start at 1: 0 and anything above ours were never sent,
                // and a request for them earns neither a copy nor a NAK.
                Lookup::TooHigh => {
                    tracing::debug!(seq = s, max = self.seq, "rexmit of an unsent seq requested");
                    continue;
                }
                Lookup::TooLow if s == 0 => continue,
                Lookup::TooLow => {
                    if !self.peers[idx].take_rexmit_token(now, REXMIT_BURST, REXMIT_PER_SEC) {
                        self.rexmit_limited += 1;
                        continue;
                    }
                    Err("seqno too low")
                }
                Lookup::Found(sent) => {
                    if sent
                        .last_resent
                        .is_some_and(|t| now.saturating_duration_since(t) < RESEND_GUARD)
                    {
                        continue;
                    }
                    if !self.peers[idx].take_rexmit_token(now, REXMIT_BURST, REXMIT_PER_SEC) {
                        self.rexmit_limited += 1;
                        continue;
                    }
                    sent.last_resent = Some(now);
                    if sent.auth_epoch != self.auth_epoch {
                        // Keys changed since: the old signature may no longer verify. Our
                        // own bytes always decode; if they did not, the old copy goes.
                        if let Ok(mut d) = codec::decode(&sent.bytes) {
                            sent.bytes = self.cfg.auth.sign(&mut d.msg).into_boxed_slice();
                        }
                        sent.auth_epoch = self.auth_epoch;
                    }
                    Ok(sent.bytes.to_vec())
                }
            };
            match resend {
                Ok(bytes) => {
                    self.sent += 1;
                    self.transmits.push_back(Transmit { bytes });
                }
                Err(info) => {
                    let mut nak = MessageType::NsNakRexmit.message();
                    nak.push_str("firstseq", Seq(s).to_hex());
                    nak.push_str("dest", requester.as_str());
                    nak.push_str("info", info);
                    self.queue(now, nak);
                }
            }
        }
    }

    fn send_status(&mut self, now: Instant) {
        let mut m = MessageType::Status.message();
        m.push_str("st", self.local_status.as_str());
        // Heartbeat adds 2 s to `dt` for its first 5 s to cover its own slow
        // start of child processes; we have none, and inflating it would only
        // delay the peer's detection of a crash right after our start.
        m.push_str("dt", Millis(millis(self.cfg.deadtime)).to_hex());
        self.queue(now, m);
        self.next_status = now + self.cfg.keepalive;
    }

    /// Adds control fields (Heartbeat's `add_control_msg_fields`), signs and queues.
    fn queue(&mut self, now: Instant, mut msg: Message) {
        let is_ns = MessageType::of(&msg).is_some_and(MessageType::is_unsequenced);
        self.address(&mut msg);
        let ts = self.cfg.unix_now_at_start + now.saturating_duration_since(self.start).as_secs();
        let ttl = (2 + self.peers.len()).to_string();
        let seq = if is_ns {
            None
        } else {
            self.seq += 1;
            Some(self.seq)
        };
        // NS_ messages keep fields already present (Heartbeat's rule).
        let put = |m: &mut Message, name: &str, v: codec::Value| {
            if !(is_ns && m.fields().iter().any(|f| f.name == name)) {
                m.set(name, v);
            }
        };
        use codec::Value::{Bin, Str};
        put(&mut msg, "src", Str(self.cfg.local.as_str().to_owned()));
        put(&mut msg, "srcuuid", Bin(self.cfg.uuid.to_vec()));
        if let Some(seq) = seq {
            put(&mut msg, "seq", Str(Seq(seq).to_hex()));
        }
        put(
            &mut msg,
            "hg",
            Str(Generation(self.cfg.generation).to_hex()),
        );
        put(&mut msg, "ts", Str(format!("{ts:x}")));
        if !is_ns {
            put(&mut msg, "ld", Str(self.load.clone()));
        }
        put(&mut msg, "ttl", Str(ttl));
        let bytes = self.cfg.auth.sign(&mut msg);
        if let Some(seq) = seq {
            self.history.push(
                seq,
                Sent {
                    bytes: bytes.clone().into_boxed_slice(),
                    auth_epoch: self.auth_epoch,
                    last_resent: None,
                },
            );
        }
        self.sent += 1;
        self.transmits.push_back(Transmit { bytes });
    }

    /// Completes `dest`/`destuuid` from each other where we know the UUID.
    fn address(&self, msg: &mut Message) {
        if let Some(dest) = msg.get("dest").map(NodeName::from) {
            let uuid = if dest == self.cfg.local {
                Some(self.cfg.uuid.to_vec())
            } else {
                self.peers
                    .iter()
                    .find(|p| p.name == dest)
                    .and_then(|p| p.uuid.clone())
            };
            if let Some(uuid) = uuid {
                msg.set_bin("destuuid", uuid);
            }
        } else if let Some(uuid) = msg.get_bin("destuuid") {
            let name = if uuid == self.cfg.uuid {
                Some(self.cfg.local.clone())
            } else {
                self.peers
                    .iter()
                    .find(|p| p.uuid.as_deref() == Some(uuid))
                    .map(|p| p.name.clone())
            };
            if let Some(name) = name {
                msg.set_str("dest", name.as_str());
            }
        }
    }

    /// A pseudo-random delay for a first retransmission request, so that
    /// several receivers of one lost packet do not ask at the same instant.
    fn next_jitter(&mut self) -> Duration {
        // splitmix64: deterministic for a given UUID and generation, which
        // keeps the machine pure and its tests reproducible.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let span = FIRST_REQUEST_MAX_MS - FIRST_REQUEST_MIN_MS + 1;
        Duration::from_millis(FIRST_REQUEST_MIN_MS + z % span)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
