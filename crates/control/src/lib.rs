//! ha-control: the control protocol between `hactl` and `had` (one JSON object per line on a
//! Unix socket, a request then its response), the status schema documented in
//! docs/status-json.md, and had's command line ([`cli`]). Pure: no async runtime, no netlink,
//! no daemon in its dependency graph, so that hactl links this and not the daemon.

#![warn(missing_docs)]

pub mod cli;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the `status --json` schema; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Default control socket path (under the default run dir).
pub const DEFAULT_SOCKET: &str = "/run/had/had.sock";

/// Longest request line a control client may send.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Control clients served at once; more are turned away until one finishes.
pub const MAX_CLIENTS: usize = 16;

/// How long a client may take to send its request line.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub use ha_core::config::Origin;
pub use ha_core::config::Scope;

/// What the heartbeat thread got, for `hactl status` and the start-up log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realtime {
    /// `realtime` from ha.cf.
    pub requested: bool,
    /// The heartbeat thread's scheduling class: `SCHED_RR`, `SCHED_OTHER`, ...
    pub policy: String,
    /// Its static priority (0 for SCHED_OTHER).
    pub priority: i32,
    /// Whether mlockall succeeded.
    pub memory_locked: bool,
    /// Why part of it was not obtained, when it was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A request from `hactl`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Everything `hactl status` shows.
    Status,
    /// Put this node in standby for `scope` (the peer takes those groups).
    Standby {
        /// The groups covered (`all` when a client sends none).
        #[serde(default)]
        scope: crate::Scope,
    },
    /// Take the groups of `scope` here.
    Takeover {
        /// The groups covered (`all` when a client sends none).
        #[serde(default)]
        scope: crate::Scope,
    },
    /// Forget failed starts and stops so that the groups may run here again.
    Cleanup,
    /// Re-read the configuration directory (as SIGHUP does); the answer says what changed.
    Reload,
    /// An `ha.cf` value as `cl_status hbparameter` shows it (the text as written, or the default).
    Parameter {
        /// The ha.cf directive.
        name: String,
    },
}

impl Request {
    /// Whether the request only reads (what `[control] read_group` members may send).
    pub fn is_read_only(&self) -> bool {
        matches!(self, Request::Status | Request::Parameter { .. })
    }
}

/// What a control client may do, from its credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// root (or had's own user): every request.
    Full,
    /// A member of `[control] read_group`: read-only requests.
    Read,
    /// Anybody else: nothing.
    None,
}

/// The access of a peer with `uid`, primary `gid` and supplementary `groups`, to a daemon
/// running as `daemon_uid` whose read group is `read_gid`.
pub fn access(
    uid: u32,
    daemon_uid: u32,
    read_gid: Option<u32>,
    gid: u32,
    groups: &[u32],
) -> Access {
    if uid == 0 || uid == daemon_uid {
        return Access::Full;
    }
    match read_gid {
        Some(g) if gid == g || groups.contains(&g) => Access::Read,
        _ => Access::None,
    }
}

/// Whether `access` allows `req`; the refusal says what would.
pub fn authorize(access: Access, req: &Request) -> Result<(), String> {
    match access {
        Access::Full => Ok(()),
        Access::Read if req.is_read_only() => Ok(()),
        Access::Read => Err(
            "permission denied: the read group may only look (status, cl-status); changing the cluster needs root"
                .into(),
        ),
        Access::None => Err("permission denied: hactl must run as root".into()),
    }
}

/// A request as its client sends it: one JSON object and the newline that ends it.
pub fn encode_request(req: &Request) -> Result<Vec<u8>, serde_json::Error> {
    line_of(req)
}

/// An answer as the daemon sends it: one JSON object and the newline that ends it.
pub fn encode_response(resp: &Response) -> Result<Vec<u8>, serde_json::Error> {
    line_of(resp)
}

fn line_of(v: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    Ok(line)
}

/// The request in one line read from a client (its newline included, if any); the error is
/// the refusal the client gets back. A line longer than [`MAX_REQUEST`] is refused unread.
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("bad request: longer than {MAX_REQUEST} bytes"));
    }
    serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))
}

/// The answer in one line read from the daemon.
pub fn decode_response(line: &str) -> Result<Response, String> {
    serde_json::from_str(line).map_err(|e| format!("unreadable answer from had: {e}"))
}

/// The daemon's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was done.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done, for the admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The answer to [`Request::Status`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Snapshot>,
}

impl Response {
    /// A success carrying a human message.
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            ok: true,
            error: None,
            message: Some(message.into()),
            status: None,
        }
    }
    /// A refusal with its reason.
    pub fn err(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(error.into()),
            message: None,
            status: None,
        }
    }
}

/// Everything `hactl status` shows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SCHEMA_VERSION`] of the daemon that answered.
    pub schema: u32,
    /// That daemon's version.
    pub version: String,
    /// Every cluster node in ha.cf order (`cl_status listnodes`); empty from an older daemon.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// This node.
    pub node: LocalNode,
    /// The other node.
    pub peer: PeerNode,
    /// Every resource group, in haresources order.
    pub groups: Vec<GroupStatus>,
    /// Packet counters.
    pub packets: Packets,
    /// Recent transitions, oldest first.
    pub transitions: Vec<TransitionEntry>,
}

/// This node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LocalNode {
    /// Its name in ha.cf.
    pub name: String,
    /// Heartbeat status we advertise: `up` until communication is up, then `active`.
    pub status: String,
    /// had's process id.
    pub pid: u32,
    /// Time since had started.
    pub uptime_ms: u64,
    /// This run's generation (`hb_generation`).
    pub generation: u64,
    /// Whether this node is in standby for any group.
    pub standby: bool,
    /// Whether had is shutting down.
    pub shutting_down: bool,
    /// ha.cf's `auto_failback`.
    pub auto_failback: String,
    /// ha.cf's `keepalive`.
    pub keepalive_ms: u64,
    /// ha.cf's `deadtime`.
    pub deadtime_ms: u64,
    /// The method outgoing messages are signed with (`crc` means no authentication).
    #[serde(default)]
    pub auth: String,
    /// The heartbeat thread's scheduling class and memory lock (`realtime` in ha.cf).
    #[serde(default)]
    pub realtime: Option<Realtime>,
}

/// The other node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerNode {
    /// Its name in ha.cf.
    pub name: String,
    /// `init` (not heard yet), `up`, `active`, `dead`, or `gone` (shut down cleanly).
    pub status: String,
    /// Time since its last heartbeat (`null`: never heard).
    pub last_heard_ms: Option<u64>,
    /// The deadtime applied to it.
    pub deadtime_ms: u64,
    /// Its generation, once heard.
    pub generation: Option<u64>,
    /// Every heartbeat link to it.
    pub links: Vec<Link>,
    /// What the peer last reported holding (`none`, `local`, `foreign`, `all`).
    pub rsc_hold: Option<String>,
    /// Whether its last report said it was stable (`isstable`).
    pub stable: Option<bool>,
}

/// One heartbeat link to the peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Link {
    /// The medium, as ha.cf names it.
    pub name: String,
    /// `up` or `dead`.
    pub status: String,
    /// Time since a packet last came over it (`null`: never).
    pub last_heard_ms: Option<u64>,
}

/// A resource group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The group's key (its first resource, as Heartbeat names groups).
    pub key: String,
    /// The node haresources prefers.
    pub preferred: String,
    /// State here: `stopped`, `starting`, `running`, `stopping`, `failed`.
    pub state: String,
    /// Node holding it, as far as this node knows; `null` when nobody does.
    pub held_by: Option<String>,
    /// Whether this node will not run it (failed, unhealthy, standby, shutting down, or it
    /// reaches fewer ping nodes than the peer): what the peer is told (`had_refuse`).
    pub refused_here: bool,
    /// Why, most serious first: `shutdown`, `failed`, `unhealthy`, `standby`, `ping`
    /// (empty when not refused; absent from daemons before 0.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_for: Vec<String>,
    /// Effective priorities (weighted monitors, had.toml `[priority]`): this node's and the
    /// peer's last advertised; absent without priorities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priorities>,
    /// Its resources, in haresources order.
    pub resources: Vec<ResourceStatus>,
}

/// A group's effective priorities.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Priorities {
    /// This node's.
    pub here: u32,
    /// The peer's, from its last resource report (`null` before one arrived).
    pub peer: Option<u32>,
}

/// One resource of a group, as last seen by this node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourceStatus {
    /// The resource as written in haresources.
    pub name: String,
    /// Its last known state.
    pub state: String,
    /// Why its last operation failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Packet counters.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Packets {
    /// Packets sent.
    pub sent: u64,
    /// Authentic packets received.
    pub received: u64,
    /// Packets dropped, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Heartbeats that came later than `warntime`.
    pub late: u64,
    /// Signed packets carrying this node's name from an address not ours.
    #[serde(default)]
    pub own_name_elsewhere: u64,
    /// Retransmissions and NAKs withheld by the per-peer rate limit.
    #[serde(default)]
    pub rexmit_limited: u64,
}

/// A recent cluster transition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransitionEntry {
    /// Time since had started.
    pub at_ms: u64,
    /// The group's key.
    pub group: String,
    /// The state the group entered here (`running`, `stopped`, ...).
    pub what: String,
    /// Why.
    pub reason: String,
}

impl Snapshot {
    /// Human rendering for `hactl status`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let held = self
            .groups
            .iter()
            .filter(|g| g.held_by.as_deref() == Some(self.node.name.as_str()))
            .count();
        let _ = writeln!(
            s,
            "Node {} (this node): {}{}{}, holding {} of {} group(s), auto_failback {}",
            self.node.name,
            self.node.status,
            if self.node.standby { ", standby" } else { "" },
            if self.node.shutting_down {
                ", shutting down"
            } else {
                ""
            },
            held,
            self.groups.len(),
            self.node.auto_failback
        );
        if let Some(rt) = &self.node.realtime {
            let _ = writeln!(
                s,
                "Scheduling: heartbeat thread {} priority {}, memory {}{}",
                rt.policy,
                rt.priority,
                if rt.memory_locked {
                    "locked"
                } else {
                    "not locked"
                },
                match (&rt.warning, rt.requested) {
                    (Some(w), _) => format!(" (realtime on, but {w})"),
                    (None, false) => " (realtime off)".to_string(),
                    (None, true) => String::new(),
                }
            );
        }
        if self.node.auth == "crc" {
            let _ = writeln!(
                s,
                "WARNING: {} (set a sha1 key in authkeys; docs/security.md)",
                ha_config::authkeys::CRC_WARNING
            );
        }
        let heard = match self.peer.last_heard_ms {
            Some(ms) => format!("last heartbeat {} ago", fmt_ms(ms)),
            None => "never heard".into(),
        };
        let _ = writeln!(
            s,
            "Node {} (peer): {}, {}, deadtime {}",
            self.peer.name,
            self.peer.status,
            heard,
            fmt_ms(self.peer.deadtime_ms)
        );
        for l in &self.peer.links {
            let age = l
                .last_heard_ms
                .map(|ms| format!(" ({} ago)", fmt_ms(ms)))
                .unwrap_or_default();
            let _ = writeln!(s, "  link {}: {}{}", l.name, l.status, age);
        }
        let _ = writeln!(s, "Resource groups:");
        for g in &self.groups {
            let _ = writeln!(
                s,
                "  {}  preferred {}, held by {}, here: {}{}",
                g.key,
                g.preferred,
                g.held_by.as_deref().unwrap_or("nobody"),
                g.state,
                if g.refused_here {
                    " (refused here: failed, unhealthy, standby, shutdown or ping)"
                } else {
                    ""
                }
            );
            if let Some(p) = &g.priority {
                let peer = p
                    .peer
                    .map_or_else(|| "unknown".to_string(), |n| n.to_string());
                let _ = writeln!(s, "    priority here {}, peer {peer}", p.here);
            }
            for r in &g.resources {
                let err = r
                    .last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                let _ = writeln!(s, "    {:<40} {}{}", r.name, r.state, err);
            }
        }
        let drops: u64 = self.packets.dropped.values().sum();
        let detail = if drops > 0 {
            format!(
                " ({})",
                self.packets
                    .dropped
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "Packets: sent {}, received {}, dropped {}{}, late heartbeats {}",
            self.packets.sent, self.packets.received, drops, detail, self.packets.late
        );
        if self.packets.own_name_elsewhere > 0 {
            let _ = writeln!(
                s,
                "WARNING: another node uses our name: {} signed packet(s) with this node's name from other addresses (see the log)",
                self.packets.own_name_elsewhere
            );
        }
        s
    }
}

fn fmt_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_group_may_look_but_not_touch() {
        use crate::Scope;
        let reads = [
            Request::Status,
            Request::Parameter {
                name: "deadtime".into(),
            },
        ];
        let writes = [
            Request::Standby { scope: Scope::All },
            Request::Takeover {
                scope: Scope::Local,
            },
            Request::Cleanup,
            Request::Reload,
        ];
        assert_eq!(access(0, 0, Some(50), 0, &[]), Access::Full);
        assert_eq!(access(1000, 1000, None, 1000, &[]), Access::Full);
        assert_eq!(access(1000, 0, Some(50), 50, &[]), Access::Read);
        assert_eq!(access(1000, 0, Some(50), 1000, &[7, 50]), Access::Read);
        assert_eq!(access(1000, 0, Some(50), 1000, &[7]), Access::None);
        assert_eq!(access(1000, 0, None, 50, &[50]), Access::None);
        for r in &reads {
            assert!(authorize(Access::Read, r).is_ok(), "{r:?}");
            assert!(authorize(Access::None, r).is_err(), "{r:?}");
        }
        for w in &writes {
            assert!(authorize(Access::Full, w).is_ok(), "{w:?}");
            let e = authorize(Access::Read, w).expect_err("refused");
            assert!(e.starts_with("permission denied"), "{e}");
        }
    }

    #[test]
    fn requests_are_tagged_json() {
        let r: Request = serde_json::from_str(r#"{"cmd":"status"}"#).expect("parses");
        assert_eq!(r, Request::Status);
        assert_eq!(
            serde_json::to_string(&Request::Standby {
                scope: crate::Scope::Local
            })
            .expect("json"),
            r#"{"cmd":"standby","scope":"local"}"#
        );
        // Older clients send no scope: it means `all`.
        let r: Request = serde_json::from_str(r#"{"cmd":"takeover"}"#).expect("parses");
        assert_eq!(
            r,
            Request::Takeover {
                scope: crate::Scope::All
            }
        );
    }

    #[test]
    fn lines_round_trip_and_oversized_or_garbled_requests_are_refused() {
        let req = Request::Parameter {
            name: "deadtime".into(),
        };
        let line = encode_request(&req).expect("json");
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(decode_request(&line), Ok(req));
        let e = decode_request(b"{\"cmd\":\"format_disk\"}\n").expect_err("unknown");
        assert!(e.starts_with("bad request: unknown variant"), "{e}");
        let mut big = br#"{"cmd":"parameter","name":""#.to_vec();
        big.resize(MAX_REQUEST - 2, b'x');
        big.extend_from_slice(b"\"}");
        assert_eq!(big.len(), MAX_REQUEST);
        assert!(decode_request(&big).is_ok(), "the limit itself is allowed");
        big.push(b'\n');
        assert_eq!(
            decode_request(&big),
            Err(format!("bad request: longer than {MAX_REQUEST} bytes"))
        );
        let resp = Response::err("standby refused: peer n2 is not alive");
        let line = encode_response(&resp).expect("json");
        let text = std::str::from_utf8(&line).expect("utf-8");
        let back = decode_response(text).expect("parses");
        assert!(!back.ok);
        assert_eq!(back.error, resp.error);
        let e = decode_response("had: bye\n").expect_err("not json");
        assert!(e.starts_with("unreadable answer from had: "), "{e}");
    }

    #[test]
    fn crc_is_shown_as_no_authentication() {
        let json = |auth: &str| {
            format!(
                r#"{{"schema":1,"version":"0","node":{{"name":"n1","status":"active","pid":1,
                "uptime_ms":0,"generation":1,"standby":false,"shutting_down":false,
                "auto_failback":"on","keepalive_ms":1000,"deadtime_ms":5000{auth}}},
                "peer":{{"name":"n2","status":"active","last_heard_ms":null,"deadtime_ms":0,
                "generation":null,"links":[],"rsc_hold":null,"stable":null}},"groups":[],
                "packets":{{"sent":0,"received":0,"dropped":{{}},"late":0}},"transitions":[]}}"#
            )
        };
        let s: Snapshot = serde_json::from_str(&json(r#","auth":"crc""#)).expect("parses");
        let text = s.render();
        assert!(text.contains("WARNING: no authentication"), "{text}");
        let s: Snapshot = serde_json::from_str(&json(r#","auth":"sha1""#)).expect("parses");
        assert!(!s.render().contains("WARNING"));
        // An older daemon sends no `auth`: nothing is claimed either way.
        let s: Snapshot = serde_json::from_str(&json("")).expect("parses");
        assert!(!s.render().contains("WARNING"));
    }
}
