//! The drill report: every step with its measured times, and the summary table of seed 000
//! (one row per drill: VIP left the master, VIP on the backup, site reachable, VIP returned).

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenario::ExpectKind;

/// The outcome of a scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's description.
    pub description: String,
    /// Where it ran (`lab hl1a2b3c`, `live on node1`).
    pub executor: String,
    /// What was probed, e.g. `http://198.18.7.100:80/`.
    pub target: String,
    /// One entry per drill, in file order.
    pub drills: Vec<DrillReport>,
    /// True when every step ran and every expectation met its deadline.
    pub passed: bool,
}

/// One drill's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The drill's name (the row label).
    pub name: String,
    /// The node holding the VIP when the drill began.
    pub origin: Option<String>,
    /// The steps that ran.
    pub steps: Vec<StepReport>,
    /// Why the drill stopped early, if it did.
    pub error: Option<String>,
    /// True when every step ran and every expectation was met.
    pub passed: bool,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step as written (`stop_service named`).
    pub action: String,
    /// The node it acted on, if any.
    pub node: Option<String>,
    /// How long the action itself took, in ms.
    pub action_ms: u64,
    /// Why the action failed, if it did.
    pub error: Option<String>,
    /// The expectations, in the order of their kinds.
    pub checks: Vec<CheckReport>,
}

/// One expectation's outcome. Times are in ms from the start of the step.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Which expectation.
    pub kind: ExpectKind,
    /// Its deadline (the longest allowed gap for `site_answers`, the hold time for `vip_stays`).
    pub deadline_ms: u64,
    /// The measured time: arrival for moves and returns, the longest gap for the site, how
    /// long the VIP stayed for `vip_stays`. `None` when it never happened.
    pub measured_ms: Option<u64>,
    /// For `vip_moves` and `vip_returns`: when the VIP left the node that held it before the step.
    pub left_ms: Option<u64>,
    /// Whether the expectation was met in time.
    pub met: bool,
    /// What was seen, in words.
    pub detail: String,
}

impl DrillReport {
    fn first(&self, kind: ExpectKind) -> Option<&CheckReport> {
        self.steps
            .iter()
            .flat_map(|s| &s.checks)
            .find(|c| c.kind == kind)
    }

    /// The row of the summary table.
    fn row(&self) -> [String; 6] {
        let moves = self.first(ExpectKind::VipMoves);
        let left = moves.map_or_else(dash, |c| match c.left_ms {
            Some(ms) => format!("✓ {}", secs(ms)),
            None => "✗ never".into(),
        });
        let arrived = moves.map_or_else(dash, cell);
        let sites: Vec<&CheckReport> = self
            .steps
            .iter()
            .flat_map(|s| &s.checks)
            .filter(|c| c.kind == ExpectKind::SiteAnswers)
            .collect();
        let site = if sites.is_empty() {
            dash()
        } else {
            let ok = sites.iter().all(|c| c.met);
            let gap = sites.iter().filter_map(|c| c.measured_ms).max();
            match gap {
                Some(g) => format!("{} max gap {}", mark(ok), secs(g)),
                None => format!("{} never answered", mark(ok)),
            }
        };
        let returned = self.first(ExpectKind::VipReturns).map_or_else(dash, cell);
        let result = if self.passed {
            "✓ SUCCESS".to_string()
        } else {
            "✗ FAILED".to_string()
        };
        [self.name.clone(), left, arrived, site, returned, result]
    }
}

fn dash() -> String {
    "–".into()
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

fn secs(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

fn cell(c: &CheckReport) -> String {
    match c.measured_ms {
        Some(ms) if c.met => format!("✓ {}", secs(ms)),
        Some(ms) => format!("✗ {} (limit {})", secs(ms), secs(c.deadline_ms)),
        None => format!("✗ never (limit {})", secs(c.deadline_ms)),
    }
}

impl Report {
    /// The report as Markdown: the steps of each drill, then the summary table.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Drill report: {}\n", self.scenario);
        if !self.description.is_empty() {
            let _ = writeln!(s, "{}\n", self.description.trim());
        }
        let _ = writeln!(s, "- ran on: {}", self.executor);
        let _ = writeln!(s, "- probed: {}\n", self.target);
        for (i, d) in self.drills.iter().enumerate() {
            let _ = writeln!(s, "## {}. {}\n", i + 1, d.name);
            if let Some(o) = &d.origin {
                let _ = writeln!(s, "VIP held by {o} at the start.\n");
            }
            for st in &d.steps {
                let on = st
                    .node
                    .as_deref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default();
                let _ = writeln!(s, "- `{}`{on} ({} ms)", st.action, st.action_ms);
                if let Some(e) = &st.error {
                    let _ = writeln!(s, "  - ✗ step failed: {e}");
                }
                for c in &st.checks {
                    let _ = writeln!(
                        s,
                        "  - {} {} (limit {}): {}",
                        mark(c.met),
                        c.kind.as_str(),
                        secs(c.deadline_ms),
                        c.detail
                    );
                }
            }
            if let Some(e) = &d.error {
                let _ = writeln!(s, "\n✗ drill stopped: {e}");
            }
            let _ = writeln!(
                s,
                "\nResult: {}\n",
                if d.passed {
                    "✓ SUCCESS"
                } else {
                    "✗ FAILED"
                }
            );
        }
        let _ = writeln!(s, "## Summary\n");
        let _ = writeln!(
            s,
            "| drill | VIP left master | VIP on backup | site reachable | VIP returned | result |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for d in &self.drills {
            let _ = writeln!(s, "| {} |", d.row().join(" | "));
        }
        let _ = writeln!(
            s,
            "\n{}",
            if self.passed {
                "All drills passed."
            } else {
                "Some drills FAILED."
            }
        );
        s
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        // Plain data with string keys: serialising it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
