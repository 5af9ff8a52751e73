//! The fault schedule: timers, fault kinds with their weights, and the seeded draw. Pure, so
//! that the same seed gives the same schedule (kinds, targets, durations) on every run; what a
//! role such as "the holder" means is resolved when the fault is injected.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::rng::Rng;

/// The cluster's timers, from `--timers KEEPALIVE/DEADTIME`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Timers {
    /// ha.cf `keepalive`.
    pub keepalive: Duration,
    /// ha.cf `deadtime`.
    pub deadtime: Duration,
    /// ha.cf `warntime` (3/5 of deadtime).
    pub warntime: Duration,
    /// ha.cf `initdead` (2 × deadtime, as Heartbeat advises).
    pub initdead: Duration,
}

impl Timers {
    /// Parses `100ms/500ms`, `1s/5s` or `1/5` (seconds without a unit).
    pub fn parse(s: &str) -> Result<Timers, String> {
        let (ka, dt) = s
            .split_once('/')
            .ok_or_else(|| format!("--timers {s:?}: write KEEPALIVE/DEADTIME, e.g. 100ms/500ms"))?;
        let keepalive = parse_dur(ka)?;
        let deadtime = parse_dur(dt)?;
        if keepalive < Duration::from_millis(50) || deadtime < keepalive * 2 {
            return Err(format!(
                "--timers {s:?}: keepalive must be at least 50ms and deadtime at least twice keepalive"
            ));
        }
        if deadtime > Duration::from_secs(60) {
            return Err(format!(
                "--timers {s:?}: deadtime above 60s makes a soak too slow"
            ));
        }
        Ok(Timers {
            keepalive,
            deadtime,
            warntime: deadtime * 3 / 5,
            initdead: deadtime * 2,
        })
    }

    /// Written as `KEEPALIVE/DEADTIME` in milliseconds.
    pub fn label(&self) -> String {
        format!("{}/{}", fmt_ms(self.keepalive), fmt_ms(self.deadtime))
    }
}

/// `1500ms`, `2s`, `100ms`: the shortest exact form.
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not a duration (write e.g. 100ms, 1s or 5)");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad());
    }
    let secs = s.strip_suffix('s').unwrap_or(s);
    let v: f64 = secs.parse().map_err(|_| bad())?;
    if !(0.0..=3600.0).contains(&v) {
        return Err(bad());
    }
    Ok(Duration::from_millis((v * 1000.0).round() as u64))
}

/// A node chosen by role; resolved at injection time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The node holding the VIP (node1 when nobody does).
    Holder,
    /// The node not holding it.
    Other,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Holder => "holder",
            Target::Other => "other",
        })
    }
}

/// One fault of the schedule, with every random parameter already drawn.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// kill -9 of a daemon, started again after `down`.
    Kill9 { target: Target, down: Duration },
    /// A daemon started again and killed -9 within its first second (`up`), then started.
    Kill9Early {
        target: Target,
        down: Duration,
        up: Duration,
    },
    /// SIGSTOP of the holder's daemon for `frozen` (0.5–3 × deadtime), then SIGCONT.
    Freeze { frozen: Duration },
    /// Heartbeat traffic dropped on one of the two links (both ways) for `cut`.
    CutOneLink { link: u8, cut: Duration },
    /// Every link cut for `cut`: the node's switch port and the direct link down
    /// (`physical`), or heartbeat traffic dropped on both links of `side` (the client still
    /// reaches both nodes).
    SplitBrain {
        side: Target,
        physical: bool,
        cut: Duration,
    },
    /// `deaf` hears no heartbeat on any link for `cut`, while the peer still hears it.
    OneWay { deaf: Target, cut: Duration },
    /// `percent` % of heartbeat packets dropped on both nodes, both ways, for `lossy`.
    Loss { percent: u8, lossy: Duration },
    /// The web server killed -9 on the holder (the monitor notices; `hactl cleanup` after).
    ServiceKill,
    /// The web service's stop hangs for `hang` (below the stop timeout) during a standby.
    ServiceHangStop { hang: Duration },
    /// The web service fails its start on the other node, which a standby then asks of it.
    ServiceFailStart,
    /// The agent's `status` hangs past the monitor's timeout on the holder.
    AgentHangStatus,
    /// The web agent's `start` hangs past its start timeout on the other node, which a
    /// standby of the holder asks to start the group: killed, rolled back, refused there.
    AgentHangStart,
    /// The web agent's `stop` hangs past its stop timeout on the holder, every try, while a
    /// standby moves the group: the stop fails, the group stays held there (`stop_failed`)
    /// until the admin stops the service by hand and runs `hactl cleanup`.
    AgentHangStop,
    /// The VIP deleted by hand on the holder.
    VipDelete,
    /// The holder's eth0 set down for `down`, then up.
    IfaceFlap { down: Duration },
    /// `hactl standby` on one node, then after `gap` (0: during the transition)
    /// `hactl takeover` on another (or the same) node.
    StandbyTakeover {
        standby: Target,
        takeover: Target,
        gap: Duration,
    },
    /// haresources changed on both nodes (a second VIP added, or removed if present), then
    /// `hactl reload` on both.
    ReloadVip,
    /// An invalid haresources on `on`, `hactl reload` there (must be refused), then restored.
    ReloadInvalid { on: Target },
    /// Both daemons stopped at once (SIGTERM, or kill -9 when `hard`), started after `down`.
    RestartBoth { hard: bool, down: Duration },
    /// The node's power cut (every process killed, links down) for `off`, then rebooted.
    PowerCycle { target: Target, off: Duration },
    /// A hostile host in the client namespace: replays, wrong keys, junk (`packets` in all).
    HostileBurst { packets: u32, seed: u64 },
}

/// Every kind with its weight (relative; the draw normalises).
pub const KINDS: &[(&str, u32)] = &[
    ("kill9", 10),
    ("kill9_early", 4),
    ("freeze", 8),
    ("cut_one_link", 7),
    ("split_brain", 7),
    ("one_way", 5),
    ("loss", 6),
    ("service_kill", 6),
    ("service_hang_stop", 4),
    ("service_fail_start", 4),
    ("agent_hang_status", 4),
    ("agent_hang_start", 3),
    ("agent_hang_stop", 3),
    ("vip_delete", 5),
    ("iface_flap", 5),
    ("standby_takeover", 8),
    ("reload_vip", 4),
    ("reload_invalid", 3),
    ("restart_both", 4),
    ("power_cycle", 5),
    ("hostile_burst", 5),
];

impl Fault {
    /// The kind's name, as in [`KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill9 { .. } => "kill9",
            Fault::Kill9Early { .. } => "kill9_early",
            Fault::Freeze { .. } => "freeze",
            Fault::CutOneLink { .. } => "cut_one_link",
            Fault::SplitBrain { .. } => "split_brain",
            Fault::OneWay { .. } => "one_way",
            Fault::Loss { .. } => "loss",
            Fault::ServiceKill => "service_kill",
            Fault::ServiceHangStop { .. } => "service_hang_stop",
            Fault::ServiceFailStart => "service_fail_start",
            Fault::AgentHangStatus => "agent_hang_status",
            Fault::AgentHangStart => "agent_hang_start",
            Fault::AgentHangStop => "agent_hang_stop",
            Fault::VipDelete => "vip_delete",
            Fault::IfaceFlap { .. } => "iface_flap",
            Fault::StandbyTakeover { .. } => "standby_takeover",
            Fault::ReloadVip => "reload_vip",
            Fault::ReloadInvalid { .. } => "reload_invalid",
            Fault::RestartBoth { .. } => "restart_both",
            Fault::PowerCycle { .. } => "power_cycle",
            Fault::HostileBurst { .. } => "hostile_burst",
        }
    }

    /// One line for progress output and the report.
    pub fn describe(&self) -> String {
        match self {
            Fault::Kill9 { target, down } => {
                format!(
                    "kill -9 the {target}'s daemon, start it after {}",
                    fmt_ms(*down)
                )
            }
            Fault::Kill9Early { target, down, up } => format!(
                "kill -9 the {target}'s daemon, start it after {}, kill -9 it again {} after that start, start it",
                fmt_ms(*down),
                fmt_ms(*up)
            ),
            Fault::Freeze { frozen } => {
                format!(
                    "SIGSTOP the holder's daemon for {}, then SIGCONT",
                    fmt_ms(*frozen)
                )
            }
            Fault::CutOneLink { link, cut } => {
                format!("heartbeat dropped on link eth{link} for {}", fmt_ms(*cut))
            }
            Fault::SplitBrain {
                side,
                physical,
                cut,
            } => format!(
                "all links of the {side} cut ({}) for {}",
                if *physical {
                    "switch port and direct link down"
                } else {
                    "heartbeat dropped on both links"
                },
                fmt_ms(*cut)
            ),
            Fault::OneWay { deaf, cut } => {
                format!(
                    "the {deaf} hears no heartbeat (one way) for {}",
                    fmt_ms(*cut)
                )
            }
            Fault::Loss { percent, lossy } => {
                format!(
                    "{percent}% heartbeat loss on both nodes for {}",
                    fmt_ms(*lossy)
                )
            }
            Fault::ServiceKill => "kill -9 the web server on the holder".into(),
            Fault::ServiceHangStop { hang } => {
                format!(
                    "web stop hangs {} on the holder, which is put in standby",
                    fmt_ms(*hang)
                )
            }
            Fault::ServiceFailStart => {
                "web start fails on the other node; the holder is put in standby".into()
            }
            Fault::AgentHangStatus => {
                "web status hangs past the monitor timeout on the holder".into()
            }
            Fault::AgentHangStart => {
                "web start hangs past its timeout on the other node; the holder is put in standby"
                    .into()
            }
            Fault::AgentHangStop => {
                "web stop hangs past its timeout (every try) on the holder, which is put in standby"
                    .into()
            }
            Fault::VipDelete => "the VIP deleted by hand on the holder".into(),
            Fault::IfaceFlap { down } => {
                format!("the holder's eth0 down for {}, then up", fmt_ms(*down))
            }
            Fault::StandbyTakeover {
                standby,
                takeover,
                gap,
            } => format!(
                "hactl standby on the {standby}, hactl takeover on the {takeover} {} later",
                fmt_ms(*gap)
            ),
            Fault::ReloadVip => {
                "haresources: second VIP added or removed, hactl reload on both".into()
            }
            Fault::ReloadInvalid { on } => format!("invalid haresources, hactl reload on the {on}"),
            Fault::RestartBoth { hard, down } => format!(
                "both daemons stopped at once ({}), started after {}",
                if *hard { "kill -9" } else { "SIGTERM" },
                fmt_ms(*down)
            ),
            Fault::PowerCycle { target, off } => {
                format!("the {target} power-cycled (off {})", fmt_ms(*off))
            }
            Fault::HostileBurst { packets, .. } => {
                format!("hostile burst of {packets} packets (replays, wrong keys, junk)")
            }
        }
    }
}

fn target(rng: &mut Rng) -> Target {
    if rng.chance(0.5) {
        Target::Holder
    } else {
        Target::Other
    }
}

/// Draws one fault of kind `kind`.
fn draw_one(kind: &str, rng: &mut Rng, t: &Timers) -> Fault {
    let dt = t.deadtime;
    match kind {
        "kill9" => Fault::Kill9 {
            target: target(rng),
            // Sometimes back before the peer's deadtime, sometimes well after.
            down: rng.scaled(dt, 0.0, 2.0),
        },
        "kill9_early" => Fault::Kill9Early {
            target: target(rng),
            down: rng.scaled(dt, 0.0, 1.0),
            up: rng.dur(Duration::ZERO, Duration::from_millis(1000)),
        },
        "freeze" => Fault::Freeze {
            frozen: rng.scaled(dt, 0.5, 3.0),
        },
        "cut_one_link" => Fault::CutOneLink {
            link: rng.below(2) as u8,
            cut: rng.scaled(dt, 1.0, 3.0),
        },
        "split_brain" => Fault::SplitBrain {
            side: target(rng),
            physical: rng.chance(0.5),
            cut: rng.scaled(dt, 1.5, 3.0),
        },
        "one_way" => Fault::OneWay {
            deaf: target(rng),
            cut: rng.scaled(dt, 1.5, 3.0),
        },
        "loss" => Fault::Loss {
            percent: 10 + rng.below(41) as u8,
            lossy: rng.scaled(dt, 2.0, 4.0),
        },
        "service_kill" => Fault::ServiceKill,
        "service_hang_stop" => Fault::ServiceHangStop {
            hang: rng.scaled(dt, 0.5, 2.0),
        },
        "service_fail_start" => Fault::ServiceFailStart,
        "agent_hang_status" => Fault::AgentHangStatus,
        "agent_hang_start" => Fault::AgentHangStart,
        "agent_hang_stop" => Fault::AgentHangStop,
        "vip_delete" => Fault::VipDelete,
        "iface_flap" => Fault::IfaceFlap {
            down: rng.scaled(dt, 0.2, 1.0),
        },
        "standby_takeover" => Fault::StandbyTakeover {
            standby: target(rng),
            takeover: target(rng),
            gap: if rng.chance(0.3) {
                Duration::ZERO
            } else {
                rng.scaled(dt, 0.0, 1.0)
            },
        },
        "reload_vip" => Fault::ReloadVip,
        "reload_invalid" => Fault::ReloadInvalid { on: target(rng) },
        "restart_both" => Fault::RestartBoth {
            hard: rng.chance(0.5),
            down: rng.scaled(dt, 0.0, 1.0),
        },
        "power_cycle" => Fault::PowerCycle {
            target: target(rng),
            off: rng.scaled(dt, 0.5, 2.0),
        },
        _ => Fault::HostileBurst {
            packets: 100 + rng.below(301) as u32,
            seed: rng.next_u64(),
        },
    }
}

/// The schedule for `n` faults from `seed`, drawn from `kinds` (names of [`KINDS`]; all when
/// empty) with their weights.
pub fn schedule(seed: u64, n: usize, t: &Timers, kinds: &[String]) -> Vec<Fault> {
    let table: Vec<(&str, u32)> = KINDS
        .iter()
        .copied()
        .filter(|(k, _)| kinds.is_empty() || kinds.iter().any(|x| x == k))
        .collect();
    let total: u64 = table.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mut pick = rng.below(total);
            let mut kind = table.first().map(|(k, _)| *k).unwrap_or("kill9");
            for (k, w) in &table {
                if pick < u64::from(*w) {
                    kind = k;
                    break;
                }
                pick -= u64::from(*w);
            }
            draw_one(kind, &mut rng, t)
        })
        .collect()
}

/// Checks `--kinds` names against [`KINDS`].
pub fn check_kinds(kinds: &[String]) -> Result<(), String> {
    for k in kinds {
        if !KINDS.iter().any(|(n, _)| n == k) {
            let all: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown fault kind {k:?}; kinds: {}",
                all.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timers_parse() {
        let t = Timers::parse("100ms/500ms").unwrap();
        assert_eq!(t.keepalive, Duration::from_millis(100));
        assert_eq!(t.deadtime, Duration::from_millis(500));
        assert_eq!(t.initdead, Duration::from_secs(1));
        assert_eq!(t.label(), "100ms/500ms");
        let t = Timers::parse("1s/5s").unwrap();
        assert_eq!(t.deadtime, Duration::from_secs(5));
        assert_eq!(
            Timers::parse("1/5").unwrap().keepalive,
            Duration::from_secs(1)
        );
        assert!(Timers::parse("1s").is_err());
        assert!(Timers::parse("1s/1s").is_err());
        assert!(Timers::parse("10ms/1s").is_err());
        assert!(Timers::parse("x/5s").is_err());
    }

    #[test]
    fn same_seed_same_schedule_and_every_kind_is_drawn() {
        let t = Timers::parse("100ms/500ms").unwrap();
        let a = schedule(7, 1000, &t, &[]);
        assert_eq!(a, schedule(7, 1000, &t, &[]));
        assert_ne!(a, schedule(8, 1000, &t, &[]));
        for (k, _) in KINDS {
            assert!(a.iter().any(|f| f.kind() == *k), "{k} never drawn");
        }
        let only = schedule(1, 50, &t, &["freeze".into(), "loss".into()]);
        assert!(only.iter().all(|f| matches!(f.kind(), "freeze" | "loss")));
        assert!(check_kinds(&["nope".into()]).is_err());
    }

    #[test]
    fn freeze_and_loss_stay_in_their_ranges() {
        let t = Timers::parse("1s/5s").unwrap();
        for f in schedule(3, 2000, &t, &[]) {
            match f {
                Fault::Freeze { frozen } => {
                    assert!(
                        frozen >= t.deadtime / 2 && frozen <= t.deadtime * 3,
                        "{frozen:?}"
                    )
                }
                Fault::Loss { percent, .. } => assert!((10..=50).contains(&percent)),
                Fault::Kill9Early { up, .. } => assert!(up <= Duration::from_secs(1)),
                _ => {}
            }
        }
    }
}
