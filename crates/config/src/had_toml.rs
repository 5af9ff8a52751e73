//! `had.toml`: had's own extensions (gratuitous ARP tuning, service monitors) kept out of
//! `ha.cf` so that a Heartbeat peer can read the same ha.cf. Optional; defaults when absent.
//!
//! Durations use Heartbeat's time syntax (`2`, `500ms`, `250000us`) and additionally accept an
//! `s` suffix (`2s`); a bare TOML number means seconds.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::haresources::Haresources;
use crate::time::parse_toml_time;

/// had's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HadToml {
    /// Gratuitous ARP after acquiring an address.
    pub arp: ArpSettings,
    /// Service monitors, in file order.
    pub monitors: Vec<MonitorSpec>,
    /// `[notify]` hooks (see `hooks.rs`).
    pub notify: crate::hooks::NotifySettings,
    /// `[fence]`: the fencing command, if any.
    pub fence: Option<crate::hooks::FenceSettings>,
    /// `[group]`: how group operations are carried out.
    pub group: GroupSettings,
    /// `[priority]`: each node's base priority (Keepalived's `priority`), in file order.
    /// Empty: groups go to their haresources node, monitors' weights do not apply.
    pub priority: Vec<NodePriority>,
    /// `[control]`: who may use the control socket.
    pub control: ControlSettings,
    /// `[metrics]`: the Prometheus endpoint, if one is configured (off by default).
    pub metrics: Option<MetricsSettings>,
    /// `[agent]`: the time limits of every resource's `start` and `stop`.
    pub agent: AgentTimeouts,
    /// `[[resource]]`: per-resource time limits, in file order.
    pub resources: Vec<ResourceTimeouts>,
}

/// `[agent]`: how long a resource agent's `start` and `stop` may run before they are killed
/// and count as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentTimeouts {
    /// Limit of `start`.
    pub start: Duration,
    /// Limit of `stop`.
    pub stop: Duration,
}

/// The default limit of an agent's `start` and `stop`.
pub const AGENT_DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest limit had.toml accepts for a `start` or `stop`: beyond, a hung agent holds
/// its group (and the failover behind it) for longer than any admin waits.
pub const AGENT_MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Default for AgentTimeouts {
    /// 60 s each.
    fn default() -> Self {
        Self {
            start: AGENT_DEFAULT_TIMEOUT,
            stop: AGENT_DEFAULT_TIMEOUT,
        }
    }
}

/// One `[[resource]]`: limits for the resources it names, over `[agent]`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTimeouts {
    /// A resource's raw text or its agent name, as in haresources.
    pub name: String,
    /// Limit of `start` (`None`: `[agent]`'s).
    pub start: Option<Duration>,
    /// Limit of `stop` (`None`: `[agent]`'s).
    pub stop: Option<Duration>,
    /// 1-based line of the entry's `name`.
    pub line: usize,
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlSettings {
    /// A group whose members may read the status (`status`, `cl-status`), nothing more;
    /// `None`: the control socket is root's only.
    pub read_group: Option<String>,
    /// Where `read_group` was written, for the check that the group exists.
    pub read_group_at: Span,
}

/// One `[priority]` entry: `node = 100`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePriority {
    /// The node, lower-cased as ha.cf's names are.
    pub node: String,
    /// Its base priority, 1 to 255.
    pub priority: u32,
    /// 1-based line of the entry.
    pub line: usize,
}

impl HadToml {
    /// The base priority of `node`, if `[priority]` names it.
    pub fn priority_of(&self, node: &str) -> Option<u32> {
        self.priority
            .iter()
            .find(|p| p.node.eq_ignore_ascii_case(node))
            .map(|p| p.priority)
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Address and port the HTTP endpoint listens on.
    pub listen: std::net::SocketAddr,
}

/// Where `[metrics]` listens when it gives no `listen`: loopback only, so enabling metrics
/// never exposes them to the LAN by accident (9694 is free in Prometheus' port list).
pub const METRICS_DEFAULT_LISTEN: &str = "127.0.0.1:9694";

/// `[group]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    /// Retries of a failed resource stop before the stop is given up (escalated).
    pub stop_retries: u32,
    /// Pause before each retry.
    pub stop_retry_delay: Duration,
    /// How long a group that runs on the peer stays there after its preferred (or now
    /// higher-priority) node became able to take it back (Keepalived's `preempt_delay`).
    pub failback_delay: Duration,
}

impl Default for GroupSettings {
    /// 3 retries 1 s apart (Heartbeat: 10 tries 1 s apart, then a reboot; had never reboots).
    fn default() -> Self {
        Self {
            stop_retries: 3,
            stop_retry_delay: Duration::from_secs(1),
            failback_delay: Duration::ZERO,
        }
    }
}

/// `[arp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpSettings {
    /// Gratuitous ARPs sent per acquired address.
    pub count: u32,
    /// Pause between them.
    pub interval: Duration,
    /// While an address is held, one more gratuitous ARP every `refresh` (`None`: off).
    pub refresh: Option<Duration>,
}

impl Default for ArpSettings {
    /// IPaddr2's defaults: 5 packets, 200 ms apart.
    fn default() -> Self {
        Self {
            count: 5,
            interval: Duration::from_millis(200),
            refresh: None,
        }
    }
}

/// One `[[monitor]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSpec {
    /// A resource's raw text, its agent name, or a group key, as in haresources.
    pub resource: String,
    /// What to check.
    pub check: Check,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive failures before acting.
    pub failures: u32,
    /// Restarts in place before the group fails over.
    pub restarts: u32,
    /// The sliding window over which `restarts` are counted (`window`, default 5 minutes).
    pub window: Duration,
    /// Keepalived's `weight`: 0 (the default) means a failure makes the group unhealthy
    /// here; a positive weight is added to the node's priority while the check passes, a
    /// negative one while it fails, and the group runs where the sum is higher.
    pub weight: i32,
    /// Consecutive passes before a failed check counts as passing again (`rise`).
    pub rise: u32,
    /// Run only on this node (lower-cased); `None`: on every node.
    pub node: Option<String>,
    /// 1-based line of the monitor's `resource` key.
    pub line: usize,
}

impl MonitorSpec {
    /// Whether this monitor's result counts on a node where its group does not run: weighted
    /// checks feed the priority everywhere, and a lost link makes a node unable to take the
    /// group, as Keepalived's FAULT state does.
    pub fn counts_everywhere(&self) -> bool {
        self.weight != 0 || matches!(self.check, Check::Link(_))
    }
}

/// How a monitor checks its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The resource agent's own `status`.
    Status,
    /// A process with this name exists.
    Process(String),
    /// A TCP connection to host:port succeeds.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// An HTTP GET answers with a non-error status.
    Http {
        /// The URL (`http://...`).
        url: String,
    },
    /// A command exits 0.
    Command {
        /// Absolute path of the program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
    /// The interface has carrier (netlink link events, no polling).
    Link(String),
}

const MONITOR_DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
const MONITOR_DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const MONITOR_DEFAULT_WINDOW: Duration = Duration::from_secs(300);

const KEYS: &[&str] = &[
    "node",
    "arp",
    "monitor",
    "count",
    "interval",
    "resource",
    "check",
    "timeout",
    "failures",
    "restarts",
    "window",
    "notify",
    "fence",
    "command",
    "active",
    "standby",
    "fault",
    "retry",
    "refresh",
    "group",
    "stop_retries",
    "stop_retry_delay",
    "failback_delay",
    "priority",
    "weight",
    "rise",
    "control",
    "read_group",
    "metrics",
    "listen",
    "agent",
    "name",
    "start_timeout",
    "stop_timeout",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    #[allow(dead_code)]
    // Reserved section: accepted so files can carry it, nothing inside yet.
    node: Option<RawNode>,
    #[serde(default)]
    arp: Option<RawArp>,
    #[serde(default)]
    monitor: Vec<RawMonitor>,
    #[serde(default)]
    notify: Option<crate::hooks::RawNotify>,
    #[serde(default)]
    fence: Option<crate::hooks::RawFence>,
    #[serde(default)]
    group: Option<RawGroup>,
    #[serde(default)]
    priority: Option<std::collections::BTreeMap<String, Spanned<i64>>>,
    #[serde(default)]
    control: Option<RawControl>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    agent: Option<RawAgent>,
    #[serde(default)]
    resource: Vec<RawResource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    start_timeout: Option<Spanned<DurationValue>>,
    stop_timeout: Option<Spanned<DurationValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    name: Spanned<String>,
    start_timeout: Option<Spanned<DurationValue>>,
    stop_timeout: Option<Spanned<DurationValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    read_group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    stop_retries: Option<u32>,
    stop_retry_delay: Option<Spanned<DurationValue>>,
    failback_delay: Option<Spanned<DurationValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArp {
    count: Option<u32>,
    interval: Option<Spanned<DurationValue>>,
    refresh: Option<Spanned<DurationValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    resource: Spanned<String>,
    check: Option<Spanned<String>>,
    interval: Option<Spanned<DurationValue>>,
    timeout: Option<Spanned<DurationValue>>,
    failures: Option<Spanned<u32>>,
    restarts: Option<u32>,
    window: Option<Spanned<DurationValue>>,
    weight: Option<Spanned<i64>>,
    rise: Option<Spanned<u32>>,
    node: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum DurationValue {
    Int(u64),
    Float(f64),
    Text(String),
}

/// A name `groupadd` accepts: a letter or `_` first, then letters, digits, `_`, `-`; at most 32.
fn valid_group_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 32
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Turns a byte range of `text` into a diagnostic position.
fn span_of(text: &str, range: Range<usize>) -> Span {
    Span::from_byte_range(text, range)
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    diags: &'a mut Diagnostics,
}

impl Ctx<'_> {
    fn error(&mut self, range: Range<usize>, msg: String, help: Option<String>) {
        let mut d = Diagnostic::file_error(self.path, msg).at(&span_of(self.text, range));
        d.help = help;
        self.diags.push(d);
    }

    fn duration(
        &mut self,
        key: &str,
        v: Option<Spanned<DurationValue>>,
    ) -> Option<Option<Duration>> {
        let Some(v) = v else { return Some(None) };
        let range = v.span();
        let parsed = match v.into_inner() {
            DurationValue::Int(n) => Ok(Duration::from_secs(n)),
            DurationValue::Float(f) if (0.0..1e12).contains(&f) => {
                Ok(Duration::from_millis((f * 1000.0).round() as u64))
            }
            DurationValue::Float(f) => Err(format!("`{f}` is not a usable duration")),
            DurationValue::Text(s) => parse_toml_time(&s).map_err(|e| e.to_string()),
        };
        match parsed {
            // Zero is meaningful for these: no pause, no refresh, retry at once.
            Ok(d)
                if d.is_zero()
                    && !matches!(
                        key,
                        "arp.interval"
                            | "arp.refresh"
                            | "group.stop_retry_delay"
                            | "group.failback_delay"
                    ) =>
            {
                self.error(range, format!("`{key}` must be greater than zero"), None);
                None
            }
            Ok(d) => Some(Some(d)),
            Err(why) => {
                self.error(
                    range,
                    format!("invalid duration for `{key}`: {why}"),
                    Some("write e.g. `\"2s\"`, `\"500ms\"` or `2` (seconds)".into()),
                );
                None
            }
        }
    }

    /// A `start_timeout` / `stop_timeout`: a duration above zero and at most
    /// [`AGENT_MAX_TIMEOUT`]. `Some(None)` when absent, `None` when invalid (reported).
    fn agent_timeout(
        &mut self,
        key: &str,
        v: Option<Spanned<DurationValue>>,
    ) -> Option<Option<Duration>> {
        let range = v.as_ref().map(Spanned::span);
        let d = self.duration(key, v)?;
        if let (Some(d), Some(range)) = (d, range)
            && d > AGENT_MAX_TIMEOUT
        {
            self.error(
                range,
                format!(
                    "`{key}` of {} s is longer than had's limit of {} s",
                    d.as_secs(),
                    AGENT_MAX_TIMEOUT.as_secs()
                ),
                Some(
                    "an agent hung that long holds its group, and the failover behind it; \
                     write at most `\"3600s\"`"
                        .into(),
                ),
            );
            return None;
        }
        Some(d)
    }

    fn check(&mut self, v: Option<Spanned<String>>) -> Option<Check> {
        let Some(v) = v else {
            return Some(Check::Status);
        };
        let range = v.span();
        let s = v.into_inner();
        let bad = |why: &str| {
            (
                format!("invalid check `{s}`: {why}"),
                CHECK_HELP.to_string(),
            )
        };
        let result = if s == "status" {
            Ok(Check::Status)
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Ok(Check::Http { url: s.clone() })
        } else if let Some((kind, arg)) = s.split_once(':') {
            match kind {
                "process" if !arg.trim().is_empty() => Ok(Check::Process(arg.trim().to_string())),
                "tcp" => match arg.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() => match port.parse::<u16>() {
                        Ok(p) if p != 0 => Ok(Check::Tcp {
                            host: host
                                .trim_start_matches('[')
                                .trim_end_matches(']')
                                .to_string(),
                            port: p,
                        }),
                        _ => Err(bad("the port must be 1 to 65535")),
                    },
                    _ => Err(bad("write `tcp:HOST:PORT`")),
                },
                "http" if arg.starts_with("http://") || arg.starts_with("https://") => {
                    Ok(Check::Http {
                        url: arg.to_string(),
                    })
                }
                "http" => Err(bad("the URL must start with `http://`")),
                "link" => {
                    let name = arg.trim();
                    // IFNAMSIZ: 15 bytes and a NUL; no slash or blank (the kernel's rules).
                    if name.is_empty()
                        || name.len() > 15
                        || name.contains(['/', ' ', '\t'])
                        || name == "."
                        || name == ".."
                    {
                        Err(bad(
                            "write `link:IFNAME` with an interface name of 1 to 15 characters",
                        ))
                    } else {
                        Ok(Check::Link(name.to_string()))
                    }
                }
                "command" => {
                    let mut words = arg.split_whitespace();
                    match words.next() {
                        Some(p) if p.starts_with('/') => Ok(Check::Command {
                            program: PathBuf::from(p),
                            args: words.map(str::to_string).collect(),
                        }),
                        _ => Err(bad("the command needs an absolute path")),
                    }
                }
                _ => {
                    let kinds = ["status", "process", "tcp", "http", "command", "link"];
                    let hint = did_you_mean(kind, &kinds)
                        .map(|k| format!("did you mean `{k}:`? "))
                        .unwrap_or_default();
                    Err((
                        format!("invalid check `{s}`"),
                        format!("{hint}{CHECK_HELP}"),
                    ))
                }
            }
        } else {
            let hint = did_you_mean(&s, &["status"])
                .map(|k| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            Err((
                format!("invalid check `{s}`"),
                format!("{hint}{CHECK_HELP}"),
            ))
        };
        match result {
            Ok(c) => Some(c),
            Err((msg, help)) => {
                self.error(range, msg, Some(help));
                None
            }
        }
    }
}

impl Ctx<'_> {
    fn command(
        &mut self,
        key: &str,
        v: Option<Spanned<String>>,
    ) -> Option<crate::hooks::CommandLine> {
        let v = v?;
        let range = v.span();
        match crate::hooks::command_line(v.get_ref()) {
            Ok(c) => Some(c),
            Err(why) => {
                self.error(
                    range,
                    format!("invalid `{key}`: {why}"),
                    Some("write e.g. `\"/usr/local/sbin/ha-notify --quiet\"`".into()),
                );
                None
            }
        }
    }

    fn notify(&mut self, n: crate::hooks::RawNotify) -> crate::hooks::NotifySettings {
        let mut out = crate::hooks::NotifySettings {
            command: self.command("notify.command", n.command),
            active: self.command("notify.active", n.active),
            standby: self.command("notify.standby", n.standby),
            fault: self.command("notify.fault", n.fault),
            ..Default::default()
        };
        if let Some(Some(t)) = self.duration("notify.timeout", n.timeout) {
            out.timeout = t;
        }
        out
    }

    fn fence(&mut self, f: crate::hooks::RawFence) -> Option<crate::hooks::FenceSettings> {
        let command = self.command("fence.command", Some(f.command));
        let timeout = self.duration("fence.timeout", f.timeout)?;
        let retry = self.duration("fence.retry", f.retry)?;
        Some(crate::hooks::FenceSettings {
            command: command?,
            timeout: timeout.unwrap_or(std::time::Duration::from_secs(60)),
            retry: retry.unwrap_or(std::time::Duration::from_secs(5)),
        })
    }
}

impl Ctx<'_> {
    fn metrics(&mut self, m: RawMetrics) -> Option<MetricsSettings> {
        let Some(listen) = m.listen else {
            let listen = METRICS_DEFAULT_LISTEN.parse().ok()?;
            return Some(MetricsSettings { listen });
        };
        let range = listen.span();
        match listen.get_ref().parse::<std::net::SocketAddr>() {
            Ok(addr) => {
                if !addr.ip().is_loopback() {
                    // Allowed (a Prometheus server elsewhere must reach it), but said aloud:
                    // the endpoint has no authentication.
                    let d = Diagnostic::new(
                        crate::Severity::Warning,
                        self.path,
                        format!("metrics listen on {addr}, beyond this host"),
                    )
                    .at(&span_of(self.text, range))
                    .with_help(
                        "anyone who reaches this address reads the cluster's state; \
                         firewall the port or keep it on 127.0.0.1",
                    );
                    self.diags.push(d);
                }
                Some(MetricsSettings { listen: addr })
            }
            Err(_) => {
                self.error(
                    range,
                    format!(
                        "metrics.listen `{}` is not an address with a port",
                        listen.get_ref()
                    ),
                    Some(format!(
                        "write e.g. `listen = \"{METRICS_DEFAULT_LISTEN}\"` or `\"[::1]:9694\"`"
                    )),
                );
                None
            }
        }
    }
}

impl Ctx<'_> {
    /// One `[[resource]]`, checked against haresources' names and the entries before it.
    fn resource(
        &mut self,
        r: RawResource,
        names: &[&str],
        before: &[ResourceTimeouts],
    ) -> Option<ResourceTimeouts> {
        let range = r.name.span();
        let line = span_of(self.text, range.clone()).line;
        let name = r.name.into_inner();
        let start = self.agent_timeout("start_timeout", r.start_timeout);
        let stop = self.agent_timeout("stop_timeout", r.stop_timeout);
        if !names.contains(&name.as_str()) {
            let help = match did_you_mean(&name, names) {
                Some(s) => format!("did you mean `{s}`?"),
                None if names.is_empty() => "haresources defines no resources".to_string(),
                None => format!("resources in haresources: {}", names.join(", ")),
            };
            self.error(
                range,
                format!("[[resource]] `{name}`, which is not in haresources"),
                Some(help),
            );
            return None;
        }
        if let Some(first) = before.iter().find(|b| b.name == name) {
            self.error(
                range,
                format!("a second [[resource]] for `{name}`"),
                Some(format!(
                    "the first is at line {}: merge the two into one",
                    first.line
                )),
            );
            return None;
        }
        let (start, stop) = (start?, stop?);
        if start.is_none() && stop.is_none() {
            let d = Diagnostic::new(
                crate::Severity::Warning,
                self.path,
                format!("[[resource]] `{name}` sets nothing"),
            )
            .at(&span_of(self.text, range))
            .with_help(
                "add `start_timeout = \"30s\"` and/or `stop_timeout = \"30s\"`, or remove it",
            );
            self.diags.push(d);
        }
        Some(ResourceTimeouts {
            name,
            start,
            stop,
            line,
        })
    }
}

const CHECK_HELP: &str = "checks are `status`, `process:NAME`, `tcp:HOST:PORT`, `http:URL`, \
     `command:/path args` or `link:IFNAME`";

/// Names a monitor may use for its resource, for matching and hints.
fn resource_names(h: &Haresources) -> Vec<&str> {
    let mut v = Vec::new();
    for g in &h.groups {
        for r in g.resources.iter() {
            v.push(r.raw.as_str());
            v.push(r.agent());
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

impl HadToml {
    /// Parses `had.toml`, checking monitors against `haresources`.
    pub fn parse(
        path: &Path,
        text: &str,
        haresources: &Haresources,
        diags: &mut Diagnostics,
    ) -> HadToml {
        let raw: RawFile = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let help = unknown_key_hint(e.message().trim_end());
                diags.push(Diagnostic::from_toml(path, text, &e, help));
                return HadToml::default();
            }
        };
        let mut cx = Ctx { path, text, diags };
        let mut out = HadToml::default();
        if let Some(arp) = raw.arp {
            if let Some(c) = arp.count {
                out.arp.count = c;
            }
            if let Some(Some(i)) = cx.duration("arp.interval", arp.interval) {
                out.arp.interval = i;
            }
            if let Some(Some(r)) = cx.duration("arp.refresh", arp.refresh) {
                // "0" switches the refresh off, as leaving it out does.
                out.arp.refresh = Some(r).filter(|r| !r.is_zero());
            }
        }
        if let Some(g) = raw.group {
            if let Some(n) = g.stop_retries {
                out.group.stop_retries = n;
            }
            if let Some(Some(d)) = cx.duration("group.stop_retry_delay", g.stop_retry_delay) {
                out.group.stop_retry_delay = d;
            }
            if let Some(Some(d)) = cx.duration("group.failback_delay", g.failback_delay) {
                out.group.failback_delay = d;
            }
        }
        if let Some(g) = raw.control.and_then(|c| c.read_group) {
            let range = g.span();
            let name = g.into_inner();
            if valid_group_name(&name) {
                out.control.read_group = Some(name);
                out.control.read_group_at = span_of(text, range);
            } else {
                cx.error(
                    range,
                    format!("`{name}` is not a group name"),
                    Some("write a system group, e.g. `read_group = \"haclient\"`".into()),
                );
            }
        }
        if let Some(m) = raw.metrics {
            out.metrics = cx.metrics(m);
        }
        if let Some(n) = raw.notify {
            out.notify = cx.notify(n);
        }
        if let Some(f) = raw.fence {
            out.fence = cx.fence(f);
        }
        for (node, v) in raw.priority.unwrap_or_default() {
            let range = v.span();
            let p = *v.get_ref();
            if !(1..=255).contains(&p) {
                cx.error(
                    range,
                    format!("priority {p} of `{node}` is out of range"),
                    Some("priorities are 1 to 255, as Keepalived's".into()),
                );
                continue;
            }
            out.priority.push(NodePriority {
                node: node.to_lowercase(),
                priority: p as u32,
                line: span_of(text, range).line,
            });
        }
        out.priority.sort_by_key(|p| p.line);
        let names = resource_names(haresources);
        for m in raw.monitor {
            let rrange = m.resource.span();
            let line = span_of(text, rrange.clone()).line;
            let resource = m.resource.into_inner();
            let mut ok = true;
            if !names.contains(&resource.as_str()) {
                ok = false;
                let help = match did_you_mean(&resource, &names) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if names.is_empty() => "haresources defines no resources".to_string(),
                    None => format!("resources in haresources: {}", names.join(", ")),
                };
                cx.error(
                    rrange,
                    format!("monitor for `{resource}`, which is not in haresources"),
                    Some(help),
                );
            }
            let check = cx.check(m.check);
            let timeout_range = m.timeout.as_ref().map(Spanned::span);
            let interval = cx.duration("interval", m.interval);
            let timeout = cx.duration("timeout", m.timeout);
            let window = cx.duration("window", m.window);
            if let (Some(i), Some(t), Some(range)) = (interval, timeout, timeout_range) {
                let (i, t) = (
                    i.unwrap_or(MONITOR_DEFAULT_INTERVAL),
                    t.unwrap_or(MONITOR_DEFAULT_TIMEOUT),
                );
                if t > i {
                    // Checks never overlap, so a long timeout silently stretches the interval.
                    let d = Diagnostic::new(
                        crate::Severity::Warning,
                        path,
                        format!(
                            "monitor timeout ({} ms) is longer than its interval ({} ms)",
                            t.as_millis(),
                            i.as_millis()
                        ),
                    )
                    .at(&span_of(text, range))
                    .with_help("a hung check delays the next one; keep timeout below interval");
                    cx.diags.push(d);
                }
            }
            let failures = match m.failures {
                Some(f) if *f.get_ref() == 0 => {
                    cx.error(f.span(), "`failures` must be at least 1".into(), None);
                    None
                }
                Some(f) => Some(f.into_inner()),
                None => Some(1),
            };
            let weight = match m.weight {
                Some(w) if !(-253..=253).contains(w.get_ref()) => {
                    cx.error(
                        w.span(),
                        format!("weight {} is out of range", w.get_ref()),
                        Some("weights are -253 to 253, as Keepalived's".into()),
                    );
                    None
                }
                Some(w) => Some(*w.get_ref() as i32),
                None => Some(0),
            };
            let rise = match m.rise {
                Some(r) if *r.get_ref() == 0 => {
                    cx.error(r.span(), "`rise` must be at least 1".into(), None);
                    None
                }
                Some(r) => Some(r.into_inner()),
                None => Some(1),
            };
            let node = m.node.map(|n| {
                let line = span_of(text, n.span()).line;
                (n.into_inner().to_lowercase(), line)
            });
            if let (Some(w), Some(r)) = (weight, m.restarts)
                && w != 0
                && r != 0
            {
                cx.error(
                    rrange_for_weight(text, line),
                    "a weighted monitor cannot restart in place".into(),
                    Some("drop `restarts` or set `weight = 0`".into()),
                );
            }
            if let (
                true,
                Some(check),
                Some(weight),
                Some(rise),
                Some(interval),
                Some(timeout),
                Some(failures),
                Some(window),
            ) = (ok, check, weight, rise, interval, timeout, failures, window)
            {
                out.monitors.push(MonitorSpec {
                    resource,
                    check,
                    interval: interval.unwrap_or(MONITOR_DEFAULT_INTERVAL),
                    timeout: timeout.unwrap_or(MONITOR_DEFAULT_TIMEOUT),
                    failures,
                    restarts: m.restarts.unwrap_or(0),
                    window: window.unwrap_or(MONITOR_DEFAULT_WINDOW),
                    weight,
                    rise,
                    node: node.as_ref().map(|(n, _)| n.clone()),
                    line,
                });
            }
        }
        if let Some(a) = raw.agent {
            if let Some(Some(d)) = cx.agent_timeout("agent.start_timeout", a.start_timeout) {
                out.agent.start = d;
            }
            if let Some(Some(d)) = cx.agent_timeout("agent.stop_timeout", a.stop_timeout) {
                out.agent.stop = d;
            }
        }
        for r in raw.resource {
            out.resources.extend(cx.resource(r, &names, &out.resources));
        }
        out
    }

    /// The monitors that watch a resource named `name` (raw text, agent or group key).
    pub fn monitors_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a MonitorSpec> {
        self.monitors.iter().filter(move |m| m.resource == name)
    }
}

/// The byte range of line `line` (1-based) of `text`, for a diagnostic about a whole monitor.
fn rrange_for_weight(text: &str, line: usize) -> Range<usize> {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let len = text[start.min(text.len())..]
        .find('\n')
        .unwrap_or(text.len() - start.min(text.len()));
    start..start + len
}

/// A did-you-mean for serde's "unknown field `x`, expected ..." message.
fn unknown_key_hint(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    let word = &rest[..rest.find('`')?];
    did_you_mean(word, KEYS).map(|k| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeName;

    fn haresources() -> Haresources {
        let mut d = Diagnostics::new();
        let h = Haresources::parse(
            Path::new("h"),
            "alpha IPaddr::198.18.0.100/24/eth0 apache2 named\n",
            &[NodeName::from("alpha")],
            &mut d,
        );
        assert!(d.is_empty());
        h
    }

    fn parse(text: &str) -> (HadToml, Diagnostics) {
        let mut d = Diagnostics::new();
        let t = HadToml::parse(
            Path::new("/etc/ha.d/had.toml"),
            text,
            &haresources(),
            &mut d,
        );
        (t, d)
    }

    #[test]
    fn control_read_group() {
        let (t, d) = parse("[control]\nread_group = \"haclient\"\n");
        assert!(d.is_empty(), "{d}");
        assert_eq!(t.control.read_group.as_deref(), Some("haclient"));
        assert_eq!(t.control.read_group_at.line, 2);
        let (t, d) = parse("[control]\nread_group = \"Bad Group\"\n");
        assert_eq!(d.error_count(), 1, "{d}");
        assert_eq!(d.0[0].line, 2);
        assert_eq!(t.control.read_group, None);
        let (_, d) = parse("[control]\nread_grup = \"haclient\"\n");
        assert_eq!(d.error_count(), 1, "{d}");
        assert!(parse("").0.control.read_group.is_none());
    }

    #[test]
    fn metrics_off_by_default_loopback_when_enabled() {
        let (t, d) = parse("");
        assert!(d.is_empty(), "{d}");
        assert_eq!(t.metrics, None);
        let (t, d) = parse("[metrics]\n");
        assert!(d.is_empty(), "{d}");
        let m = t.metrics.expect("enabled");
        assert_eq!(m.listen.to_string(), "127.0.0.1:9694");
        let (t, d) = parse("[metrics]\nlisten = \"[::1]:9100\"\n");
        assert!(d.is_empty(), "{d}");
        assert_eq!(t.metrics.expect("enabled").listen.to_string(), "[::1]:9100");
    }

    #[test]
    fn metrics_beyond_loopback_warns_and_bad_address_is_an_error() {
        let (t, d) = parse("[metrics]\nlisten = \"0.0.0.0:9694\"\n");
        assert!(t.metrics.is_some());
        let s = d.to_string();
        assert!(s.contains("warning: metrics listen on 0.0.0.0:9694"), "{s}");
        assert!(s.contains("had.toml:2"), "{s}");
        let (t, d) = parse("[metrics]\nlisten = \"localhost\"\n");
        assert!(t.metrics.is_none());
        let s = d.to_string();
        assert!(
            s.contains("error: metrics.listen `localhost` is not an address"),
            "{s}"
        );
        let (_, d) = parse("[metrics]\nlisen = \"127.0.0.1:1\"\n");
        assert!(d.to_string().contains("did you mean `listen`?"), "{d}");
    }

    #[test]
    fn full_example() {
        let text = r#"
[node]
[arp]
count = 3
interval = "100ms"
refresh = "30s"

[group]
stop_retries = 5
stop_retry_delay = "250ms"

[[monitor]]
resource = "apache2"
check = "http://198.18.0.100/"
interval = "2s"
timeout = 1
failures = 2
restarts = 1
window = "60s"

[[monitor]]
resource = "named"
check = "process:named"

[[monitor]]
resource = "IPaddr::198.18.0.100/24/eth0"
check = "tcp:198.18.0.100:80"
interval = 0.5

[[monitor]]
resource = "IPaddr"
check = "command:/usr/local/bin/check-vip --quiet"
"#;
        let (t, d) = parse(text);
        assert!(d.is_empty(), "{d}");
        assert_eq!(
            t.arp,
            ArpSettings {
                count: 3,
                interval: Duration::from_millis(100),
                refresh: Some(Duration::from_secs(30)),
            }
        );
        assert_eq!(
            t.group,
            GroupSettings {
                stop_retries: 5,
                stop_retry_delay: Duration::from_millis(250),
                failback_delay: Duration::ZERO,
            }
        );
        assert_eq!(t.monitors.len(), 4);
        let m = &t.monitors[0];
        assert_eq!(
            m.check,
            Check::Http {
                url: "http://198.18.0.100/".into()
            }
        );
        assert_eq!(
            (m.interval, m.timeout, m.failures, m.restarts, m.window),
            (
                Duration::from_secs(2),
                Duration::from_secs(1),
                2,
                1,
                Duration::from_secs(60)
            )
        );
        assert_eq!(t.monitors[1].window, Duration::from_secs(300));
        assert_eq!(m.line, 13);
        assert_eq!(t.monitors[1].check, Check::Process("named".into()));
        assert_eq!(t.monitors[1].interval, Duration::from_secs(2));
        assert_eq!(t.monitors[1].failures, 1);
        assert_eq!(
            t.monitors[2].check,
            Check::Tcp {
                host: "198.18.0.100".into(),
                port: 80
            }
        );
        assert_eq!(t.monitors[2].interval, Duration::from_millis(500));
        assert_eq!(
            t.monitors[3].check,
            Check::Command {
                program: "/usr/local/bin/check-vip".into(),
                args: vec!["--quiet".into()]
            }
        );
        assert_eq!(t.monitors_for("named").count(), 1);
    }

    #[test]
    fn arp_refresh_and_group_settings() {
        let (t, d) = parse("[arp]\nrefresh = 0\n[group]\nstop_retries = 0\nstop_retry_delay = 0\n");
        assert!(d.is_empty(), "{d}");
        assert_eq!(t.arp.refresh, None, "0 means no refresh");
        assert_eq!(t.group.stop_retries, 0);
        assert_eq!(t.group.stop_retry_delay, Duration::ZERO);
        let (t, _) = parse("");
        assert_eq!(t.arp.refresh, None, "off by default");
        assert_eq!(t.group, GroupSettings::default());
        let (_, d) = parse("[arp]\nrefresh = \"soon\"\n");
        assert_eq!((d.error_count(), d.0[0].line), (1, 2), "{d}");
        let (_, d) = parse("[group]\nstop_retry = 2\n");
        assert_eq!(d.0[0].help.as_deref(), Some("did you mean `stop_retries`?"));
    }

    #[test]
    fn priority_weight_rise_node_and_link() {
        let text = "[priority]\nalpha = 100\nbeta = 90\n[group]\nfailback_delay = \"30s\"\n\
            [[monitor]]\nresource = \"apache2\"\ncheck = \"process:nginx\"\nweight = -20\nrise = 2\nnode = \"Alpha\"\n\
            [[monitor]]\nresource = \"IPaddr::198.18.0.100/24/eth0\"\ncheck = \"link:eth0\"\n";
        let (t, d) = parse(text);
        assert!(d.is_empty(), "{d}");
        assert_eq!(t.priority_of("alpha"), Some(100));
        assert_eq!(t.priority_of("BETA"), Some(90));
        assert_eq!(t.priority[1].line, 3);
        assert_eq!(t.group.failback_delay, Duration::from_secs(30));
        let m = &t.monitors[0];
        assert_eq!(
            (m.weight, m.rise, m.node.as_deref()),
            (-20, 2, Some("alpha"))
        );
        assert!(m.counts_everywhere());
        assert_eq!(t.monitors[1].check, Check::Link("eth0".into()));
        assert!(t.monitors[1].counts_everywhere());
        let (_, d) = parse("[priority]\nalpha = 300\n");
        assert_eq!((d.error_count(), d.0[0].line), (1, 2), "{d}");
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\nweight = 254\n");
        assert_eq!((d.error_count(), d.0[0].line), (1, 3), "{d}");
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\nrise = 0\n");
        assert_eq!(d.error_count(), 1, "{d}");
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\nweight = 5\nrestarts = 1\n");
        assert_eq!(d.error_count(), 1, "{d}");
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\ncheck = \"link:a/b\"\n");
        assert_eq!(d.error_count(), 1, "{d}");
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\ncheck = \"lnk:eth0\"\n");
        assert!(
            d.0[0]
                .help
                .as_deref()
                .unwrap_or("")
                .starts_with("did you mean `link:`?"),
            "{d}"
        );
    }

    #[test]
    fn agent_timeouts_common_and_per_resource() {
        let text = "[agent]\nstart_timeout = \"90s\"\nstop_timeout = 30\n\n\
            [[resource]]\nname = \"apache2\"\nstart_timeout = \"3s\"\nstop_timeout = \"500ms\"\n\n\
            [[resource]]\nname = \"IPaddr\"\nstop_timeout = \"5s\"\n";
        let (t, d) = parse(text);
        assert!(d.is_empty(), "{d}");
        let s = Duration::from_secs;
        assert_eq!(
            t.agent,
            AgentTimeouts {
                start: s(90),
                stop: s(30)
            }
        );
        assert_eq!(t.resources.len(), 2);
        assert_eq!((t.resources[0].line, t.resources[1].line), (6, 11));
        let r = &t.resources[0];
        assert_eq!(
            (r.name.as_str(), r.start, r.stop),
            ("apache2", Some(s(3)), Some(Duration::from_millis(500)))
        );
        let r = &t.resources[1];
        assert_eq!(
            (r.name.as_str(), r.start, r.stop),
            ("IPaddr", None, Some(s(5)))
        );
        assert_eq!(
            parse("").0.agent,
            AgentTimeouts {
                start: s(60),
                stop: s(60)
            }
        );
    }

    #[test]
    fn agent_timeouts_refuse_zero_huge_unknown_and_repeated() {
        let (t, d) = parse("[agent]\nstart_timeout = 0\n");
        assert_eq!((d.error_count(), d.0[0].line), (1, 2), "{d}");
        assert!(d.0[0].message.contains("must be greater than zero"), "{d}");
        assert_eq!(t.agent, AgentTimeouts::default());
        let (_, d) = parse("[agent]\nstop_timeout = \"7200s\"\n");
        assert_eq!((d.error_count(), d.0[0].line), (1, 2), "{d}");
        assert!(d.0[0].message.contains("longer than had's limit"), "{d}");
        let (t, d) = parse("[[resource]]\nname = \"apache\"\nstop_timeout = \"3s\"\n");
        assert_eq!(
            (d.error_count(), d.0[0].line, d.0[0].column),
            (1, 2, 8),
            "{d}"
        );
        assert_eq!(d.0[0].help.as_deref(), Some("did you mean `apache2`?"));
        assert!(t.resources.is_empty());
        let (t, d) = parse(
            "[[resource]]\nname = \"named\"\nstop_timeout = 3\n\
             [[resource]]\nname = \"named\"\nstart_timeout = 3\n",
        );
        assert_eq!((d.error_count(), d.0[0].line), (1, 5), "{d}");
        assert!(
            d.0[0].help.as_deref().unwrap_or("").contains("line 2"),
            "{d}"
        );
        assert_eq!(t.resources.len(), 1);
        let (_, d) = parse("[[resource]]\nname = \"named\"\nstop_timout = 3\n");
        assert_eq!(d.0[0].help.as_deref(), Some("did you mean `stop_timeout`?"));
        let (_, d) = parse("[agnet]\nstop_timeout = 3\n");
        assert_eq!(d.0[0].help.as_deref(), Some("did you mean `agent`?"));
        let (t, d) = parse("[[resource]]\nname = \"named\"\n");
        assert_eq!((d.error_count(), d.warning_count()), (0, 1), "{d}");
        assert_eq!(t.resources.len(), 1);
    }

    #[test]
    fn empty_file_gives_defaults() {
        let (t, d) = parse("");
        assert!(d.is_empty());
        assert_eq!(t, HadToml::default());
        assert_eq!(t.arp.count, 5);
    }

    #[test]
    fn unknown_key_has_line_and_hint() {
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\nintervall = \"2s\"\n");
        assert_eq!(d.error_count(), 1);
        let e = &d.0[0];
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown field `intervall`"), "{e}");
        assert_eq!(e.help.as_deref(), Some("did you mean `interval`?"));
        let (_, d) = parse("[arp]\ncount = 5\n[nod]\n");
        assert_eq!(d.0[0].help.as_deref(), Some("did you mean `node`?"));
    }

    #[test]
    fn semantic_errors_point_at_values() {
        let (t, d) = parse("[[monitor]]\nresource = \"apache\"\n");
        assert!(t.monitors.is_empty());
        let e = &d.0[0];
        assert_eq!((e.line, e.column), (2, 12));
        assert_eq!(e.help.as_deref(), Some("did you mean `apache2`?"));
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\ninterval = \"2min\"\n");
        assert_eq!(d.0[0].line, 3);
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\ncheck = \"proces:apache2\"\n");
        assert!(
            d.0[0]
                .help
                .as_deref()
                .unwrap()
                .starts_with("did you mean `process:`?")
        );
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\ncheck = \"tcp:localhost\"\n");
        assert_eq!(d.error_count(), 1);
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\ncheck = \"command:check\"\n");
        assert_eq!(d.error_count(), 1);
        let (_, d) = parse("[[monitor]]\nresource = \"apache2\"\nfailures = 0\n");
        assert_eq!(d.error_count(), 1);
        let (t, d) =
            parse("[[monitor]]\nresource = \"apache2\"\ninterval = \"1s\"\ntimeout = \"3s\"\n");
        assert_eq!(
            (t.monitors.len(), d.error_count(), d.warning_count()),
            (1, 0, 1)
        );
        assert_eq!(d.0[0].line, 4);
        let (_, d) = parse("[[monitor]]\ncheck = \"status\"\n");
        assert!(d.0[0].message.contains("resource"), "{}", d.0[0]);
        let (_, d) = parse("[arp\n");
        assert_eq!(d.0[0].line, 1);
    }

    #[test]
    fn span_of_handles_edges() {
        let s = span_of("a\r\nbé = 1\n", 3..5);
        assert_eq!(
            (s.line, s.column, s.len, &*s.source_line),
            (2, 1, 2, "bé = 1")
        );
        let s = span_of("x", 10..20);
        assert_eq!(s.line, 1);
    }
}
