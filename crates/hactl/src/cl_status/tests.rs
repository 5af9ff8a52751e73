//! `cl_status` answers from a fixed snapshot: texts and exit codes as Heartbeat's tool.

use super::fixture::{Fixed, snap};
use super::*;

fn run_with(s: Option<Snapshot>, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run(&args, &mut Fixed { snap: s })
}

#[test]
fn hbstatus_running_and_stopped() {
    let r = run_with(Some(snap(true, "up")), &["hbstatus"]);
    assert_eq!(r.stdout, "Heartbeat is running on this machine.\n");
    assert_eq!(r.code, 0);
    let r = run_with(None, &["hbstatus"]);
    assert_eq!(r.stdout, "Heartbeat is stopped on this machine.\n");
    assert_eq!(r.code, 1);
}

#[test]
fn nodes_links_and_their_exit_codes() {
    let s = Some(snap(true, "up"));
    assert_eq!(run_with(s.clone(), &["listnodes"]).stdout, "node2\nnode1\n");
    let r = run_with(s.clone(), &["nodestatus", "-m", "node2"]);
    assert_eq!(r.stdout, "The cluster node node2 is active\n");
    assert_eq!(r.code, 0);
    let r = run_with(s.clone(), &["nodestatus", "nosuch"]);
    assert_eq!((r.stdout.as_str(), r.code), ("", 11));
    assert_eq!(r.stderr, "Error. May be due to incorrect node name\n");
    assert_eq!(
        run_with(s.clone(), &["nodetype", "node2"]).stdout,
        "normal\n"
    );
    assert_eq!(
        run_with(s.clone(), &["listhblinks", "-v", "node2"]).stdout,
        "\teth0\tup\n"
    );
    let r = run_with(Some(snap(true, "dead")), &["hblinkstatus", "node2", "eth0"]);
    assert_eq!((r.stdout.as_str(), r.code), ("dead\n", 1));
    let r = run_with(s.clone(), &["hblinkstatus", "node2", "eth9"]);
    assert_eq!(r.code, 13);
    let r = run_with(s, &["hblinkstatus", "node2"]);
    assert_eq!(r.code, 11);
}

#[test]
fn rscstatus_uses_heartbeats_flags() {
    assert_eq!(
        run_with(Some(snap(true, "up")), &["rscstatus"]).stdout,
        "local\n"
    );
    assert_eq!(
        run_with(Some(snap(false, "up")), &["rscstatus"]).stdout,
        "none\n"
    );
    let mut s = snap(true, "up");
    s.node.name = "node2".into();
    s.peer.name = "node1".into();
    s.groups[0].held_by = Some("node2".into());
    assert_eq!(
        run_with(Some(s.clone()), &["rscstatus", "-m"]).stdout,
        "This node is holding all resources.\n"
    );
    s.groups[0].state = "starting".into();
    assert_eq!(run_with(Some(s), &["rscstatus"]).stdout, "transition\n");
}

#[test]
fn hbparameter_and_parameter_errors() {
    let s = Some(snap(true, "up"));
    assert_eq!(
        run_with(s.clone(), &["hbparameter", "-p", "keepalive"]).stdout,
        "500ms\n"
    );
    assert_eq!(
        run_with(s.clone(), &["hbparameter", "-mpkeepalive"]).stdout,
        "Heartbeat parameter keepalive's value: 500ms\n"
    );
    assert_eq!(run_with(s.clone(), &["hbparameter", "-p", "nope"]).code, 1);
    assert_eq!(run_with(s.clone(), &["hbparameter"]).code, 11);
    assert_eq!(run_with(s.clone(), &["listnodes", "-x"]).code, 11);
    assert_eq!(run_with(s, &["frobnicate"]).code, 11);
    let r = run_with(None, &["nodestatus", "node1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Cannot signon with heartbeat"),
        "{}",
        r.stderr
    );
    assert!(run_with(None, &[]).stdout.starts_with("Usage: cl_status"));
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}
