//! `Pair`: two liveness machines wired by a virtual two-link network with
//! seeded loss, partitions and crashes, driven in virtual time by their
//! `poll_timeout`s. Checks timing properties over many seeds.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::tests::config;
use super::*;
use crate::auth::{Auth, AuthMethod};
use crate::rng::Rng;

const MEDIA: usize = 2;
const LAT_MIN_MS: u64 = 1;
const LAT_MAX_MS: u64 = 5;

/// What node `to` observed about its peer, in processing order.
#[derive(Debug, Clone, PartialEq)]
enum Obs {
    Delivered {
        at: Instant,
        status: bool,
        seq: Option<u64>,
        /// A sequenced message the machine had not seen yet: the only kind
        /// that extends the peer's life.
        fresh: bool,
    },
    Up {
        at: Instant,
        returning: bool,
    },
    Dead {
        at: Instant,
        never_heard: bool,
    },
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    to: usize,
    medium: usize,
    bytes: Vec<u8>,
}

struct Pair {
    t0: Instant,
    now: Instant,
    nodes: [Liveness; 2],
    dt: Duration,
    initdead: Duration,
    rng: Rng,
    loss: f64,
    cut: bool,
    crashed: [bool; 2],
    flight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    obs: [Vec<Obs>; 2],
    /// Per sender: statuses in a row lost on every medium, and the worst run.
    lost_statuses_run: [u32; 2],
    max_status_sent: [u64; 2],
    worst_lost_run: [u32; 2],
    /// Per receiver: seqs of application messages accepted, with counts.
    app_received: [BTreeMap<u64, u32>; 2],
    app_sent: [Vec<u64>; 2],
    /// No new application messages after this.
    app_until: Option<Instant>,
    /// Per sender: every packet that reached the wire (what a hostile host records).
    captured: [Vec<Vec<u8>>; 2],
    /// The host was paused: deadlines were missed on purpose.
    paused: bool,
}

fn crc_auth() -> Auth {
    // crc keeps thousands of simulated seconds fast in debug builds.
    Auth::from_keys(1, [(1, AuthMethod::Crc, Vec::new())])
}

impl Pair {
    fn new(seed: u64, ka: Duration, dt: Duration, loss: f64) -> Self {
        let t0 = Instant::now();
        let initdead = dt * 2;
        let mk = |local: &str, peer: &str, generation: u64| {
            let c = LivenessConfig {
                keepalive: ka,
                deadtime: dt,
                warntime: dt / 2,
                initdead,
                auth: crc_auth(),
                ..config(local, peer, generation)
            };
            Liveness::new(c, t0)
        };
        Pair {
            t0,
            now: t0,
            nodes: [mk("node1", "node2", 10), mk("node2", "node1", 20)],
            dt,
            initdead,
            rng: Rng::new(seed),
            loss,
            cut: false,
            crashed: [false; 2],
            flight: BinaryHeap::new(),
            order: 0,
            obs: [Vec::new(), Vec::new()],
            lost_statuses_run: [0; 2],
            max_status_sent: [0; 2],
            worst_lost_run: [0; 2],
            app_received: [BTreeMap::new(), BTreeMap::new()],
            app_sent: [Vec::new(), Vec::new()],
            app_until: None,
            captured: [Vec::new(), Vec::new()],
            paused: false,
        }
    }

    /// The whole host stops for `d`: neither node runs, and what was on the wire arrives
    /// after the resume (the virtual network is the host's too).
    fn host_pause(&mut self, d: Duration) {
        let flight = std::mem::take(&mut self.flight).into_vec();
        for Reverse(mut f) in flight {
            f.at += d;
            self.flight.push(Reverse(f));
        }
        self.now += d;
        self.paused = true;
    }

    fn ms(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1 + i as u8)), 694)
    }

    /// Moves every queued packet of node `i` onto the wire.
    fn flush(&mut self, i: usize) {
        while let Some(tx) = self.nodes[i].poll_transmit() {
            let (ty, seq) = type_and_seq(&tx.bytes);
            // Only first transmissions of statuses count: a retransmitted
            // copy is no keepalive.
            let status =
                ty.as_deref() == Some("status") && seq.is_some_and(|s| s > self.max_status_sent[i]);
            if status {
                self.max_status_sent[i] = seq.unwrap_or(0);
            }
            let mut delivered_any = false;
            for m in 0..MEDIA {
                if self.cut || self.crashed[i] || self.rng.chance(self.loss) {
                    continue;
                }
                delivered_any = true;
                let lat = LAT_MIN_MS + self.rng.below(LAT_MAX_MS - LAT_MIN_MS + 1);
                self.order += 1;
                self.flight.push(Reverse(InFlight {
                    at: self.now + Duration::from_millis(lat),
                    order: self.order,
                    to: 1 - i,
                    medium: m,
                    bytes: tx.bytes.clone(),
                }));
            }
            if delivered_any {
                self.captured[i].push(tx.bytes.clone());
            }
            if status && !self.cut && !self.crashed[i] {
                if delivered_any {
                    self.lost_statuses_run[i] = 0;
                } else {
                    self.lost_statuses_run[i] += 1;
                    self.worst_lost_run[i] = self.worst_lost_run[i].max(self.lost_statuses_run[i]);
                }
            }
        }
    }

    fn collect_events(&mut self, j: usize) {
        while let Some(e) = self.nodes[j].poll_event() {
            match e {
                LivenessEvent::PeerUp {
                    returning_after_partition,
                    restarted,
                    ..
                } => {
                    assert!(!restarted, "nobody restarts in the simulation");
                    self.obs[j].push(Obs::Up {
                        at: self.now,
                        returning: returning_after_partition,
                    });
                }
                LivenessEvent::PeerDead { never_heard, .. } => self.obs[j].push(Obs::Dead {
                    at: self.now,
                    never_heard,
                }),
                LivenessEvent::Message { msg, .. } => {
                    let seq = msg.get("seq").and_then(|s| u64::from_str_radix(s, 16).ok());
                    *self.app_received[j].entry(seq.unwrap_or(0)).or_insert(0) += 1;
                }
                LivenessEvent::PeerRestarted { .. } => panic!("no restarts here"),
                _ => {}
            }
        }
    }

    /// Runs until `until`, sending an application message now and then.
    fn run_until(&mut self, until: Instant) {
        loop {
            let mut next = until;
            for i in 0..2 {
                if !self.crashed[i]
                    && let Some(t) = self.nodes[i].poll_timeout()
                {
                    assert!(self.paused || t >= self.now, "deadline in the past");
                    next = next.min(t.max(self.now));
                }
            }
            if let Some(Reverse(f)) = self.flight.peek() {
                next = next.min(f.at);
            }
            if next > until {
                break;
            }
            self.now = next;
            // Deliveries first, then timers, at the same instant.
            while self
                .flight
                .peek()
                .is_some_and(|Reverse(f)| f.at <= self.now)
            {
                let Some(Reverse(f)) = self.flight.pop() else {
                    break;
                };
                if self.crashed[f.to] {
                    continue;
                }
                let (ty, seq) = type_and_seq(&f.bytes);
                let dups = self.nodes[f.to].dropped[&DropReason::Duplicate];
                let from = Self::addr(1 - f.to);
                self.nodes[f.to].handle_datagram(self.now, MediumId(f.medium), from, &f.bytes);
                let dup = self.nodes[f.to].dropped[&DropReason::Duplicate] != dups;
                self.obs[f.to].push(Obs::Delivered {
                    at: self.now,
                    status: ty.as_deref() == Some("status"),
                    seq,
                    fresh: seq.is_some() && !dup,
                });
                self.collect_events(f.to);
                self.flush(f.to);
            }
            for i in 0..2 {
                if self.crashed[i] {
                    continue;
                }
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i].handle_timeout(self.now);
                    let quiet = self.app_until.is_some_and(|t| self.now > t);
                    if !quiet && self.rng.chance(0.1) {
                        let seq = self.nodes[i].snapshot(self.now).seq + 1;
                        self.app_sent[i].push(seq);
                        self.nodes[i].send(self.now, Message::with_type("resource"));
                    }
                    self.collect_events(i);
                    self.flush(i);
                }
            }
            if self.now == until {
                break;
            }
        }
        self.now = until;
    }

    /// Checks node `j`'s view of its peer against what was delivered to it:
    /// every death exactly a deadtime (or initdead) after the last packet,
    /// none missed, every fresh status to a peer not alive reviving it.
    fn check_precision(&self, j: usize) {
        #[derive(PartialEq)]
        enum S {
            Unknown,
            Alive,
            Dead,
        }
        let obs = &self.obs[j];
        let mut state = S::Unknown;
        let mut last: Option<Instant> = None;
        let mut max_seq = 0;
        let mut ever_up = false;
        let mut deaths = 0;
        let deadline = |last: Option<Instant>| match last {
            Some(t) => t + self.dt,
            None => self.t0 + self.initdead,
        };
        for (k, o) in obs.iter().enumerate() {
            match *o {
                Obs::Delivered {
                    at,
                    status,
                    seq,
                    fresh,
                } => {
                    if state != S::Dead && fresh {
                        assert!(at <= deadline(last), "node{} missed a death", j + 1);
                        last = Some(at);
                    }
                    let fresh = seq.is_some_and(|s| s > max_seq);
                    if status && fresh && state != S::Alive {
                        assert!(
                            matches!(obs.get(k + 1), Some(Obs::Up { at: up, .. }) if *up == at),
                            "node{}: a fresh status to a peer not alive must revive it",
                            j + 1
                        );
                    }
                    max_seq = max_seq.max(seq.unwrap_or(0));
                }
                Obs::Up { at, returning } => {
                    assert!(state != S::Alive);
                    assert_eq!(
                        returning,
                        deaths > 0 && ever_up,
                        "returning iff it died after being up"
                    );
                    state = S::Alive;
                    ever_up = true;
                    last = Some(at);
                }
                Obs::Dead { at, never_heard } => {
                    assert!(state != S::Dead);
                    assert_eq!(never_heard, last.is_none());
                    assert_eq!(
                        at,
                        deadline(last),
                        "node{}: death not exactly on time",
                        j + 1
                    );
                    state = S::Dead;
                    deaths += 1;
                }
            }
        }
        if state != S::Dead && !self.crashed[j] {
            assert!(self.now < deadline(last), "end of run: death missed");
        }
    }

    /// A hostile host re-sends `count` recorded packets of node `from`, byte
    /// for byte, on random media, now.
    fn replay(&mut self, from: usize, count: usize) {
        for _ in 0..count {
            let n = self.captured[from].len() as u64;
            if n == 0 {
                return;
            }
            let bytes = self.captured[from][self.rng.below(n) as usize].clone();
            self.order += 1;
            self.flight.push(Reverse(InFlight {
                at: self.now,
                order: self.order,
                to: 1 - from,
                medium: self.rng.below(MEDIA as u64) as usize,
                bytes,
            }));
        }
    }

    fn deaths(&self, j: usize) -> usize {
        self.obs[j]
            .iter()
            .filter(|o| matches!(o, Obs::Dead { .. }))
            .count()
    }
}

fn type_and_seq(bytes: &[u8]) -> (Option<String>, Option<u64>) {
    match crate::codec::decode(bytes) {
        Ok(d) => (
            d.msg.msg_type().map(str::to_owned),
            d.msg
                .get("seq")
                .and_then(|s| u64::from_str_radix(s, 16).ok()),
        ),
        Err(_) => (None, None),
    }
}

fn timers(rng: &mut Rng) -> (Duration, Duration) {
    let ka = Duration::from_millis(100 + rng.below(901));
    let dt = ka * 3 + Duration::from_millis(rng.below(2000));
    (ka, dt)
}

#[test]
fn lossy_links_never_cause_a_false_death() {
    let mut clean_runs = 0;
    for seed in 0..120u64 {
        let mut r = Rng::new(seed ^ 0xdead_beef);
        let (ka, dt) = timers(&mut r);
        let loss = r.below(30) as f64 / 100.0;
        let mut p = Pair::new(seed, ka, dt, loss);
        let end = p.ms(u64::try_from((ka * 60).as_millis()).unwrap().max(20_000));
        // Leave time for the last gaps to be requested and repaired.
        p.app_until = Some(end - Duration::from_secs(6));
        p.run_until(end);
        for j in 0..2 {
            p.check_precision(j);
            // Sound: with dt >= 3 keepalives and latency jitter far below one,
            // a death needs at least two statuses in a row lost on every link.
            if p.worst_lost_run[1 - j] < 2 {
                assert_eq!(p.deaths(j), 0, "seed {seed}: false death");
            }
        }
        if p.deaths(0) + p.deaths(1) == 0 {
            clean_runs += 1;
            // Retransmission repairs every gap while the peer lives.
            for j in 0..2 {
                for s in &p.app_sent[1 - j] {
                    assert_eq!(
                        p.app_received[j].get(s),
                        Some(&1),
                        "seed {seed}: seq {s:x} not delivered once"
                    );
                }
            }
        }
        for j in 0..2 {
            assert!(
                p.app_received[j].values().all(|&c| c == 1),
                "seed {seed}: duplicate delivery"
            );
        }
    }
    assert!(
        clean_runs > 60,
        "most runs at < 30% loss must stay clean: {clean_runs}"
    );
}

#[test]
fn a_silenced_peer_is_declared_dead_within_deadtime() {
    for seed in 0..150u64 {
        let mut r = Rng::new(seed ^ 0x5eed);
        let (ka, dt) = timers(&mut r);
        let loss = r.below(30) as f64 / 100.0;
        let mut p = Pair::new(seed, ka, dt, loss);
        let crash_ms = u64::try_from((dt * 3).as_millis()).unwrap() + r.below(5000);
        p.run_until(p.ms(crash_ms));
        let victim = usize::from(r.chance(0.5));
        let watcher = 1 - victim;
        let was_alive =
            p.nodes[watcher].peer_status(&p.nodes[victim].cfg.local) != NodeStatus::Dead;
        p.crashed[victim] = true;
        let crash = p.now;
        p.run_until(crash + dt * 2);
        p.check_precision(watcher);
        let deadline = crash + Duration::from_millis(LAT_MAX_MS) + dt;
        let died: Vec<Instant> = p.obs[watcher]
            .iter()
            .filter_map(|o| match o {
                Obs::Dead { at, .. } if *at > crash => Some(*at),
                _ => None,
            })
            .collect();
        if was_alive {
            assert_eq!(
                died.len(),
                1,
                "seed {seed}: exactly one death after the crash"
            );
            assert!(
                died[0] <= deadline,
                "seed {seed}: {:?} late",
                died[0] - deadline
            );
        }
        assert_eq!(
            p.nodes[watcher].peer_status(&p.nodes[victim].cfg.local),
            NodeStatus::Dead
        );
    }
}

#[test]
fn a_partition_kills_both_sides_and_healing_returns_them() {
    for seed in 0..80u64 {
        let mut r = Rng::new(seed ^ 0xcafe);
        let (ka, dt) = timers(&mut r);
        let mut p = Pair::new(seed, ka, dt, r.below(20) as f64 / 100.0);
        let start_ms = u64::try_from((dt * 3).as_millis()).unwrap();
        p.run_until(p.ms(start_ms));
        p.cut = true;
        let cut = p.now;
        p.run_until(cut + dt + Duration::from_millis(LAT_MAX_MS) + ka);
        for j in 0..2 {
            assert_eq!(
                p.nodes[j].peer_status(&p.nodes[1 - j].cfg.local),
                NodeStatus::Dead
            );
        }
        let up_before: Vec<bool> = (0..2)
            .map(|j| p.obs[j].iter().any(|o| matches!(o, Obs::Up { .. })))
            .collect();
        p.cut = false;
        p.loss = 0.0;
        let heal = p.now;
        p.run_until(heal + ka * 3);
        for (j, &up_before) in up_before.iter().enumerate() {
            p.check_precision(j);
            assert!(
                !up_before
                    || p.obs[j]
                        .iter()
                        .any(|o| matches!(o, Obs::Up { at, returning: true } if *at > heal)),
                "seed {seed}: node{} saw no return after partition",
                j + 1
            );
            assert_ne!(
                p.nodes[j].peer_status(&p.nodes[1 - j].cfg.local),
                NodeStatus::Dead
            );
        }
    }
}

#[test]
fn replayed_copies_never_delay_or_undo_a_crashed_peers_death() {
    for seed in 0..100u64 {
        let mut r = Rng::new(seed ^ 0x0bad_c0de);
        let (ka, dt) = timers(&mut r);
        let mut p = Pair::new(seed, ka, dt, r.below(20) as f64 / 100.0);
        let crash_ms = u64::try_from((dt * 3).as_millis()).unwrap() + r.below(3000);
        p.run_until(p.ms(crash_ms));
        let victim = usize::from(r.chance(0.5));
        let watcher = 1 - victim;
        let was_alive =
            p.nodes[watcher].peer_status(&p.nodes[victim].cfg.local) != NodeStatus::Dead;
        p.crashed[victim] = true;
        let crash = p.now;
        // Copies of everything the victim ever sent, 3 every 20 ms, all along.
        while p.now < crash + dt * 3 {
            p.replay(victim, 3);
            let next = p.now + Duration::from_millis(20);
            p.run_until(next);
        }
        p.check_precision(watcher);
        let after: Vec<&Obs> = p.obs[watcher]
            .iter()
            .filter(|o| !matches!(o, Obs::Delivered { .. }))
            .filter(|o| match o {
                Obs::Up { at, .. } | Obs::Dead { at, .. } => *at > crash,
                Obs::Delivered { .. } => false,
            })
            .collect();
        if was_alive {
            let deadline = crash + Duration::from_millis(LAT_MAX_MS) + dt;
            assert!(
                matches!(after.as_slice(), [Obs::Dead { at, .. }] if *at <= deadline),
                "seed {seed}: one death by {deadline:?}, nothing after: {after:?}"
            );
        } else {
            assert!(
                after.is_empty(),
                "seed {seed}: revived by a copy: {after:?}"
            );
        }
        assert_eq!(
            p.nodes[watcher].peer_status(&p.nodes[victim].cfg.local),
            NodeStatus::Dead
        );
    }
}

#[test]
fn a_pause_of_the_whole_host_of_any_length_kills_nobody() {
    for seed in 0..100u64 {
        let mut r = Rng::new(seed ^ 0x9a05e);
        let (ka, dt) = timers(&mut r);
        let mut p = Pair::new(seed, ka, dt, 0.0);
        let up_ms = u64::try_from((dt * 3).as_millis()).unwrap() + r.below(1000);
        p.run_until(p.ms(up_ms));
        for j in 0..2 {
            assert_ne!(
                p.nodes[j].peer_status(&p.nodes[1 - j].cfg.local),
                NodeStatus::Dead
            );
        }
        // From a fraction of a keepalive to ten deadtimes, at any phase of the timers.
        let pause = Duration::from_millis(r.below(u64::try_from((dt * 10).as_millis()).unwrap()));
        p.host_pause(pause);
        let resumed = p.now;
        p.run_until(resumed + dt * 4);
        for j in 0..2 {
            let dead: Vec<_> = p.obs[j]
                .iter()
                .filter(|o| matches!(o, Obs::Dead { .. }))
                .collect();
            assert!(
                dead.is_empty(),
                "seed {seed}: ka {ka:?} dt {dt:?}, a pause of {pause:?}: node{} declared {dead:?}",
                j + 1
            );
            assert_ne!(
                p.nodes[j].peer_status(&p.nodes[1 - j].cfg.local),
                NodeStatus::Dead
            );
        }
    }
}
