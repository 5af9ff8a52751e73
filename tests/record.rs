//! End to end: `had --record` on both nodes of a lab failover (a crash, a reload that adds an
//! address to the group, then a graceful stop), and each record replayed through a fresh node gives the very outputs the daemon carried
//! out, wake-up by wake-up (design.md §2: a lab run becomes a unit test). The records hold no
//! key. Needs root; with HA_REQUIRE_LAB=1 it fails instead of skipping.
//!
//! `HAD_KEEP_RECORD=DIR` copies both records there (how tests/data/record-failover.jsonl was
//! made).

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, Setup};
use nix::sys::signal::Signal;

#[test]
fn a_recorded_failover_replays_to_the_same_outputs() {
    if !ha_lab::lab_available("record_replay") {
        return;
    }
    let t_all = Instant::now();
    let setup = Setup {
        keepalive: "200ms",
        deadtime: "1",
        warntime: "500ms",
        initdead: "2",
        auto_failback: "off",
        ..Setup::default()
    };
    let mut c = Cluster::prepare(&setup).expect("lab");
    let had = c.had.clone();
    let record_of = |c: &Cluster, n: &str| c.lab.node(n).state_dir().join("record.jsonl");
    for n in ["node1", "node2"] {
        let path = record_of(&c, n);
        let path = path.to_str().expect("utf-8 lab path").to_string();
        c.lab
            .node_mut(n)
            .start_had(&had, &["--record", &path])
            .expect("start had");
    }
    c.expect_served_by("node1", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(1));

    // A crash: node2 takes over after deadtime. Then a graceful stop of node2.
    c.lab.node_mut("node1").crash().expect("crash node1");
    c.expect_served_by("node2", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    // A reload on node2 adds an address to the running group: the node decides its start.
    let iface = c.lab.iface().to_string();
    let vip2 = c.lab.vip(1);
    c.lab
        .node("node2")
        .write_file(
            "haresources",
            &format!(
                "node1 IPaddr::{}/24/{iface} web::{} IPaddr::{vip2}/24/{iface}\n",
                c.vip, c.vip
            ),
            0o644,
        )
        .expect("write haresources");
    let out = c
        .lab
        .node("node2")
        .hactl(&c.hactl, &["reload"])
        .expect("hactl reload");
    assert!(
        out.status.success(),
        "reload refused: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let up = c.lab.wait_until(Duration::from_secs(5), || {
        c.lab.node("node2").has_addr(vip2)
    });
    assert!(up.is_some(), "reloaded address not up\n{}", c.logs());
    c.lab
        .node("node2")
        .signal_had(Signal::SIGTERM)
        .expect("SIGTERM node2");
    let code = c
        .lab
        .node_mut("node2")
        .wait_had_exit(Duration::from_secs(15))
        .expect("wait for node2");
    assert_eq!(code, Some(0), "node2 did not stop cleanly\n{}", c.logs());

    for n in ["node1", "node2"] {
        let path = record_of(&c, n);
        let text = std::fs::read_to_string(&path).expect("record written");
        assert!(
            !text.contains("motdepasse"),
            "{n}: the record holds the key"
        );
        if let Some(dir) = std::env::var_os("HAD_KEEP_RECORD") {
            let _ = std::fs::copy(&path, std::path::Path::new(&dir).join(format!("{n}.jsonl")));
        }
        let t = Instant::now();
        let r = ha_daemon::record::replay(&text)
            .unwrap_or_else(|e| panic!("{n}: replay differs: {e}\n{}", c.logs()));
        eprintln!(
            "{n}: {} lines, {} KiB: {} inputs and {} outputs replayed identically in {:?}",
            text.lines().count(),
            text.len() / 1024,
            r.inputs,
            r.outputs,
            t.elapsed()
        );
        assert!(r.inputs > 10 && r.outputs > 10, "{n}: too short a record");
        if n == "node2" {
            assert_eq!(r.reloads, 1, "node2's reload not replayed");
        }
    }
    // node2's record holds the takeover, the reload's start of the new address and the
    // release at its stop.
    let text = std::fs::read_to_string(record_of(&c, "node2")).expect("record");
    assert!(
        text.contains("Act(Start(GroupId(0)))"),
        "no takeover recorded"
    );
    assert!(
        text.contains("Act(StartResources"),
        "no reload start recorded"
    );
    assert!(
        text.contains("Act(Stop(GroupId(0)))"),
        "no release recorded"
    );
    eprintln!("whole test: {:?}", t_all.elapsed());
}
