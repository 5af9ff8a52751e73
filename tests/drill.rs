//! End to end: drill scenarios (etc/drills) against real `had` daemons in a namespace lab,
//! through the lab executor (`ha-lab drill`) and the live one (`hactl drill` run inside a
//! node). Needs root; with HA_REQUIRE_LAB=1 it fails instead of skipping.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Cluster, Setup};
use ha_lab::drill::{DrillOptions, Scenario};
use ha_lab::find_bin;

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("etc/drills")
        .join(name)
}

fn load(name: &str) -> Scenario {
    match Scenario::load(&scenario_path(name)) {
        Ok(s) => s,
        Err(d) => panic!("{name}:\n{d}"),
    }
}

#[test]
fn seed_000_drills_pass_in_the_lab() {
    if !ha_lab::lab_available("seed_000_drills_pass_in_the_lab") {
        return;
    }
    let scenario = load("seed-000.toml");
    let opts = DrillOptions {
        had: find_bin("had").expect("had built"),
        hactl: find_bin("hactl").expect("hactl built"),
    };
    let mut log = Vec::new();
    let report = ha_lab::drill::run(&scenario, &opts, &mut log).expect("the drill runs");
    let log = String::from_utf8_lossy(&log);
    let md = report.markdown();
    eprintln!("{log}\n{md}");
    assert!(report.passed, "seed 000 drills failed:\n{log}\n{md}");
    let names: Vec<&str> = report.drills.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "named (DNS)",
            "apache2 (HTTP)",
            "vsftpd (FTP)",
            "crash MASTER"
        ]
    );
    for d in &report.drills {
        assert_eq!(d.origin.as_deref(), Some("node1"), "{}", d.name);
        let moved = &d.steps[0].checks[0];
        assert_eq!(moved.kind.as_str(), "vip_moves");
        assert!(moved.met && moved.measured_ms.is_some(), "{moved:?}");
    }
    for row in ["| named (DNS) | ✓", "| crash MASTER | ✓"] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
    let json: serde_json::Value = serde_json::from_str(&report.json()).expect("json");
    assert_eq!(json["drills"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["passed"], true);
}

/// `hactl ARGS` inside `node` (its network, mount and UTS namespaces): exit code, stdout, stderr.
fn hactl_in(c: &Cluster, node: &str, args: &str) -> (Option<i32>, String, String) {
    let n = c.lab.node(node);
    let cmd = format!(
        "'{}' --socket '{}' {args}",
        c.hactl.display(),
        n.socket_path().display()
    );
    let out = n.exec(&cmd).expect("run hactl in the node");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hactl_drill_runs_standby_live_and_refuses_what_it_cannot_do() {
    if !ha_lab::lab_available("hactl_drill_live") {
        return;
    }
    let c = Cluster::start(&Setup::default()).expect("cluster starts");
    c.expect_served_by("node1", Duration::from_secs(20));
    let standby = scenario_path("standby.toml");

    // From the passive node: the drill refuses to act on the peer and says where to run it.
    let (code, out, _) = hactl_in(&c, "node2", &format!("drill '{}'", standby.display()));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("run `hactl drill` on node1"),
        "no hint to run on node1:\n{out}"
    );
    assert!(out.contains("✗ FAILED"), "{out}");

    // Lab-only steps are refused before anything runs.
    let crash = scenario_path("crash.toml");
    let (code, out, err) = hactl_in(&c, "node1", &format!("drill '{}'", crash.display()));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("crash_active needs the lab: run `ha-lab drill FILE`"),
        "{err}"
    );
    assert!(
        out.is_empty(),
        "a refused scenario printed a report:\n{out}"
    );

    // On the active node the standby drill runs for real: the VIP moves, stays, comes back.
    let (code, out, err) = hactl_in(
        &c,
        "node1",
        &format!("drill --json '{}'", standby.display()),
    );
    eprintln!("{err}\n{out}");
    assert_eq!(
        code,
        Some(0),
        "standby drill failed:\n{err}\n{out}\n{}",
        c.logs()
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("json report");
    assert_eq!(json["passed"], true);
    let steps = &json["drills"][0]["steps"];
    assert_eq!(steps[0]["node"], "node1");
    assert_eq!(steps[0]["checks"][0]["kind"], "vip_moves");
    assert!(steps[0]["checks"][0]["measured_ms"].as_u64().is_some());
    assert_eq!(steps[2]["action"], "takeover");
    c.expect_served_by("node1", Duration::from_secs(5));
}
