//! Parsing tests (every shipped scenario, each error on its line) and the runner's control
//! flow against a simulated two-node cluster in virtual time.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::probe::ProbeSample;
use crate::runner::{Executor, RunError, run};
use crate::scenario::{Action, ExpectKind, ProbeKind, Scenario};

fn parse(text: &str) -> Result<Scenario, ha_config::Diagnostics> {
    Scenario::parse(Path::new("t.toml"), text)
}

/// The first error's line and message.
fn first_error(text: &str) -> (usize, String) {
    let d = parse(text).expect_err("must be refused");
    let e = d.errors().next().expect("an error");
    (e.line, e.message.clone())
}

const GOOD: &str = r#"
name = "t"
description = "d"
[target]
vip = "198.18.0.100"
port = 8080
probe = "tcp"
[defaults]
vip_moves = "3s"
site_gap = 2
[[drill]]
name = "named"
[[drill.step]]
do = "stop_service named"
expect = { vip_moves = true, site_answers = "1500ms" }
[[drill.step]]
do = "wait 2s"
[[drill.step]]
do = "start_service named"
expect = { vip_returns = 7 }
"#;

#[test]
fn a_good_file_parses_with_defaults_filled_in() {
    let s = parse(GOOD).unwrap();
    assert_eq!(s.name, "t");
    assert_eq!(s.target.vip, Some("198.18.0.100".parse().unwrap()));
    assert_eq!((s.target.port, s.target.probe), (8080, ProbeKind::Tcp));
    assert_eq!(s.defaults.vip_moves, Duration::from_secs(3));
    assert_eq!(s.defaults.site_gap, Duration::from_secs(2));
    assert_eq!(s.defaults.vip_returns, Duration::from_secs(10));
    let d = &s.drills[0];
    assert_eq!((d.name.as_str(), d.line), ("named", 12));
    assert_eq!(d.steps.len(), 3);
    assert_eq!(d.steps[0].action, Action::StopService("named".into()));
    assert_eq!(d.steps[0].line, 14);
    let e = &d.steps[0].expect;
    assert_eq!(e[0].kind, ExpectKind::VipMoves);
    assert_eq!(e[0].deadline, Duration::from_secs(3));
    assert_eq!(e[1].kind, ExpectKind::SiteAnswers);
    assert_eq!(e[1].deadline, Duration::from_millis(1500));
    assert_eq!(d.steps[1].action, Action::Wait(Duration::from_secs(2)));
    assert_eq!(d.steps[2].expect[0].deadline, Duration::from_secs(7));
    assert_eq!(s.services(), vec!["named".to_string()]);
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/drills");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            if let Err(d) = Scenario::load(&p) {
                panic!("{}:\n{d}", p.display());
            }
            n += 1;
        }
    }
    assert!(n >= 3, "only {n} scenarios in {}", dir.display());
    let seed = Scenario::load(&dir.join("seed-000.toml")).unwrap();
    let names: Vec<&str> = seed.drills.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "named (DNS)",
            "apache2 (HTTP)",
            "vsftpd (FTP)",
            "crash MASTER"
        ]
    );
    assert_eq!(seed.services(), ["named", "apache2", "vsftpd"]);
}

#[test]
fn errors_name_their_line() {
    let base = "name = \"t\"\n[[drill]]\nname = \"d\"\n[[drill.step]]\n";
    let cases: &[(&str, usize, &str)] = &[
        (
            "do = \"stop_servce named\"\n",
            5,
            "unknown step `stop_servce`",
        ),
        ("do = \"stop_service\"\n", 5, "needs one service name"),
        ("do = \"stop_service a;b\"\n", 5, "is not a service name"),
        (
            "do = \"start_service named\"\n",
            5,
            "without an earlier `stop_service named`",
        ),
        (
            "do = \"restart_node\"\n",
            5,
            "without an earlier `crash_active`",
        ),
        (
            "do = \"restore_link\"\n",
            5,
            "without an earlier `cut_link`",
        ),
        ("do = \"crash_active now\"\n", 5, "takes no argument"),
        ("do = \"wait 2 min\"\n", 5, "`wait` needs one duration"),
        ("do = \"wait 2m\"\n", 5, "invalid duration for `wait`"),
        (
            "do = \"standby\"\nexpect = { vip_moves = \"fast\" }\n",
            6,
            "invalid duration for `vip_moves`",
        ),
        (
            "do = \"standby\"\nexpect = { vip_moves = false }\n",
            6,
            "expects nothing",
        ),
        (
            "do = \"standby\"\nexpect = { vip_moves = 0 }\n",
            6,
            "greater than zero",
        ),
        (
            "do = \"standby\"\nexpect = { vip_move = true }\n",
            6,
            "unknown field `vip_move`",
        ),
        (
            "do = \"standby\"\nexpect = { vip_moves = true, vip_stays = true }\n",
            6,
            "cannot both be expected",
        ),
        ("do = \"standby\"\nwhen = 1\n", 6, "unknown field `when`"),
    ];
    for (step, line, msg) in cases {
        let text = format!("{base}{step}");
        let (l, m) = first_error(&text);
        assert_eq!(l, *line, "{step:?}: {m}");
        assert!(m.contains(msg), "{step:?}: {m:?} lacks {msg:?}");
    }
    let (l, m) = first_error(
        "name = \"t\"\n[target]\nvip = \"10.0.0.1/24\"\n[[drill]]\nname = \"d\"\n[[drill.step]]\ndo = \"standby\"\n",
    );
    assert_eq!((l, m.contains("not an IPv4 address")), (3, true), "{m}");
    let (l, m) = first_error(
        "name = \"t\"\n[target]\nprobe = \"htp\"\n[[drill]]\nname = \"d\"\n[[drill.step]]\ndo = \"standby\"\n",
    );
    assert_eq!((l, m.contains("unknown probe `htp`")), (3, true), "{m}");
    let (l, m) = first_error(
        "name = \"t\"\n[target]\nport = 70000\n[[drill]]\nname = \"d\"\n[[drill.step]]\ndo = \"standby\"\n",
    );
    assert_eq!((l, m.contains("1 to 65535")), (3, true), "{m}");
    let (l, m) = first_error("name = \"t\"\n\n[[drill]]\nname = \"empty\"\n");
    assert_eq!((l, m.contains("has no step")), (4, true), "{m}");
    let (l, m) = first_error("name = \"t\"\n");
    assert_eq!((l, m.contains("no drill")), (1, true), "{m}");
    let (l, _) = first_error("name = \"t\"\n[[drill]\nname = \"x\"\n");
    assert_eq!(l, 2);
}

#[test]
fn the_hint_suggests_the_step_or_key_meant() {
    let d = parse("name = \"t\"\n[[drill]]\nname = \"d\"\n[[drill.step]]\ndo = \"takeovr\"\n")
        .unwrap_err();
    let e = d.errors().next().unwrap();
    assert_eq!(e.help.as_deref(), Some("did you mean `takeover`?"));
    assert_eq!((e.column, e.len), (6, 9));
    let d = parse("name = \"t\"\n[defaults]\nvip_move = 3\n[[drill]]\nname = \"d\"\n[[drill.step]]\ndo = \"standby\"\n")
        .unwrap_err();
    let e = d.errors().next().unwrap();
    assert_eq!(e.line, 3);
    assert_eq!(e.help.as_deref(), Some("did you mean `vip_moves`?"));
}

#[test]
fn every_error_is_collected_not_only_the_first() {
    let d = parse(
        "name = \"t\"\n[[drill]]\nname = \"a\"\n[[drill.step]]\ndo = \"bogus\"\n[[drill]]\nname = \"b\"\n[[drill.step]]\ndo = \"wait x\"\n",
    )
    .unwrap_err();
    let lines: Vec<usize> = d.errors().map(|e| e.line).collect();
    assert_eq!(lines, [5, 9]);
}

// ---- the runner against a simulated cluster ----

/// A two-node cluster in virtual time: the VIP moves `move_after` after a stop, standby or
/// crash of its holder, and comes back `return_after` after the start, takeover or restart.
struct Sim {
    base: Instant,
    t: Duration,
    holder: Option<&'static str>,
    /// (when, new holder)
    pending: Vec<(Duration, Option<&'static str>)>,
    move_after: Duration,
    return_after: Duration,
    /// Nobody holds the VIP for this long during a move.
    hole: Duration,
    performed: Vec<(String, Option<String>)>,
    fail_on: Option<&'static str>,
    lab: bool,
    local: &'static str,
    samples: Vec<ProbeSample>,
    probing: bool,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            base: Instant::now(),
            t: Duration::ZERO,
            holder: Some("node1"),
            pending: Vec::new(),
            move_after: Duration::from_millis(1200),
            return_after: Duration::from_millis(2000),
            hole: Duration::from_millis(400),
            performed: Vec::new(),
            fail_on: None,
            lab: true,
            local: "node1",
            samples: Vec::new(),
            probing: false,
        }
    }

    fn schedule_move(&mut self, to: &'static str, after: Duration) {
        let at = self.t + after;
        self.pending.push((at.saturating_sub(self.hole), None));
        self.pending.push((at, Some(to)));
    }

    fn actions(&self) -> Vec<String> {
        self.performed
            .iter()
            .map(|(a, n)| format!("{a}@{}", n.as_deref().unwrap_or("-")))
            .collect()
    }
}

fn peer(n: &str) -> &'static str {
    if n == "node1" { "node2" } else { "node1" }
}

impl Executor for Sim {
    fn describe(&self) -> String {
        "sim".into()
    }
    fn target(&self) -> String {
        "http://198.18.0.100:80/".into()
    }
    fn now(&self) -> Instant {
        self.base + self.t
    }
    fn sleep(&mut self, d: Duration) {
        // The site answers every 50 ms of virtual time while someone holds the VIP.
        let end = self.t + d;
        while self.t < end {
            let step = Duration::from_millis(10).min(end - self.t);
            self.t += step;
            let now = self.t;
            self.pending.sort_by_key(|(at, _)| *at);
            while let Some((at, h)) = self.pending.first().copied() {
                if at > now {
                    break;
                }
                self.holder = h;
                self.pending.remove(0);
            }
            if self.probing && self.t.as_millis().is_multiple_of(50) {
                let at = self.base + self.t;
                self.samples.push(ProbeSample {
                    sent: at,
                    at,
                    ok: self.holder.is_some(),
                });
            }
        }
    }
    fn supports(&self, action: &Action) -> Result<(), String> {
        if action.lab_only() && !self.lab {
            return Err(format!("{} needs the lab", action.keyword()));
        }
        Ok(())
    }
    fn can_act_on(&self, node: &str) -> Result<(), String> {
        if self.lab || node == self.local {
            Ok(())
        } else {
            Err(format!("the active node is {node}: run the drill there"))
        }
    }
    fn vip_holders(&mut self) -> Result<Vec<String>, String> {
        Ok(self.holder.iter().map(|h| h.to_string()).collect())
    }
    fn peer_of(&self, node: &str) -> Option<String> {
        Some(peer(node).to_string())
    }
    fn perform(&mut self, action: &Action, node: Option<&str>) -> Result<(), String> {
        self.performed
            .push((action.to_string(), node.map(str::to_string)));
        if self.fail_on == Some(action.keyword()) {
            return Err("script exited 1".into());
        }
        let n = node.unwrap_or_default();
        match action {
            Action::StopService(_) | Action::Standby | Action::CrashActive => {
                let to = peer(n);
                let after = self.move_after;
                self.schedule_move(to, after);
            }
            Action::StartService(_) | Action::Takeover | Action::RestartNode => {
                let to = if n == "node1" { "node1" } else { "node2" };
                let after = self.return_after;
                self.schedule_move(to, after);
            }
            Action::Wait(d) => self.sleep(*d),
            Action::CutLink | Action::RestoreLink => {}
        }
        self.sleep(Duration::from_millis(30));
        Ok(())
    }
    fn start_probe(&mut self) -> Result<(), String> {
        self.probing = true;
        Ok(())
    }
    fn samples(&self) -> Vec<ProbeSample> {
        self.samples.clone()
    }
}

const SEEDLIKE: &str = r#"
name = "sim"
[[drill]]
name = "named (DNS)"
[[drill.step]]
do = "stop_service named"
expect = { vip_moves = "5s", site_answers = "1s" }
[[drill.step]]
do = "start_service named"
expect = { vip_returns = "5s", site_answers = "1s" }
[[drill]]
name = "crash MASTER"
[[drill.step]]
do = "crash_active"
expect = { vip_moves = "5s" }
[[drill.step]]
do = "wait 1s"
expect = { vip_stays = "1s" }
[[drill.step]]
do = "restart_node"
expect = { vip_returns = "5s" }
"#;

#[test]
fn a_drill_acts_on_the_right_nodes_and_measures_each_expectation() {
    let s = parse(SEEDLIKE).unwrap();
    let mut sim = Sim::new();
    let mut log = Vec::new();
    let r = run(&s, &mut sim, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(r.passed, "{}\n{log}", r.markdown());
    // start_service goes to the node where the service was stopped, though the VIP is on
    // node2 by then; restart_node to the node that was crashed.
    assert_eq!(
        sim.actions(),
        [
            "stop_service named@node1",
            "start_service named@node1",
            "crash_active@node1",
            "wait 1 s@-",
            "restart_node@node1"
        ]
    );
    let moves = &r.drills[0].steps[0].checks[0];
    assert_eq!(moves.kind, ExpectKind::VipMoves);
    // Nobody holds it 800 ms after the stop, node2 does at 1200 ms (20 ms polling).
    let (left, on) = (moves.left_ms.unwrap(), moves.measured_ms.unwrap());
    assert!((800..=840).contains(&left), "left {left}");
    assert!((1200..=1240).contains(&on), "on {on}");
    let site = &r.drills[0].steps[0].checks[1];
    assert_eq!(site.kind, ExpectKind::SiteAnswers);
    let gap = site.measured_ms.unwrap();
    assert!((400..=460).contains(&gap), "gap {gap}");
    let back = &r.drills[0].steps[1].checks[0];
    assert_eq!(back.kind, ExpectKind::VipReturns);
    assert!(
        (2000..=2040).contains(&back.measured_ms.unwrap()),
        "{back:?}"
    );
    assert_eq!(r.drills[1].origin.as_deref(), Some("node1"));
    let md = r.markdown();
    assert!(
        md.contains(
            "| drill | VIP left master | VIP on backup | site reachable | VIP returned | result |"
        ),
        "{md}"
    );
    assert!(md.contains("| named (DNS) | ✓ 0.8"), "{md}");
    assert!(md.contains("| crash MASTER | ✓ 0.8"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(
        json["drills"][0]["steps"][0]["checks"][0]["kind"],
        "vip_moves"
    );
}

#[test]
fn a_late_move_fails_its_deadline_but_the_drill_goes_on() {
    let s = parse(SEEDLIKE).unwrap();
    let mut sim = Sim::new();
    sim.move_after = Duration::from_secs(7);
    let r = run(&s, &mut sim, &mut std::io::sink()).unwrap();
    assert!(!r.passed);
    let d = &r.drills[0];
    assert!(!d.passed);
    let moves = &d.steps[0].checks[0];
    assert!(!moves.met);
    assert_eq!(moves.measured_ms, None);
    assert!(
        moves
            .detail
            .contains("not on node2 alone after 5 s: held by node1"),
        "{}",
        moves.detail
    );
    // The site kept answering from node1, so its check passed; the start step still ran.
    assert!(d.steps[0].checks[1].met);
    assert_eq!(d.steps.len(), 2);
    assert!(r.markdown().contains("✗ FAILED"));
}

#[test]
fn a_long_outage_fails_site_answers() {
    let s = parse(SEEDLIKE).unwrap();
    let mut sim = Sim::new();
    sim.hole = Duration::from_millis(1500);
    let r = run(&s, &mut sim, &mut std::io::sink()).unwrap();
    let site = &r.drills[0].steps[0].checks[1];
    assert!(!site.met, "{site:?}");
    assert!(site.measured_ms.unwrap() > 1000);
    assert!(r.drills[0].steps[0].checks[0].met);
}

#[test]
fn lab_only_steps_are_refused_before_anything_runs() {
    let s = parse(SEEDLIKE).unwrap();
    let mut sim = Sim::new();
    sim.lab = false;
    let e = run(&s, &mut sim, &mut std::io::sink()).unwrap_err();
    let RunError::Unsupported { line, .. } = &e;
    assert_eq!(*line, 14);
    assert!(e.to_string().contains("crash_active needs the lab"), "{e}");
    assert!(sim.performed.is_empty());
}

#[test]
fn a_drill_whose_active_node_is_elsewhere_is_refused() {
    let services = SEEDLIKE.split("[[drill]]\nname = \"crash").next().unwrap();
    let s = parse(services).unwrap();
    let mut sim = Sim::new();
    sim.lab = false;
    sim.local = "node2";
    let r = run(&s, &mut sim, &mut std::io::sink()).unwrap();
    assert!(!r.passed);
    assert!(
        r.drills[0]
            .error
            .as_deref()
            .unwrap()
            .contains("run the drill there"),
        "{:?}",
        r.drills[0].error
    );
    assert!(sim.performed.is_empty());
}

#[test]
fn a_failed_step_ends_its_drill_and_the_next_drill_runs() {
    let s = parse(SEEDLIKE).unwrap();
    let mut sim = Sim::new();
    sim.fail_on = Some("stop_service");
    let r = run(&s, &mut sim, &mut std::io::sink()).unwrap();
    let d = &r.drills[0];
    assert_eq!(d.steps.len(), 1);
    assert_eq!(d.steps[0].error.as_deref(), Some("script exited 1"));
    assert!(d.steps[0].checks.iter().all(|c| !c.met));
    assert!(r.drills[1].passed, "{}", r.markdown());
    assert!(!r.passed);
}

#[test]
fn no_holder_at_the_start_fails_the_drill_after_the_settle_time() {
    let s = parse(&format!("{SEEDLIKE}\n[defaults]\nsettle = \"2s\"\n")).unwrap();
    let mut sim = Sim::new();
    sim.holder = None;
    let r = run(&s, &mut sim, &mut std::io::sink()).unwrap();
    assert!(
        r.drills[0]
            .error
            .as_deref()
            .unwrap()
            .contains("no node holds the VIP after 2 s"),
        "{:?}",
        r.drills[0].error
    );
    assert!(sim.t >= Duration::from_secs(2) && sim.t < Duration::from_secs(5));
    assert!(sim.performed.is_empty());
}

#[test]
fn vip_stays_fails_when_the_vip_moves() {
    let s = parse(
        "name = \"t\"\n[[drill]]\nname = \"d\"\n[[drill.step]]\ndo = \"standby\"\nexpect = { vip_stays = \"3s\" }\n",
    )
    .unwrap();
    let mut sim = Sim::new();
    let r = run(&s, &mut sim, &mut std::io::sink()).unwrap();
    let c = &r.drills[0].steps[0].checks[0];
    assert!(!c.met);
    assert!(c.detail.starts_with("moved after 0.8"), "{}", c.detail);
}
