//! End to end, issue 5: what an operator does with a running cluster besides "a node died":
//! split brain and its healing, standby and takeover, reload, `cl_status`, ping nodes.
//! Needs root; with HA_REQUIRE_LAB=1 it fails instead of skipping.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Setup, time_to};

const PROBE: Duration = Duration::from_millis(20);

/// Fast timers, so partition tests do not sit out seconds of deadtime.
fn fast(auto_failback: &'static str) -> Setup {
    Setup {
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "2",
        auto_failback,
        ..Setup::default()
    }
}

fn had_pid(c: &Cluster, n: &str) -> u32 {
    match c.lab.node(n).had_pid() {
        Some(p) => p,
        None => panic!("had is not running on {n}\n{}", c.logs()),
    }
}

/// Wait until both nodes see each other as active.
fn wait_joined(c: &Cluster, timeout: Duration) {
    let ok = c.lab.wait_until(timeout, || {
        ["node1", "node2"].iter().all(|n| {
            c.status_json(n)
                .map(|s| s["peer"]["status"] == "active" && s["node"]["status"] == "active")
                .unwrap_or(false)
        })
    });
    assert!(ok.is_some(), "the nodes did not join\n{}", c.logs());
}

fn hactl(c: &Cluster, n: &str, args: &[&str]) -> std::process::Output {
    match c.lab.node(n).hactl(&c.hactl, args) {
        Ok(o) => o,
        Err(e) => panic!("hactl {args:?} on {n}: {e:#}"),
    }
}

#[test]
fn split_brain_heals_to_one_node_without_restart() {
    if !ha_lab::lab_available("split_brain_heals") {
        return;
    }
    for af in ["on", "off"] {
        let c = Cluster::start(&fast(af)).expect("cluster starts");
        c.expect_served_by("node1", Duration::from_secs(15));
        wait_joined(&c, Duration::from_secs(10));
        let pids = (had_pid(&c, "node1"), had_pid(&c, "node2"));

        // Every link dies: each node declares the other dead and takes the group (Heartbeat's
        // behaviour too; without quorum there is nothing better to do).
        c.lab.node("node1").cut_link().expect("cut node1");
        c.lab.node("node2").cut_link().expect("cut node2");
        let both = c.lab.wait_until(c.deadtime + Duration::from_secs(5), || {
            c.lab.node("node1").has_addr(c.vip) && c.lab.node("node2").has_addr(c.vip)
        });
        assert!(
            both.is_some(),
            "auto_failback {af}: both nodes should hold the VIP while partitioned\n{}",
            c.logs()
        );

        let healed = Instant::now();
        c.lab.node("node1").restore_link().expect("restore node1");
        c.lab.node("node2").restore_link().expect("restore node2");
        let one = c.lab.wait_until(c.deadtime + Duration::from_secs(2), || {
            c.lab.node("node1").has_addr(c.vip) != c.lab.node("node2").has_addr(c.vip)
        });
        let took = healed.elapsed();
        assert!(
            one.is_some(),
            "auto_failback {af}: VIP not on exactly one node {took:?} after the heal\n{}",
            c.logs()
        );
        // It stays that way (no late flap), on the preferred node, served.
        std::thread::sleep(Duration::from_secs(2));
        assert!(c.lab.node("node1").has_addr(c.vip), "{}", c.logs());
        assert!(!c.lab.node("node2").has_addr(c.vip), "{}", c.logs());
        c.expect_served_by("node1", Duration::from_secs(3));
        assert_eq!(
            (had_pid(&c, "node1"), had_pid(&c, "node2")),
            pids,
            "a daemon restarted"
        );
        eprintln!("split brain (auto_failback {af}): one holder {took:?} after the heal");
    }
}

/// Run a hactl command that must succeed; its stdout.
fn hactl_ok(c: &Cluster, n: &str, args: &[&str]) -> String {
    let o = hactl(c, n, args);
    assert!(
        o.status.success(),
        "hactl {args:?} on {n} failed ({:?}): {}{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        c.logs()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Wait until neither node has a group starting or stopping (the next admin command would
/// otherwise be refused as "in transition").
fn wait_settled(c: &Cluster) {
    let ok = c.lab.wait_until(Duration::from_secs(10), || {
        ["node1", "node2"].iter().all(|n| {
            c.status_json(n).is_ok_and(|s| {
                s["groups"].as_array().is_some_and(|gs| {
                    gs.iter()
                        .all(|g| g["state"] == "running" || g["state"] == "stopped")
                }) && s["peer"]["stable"] != false
            })
        })
    });
    assert!(ok.is_some(), "the cluster did not settle\n{}", c.logs());
}

/// One planned move: run `hactl args` on `on`, wait until `to` serves, report the gap.
fn planned_move(c: &Cluster, on: &str, args: &[&str], to: &str) -> Duration {
    wait_settled(c);
    let probe = c.lab.probe(c.vip, 80, PROBE);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    hactl_ok(c, on, args);
    c.expect_served_by(to, Duration::from_secs(5));
    let took = time_to(&probe, to, t0).expect("the prober saw the new node");
    std::thread::sleep(Duration::from_millis(200));
    let samples = probe.stop();
    let gap = ha_lab::max_gap_after(&samples, t0).unwrap_or_default();
    let failed = samples
        .iter()
        .filter(|s| s.sent >= t0 && s.result.is_err())
        .count();
    eprintln!(
        "`hactl {}` on {on}: served by {to} after {took:?}, client gap {gap:?}, {failed} failed probe(s)",
        args.join(" ")
    );
    // No deadtime in a planned move: release + acquire only. Generous bound for CI noise.
    assert!(
        took < Duration::from_secs(2),
        "planned move took {took:?}\n{}",
        c.logs()
    );
    gap
}

#[test]
fn standby_and_takeover_move_the_group_both_ways() {
    if !ha_lab::lab_available("standby_takeover") {
        return;
    }
    for af in ["on", "off"] {
        let c = Cluster::start(&fast(af)).expect("cluster starts");
        c.expect_served_by("node1", Duration::from_secs(15));
        wait_joined(&c, Duration::from_secs(10));
        eprintln!("auto_failback {af}:");

        planned_move(&c, "node1", &["standby"], "node2");
        let st = c.status_json("node1").expect("status");
        assert_eq!(st["node"]["standby"], true, "{st:#}");
        // Standby holds: no failback to node1 even with auto_failback on.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(c.served_by().as_deref(), Some("node2"), "{}", c.logs());

        planned_move(&c, "node1", &["takeover"], "node1");
        // The peer takes it back with a takeover of its own (a foreign group for node2).
        planned_move(&c, "node2", &["takeover", "foreign"], "node2");
        planned_move(&c, "node1", &["takeover", "local"], "node1");
        // hb_standby's word `failback` means foreign: node1 holds none, nothing to hand over.
        let o = hactl(&c, "node1", &["standby", "failback"]);
        assert!(o.status.success(), "{o:?}");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(c.served_by().as_deref(), Some("node1"), "{}", c.logs());
        let log = hactl_ok(&c, "node1", &["log"]);
        assert!(log.contains("admin standby all"), "{log}");
        assert!(log.contains("admin takeover"), "{log}");
    }
}

#[test]
fn standby_is_refused_with_a_reason_when_the_peer_is_gone() {
    if !ha_lab::lab_available("standby_refused") {
        return;
    }
    let mut c = Cluster::start(&fast("on")).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    c.lab
        .node("node2")
        .signal_had(nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM node2");
    c.lab
        .node_mut("node2")
        .wait_had_exit(Duration::from_secs(10))
        .expect("node2 exits");
    let o = hactl(&c, "node1", &["standby"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not alive"), "{err}");
    assert_eq!(c.served_by().as_deref(), Some("node1"));
    // A stopped daemon is exit code 3 for every command.
    let o = hactl(&c, "node2", &["status"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
}

fn write_both(c: &Cluster, file: &str, text: &str) {
    for n in ["node1", "node2"] {
        c.lab
            .node(n)
            .write_file(file, text, 0o644)
            .expect("write config");
    }
}

#[test]
fn reload_adds_an_ip_without_bouncing_and_refuses_an_invalid_config() {
    if !ha_lab::lab_available("reload") {
        return;
    }
    let c = Cluster::start(&fast("on")).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    wait_settled(&c);
    let iface = c.lab.iface().to_string();
    let vip2 = c.lab.vip(1);
    let pids = (had_pid(&c, "node1"), had_pid(&c, "node2"));

    // A second address joins the running group.
    let probe = c.lab.probe(c.vip, 80, PROBE);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    write_both(
        &c,
        "haresources",
        &format!(
            "node1 IPaddr::{}/24/{iface} web::{} IPaddr::{vip2}/24/{iface}\n",
            c.vip, c.vip
        ),
    );
    for n in ["node1", "node2"] {
        let out = hactl_ok(&c, n, &["reload"]);
        eprintln!("reload on {n}: {}", out.trim());
    }
    let up = c.lab.wait_until(Duration::from_secs(3), || {
        c.lab.node("node1").has_addr(vip2)
    });
    assert!(up.is_some(), "new address not up\n{}", c.logs());
    std::thread::sleep(Duration::from_millis(500));
    let samples = probe.stop();
    let failed = samples
        .iter()
        .filter(|s| s.sent >= t0 && s.result.is_err())
        .count();
    let gap = ha_lab::max_gap_after(&samples, t0).unwrap_or_default();
    eprintln!(
        "reload adding {vip2}: up after {:?}, client gap {gap:?}, {failed} failed probe(s)",
        up.unwrap_or_default()
    );
    assert_eq!(failed, 0, "the running group bounced\n{}", c.logs());
    assert!(!c.lab.node("node2").has_addr(vip2));
    let st = c.status_json("node1").expect("status");
    assert_eq!(
        st["groups"][0]["resources"].as_array().map(Vec::len),
        Some(3),
        "{st:#}"
    );
    // As the cluster says: the group runs on node1 with the new address, and node2 (passive)
    // knows the new list for its next start.
    let applied = c.lab.wait_until(Duration::from_secs(3), || {
        c.status_json("node1")
            .is_ok_and(|s| s["groups"][0]["resources"][2]["state"] == "running")
    });
    assert!(
        applied.is_some(),
        "{:#}",
        c.status_json("node1").unwrap_or_default()
    );
    let st1 = c.status_json("node1").expect("status");
    assert_eq!(st1["groups"][0]["state"], "running", "{st1:#}");
    assert_eq!(st1["groups"][0]["held_by"], "node1", "{st1:#}");
    let st2 = c.status_json("node2").expect("status");
    assert_eq!(st2["groups"][0]["state"], "stopped", "{st2:#}");
    assert_eq!(st2["groups"][0]["held_by"], "node1", "{st2:#}");
    assert_eq!(
        st2["groups"][0]["resources"].as_array().map(Vec::len),
        Some(3),
        "{st2:#}"
    );

    // An invalid configuration is refused with the reason; nothing changes.
    write_both(
        &c,
        "haresources",
        &format!("node1 IPaddr::{}/24/{iface} nosuchagent\n", c.vip),
    );
    let o = hactl(&c, "node1", &["reload"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("nosuchagent"),
        "reason names the problem: {err}"
    );
    assert!(err.contains("running configuration stays"), "{err}");
    write_both(&c, "ha.cf", "keepalive 1\nthis is not ha.cf\n");
    let o = hactl(&c, "node1", &["reload"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(c.lab.node("node1").has_addr(vip2), "{}", c.logs());
    assert_eq!(c.served_by().as_deref(), Some("node1"));
    let st2 = c.status_json("node1").expect("status");
    assert_eq!(
        st2["groups"], st["groups"],
        "status changed after a refused reload"
    );

    // SIGHUP applies a good configuration again: the extra address goes.
    let cfg = common::ha_cf(&fast("on"), &c.lab);
    write_both(&c, "ha.cf", &cfg);
    write_both(
        &c,
        "haresources",
        &format!("node1 IPaddr::{}/24/{iface} web::{}\n", c.vip, c.vip),
    );
    for n in ["node1", "node2"] {
        c.lab
            .node(n)
            .signal_had(nix::sys::signal::Signal::SIGHUP)
            .expect("SIGHUP");
    }
    let gone = c.lab.wait_until(Duration::from_secs(3), || {
        !c.lab.node("node1").has_addr(vip2)
    });
    assert!(gone.is_some(), "removed address still up\n{}", c.logs());
    assert_eq!(c.served_by().as_deref(), Some("node1"));
    assert_eq!(
        (had_pid(&c, "node1"), had_pid(&c, "node2")),
        pids,
        "a daemon restarted"
    );

    // StrictModes at reload: a haresources anyone can write is refused, the running
    // configuration stays, and the reload is audited with its origin.
    let hr = c.lab.node("node1").config_dir().join("haresources");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hr, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = hactl(&c, "node1", &["reload"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for needle in [
        "is invalid",
        "mode 666",
        "chmod go-w",
        "running configuration stays",
    ] {
        assert!(err.contains(needle), "`{needle}` missing: {err}");
    }
    assert!(
        c.log("node1")
            .contains("admin: reload requested by control socket uid 0 pid "),
        "{}",
        c.logs()
    );
    assert!(
        c.log("node1")
            .contains("admin: reload requested by signal SIGHUP")
    );
    std::fs::set_permissions(&hr, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    hactl_ok(&c, "node1", &["reload"]);
    assert_eq!(c.served_by().as_deref(), Some("node1"));

    reload_whose_new_resource_fails(&c, vip2);
}

/// A reload adds an address and a resource that cannot start on node1 (it can on node2):
/// node1 rolls the whole group back and reports it failed, node2 takes it over with the new
/// list, and `hactl status --json` on both says so; `cleanup` brings it home.
fn reload_whose_new_resource_fails(c: &Cluster, vip2: std::net::Ipv4Addr) {
    let iface = c.lab.iface().to_string();
    for n in ["node1", "node2"] {
        let dir = c.lab.node(n).config_dir();
        let (state, fail) = (dir.join("flaky.state"), dir.join("flaky.fail"));
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in\n start) if [ -e {f} ]; then echo flaky: cannot start >&2; exit 1; fi; \
             touch {s} ;;\n stop) rm -f {s} ;;\n status) if [ -e {s} ]; then echo running; else echo stopped; fi ;;\nesac\n",
            f = fail.display(),
            s = state.display()
        );
        c.lab
            .node(n)
            .write_file("resource.d/flaky", &script, 0o755)
            .expect("script");
    }
    c.lab
        .node("node1")
        .write_file("flaky.fail", "", 0o644)
        .expect("marker");
    write_both(
        c,
        "haresources",
        &format!(
            "node1 IPaddr::{}/24/{iface} web::{} IPaddr::{vip2}/24/{iface} flaky\n",
            c.vip, c.vip
        ),
    );
    let t0 = Instant::now();
    for n in ["node2", "node1"] {
        let out = hactl_ok(c, n, &["reload"]);
        eprintln!("reload on {n}: {}", out.trim());
    }
    let moved = c.lab.wait_until(Duration::from_secs(15), || {
        let (Ok(a), Ok(b)) = (c.status_json("node1"), c.status_json("node2")) else {
            return false;
        };
        a["groups"][0]["state"] == "failed" && b["groups"][0]["state"] == "running"
    });
    assert!(
        moved.is_some(),
        "the failed reload did not fail over\n{}",
        c.logs()
    );
    eprintln!(
        "reload with a failing resource: failed over to node2 after {:?}",
        t0.elapsed()
    );
    let st1 = c.status_json("node1").expect("status");
    let g1 = &st1["groups"][0];
    assert_eq!(g1["refused_here"], true, "{st1:#}");
    assert_eq!(g1["held_by"], "node2", "{st1:#}");
    assert_eq!(g1["resources"][3]["name"], "flaky", "{st1:#}");
    assert_eq!(g1["resources"][3]["state"], "failed", "{st1:#}");
    assert!(
        g1["resources"][3]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{st1:#}"
    );
    let st2 = c.status_json("node2").expect("status");
    let g2 = &st2["groups"][0];
    assert_eq!(g2["held_by"], "node2", "{st2:#}");
    let states: Vec<&str> = g2["resources"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, ["running"; 4], "{st2:#}");
    // Rolled back on node1, whole on node2: each address on exactly one node.
    assert!(!c.lab.node("node1").has_addr(c.vip), "{}", c.logs());
    assert!(!c.lab.node("node1").has_addr(vip2), "{}", c.logs());
    assert!(c.lab.node("node2").has_addr(vip2), "{}", c.logs());
    let served = c.lab.wait_until(Duration::from_secs(5), || {
        c.served_by().as_deref() == Some("node2")
    });
    assert!(served.is_some(), "{}", c.logs());

    // The admin fixes the cause and cleans up: auto_failback on brings it home.
    std::fs::remove_file(c.lab.node("node1").config_dir().join("flaky.fail")).expect("rm");
    hactl_ok(c, "node1", &["cleanup"]);
    let home = c.lab.wait_until(Duration::from_secs(15), || {
        c.status_json("node1")
            .is_ok_and(|s| s["groups"][0]["state"] == "running")
            && c.served_by().as_deref() == Some("node1")
    });
    assert!(home.is_some(), "the group did not come back\n{}", c.logs());
    assert!(!c.lab.node("node2").has_addr(vip2), "{}", c.logs());
}

/// What one `cl_status` run gave: exit code, stdout, and whether it wrote to stderr (the
/// stderr text carries a pid and a time stamp, so only its presence is compared).
#[derive(Debug, PartialEq, Eq)]
struct ClOut {
    code: Option<i32>,
    stdout: String,
    stderr: bool,
}

impl From<std::process::Output> for ClOut {
    fn from(o: std::process::Output) -> Self {
        ClOut {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: !o.stderr.is_empty(),
        }
    }
}

/// The queries compared, run on both nodes.
const CL_QUERIES: &[&[&str]] = &[
    &["hbstatus"],
    &["listnodes"],
    &["listnodes", "-n"],
    &["listnodes", "-m"],
    &["nodestatus", "node1"],
    &["nodestatus", "node2"],
    &["nodestatus", "-m", "node2"],
    &["nodestatus", "nosuchnode"],
    &["nodetype", "node2"],
    &["nodetype", "-m", "node1"],
    &["listhblinks", "node2"],
    &["listhblinks", "-v", "node1"],
    &["hblinkstatus", "node2", "eth0"],
    &["hblinkstatus", "-m", "node1", "eth0"],
    &["rscstatus"],
    &["rscstatus", "-m"],
    &["hbparameter", "-p", "keepalive"],
    &["hbparameter", "-p", "deadtime"],
    &["hbparameter", "-m", "-p", "auto_failback"],
    &["hbparameter", "-p", "udpport"],
    &["nosuchcommand"],
];

fn cl_lab_files(lab: &ha_lab::Lab, heartbeat: bool) {
    let mut spec = ha_lab::ClusterSpec::new("cl_status lab")
        .logfacility(None)
        .timers("500ms", "1", "2", "4")
        .auto_failback("on")
        .auth("sha1 cl-status-compare")
        .group(ha_lab::Group::new("node1").ip(lab.vip(0), 24));
    if heartbeat {
        // Heartbeat logs into its node's /var/log (a lab dir); had logs to stderr.
        for n in ["node1", "node2"] {
            spec = spec.node_line(n, "logfile /var/log/ha-log\nlogfacility none");
        }
    }
    spec.write(lab).expect("configuration");
}

/// Heartbeat's answers, from a real Heartbeat pair in its own lab.
fn heartbeat_cl_status() -> Vec<(String, &'static [&'static str], ClOut)> {
    let mut lab = ha_lab::Lab::new(ha_lab::LabOptions::default()).expect("lab");
    cl_lab_files(&lab, true);
    lab.node_mut("node1")
        .start_heartbeat()
        .expect("heartbeat node1");
    lab.node_mut("node2")
        .start_heartbeat()
        .expect("heartbeat node2");
    let vip = lab.vip(0);
    let ready = lab.wait_until(Duration::from_secs(30), || {
        lab.node("node1").has_addr(vip)
            && lab
                .node("node1")
                .cl_status(&["nodestatus", "node2"])
                .is_ok_and(|s| s == "active")
            && lab
                .node("node2")
                .cl_status(&["rscstatus"])
                .is_ok_and(|s| s != "transition")
            && lab
                .node("node1")
                .cl_status(&["rscstatus"])
                .is_ok_and(|s| s != "transition")
    });
    assert!(
        ready.is_some(),
        "the Heartbeat pair did not settle:\n{}",
        std::fs::read_to_string(lab.node("node1").heartbeat_log_path()).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(2));
    let mut out = Vec::new();
    for n in ["node1", "node2"] {
        for q in CL_QUERIES {
            let mut argv = vec!["cl_status"];
            argv.extend_from_slice(q);
            let o = lab.node(n).heartbeat_exec(&argv).expect("cl_status runs");
            out.push((n.to_string(), *q, ClOut::from(o)));
        }
    }
    for n in ["node1", "node2"] {
        let _ = lab.node_mut(n).stop_heartbeat(Duration::from_secs(20));
    }
    out
}

#[test]
fn cl_status_matches_heartbeat_line_by_line() {
    if !ha_lab::lab_with_heartbeat("cl_status_matches_heartbeat") {
        return;
    }
    let reference = heartbeat_cl_status();

    let mut lab = ha_lab::Lab::new(ha_lab::LabOptions::default()).expect("lab");
    cl_lab_files(&lab, false);
    let had = ha_lab::find_bin("had").expect("had");
    let hactl = ha_lab::find_bin("hactl").expect("hactl");
    lab.node_mut("node1")
        .start_had(&had, &[])
        .expect("had node1");
    lab.node_mut("node2")
        .start_had(&had, &[])
        .expect("had node2");
    // The multicall name: a `cl_status` link to hactl, as docs/hactl.md tells admins to make.
    let tmp = tempfile::tempdir().expect("tempdir");
    let link = tmp.path().join("cl_status");
    std::os::unix::fs::symlink(&hactl, &link).expect("symlink");
    let sockets = [
        ("node1", lab.node("node1").socket_path()),
        ("node2", lab.node("node2").socket_path()),
    ];
    let run = |n: &str, q: &[&str]| -> ClOut {
        let sock = &sockets.iter().find(|(m, _)| *m == n).expect("known node").1;
        std::process::Command::new(&link)
            .args(q)
            .env("HAD_SOCKET", sock)
            .output()
            .expect("cl_status link runs")
            .into()
    };
    let vip = lab.vip(0);
    let ready = lab.wait_until(Duration::from_secs(30), || {
        lab.node("node1").has_addr(vip)
            && run("node1", &["nodestatus", "node2"]).stdout == "active\n"
            && run("node2", &["rscstatus"]).stdout != "transition\n"
    });
    assert!(ready.is_some(), "the had pair did not settle");
    std::thread::sleep(Duration::from_secs(2));

    let mut diffs = Vec::new();
    for (n, q, want) in &reference {
        let got = run(n, q);
        if &got != want {
            diffs.push(format!(
                "on {n}: cl_status {}\n  heartbeat: {want:?}\n  had:       {got:?}",
                q.join(" ")
            ));
        }
    }
    eprintln!(
        "cl_status: {} of {} answers identical to Heartbeat 3.0.6",
        reference.len() - diffs.len(),
        reference.len()
    );
    assert!(diffs.is_empty(), "differences:\n{}", diffs.join("\n"));

    // Stopped daemon: Heartbeat's text and exit code 1; `hactl cl-status` is the same tool.
    for n in ["node1", "node2"] {
        lab.node(n)
            .signal_had(nix::sys::signal::Signal::SIGTERM)
            .expect("SIGTERM");
        lab.node_mut(n)
            .wait_had_exit(Duration::from_secs(10))
            .expect("exit");
    }
    let o = run("node1", &["hbstatus"]);
    assert_eq!(o.stdout, "Heartbeat is stopped on this machine.\n");
    assert_eq!(o.code, Some(1));
    let o: ClOut = lab
        .node("node1")
        .hactl(&hactl, &["cl-status", "nodestatus", "node1"])
        .expect("hactl")
        .into();
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(o.stderr);
}

#[test]
fn fifo_messages_from_scripts_standby_and_take_over() {
    if !ha_lab::lab_available("fifo_messages") {
        return;
    }
    let c = Cluster::start(&fast("on")).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    wait_settled(&c);
    let fifo = c.lab.node("node1").state_dir().join("fifo");
    let meta = std::fs::metadata(&fifo).expect("had made the FIFO");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    assert!(meta.file_type().is_fifo());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // What hb_standby writes (through ha_clustermsg).
    std::fs::write(&fifo, ">>>\nt=ask_resources\nrsc_hold=all\ninfo=me\n<<<\n").expect("write");
    c.expect_served_by("node2", Duration::from_secs(5));
    wait_settled(&c);
    // What hb_takeover writes.
    std::fs::write(&fifo, ">>>\nt=hb_takeover\nrsc_hold=all\n<<<\n").expect("write");
    c.expect_served_by("node1", Duration::from_secs(5));

    // Audit: every mutating request is logged with its origin, the FIFO's as "FIFO" and a
    // control client's as its uid and pid (SO_PEERCRED).
    let log = c.log("node1");
    for line in [
        "admin: standby all requested by FIFO",
        "admin: takeover all requested by FIFO",
    ] {
        assert!(log.contains(line), "`{line}` missing\n{}", c.logs());
    }
    wait_settled(&c);
    let audited = |args: &[&str]| {
        let child = std::process::Command::new(&c.hactl)
            .arg("--socket")
            .arg(c.lab.node("node1").socket_path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("hactl");
        let pid = child.id();
        let out = child.wait_with_output().expect("hactl output");
        assert!(
            out.status.success(),
            "hactl {args:?}: {out:?}\n{}",
            c.logs()
        );
        pid
    };
    let pid = audited(&["standby"]);
    c.expect_served_by("node2", Duration::from_secs(5));
    let line = format!("admin: standby all requested by control socket uid 0 pid {pid}");
    assert!(
        c.log("node1").contains(&line),
        "`{line}` missing\n{}",
        c.logs()
    );
    wait_settled(&c);
    let pid = audited(&["takeover"]);
    c.expect_served_by("node1", Duration::from_secs(5));
    let line = format!("admin: takeover all requested by control socket uid 0 pid {pid}");
    assert!(
        c.log("node1").contains(&line),
        "`{line}` missing\n{}",
        c.logs()
    );
    let pid = audited(&["cleanup"]);
    let line = format!("admin: cleanup requested by control socket uid 0 pid {pid}");
    assert!(
        c.log("node1").contains(&line),
        "`{line}` missing\n{}",
        c.logs()
    );
    eprintln!(
        "audit lines on node1:\n{}",
        c.log("node1")
            .lines()
            .filter(|l| l.contains("admin: "))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // `status --watch --json`: one JSON line per refresh until stopped.
    let mut watch = std::process::Command::new(&c.hactl)
        .arg("--socket")
        .arg(c.lab.node("node1").socket_path())
        .args(["status", "--json", "--watch", "0.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("hactl --watch");
    std::thread::sleep(Duration::from_millis(1100));
    watch.kill().expect("stop our hactl");
    let out = watch.wait_with_output().expect("output");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert!(lines.len() >= 3, "{lines:?}");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
        assert_eq!(v["node"]["name"], "node1");
    }
}

#[test]
fn notify_hooks_run_with_group_state_and_reason() {
    if !ha_lab::lab_available("notify_hooks") {
        return;
    }
    let c = Cluster::start(&fast("on")).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    wait_settled(&c);
    for n in ["node1", "node2"] {
        let node = c.lab.node(n);
        let out = node.config_dir().join("notified");
        node.write_file(
            "notify.sh",
            &format!(
                "#!/bin/sh\necho \"$HA_STATE|$HA_GROUP|$HA_REASON|$HA_NODE\" >> {}\n",
                out.display()
            ),
            0o755,
        )
        .expect("hook");
        node.write_file(
            "had.toml",
            &format!(
                "[notify]\ncommand = \"{}\"\n",
                node.config_dir().join("notify.sh").display()
            ),
            0o644,
        )
        .expect("had.toml");
        hactl_ok(&c, n, &["reload"]);
    }
    hactl_ok(&c, "node1", &["standby"]);
    c.expect_served_by("node2", Duration::from_secs(5));
    let read = |n: &str| {
        std::fs::read_to_string(c.lab.node(n).config_dir().join("notified")).unwrap_or_default()
    };
    let ok = c.lab.wait_until(Duration::from_secs(5), || {
        read("node1").contains("standby|") && read("node2").contains("active|")
    });
    assert!(
        ok.is_some(),
        "hooks did not run: node1 {:?} node2 {:?}\n{}",
        read("node1"),
        read("node2"),
        c.logs()
    );
    let key = format!("IPaddr::{}/24/{}", c.vip, c.lab.iface());
    assert!(
        read("node1").contains(&format!("standby|{key}|refused here")),
        "{}",
        read("node1")
    );
    assert!(
        read("node2").contains(&format!("active|{key}|")),
        "{}",
        read("node2")
    );
    eprintln!(
        "notify on node1: {}notify on node2: {}",
        read("node1"),
        read("node2")
    );
}

#[test]
fn takeover_after_a_crash_waits_for_the_fence_command() {
    if !ha_lab::lab_available("fence_waits") {
        return;
    }
    let mut c = Cluster::start(&fast("on")).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    let node2 = c.lab.node("node2");
    let allow = node2.config_dir().join("fence-allowed");
    let fenced = node2.config_dir().join("fenced");
    node2
        .write_file(
            "fence.sh",
            &format!(
                "#!/bin/sh\n[ -e {allow} ] || {{ echo 'power switch unreachable' >&2; exit 1; }}\necho \"$HA_PEER $1\" > {fenced}\n",
                allow = allow.display(),
                fenced = fenced.display()
            ),
            0o755,
        )
        .expect("fence script");
    node2
        .write_file(
            "had.toml",
            &format!(
                "[fence]\ncommand = \"{}\"\nretry = \"300ms\"\n",
                node2.config_dir().join("fence.sh").display()
            ),
            0o644,
        )
        .expect("had.toml");
    let out = hactl_ok(&c, "node2", &["reload"]);
    assert!(out.contains("[fence] applied"), "{out}");

    c.lab.node_mut("node1").crash().expect("crash node1");
    // Deadtime passes; the fence keeps failing, so node2 must not take the VIP.
    std::thread::sleep(c.deadtime + Duration::from_secs(1));
    assert!(
        !c.lab.node("node2").has_addr(c.vip),
        "took over unfenced\n{}",
        c.logs()
    );
    assert!(
        c.log("node2").contains("power switch unreachable"),
        "{}",
        c.logs()
    );
    let t0 = Instant::now();
    std::fs::write(&allow, "").expect("allow the fence");
    c.expect_served_by("node2", Duration::from_secs(3));
    eprintln!("fence allowed -> node2 serves after {:?}", t0.elapsed());
    let said = std::fs::read_to_string(&fenced).expect("fence ran");
    assert_eq!(said.trim(), "node1 node1");
}

/// A cluster like `Cluster::start`, with `extra(lab)` appended to ha.cf before the daemons
/// start (it may name lab addresses, which exist only once the lab does).
fn start_with_ha_cf_extra(s: &Setup, extra: impl Fn(&ha_lab::Lab) -> String) -> Cluster {
    let lab = ha_lab::Lab::new(ha_lab::LabOptions::default()).expect("lab");
    let vip = lab.vip(0);
    s.spec(&lab)
        .line(&extra(&lab))
        .write(&lab)
        .expect("configuration");
    let mut c = Cluster {
        lab,
        had: ha_lab::find_bin("had").expect("had"),
        hactl: ha_lab::find_bin("hactl").expect("hactl"),
        vip,
        deadtime: Duration::from_secs(1),
    };
    c.start_node("node1").expect("node1");
    c.start_node("node2").expect("node2");
    c
}

/// Make the client (the ping node) unable to answer `node`: a blackhole route for the
/// node's address in the client namespace. Heartbeats between the nodes are untouched.
fn client_blackhole(c: &Cluster, node: &str) {
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            c.lab.client_netns(),
            "route",
            "add",
            "blackhole",
            &format!("{}/32", c.lab.ip(node)),
        ])
        .output()
        .expect("ip route");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn losing_the_ping_node_moves_the_groups_only_from_the_side_that_lost_it() {
    if !ha_lab::lab_available("ping_tiebreak") {
        return;
    }
    // The client namespace is the ping node (deadping 1 s, keepalive 200 ms).
    let c = start_with_ha_cf_extra(&fast("off"), |lab| {
        format!(
            "ping {}\ndeadping 1\nrespawn hacluster /usr/lib/heartbeat/ipfail\n",
            lab.ip("client")
        )
    });
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    let counted = c.lab.wait_until(Duration::from_secs(5), || {
        ["node1", "node2"]
            .iter()
            .all(|n| c.log(n).contains("ping nodes: 1 of 1 reachable"))
    });
    assert!(counted.is_some(), "ping node not counted\n{}", c.logs());
    wait_settled(&c);

    // Only node1 loses it: the group moves to node2.
    let t0 = Instant::now();
    client_blackhole(&c, "node1");
    c.expect_served_by("node2", Duration::from_secs(5));
    eprintln!(
        "ping node lost on the active side -> served by node2 after {:?} (deadping 1 s + grace 400 ms)",
        t0.elapsed()
    );
    assert!(
        c.log("node1").contains("ping nodes: 0 of 1 reachable"),
        "{}",
        c.logs()
    );

    // Now node2 loses it too: equal views, nothing moves (auto_failback off keeps it).
    client_blackhole(&c, "node2");
    let lost = c.lab.wait_until(Duration::from_secs(5), || {
        c.log("node2").contains("ping nodes: 0 of 1 reachable")
    });
    assert!(lost.is_some(), "{}", c.logs());
    std::thread::sleep(Duration::from_secs(2));
    assert!(c.lab.node("node2").has_addr(c.vip), "{}", c.logs());
    assert!(!c.lab.node("node1").has_addr(c.vip), "{}", c.logs());
}

#[test]
fn losing_the_ping_node_on_both_sides_moves_nothing() {
    if !ha_lab::lab_available("ping_both_sides") {
        return;
    }
    let c = start_with_ha_cf_extra(&fast("on"), |lab| {
        format!("ping {}\ndeadping 1\n", lab.ip("client"))
    });
    c.expect_served_by("node1", Duration::from_secs(15));
    wait_joined(&c, Duration::from_secs(10));
    let counted = c.lab.wait_until(Duration::from_secs(5), || {
        ["node1", "node2"]
            .iter()
            .all(|n| c.log(n).contains("ping nodes: 1 of 1 reachable"))
    });
    assert!(counted.is_some(), "ping node not counted\n{}", c.logs());
    wait_settled(&c);
    client_blackhole(&c, "node1");
    client_blackhole(&c, "node2");
    let lost = c.lab.wait_until(Duration::from_secs(5), || {
        ["node1", "node2"]
            .iter()
            .all(|n| c.log(n).contains("ping nodes: 0 of 1 reachable"))
    });
    assert!(lost.is_some(), "{}", c.logs());
    std::thread::sleep(Duration::from_secs(2));
    assert!(c.lab.node("node1").has_addr(c.vip), "{}", c.logs());
    assert!(!c.lab.node("node2").has_addr(c.vip), "{}", c.logs());
    assert!(
        !c.log("node2").contains("acquiring resource group"),
        "node2 took the group for a moment\n{}",
        c.logs()
    );
}

/// A second had on a node where one runs stops at the control socket: it says why, exits
/// non-zero, and leaves the running one, its address and the restart generation on disk as
/// they were (a bumped `hb_generation` would make the peer read the next real restart wrong).
#[test]
fn a_second_had_refuses_to_start_and_changes_nothing() {
    if !ha_lab::lab_available("second_had") {
        return;
    }
    let c = Cluster::start(&fast("on")).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(15));
    let n = c.lab.node("node1");
    let pid = had_pid(&c, "node1");
    let generation = || std::fs::read_to_string(n.state_dir().join("hb_generation")).ok();
    let before = generation();
    assert!(before.is_some(), "no hb_generation written");
    let quote = |p: std::path::PathBuf| format!("'{}'", p.display());
    let out = n
        .exec(&format!(
            "{} -f --config-dir {} --state-dir {} --run-dir {}",
            quote(c.had.canonicalize().expect("had binary")),
            quote(n.config_dir()),
            quote(n.state_dir()),
            quote(n.run_dir())
        ))
        .expect("run a second had");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second had started: {stderr}");
    assert!(
        stderr.contains("another had is already running"),
        "{stderr}"
    );
    assert_eq!(generation(), before, "the second had bumped hb_generation");
    assert_eq!(had_pid(&c, "node1"), pid, "the running had changed");
    assert!(n.has_addr(c.vip), "the address went away\n{}", c.logs());
    c.expect_served_by("node1", Duration::from_secs(2));
}
