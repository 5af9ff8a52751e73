//! The scenario file: drills made of steps, each step followed by the expectations it must
//! meet, each with a deadline. Parsed from TOML; every problem is reported on its line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use ha_config::diag::did_you_mean;
use ha_config::time::parse_toml_time;
use ha_config::{Diagnostic, Diagnostics, Span};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Short name, shown in the report title.
    pub name: String,
    /// What the scenario proves, shown under the title.
    pub description: String,
    /// The service reached through the VIP.
    pub target: Target,
    /// Deadlines used where an expectation says only `true`, and the settle time.
    pub defaults: Defaults,
    /// How `ha-lab drill` builds its cluster (ignored by `hactl drill`).
    pub lab: LabSettings,
    /// The drills, in file order: one report row each.
    pub drills: Vec<Drill>,
}

/// What the drill probes through the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The VIP; `None` lets the executor find it (the first address of the first group live,
    /// the lab's own VIP in the lab).
    pub vip: Option<Ipv4Addr>,
    /// The port probed on the VIP.
    pub port: u16,
    /// How it is probed.
    pub probe: ProbeKind,
}

/// How the site is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// `GET /` over HTTP/1.0; any 2xx answer counts.
    Http,
    /// A TCP connect that succeeds counts.
    Tcp,
}

impl ProbeKind {
    /// `http` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
        }
    }
}

/// Deadlines for expectations written as `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `vip_moves`: the VIP leaves the active node and arrives on the peer within this.
    pub vip_moves: Duration,
    /// `vip_returns`: the VIP is back on the drill's first node within this.
    pub vip_returns: Duration,
    /// `vip_stays`: the VIP does not move for this long.
    pub vip_stays: Duration,
    /// `site_answers`: the longest allowed time without an answer through the VIP.
    pub site_gap: Duration,
    /// At a drill's start: how long to wait for exactly one node to hold the VIP.
    pub settle: Duration,
}

impl Default for Defaults {
    /// Seed 000 saw every failover in under 5 s; returns get twice that.
    fn default() -> Self {
        Defaults {
            vip_moves: Duration::from_secs(5),
            vip_returns: Duration::from_secs(10),
            vip_stays: Duration::from_secs(5),
            site_gap: Duration::from_secs(5),
            settle: Duration::from_secs(30),
        }
    }
}

/// The lab cluster's timers (seed 000's ha.cf unless the file says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabSettings {
    /// ha.cf `keepalive`.
    pub keepalive: Duration,
    /// ha.cf `deadtime`.
    pub deadtime: Duration,
    /// ha.cf `initdead`.
    pub initdead: Duration,
    /// had.toml monitor `interval` for the stopped services.
    pub monitor_interval: Duration,
}

impl Default for LabSettings {
    fn default() -> Self {
        LabSettings {
            keepalive: Duration::from_secs(1),
            deadtime: Duration::from_secs(5),
            initdead: Duration::from_secs(10),
            monitor_interval: Duration::from_secs(1),
        }
    }
}

/// One drill: a row of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drill {
    /// The row label (what was stopped or done).
    pub name: String,
    /// 1-based line of its `name`.
    pub line: usize,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// One action and what must follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What is done.
    pub action: Action,
    /// What must then happen, each within its deadline.
    pub expect: Vec<Expect>,
    /// 1-based line of its `do`.
    pub line: usize,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `stop_service NAME` on the active node (its init or resource.d script).
    StopService(String),
    /// `start_service NAME` on the node where it was stopped.
    StartService(String),
    /// Power cut of the active node (lab only).
    CrashActive,
    /// Power the crashed node on again and start its services and had (lab only).
    RestartNode,
    /// `hactl standby` on the active node.
    Standby,
    /// `hactl takeover` on the node that held the VIP when the drill began.
    Takeover,
    /// Do nothing for a while.
    Wait(Duration),
    /// Unplug the active node's cable (lab only).
    CutLink,
    /// Plug it back in (lab only).
    RestoreLink,
}

/// Every step keyword, for hints.
const ACTIONS: &[&str] = &[
    "stop_service",
    "start_service",
    "crash_active",
    "restart_node",
    "standby",
    "takeover",
    "wait",
    "cut_link",
    "restore_link",
];

impl Action {
    /// The step keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::StopService(_) => "stop_service",
            Action::StartService(_) => "start_service",
            Action::CrashActive => "crash_active",
            Action::RestartNode => "restart_node",
            Action::Standby => "standby",
            Action::Takeover => "takeover",
            Action::Wait(_) => "wait",
            Action::CutLink => "cut_link",
            Action::RestoreLink => "restore_link",
        }
    }

    /// True for steps only a lab can do to a node (power and cables).
    pub fn lab_only(&self) -> bool {
        matches!(
            self,
            Action::CrashActive | Action::RestartNode | Action::CutLink | Action::RestoreLink
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::StopService(s) | Action::StartService(s) => {
                write!(f, "{} {s}", self.keyword())
            }
            Action::Wait(d) => write!(f, "wait {}", fmt_duration(*d)),
            _ => f.write_str(self.keyword()),
        }
    }
}

/// One expectation after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// What must happen.
    pub kind: ExpectKind,
    /// Within how long (for `vip_stays`: for how long; for `site_answers`: the longest gap).
    pub deadline: Duration,
}

/// The kinds of expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectKind {
    /// The VIP leaves the node that held it before the step and arrives on its peer.
    VipMoves,
    /// The VIP is back on the node that held it when the drill began.
    VipReturns,
    /// The VIP stays where it was.
    VipStays,
    /// The site keeps answering through the VIP, with no gap longer than the deadline.
    SiteAnswers,
}

impl ExpectKind {
    /// The key as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectKind::VipMoves => "vip_moves",
            ExpectKind::VipReturns => "vip_returns",
            ExpectKind::VipStays => "vip_stays",
            ExpectKind::SiteAnswers => "site_answers",
        }
    }
}

/// `1.5 s` or `300 ms`.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        let ms = d.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{:.1} s", d.as_secs_f64())
        }
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    target: Option<RawTarget>,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    #[serde(default)]
    lab: Option<RawLab>,
    #[serde(default)]
    drill: Vec<RawDrill>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    vip: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    probe: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    vip_moves: Option<Spanned<Value>>,
    vip_returns: Option<Spanned<Value>>,
    vip_stays: Option<Spanned<Value>>,
    site_gap: Option<Spanned<Value>>,
    settle: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    keepalive: Option<Spanned<Value>>,
    deadtime: Option<Spanned<Value>>,
    initdead: Option<Spanned<Value>>,
    monitor_interval: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    name: Spanned<String>,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(rename = "do")]
    action: Spanned<String>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    vip_moves: Option<Spanned<Value>>,
    vip_returns: Option<Spanned<Value>>,
    vip_stays: Option<Spanned<Value>>,
    site_answers: Option<Spanned<Value>>,
}

/// A duration as TOML may carry it: seconds as a number, or text with a unit; `true` means
/// "the default" where an expectation allows it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

const DURATION_HELP: &str = "write e.g. `\"5s\"`, `\"500ms\"` or `5` (seconds)";

/// Turns a byte range of `text` into a line, column and underline.
fn span_of(text: &str, range: Range<usize>) -> Span {
    Span::from_byte_range(text, range)
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Diagnostics,
}

impl Ctx<'_> {
    fn error(&mut self, range: Range<usize>, msg: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::file_error(self.path, msg).at(&span_of(self.text, range));
        d.help = help;
        self.diags.push(d);
    }

    fn line(&self, range: &Range<usize>) -> usize {
        span_of(self.text, range.clone()).line
    }

    /// A positive duration, or `default` for `true` when `default` is given.
    fn duration(
        &mut self,
        key: &str,
        v: Spanned<Value>,
        default: Option<Duration>,
    ) -> Option<Duration> {
        let range = v.span();
        let parsed = match v.into_inner() {
            Value::Bool(true) => match default {
                Some(d) => Ok(d),
                None => Err(("`true` is not a duration here".to_string(), None)),
            },
            Value::Bool(false) => Err((
                format!("`{key} = false` expects nothing"),
                Some(format!(
                    "remove `{key}` to not expect it, or write `true` or a deadline"
                )),
            )),
            Value::Int(n) if n > 0 => Ok(Duration::from_secs(n.unsigned_abs())),
            Value::Int(_) => Err((format!("`{key}` must be greater than zero"), None)),
            Value::Float(f) if f > 0.0 && f < 1e9 => {
                Ok(Duration::from_millis((f * 1000.0).round() as u64))
            }
            Value::Float(_) => Err((format!("`{key}` must be greater than zero"), None)),
            Value::Text(s) => match parse_toml_time(s.trim()) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err((format!("`{key}` must be greater than zero"), None)),
                Err(e) => Err((
                    format!("invalid duration for `{key}`: {e}"),
                    Some(DURATION_HELP.to_string()),
                )),
            },
        };
        match parsed {
            Ok(d) => Some(d),
            Err((msg, help)) => {
                self.error(range, msg, help.or(Some(DURATION_HELP.to_string())));
                None
            }
        }
    }

    fn opt_duration(
        &mut self,
        key: &str,
        v: Option<Spanned<Value>>,
        fallback: Duration,
    ) -> Duration {
        match v {
            Some(v) => self.duration(key, v, None).unwrap_or(fallback),
            None => fallback,
        }
    }
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, Diagnostics> {
        match std::fs::read_to_string(path) {
            Ok(text) => Scenario::parse(path, &text),
            Err(e) => {
                let mut d = Diagnostics::new();
                d.push(Diagnostic::file_error(
                    path,
                    format!("cannot read the scenario: {e}"),
                ));
                Err(d)
            }
        }
    }

    /// Parses a scenario, collecting every problem with its line.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, Diagnostics> {
        let mut cx = Ctx {
            path,
            text,
            diags: Diagnostics::new(),
        };
        let raw: RawScenario = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let help = unknown_key_hint(e.message().trim_end());
                cx.diags.push(Diagnostic::from_toml(path, text, &e, help));
                return Err(cx.diags);
            }
        };
        let name_range = raw.name.span();
        let name = raw.name.into_inner();
        if name.trim().is_empty() {
            cx.error(name_range.clone(), "the scenario `name` is empty", None);
        }
        let target = parse_target(&mut cx, raw.target);
        let defaults = parse_defaults(&mut cx, raw.defaults);
        let lab = parse_lab(&mut cx, raw.lab);
        if raw.drill.is_empty() {
            cx.error(
                name_range,
                "the scenario has no drill",
                Some("add a `[[drill]]` table with a `name` and `[[drill.step]]` tables".into()),
            );
        }
        let drills = raw
            .drill
            .into_iter()
            .map(|d| parse_drill(&mut cx, d, &defaults))
            .collect();
        if cx.diags.has_errors() {
            return Err(cx.diags);
        }
        Ok(Scenario {
            name,
            description: raw.description.unwrap_or_default(),
            target,
            defaults,
            lab,
            drills,
        })
    }

    /// Every service a `stop_service` step names, in first-use order.
    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for d in &self.drills {
            for s in &d.steps {
                if let Action::StopService(n) = &s.action
                    && !v.contains(n)
                {
                    v.push(n.clone());
                }
            }
        }
        v
    }
}

/// Turns serde's "unknown field `x`, expected one of ..." into a did-you-mean hint.
fn unknown_key_hint(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (word, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    match did_you_mean(word, &expected) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None if !expected.is_empty() => Some(format!("known keys: {}", expected.join(", "))),
        None => None,
    }
}

fn parse_target(cx: &mut Ctx<'_>, raw: Option<RawTarget>) -> Target {
    let mut t = Target {
        vip: None,
        port: 80,
        probe: ProbeKind::Http,
    };
    let Some(raw) = raw else { return t };
    if let Some(v) = raw.vip {
        let range = v.span();
        let s = v.into_inner();
        match s.trim().parse::<Ipv4Addr>() {
            Ok(ip) => t.vip = Some(ip),
            Err(_) => cx.error(
                range,
                format!("`{s}` is not an IPv4 address"),
                Some("write the VIP alone, without prefix length or interface: `vip = \"10.11.10.13\"`".into()),
            ),
        }
    }
    if let Some(p) = raw.port {
        let range = p.span();
        match u16::try_from(*p.get_ref()) {
            Ok(port) if port != 0 => t.port = port,
            _ => cx.error(range, "the port must be 1 to 65535", None),
        }
    }
    if let Some(p) = raw.probe {
        let range = p.span();
        match p.get_ref().as_str() {
            "http" => t.probe = ProbeKind::Http,
            "tcp" => t.probe = ProbeKind::Tcp,
            other => {
                let help = match did_you_mean(other, &["http", "tcp"]) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "`http` (GET /, any 2xx answer) or `tcp` (a connect)".into(),
                };
                cx.error(range, format!("unknown probe `{other}`"), Some(help));
            }
        }
    }
    t
}

fn parse_defaults(cx: &mut Ctx<'_>, raw: Option<RawDefaults>) -> Defaults {
    let d = Defaults::default();
    let Some(raw) = raw else { return d };
    Defaults {
        vip_moves: cx.opt_duration("vip_moves", raw.vip_moves, d.vip_moves),
        vip_returns: cx.opt_duration("vip_returns", raw.vip_returns, d.vip_returns),
        vip_stays: cx.opt_duration("vip_stays", raw.vip_stays, d.vip_stays),
        site_gap: cx.opt_duration("site_gap", raw.site_gap, d.site_gap),
        settle: cx.opt_duration("settle", raw.settle, d.settle),
    }
}

fn parse_lab(cx: &mut Ctx<'_>, raw: Option<RawLab>) -> LabSettings {
    let d = LabSettings::default();
    let Some(raw) = raw else { return d };
    LabSettings {
        keepalive: cx.opt_duration("keepalive", raw.keepalive, d.keepalive),
        deadtime: cx.opt_duration("deadtime", raw.deadtime, d.deadtime),
        initdead: cx.opt_duration("initdead", raw.initdead, d.initdead),
        monitor_interval: cx.opt_duration(
            "monitor_interval",
            raw.monitor_interval,
            d.monitor_interval,
        ),
    }
}

/// What earlier steps of a drill left behind, for checking that later steps make sense.
#[derive(Default)]
struct DrillState {
    stopped: BTreeMap<String, usize>,
    crashed: bool,
    cut: bool,
}

fn parse_drill(cx: &mut Ctx<'_>, raw: RawDrill, defaults: &Defaults) -> Drill {
    let name_range = raw.name.span();
    let line = cx.line(&name_range);
    let name = raw.name.into_inner();
    if name.trim().is_empty() {
        cx.error(name_range.clone(), "the drill `name` is empty", None);
    }
    if raw.step.is_empty() {
        cx.error(
            name_range,
            format!("drill `{name}` has no step"),
            Some("add `[[drill.step]]` tables, e.g. `do = \"stop_service named\"`".into()),
        );
    }
    let mut state = DrillState::default();
    let mut steps = Vec::new();
    for s in raw.step {
        if let Some(step) = parse_step(cx, s, defaults, &mut state) {
            steps.push(step);
        }
    }
    Drill { name, line, steps }
}

fn parse_step(
    cx: &mut Ctx<'_>,
    raw: RawStep,
    defaults: &Defaults,
    state: &mut DrillState,
) -> Option<Step> {
    let range = raw.action.span();
    let line = cx.line(&range);
    let text = raw.action.into_inner();
    let mut words = text.split_whitespace();
    let keyword = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let action = parse_action(cx, range.clone(), keyword, &args, state);
    let expect = parse_expect(cx, raw.expect, defaults);
    let action = action?;
    Some(Step {
        action,
        expect,
        line,
    })
}

fn parse_action(
    cx: &mut Ctx<'_>,
    range: Range<usize>,
    keyword: &str,
    args: &[&str],
    state: &mut DrillState,
) -> Option<Action> {
    let no_args = |cx: &mut Ctx<'_>, a: Action| -> Option<Action> {
        if args.is_empty() {
            Some(a)
        } else {
            cx.error(
                range.clone(),
                format!("`{keyword}` takes no argument"),
                Some(format!("write `do = \"{keyword}\"`")),
            );
            None
        }
    };
    let service = |cx: &mut Ctx<'_>| -> Option<String> {
        match args {
            [name] if valid_service(name) => Some((*name).to_string()),
            [name] => {
                cx.error(
                    range.clone(),
                    format!("`{name}` is not a service name"),
                    Some("use the name of its init or resource.d script: letters, digits, `-`, `_`, `.`, `@`".into()),
                );
                None
            }
            _ => {
                cx.error(
                    range.clone(),
                    format!("`{keyword}` needs one service name"),
                    Some(format!("write e.g. `do = \"{keyword} named\"`")),
                );
                None
            }
        }
    };
    match keyword {
        "stop_service" => {
            let name = service(cx)?;
            if state.stopped.insert(name.clone(), 0).is_some() {
                cx.error(
                    range,
                    format!("`{name}` is already stopped by an earlier step of this drill"),
                    Some(format!("add `do = \"start_service {name}\"` in between")),
                );
                return None;
            }
            Some(Action::StopService(name))
        }
        "start_service" => {
            let name = service(cx)?;
            if state.stopped.remove(&name).is_none() {
                cx.error(
                    range,
                    format!("`start_service {name}` without an earlier `stop_service {name}` in this drill"),
                    Some("the service is started on the node where the drill stopped it; stop it first".into()),
                );
                return None;
            }
            Some(Action::StartService(name))
        }
        "crash_active" => {
            let a = no_args(cx, Action::CrashActive)?;
            if state.crashed {
                cx.error(
                    range,
                    "a node is already crashed: crashing the other leaves nobody to hold the VIP",
                    Some("add `do = \"restart_node\"` in between".into()),
                );
                return None;
            }
            state.crashed = true;
            Some(a)
        }
        "restart_node" => {
            let a = no_args(cx, Action::RestartNode)?;
            if !state.crashed {
                cx.error(
                    range,
                    "`restart_node` without an earlier `crash_active` in this drill",
                    Some("restart_node powers on the node the drill crashed".into()),
                );
                return None;
            }
            state.crashed = false;
            Some(a)
        }
        "standby" => no_args(cx, Action::Standby),
        "takeover" => no_args(cx, Action::Takeover),
        "cut_link" => {
            let a = no_args(cx, Action::CutLink)?;
            state.cut = true;
            Some(a)
        }
        "restore_link" => {
            let a = no_args(cx, Action::RestoreLink)?;
            if !std::mem::take(&mut state.cut) {
                cx.error(
                    range,
                    "`restore_link` without an earlier `cut_link` in this drill",
                    None,
                );
                return None;
            }
            Some(a)
        }
        "wait" => match args {
            [d] => match parse_toml_time(d) {
                Ok(d) if !d.is_zero() => Some(Action::Wait(d)),
                Ok(_) => {
                    cx.error(range, "`wait` needs a duration above zero", None);
                    None
                }
                Err(e) => {
                    cx.error(
                        range,
                        format!("invalid duration for `wait`: {e}"),
                        Some(DURATION_HELP.into()),
                    );
                    None
                }
            },
            _ => {
                cx.error(
                    range,
                    "`wait` needs one duration",
                    Some("write e.g. `do = \"wait 2s\"`".into()),
                );
                None
            }
        },
        "" => {
            cx.error(
                range,
                "empty step",
                Some(format!("steps are: {}", ACTIONS.join(", "))),
            );
            None
        }
        other => {
            let help = match did_you_mean(other, ACTIONS) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("steps are: {}", ACTIONS.join(", ")),
            };
            cx.error(range, format!("unknown step `{other}`"), Some(help));
            None
        }
    }
}

fn valid_service(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

fn parse_expect(cx: &mut Ctx<'_>, raw: Option<RawExpect>, defaults: &Defaults) -> Vec<Expect> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut vip_keys: Vec<(ExpectKind, Range<usize>)> = Vec::new();
    for (kind, value, default) in [
        (ExpectKind::VipMoves, raw.vip_moves, defaults.vip_moves),
        (
            ExpectKind::VipReturns,
            raw.vip_returns,
            defaults.vip_returns,
        ),
        (ExpectKind::VipStays, raw.vip_stays, defaults.vip_stays),
        (ExpectKind::SiteAnswers, raw.site_answers, defaults.site_gap),
    ] {
        let Some(v) = value else { continue };
        let range = v.span();
        if let Some(deadline) = cx.duration(kind.as_str(), v, Some(default)) {
            out.push(Expect { kind, deadline });
        }
        if kind != ExpectKind::SiteAnswers {
            vip_keys.push((kind, range));
        }
    }
    // Each of these says where the VIP must be after the step; two of them contradict.
    if let [(a, _), (b, range), ..] = vip_keys.as_slice() {
        cx.error(
            range.clone(),
            format!(
                "`{}` and `{}` cannot both be expected after one step",
                a.as_str(),
                b.as_str()
            ),
            Some("put the second expectation after a later step".into()),
        );
    }
    out
}
