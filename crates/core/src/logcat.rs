//! The log catalogue: every line an admin may read or grep is one variant of [`LogEvent`],
//! declared once below with its level, its text, its rate limit and what it means. Lines are
//! written only by [`log`] (and, for lines a packet can trigger, by `NetLog::emit`, which asks
//! the limiter first): one place turns an event into text, structured fields and a level.
//! docs/logs.md's table is rendered from [`ENTRIES`]; a test fails when the file differs.
//!
//! Values a peer (or a packet) supplies are typed [`Peer`] or [`Untrusted`] here, so they are
//! escaped and cut short by the catalogue itself, whatever the call site passes. Debug and
//! trace lines stay free-form (`tracing::debug!`): they are for developers, not for scripts.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::NodeName;
use crate::auth::DropReason;
use crate::config::Origin;
use ha_logsafe::Untrusted;

/// A line's level (the catalogue has no debug lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Something failed or needs an admin.
    Error,
    /// Something unusual the cluster handled.
    Warn,
    /// A state change or an audit line.
    Info,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
        }
    }
}

/// How often a line may be written: lines a packet (or the lack of packets) can trigger have
/// a budget, so a flood or a replay cannot fill the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Not triggered by packets: always written.
    None,
    /// Packet drops: 3 lines a minute (per drop reason); the summary is a warning.
    Drops,
    /// Peer and link trouble: 20 lines a minute; the summary is a warning.
    Trouble,
    /// Peer state and resource messages: 20 lines a minute; the summary is info.
    Chatter,
}

impl Limit {
    fn as_str(self) -> &'static str {
        match self {
            Limit::None => "",
            Limit::Drops => "3/min",
            Limit::Trouble | Limit::Chatter => "20/min",
        }
    }
}

/// One catalogue entry: what docs/logs.md says about a variant.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The variant's name.
    pub id: &'static str,
    /// Its level.
    pub level: Level,
    /// Its rate limit.
    pub limit: Limit,
    /// What the limiter's summary calls these lines ("late heartbeats: 3 more suppressed …").
    pub summary: &'static str,
    /// The line with placeholders, as the docs show it.
    pub pattern: &'static str,
    /// What it means.
    pub meaning: &'static str,
}

/// A value a peer or a packet supplied: escaped and cut short ([`Untrusted`]) when written.
#[derive(Clone, Copy, Debug)]
pub struct Peer<'a>(pub &'a str);

impl fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Untrusted::new(self.0).as_str())
    }
}

/// The `src` a dropped packet claims, if it claims one: ` (claims to be N)`.
#[derive(Clone, Copy, Debug)]
pub struct Claim(pub Option<Untrusted>);

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, " (claims to be {s})"),
            None => Ok(()),
        }
    }
}

/// A duration as the lines write it (`1s`, `500ms`: Rust's `Debug`).
#[derive(Clone, Copy, Debug)]
pub struct Dur(pub std::time::Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The structured fields a line carries (journald: `NODE=`, `GROUP=`, …), by field name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields {
    /// The peer.
    pub node: Option<String>,
    /// The resource group.
    pub group: Option<String>,
    /// The resource.
    pub resource: Option<String>,
    /// The heartbeat link.
    pub link: Option<String>,
    /// The network interface an address is on.
    pub iface: Option<String>,
    /// The source address of a packet.
    pub from: Option<String>,
    /// Why an operation failed or a packet was dropped.
    pub reason: Option<String>,
    /// A duration in milliseconds.
    pub ms: Option<String>,
}

impl Fields {
    fn set(&mut self, name: &str, v: &dyn fmt::Display) {
        let slot = match name {
            "node" => &mut self.node,
            "group" => &mut self.group,
            "resource" => &mut self.resource,
            "link" => &mut self.link,
            "iface" => &mut self.iface,
            "from" => &mut self.from,
            "reason" => &mut self.reason,
            "ms" => &mut self.ms,
            _ => return,
        };
        *slot = Some(v.to_string());
    }
}

/// Declares [`LogEvent`], its text, its fields and [`ENTRIES`] from one list, so a line
/// cannot exist without its entry in the docs.
macro_rules! catalogue {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? }
            => $level:ident, $limit:ident, $summary:literal,
               $line:literal, $pattern:literal, $meaning:literal;
    )*) => {
        /// Every admin-visible log line.
        #[derive(Clone, Debug)]
        pub enum LogEvent<'a> {
            $( $(#[doc = $doc])* $name { $(#[allow(missing_docs)] $field: $ty),* }, )*
        }

        /// The catalogue, in declaration order (docs/logs.md shows it as a table).
        pub const ENTRIES: &[Entry] = &[$(
            Entry {
                id: stringify!($name),
                level: Level::$level,
                limit: Limit::$limit,
                summary: $summary,
                pattern: $pattern,
                meaning: $meaning,
            },
        )*];

        impl LogEvent<'_> {
            /// The variant's catalogue entry.
            pub fn entry(&self) -> &'static Entry {
                match self {
                    $( Self::$name { .. } => &Entry {
                        id: stringify!($name),
                        level: Level::$level,
                        limit: Limit::$limit,
                        summary: $summary,
                        pattern: $pattern,
                        meaning: $meaning,
                    }, )*
                }
            }

            /// The structured fields of the line.
            pub fn fields(&self) -> Fields {
                #[allow(unused_mut)]
                let mut r = Fields::default();
                match self {
                    $( Self::$name { $($field),* } => { $( r.set(stringify!($field), $field); )* } )*
                }
                r
            }
        }

        impl fmt::Display for LogEvent<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( #[allow(unused_variables)] Self::$name { $($field),* } => write!(f, $line), )*
                }
            }
        }
    };
}

catalogue! {
    // ---- Liveness: the peer and the links (every one triggered by packets or their lack).
    /// The peer's advertised status changed (or it was heard for the first time).
    StatusUpdate { node: &'a NodeName, status: &'a str }
        => Info, Chatter, "peer status changes",
        "Status update for node {node}: status {status}",
        "Status update for node N: status S",
        "the peer's advertised status changed";
    /// A peer declared dead is heard again with the same generation.
    PeerReturning { node: &'a NodeName }
        => Error, Chatter, "peers returning after partition",
        "Cluster node {node} returning after partition.",
        "Cluster node N returning after partition.",
        "a node declared dead is heard again with the same generation (split brain healing follows)";
    /// The peer started again (newer generation).
    PeerRestarted { node: &'a NodeName }
        => Info, Chatter, "peer restarts",
        "Heartbeat restart on node {node}",
        "Heartbeat restart on node N",
        "N restarted (new generation)";
    /// Nothing from the peer within its deadtime.
    PeerDead { node: &'a NodeName }
        => Warn, Trouble, "peer deaths",
        "node {node}: is dead",
        "node N: is dead",
        "nothing from N on any link within its deadtime: its groups are taken over";
    /// Nothing from the peer within initdead after the start.
    PeerNeverHeard { node: &'a NodeName }
        => Warn, Trouble, "peers never heard",
        "node {node}: is dead (never heard within initdead)",
        "node N: is dead (never heard within initdead)",
        "nothing from N since this node started, within initdead: its groups are taken over";
    /// One link to the peer carries packets again.
    LinkUp { node: &'a NodeName, link: &'a str }
        => Info, Trouble, "link changes",
        "Link {node}:{link} up.",
        "Link N:IF up.",
        "one heartbeat link to N resumed";
    /// One link to the peer went silent.
    LinkDead { node: &'a NodeName, link: &'a str }
        => Warn, Trouble, "link changes (dead)",
        "Link {node}:{link} dead.",
        "Link N:IF dead.",
        "one heartbeat link to N stopped";
    /// A heartbeat arrived later than warntime.
    LateHeartbeat { node: &'a NodeName, ms: u64 }
        => Warn, Trouble, "late heartbeats",
        "Late heartbeat: Node {node}: interval {ms} ms",
        "Late heartbeat: Node N: interval M ms",
        "a heartbeat arrived later than warntime";
    /// Our own timer fired late, so a peer's silence is given one more wait.
    OwnWakeLate { late_ms: u64, grace_ms: u64 }
        => Warn, Trouble, "late wake-ups of our own",
        "this node woke {late_ms} ms late (the host or this process was paused): peers silent meanwhile get {grace_ms} ms more before they are declared dead",
        "this node woke L ms late (the host or this process was paused): peers silent meanwhile get G ms more before they are declared dead",
        "our own deadline was met late, so the silence proves nothing; a paused host (a VM steal, a stopped process) would otherwise make both nodes declare each other dead at once. Once per silence: a real death waits two keepalives more at most";
    /// The peer no longer has a packet we asked for again.
    PacketLost { node: &'a NodeName, seq: u64 }
        => Warn, Trouble, "packets lost for good",
        "node {node}: packet {seq} irretrievably lost",
        "node N: packet S irretrievably lost",
        "N no longer has a packet we asked it to send again";
    /// The peer advertises an absurd deadtime.
    DeadtimeClamped { node: &'a NodeName, advertised_ms: u64, min_ms: u64, max_ms: u64, used_ms: u64 }
        => Warn, Trouble, "deadtime clamps",
        "node {node} advertises deadtime {advertised_ms} ms, outside {min_ms}..={max_ms} ms: judging it by {used_ms} ms (logged once)",
        "node N advertises deadtime D ms, outside 50..=3600000 ms: judging it by M ms (logged once)",
        "the peer's `dt` is absurd; it is clamped so that it can still be declared dead";
    /// Signed packets with our own name from an address that is not ours.
    OwnNameElsewhere { from: SocketAddr }
        => Error, Drops, "another node uses our name",
        "another node uses our name: signed packets with this node's name come from {from} (a cloned machine or a replay; logged once per address, counted in `hactl status`)",
        "another node uses our name: signed packets with this node's name come from ADDR …",
        "a cloned machine (or a replay of our packets) on the LAN; logged once per address, counted as `packets.own_name_elsewhere`";
    /// The peer carries this node's hb_uuid.
    SameUuid { node: &'a NodeName }
        => Warn, Chatter, "same hb_uuid",
        "node {node} has the same hb_uuid as this node: a cloned state directory? stop had on one node, delete hb_uuid in its state directory (/var/lib/heartbeat), start it again",
        "node N has the same hb_uuid as this node: a cloned state directory? …",
        "both nodes carry one `hb_uuid` (a copied /var/lib/heartbeat): delete it on one node and restart had there";
    /// A packet failed the checks or authentication.
    Dropped { from: SocketAddr, claim: Claim, reason: DropReason }
        => Warn, Drops, "dropping packets",
        "dropping packets from {from}{claim}: {reason}; check that /etc/ha.d/authkeys is identical on both nodes (lines like this are rate-limited; `hactl status` counts every packet)",
        "dropping packets from ADDR (claims to be N): REASON; …",
        "a packet failed the checks or authentication (`no_auth`, `bad_auth`, `unknown_key`, `malformed`, `too_big`): wrong key, foreign cluster or a hostile host; limited per reason";
    /// Authentic packets dropped because the loop could not keep up.
    QueueFull { lost: u64 }
        => Warn, Drops, "receive queue full",
        "receive queue full: {lost} authentic packet(s) dropped so far",
        "receive queue full: N authentic packet(s) dropped so far",
        "the loop could not keep up with authentic packets (a replay flood)";
    /// A serial port failed to read.
    SerialError { reason: &'a str }
        => Warn, Trouble, "serial receive errors",
        "heartbeat receive error: {reason}",
        "heartbeat receive error: …",
        "a serial heartbeat port could not be read";
    /// A window of the limiter held warnings back.
    Suppressed { what: &'a str, summary: &'a ha_logsafe::Summary<crate::netlog::NetKey> }
        => Warn, None, "",
        "{what}: {summary}",
        "WHAT: N more suppressed in the last S s",
        "the summary of lines the limiter held back (below); info instead of warn for peer status and resource message lines";
    /// A window of the limiter held info lines back.
    SuppressedInfo { what: &'a str, summary: &'a ha_logsafe::Summary<crate::netlog::NetKey> }
        => Info, None, "",
        "{what}: {summary}",
        "WHAT: N more suppressed in the last S s",
        "the same summary for peer status and resource message lines";

    // ---- Resource messages from the peer.
    /// A resource message the daemon could not read.
    MalformedMessage { kind: Peer<'a>, node: &'a NodeName }
        => Warn, Chatter, "resource messages (malformed)",
        "malformed {kind} message from {node}: ignored",
        "malformed T message from N: ignored",
        "a resource, standby/takeover or ip-request message from N lacks a field or has a bad value";
    /// A resource message and what the cluster makes of it.
    PeerMessage { kind: Peer<'a>, node: &'a NodeName, input: Peer<'a> }
        => Info, Chatter, "resource messages",
        "{kind} from {node}: {input}",
        "T from N: INPUT",
        "a resource report, standby/takeover or ip-request message from N, as the cluster reads it";
    /// The peer released everything and stops.
    ShutdownNotice { node: &'a NodeName }
        => Info, Chatter, "shutdown notices",
        "Received shutdown notice from '{node}'.",
        "Received shutdown notice from 'N'.",
        "N released everything and stops: takeover at once";

    // ---- This node's cluster state and its resource groups.
    /// The peer was heard, or declared dead after initdead.
    CommUp {}
        => Info, None, "",
        "Comm up: status active",
        "Comm up: status active",
        "the peer was heard (or declared dead after initdead); resources are managed from now on";
    /// A graceful stop released everything.
    Relinquished {}
        => Info, None, "",
        "All HA resources relinquished.",
        "All HA resources relinquished.",
        "graceful stop: everything released, `shutdone` sent";
    /// A group's takeover begins.
    Acquiring { group: &'a str }
        => Info, None, "",
        "acquiring resource group {group}",
        "acquiring resource group K",
        "takeover of a group begins";
    /// A group's takeover is over.
    Acquired { group: &'a str, ms: u64 }
        => Info, None, "",
        "resource group {group} acquired in {ms} ms",
        "resource group K acquired in M ms",
        "takeover of a group is over";
    /// A group's giveup begins.
    Releasing { group: &'a str }
        => Info, None, "",
        "releasing resource group {group}",
        "releasing resource group K",
        "giveup of a group begins";
    /// A group's giveup is over.
    Released { group: &'a str, ms: u64 }
        => Info, None, "",
        "resource group {group} released in {ms} ms",
        "resource group K released in M ms",
        "giveup of a group is over";
    /// A group was restarted in place after a monitor failure.
    RestartedInPlace { group: &'a str, ms: u64 }
        => Info, None, "",
        "resource group {group} restarted in place in {ms} ms",
        "resource group K restarted in place in M ms",
        "a monitor failure was repaired without a failover";
    /// A reload's changes to a group running here are applied.
    ReloadApplied { group: &'a str, ms: u64 }
        => Info, None, "",
        "resource group {group}: reload applied in {ms} ms",
        "resource group K: reload applied in M ms",
        "a reload changed the resources of a group running here: what left was stopped, what is new started";
    /// An operation on a group failed.
    OperationFailed { group: &'a str, op: &'a str, ms: u64, reason: &'a str }
        => Error, None, "",
        "resource group {group}: {op} failed: {reason}",
        "resource group K: OP failed: …",
        "a start, stop, restart or reload step failed (the resource's own line says why)";
    /// One resource of a group started.
    Started { group: &'a str, resource: &'a str, ms: u64 }
        => Info, None, "",
        "started {resource}",
        "started R",
        "one resource of a group started";
    /// One resource of a group stopped.
    Stopped { group: &'a str, resource: &'a str, ms: u64 }
        => Info, None, "",
        "stopped {resource}",
        "stopped R",
        "one resource of a group stopped";
    /// A resource to start already runs.
    AlreadyRunning { group: &'a str, resource: &'a str }
        => Info, None, "",
        "resource {resource} is already running",
        "resource R is already running",
        "a start found the resource running: it is taken as started";
    /// A start failed; the group is rolled back.
    GivingUp { group: &'a str, resource: &'a str, reason: &'a str }
        => Error, None, "",
        "Giving up resources due to failure of {resource}: {reason}",
        "Giving up resources due to failure of R: …",
        "a start failed; the group is rolled back and handed to the peer";
    /// A stop during a rollback failed.
    RollbackStopFailed { group: &'a str, resource: &'a str, reason: &'a str }
        => Warn, None, "",
        "rollback stop of {resource} failed: {reason}",
        "rollback stop of R failed: …",
        "after a failed start, stopping what had started failed too";
    /// A stop failed and is tried again.
    StopRetry { group: &'a str, resource: &'a str, attempt: u32, reason: &'a str }
        => Warn, None, "",
        "stop of {resource} failed: {reason}; retrying",
        "stop of R failed: …; retrying",
        "a stop failed; it is tried again (ha.cf's retries)";
    /// A stop failed after its retries.
    StopFailure { group: &'a str, resource: &'a str, reason: &'a str }
        => Error, None, "",
        "Resource STOP failure for {resource}: {reason}; manual action required",
        "Resource STOP failure for R: …",
        "a stop failed after retries; the group stays marked as held here";
    /// A monitor failure restarts the group's resources from the failed one.
    RestartingInPlace { group: &'a str, resources: &'a str }
        => Warn, None, "",
        "restarting {resources} in place (monitor failure)",
        "restarting R… in place (monitor failure)",
        "a monitor failed where its group runs: restart in place before a failover";
    /// A reload stopped a resource that left a running group.
    ReloadStopped { group: &'a str, resource: &'a str }
        => Info, None, "",
        "reload: stopped {resource}",
        "reload: stopped R",
        "a reload removed R from a group running here";
    /// A reload started a resource new in a running group.
    ReloadStarted { group: &'a str, resource: &'a str }
        => Info, None, "",
        "reload: started {resource}",
        "reload: started R",
        "a reload added R to a group running here (a failure there is logged as `Giving up resources …`)";
    /// A reload's stop failed and is tried again.
    ReloadStopRetry { group: &'a str, resource: &'a str, attempt: u32, reason: &'a str }
        => Warn, None, "",
        "reload: stop of {resource} failed: {reason}; retrying",
        "reload: stop of R failed: …; retrying",
        "a stop asked by a reload failed; it is tried again (a final failure is `Resource STOP failure …`)";
    /// A monitor's failure, or its return to health, where it acts.
    MonitorWarning { group: &'a str, text: &'a str }
        => Warn, None, "",
        "{text}",
        "monitor M of GROUP: fails: …",
        "a monitor failed (`link:` monitors: `…: no carrier`, and the node refuses the group until it is back)";
    /// A monitor's other transitions (passes again, fails where the group is not).
    MonitorNote { group: &'a str, text: &'a str }
        => Info, None, "",
        "{text}",
        "monitor M of GROUP: passes",
        "a monitor passes again, or fails where its group does not run (logged once)";

    // ---- Audit: who asked what.
    /// A mutating request and who sent it.
    AdminRequested { what: &'a str, origin: Origin }
        => Info, None, "",
        "admin: {what} requested by {origin}",
        "admin: standby all requested by control socket uid 0 pid 4242",
        "audit: a mutating request and who sent it (`standby`/`takeover` with their scope); the origin is the client's uid and pid from `SO_PEERCRED`, `FIFO` for a message written into the FIFO, or `signal SIGHUP`";
    /// The same request, refused.
    AdminRefused { what: &'a str, origin: Origin, reason: &'a str }
        => Warn, None, "",
        "admin: {what} from {origin} refused: {reason}",
        "admin: takeover all from FIFO refused: …",
        "audit: the same request, refused, with the reason";
    /// `hactl cleanup`.
    AdminCleanup { origin: Origin }
        => Info, None, "",
        "admin: cleanup requested by {origin}: failures forgotten",
        "admin: cleanup requested by ORIGIN: failures forgotten",
        "audit: failed operations and refusals forgotten on this node";
    /// A reload request.
    AdminReload { origin: Origin, dir: &'a str }
        => Info, None, "",
        "admin: reload requested by {origin}: re-reading {dir}",
        "admin: reload requested by ORIGIN: re-reading DIR",
        "audit: a reload (`hactl reload` or SIGHUP); its result follows";
    /// A reload was applied.
    ReloadDone { summary: &'a str }
        => Info, None, "",
        "{summary}",
        "reload: …",
        "what the reload changed";
    /// A reload was refused: nothing changed.
    ReloadRefused { reason: &'a str }
        => Error, None, "",
        "{reason}",
        "reload refused: …",
        "the new configuration has an error (file, line, fix); the running one stays";
    /// A graceful stop asked by a signal.
    AdminShutdown { origin: Origin }
        => Info, None, "",
        "admin: shutdown requested by {origin}: releasing all resources, then stopping",
        "admin: shutdown requested by signal SIGTERM: releasing all resources, then stopping",
        "audit: a graceful stop asked by a signal (`SIGINT` likewise)";
    /// A second stop signal during a stop.
    AdminShutdownAgain { origin: Origin }
        => Info, None, "",
        "admin: shutdown requested by {origin}: already shutting down",
        "admin: shutdown requested by ORIGIN: already shutting down",
        "audit: a stop signal while the stop is under way changes nothing";

    // ---- The daemon's start, its stop and its surroundings.
    /// had starts.
    Starting { version: &'a str, node: &'a NodeName, peer: &'a NodeName, groups: usize, keepalive: Dur, deadtime: Dur, initdead: Dur }
        => Info, None, "",
        "had {version} starting: node {node}, peer {peer}, {groups} group(s), keepalive {keepalive}, deadtime {deadtime}, initdead {initdead}",
        "had V starting: node N, peer P, G group(s), keepalive K, deadtime D, initdead I",
        "had starts with this configuration";
    /// had stopped after a graceful stop.
    HadStopped {}
        => Info, None, "",
        "had stopped",
        "had stopped",
        "the end of a graceful stop";
    /// had cannot run.
    Fatal { reason: &'a str }
        => Error, None, "",
        "had: {reason}",
        "had: …",
        "had could not start or stopped on an error (also on stderr)";
    /// A configuration warning (as `hactl check` shows it), at start and at reload.
    ConfigWarning { text: &'a str }
        => Warn, None, "",
        "{text}",
        "no authentication: `crc` is the active method, … (any warning of `hactl check`)",
        "a configuration that works but should be fixed, e.g. authkeys signing with crc (see [security.md](security.md))";
    /// A monitor runs.
    MonitorStarted { resource: &'a str, interval: Dur, timeout: Dur, failures: u32 }
        => Info, None, "",
        "monitoring {resource} every {interval} (timeout {timeout}, {failures} failure(s) to act)",
        "monitoring R every I (timeout T, N failure(s) to act)",
        "a had.toml monitor starts";
    /// The metrics endpoint listens.
    MetricsServing { from: SocketAddr }
        => Info, None, "",
        "metrics: serving http://{from}/metrics",
        "metrics: serving http://ADDR/metrics",
        "had.toml's metrics endpoint is up";
    /// The metrics endpoint cannot listen.
    MetricsOff { from: SocketAddr, reason: &'a str }
        => Error, None, "",
        "metrics: cannot listen on {from}: {reason}; metrics are off",
        "metrics: cannot listen on ADDR: …; metrics are off",
        "had.toml's metrics endpoint could not be bound; had runs without it";
    /// This host's addresses are unknown.
    NoLocalAddrs {}
        => Warn, None, "",
        "cannot list this host's addresses; packets with our name will be reported",
        "cannot list this host's addresses; packets with our name will be reported",
        "getifaddrs failed: our own packets looped back may be reported as another node using our name";
    /// The replay floors could not be saved.
    FloorsNotWritten { path: &'a str, reason: &'a str }
        => Error, None, "",
        "cannot write {path}: {reason}",
        "cannot write /var/lib/heartbeat/…: …",
        "the peer's replay floors could not be saved: after a restart, old packets of the peer may be taken as new until it sends again";
    /// `had --record`: the record file could not be written; the daemon goes on unrecorded.
    RecordStopped { reason: &'a str }
        => Warn, None, "",
        "record stopped: {reason}",
        "record stopped: …",
        "the --record file could not be written; nothing more is recorded, the daemon runs on";
    /// The control socket failed to accept.
    ControlAcceptFailed { reason: &'a str }
        => Warn, None, "",
        "control socket accept failed: {reason}",
        "control socket accept failed: …",
        "hactl could not connect (retried)";
    /// A non-root client asked for a mutating request.
    ControlNotRoot { origin: Origin }
        => Warn, None, "",
        "control socket: request from {origin} refused: not root",
        "control socket: request from ORIGIN refused: not root",
        "audit: hactl run by a user who may not change the cluster";
    /// A request the client may not make.
    ControlRefused { request: &'a str, origin: Origin, reason: &'a str }
        => Warn, None, "",
        "control socket: {request} from {origin} refused: {reason}",
        "control socket: REQUEST from ORIGIN refused: …",
        "audit: a request refused by the socket's access rules";
    /// The agents' thread could not start.
    AgentsThreadFailed { reason: &'a str }
        => Warn, None, "",
        "cannot start the agents' thread ({reason}); agents share the heartbeat thread",
        "cannot start the agents' thread (…); agents share the heartbeat thread",
        "slow agents may then delay heartbeats";
    /// Realtime was asked for and not obtained.
    RealtimeDegraded { warning: &'a str, policy: &'a str, priority: i32 }
        => Warn, None, "",
        "realtime: {warning}; heartbeats run at {policy} priority {priority} (a loaded host may delay them)",
        "realtime: …; heartbeats run at P priority N (a loaded host may delay them)",
        "ha.cf's realtime could not be applied in full";
    /// Realtime is on.
    RealtimeOn { policy: &'a str, priority: i32 }
        => Info, None, "",
        "realtime: heartbeat thread {policy} priority {priority}, memory locked",
        "realtime: heartbeat thread P priority N, memory locked",
        "ha.cf's realtime is applied";
    /// Realtime is off.
    RealtimeOff {}
        => Info, None, "",
        "realtime off: heartbeats run at normal priority",
        "realtime off: heartbeats run at normal priority",
        "ha.cf's `realtime off`";
    /// The receive thread could not get the realtime class.
    RealtimeReceiveNormal { reason: &'a str }
        => Warn, None, "",
        "realtime: the receive thread stays at normal priority: {reason}",
        "realtime: the receive thread stays at normal priority: …",
        "under a flood the receive thread may then be delayed";
    /// Locking memory again after giving back unused pages failed.
    MemoryRelockFailed { reason: &'a str }
        => Warn, None, "",
        "realtime: memory could not be locked again after trimming it ({reason}); heartbeats may page-fault on a loaded host",
        "realtime: memory could not be locked again after trimming it (…); heartbeats may page-fault on a loaded host",
        "RLIMIT_MEMLOCK lowered or memory short while the daemon ran";
    /// The guard could not get the realtime class or lock its memory.
    GuardRealtimeIncomplete { class: &'a str, lock: &'a str }
        => Warn, None, "",
        "guard: realtime incomplete (class: {class}, memory lock: {lock}); a loaded host may delay its release",
        "guard: realtime incomplete (…); a loaded host may delay its release",
        "the guard runs at normal priority or unlocked";
    /// An agent thread kept the realtime class.
    AgentThreadPriority { reason: &'a str }
        => Warn, None, "",
        "cannot return an agent thread to SCHED_OTHER: {reason}",
        "cannot return an agent thread to SCHED_OTHER: …",
        "an agent runs at the heartbeat's priority";

    // ---- Addresses, fencing, hooks, the FIFO and ping nodes.
    /// A gratuitous ARP could not be sent.
    ArpFailed { group: &'a str, resource: &'a str, reason: &'a str }
        => Warn, None, "",
        "gratuitous ARP failed: {reason}",
        "gratuitous ARP failed: …",
        "a re-announcement of an address failed (the address stays)";
    /// The addresses of a group were announced again.
    Reannounced { group: &'a str }
        => Info, None, "",
        "re-announced the addresses of {group}",
        "re-announced the addresses of K",
        "after a split brain heals or a link returns, the holder announces its addresses again";
    /// The fence command runs.
    Fencing { node: &'a str, program: &'a str }
        => Warn, None, "",
        "fencing {node} before taking over: {program}",
        "fencing N before taking over: PROGRAM",
        "had.toml's fence command runs before a takeover";
    /// The peer is fenced.
    Fenced { node: &'a str }
        => Info, None, "",
        "{node} fenced",
        "N fenced",
        "the fence command succeeded: the takeover goes on";
    /// The fence command failed.
    FenceFailed { node: &'a str, reason: &'a str, retry: Dur }
        => Error, None, "",
        "fencing {node} failed ({reason}); takeover waits, retrying in {retry}",
        "fencing N failed (…); takeover waits, retrying in T",
        "nothing starts until a fence succeeds";
    /// A notify hook succeeded.
    NotifyDone { group: &'a str, name: &'a str, state: &'a str }
        => Info, None, "",
        "notify {name} ({state}) done",
        "notify HOOK (STATE) done",
        "a had.toml notify hook ran";
    /// A notify hook exited with an error.
    NotifyExited { group: &'a str, name: &'a str, state: &'a str, status: &'a str, output: &'a str }
        => Warn, None, "",
        "notify {name} ({state}) exited {status}: {output}",
        "notify HOOK (STATE) exited STATUS: …",
        "a notify hook failed (the cluster goes on)";
    /// A notify hook could not run.
    NotifyFailed { group: &'a str, name: &'a str, state: &'a str, reason: &'a str }
        => Warn, None, "",
        "notify {name} ({state}) failed: {reason}",
        "notify HOOK (STATE) failed: …",
        "a notify hook could not be started or timed out";
    /// The FIFO cannot be used.
    FifoUnusable { path: &'a str, reason: &'a str }
        => Warn, None, "",
        "cannot use the FIFO {path}: {reason}; hb_standby-style scripts will not reach had",
        "cannot use the FIFO PATH: …; hb_standby-style scripts will not reach had",
        "Heartbeat's FIFO could not be created or opened";
    /// The FIFO is no longer read.
    FifoClosed { path: &'a str, reason: &'a str }
        => Warn, None, "",
        "FIFO {path}: {reason}; no longer read",
        "FIFO PATH: …; no longer read",
        "reading the FIFO failed";
    /// The FIFO is read.
    FifoReading { path: &'a str }
        => Info, None, "",
        "reading scripts' messages from {path}",
        "reading scripts' messages from PATH",
        "Heartbeat's FIFO is open";
    /// An oversized message in the FIFO.
    FifoOversized { max: usize }
        => Warn, None, "",
        "FIFO: a message over {max} bytes was dropped",
        "FIFO: a message over N bytes was dropped",
        "a script wrote something too long to be a message";
    /// No ICMP socket.
    IcmpUnavailable { reason: &'a str }
        => Warn, None, "",
        "cannot open an ICMP socket for ping nodes ({reason}); the ping tiebreak is off",
        "cannot open an ICMP socket for ping nodes (…); the ping tiebreak is off",
        "ping nodes are configured but cannot be pinged";
    /// The ICMP socket cannot be polled.
    IcmpUnpollable { reason: &'a str }
        => Warn, None, "",
        "cannot poll the ICMP socket ({reason}); the ping tiebreak is off",
        "cannot poll the ICMP socket (…); the ping tiebreak is off",
        "ping nodes are configured but cannot be pinged";
    /// No ICMPv6 socket.
    Icmp6Unavailable { reason: &'a str }
        => Warn, None, "",
        "cannot open an ICMPv6 socket ({reason}); IPv6 ping nodes will count as unreachable",
        "cannot open an ICMPv6 socket (…); IPv6 ping nodes will count as unreachable",
        "IPv6 ping nodes cannot be pinged";
    /// Ping nodes are pinged.
    Pinging { count: usize, every: Dur, deadping: Dur }
        => Info, None, "",
        "pinging {count} ping node(s) every {every} (deadping {deadping})",
        "pinging N ping node(s) every I (deadping D)",
        "ha.cf's ping nodes are in use";
    /// An ICMPv6 receive failed.
    Icmp6ReceiveFailed { reason: &'a str }
        => Warn, None, "",
        "ICMPv6 receive failed: {reason}",
        "ICMPv6 receive failed: …",
        "the ICMPv6 socket returned an error (retried)";
    /// An ICMP receive failed.
    IcmpReceiveFailed { reason: &'a str }
        => Warn, None, "",
        "ICMP receive failed: {reason}",
        "ICMP receive failed: …",
        "the ICMP socket returned an error (retried)";
    /// The number of reachable ping nodes changed.
    PingReachable { reachable: u32, total: usize }
        => Info, None, "",
        "ping nodes: {reachable} of {total} reachable",
        "ping nodes: N of M reachable",
        "the ping tiebreak's count changed";

    // ---- The start-up release of leftovers (docs/operations.md).
    /// No resource was left up by a previous had.
    LeftoversNone { ms: u64 }
        => Info, None, "",
        "start-up probe: no resource left up by a previous had",
        "start-up probe: no resource left up by a previous had",
        "at start: nothing to release before joining";
    /// A resource left up is released before joining.
    LeftoverReleasing { group: &'a str, resource: &'a str, why: &'a str }
        => Warn, None, "",
        "releasing {resource} (group {group}) before joining the cluster: {why}",
        "releasing R (group K) before joining the cluster: left running by a previous had that did not stop it",
        "at start: a resource a killed `had` left up is stopped before this node takes part";
    /// A group left up could not be released.
    LeftoverStuck { group: &'a str, reason: &'a str }
        => Error, None, "",
        "resource group {group} was left up by a previous had and cannot be released ({reason}): it stays stop_failed here and is not started on either node until an admin stops it and runs `hactl cleanup`",
        "resource group K was left up by a previous had and cannot be released (…): …",
        "at start: stopping a leftover failed; the group stays `stop_failed`";
    /// The start-up release is over.
    LeftoversDone { found: usize, failed: usize, ms: u64 }
        => Info, None, "",
        "start-up probe: {found} leftover resource(s) found, {failed} group(s) could not be released",
        "start-up probe: N leftover resource(s) found, M group(s) could not be released",
        "the start-up release is over; a group that could not be released stays `stop_failed` (its own error line says which)";

    // ---- The guard (a second process releasing what had holds if had dies).
    /// The guard runs.
    GuardStarted { pid: u32 }
        => Info, None, "",
        "guard: started (pid {pid}): it releases what had holds if had dies without stopping",
        "guard: started (pid P): …",
        "had's guard runs";
    /// The guard could not start.
    GuardCannotStart { reason: &'a str }
        => Warn, None, "",
        "guard: cannot start ({reason}); had runs without it: if had is killed, what it holds stays up until had is started again",
        "guard: cannot start (…)",
        "had runs without a guard: what it holds would stay up if it were killed, until its next start";
    /// The guard stopped reading.
    GuardNotReading { bytes: usize }
        => Warn, None, "",
        "guard: not reading ({bytes} bytes waiting); had goes on without it",
        "guard: not reading (N bytes waiting); had goes on without it",
        "the guard is stuck: had drops it and runs without one";
    /// The guard is gone.
    GuardGone { reason: &'a str }
        => Warn, None, "",
        "guard: gone ({reason}); had goes on without it: if had is killed, what it holds stays up until had is started again",
        "guard: gone (…)",
        "the guard died: had runs without one";
    /// The guard got a line it cannot read.
    GuardBadMessage { reason: &'a str }
        => Warn, None, "",
        "guard: unreadable message from had ignored: {reason}",
        "guard: unreadable message from had ignored: …",
        "a bug: had wrote something its guard does not understand";
    /// The guard cannot build a resource it was told about.
    GuardCannotBuild { resource: &'a str, group: &'a str, reason: &'a str }
        => Error, None, "",
        "guard: cannot build {resource} of group {group}: {reason}; it would not be released if had died",
        "guard: cannot build R of group K: …",
        "the guard could not prepare R: if had dies, R stays up";
    /// had stopped cleanly.
    GuardCleanStop {}
        => Info, None, "",
        "guard: had stopped cleanly; nothing to release",
        "guard: had stopped cleanly; nothing to release",
        "the guard's end after a graceful stop";
    /// had died holding nothing.
    GuardNothingHeld { pid: u32, ended: &'a str }
        => Info, None, "",
        "guard: had (pid {pid}) ended without stopping ({ended}); it held nothing",
        "guard: had (pid P) ended without stopping (…); it held nothing",
        "had died, but it held nothing";
    /// had died holding resources.
    GuardReleasing { pid: u32, ended: &'a str, count: usize }
        => Warn, None, "",
        "guard: had (pid {pid}) ended without stopping ({ended}); releasing the {count} resource(s) it held, addresses first",
        "guard: had (pid P) ended without stopping (…); releasing the N resource(s) it held, addresses first",
        "had died without stopping (kill -9, abort): its guard releases what it held";
    /// The guard has no runtime.
    GuardNoRuntime { reason: &'a str }
        => Error, None, "",
        "guard: cannot start a runtime to release resources: {reason}; they stay up",
        "guard: cannot start a runtime to release resources: …; they stay up",
        "the guard could not release anything";
    /// The guard has no child reaper.
    GuardNoReaper { reason: &'a str }
        => Warn, None, "",
        "guard: no child reaper ({reason}); scripts may fail to stop",
        "guard: no child reaper (…); scripts may fail to stop",
        "the guard runs scripts without a reaper";
    /// A resource the guard could not build cannot be released.
    GuardUnbuilt { resource: &'a str, group: &'a str }
        => Error, None, "",
        "guard: {resource} of group {group} cannot be released (it could not be built)",
        "guard: R of group K cannot be released (it could not be built)",
        "the guard had no way to stop R";
    /// The guard released one resource.
    GuardReleased { resource: &'a str, group: &'a str, ms: u64, after_ms: u64 }
        => Warn, None, "",
        "guard: released {resource} (group {group}) in {ms} ms, {after_ms} ms after had's end",
        "guard: released R (group K) in N ms, M ms after had's end",
        "had died without stopping (kill -9, abort): its guard released R (docs/operations.md)";
    /// The guard's summary.
    GuardDone { released: usize, ms: u64 }
        => Warn, None, "",
        "guard: released {released} resource(s) in {ms} ms; exiting",
        "guard: released N resource(s) in T ms; exiting",
        "the guard's summary after had's death";
    /// The guard's summary when some stop failed.
    GuardDoneFailed { released: usize, failed: usize, ms: u64 }
        => Error, None, "",
        "guard: released {released} resource(s), {failed} could not be released (see above) in {ms} ms; exiting",
        "guard: released N resource(s), M could not be released (see above) in T ms; exiting",
        "the guard's summary when a stop failed";

    // ---- The resource agents (ha-agents): what one resource did, below its group's lines.
    /// An IP address was added.
    AddressAdded { resource: &'a str, iface: &'a str, addr: IpAddr, prefix: u8 }
        => Info, None, "",
        "added {addr}/{prefix}",
        "added A/P",
        "an IPaddr/IPaddr2/IPv6addr resource put its address on IF (the `IFACE` field)";
    /// An IP address was removed.
    AddressRemoved { resource: &'a str, addr: IpAddr }
        => Info, None, "",
        "removed {addr}",
        "removed A",
        "an address resource took its address off (wherever the interface rule found it)";
    /// An address without an interface goes where its subnet is.
    AddressPlaced { resource: &'a str, flavour: &'a str, vip: IpAddr, iface: &'a str, subnet: IpAddr, prefix: u8 }
        => Info, None, "",
        "{flavour} {vip}: no interface given, using {iface} (subnet {subnet}/{prefix})",
        "IPaddr A: no interface given, using IF (subnet S/P)",
        "the resource names no interface: the one whose subnet holds the address is used";
    /// The first announcement of an address just added could not be sent.
    ArpStartFailed { resource: &'a str, reason: &'a str }
        => Warn, None, "",
        "gratuitous ARP failed: {reason}",
        "gratuitous ARP failed: …",
        "an address was added but not announced (no packet socket, link down): it stays, peers learn its MAC when their ARP caches expire";
    /// A later packet of the announcement bursts failed.
    ArpBurstFailed { failed: usize, reason: &'a str }
        => Warn, None, "",
        "gratuitous ARP failed for {failed} address(es): {reason}",
        "gratuitous ARP failed for N address(es): R: …",
        "one round of a burst (had.toml's `[arp] count`) could not be sent for some addresses; the first one's error is shown";
    /// The periodic re-announcement fails.
    ArpRefreshFailed { failed: usize, reason: &'a str }
        => Warn, None, "",
        "gratuitous ARP refresh failed for {failed} address(es): {reason}",
        "gratuitous ARP refresh failed for N address(es): R: …",
        "the periodic re-announcement (had.toml's `[arp] refresh`) failed; logged once per failure streak";
    /// The periodic re-announcement is sent again.
    ArpRefreshWorks {}
        => Info, None, "",
        "gratuitous ARP refresh works again",
        "gratuitous ARP refresh works again",
        "the end of a failure streak of the re-announcement";
    /// A file system was mounted.
    Mounted { resource: &'a str, device: &'a str, mountpoint: &'a str }
        => Info, None, "",
        "mounted {device} on {mountpoint}",
        "mounted DEV on DIR",
        "a Filesystem resource started";
    /// A file system was unmounted.
    Unmounted { resource: &'a str, mountpoint: &'a str }
        => Info, None, "",
        "unmounted {mountpoint}",
        "unmounted DIR",
        "a Filesystem resource stopped";
    /// A file system to unmount is busy.
    UnmountBusy { resource: &'a str, mountpoint: &'a str }
        => Warn, None, "",
        "{mountpoint} is busy; retrying",
        "DIR is busy; retrying",
        "a process still uses the file system: the unmount is tried every second until the stop timeout (never detached lazily)";
    /// A script's status says it runs: its start is skipped.
    ScriptRunning { resource: &'a str }
        => Info, None, "",
        "already running; not starting",
        "already running; not starting",
        "a script resource's status says it runs, so its `start` is not called (as Heartbeat does)";
    /// `drbdadm primary` failed and is tried again (or the start fails after the last try).
    DrbdPrimaryFailed { resource: &'a str, res: &'a str, reason: &'a str, attempt: u32, attempts: u32 }
        => Warn, None, "",
        "drbdadm primary {res} failed: {reason} (attempt {attempt} of {attempts})",
        "drbdadm primary RES failed: … (attempt N of M)",
        "the DRBD resource could not be promoted (the peer still Primary, a resync): tried again until attempt M, then the start fails";
    /// MailTo found no sendmail.
    MailToNoSendmail { resource: &'a str, what: &'a str, candidates: &'a str, to: &'a str }
        => Warn, None, "",
        "MailTo: no sendmail ({candidates}); not mailing \"{what}\" to {to}",
        "MailTo: no sendmail (…); not mailing \"WHAT\" to ADDR",
        "MailTo needs a local sendmail; takeover and release go on without the mail";
    /// MailTo sent its mail.
    MailToSent { resource: &'a str, what: &'a str, to: &'a str }
        => Info, None, "",
        "MailTo: mailed \"{what}\" to {to}",
        "MailTo: mailed \"WHAT\" to ADDR",
        "a MailTo resource mailed a takeover or a release";
    /// sendmail exited with an error.
    MailToRefused { resource: &'a str, sendmail: &'a str, status: &'a str, reason: &'a str }
        => Warn, None, "",
        "MailTo: {sendmail} {status}: {reason}",
        "MailTo: /usr/sbin/sendmail exit status: N: …",
        "sendmail refused the mail (its last lines of stderr); the resource does not fail";
    /// sendmail could not be run.
    MailToFailed { resource: &'a str, reason: &'a str }
        => Warn, None, "",
        "MailTo: {reason}",
        "MailTo: …",
        "sendmail could not be started or timed out; the resource does not fail";
    /// Reaping children failed.
    WaitpidFailed { reason: &'a str }
        => Warn, None, "",
        "waitpid failed: {reason}",
        "waitpid failed: …",
        "a bug or a system in trouble: a script's end may go unnoticed until its timeout";
    /// A timed-out script's processes could not be killed.
    KillFailed { pid: i32, reason: &'a str }
        => Warn, None, "",
        "cannot kill timed-out process group {pid}: {reason}",
        "cannot kill timed-out process group P: …",
        "a script that timed out may still run";

    // ---- The transport's IO threads and the signing of packets.
    /// A heartbeat could not be sent.
    SendFailed { to: SocketAddr, link: &'a str, reason: &'a str }
        => Warn, None, "",
        "unable to send heartbeat packet to {to} on {link}: {reason}",
        "unable to send heartbeat packet to ADDR on LINK: …",
        "a destination is unreachable (no route, link down; a serial port shows ADDR 0.0.0.0:0); at most one line a minute per destination, by the transport's own count";
    /// A heartbeat could not be sent, again, after a minute with failures not written.
    SendFailedAgain { to: SocketAddr, link: &'a str, reason: &'a str, suppressed: u64 }
        => Warn, None, "",
        "unable to send heartbeat packet to {to} on {link}: {reason} ({suppressed} more failure(s) since the last line)",
        "unable to send heartbeat packet to ADDR on LINK: … (N more failure(s) since the last line)",
        "the same, with the failures not written since the previous line to that destination";
    /// A socket could not join the receive thread.
    ReceiveSocketFailed { medium: usize, reason: &'a str }
        => Error, None, "",
        "receive thread: medium {medium}: {reason}",
        "receive thread: medium N: …",
        "a heartbeat medium's socket could not be registered with the receive thread: nothing is received on it";
    /// A packet went out unsigned.
    UnsignedSend { key: u8 }
        => Error, None, "",
        "no key for the active auth index; sending unsigned (index {key})",
        "no key for the active auth index; sending unsigned (index K)",
        "a bug: the checked authkeys always has its active key; the peer drops such packets";
}

/// Writes a line: the one place where a catalogue event becomes text, fields and a level.
/// Lines a packet can trigger come here through `NetLog::emit`, which asks the limiter first.
pub fn log(ev: &LogEvent<'_>) {
    let e = ev.entry();
    let f = ev.fields();
    let (node, group, resource, link, iface, from, reason, ms) = (
        f.node.as_deref(),
        f.group.as_deref(),
        f.resource.as_deref(),
        f.link.as_deref(),
        f.iface.as_deref(),
        f.from.as_deref(),
        f.reason.as_deref(),
        f.ms.as_deref(),
    );
    macro_rules! emit {
        ($mac:ident) => {
            tracing::$mac!(node, group, resource, link, iface, from, reason, ms, "{ev}")
        };
    }
    match e.level {
        Level::Error => emit!(error),
        Level::Warn => emit!(warn),
        Level::Info => emit!(info),
    }
}

/// docs/logs.md's table, rendered from [`ENTRIES`].
pub fn render_table() -> String {
    let mut s = String::from("| line | level | limit | meaning |\n|---|---|---|---|\n");
    for e in ENTRIES {
        let pattern = if e.pattern.contains('`') {
            format!("`` {} ``", e.pattern)
        } else {
            format!("`{}`", e.pattern)
        };
        s.push_str(&format!(
            "| {pattern} | {} | {} | {} |\n",
            e.level.as_str(),
            e.limit.as_str(),
            e.meaning.replace('|', "\\|")
        ));
    }
    s
}

/// The markers around the generated table in docs/logs.md.
pub const BEGIN: &str = "<!-- BEGIN log catalogue: generated from crates/core/src/logcat.rs -->";
/// See [`BEGIN`].
pub const END: &str = "<!-- END log catalogue -->";

#[cfg(test)]
#[path = "logcat_once.rs"]
mod once;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_entry_has_text() {
        let mut ids: Vec<&str> = ENTRIES.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "a variant declared twice");
        for e in ENTRIES {
            assert!(!e.pattern.is_empty() && !e.meaning.is_empty(), "{}", e.id);
            assert_eq!(
                e.limit == Limit::None,
                e.summary.is_empty(),
                "{}: a limited line needs a summary label, only those",
                e.id
            );
        }
        println!("{n} catalogue entries");
    }

    #[test]
    fn peer_values_are_escaped_by_the_catalogue() {
        let node = NodeName::from("node2");
        let ev = LogEvent::MalformedMessage {
            kind: Peer("resource\nFAKE: Comm up\x1b[2J"),
            node: &node,
        };
        let s = ev.to_string();
        assert_eq!(
            s,
            "malformed resource\\nFAKE: Comm up\\x1b[2J message from node2: ignored"
        );
        let long = "x".repeat(500);
        let s = LogEvent::PeerMessage {
            kind: Peer(&long),
            node: &node,
            input: Peer(""),
        }
        .to_string();
        assert!(s.len() < 120, "{s}");
    }

    #[test]
    fn fields_follow_field_names() {
        let node = NodeName::from("node2");
        let f = LogEvent::LinkDead {
            node: &node,
            link: "eth1",
        }
        .fields();
        assert_eq!(f.node.as_deref(), Some("node2"));
        assert_eq!(f.link.as_deref(), Some("eth1"));
        assert_eq!(f.group, None);
        let f = LogEvent::AddressAdded {
            resource: "IPaddr::10.0.0.10",
            iface: "eth0",
            addr: IpAddr::from([10, 0, 0, 10]),
            prefix: 24,
        }
        .fields();
        assert_eq!(f.iface.as_deref(), Some("eth0"));
        assert_eq!(f.resource.as_deref(), Some("IPaddr::10.0.0.10"));
    }

    /// The catalogue holds only if nothing else writes an info, warn or error line: every
    /// source file of the daemon, the agents and the transport (and the node, limiter and
    /// signing that run in the daemon from here) is read, and a `info!`/`warn!`/`error!`
    /// outside this file fails the test (debug and trace lines stay free-form). Test files
    /// are read too: none writes such a line, and a test that did would hide a real one.
    #[test]
    fn no_admin_visible_line_is_written_outside_the_catalogue() {
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = [
            "../daemon/src",
            "../agents/src",
            "../transport/src",
            "src/auth",
        ]
        .map(|d| here.join(d))
        .into();
        files.extend(["node.rs", "netlog.rs", "logcat_once.rs"].map(|f| here.join("src").join(f)));
        let mut offenders = Vec::new();
        let mut seen = 0;
        while let Some(p) = files.pop() {
            if p.is_dir() {
                for e in std::fs::read_dir(&p).expect("reading src").flatten() {
                    files.push(e.path());
                }
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p.ends_with("logcat.rs") {
                continue;
            }
            seen += 1;
            let text = std::fs::read_to_string(&p).expect("reading a source file");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if ["info!(", "warn!(", "error!("]
                    .iter()
                    .any(|m| code.contains(m) && !code.contains(&format!("_{m}")))
                {
                    offenders.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(seen > 20, "only {seen} source files found");
        assert!(
            offenders.is_empty(),
            "lines written outside the catalogue (add a LogEvent variant):\n{}",
            offenders.join("\n")
        );
    }

    /// docs/logs.md's table must be the catalogue's: regenerate it with
    /// `HAD_WRITE_DOCS=1 cargo test -p ha-core --lib logcat::tests::docs_logs_md`.
    #[test]
    fn docs_logs_md_is_generated_from_the_catalogue() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/logs.md");
        let doc = std::fs::read_to_string(&path).expect("docs/logs.md");
        let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
            panic!("docs/logs.md lacks the markers {BEGIN} / {END}");
        };
        let want = format!("{}{BEGIN}\n{}{}", &doc[..b], render_table(), &doc[e..]);
        if want == doc {
            return;
        }
        if std::env::var_os("HAD_WRITE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("writing docs/logs.md");
            return;
        }
        let old: Vec<&str> = doc.lines().collect();
        let new: Vec<&str> = want.lines().collect();
        let mut diff = String::new();
        for l in old.iter().filter(|l| !new.contains(l)) {
            diff.push_str(&format!("- {l}\n"));
        }
        for l in new.iter().filter(|l| !old.contains(l)) {
            diff.push_str(&format!("+ {l}\n"));
        }
        panic!(
            "docs/logs.md differs from the log catalogue (crates/core/src/logcat.rs):\n{diff}\n\
             regenerate it with: HAD_WRITE_DOCS=1 cargo test -p ha-core --lib \
             logcat::tests::docs_logs_md"
        );
    }
}
