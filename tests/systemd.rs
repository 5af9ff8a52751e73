//! End to end, issue 12: had under a service manager. A real listener on `NOTIFY_SOCKET` sees
//! READY=1 only once the sockets answer, STATUS= lines with the node's role, RELOADING=1 then
//! READY=1 around a reload, WATCHDOG=1 at half of WATCHDOG_USEC from the main loop (and none
//! while the loop is stopped), and STOPPING=1 on SIGTERM. Needs root; HA_REQUIRE_LAB=1 makes it
//! fail instead of skipping.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{Cluster, Setup};
use nix::sys::signal::Signal;

/// Everything received so far, with arrival times.
struct Listener {
    sock: UnixDatagram,
    got: Vec<(Instant, String)>,
}

impl Listener {
    fn bind(path: &std::path::Path) -> Listener {
        let sock = UnixDatagram::bind(path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Listener {
            sock,
            got: Vec::new(),
        }
    }

    /// Receives for `d`, returning what arrived in that time.
    fn collect(&mut self, d: Duration) -> Vec<(Instant, String)> {
        let until = Instant::now() + d;
        let from = self.got.len();
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let s = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push((Instant::now(), s));
            }
        }
        self.got[from..].to_vec()
    }

    /// Receives until a message satisfies `f` or `timeout` passes.
    fn wait_for(&mut self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<Instant> {
        let until = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let s = String::from_utf8_lossy(&buf[..n]).into_owned();
                let now = Instant::now();
                let hit = f(&s);
                self.got.push((now, s));
                if hit {
                    return Some(now);
                }
            }
        }
        None
    }

    fn all(&self) -> String {
        self.got
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

#[test]
fn notify_protocol_and_watchdog_from_the_main_loop() {
    if !ha_lab::lab_available("notify_protocol_and_watchdog") {
        return;
    }
    let t_test = Instant::now();
    let mut c = Cluster::prepare(&Setup::default()).expect("lab");
    let path = c.lab.dir().join("notify.sock");
    let mut l = Listener::bind(&path);
    let had = c.had.clone();
    let path_s = path.to_string_lossy().into_owned();
    // WatchdogSec=1s: pings every 500 ms.
    c.lab
        .node_mut("node1")
        .start_had_env(
            &had,
            &[],
            &[("NOTIFY_SOCKET", &path_s), ("WATCHDOG_USEC", "1000000")],
        )
        .expect("start node1");
    c.start_node("node2").expect("start node2");

    // READY=1 means the control socket already answers.
    let ready = l.wait_for(Duration::from_secs(10), |s| s.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1: {}\n{}", l.all(), c.logs());
    let st = c.status_json("node1");
    assert!(st.is_ok(), "READY=1 before the control socket: {st:?}");

    // node1 is preferred: it says so once it holds the group.
    let active = l.wait_for(Duration::from_secs(20), |s| {
        s.starts_with("STATUS=node1: active, holding 1/1 group(s)")
    });
    assert!(
        active.is_some(),
        "no active STATUS: {}\n{}",
        l.all(),
        c.logs()
    );

    // Watchdog pings at about twice the WatchdogSec rate.
    let window = Duration::from_secs(3);
    let pings: Vec<Instant> = l
        .collect(window)
        .into_iter()
        .filter(|(_, s)| s == "WATCHDOG=1")
        .map(|(t, _)| t)
        .collect();
    let gaps: Vec<u128> = pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis())
        .collect();
    println!(
        "watchdog: {} pings in {window:?}, gaps {gaps:?} ms",
        pings.len()
    );
    assert!(
        (4..=8).contains(&pings.len()),
        "expected ~6 pings at 500 ms in 3 s, got {} ({gaps:?})",
        pings.len()
    );
    assert!(
        gaps.iter().all(|&g| g < 900),
        "a gap reached the 1 s watchdog: {gaps:?}"
    );

    // A reload is bracketed.
    let out = c
        .lab
        .node("node1")
        .hactl(&c.hactl, &["reload"])
        .expect("hactl");
    assert!(out.status.success(), "{out:?}");
    let after_reload = l.collect(Duration::from_millis(700));
    let msgs: Vec<&str> = after_reload.iter().map(|(_, s)| s.as_str()).collect();
    let r = msgs.iter().position(|s| *s == "RELOADING=1");
    let rd = msgs.iter().rposition(|s| *s == "READY=1");
    assert!(
        matches!((r, rd), (Some(a), Some(b)) if a < b),
        "RELOADING=1 then READY=1 expected: {msgs:?}"
    );

    // A stopped loop sends nothing: that is what lets systemd restart a hung daemon.
    c.lab
        .node("node1")
        .signal_had(Signal::SIGSTOP)
        .expect("SIGSTOP");
    // Whatever was already queued arrives first.
    l.collect(Duration::from_millis(100));
    let frozen = l.collect(Duration::from_millis(2000));
    c.lab
        .node("node1")
        .signal_had(Signal::SIGCONT)
        .expect("SIGCONT");
    assert!(
        frozen.iter().all(|(_, s)| s != "WATCHDOG=1"),
        "pings while stopped: {frozen:?}"
    );
    let resumed = l.wait_for(Duration::from_secs(3), |s| s == "WATCHDOG=1");
    assert!(resumed.is_some(), "pings did not resume after SIGCONT");

    // SIGTERM: STOPPING=1 first, then the release.
    c.lab
        .node("node1")
        .signal_had(Signal::SIGTERM)
        .expect("SIGTERM");
    let stopping = l.wait_for(Duration::from_secs(5), |s| s == "STOPPING=1");
    assert!(stopping.is_some(), "no STOPPING=1: {}", l.all());
    let code = c
        .lab
        .node_mut("node1")
        .wait_had_exit(Duration::from_secs(30))
        .expect("wait");
    assert_eq!(code, Some(0), "{}", c.logs());
    c.expect_served_by("node2", Duration::from_secs(10));
    println!("notify test took {:.1} s", t_test.elapsed().as_secs_f64());
}
