//! `hactl status --nagios`: the monitoring-plugins convention (one line, perfdata after `|`,
//! exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), so Nagios/Icinga checks of a Heartbeat
//! cluster can call it in place of their `cl_status` scripts.

use std::fmt::Write as _;
use std::path::Path;

use ha_control::Snapshot;

use crate::client::ClientError;

/// Plugin states, in increasing severity; the value is the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Everything runs with a healthy peer.
    Ok = 0,
    /// Running, but without redundancy or with a failure held here.
    Warning = 1,
    /// A resource group runs nowhere, or had is not running.
    Critical = 2,
    /// The status could not be read.
    Unknown = 3,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

/// The plugin line and state for a status snapshot.
pub fn judge(s: &Snapshot) -> (State, String) {
    let mut state = State::Ok;
    let mut problems: Vec<String> = Vec::new();
    let mut raise = |st: State, why: String, state: &mut State| {
        *state = (*state).max(st);
        problems.push(why);
    };
    for g in &s.groups {
        if g.held_by.is_none() {
            raise(
                State::Critical,
                format!("group {} runs nowhere", g.key),
                &mut state,
            );
        } else if g.refused_here {
            raise(
                State::Warning,
                format!("group {} refused here ({})", g.key, g.state),
                &mut state,
            );
        }
    }
    if !matches!(s.peer.status.as_str(), "active" | "up") {
        raise(
            State::Warning,
            format!("peer {} {}", s.peer.name, s.peer.status),
            &mut state,
        );
    } else {
        for l in s.peer.links.iter().filter(|l| l.status != "up") {
            raise(
                State::Warning,
                format!("link {} {}", l.name, l.status),
                &mut state,
            );
        }
    }
    let here = s
        .groups
        .iter()
        .filter(|g| g.held_by.as_deref() == Some(s.node.name.as_str()))
        .count();
    let running = s.groups.iter().filter(|g| g.held_by.is_some()).count();
    let mut line = format!(
        "HAD {} - node {} {}{}, peer {} {}, {running}/{} group(s) running ({here} here)",
        state.word(),
        s.node.name,
        s.node.status,
        if s.node.standby { " standby" } else { "" },
        s.peer.name,
        s.peer.status,
        s.groups.len(),
    );
    if !problems.is_empty() {
        let _ = write!(line, ": {}", problems.join("; "));
    }
    // One line whatever a name holds: the convention reads the first line, perfdata after `|`.
    let mut line = clean(&line);
    let total = s.groups.len();
    let dropped: u64 = s.packets.dropped.values().sum();
    let _ = write!(
        line,
        " | groups_running={running};;{total}:;0;{total} groups_here={here};;;0;{total}"
    );
    if let Some(ms) = s.peer.last_heard_ms {
        let _ = write!(
            line,
            " peer_last_heard={:.3}s;;{:.3};0;",
            ms as f64 / 1000.0,
            s.peer.deadtime_ms as f64 / 1000.0
        );
    }
    let _ = write!(
        line,
        " sent={}c received={}c dropped={dropped}c late={}c",
        s.packets.sent, s.packets.received, s.packets.late
    );
    (state, line)
}

fn clean(text: &str) -> String {
    text.replace(['\n', '\r', '|'], " ")
}

/// `hactl status --nagios`: prints the line, returns the plugin exit code.
pub fn status(socket: &Path) -> u8 {
    let (state, line) = match crate::status::fetch(socket) {
        Ok(s) => judge(&s),
        // had is the monitored service: not running is critical, not unknown.
        Err(ClientError::NotRunning(m)) => (
            State::Critical,
            format!(
                "HAD CRITICAL - had is not running: {}",
                clean(first_line(&m))
            ),
        ),
        Err(e) => (
            State::Unknown,
            format!("HAD UNKNOWN - {}", clean(first_line(e.message()))),
        ),
    };
    println!("{line}");
    state as u8
}

fn first_line(m: &str) -> &str {
    m.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From JSON, as hactl receives it: fields added later with defaults need no change here.
    fn snap() -> Snapshot {
        serde_json::from_str(
            r#"{"schema":1,"version":"0","nodes":["node1","node2"],
            "node":{"name":"node1","status":"active","pid":1,"uptime_ms":1,"generation":1,
              "standby":false,"shutting_down":false,"auto_failback":"on","keepalive_ms":1000,
              "deadtime_ms":5000,"auth":"sha1"},
            "peer":{"name":"node2","status":"active","last_heard_ms":420,"deadtime_ms":5000,
              "generation":1,"links":[{"name":"eth0","status":"up","last_heard_ms":420}],
              "rsc_hold":null,"stable":true},
            "groups":[{"key":"IPaddr::198.18.0.100","preferred":"node1","state":"running",
              "held_by":"node1","refused_here":false,"resources":[]}],
            "packets":{"sent":10,"received":9,"dropped":{"bad_auth":2},"late":1},
            "transitions":[]}"#,
        )
        .expect("a snapshot")
    }

    #[test]
    fn healthy_pair_is_ok_with_perfdata() {
        let (st, line) = judge(&snap());
        assert_eq!(st, State::Ok);
        assert_eq!(
            line,
            "HAD OK - node node1 active, peer node2 active, 1/1 group(s) running (1 here) | groups_running=1;;1:;0;1 groups_here=1;;;0;1 peer_last_heard=0.420s;;5.000;0; sent=10c received=9c dropped=2c late=1c"
        );
    }

    #[test]
    fn lost_redundancy_warns_and_a_group_nowhere_is_critical() {
        let mut s = snap();
        s.peer.status = "dead".into();
        s.peer.last_heard_ms = None;
        let (st, line) = judge(&s);
        assert_eq!(st, State::Warning);
        assert!(line.starts_with("HAD WARNING - "), "{line}");
        assert!(line.contains(": peer node2 dead |"), "{line}");
        assert!(!line.contains("peer_last_heard"), "{line}");

        let mut s = snap();
        s.peer.links[0].status = "dead".into();
        assert_eq!(judge(&s).0, State::Warning);

        let mut s = snap();
        s.groups[0].held_by = None;
        s.groups[0].state = "failed".into();
        s.groups[0].refused_here = true;
        s.peer.status = "dead".into();
        let (st, line) = judge(&s);
        assert_eq!(st, State::Critical);
        assert!(
            line.contains("group IPaddr::198.18.0.100 runs nowhere"),
            "{line}"
        );

        let mut s = snap();
        s.groups[0].held_by = Some("node2".into());
        s.groups[0].refused_here = true;
        assert_eq!(judge(&s).0, State::Warning);
    }

    #[test]
    fn one_line_whatever_the_names_hold() {
        let mut s = snap();
        s.peer.name = "evil\nHAD OK | x=1".into();
        s.peer.status = "dead".into();
        let (_, line) = judge(&s);
        assert!(!line.contains('\n'));
        assert_eq!(line.matches('|').count(), 1, "{line}");
    }
}
