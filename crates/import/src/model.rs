//! The parts of a keepalived.conf that matter to had, read from the statement tree, with
//! every keyword checked: known and carried, known and not carried (listed with a reason),
//! a near miss of a known keyword (an error with "did you mean"), or unknown (a warning, as
//! keepalived itself only logs it).

use std::path::PathBuf;

use ha_config::{Diagnostic, Diagnostics, Severity};

use crate::keywords::{self, Kind};
use crate::parse::Stmt;

/// Something the import cannot carry over, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The keyword (and its first argument) as written.
    pub what: String,
    /// Why had does not carry it.
    pub why: String,
}

/// A `vrrp_script`.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub name: String,
    pub line: usize,
    pub script: Option<String>,
    pub interval: Option<f64>,
    pub timeout: Option<f64>,
    pub weight: Option<i32>,
    pub reverse: bool,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

/// A `vrrp_track_process`.
#[derive(Debug, Clone, Default)]
pub struct TrackProcess {
    pub name: String,
    pub line: usize,
    pub process: Option<String>,
    pub weight: Option<i32>,
    pub delay: Option<f64>,
}

/// One `virtual_ipaddress` entry.
#[derive(Debug, Clone, Default)]
pub struct Vip {
    pub addr: String,
    pub dev: Option<String>,
    pub label: Option<String>,
    pub brd: Option<String>,
    pub scope: Option<String>,
    pub line: usize,
    pub excluded: bool,
}

/// A tracked item inside an instance: name, weight override, line.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub name: String,
    pub weight: Option<i32>,
    pub reverse: bool,
    pub line: usize,
}

/// Notify scripts.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    pub master: Option<(String, usize)>,
    pub backup: Option<(String, usize)>,
    pub fault: Option<(String, usize)>,
    pub stop: Option<(String, usize)>,
    pub any: Option<(String, usize)>,
}

/// A `vrrp_instance`.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    pub name: String,
    pub line: usize,
    pub file: PathBuf,
    pub state: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<u32>,
    pub priority: Option<u32>,
    pub advert_int: Option<f64>,
    pub auth: Option<(String, usize)>,
    pub vips: Vec<Vip>,
    pub nopreempt: Option<usize>,
    pub preempt_delay: Option<f64>,
    pub unicast_src: Option<String>,
    pub unicast_peers: Vec<String>,
    pub scripts: Vec<Tracked>,
    pub interfaces: Vec<Tracked>,
    pub processes: Vec<Tracked>,
    pub notify: Notify,
    pub dont_track_primary: bool,
}

/// A `vrrp_sync_group`.
#[derive(Debug, Clone, Default)]
pub struct SyncGroup {
    pub name: String,
    pub line: usize,
    pub members: Vec<String>,
    pub scripts: Vec<Tracked>,
    pub interfaces: Vec<Tracked>,
    pub processes: Vec<Tracked>,
    pub notify: Notify,
}

/// What one keepalived.conf says.
#[derive(Debug, Clone, Default)]
pub struct Keepalived {
    pub router_id: Option<String>,
    pub mcast_group4: Option<String>,
    pub scripts: Vec<Script>,
    pub processes: Vec<TrackProcess>,
    pub instances: Vec<Instance>,
    pub sync_groups: Vec<SyncGroup>,
    pub dropped: Vec<Dropped>,
}

struct Cx<'a> {
    diags: &'a mut Diagnostics,
    out: Keepalived,
}

impl Cx<'_> {
    fn diag(&mut self, sev: Severity, s: &Stmt, msg: String, help: Option<String>) {
        let mut d = Diagnostic::new(sev, &s.file, msg);
        d.line = s.line;
        d.help = help;
        self.diags.push(d);
    }

    fn drop_(&mut self, s: &Stmt, why: &str) {
        let what = match s.args.first() {
            Some(a) => format!("{} {a}", s.key),
            None => s.key.clone(),
        };
        self.out.dropped.push(Dropped {
            file: s.file.clone(),
            line: s.line,
            what,
            why: why.to_string(),
        });
    }

    /// Classify `s.key` in `ctx`; returns the kind when the caller should handle it.
    fn classify(&mut self, ctx: keywords::Ctx, s: &Stmt) -> Option<Kind> {
        match keywords::lookup(ctx, &s.key) {
            Some(Kind::Dropped(why)) => {
                self.drop_(s, why);
                None
            }
            Some(Kind::Ignored) => None,
            Some(k) => Some(k),
            None => {
                if let Some(near) = keywords::near_miss(ctx, &s.key) {
                    self.diag(
                        Severity::Error,
                        s,
                        format!("unknown keyword `{}`", s.key),
                        Some(format!(
                            "did you mean `{near}`? (keepalived would ignore the whole {})",
                            if s.block.is_some() { "block" } else { "line" }
                        )),
                    );
                } else if let Some(home) = keywords::home_of(&s.key) {
                    self.diag(
                        Severity::Warning,
                        s,
                        format!(
                            "`{}` belongs inside a {home}; here keepalived ignores it, and so does the import",
                            s.key
                        ),
                        Some("a `}` closed the block too early?".into()),
                    );
                } else {
                    self.diag(
                        Severity::Warning,
                        s,
                        format!(
                            "unknown keyword `{}` ignored (keepalived ignores it too)",
                            s.key
                        ),
                        None,
                    );
                }
                None
            }
        }
    }

    fn arg<'s>(&mut self, s: &'s Stmt) -> Option<&'s str> {
        match s.args.first() {
            Some(a) => Some(a),
            None => {
                self.diag(
                    Severity::Error,
                    s,
                    format!("`{}` needs a value", s.key),
                    None,
                );
                None
            }
        }
    }

    fn num<T: std::str::FromStr>(&mut self, s: &Stmt, range: (f64, f64)) -> Option<T> {
        let a = self.arg(s)?;
        let ok = a
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= range.0 && *v <= range.1);
        match (ok, a.parse::<T>()) {
            (Some(_), Ok(v)) => Some(v),
            _ => {
                self.diag(
                    Severity::Error,
                    s,
                    format!(
                        "`{} {a}`: expected a number from {} to {}",
                        s.key, range.0, range.1
                    ),
                    None,
                );
                None
            }
        }
    }

    fn block<'s>(&mut self, s: &'s Stmt) -> &'s [Stmt] {
        match &s.block {
            Some(b) => b,
            None => {
                self.diag(
                    Severity::Error,
                    s,
                    format!("`{}` needs a `{{ }}` block", s.key),
                    None,
                );
                &[]
            }
        }
    }
}

/// Read the model out of a statement tree.
pub fn model(stmts: &[Stmt], diags: &mut Diagnostics) -> Keepalived {
    let mut cx = Cx {
        diags,
        out: Keepalived::default(),
    };
    for s in stmts {
        let Some(kind) = cx.classify(keywords::Ctx::Top, s) else {
            continue;
        };
        match kind {
            Kind::GlobalDefs => global_defs(&mut cx, s),
            Kind::Script => {
                let sc = script(&mut cx, s);
                cx.out.scripts.push(sc);
            }
            Kind::TrackProcess => {
                let p = track_process(&mut cx, s);
                cx.out.processes.push(p);
            }
            Kind::Instance => {
                let i = instance(&mut cx, s);
                cx.out.instances.push(i);
            }
            Kind::SyncGroup => {
                let g = sync_group(&mut cx, s);
                cx.out.sync_groups.push(g);
            }
            _ => {}
        }
    }
    cx.out
}

fn name_of(cx: &mut Cx<'_>, s: &Stmt) -> String {
    match s.args.first() {
        Some(n) => n.clone(),
        None => {
            cx.diag(
                Severity::Error,
                s,
                format!("`{}` needs a name", s.key),
                None,
            );
            String::new()
        }
    }
}

fn global_defs(cx: &mut Cx<'_>, s: &Stmt) {
    for c in cx.block(s) {
        match cx.classify(keywords::Ctx::Global, c) {
            Some(Kind::RouterId) => cx.out.router_id = c.args.first().cloned(),
            Some(Kind::McastGroup4) => cx.out.mcast_group4 = c.args.first().cloned(),
            _ => {}
        }
    }
}

fn script(cx: &mut Cx<'_>, s: &Stmt) -> Script {
    let mut out = Script {
        name: name_of(cx, s),
        line: s.line,
        ..Default::default()
    };
    for c in cx.block(s) {
        match cx.classify(keywords::Ctx::Script, c) {
            Some(Kind::ScriptCmd) => {
                if c.args.is_empty() {
                    cx.arg(c);
                } else {
                    out.script = Some(c.args.join(" "));
                }
            }
            Some(Kind::Interval) => out.interval = cx.num(c, (0.001, 86400.0)),
            Some(Kind::Timeout) => out.timeout = cx.num(c, (0.001, 86400.0)),
            Some(Kind::Weight) => {
                out.weight = cx.num(c, (-253.0, 253.0));
                out.reverse = c.args.get(1).is_some_and(|a| a == "reverse");
            }
            Some(Kind::Rise) => out.rise = cx.num(c, (1.0, 1e6)),
            Some(Kind::Fall) => out.fall = cx.num(c, (1.0, 1e6)),
            _ => {}
        }
    }
    if out.script.is_none() {
        cx.diag(
            Severity::Error,
            s,
            format!("vrrp_script `{}` has no `script`", out.name),
            Some("add e.g. `script \"/usr/bin/pidof nginx\"`".into()),
        );
    }
    out
}

fn track_process(cx: &mut Cx<'_>, s: &Stmt) -> TrackProcess {
    let mut out = TrackProcess {
        name: name_of(cx, s),
        line: s.line,
        ..Default::default()
    };
    for c in cx.block(s) {
        match cx.classify(keywords::Ctx::Process, c) {
            Some(Kind::ProcessName) => out.process = c.args.first().cloned(),
            Some(Kind::Weight) => out.weight = cx.num(c, (-253.0, 253.0)),
            Some(Kind::Delay) => out.delay = cx.num(c, (0.0, 86400.0)),
            _ => {}
        }
    }
    if out.process.is_none() {
        cx.diag(
            Severity::Error,
            s,
            format!("vrrp_track_process `{}` has no `process`", out.name),
            None,
        );
    }
    out
}

fn tracked(cx: &mut Cx<'_>, s: &Stmt) -> Vec<Tracked> {
    let mut out = Vec::new();
    for c in cx.block(s) {
        let mut t = Tracked {
            name: c.key.clone(),
            weight: None,
            reverse: false,
            line: c.line,
        };
        let mut args = c.args.iter();
        while let Some(a) = args.next() {
            match a.as_str() {
                "weight" => {
                    t.weight = args.next().and_then(|w| w.parse().ok());
                    if t.weight.is_none_or(|w: i32| !(-254..=254).contains(&w)) {
                        cx.diag(
                            Severity::Error,
                            c,
                            format!("`{}`: `weight` needs a number from -254 to 254", c.key),
                            None,
                        );
                    }
                }
                "reverse" => t.reverse = true,
                other => cx.diag(
                    Severity::Warning,
                    c,
                    format!("`{}`: unknown option `{other}` ignored", c.key),
                    None,
                ),
            }
        }
        out.push(t);
    }
    out
}

fn notify(cx: &mut Cx<'_>, kind: Kind, c: &Stmt, n: &mut Notify) {
    let Some(_) = cx.arg(c) else { return };
    let v = Some((c.args.join(" "), c.line));
    match kind {
        Kind::NotifyMaster => n.master = v,
        Kind::NotifyBackup => n.backup = v,
        Kind::NotifyFault => n.fault = v,
        Kind::NotifyStop => n.stop = v,
        _ => n.any = v,
    }
}

fn instance(cx: &mut Cx<'_>, s: &Stmt) -> Instance {
    let mut out = Instance {
        name: name_of(cx, s),
        line: s.line,
        file: s.file.clone(),
        ..Default::default()
    };
    for c in cx.block(s) {
        let Some(kind) = cx.classify(keywords::Ctx::Instance, c) else {
            continue;
        };
        match kind {
            Kind::State => match cx.arg(c) {
                Some(v @ ("MASTER" | "BACKUP")) => out.state = Some(v.to_string()),
                Some(v) => {
                    let v = v.to_string();
                    cx.diag(
                        Severity::Error,
                        c,
                        format!("`state {v}`: expected MASTER or BACKUP"),
                        None,
                    )
                }
                None => {}
            },
            Kind::Interface => out.interface = c.args.first().cloned(),
            Kind::Vrid => out.vrid = cx.num(c, (1.0, 255.0)),
            Kind::Priority => out.priority = cx.num(c, (1.0, 255.0)),
            Kind::AdvertInt => out.advert_int = cx.num(c, (0.001, 255.0)),
            Kind::Nopreempt => out.nopreempt = Some(c.line),
            Kind::PreemptDelay => out.preempt_delay = cx.num(c, (0.0, 1000.0)),
            Kind::UnicastSrc => out.unicast_src = c.args.first().cloned(),
            Kind::UnicastPeer => {
                for p in cx.block(c) {
                    out.unicast_peers.push(p.key.clone());
                }
            }
            Kind::Auth => {
                for a in cx.block(c) {
                    match cx.classify(keywords::Ctx::Auth, a) {
                        Some(Kind::AuthPass) => {
                            out.auth = a.args.first().map(|p| (p.clone(), a.line))
                        }
                        Some(Kind::AuthType) if a.args.first().is_some_and(|t| t != "PASS") => {
                            cx.drop_(a, "AH authentication has no had equivalent; had signs every packet with an HMAC key instead");
                        }
                        _ => {}
                    }
                }
            }
            Kind::Vips | Kind::VipsExcluded => {
                for v in cx.block(c) {
                    let vip = vip(cx, v, kind == Kind::VipsExcluded);
                    out.vips.extend(vip);
                }
            }
            Kind::TrackScript => out.scripts = tracked(cx, c),
            Kind::TrackInterface => out.interfaces = tracked(cx, c),
            Kind::TrackProcess => out.processes = tracked(cx, c),
            Kind::DontTrackPrimary => out.dont_track_primary = true,
            Kind::NotifyMaster
            | Kind::NotifyBackup
            | Kind::NotifyFault
            | Kind::NotifyStop
            | Kind::Notify => notify(cx, kind, c, &mut out.notify),
            _ => {}
        }
    }
    out
}

fn vip(cx: &mut Cx<'_>, s: &Stmt, excluded: bool) -> Option<Vip> {
    let mut v = Vip {
        addr: s.key.clone(),
        line: s.line,
        excluded,
        ..Default::default()
    };
    let mut args = s.args.iter();
    while let Some(a) = args.next() {
        let slot = match a.as_str() {
            "dev" => &mut v.dev,
            "label" => &mut v.label,
            "brd" | "broadcast" => &mut v.brd,
            "scope" => &mut v.scope,
            "no_track" | "home" | "nodad" | "noprefixroute" | "autojoin" | "mngtmpaddr" => {
                continue;
            }
            other => {
                let what = format!("`{other}` on the address {}", s.key);
                cx.out.dropped.push(Dropped {
                    file: s.file.clone(),
                    line: s.line,
                    what,
                    why: "address option not carried (had sets dev, label, broadcast)".into(),
                });
                // Options with a value (`metric 5`, `preferred_lft 0`, `peer x`) take it along.
                if !matches!(other, "-") {
                    args.next();
                }
                continue;
            }
        };
        *slot = args.next().cloned();
    }
    Some(v)
}

fn sync_group(cx: &mut Cx<'_>, s: &Stmt) -> SyncGroup {
    let mut out = SyncGroup {
        name: name_of(cx, s),
        line: s.line,
        ..Default::default()
    };
    for c in cx.block(s) {
        let Some(kind) = cx.classify(keywords::Ctx::SyncGroup, c) else {
            continue;
        };
        match kind {
            Kind::GroupMembers => {
                for m in cx.block(c) {
                    out.members.push(m.key.clone());
                    out.members.extend(m.args.iter().cloned());
                }
            }
            Kind::TrackScript => out.scripts = tracked(cx, c),
            Kind::TrackInterface => out.interfaces = tracked(cx, c),
            Kind::TrackProcess => out.processes = tracked(cx, c),
            Kind::NotifyMaster
            | Kind::NotifyBackup
            | Kind::NotifyFault
            | Kind::NotifyStop
            | Kind::Notify => notify(cx, kind, c, &mut out.notify),
            _ => {}
        }
    }
    out
}
