//! The benchmark's results: per metric and contender a series of runs,
//! summarised as min / median / max with had's ratio to each reference,
//! rendered as Markdown and serialised as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The contenders, in table order.
pub const CONTENDERS: [&str; 4] = ["had", "heartbeat", "keepalived", "pacemaker"];

/// The references had is compared with: column title and short name of the ratio column.
const REFERENCES: [(&str, &str, &str); 3] = [
    ("heartbeat", "heartbeat 3.0.6", "hb"),
    ("keepalived", "keepalived 2.2.7", "ka"),
    ("pacemaker", "pacemaker 2.1 + corosync 3.1", "pcmk"),
];

/// What a series measures, which decides how its numbers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Megabytes (10^6 bytes would be odd here: MiB, as /proc reports KiB).
    Mib,
    /// CPU seconds.
    Secs,
    /// A count of events.
    Count,
    /// Events per second.
    PerSec,
    /// A ratio of two figures of the same contender.
    Times,
}

impl Unit {
    fn fmt(self, v: f64) -> String {
        match self {
            Unit::Ms | Unit::Count | Unit::PerSec => format!("{v:.0}"),
            Unit::Mib => format!("{v:.1}"),
            Unit::Secs => format!("{v:.3}"),
            Unit::Times => format!("{v:.2}"),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Mib => "MiB",
            Unit::Secs => "s",
            Unit::Count => "",
            Unit::PerSec => "/s",
            Unit::Times => "×",
        }
    }
}

/// One contender's runs of one metric; `None` = the outcome never came.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// One value per run, in run order.
    pub values: Vec<Option<f64>>,
    /// Why there is no number, or what else to know about these runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// min / median / max of the runs that produced a value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Smallest value.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Largest value.
    pub max: f64,
    /// Runs with a value.
    pub n: usize,
    /// Runs where the outcome never came.
    pub never: usize,
}

impl Series {
    /// The summary, or None when no run produced a value.
    pub fn stats(&self) -> Option<Stats> {
        let mut v: Vec<f64> = self.values.iter().flatten().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stats {
            min: v[0],
            median,
            max: v[n - 1],
            n,
            never: self.values.len() - n,
        })
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// Stable key for the JSON (`crash_http_1s`, ...).
    pub key: String,
    /// What it measures, for people.
    pub label: String,
    /// Its unit.
    pub unit: Unit,
    /// design.md §7's target for had.
    pub target: String,
    /// Contender name → its runs.
    pub results: BTreeMap<String, Series>,
    /// Summaries, filled by [`BenchReport::finish`].
    pub stats: BTreeMap<String, Stats>,
    /// had's median divided by the contender's median, filled by [`BenchReport::finish`].
    pub ratios: BTreeMap<String, f64>,
}

/// Everything one `ha-bench` run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    /// Unix time the run started.
    pub started_unix: u64,
    /// Seconds the run took.
    pub duration_secs: u64,
    /// Runs per drill asked for.
    pub runs: usize,
    /// CPUs, kernel, load average: the conditions of the run.
    pub host: BTreeMap<String, String>,
    /// Contender → its timer settings per phase.
    pub settings: BTreeMap<String, Vec<String>>,
    /// The lab ids used, for finding logs.
    pub labs: Vec<String>,
    /// The rows.
    pub metrics: Vec<Metric>,
    /// Phases that failed, with why; their rows have fewer or no runs.
    pub errors: Vec<String>,
}

impl BenchReport {
    /// Appends `value` as the next run of `key` for `contender`, creating the row.
    pub fn push(&mut self, key: &str, contender: &str, value: Option<f64>) {
        self.series_mut(key, contender).values.push(value);
    }

    /// Sets the note of `key` for `contender`.
    pub fn note(&mut self, key: &str, contender: &str, note: impl Into<String>) {
        self.series_mut(key, contender).note = Some(note.into());
    }

    fn series_mut(&mut self, key: &str, contender: &str) -> &mut Series {
        let i = match self.metrics.iter().position(|m| m.key == key) {
            Some(i) => i,
            None => {
                let (label, unit, target) = describe(key);
                self.metrics.push(Metric {
                    key: key.to_owned(),
                    label,
                    unit,
                    target,
                    results: BTreeMap::new(),
                    stats: BTreeMap::new(),
                    ratios: BTreeMap::new(),
                });
                self.metrics.len() - 1
            }
        };
        self.metrics[i]
            .results
            .entry(contender.to_owned())
            .or_default()
    }

    /// Computes stats and ratios and puts the rows in the canonical order.
    pub fn finish(&mut self) {
        self.metrics.sort_by_key(|m| order(&m.key));
        for m in &mut self.metrics {
            m.stats = m
                .results
                .iter()
                .filter_map(|(c, s)| s.stats().map(|st| (c.clone(), st)))
                .collect();
            m.ratios.clear();
            if let Some(had) = m.stats.get("had").map(|s| s.median) {
                for (c, st) in &m.stats {
                    if c != "had" && st.median > 0.0 {
                        m.ratios.insert(c.clone(), had / st.median);
                    }
                }
            }
        }
    }

    /// The Markdown report: conditions, settings, the table, errors.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Cells: min / **median** / max over the runs (n = runs with a value; \"never\" = the outcome did not come within the window). Ratio = had's median ÷ the other's median (< 1: had is faster or smaller).\n"
        );
        let _ = writeln!(s, "Conditions:");
        for (k, v) in &self.host {
            let _ = writeln!(s, "- {k}: {v}");
        }
        let _ = writeln!(
            s,
            "- runs per drill: {}; total time {} s; labs {}",
            self.runs,
            self.duration_secs,
            self.labs.join(", ")
        );
        let _ = writeln!(s, "\nSettings:");
        for (c, v) in &self.settings {
            let _ = writeln!(s, "- {c}: {}", v.join("; "));
        }
        let mut head = String::from("\n| metric | had |");
        for (_, title, _) in REFERENCES {
            let _ = write!(head, " {title} |");
        }
        for (_, _, short) in REFERENCES {
            let _ = write!(head, " had ÷ {short} |");
        }
        let _ = writeln!(s, "{head} had target |");
        let _ = writeln!(s, "|---|---|{}---|", "---|".repeat(2 * REFERENCES.len()));
        for m in &self.metrics {
            if let Some(drill) = split_drill(&m.key) {
                if m.key.ends_with("_split_release") {
                    let _ = writeln!(s, "{}", self.split_row(drill));
                }
                continue;
            }
            let mut row = format!("| {} |", m.label);
            for c in CONTENDERS {
                let _ = write!(row, " {} |", cell(m, c));
            }
            for (c, _, _) in REFERENCES {
                let r = m
                    .ratios
                    .get(c)
                    .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}"));
                let _ = write!(row, " {r} |");
            }
            let _ = write!(row, " {} |", m.target);
            let _ = writeln!(s, "{row}");
        }
        let notes: Vec<String> = self
            .metrics
            .iter()
            .flat_map(|m| {
                m.results.iter().filter_map(move |(c, ser)| {
                    ser.note
                        .as_ref()
                        .map(|n| format!("- {} / {c}: {n}", m.label))
                })
            })
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(s, "\nNotes:");
            for n in notes {
                let _ = writeln!(s, "{n}");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nErrors (phases cut short):");
            for e in &self.errors {
                let _ = writeln!(s, "- {e}");
            }
        }
        s
    }
}

impl BenchReport {
    /// One row for a drill's gap split: had's median of each part, in order.
    fn split_row(&self, drill: &str) -> String {
        let mut parts = Vec::new();
        let mut runs = 0;
        for (key, what) in crate::split::PARTS {
            let m = self
                .metrics
                .iter()
                .find(|m| m.key == format!("{drill}_split_{key}"));
            let st = m.and_then(|m| m.stats.get("had"));
            runs = runs.max(st.map_or(0, |s| s.n));
            let v = st.map_or_else(|| "?".to_owned(), |s| format!("**{:.1}**", s.median));
            parts.push(format!("{what} {v}"));
        }
        let mut cell = format!("{} ms (median, n={runs})", parts.join(" "));
        if runs == 0 {
            cell = "—".to_owned();
        }
        let label = describe(&format!("{drill}_split_release")).0;
        let dashes = " — |".repeat(2 * REFERENCES.len());
        let target = describe(&format!("{drill}_split_release")).2;
        format!("| {label} | {cell} |{dashes} {target} |")
    }
}

/// The drill of a gap-split row (`handover_split_<part>`), if `key` is one.
fn split_drill(key: &str) -> Option<&str> {
    let (drill, part) = key.split_once("_split_")?;
    crate::split::PARTS
        .iter()
        .any(|(p, _)| *p == part)
        .then_some(drill)
}

/// One table cell: `min / **median** / max unit (n)`, `never`, or `—` (not measured).
fn cell(m: &Metric, contender: &str) -> String {
    let Some(series) = m.results.get(contender) else {
        return "—".to_owned();
    };
    let u = m.unit;
    let sfx = u.suffix();
    let sp = if sfx.is_empty() { "" } else { " " };
    match m.stats.get(contender) {
        None if series.values.is_empty() => "—".to_owned(),
        None => format!("never ({} runs)", series.values.len()),
        Some(st) => {
            let mut c = if st.n == 1 {
                format!("**{}**{sp}{sfx}", u.fmt(st.median))
            } else {
                format!(
                    "{} / **{}** / {}{sp}{sfx} (n={})",
                    u.fmt(st.min),
                    u.fmt(st.median),
                    u.fmt(st.max),
                    st.n
                )
            };
            if st.never > 0 {
                let _ = write!(c, ", never in {}", st.never);
            }
            c
        }
    }
}

/// Row keys in table order with label, unit and design.md §7's target for had.
const KEYS: &[(&str, &str, Unit, &str)] = &[
    (
        "crash_http_1s",
        "crash of the active node → first HTTP answer from the peer, 1 s timers (Pacemaker: default token 3 s)",
        Unit::Ms,
        "deadtime − U(0, keepalive) + < 50 ms (≈ 4.5–5.05 s)",
    ),
    (
        "failback_http_1s",
        "crashed node's daemon restarted → first HTTP answer from it (failback/preemption), 1 s timers (Pacemaker: default token)",
        Unit::Ms,
        "as soon as the owner is ready",
    ),
    (
        "failback_gap_1s",
        "failback/preemption client gap, 1 s timers (Pacemaker: default token)",
        Unit::Ms,
        "≤ 50 ms",
    ),
    (
        "failback_1s_split_release",
        "failback, 1 s timers: had's share of the gap, from both nodes' logs (decision = the holder hears the preferred node's return)",
        Unit::Ms,
        "a few ms besides the service's start",
    ),
    (
        "crash_http_fast",
        "crash → first HTTP answer from the peer, fast timers",
        Unit::Ms,
        "≤ 250 ms",
    ),
    (
        "failback_gap_fast",
        "failback/preemption client gap, fast timers",
        Unit::Ms,
        "≤ 50 ms",
    ),
    (
        "failback_fast_split_release",
        "failback, fast timers: had's share of the gap, from both nodes' logs",
        Unit::Ms,
        "a few ms besides the service's start",
    ),
    (
        "fastest_stable_token",
        "Pacemaker's fastest stable corosync token (a healthy owner keeps the service through a stability window under full CPU load)",
        Unit::Ms,
        "—",
    ),
    (
        "stability_fast",
        "spurious takeovers in the stability window under full CPU load, fast timers",
        Unit::Count,
        "0",
    ),
    (
        "stability_probes_fast",
        "probes not answered by the owner in the stability window, fast timers",
        Unit::Count,
        "0",
    ),
    (
        "stress_takeovers",
        "takeovers of a healthy owner (VIP on the peer, owner never failed) under stress-ng on both nodes (CPU on every core, VM, fork storm, disk IO), fastest setting: had realtime on, heartbeat 100 ms / 500 ms, keepalived 0.02 s, pacemaker its fast token",
        Unit::Count,
        "0",
    ),
    (
        "stress_probes",
        "probes (every 20 ms) not answered by the owner under stress-ng, fastest setting",
        Unit::Count,
        "0",
    ),
    (
        "stress_takeovers_alt",
        "takeovers of a healthy owner under stress-ng, the setting beside it: had realtime off, keepalived 0.01 s",
        Unit::Count,
        "0",
    ),
    (
        "stress_probes_alt",
        "probes (every 20 ms) not answered by the owner under stress-ng: had realtime off, keepalived 0.01 s",
        Unit::Count,
        "0",
    ),
    (
        "handover_gap",
        "planned handover (hactl standby / hb_standby / SIGTERM / crm_resource --move) client gap",
        Unit::Ms,
        "≤ 50 ms",
    ),
    (
        "handover_split_release",
        "planned handover: had's share of the gap, from both nodes' logs (each part ends at the step named; see docs/benchmarks.md)",
        Unit::Ms,
        "a few ms besides the service's start",
    ),
    (
        "handover_http",
        "planned handover: command → first HTTP answer from the peer",
        Unit::Ms,
        "—",
    ),
    (
        "handback_gap",
        "handing back (hactl takeover / hb_takeover / keepalived restart + preemption / crm_resource --clear) client gap",
        Unit::Ms,
        "≤ 50 ms",
    ),
    (
        "handback_split_release",
        "handing back: had's share of the gap, from both nodes' logs",
        Unit::Ms,
        "a few ms besides the service's start",
    ),
    (
        "handback_http",
        "handing back: command → first HTTP answer from the preferred node",
        Unit::Ms,
        "—",
    ),
    (
        "probe_rate",
        "achieved rate of the 5 ms client probe (fresh connection each, 100 ms timeout) in the failback, handover and handback drills",
        Unit::PerSec,
        "200/s",
    ),
    (
        "service_http",
        "web server killed on the active node → first HTTP answer from the peer",
        Unit::Ms,
        "monitor interval (1 s) + < 200 ms",
    ),
    (
        "service_any",
        "web server killed on the active node → first HTTP answer from any node (peer or restart in place)",
        Unit::Ms,
        "—",
    ),
    (
        "idle_rss_active",
        "idle RSS of the daemon's processes (summed), active node, 1 s timers",
        Unit::Mib,
        "≤ 5 MB",
    ),
    (
        "idle_pss_active",
        "idle PSS of the daemon's processes, active node, 1 s timers",
        Unit::Mib,
        "—",
    ),
    (
        "idle_cpu_active",
        "idle CPU per 60 s, daemon's processes, active node, 1 s timers",
        Unit::Secs,
        "≤ 0.02 s",
    ),
    (
        "idle_cpu_children_active",
        "idle CPU per 60 s of reaped children (forked checks/scripts), active node",
        Unit::Secs,
        "0 (checks in-process)",
    ),
    (
        "idle_rss_passive",
        "idle RSS of the daemon's processes (summed), passive node, 1 s timers",
        Unit::Mib,
        "≤ 4 MiB",
    ),
    (
        "idle_cpu_passive",
        "idle CPU per 60 s, daemon's processes, passive node, 1 s timers",
        Unit::Secs,
        "≤ 0.01 s",
    ),
    (
        "idle_cpu_floor",
        "the lab's floor, right after in the same lab: idle CPU per 60 s of two bare threads in the passive node's namespace that send and receive one 220-byte broadcast a second each way with the active node's (a timer wake-up, a send, a receive wake-up; no daemon)",
        Unit::Secs,
        "—",
    ),
    (
        "idle_cpu_passive_over_floor",
        "idle CPU of the passive node's daemons ÷ the lab's floor (1 = what the packets alone cost in the same lab minutes later; less tied to the host's wake-up cost than either figure)",
        Unit::Times,
        "—",
    ),
    (
        "monitors_0_idle_cpu",
        "idle CPU per 60 s, node1's daemons + reaped children, the service unchecked, 1 s timers",
        Unit::Secs,
        "—",
    ),
    (
        "monitors_100_idle_cpu",
        "idle CPU per 60 s, node1's daemons + reaped children, 100 checks of the service every 1 s (had tcp:, keepalived vrrp_script curl, Pacemaker Dummy monitors)",
        Unit::Secs,
        "—",
    ),
    (
        "monitor_idle_cpu_each",
        "idle CPU per 60 s per check every 1 s ((100 checks − none) ÷ 100)",
        Unit::Secs,
        "—",
    ),
];

/// A scale row's shape and row (`scale_<shape>_<row>`), as indexes into
/// `scale::SHAPES` and `scale::ROWS`.
fn scale_key(key: &str) -> Option<(usize, usize)> {
    let rest = key.strip_prefix("scale_")?;
    let (shape, row) = rest.split_once('_')?;
    let s = crate::scale::SHAPES.iter().position(|s| s.key == shape)?;
    let r = crate::scale::ROWS.iter().position(|r| r.0 == row)?;
    Some((s, r))
}

/// Where a row goes in the table: the main rows, then the scale rows by shape.
fn order(key: &str) -> usize {
    if let Some(i) = KEYS.iter().position(|k| k.0 == key) {
        return i;
    }
    // The other parts of a split sit with its first (rendered as one row).
    if let Some(d) = split_drill(key) {
        return order(&format!("{d}_split_release"));
    }
    match scale_key(key) {
        Some((s, r)) => KEYS.len() + s * crate::scale::ROWS.len() + r,
        None => usize::MAX,
    }
}

/// Label, unit and had's target of `key`.
fn describe(key: &str) -> (String, Unit, String) {
    if let Some(k) = KEYS.iter().find(|k| k.0 == key) {
        return (k.1.to_owned(), k.2, k.3.to_owned());
    }
    if let Some(d) = split_drill(key)
        && let Some(k) = KEYS.iter().find(|k| k.0 == format!("{d}_split_release"))
    {
        let part = key.rsplit('_').next().unwrap_or_default();
        return (format!("{} ({part})", k.1), k.2, k.3.to_owned());
    }
    if let Some((s, r)) = scale_key(key) {
        let shape = crate::scale::SHAPES[s];
        let (_, label, unit) = crate::scale::ROWS[r];
        let what = if shape.groups == 1 {
            format!("scale, 1 group of {}", shape.per)
        } else {
            format!("scale, {} groups of {}", shape.groups, shape.per)
        };
        let target = match (shape.key, crate::scale::ROWS[r].0) {
            ("1000", "start_all") => "≤ 200 ms after the decision",
            ("1000", "idle_cpu" | "idle_rss") => "within 10 % of 1 group of 1",
            ("1000", "handover_all" | "handback_all") => "≤ 200 ms after the command",
            ("1000", "late") => "0",
            ("1000", "silence") => "≈ the keepalive (no heartbeat held up)",
            _ => "—",
        };
        return (format!("{what}: {label}"), unit, target.to_owned());
    }
    ("(unknown metric)".to_owned(), Unit::Count, "—".to_owned())
}

/// Is `key` a metric this report knows?
pub fn known_key(key: &str) -> bool {
    KEYS.iter().any(|k| k.0 == key)
        || scale_key(key).is_some()
        || split_drill(key)
            .is_some_and(|d| KEYS.iter().any(|k| k.0 == format!("{d}_split_release")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stats_odd_even_and_never() {
        let s = Series {
            values: vec![Some(3.0), None, Some(1.0), Some(2.0)],
            note: None,
        };
        let st = s.stats().unwrap();
        assert_eq!(
            (st.min, st.median, st.max, st.n, st.never),
            (1.0, 2.0, 3.0, 3, 1)
        );
        let even = Series {
            values: vec![Some(4.0), Some(1.0), Some(2.0), Some(10.0)],
            note: None,
        };
        assert_eq!(even.stats().unwrap().median, 3.0);
        assert!(Series::default().stats().is_none());
        assert!(
            Series {
                values: vec![None],
                note: None
            }
            .stats()
            .is_none()
        );
    }

    #[test]
    fn ratios_table_and_json() {
        let mut r = BenchReport {
            runs: 2,
            ..Default::default()
        };
        r.push("handover_gap", "keepalived", Some(440.0));
        r.push("crash_http_1s", "had", Some(4600.0));
        r.push("crash_http_1s", "had", Some(4800.0));
        r.push("crash_http_1s", "heartbeat", Some(4700.0));
        r.push("crash_http_1s", "heartbeat", Some(4900.0));
        r.push("crash_http_1s", "pacemaker", Some(7520.0));
        r.push("handover_gap", "had", Some(22.0));
        r.push("service_http", "heartbeat", None);
        r.note("service_http", "heartbeat", "not monitored");
        r.finish();
        // Canonical order, whatever the push order.
        assert_eq!(r.metrics[0].key, "crash_http_1s");
        let crash = &r.metrics[0];
        assert!((crash.ratios["heartbeat"] - 4700.0 / 4800.0).abs() < 1e-9);
        let md = r.markdown();
        assert!(md.contains("4600 / **4700** / 4800 ms (n=2)"), "{md}");
        assert!(md.contains("| 0.98 |"), "{md}");
        assert!(
            md.contains("| had ÷ hb | had ÷ ka | had ÷ pcmk | had target |"),
            "{md}"
        );
        assert!(md.contains("| **7520** ms | 0.98 | — | 0.62 |"), "{md}");
        // Every row has as many cells as the header.
        let cols = |l: &str| l.matches('|').count();
        let head = md.lines().find(|l| l.starts_with("| metric")).unwrap();
        assert!(
            md.lines()
                .filter(|l| l.starts_with("| "))
                .all(|l| cols(l) == cols(head)),
            "{md}"
        );
        assert!(md.contains("**22** ms"), "{md}");
        assert!(md.contains("| 0.05 |"), "{md}");
        assert!(md.contains("never (1 runs)"), "{md}");
        assert!(md.contains("not monitored"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["metrics"][0]["stats"]["had"]["median"], 4700.0);
        assert_eq!(json["metrics"][0]["unit"], "ms");
    }

    #[test]
    fn split_is_one_row() {
        let mut r = BenchReport::default();
        for run in [
            [10.0, 1.0, 2.0, 0.5, 40.0, 3.0],
            [14.0, 1.0, 2.0, 0.5, 60.0, 5.0],
        ] {
            for ((k, _), v) in crate::split::PARTS.iter().zip(run) {
                r.push(&format!("handover_split_{k}"), "had", Some(v));
            }
        }
        r.push("handover_gap", "had", Some(50.0));
        r.push("probe_rate", "had", Some(190.0));
        r.finish();
        let md = r.markdown();
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.contains("share of the gap"))
            .collect();
        assert_eq!(rows.len(), 1, "{md}");
        assert!(
            rows[0].contains("release done on the old holder **12.0**"),
            "{md}"
        );
        assert!(
            rows[0].contains("service started (group acquired) **50.0**"),
            "{md}"
        );
        assert!(rows[0].contains("(median, n=2)"), "{md}");
        assert!(md.contains("**190** /s"), "{md}");
        let cols = |l: &str| l.matches('|').count();
        let head = md.lines().find(|l| l.starts_with("| metric")).unwrap();
        assert_eq!(cols(rows[0]), cols(head), "{md}");
        // Right after the gap row it explains.
        let pos = |needle: &str| md.find(needle).unwrap();
        assert!(pos("planned handover (hactl") < pos("share of the gap"));
        assert!(known_key("handover_split_garp") && !known_key("handover_split_nope"));
    }

    #[test]
    fn every_key_is_described() {
        for k in KEYS {
            assert!(known_key(k.0));
            assert_ne!(describe(k.0).0, "(unknown metric)");
        }
        assert!(!known_key("nope"));
        assert!(known_key("scale_1000_crash_all") && known_key("scale_50x2_status"));
        assert!(!known_key("scale_7_crash_all") && !known_key("scale_10_nope"));
        assert!(
            describe("scale_50x2_start_all")
                .0
                .starts_with("scale, 50 groups of 2: ")
        );
        // Scale rows after the main rows, by shape then row.
        assert!(order("idle_cpu_passive") < order("scale_1_start_all"));
        assert!(order("scale_1_crash_garps") < order("scale_10_start_all"));
        assert!(order("scale_1000_crash_all") < order("scale_50x2_start_all"));
    }
}
