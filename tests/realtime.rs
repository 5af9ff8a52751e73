//! `realtime on` (the default): had's heartbeat threads (the loop's and `had-recv`) run SCHED_RR
//! with memory locked, while
//! its agents' thread and every process an agent starts run SCHED_OTHER; `hactl status` says
//! which class it got (or why not). Also prints idle RSS with realtime on and off.
//! Needs root; with HA_REQUIRE_LAB=1 it fails instead of skipping.

mod common;

use std::time::Duration;

use common::{Cluster, Setup};
use nix::sys::signal::Signal;

/// The `policy` number in /proc/.../sched (0 = SCHED_OTHER, 2 = SCHED_RR).
fn policy(sched_path: &str) -> Option<i32> {
    let text = std::fs::read_to_string(sched_path).ok()?;
    text.lines()
        .find(|l| l.starts_with("policy"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn heartbeat_thread_is_realtime_and_agents_children_are_not() {
    if !ha_lab::lab_available("realtime") {
        return;
    }
    let mut c = Cluster::start(&Setup::default()).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(20));
    let pid = c.lab.node("node1").had_pid().expect("had runs");

    let json = c.status_json("node1").expect("status");
    let rt = &json["node"]["realtime"];
    eprintln!("hactl status realtime: {rt}");
    assert_eq!(rt["requested"], true, "{json}");
    let main_policy = policy(&format!("/proc/{pid}/task/{pid}/sched"));
    let granted = rt["warning"].is_null();
    if granted {
        assert_eq!(rt["policy"], "SCHED_RR");
        assert_eq!(rt["memory_locked"], true);
        assert_eq!(main_policy, Some(2), "the heartbeat thread runs SCHED_RR");
    } else {
        // No CAP_SYS_NICE or RLIMIT_MEMLOCK here: one warning, and had runs on.
        eprintln!("realtime not granted here: {}", rt["warning"]);
        assert!(c.log("node1").contains("realtime:"), "{}", c.logs());
    }
    let text = c
        .lab
        .node("node1")
        .hactl(&c.hactl, &["status"])
        .expect("hactl status");
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("Scheduling: heartbeat thread"),
        "hactl status shows the class:\n{text}"
    );

    // The receive thread is the other half of the heartbeat path; every other thread of had
    // runs SCHED_OTHER, the agents' thread included.
    let mut agents_thread = false;
    let mut recv_thread = false;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let t = t.expect("task").file_name().to_string_lossy().to_string();
        if t == pid.to_string() {
            continue;
        }
        let comm =
            std::fs::read_to_string(format!("/proc/{pid}/task/{t}/comm")).unwrap_or_default();
        agents_thread |= comm.trim() == "had-agents";
        if comm.trim() == "had-recv" {
            recv_thread = true;
            assert_eq!(
                policy(&format!("/proc/{pid}/task/{t}/sched")),
                Some(if granted { 2 } else { 0 }),
                "the receive thread runs in the heartbeat loop's class"
            );
            continue;
        }
        assert_eq!(
            policy(&format!("/proc/{pid}/task/{t}/sched")),
            Some(0),
            "thread {t} ({}) must run SCHED_OTHER",
            comm.trim()
        );
    }
    assert!(
        agents_thread,
        "group operations run on the had-agents thread"
    );
    assert!(recv_thread, "had has its receive thread");

    // The web service, started by an agent of had, runs SCHED_OTHER.
    let out = c
        .lab
        .node("node1")
        .exec("cat /run/web-*.pid")
        .expect("read pidfile");
    let web: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("web pid");
    assert_eq!(
        policy(&format!("/proc/{web}/sched")),
        Some(0),
        "the web service must not inherit the realtime class"
    );
    assert_eq!(status_kb(web, "VmLck:"), 0, "nor locked memory");

    // Idle RSS on the passive node, realtime on, then off.
    std::thread::sleep(Duration::from_secs(3));
    let p2 = c.lab.node("node2").had_pid().expect("had on node2");
    let (rss_on, lck_on) = (status_kb(p2, "VmRSS:"), status_kb(p2, "VmLck:"));
    c.lab
        .node("node2")
        .signal_had(Signal::SIGTERM)
        .expect("stop");
    c.lab
        .node_mut("node2")
        .wait_had_exit(Duration::from_secs(10))
        .expect("node2 exits");
    Setup::default()
        .spec(&c.lab)
        .line("realtime off")
        .write_node(&c.lab, "node2", &ha_lab::Net::of(&c.lab))
        .expect("node2's configuration");
    c.start_node("node2").expect("node2 again");
    std::thread::sleep(Duration::from_secs(5));
    let p2 = c.lab.node("node2").had_pid().expect("had on node2");
    let rss_off = status_kb(p2, "VmRSS:");
    let off = c.status_json("node2").expect("status");
    assert_eq!(off["node"]["realtime"]["requested"], false, "{off}");
    assert_eq!(off["node"]["realtime"]["policy"], "SCHED_OTHER", "{off}");
    assert_eq!(
        policy(&format!("/proc/{p2}/task/{p2}/sched")),
        Some(0),
        "realtime off: the heartbeat thread stays SCHED_OTHER"
    );
    eprintln!(
        "idle RSS of had on the passive node: realtime on {rss_on} KiB (locked {lck_on} KiB), \
         off {rss_off} KiB"
    );
}
