//! Root-gated tests of the lab itself: topology, client access, faults and
//! cleanup. They skip (or fail loudly with HA_REQUIRE_LAB=1) without root.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ha_lab::record::Record;
use ha_lab::{Lab, LabOptions, first_answer_from, lab_available, max_gap, web_script};
use nix::sys::signal::Signal;

/// Stands in for had: sleeps until told to stop, so the node gets its own
/// UTS and mount namespace as it would under had.
const FAKE_HAD: &str = "#!/bin/sh\ntrap 'exit 0' TERM\nwhile :; do sleep 0.05; done\n";

fn fake_had(lab: &Lab) -> PathBuf {
    let p = lab.dir().join("fake-had");
    std::fs::write(&p, FAKE_HAD).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_ok(lab: &Lab, node: &str, cmd: &str) -> String {
    let o = lab.node(node).exec(cmd).unwrap();
    assert!(
        o.status.success(),
        "{node}: `{cmd}` failed ({}): {}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn web(lab: &Lab, node: &str, ip: Ipv4Addr, op: &str) -> std::process::Output {
    let script = lab.node(node).config_dir().join("resource.d/web");
    lab.node(node)
        .exec(&format!("{} {ip} {op}", script.display()))
        .unwrap()
}

fn assert_gone(id: &str, dir: &Path, pids: &[u32]) {
    assert!(
        !netns_list().contains(id),
        "namespaces of {id} left: {}",
        netns_list()
    );
    assert!(!Record::path_for(id).exists(), "record of {id} left");
    assert!(!dir.exists(), "{} left", dir.display());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().chars().next());
        assert!(
            matches!(state, None | Some(Some('Z'))),
            "pid {pid} survived: {stat}"
        );
    }
}

#[test]
fn two_node_lab_serves_crashes_powers_on_and_cleans_up() {
    if !lab_available("two_node_lab_serves_crashes_powers_on_and_cleans_up") {
        return;
    }
    let mut lab = Lab::new(LabOptions::default()).unwrap();
    let id = lab.id().to_owned();
    let dir = lab.dir().to_path_buf();
    let p = lab.subnet_prefix();
    assert!(p.starts_with("198.18."));
    assert_eq!(lab.ip("node1").to_string(), format!("{p}.11"));
    assert_eq!(lab.ip("node2").to_string(), format!("{p}.12"));
    assert_eq!(lab.ip("client").to_string(), format!("{p}.50"));
    assert_eq!(lab.vip(1).to_string(), format!("{p}.101"));
    assert_eq!(lab.iface(), "eth0");
    assert!(Record::path_for(&id).exists());
    for ns in [
        lab.switch_netns(),
        lab.client_netns(),
        lab.node("node1").netns(),
        lab.node("node2").netns(),
    ] {
        assert!(ns.starts_with(&id));
        assert!(netns_list().contains(ns), "{ns} missing");
    }

    let had = fake_had(&lab);
    let port = 8080;
    for n in ["node1", "node2"] {
        lab.node(n)
            .write_file("resource.d/web", &web_script(port), 0o755)
            .unwrap();
        lab.node(n)
            .write_file("authkeys", "auth 1\n1 crc\n", 0o600)
            .unwrap();
        lab.node_mut(n).start_had(&had, &[]).unwrap();
        assert!(lab.node(n).had_pid().is_some());
    }
    let mode = std::fs::metadata(lab.node("node1").config_dir().join("authkeys"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // Each node has its own hostname and its own /run.
    assert_eq!(sh_ok(&lab, "node1", "uname -n").trim(), "node1");
    assert_eq!(sh_ok(&lab, "node2", "uname -n").trim(), "node2");
    sh_ok(&lab, "node1", "touch /run/ha-lab-test-marker");
    assert!(!Path::new("/run/ha-lab-test-marker").exists());
    assert!(
        lab.node("node2")
            .exec("test -e /run/ha-lab-test-marker")
            .unwrap()
            .status
            .code()
            == Some(1)
    );

    // The client reaches a node's own address.
    let n1 = lab.ip("node1");
    let o = web(&lab, "node1", n1, "start");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        lab.client_http_get(n1, port, Duration::from_secs(2))
            .unwrap()
            .trim(),
        "node1"
    );
    let o = web(&lab, "node1", n1, "status");
    assert_eq!(
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        ),
        (Some(0), "web running".to_owned())
    );

    // A cut link makes the node unreachable, and restoring it heals.
    lab.node("node1").cut_link().unwrap();
    assert!(
        lab.client_http_get(n1, port, Duration::from_millis(300))
            .is_err()
    );
    lab.node("node1").restore_link().unwrap();
    assert!(
        lab.wait_until(Duration::from_secs(3), || lab
            .client_http_get(n1, port, Duration::from_millis(300))
            .is_ok())
            .is_some()
    );
    let o = web(&lab, "node1", n1, "stop");
    assert!(o.status.success(), "{o:?}");
    let o = web(&lab, "node1", n1, "status");
    assert_eq!(
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        ),
        (Some(3), "web stopped".to_owned())
    );

    // A VIP on node1, probed by the client.
    let vip = lab.vip(0);
    sh_ok(&lab, "node1", &format!("ip addr add {vip}/24 dev eth0"));
    assert!(lab.node("node1").has_addr(vip));
    assert!(!lab.node("node2").has_addr(vip));
    assert!(web(&lab, "node1", vip, "start").status.success());
    let prober = lab.probe(vip, port, Duration::from_millis(20));
    assert!(
        lab.wait_until(Duration::from_secs(3), || prober
            .first_answer_from("node1", Instant::now() - Duration::from_secs(5))
            .is_some())
            .is_some()
    );

    // Crash: everything in node1 dies, the VIP stays on its interface.
    let web_pid: u32 = sh_ok(&lab, "node1", &format!("cat /run/web-{vip}-{port}.pid"))
        .trim()
        .parse()
        .unwrap();
    let had1 = lab.node("node1").had_pid().unwrap();
    let t_crash = Instant::now();
    lab.node_mut("node1").crash().unwrap();
    assert_eq!(lab.node("node1").had_pid(), None);
    assert!(lab.node("node1").has_addr(vip));
    assert!(
        lab.client_http_get(vip, port, Duration::from_millis(300))
            .is_err()
    );
    for pid in [had1, web_pid] {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            state.is_empty()
                || state
                    .rsplit_once(')')
                    .unwrap()
                    .1
                    .trim_start()
                    .starts_with('Z'),
            "{pid} alive: {state}"
        );
    }

    // node2 takes the VIP over; the client forgets node1's MAC as a GARP would make it.
    sh_ok(&lab, "node2", &format!("ip addr add {vip}/24 dev eth0"));
    assert!(web(&lab, "node2", vip, "start").status.success());
    std::process::Command::new("ip")
        .args(["-n", lab.client_netns(), "neigh", "flush", "all"])
        .status()
        .unwrap();
    assert!(
        lab.wait_until(Duration::from_secs(3), || prober
            .first_answer_from("node2", t_crash)
            .is_some())
            .is_some()
    );
    let samples = prober.stop();
    let took = first_answer_from(&samples, "node2", t_crash).unwrap() - t_crash;
    let gap = max_gap(&samples).unwrap();
    assert!(
        gap >= took.saturating_sub(Duration::from_millis(50)),
        "gap {gap:?} < time to node2 {took:?}"
    );
    assert!(samples.iter().any(|s| s.result.is_err()));

    // Power on: node1 comes back without the VIP, reachable again.
    lab.node_mut("node1").power_on().unwrap();
    assert!(!lab.node("node1").has_addr(vip));
    assert!(lab.node("node1").has_addr(n1));
    let refused = lab.wait_until(Duration::from_secs(3), || {
        lab.client_http_get(n1, port, Duration::from_millis(300))
            .is_err_and(|e| format!("{e:#}").contains("refused"))
    });
    assert!(refused.is_some(), "node1 not reachable after power_on");
    lab.node_mut("node1").start_had(&had, &[]).unwrap();
    assert_eq!(sh_ok(&lab, "node1", "uname -n").trim(), "node1");

    // Graceful stop of a had, with its exit code.
    lab.node("node1").signal_had(Signal::SIGTERM).unwrap();
    assert_eq!(
        lab.node_mut("node1")
            .wait_had_exit(Duration::from_secs(3))
            .unwrap(),
        Some(0)
    );
    assert_eq!(lab.node("node1").had_pid(), None);

    // Drop removes every namespace, process, dir and the record.
    let had2 = lab.node("node2").had_pid().unwrap();
    let web2: u32 = sh_ok(&lab, "node2", &format!("cat /run/web-{vip}-{port}.pid"))
        .trim()
        .parse()
        .unwrap();
    drop(lab);
    assert_gone(&id, &dir, &[had2, web2]);
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    if !lab_available("a_panicking_test_still_removes_its_lab") {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let lab = Lab::new(LabOptions {
            nodes: vec!["alpha".into(), "beta".into(), "gamma".into()],
            ..LabOptions::default()
        })
        .unwrap();
        tx.send((lab.id().to_owned(), lab.dir().to_path_buf()))
            .unwrap();
        assert_eq!(lab.node("gamma").ip().octets()[3], 13);
        assert!(
            lab.wait_until(Duration::from_millis(30), || false)
                .is_none()
        );
        panic!("deliberate panic with a lab alive");
    })
    .join();
    assert!(joined.is_err());
    let (id, dir) = rx.recv().unwrap();
    assert_gone(&id, &dir, &[]);
}

#[test]
fn bad_options_are_refused() {
    if !lab_available("bad_options_are_refused") {
        return;
    }
    let err = Lab::new(LabOptions {
        nodes: vec!["Node 1".into()],
        ..LabOptions::default()
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("node name"), "{err:#}");
    let err = Lab::new(LabOptions {
        nodes: vec![],
        ..LabOptions::default()
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("at least one node"), "{err:#}");
}

fn ha_lab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ha-lab"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_up_list_down() {
    if !lab_available("cli_up_list_down") {
        return;
    }
    let up = ha_lab(&["up", "--nodes", "3"]);
    assert!(up.status.success(), "{up:?}");
    let text = String::from_utf8_lossy(&up.stdout).into_owned();
    let id = text.split_whitespace().nth(1).unwrap().to_owned();
    assert!(ha_lab::record::valid_id(&id), "{text}");
    let rec = Record::read(&id).unwrap();
    assert!(rec.kept && !rec.creator_alive());
    assert_eq!(rec.live_netns().len(), 5);
    let list = ha_lab(&["list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("kept"))
    );
    // Kept labs survive the dead-run sweep.
    assert!(ha_lab(&["down", "--all-dead"]).status.success());
    assert!(Record::path_for(&id).exists());
    let down = ha_lab(&["down", "--id", &id]);
    assert!(down.status.success(), "{down:?}");
    assert_gone(&id, &rec.dir, &[]);
}

#[test]
fn cli_down_refuses_a_lab_in_use() {
    if !lab_available("cli_down_refuses_a_lab_in_use") {
        return;
    }
    let lab = Lab::new(LabOptions::with_nodes(1)).unwrap();
    let down = ha_lab(&["down", "--id", lab.id()]);
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("running process"),
        "{down:?}"
    );
    assert!(netns_list().contains(lab.node("node1").netns()));
    assert!(Record::path_for(lab.id()).exists());
}

/// Not a test by itself: with HA_LAB_TEST_HOLD=1 it builds a lab, prints its
/// id and waits to be killed, for `down_all_dead_cleans_a_killed_run`.
#[test]
fn hold_a_lab_until_killed() {
    if std::env::var_os("HA_LAB_TEST_HOLD").is_none() {
        return;
    }
    let lab = Lab::new(LabOptions::default()).unwrap();
    println!("HELD {}", lab.id());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn down_all_dead_cleans_a_killed_run() {
    use std::io::BufRead;
    if !lab_available("down_all_dead_cleans_a_killed_run") {
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_a_lab_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("HA_LAB_TEST_HOLD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let id = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("HELD ").map(|(_, id)| id.trim().to_owned()))
        .unwrap();
    let rec = Record::read(&id).unwrap();
    assert!(rec.creator_alive());
    // SIGKILL: no Drop runs, the lab is left behind with its record.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!rec.creator_alive());
    assert_eq!(rec.live_netns().len(), 4);
    let list = ha_lab(&["list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("dead run"))
    );
    let down = ha_lab(&["down", "--all-dead"]);
    assert!(down.status.success(), "{down:?}");
    assert_gone(&id, &rec.dir, &[]);
}

#[test]
fn the_floor_sends_receives_and_stops() {
    if !lab_available("the_floor_sends_receives_and_stops") {
        return;
    }
    let lab = Lab::new(LabOptions::default()).unwrap();
    let f = lab.floor(Duration::from_millis(100)).unwrap();
    let before = [f.cpu_ns(0).unwrap(), f.cpu_ns(1).unwrap()];
    let t0 = Instant::now();
    while (f.received(0) < 10 || f.received(1) < 10) && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each node hears the other's broadcasts, never its own looped-back copies: in 1.5 s at
    // 10 a second, about 15 each and surely not 30.
    std::thread::sleep(Duration::from_millis(1500));
    let got = [f.received(0), f.received(1)];
    let el = t0.elapsed().as_secs_f64();
    for g in got {
        assert!(g >= 10, "received {got:?}");
        assert!(
            (g as f64) < 10.0 * (el + 1.0) * 1.5,
            "received {got:?} in {el:.1} s"
        );
    }
    for (i, b) in before.iter().enumerate() {
        assert!(f.cpu_ns(i).unwrap() > *b, "node {i}'s threads used no CPU");
    }
    assert_eq!(f.cpu_ns(2), None);
    let t = Instant::now();
    f.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
    lab.shutdown().unwrap();
}
