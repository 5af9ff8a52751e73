//! `hactl status` (human, `--json`, `--watch`) and `hactl log`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ha_control::{Request, Snapshot};

use crate::client::{self, ClientError, exit};

/// Fetch the daemon's snapshot.
pub fn fetch(socket: &Path) -> Result<Snapshot, ClientError> {
    let resp = client::request(socket, &Request::Status, Duration::from_secs(10))?;
    match (resp.ok, resp.status) {
        (true, Some(s)) => Ok(s),
        _ => Err(ClientError::Failed(
            resp.error
                .unwrap_or_else(|| "no status in the answer".into()),
        )),
    }
}

/// `hactl status [--json] [--watch SECS]`.
pub fn status(socket: &Path, json: bool, watch: Option<f64>) -> u8 {
    let Some(every) = watch else {
        return match fetch(socket) {
            Ok(s) => print_status(&s, json),
            Err(e) => fail(&e),
        };
    };
    let every = Duration::from_secs_f64(every.clamp(0.1, 3600.0));
    loop {
        match fetch(socket) {
            Ok(s) => {
                if !json {
                    // Clear the screen and home the cursor, as `watch` does.
                    print!("\x1b[2J\x1b[H");
                }
                let code = print_status(&s, json);
                if code != exit::OK {
                    return code;
                }
            }
            // A watcher keeps going while had restarts; say so instead of exiting.
            Err(e) => {
                if !json {
                    print!("\x1b[2J\x1b[H");
                }
                eprintln!("hactl: {}", e.message());
            }
        }
        std::thread::sleep(every);
    }
}

fn print_status(s: &Snapshot, json: bool) -> u8 {
    if json {
        match serde_json::to_string(s) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("hactl: {e}");
                return exit::FAIL;
            }
        }
    } else {
        print!("{}", s.render());
    }
    exit::OK
}

fn fail(e: &ClientError) -> u8 {
    eprintln!("hactl: {}", e.message());
    e.code()
}

/// `hactl log [--json] [-n N]`: the most recent transitions, oldest first.
pub fn log(socket: &Path, json: bool, last: usize) -> u8 {
    let s = match fetch(socket) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let skip = s.transitions.len().saturating_sub(last);
    let recent = &s.transitions[skip..];
    if json {
        for t in recent {
            match serde_json::to_string(t) {
                Ok(l) => println!("{l}"),
                Err(e) => {
                    eprintln!("hactl: {e}");
                    return exit::FAIL;
                }
            }
        }
        return exit::OK;
    }
    print!("{}", render_log(&s, skip));
    exit::OK
}

/// The log as text: time since had started, the time since the previous entry of the
/// same group (how long a start or stop took), group, what, why.
pub fn render_log(s: &Snapshot, skip: usize) -> String {
    let mut out = String::new();
    if s.transitions.is_empty() {
        let _ = writeln!(out, "no transitions yet on {}", s.node.name);
        return out;
    }
    for (i, t) in s.transitions.iter().enumerate().skip(skip) {
        let prev = s.transitions[..i].iter().rev().find(|p| p.group == t.group);
        let took = prev
            .map(|p| format!("+{} ms", t.at_ms.saturating_sub(p.at_ms)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>10.3} s {:>10}  {:<12} {}  ({})",
            t.at_ms as f64 / 1000.0,
            took,
            t.what,
            t.group,
            t.reason
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha_control::TransitionEntry;

    fn entry(at_ms: u64, what: &str) -> TransitionEntry {
        TransitionEntry {
            at_ms,
            group: "IPaddr::198.18.0.100".into(),
            what: what.into(),
            reason: "node2 is dead".into(),
        }
    }

    #[test]
    fn log_lines_carry_the_time_since_the_groups_previous_entry() {
        let json = r#"{"schema":1,"version":"0","node":{"name":"node1","status":"active","pid":1,
            "uptime_ms":0,"generation":1,"standby":false,"shutting_down":false,"auto_failback":"on",
            "keepalive_ms":1000,"deadtime_ms":5000},"peer":{"name":"node2","status":"dead",
            "last_heard_ms":null,"deadtime_ms":5000,"generation":null,"links":[],"rsc_hold":null,
            "stable":null},"groups":[],"packets":{"sent":0,"received":0,"dropped":{},"late":0},
            "transitions":[]}"#;
        let mut s: Snapshot = serde_json::from_str(json).expect("an older daemon's status parses");
        assert!(s.nodes.is_empty());
        assert!(render_log(&s, 0).contains("no transitions yet"));
        s.transitions = vec![entry(3200, "starting"), entry(3214, "running")];
        let text = render_log(&s, 0);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("3.200 s") && lines[0].contains("starting"),
            "{text}"
        );
        assert!(
            lines[1].contains("+14 ms") && lines[1].contains("(node2 is dead)"),
            "{text}"
        );
        assert_eq!(
            render_log(&s, 1).lines().count(),
            1,
            "skip keeps the newest"
        );
    }
}
