//! One event, one line: two real liveness machines, a virtual network and virtual time,
//! their events through the daemon's `on_liveness_event`, and the lines a subscriber
//! captured counted. The three lines that once had two writers (a late heartbeat, a peer
//! returning after a partition, a peer's restart) must each appear exactly once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::NodeName;
use crate::auth::{Auth, AuthMethod};
use crate::liveness::{Liveness, LivenessConfig, MediumId};

use crate::cluster::ReportOrder;
use crate::netlog::NetLog;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture")).into_owned()
    }
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)), 694)
}

fn machine(local: &str, peer: &str, generation: u64, now: Instant) -> Liveness {
    let last = local.as_bytes()[local.len() - 1];
    Liveness::new(
        LivenessConfig {
            local: NodeName::from(local),
            uuid: [last; 16],
            generation,
            peers: vec![NodeName::from(local), NodeName::from(peer)],
            media: vec!["eth0".into()],
            keepalive: Duration::from_secs(1),
            deadtime: Duration::from_secs(5),
            warntime: Duration::from_secs(3),
            initdead: Duration::from_secs(20),
            auth: Auth::from_keys(1, [(1, AuthMethod::Sha1, b"secret".to_vec())]),
            unix_now_at_start: 0x6b04_de53 + generation,
            local_addrs: vec![addr(last - b'0').ip()],
            peer_floors: Vec::new(),
        },
        now,
    )
}

/// node1 (whose log is read) and node2, on one link, stepped 100 ms at a time.
struct Net {
    t: Instant,
    node1: Liveness,
    node2: Liveness,
    order: ReportOrder,
    log: NetLog,
    peer: NodeName,
}

impl Net {
    fn new() -> Self {
        let t = Instant::now();
        Self {
            t,
            node1: machine("node1", "node2", 1, t),
            node2: machine("node2", "node1", 1, t),
            order: ReportOrder::default(),
            log: NetLog::default(),
            peer: NodeName::from("node2"),
        }
    }

    /// Runs for `d`; node2's packets reach node1 only when `linked`.
    fn run(&mut self, d: Duration, linked: bool) {
        let end = self.t + d;
        while self.t < end {
            self.t += Duration::from_millis(100);
            let now = self.t;
            self.node1.handle_timeout(now);
            self.node2.handle_timeout(now);
            while let Some(tx) = self.node2.poll_transmit() {
                if linked {
                    self.node1
                        .handle_datagram(now, MediumId(0), addr(2), &tx.bytes);
                }
            }
            while let Some(tx) = self.node1.poll_transmit() {
                if linked {
                    self.node2
                        .handle_datagram(now, MediumId(0), addr(1), &tx.bytes);
                }
            }
            while let Some(ev) = self.node1.poll_event() {
                let _ = crate::node::on_liveness_event(
                    ev,
                    &self.peer,
                    &mut self.order,
                    &mut self.log,
                    now,
                );
            }
        }
    }

    /// node2 starts again with a newer generation.
    fn restart_node2(&mut self) {
        self.node2 = machine("node2", "node1", 2, self.t);
    }
}

/// Runs `f` with a subscriber capturing info and up, and returns the captured lines.
fn lines(f: impl FnOnce()) -> String {
    let out = Captured::default();
    let w = out.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::with_default(sub, f);
    out.text()
}

fn count(log: &str, text: &str) -> usize {
    let n = log.lines().filter(|l| l.contains(text)).count();
    println!("{n} × {text:?}");
    n
}

#[test]
fn a_late_heartbeat_is_one_line() {
    let log = lines(|| {
        let mut net = Net::new();
        net.run(Duration::from_secs(5), true);
        // Longer than warntime (3 s), shorter than deadtime (5 s).
        net.run(Duration::from_millis(3500), false);
        net.run(Duration::from_secs(3), true);
    });
    assert_eq!(
        count(&log, "Late heartbeat: Node node2: interval"),
        1,
        "{log}"
    );
    assert_eq!(count(&log, "is dead"), 0, "{log}");
}

#[test]
fn a_return_after_partition_is_one_line() {
    let log = lines(|| {
        let mut net = Net::new();
        net.run(Duration::from_secs(5), true);
        net.run(Duration::from_secs(8), false);
        net.run(Duration::from_secs(3), true);
    });
    assert_eq!(count(&log, "node node2: is dead"), 1, "{log}");
    assert_eq!(
        count(&log, "Cluster node node2 returning after partition."),
        1,
        "{log}"
    );
    assert_eq!(count(&log, "Heartbeat restart"), 0, "{log}");
}

#[test]
fn a_restart_while_alive_is_one_line() {
    let log = lines(|| {
        let mut net = Net::new();
        net.run(Duration::from_secs(5), true);
        net.restart_node2();
        net.run(Duration::from_secs(3), true);
    });
    assert_eq!(count(&log, "Heartbeat restart on node node2"), 1, "{log}");
    assert_eq!(count(&log, "returning after partition"), 0, "{log}");
}

#[test]
fn a_restart_after_death_is_one_line() {
    let log = lines(|| {
        let mut net = Net::new();
        net.run(Duration::from_secs(5), true);
        net.run(Duration::from_secs(8), false);
        net.restart_node2();
        net.run(Duration::from_secs(3), true);
    });
    assert_eq!(count(&log, "node node2: is dead"), 1, "{log}");
    assert_eq!(count(&log, "Heartbeat restart on node node2"), 1, "{log}");
    assert_eq!(count(&log, "returning after partition"), 0, "{log}");
}
