//! The run's report: every fault with its timeline, every violation, availability and the
//! recovery-time table per fault kind, written as JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::audit::Spread;

/// One step of a fault's timeline, `at_s` seconds after the run started.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Seconds since the run started.
    pub at_s: f64,
    /// What happened.
    pub what: String,
}

/// A broken rule.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// The fault during (or after) which it was seen, 1-based; 0 before the first fault.
    pub fault: usize,
    /// That fault's kind.
    pub kind: String,
    /// Which rule: `overlap`, `not_settled`, `holder`, `resources`, `status_disagree`,
    /// `daemon_died`, `budget`, `core`, `bad_log`, `reload`.
    pub rule: String,
    /// Seconds since the run started.
    pub at_s: f64,
    /// For overlaps: how long the VIP was on both nodes outside what the rule allows.
    pub duration_ms: Option<u64>,
    /// The details.
    pub detail: String,
}

/// An overlap the rule allows (the nodes could not talk).
#[derive(Clone, Debug, Serialize)]
pub struct AllowedOverlap {
    /// Seconds since the run started.
    pub at_s: f64,
    /// How long the VIP was on both nodes.
    pub ms: u64,
}

/// One injected fault.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// 1-based.
    pub index: usize,
    /// Kind name.
    pub kind: String,
    /// What was drawn.
    pub what: String,
    /// Holder before the fault.
    pub holder_before: Option<String>,
    /// Holder once settled.
    pub holder_after: Option<String>,
    /// Injected at (seconds since the run started).
    pub injected_at_s: f64,
    /// The fault's last action (heal, restart, cleanup), seconds since the run started.
    pub ended_at_s: f64,
    /// Fault end until the right holder served and the cluster was stable (None: it did
    /// not settle).
    pub recovery_ms: Option<u64>,
    /// Injection steps and what the injector saw.
    pub steps: Vec<Step>,
    /// A few relevant lines each node logged during the fault.
    pub logs: BTreeMap<String, Vec<String>>,
    /// Packets each node counted as dropped during the fault, by reason.
    pub drops: BTreeMap<String, BTreeMap<String, u64>>,
    /// Overlaps the rule allowed that started during this fault.
    pub allowed_overlaps: Vec<AllowedOverlap>,
    /// Violations seen during this fault (indexes into the run's list).
    pub violations: Vec<usize>,
}

/// Per fault kind.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KindStats {
    /// Faults of this kind.
    pub count: usize,
    /// Recovery times.
    pub recovery: Spread,
    /// Faults that never settled.
    pub unsettled: usize,
    /// Allowed overlaps: count, total and longest.
    pub allowed_overlaps: usize,
    /// Sum of their lengths.
    pub allowed_overlap_total_ms: u64,
    /// The longest.
    pub allowed_overlap_max_ms: u64,
    /// Violations.
    pub violations: usize,
}

/// The share of probes answered.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Availability {
    /// Probes sent (20 ms apart, a fresh connection each).
    pub probes: u64,
    /// Probes answered with HTTP 200.
    pub answered: u64,
    /// answered / probes.
    pub share: f64,
}

/// Daemon footprint seen by the audits.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Footprint {
    /// Largest RSS seen, KiB, per node.
    pub max_rss_kib: BTreeMap<String, u64>,
    /// Most open fds seen, per node.
    pub max_fds: BTreeMap<String, u64>,
    /// The budgets.
    pub rss_budget_kib: u64,
    /// The fd budget.
    pub fd_budget: u64,
}

/// A whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The seed of the schedule.
    pub seed: u64,
    /// The command line.
    pub command: String,
    /// `KEEPALIVE/DEADTIME`.
    pub timers: String,
    /// ha.cf values, ms.
    pub keepalive_ms: u64,
    /// deadtime, ms.
    pub deadtime_ms: u64,
    /// warntime, ms.
    pub warntime_ms: u64,
    /// initdead, ms.
    pub initdead_ms: u64,
    /// The handover bound of the overlap rule, ms.
    pub handover_ms: u64,
    /// Settle timeout per fault, ms.
    pub settle_timeout_ms: u64,
    /// Stable window, ms.
    pub stable_ms: u64,
    /// had + had, or had + Heartbeat 3.0.6.
    pub pair: String,
    /// Heartbeat media.
    pub links: String,
    /// Faults asked for.
    pub faults_planned: usize,
    /// Faults run (fewer when the run was stopped).
    pub faults_run: usize,
    /// Why the run stopped early, if it did.
    pub stopped_early: Option<String>,
    /// Wall time of the whole run, s.
    pub duration_s: f64,
    /// Probes answered.
    pub availability: Availability,
    /// Every violation.
    pub violations: Vec<Violation>,
    /// Per kind.
    pub kinds: BTreeMap<String, KindStats>,
    /// Fault kinds of issue 11 that this soak does not inject, with the reason.
    pub not_injected: Vec<(String, String)>,
    /// Daemon footprint.
    pub footprint: Footprint,
    /// Every fault.
    pub faults: Vec<FaultRecord>,
}

impl Report {
    /// Fills `kinds` from `faults` and `violations`.
    pub fn summarise(&mut self) {
        let mut kinds: BTreeMap<String, KindStats> = BTreeMap::new();
        let mut rec: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for f in &self.faults {
            let k = kinds.entry(f.kind.clone()).or_default();
            k.count += 1;
            match f.recovery_ms {
                Some(ms) => rec.entry(f.kind.clone()).or_default().push(ms),
                None => k.unsettled += 1,
            }
            for o in &f.allowed_overlaps {
                k.allowed_overlaps += 1;
                k.allowed_overlap_total_ms += o.ms;
                k.allowed_overlap_max_ms = k.allowed_overlap_max_ms.max(o.ms);
            }
        }
        for v in &self.violations {
            kinds.entry(v.kind.clone()).or_default().violations += 1;
        }
        for (k, ms) in rec {
            if let Some(s) = kinds.get_mut(&k) {
                s.recovery = Spread::of(&ms);
            }
        }
        self.kinds = kinds;
    }

    /// The Markdown form.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "# Lab soak: {} faults, timers {}\n",
            self.faults_run, self.timers
        );
        let _ = writeln!(m, "- command: `{}`", self.command);
        let _ = writeln!(m, "- seed: {}", self.seed);
        let _ = writeln!(m, "- pair: {}; links: {}", self.pair, self.links);
        let _ = writeln!(
            m,
            "- ha.cf: keepalive {} ms, deadtime {} ms, warntime {} ms, initdead {} ms",
            self.keepalive_ms, self.deadtime_ms, self.warntime_ms, self.initdead_ms
        );
        let _ = writeln!(
            m,
            "- overlap rule: handover bound {} ms; settle: stable for {} ms, at most {} ms",
            self.handover_ms, self.stable_ms, self.settle_timeout_ms
        );
        let _ = writeln!(
            m,
            "- faults: {} of {} planned, wall time {:.0} s{}",
            self.faults_run,
            self.faults_planned,
            self.duration_s,
            self.stopped_early
                .as_ref()
                .map(|w| format!(" (stopped early: {w})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            m,
            "- availability: {:.3} % ({} of {} probes answered)",
            self.availability.share * 100.0,
            self.availability.answered,
            self.availability.probes
        );
        let _ = writeln!(m, "- violations: **{}**", self.violations.len());
        let fp = &self.footprint;
        let _ = writeln!(
            m,
            "- footprint: max RSS {:?} KiB (budget {}), max fds {:?} (budget {})\n",
            fp.max_rss_kib, fp.rss_budget_kib, fp.max_fds, fp.fd_budget
        );
        let _ = writeln!(m, "## Recovery time per fault kind (ms)\n");
        let _ = writeln!(
            m,
            "| kind | faults | min | median | p99 | max | unsettled | allowed overlaps (n / total ms / max ms) | violations |"
        );
        let _ = writeln!(m, "|---|---:|---:|---:|---:|---:|---:|---|---:|");
        for (k, s) in &self.kinds {
            let _ = writeln!(
                m,
                "| {k} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} |",
                s.count,
                s.recovery.min_ms,
                s.recovery.median_ms,
                s.recovery.p99_ms,
                s.recovery.max_ms,
                s.unsettled,
                s.allowed_overlaps,
                s.allowed_overlap_total_ms,
                s.allowed_overlap_max_ms,
                s.violations
            );
        }
        let _ = writeln!(m, "\n## Violations\n");
        if self.violations.is_empty() {
            let _ = writeln!(m, "None.");
        }
        for v in &self.violations {
            let _ = writeln!(
                m,
                "- fault {} ({}), {:.3} s, **{}**{}: {}",
                v.fault,
                v.kind,
                v.at_s,
                v.rule,
                v.duration_ms
                    .map(|d| format!(" for {d} ms"))
                    .unwrap_or_default(),
                v.detail.replace('\n', " / ")
            );
        }
        let _ = writeln!(m, "\n## Not injected\n");
        if self.not_injected.is_empty() {
            let _ = writeln!(m, "Every kind of issue 11 is injected.");
        }
        for (k, why) in &self.not_injected {
            let _ = writeln!(m, "- {k}: {why}");
        }
        let _ = writeln!(m, "\n## Faults\n");
        for f in &self.faults {
            let _ = writeln!(
                m,
                "### {}. {} ({})\n\n- {}; holder {} -> {}; injected {:.3} s, ended {:.3} s, recovery {}",
                f.index,
                f.kind,
                f.what,
                if f.violations.is_empty() {
                    "ok".to_string()
                } else {
                    format!("**{} violation(s)**", f.violations.len())
                },
                f.holder_before.as_deref().unwrap_or("none"),
                f.holder_after.as_deref().unwrap_or("none"),
                f.injected_at_s,
                f.ended_at_s,
                f.recovery_ms
                    .map(|r| format!("{r} ms"))
                    .unwrap_or_else(|| "not settled".into())
            );
            for s in &f.steps {
                let _ = writeln!(m, "- {:.3} s: {}", s.at_s, s.what);
            }
            for o in &f.allowed_overlaps {
                let _ = writeln!(m, "- allowed overlap at {:.3} s for {} ms", o.at_s, o.ms);
            }
            for (n, d) in &f.drops {
                if !d.is_empty() {
                    let _ = writeln!(m, "- {n} dropped: {d:?}");
                }
            }
            for (n, lines) in &f.logs {
                if lines.is_empty() {
                    continue;
                }
                let _ = writeln!(m, "- {n} logged:\n\n```");
                for l in lines {
                    let _ = writeln!(m, "{l}");
                }
                let _ = writeln!(m, "```");
            }
            let _ = writeln!(m);
        }
        m
    }

    /// `soak-<timers>[-mixed]-seed<S>`: the name of the run's files.
    pub fn stem(&self) -> String {
        format!(
            "soak-{}{}-seed{}",
            self.timers.replace('/', "-"),
            if self.pair.contains("Heartbeat") {
                "-mixed"
            } else {
                ""
            },
            self.seed
        )
    }

    /// Writes `DIR/<stem>.{json,md}`; the two paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = self.stem();
        let json = dir.join(format!("{stem}.json"));
        let md = dir.join(format!("{stem}.md"));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", json.display()))?;
        std::fs::write(&md, self.markdown())
            .with_context(|| format!("writing {}", md.display()))?;
        Ok((json, md))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fault(index: usize, kind: &str, recovery: Option<u64>, overlaps: &[u64]) -> FaultRecord {
        FaultRecord {
            index,
            kind: kind.into(),
            what: format!("{kind} #{index}"),
            holder_before: Some("node1".into()),
            holder_after: Some("node1".into()),
            injected_at_s: index as f64,
            ended_at_s: index as f64 + 0.5,
            recovery_ms: recovery,
            steps: vec![Step {
                at_s: index as f64,
                what: "injected".into(),
            }],
            logs: BTreeMap::new(),
            drops: BTreeMap::new(),
            allowed_overlaps: overlaps
                .iter()
                .map(|&ms| AllowedOverlap { at_s: 1.0, ms })
                .collect(),
            violations: Vec::new(),
        }
    }

    #[test]
    fn summary_per_kind_and_both_forms() {
        let mut r = Report {
            seed: 7,
            timers: "100ms/500ms".into(),
            pair: "had + had".into(),
            faults: vec![
                fault(1, "freeze", Some(300), &[100, 400]),
                fault(2, "freeze", Some(100), &[]),
                fault(3, "kill9", None, &[]),
            ],
            violations: vec![Violation {
                fault: 3,
                kind: "kill9".into(),
                rule: "not_settled".into(),
                at_s: 3.0,
                duration_ms: None,
                detail: "why".into(),
            }],
            ..Report::default()
        };
        r.summarise();
        let f = &r.kinds["freeze"];
        assert_eq!((f.count, f.unsettled, f.violations), (2, 0, 0));
        assert_eq!((f.recovery.min_ms, f.recovery.max_ms), (100, 300));
        assert_eq!(
            (
                f.allowed_overlaps,
                f.allowed_overlap_total_ms,
                f.allowed_overlap_max_ms
            ),
            (2, 500, 400)
        );
        let k = &r.kinds["kill9"];
        assert_eq!((k.count, k.unsettled, k.violations), (1, 1, 1));
        let md = r.markdown();
        assert!(
            md.contains("| freeze | 2 | 100 | 100 | 300 | 300 | 0 | 2 / 500 / 400 | 0 |"),
            "{md}"
        );
        assert!(md.contains("**not_settled**"), "{md}");
        assert_eq!(r.stem(), "soak-100ms-500ms-seed7");
        let dir = std::env::temp_dir().join(format!("ha-soak-report-{}", std::process::id()));
        let (json, md_path) = r.write(&dir).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_eq!(back["kinds"]["freeze"]["count"], 2);
        assert!(
            std::fs::read_to_string(md_path)
                .unwrap()
                .starts_with("# Lab soak")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
