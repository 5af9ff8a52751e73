//! The runner: walks a scenario's drills against an [`Executor`] (the lab, or a live node),
//! decides which node each step acts on, and times every expectation against its deadline.
//!
//! The runner never reads a clock or sleeps by itself: it asks the executor, so its control
//! flow is unit-tested with a simulated cluster in virtual time.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::probe::ProbeSample;
use crate::report::{CheckReport, DrillReport, Report, StepReport};
use crate::scenario::{Action, Drill, Expect, ExpectKind, Scenario, fmt_duration};

/// How often the VIP's place and the probe samples are looked at.
pub const POLL: Duration = Duration::from_millis(20);

/// What a drill needs from a cluster: acting on nodes, seeing who holds the VIP, probing the
/// site, and a clock.
pub trait Executor {
    /// Where the drill runs, for the report (`lab hl1a2b3c`, `live on node1`).
    fn describe(&self) -> String;
    /// What is probed, for the report (`http://198.18.7.100:80/`).
    fn target(&self) -> String;
    /// The current time.
    fn now(&self) -> Instant;
    /// Lets `d` pass.
    fn sleep(&mut self, d: Duration);
    /// Whether this executor can do `action` at all (checked for every step before the first
    /// runs); the error says what to do instead.
    fn supports(&self, action: &Action) -> Result<(), String>;
    /// Whether steps may act on `node` (checked with the node holding the VIP when each drill
    /// begins); the error says where to run the drill instead.
    fn can_act_on(&self, node: &str) -> Result<(), String>;
    /// The nodes holding the VIP now (a powered-off node holds nothing).
    fn vip_holders(&mut self) -> Result<Vec<String>, String>;
    /// The other node of the cluster.
    fn peer_of(&self, node: &str) -> Option<String>;
    /// Does `action` on `node` (`None` for `wait`).
    fn perform(&mut self, action: &Action, node: Option<&str>) -> Result<(), String>;
    /// Starts probing the site through the VIP in the background.
    fn start_probe(&mut self) -> Result<(), String>;
    /// Every probe sample so far, oldest first.
    fn samples(&self) -> Vec<ProbeSample>;
}

/// Why a scenario could not run at all.
#[derive(Debug, Error)]
pub enum RunError {
    /// A step this executor cannot do; nothing was run.
    #[error("drill `{drill}`, line {line}: `{step}` cannot run here: {why}")]
    Unsupported {
        /// The drill's name.
        drill: String,
        /// The step's line in the scenario file.
        line: usize,
        /// The step.
        step: String,
        /// What to do instead.
        why: String,
    },
}

/// Runs every drill of `scenario`, narrating to `log`; the report says what passed.
pub fn run(
    scenario: &Scenario,
    exec: &mut dyn Executor,
    log: &mut dyn Write,
) -> Result<Report, RunError> {
    for d in &scenario.drills {
        for st in &d.steps {
            exec.supports(&st.action)
                .map_err(|why| RunError::Unsupported {
                    drill: d.name.clone(),
                    line: st.line,
                    step: st.action.to_string(),
                    why,
                })?;
        }
    }
    let needs_site = scenario
        .drills
        .iter()
        .flat_map(|d| &d.steps)
        .flat_map(|s| &s.expect)
        .any(|e| e.kind == ExpectKind::SiteAnswers);
    let probe_error = if needs_site {
        exec.start_probe().err()
    } else {
        None
    };
    let mut drills = Vec::new();
    for (i, d) in scenario.drills.iter().enumerate() {
        let _ = writeln!(log, "drill {}/{}: {}", i + 1, scenario.drills.len(), d.name);
        let mut r = DrillRun {
            exec: &mut *exec,
            log: &mut *log,
            scenario,
            probe_error: probe_error.as_deref(),
        };
        let report = r.drill(d);
        let _ = writeln!(
            log,
            "drill {}: {}",
            d.name,
            if report.passed { "SUCCESS" } else { "FAILED" }
        );
        drills.push(report);
    }
    let passed = drills.iter().all(|d| d.passed);
    Ok(Report {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        executor: exec.describe(),
        target: exec.target(),
        drills,
        passed,
    })
}

struct DrillRun<'a> {
    exec: &'a mut dyn Executor,
    log: &'a mut dyn Write,
    scenario: &'a Scenario,
    probe_error: Option<&'a str>,
}

/// Nodes the drill's earlier steps acted on, which later steps act on again.
#[derive(Default)]
struct Memory {
    stopped: BTreeMap<String, String>,
    crashed: Option<String>,
    cut: Option<String>,
}

impl DrillRun<'_> {
    fn drill(&mut self, d: &Drill) -> DrillReport {
        let mut report = DrillReport {
            name: d.name.clone(),
            origin: None,
            steps: Vec::new(),
            error: None,
            passed: false,
        };
        let start = self.exec.now();
        let origin = match self.single_holder(self.scenario.defaults.settle) {
            Ok(n) => n,
            Err(e) => {
                report.error = Some(format!("before the first step: {e}"));
                return report;
            }
        };
        let _ = writeln!(self.log, "  VIP held by {origin}");
        report.origin = Some(origin.clone());
        if let Err(e) = self.exec.can_act_on(&origin) {
            report.error = Some(e);
            return report;
        }
        let site_checked = d
            .steps
            .iter()
            .flat_map(|s| &s.expect)
            .any(|e| e.kind == ExpectKind::SiteAnswers);
        if site_checked && self.probe_error.is_none() {
            // A gap is measured from the last answer before a step: make sure there is one.
            let settle = self.scenario.defaults.settle;
            self.wait_for(settle, |r| {
                r.exec.samples().iter().any(|s| s.ok && s.sent >= start)
            });
        }
        let mut mem = Memory::default();
        for step in &d.steps {
            let before = self.holders().ok().and_then(only_one);
            let node = match self.node_for(&step.action, &origin, &mut mem) {
                Ok(n) => n,
                Err(e) => {
                    report.error = Some(format!("`{}`: {e}", step.action));
                    return report;
                }
            };
            let t0 = self.exec.now();
            let result = self.exec.perform(&step.action, node.as_deref());
            let action_ms = ms(self.exec.now().saturating_duration_since(t0));
            let on = node
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default();
            let _ = writeln!(self.log, "  {}{on} ({action_ms} ms)", step.action);
            if let Err(e) = result {
                let _ = writeln!(self.log, "    step failed: {e}");
                report.steps.push(StepReport {
                    action: step.action.to_string(),
                    node,
                    action_ms,
                    error: Some(e.clone()),
                    checks: step
                        .expect
                        .iter()
                        .map(|x| unmet(x, "not checked: the step failed"))
                        .collect(),
                });
                report.error = Some(format!("`{}` failed: {e}", step.action));
                return report;
            }
            let checks = self.observe(&step.expect, before.as_deref(), &origin, t0);
            for c in &checks {
                let _ = writeln!(
                    self.log,
                    "    {} {}: {}",
                    if c.met { "ok" } else { "FAILED" },
                    c.kind.as_str(),
                    c.detail
                );
            }
            report.steps.push(StepReport {
                action: step.action.to_string(),
                node,
                action_ms,
                error: None,
                checks,
            });
        }
        report.passed = report.error.is_none()
            && report
                .steps
                .iter()
                .all(|s| s.error.is_none() && s.checks.iter().all(|c| c.met));
        report
    }

    /// The node a step acts on: the active node, or the node an earlier step acted on.
    fn node_for(
        &mut self,
        action: &Action,
        origin: &str,
        mem: &mut Memory,
    ) -> Result<Option<String>, String> {
        let settle = self.scenario.defaults.settle;
        let node = match action {
            Action::StopService(svc) => {
                let n = self.single_holder(settle)?;
                mem.stopped.insert(svc.clone(), n.clone());
                n
            }
            Action::StartService(svc) => mem
                .stopped
                .remove(svc)
                .ok_or_else(|| format!("{svc} was not stopped by this drill"))?,
            Action::CrashActive => {
                let n = self.single_holder(settle)?;
                mem.crashed = Some(n.clone());
                n
            }
            Action::RestartNode => mem
                .crashed
                .take()
                .ok_or("no node was crashed by this drill")?,
            Action::Standby | Action::CutLink => {
                let n = self.single_holder(settle)?;
                if matches!(action, Action::CutLink) {
                    mem.cut = Some(n.clone());
                }
                n
            }
            Action::Takeover => origin.to_string(),
            Action::RestoreLink => mem.cut.take().ok_or("no link was cut by this drill")?,
            Action::Wait(_) => return Ok(None),
        };
        Ok(Some(node))
    }

    fn holders(&mut self) -> Result<Vec<String>, String> {
        let mut h = self.exec.vip_holders()?;
        h.sort();
        h.dedup();
        Ok(h)
    }

    /// Waits up to `patience` for exactly one node to hold the VIP.
    fn single_holder(&mut self, patience: Duration) -> Result<String, String> {
        let mut last = Ok(Vec::new());
        let found = self.wait_for(patience, |r| {
            last = r.holders();
            last.as_ref().is_ok_and(|h| h.len() == 1)
        });
        match (found, last) {
            (true, Ok(mut h)) if h.len() == 1 => Ok(h.remove(0)),
            (_, Err(e)) => Err(format!("cannot see who holds the VIP: {e}")),
            (_, Ok(h)) if h.is_empty() => Err(format!(
                "no node holds the VIP after {}",
                fmt_duration(patience)
            )),
            (_, Ok(h)) => Err(format!(
                "{} hold the VIP at once after {}",
                h.join(" and "),
                fmt_duration(patience)
            )),
        }
    }

    /// Polls `f` until it is true (true) or `patience` has passed (false).
    fn wait_for(&mut self, patience: Duration, mut f: impl FnMut(&mut Self) -> bool) -> bool {
        let start = self.exec.now();
        loop {
            if f(self) {
                return true;
            }
            if self.exec.now().saturating_duration_since(start) >= patience {
                return false;
            }
            self.exec.sleep(POLL);
        }
    }

    /// Watches the step's expectations until each is met or past its deadline.
    fn observe(
        &mut self,
        expects: &[Expect],
        before: Option<&str>,
        origin: &str,
        t0: Instant,
    ) -> Vec<CheckReport> {
        let mut vips: Vec<VipWatch> = expects
            .iter()
            .filter(|e| e.kind != ExpectKind::SiteAnswers)
            .map(|e| VipWatch::new(*e, before, origin, self.exec.peer_of(before.unwrap_or(""))))
            .collect();
        let mut site = expects
            .iter()
            .find(|e| e.kind == ExpectKind::SiteAnswers)
            .map(|e| SiteWatch {
                expect: *e,
                since: None,
                report: None,
            });
        if let (Some(s), Some(err)) = (site.as_mut(), self.probe_error) {
            s.report = Some(unmet(
                &s.expect,
                &format!("the prober could not start: {err}"),
            ));
        }
        let mut last_error = None;
        loop {
            let now = self.exec.now();
            let el = now.saturating_duration_since(t0);
            let holders = match self.holders() {
                Ok(h) => Some(h),
                Err(e) => {
                    last_error = Some(e);
                    None
                }
            };
            for w in vips.iter_mut().filter(|w| w.report.is_none()) {
                w.update(el, holders.as_deref(), last_error.as_deref());
            }
            if vips.iter().all(|w| w.report.is_some())
                && let Some(s) = site.as_mut().filter(|s| s.report.is_none())
            {
                let since = *s.since.get_or_insert(now);
                s.update(t0, since, now, &self.exec.samples());
            }
            if vips.iter().all(|w| w.report.is_some())
                && site.as_ref().is_none_or(|s| s.report.is_some())
            {
                break;
            }
            self.exec.sleep(POLL);
        }
        let mut out: Vec<CheckReport> = vips.into_iter().filter_map(|w| w.report).collect();
        out.extend(site.and_then(|s| s.report));
        out.sort_by_key(|c| c.kind);
        out
    }
}

fn only_one(mut h: Vec<String>) -> Option<String> {
    (h.len() == 1).then(|| h.remove(0))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unmet(e: &Expect, detail: &str) -> CheckReport {
    CheckReport {
        kind: e.kind,
        deadline_ms: ms(e.deadline),
        measured_ms: None,
        left_ms: None,
        met: false,
        detail: detail.to_string(),
    }
}

fn where_is(holders: Option<&[String]>, err: Option<&str>) -> String {
    match holders {
        Some([]) => "held by nobody".into(),
        Some(h) => format!("held by {}", h.join(" and ")),
        None => format!("unknown ({})", err.unwrap_or("no answer")),
    }
}

/// One VIP expectation being watched.
struct VipWatch {
    expect: Expect,
    /// The node holding the VIP before the step.
    from: Option<String>,
    /// Where the VIP must arrive (moves: the peer; returns: the drill's first node).
    to: Option<String>,
    left: Option<Duration>,
    report: Option<CheckReport>,
}

impl VipWatch {
    fn new(expect: Expect, before: Option<&str>, origin: &str, peer: Option<String>) -> Self {
        let to = match expect.kind {
            ExpectKind::VipMoves => peer,
            ExpectKind::VipReturns => Some(origin.to_string()),
            _ => before.map(str::to_string),
        };
        let mut w = VipWatch {
            expect,
            from: before.map(str::to_string),
            to,
            left: None,
            report: None,
        };
        if w.from.is_none() && expect.kind != ExpectKind::VipReturns {
            w.report = Some(unmet(
                &expect,
                "the VIP was not held by exactly one node before the step",
            ));
        } else if w.to.is_none() {
            w.report = Some(unmet(&expect, "the active node has no known peer"));
        }
        w
    }

    fn done(&mut self, measured: Option<Duration>, met: bool, detail: String) {
        self.report = Some(CheckReport {
            kind: self.expect.kind,
            deadline_ms: ms(self.expect.deadline),
            measured_ms: measured.map(ms),
            left_ms: self.left.map(ms),
            met,
            detail,
        });
    }

    fn update(&mut self, el: Duration, holders: Option<&[String]>, err: Option<&str>) {
        let from = self.from.clone().unwrap_or_default();
        let to = self.to.clone().unwrap_or_default();
        let deadline = self.expect.deadline;
        let alone_on = |n: &str| holders.is_some_and(|h| h.len() == 1 && h[0] == n);
        match self.expect.kind {
            ExpectKind::VipMoves | ExpectKind::VipReturns => {
                if self.left.is_none()
                    && !from.is_empty()
                    && from != to
                    && holders.is_some_and(|h| !h.contains(&from))
                {
                    self.left = Some(el);
                }
                if alone_on(&to) {
                    if from != to {
                        self.left.get_or_insert(el);
                    }
                    let detail = match (self.expect.kind, self.left) {
                        (ExpectKind::VipMoves, Some(l)) => {
                            format!("left {from} after {}, on {to} after {}", secs(l), secs(el))
                        }
                        _ => format!("on {to} after {}", secs(el)),
                    };
                    self.done(Some(el), el <= deadline, detail);
                } else if el > deadline {
                    let detail = format!(
                        "not on {to} alone after {}: {}",
                        fmt_duration(deadline),
                        where_is(holders, err)
                    );
                    self.done(None, false, detail);
                }
            }
            ExpectKind::VipStays => {
                if holders.is_some() && !alone_on(&from) {
                    let detail = format!("moved after {}: {}", secs(el), where_is(holders, err));
                    self.done(Some(el), false, detail);
                } else if el >= deadline {
                    let detail = format!("stayed on {from} for {}", fmt_duration(deadline));
                    self.done(Some(el), true, detail);
                }
            }
            ExpectKind::SiteAnswers => {}
        }
    }
}

/// The site expectation: no gap between answers longer than the deadline, from the last
/// answer before the step until the site answers a probe sent after the VIP settled.
struct SiteWatch {
    expect: Expect,
    /// When the VIP expectations of the step were all decided.
    since: Option<Instant>,
    report: Option<CheckReport>,
}

impl SiteWatch {
    fn update(&mut self, t0: Instant, since: Instant, now: Instant, samples: &[ProbeSample]) {
        let limit = self.expect.deadline;
        let answered: Vec<&ProbeSample> = samples.iter().filter(|s| s.ok).collect();
        let before = answered.iter().rev().find(|s| s.at <= t0).map(|s| s.at);
        let mut prev = before.unwrap_or(t0);
        let mut gap = Duration::ZERO;
        let mut settled = false;
        for s in answered.iter().filter(|s| s.at > t0) {
            gap = gap.max(s.at.saturating_duration_since(prev));
            prev = s.at;
            if s.sent >= since {
                settled = true;
                break;
            }
        }
        let open = now.saturating_duration_since(prev);
        let note = if before.is_none() {
            " (no answer before the step)"
        } else {
            ""
        };
        if settled {
            self.report = Some(CheckReport {
                kind: self.expect.kind,
                deadline_ms: ms(limit),
                measured_ms: Some(ms(gap)),
                left_ms: None,
                met: gap <= limit,
                detail: format!("longest time without an answer {}{note}", secs(gap)),
            });
        } else if open > limit {
            let gap = gap.max(open);
            self.report = Some(CheckReport {
                kind: self.expect.kind,
                deadline_ms: ms(limit),
                measured_ms: Some(ms(gap)),
                left_ms: None,
                met: false,
                detail: format!("no answer for {}{note}", secs(gap)),
            });
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
