//! End to end (issue 11's known hole): a `had` killed with -9 must not leave its VIP and
//! service up beside the peer's copy. A restarted `had` releases what a previous run left up
//! before it joins the cluster (`leftovers.rs`), and a guard process releases what a killed
//! daemon held at once (`guard.rs`). A 5 ms sampler watches the VIP on both nodes throughout.
//! Needs root.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ha_lab::{ClusterSpec, Group, Lab, LabOptions, VipWatch, find_bin, lab_available, overlaps};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const POLL: Duration = Duration::from_millis(5);
const KEEPALIVE_MS: u64 = 250;
const DEADTIME: Duration = Duration::from_secs(3);
const NODES: [&str; 2] = ["node1", "node2"];

/// A service whose state outlives had's private /run: its pid file is in the node's state
/// dir, so a restarted had (in a fresh mount namespace) still sees a copy left running.
fn svc_script(state_dir: &Path) -> String {
    format!(
        r#"#!/bin/sh
# svc: a lab service (a sleeping process) for the guard tests; usage: svc start|stop|status
PIDF={dir}/svc.pid
for op in "$@"; do :; done
alive() {{
  [ -f "$PIDF" ] || return 1
  pid=$(cat "$PIDF" 2>/dev/null); [ -n "$pid" ] || return 1
  st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'sleep 86399'
}}
case "$op" in
start) alive && exit 0
  setsid sleep 86399 </dev/null >/dev/null 2>&1 &
  echo $! > "$PIDF"; exit 0;;
stop) if alive; then kill "$(cat "$PIDF")"; i=0
    while alive && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done
    alive && exit 1
  fi
  rm -f "$PIDF"; exit 0;;
status|monitor) alive && {{ echo running; exit 0; }}; echo stopped; exit 3;;
*) exit 2;;
esac
"#,
        dir = state_dir.display()
    )
}

struct Bench {
    lab: Lab,
    had: PathBuf,
    watch: VipWatch,
    t0: Instant,
}

impl Bench {
    fn new() -> anyhow::Result<Bench> {
        let lab = Lab::new(LabOptions::default())?;
        let vip = lab.vip(0);
        ClusterSpec::new("guard lab")
            .logfacility(None)
            .timers(
                &format!("{KEEPALIVE_MS}ms"),
                "1",
                &DEADTIME.as_secs().to_string(),
                "6",
            )
            .auto_failback("on")
            .line("crm off")
            .group(Group::new("node1").ip(vip, 24).res("svc"))
            .write(&lab)?;
        for n in NODES {
            let node = lab.node(n);
            std::fs::create_dir_all(node.state_dir())?;
            node.write_file("resource.d/svc", &svc_script(&node.state_dir()), 0o755)?;
        }
        let netns: Vec<&str> = NODES.iter().map(|n| lab.node(n).netns()).collect();
        let watch = VipWatch::start(&netns, vip, POLL)?;
        Ok(Bench {
            lab,
            had: find_bin("had")?,
            watch,
            t0: Instant::now(),
        })
    }

    fn step(&self, what: &str) {
        eprintln!("{:>7.3}s {what}", self.t0.elapsed().as_secs_f64());
    }

    fn start(&mut self, n: &str) {
        self.step(&format!("start had on {n}"));
        let had = self.had.clone();
        self.lab
            .node_mut(n)
            .start_had(&had, &[])
            .expect("start had");
    }

    fn vip_on(&self, i: usize) -> bool {
        self.lab.node(NODES[i]).has_addr(self.lab.vip(0))
    }

    /// The pid of the lab service on node `n`, if it runs.
    fn svc_pid(&self, n: &str) -> Option<i32> {
        let f = self.lab.node(n).state_dir().join("svc.pid");
        let pid: i32 = std::fs::read_to_string(f).ok()?.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// Node1 holds the group (VIP and service), node2 is up and standing by.
    fn settled_on_node1(&mut self) {
        self.start("node1");
        self.start("node2");
        let up = self.lab.wait_until(Duration::from_secs(30), || {
            self.vip_on(0) && !self.vip_on(1) && self.svc_pid("node1").is_some()
        });
        assert!(up.is_some(), "node1 never held the group\n{}", self.logs());
        // Both daemons have heard each other (reports exchanged) before the fault.
        std::thread::sleep(Duration::from_secs(2));
        self.step("settled: node1 holds the VIP and svc");
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in NODES {
            let log = std::fs::read_to_string(self.lab.node(n).log_path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            out.push_str(&format!("--- {n} ---\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn log(&self, n: &str) -> String {
        std::fs::read_to_string(self.lab.node(n).log_path()).unwrap_or_default()
    }

    /// SIGKILL to had on `n` (by its PID only), reaped.
    fn kill_had(&mut self, n: &str) -> Instant {
        let pid = self.lab.node(n).had_pid().expect("had runs");
        self.step(&format!("kill -9 had on {n} (pid {pid})"));
        let at = Instant::now();
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill -9");
        let gone = self
            .lab
            .node_mut(n)
            .wait_had_exit(Duration::from_secs(10))
            .expect("wait");
        assert!(gone.is_some(), "had on {n} survived kill -9");
        at
    }

    /// No VIP on both nodes from `from` on; the overlaps seen, printed.
    fn assert_no_overlap(&self, from: Instant, what: &str) {
        let samples = self.watch.samples();
        let n = samples.iter().filter(|s| s.at >= from).count();
        let both = overlaps(&samples, from);
        eprintln!(
            "{what}: {n} samples at {POLL:?}, {} overlap(s) {both:?}",
            both.len()
        );
        assert!(
            both.is_empty(),
            "{what}: VIP on both nodes: {both:?}\n{}",
            self.logs()
        );
    }
}

/// The guard of the had with pid `had`: its child named `had-guard`.
fn guard_of(had: u32) -> Option<i32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|x| x.1).unwrap_or("");
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "had-guard" && ppid == Some(had) && alive(pid) {
            return Some(pid);
        }
    }
    None
}

/// Seconds since midnight UTC.
fn time_of_day(t: std::time::SystemTime) -> f64 {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    d % 86_400.0
}

/// The time of day of a log line (`2026-12-02T13:52:16.051553Z ...`), in seconds.
fn log_time_of_day(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?.split_once('T')?.1;
    let t = t.strip_suffix('Z')?;
    let mut it = t.split(':');
    let h: f64 = it.next()?.parse().ok()?;
    let m: f64 = it.next()?.parse().ok()?;
    let s: f64 = it.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// A field of /proc/PID/status in kB (VmRSS, VmHWM).
fn status_kb(pid: i32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string))
        })
        .is_some_and(|st| st != "Z" && st != "X")
}

/// (b) Nothing releases at the kill (had killed with -9, and its guard first when there is
/// one): the VIP and the service stay up on node1. had restarted at once releases both before
/// it joins, within node2's deadtime, so node2's copy never overlaps node1's leftover.
#[test]
fn restart_releases_what_a_killed_had_left_up() {
    if !lab_available("restart_releases_what_a_killed_had_left_up") {
        return;
    }
    let t_test = Instant::now();
    let mut b = Bench::new().expect("lab");
    b.settled_on_node1();
    let old_svc = b.svc_pid("node1").expect("svc runs");
    let had = b.lab.node("node1").had_pid().expect("had runs");
    let guard = guard_of(had).expect("had runs a guard");
    b.step(&format!(
        "kill -9 the guard (pid {guard}) first: nothing will release"
    ));
    kill(Pid::from_raw(guard), Signal::SIGKILL).expect("kill -9 guard");
    let gone = b.lab.wait_until(Duration::from_secs(5), || !alive(guard));
    assert!(gone.is_some(), "guard {guard} survived kill -9");
    let kill_at = b.kill_had("node1");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        b.vip_on(0) && alive(old_svc),
        "the leftovers must still be up for this test (VIP on node1: {}, svc {old_svc} alive: {})\n{}",
        b.vip_on(0),
        alive(old_svc),
        b.logs()
    );
    b.start("node1");
    // The old service stops and the start-up probe reports both leftovers released (the
    // VIP may be back within milliseconds, taken again by the new run: too short for a 5 ms
    // sampler to see it gone, so the log says it).
    let released = b.lab.wait_until(Duration::from_secs(20), || {
        !alive(old_svc)
            && b.log("node1")
                .contains("start-up probe: 2 leftover resource(s) found, 0 group(s)")
    });
    assert!(
        released.is_some(),
        "the restarted had did not release the leftovers\n{}",
        b.logs()
    );
    let probe = b
        .log("node1")
        .lines()
        .find(|l| l.contains("start-up probe: 2 leftover"))
        .map(str::to_string)
        .unwrap_or_default();
    b.step(&format!(
        "leftovers released ({released:?} after the restart; svc {old_svc} stopped): {probe}"
    ));
    let log = b.log("node1");
    for name in ["IPaddr::", "svc"] {
        assert!(
            log.lines().any(|l| l.contains("releasing")
                && l.contains(name)
                && l.contains("left running by a previous had")),
            "no release line for {name}\n{}",
            b.logs()
        );
    }
    // Then the cluster settles on one holder (node1, preferred, with auto_failback on).
    let one = b.lab.wait_until(Duration::from_secs(30), || {
        b.vip_on(0) != b.vip_on(1) && b.svc_pid("node1").is_some() != b.svc_pid("node2").is_some()
    });
    assert!(
        one.is_some(),
        "no single holder after the restart\n{}",
        b.logs()
    );
    // Past node2's deadtime as counted from the kill: any late takeover would show now.
    let quiet = kill_at + DEADTIME + Duration::from_secs(2);
    std::thread::sleep(quiet.saturating_duration_since(Instant::now()));
    b.assert_no_overlap(kill_at, "kill -9, restart");
    assert!(
        b.svc_pid("node1").is_none() || b.svc_pid("node2").is_none(),
        "svc on both nodes\n{}",
        b.logs()
    );
    eprintln!("test took {:?}", t_test.elapsed());
}

/// Reads the node's log until `pat` appears (or `timeout`); the matching line.
fn wait_log(b: &Bench, n: &str, pat: &str, timeout: Duration) -> Option<String> {
    let mut found = None;
    b.lab.wait_until(timeout, || {
        found = b
            .log(n)
            .lines()
            .find(|l| l.contains(pat))
            .map(str::to_string);
        found.is_some()
    });
    found
}

/// (a) kill -9 of the holder's had: its guard removes the VIP within milliseconds (then the
/// service), node2 takes over after its deadtime, and the 5 ms sampler never sees the VIP on
/// both nodes. The guard's resident size is measured while it waits.
#[test]
fn guard_releases_at_once_when_had_is_killed() {
    if !lab_available("guard_releases_at_once_when_had_is_killed") {
        return;
    }
    let t_test = Instant::now();
    let mut b = Bench::new().expect("lab");
    b.settled_on_node1();
    let had = b.lab.node("node1").had_pid().expect("had runs");
    let guard = guard_of(had).expect("had runs a guard");
    let rss = status_kb(guard, "VmRSS:").unwrap_or(0);
    let anon = status_kb(guard, "RssAnon:").unwrap_or(0);
    let had_rss = status_kb(had as i32, "VmRSS:").unwrap_or(0);
    let policy_of = |path: String| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("policy"))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("?")
            .to_string()
    };
    let policy = policy_of(format!("/proc/{guard}/sched"));
    // had's heartbeat thread: SCHED_RR when realtime was granted (CI runs as root).
    let had_policy = policy_of(format!("/proc/{had}/task/{had}/sched"));
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{guard}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let threads = std::fs::read_dir(format!("/proc/{guard}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    eprintln!(
        "guard pid {guard}: VmRSS {rss} kB, of which anonymous {anon} kB (had: {had_rss} kB), policy {policy} (had: {had_policy}; 2 = SCHED_RR), \
         {threads} thread(s), fds {fds:?}"
    );
    assert_eq!(threads, 1, "the guard waits on one thread, no runtime");
    assert!(
        fds.len() <= 4,
        "the guard holds only stdin, stdout, stderr (+ its signalfd): {fds:?}"
    );
    assert_eq!(
        policy, had_policy,
        "realtime is on: the guard runs in had's class (2 = SCHED_RR)"
    );
    // Once the daemon has been quiet for a while the guard gives back the code and heap its
    // messages used (realtime.rs `release_unused`): the release below must work from there.
    let trimmed = b.lab.wait_until(Duration::from_secs(15), || {
        status_kb(guard, "VmRSS:").is_some_and(|now| now < rss)
    });
    eprintln!(
        "guard VmRSS after settling: {:?} kB",
        status_kb(guard, "VmRSS:")
    );
    assert!(
        trimmed.is_some(),
        "the guard kept its start-up memory ({rss} kB) after 15 s without a message"
    );
    let old_svc = b.svc_pid("node1").expect("svc runs");
    let kill_wall = time_of_day(std::time::SystemTime::now());
    let kill_at = b.kill_had("node1");
    // The VIP leaves node1 (the sampler sees it), well before node2's deadtime.
    let left = b.lab.wait_until(Duration::from_secs(10), || {
        b.watch.samples().iter().any(|s| s.at > kill_at && !s.on[0])
    });
    assert!(
        left.is_some(),
        "the guard did not release the VIP\n{}",
        b.logs()
    );
    let vip_gone = b
        .watch
        .samples()
        .iter()
        .find(|s| s.at > kill_at && !s.on[0])
        .map(|s| s.at.duration_since(kill_at))
        .unwrap_or_default();
    b.step(&format!(
        "VIP gone from node1 {vip_gone:?} after kill -9 (5 ms sampler)"
    ));
    assert!(
        vip_gone < DEADTIME / 2,
        "the VIP took {vip_gone:?} to leave node1\n{}",
        b.logs()
    );
    let done = wait_log(
        &b,
        "node1",
        "guard: released 2 resource(s)",
        Duration::from_secs(10),
    );
    assert!(done.is_some(), "the guard did not finish\n{}", b.logs());
    assert!(!alive(old_svc), "the guard did not stop the service");
    let line =
        wait_log(&b, "node1", "guard: released IPaddr::", Duration::ZERO).unwrap_or_default();
    b.step(&format!("guard: {line}"));
    // The guard's own clock: its log line's time against the moment of the kill.
    let removed = wait_log(
        &b,
        "node1",
        &format!("removed {}", b.lab.vip(0)),
        Duration::ZERO,
    )
    .and_then(|l| log_time_of_day(&l));
    if let Some(t) = removed {
        b.step(&format!(
            "VIP removed {:.1} ms after the kill (log timestamp)",
            (t - kill_wall) * 1000.0
        ));
    }
    b.step(&format!("guard: {}", done.unwrap_or_default()));
    let gone = b.lab.wait_until(Duration::from_secs(5), || !alive(guard));
    assert!(gone.is_some(), "the guard did not exit after its work");
    // node2 takes over after its deadtime.
    let took = b.lab.wait_until(Duration::from_secs(20), || {
        b.vip_on(1) && b.svc_pid("node2").is_some()
    });
    assert!(took.is_some(), "node2 did not take over\n{}", b.logs());
    b.step(&format!(
        "node2 holds the VIP {:?} after the kill",
        kill_at.elapsed()
    ));
    std::thread::sleep(Duration::from_secs(1));
    b.assert_no_overlap(kill_at, "kill -9 with the guard");
    eprintln!("test took {:?}", t_test.elapsed());
}

/// (c) A clean stop: had releases its groups once and says goodbye; the guard leaves without
/// releasing anything, and node2 takes over at once.
#[test]
fn clean_stop_leaves_no_guard_and_releases_once() {
    if !lab_available("clean_stop_leaves_no_guard_and_releases_once") {
        return;
    }
    let t_test = Instant::now();
    let mut b = Bench::new().expect("lab");
    b.settled_on_node1();
    let had = b.lab.node("node1").had_pid().expect("had runs");
    let guard = guard_of(had).expect("had runs a guard");
    let vip = b.lab.vip(0);
    b.step("SIGTERM had on node1");
    let stop_at = Instant::now();
    b.lab
        .node("node1")
        .signal_had(Signal::SIGTERM)
        .expect("SIGTERM");
    let exited = b
        .lab
        .node_mut("node1")
        .wait_had_exit(Duration::from_secs(30))
        .expect("wait");
    assert_eq!(exited, Some(0), "had did not stop cleanly\n{}", b.logs());
    let gone = b.lab.wait_until(Duration::from_secs(5), || !alive(guard));
    assert!(
        gone.is_some(),
        "the guard outlived a clean stop\n{}",
        b.logs()
    );
    b.step(&format!(
        "had and its guard gone {:?} after SIGTERM",
        stop_at.elapsed()
    ));
    let took = b.lab.wait_until(Duration::from_secs(20), || {
        b.vip_on(1) && b.svc_pid("node2").is_some()
    });
    assert!(took.is_some(), "node2 did not take over\n{}", b.logs());
    std::thread::sleep(Duration::from_millis(500));
    let log = b.log("node1");
    let removed = log
        .lines()
        .filter(|l| l.contains(&format!("removed {vip}")))
        .count();
    assert_eq!(
        removed,
        1,
        "the VIP was removed {removed} times\n{}",
        b.logs()
    );
    assert!(
        log.contains("guard: had stopped cleanly"),
        "the guard did not log the goodbye\n{}",
        b.logs()
    );
    assert!(
        !log.contains("guard: released"),
        "the guard released something after a clean stop\n{}",
        b.logs()
    );
    b.assert_no_overlap(stop_at, "clean stop");
    eprintln!("test took {:?}", t_test.elapsed());
}
