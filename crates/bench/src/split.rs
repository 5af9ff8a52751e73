//! had's share of a move's client gap, from both nodes' logs: each step's wall-clock stamp
//! (`ha_lab::log_stamp`), from the decision to the client's first answer. The decision is
//! the admin's command for a planned move, and the preferred node's return as the holder
//! hears it for a failback (`auto_failback on`: the holder releases at once).

use std::time::SystemTime;

use ha_lab::log_stamp;

/// The parts of the split: report key suffix and what ends the part.
pub const PARTS: [(&str, &str); 6] = [
    ("release", "decision → release done on the old holder"),
    (
        "message",
        "→ handover message received on the new holder (or acted on: see `Marks::message`)",
    ),
    ("address", "→ addresses up on the new holder"),
    ("garp", "→ first gratuitous ARP sent"),
    ("service", "→ service started (group acquired)"),
    ("answer", "→ first client answer"),
];

/// What starts the move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// `admin: standby|takeover … requested by …` on either node (hactl standby/takeover).
    Admin,
    /// The first line the old holder logged about node `new` coming back (`Status update for
    /// node <new>: …` or `resource from <new>: …`): a failback's release follows it.
    PeerReturn {
        /// The returning (preferred) node.
        new: &'a str,
    },
}

/// The marks found in the logs, in order; each part is the time between two of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marks {
    /// The [`Decision`]'s line.
    pub decision: SystemTime,
    /// `resource group … released in` on the old holder.
    pub released: SystemTime,
    /// The last message from the old holder the new one logged between the release and its
    /// acquiring: the report that it let go. Where had's log limiter dropped that line (20
    /// resource messages a minute; a `--long` run's handovers follow each other faster), the
    /// new holder's `acquiring` line, written in the same wake-up as the message was read
    /// (0.65 ms after it in the captured handover below): the part then ends when the
    /// message was acted on.
    pub message: Option<SystemTime>,
    /// Whether `message` is the `acquiring` line because the message line was not written.
    pub message_acted_on: bool,
    /// `added <vip>/` on the new holder.
    pub address: SystemTime,
    /// `started IPaddr…` on the new holder: the agent logs it once the first gratuitous ARP
    /// went out (the address was added just before).
    pub garp: SystemTime,
    /// `resource group … acquired in` on the new holder: the service started.
    pub service: SystemTime,
    /// The client's first answer from the new holder.
    pub answer: SystemTime,
}

impl Marks {
    /// The parts in [`PARTS`] order, milliseconds; negative where a mark came before the
    /// one it follows (the client may get its first answer before had logs the group
    /// acquired).
    pub fn parts_ms(&self) -> [Option<f64>; 6] {
        let ms = |a: SystemTime, b: SystemTime| match b.duration_since(a) {
            Ok(d) => d.as_secs_f64() * 1000.0,
            Err(e) => -e.duration().as_secs_f64() * 1000.0,
        };
        [
            Some(ms(self.decision, self.released)),
            self.message.map(|m| ms(self.released, m)),
            self.message.map(|m| ms(m, self.address)),
            Some(ms(self.address, self.garp)),
            Some(ms(self.garp, self.service)),
            Some(ms(self.service, self.answer)),
        ]
    }
}

/// Stamp of the first line of `log` at or after `from` matching `f`.
fn first(log: &str, from: SystemTime, f: impl Fn(&str) -> bool) -> Option<SystemTime> {
    log.lines()
        .filter(|l| f(l))
        .filter_map(log_stamp)
        .find(|t| *t >= from)
}

/// The marks of one move, from the log text each node wrote since just before the command
/// or the new holder's start (`old_log`: the holder giving the group up, named `old`), `vip`
/// the service address and `answer` the client's first answer from the new holder.
pub fn marks(
    decision: Decision<'_>,
    old_log: &str,
    new_log: &str,
    old: &str,
    vip: &str,
    answer: SystemTime,
) -> Result<Marks, String> {
    let decision = match decision {
        Decision::Admin => {
            let is_admin = |l: &str| l.contains(" admin: ") && l.contains(" requested by ");
            [old_log, new_log]
                .iter()
                .filter_map(|log| first(log, std::time::UNIX_EPOCH, is_admin))
                .min()
                .ok_or_else(|| "no `admin: … requested` line on either node".to_owned())?
        }
        Decision::PeerReturn { new } => {
            let status = format!(" Status update for node {new}: ");
            let report = format!(" resource from {new}: ");
            first(old_log, std::time::UNIX_EPOCH, |l| {
                l.contains(&status) || l.contains(&report)
            })
            .ok_or_else(|| format!("no line about {new}'s return on the old holder"))?
        }
    };
    let released = first(old_log, decision, |l| {
        l.contains(" resource group ") && l.contains(" released in ")
    })
    .ok_or("no `resource group … released in` line on the old holder")?;
    let acquiring = first(new_log, decision, |l| {
        l.contains(" acquiring resource group ")
    })
    .ok_or("no `acquiring resource group` line on the new holder")?;
    let from_old = format!(" from {old}");
    let message = new_log
        .lines()
        .rev()
        .filter(|l| l.contains(&from_old) && !l.contains(" WARN "))
        .filter_map(log_stamp)
        .find(|t| *t >= released && *t <= acquiring);
    let message_acted_on = message.is_none();
    let message = message.or(Some(acquiring));
    let added = format!(" added {vip}/");
    let address = first(new_log, acquiring, |l| l.contains(&added))
        .ok_or_else(|| format!("no `added {vip}/` line on the new holder"))?;
    let garp = first(new_log, address, |l| l.contains(" started IP"))
        .ok_or("no `started IPaddr…` line on the new holder")?;
    let service = first(new_log, garp, |l| {
        l.contains(" resource group ") && l.contains(" acquired in ")
    })
    .ok_or("no `resource group … acquired in` line on the new holder")?;
    Ok(Marks {
        decision,
        released,
        message,
        message_acted_on,
        address,
        garp,
        service,
        answer,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    // Captured from a bench handover (`hactl standby` on node1, lab hl23cbef, debug build),
    // with the peer-report line had logs since; noise that must not match kept in.
    const OLD: &str = "\
2026-12-02T14:46:51.245348Z  INFO monitor 0 of IPaddr::198.18.24.100/24/eth0: passes group=IPaddr::198.18.24.100/24/eth0
2026-12-02T14:46:51.860807Z  INFO admin: standby all requested by control socket uid 0 pid 30802
2026-12-02T14:46:51.861565Z  INFO releasing resource group IPaddr::198.18.24.100/24/eth0 group=\"IPaddr::198.18.24.100/24/eth0\"
2026-12-02T14:46:51.875116Z  INFO monitor 0 of IPaddr::198.18.24.100/24/eth0: fails while IPaddr::198.18.24.100/24/eth0 does not run here (expected; not acted on, logged once): no process named busybox group=IPaddr::198.18.24.100/24/eth0
2026-12-02T14:46:51.901584Z  INFO stopped web::198.18.24.100 group=\"IPaddr::198.18.24.100/24/eth0\" resource=\"web::198.18.24.100\" ms=39
2026-12-02T14:46:51.902295Z  INFO removed 198.18.24.100 resource=IPaddr::198.18.24.100/24/eth0
2026-12-02T14:46:51.902317Z  INFO stopped IPaddr::198.18.24.100/24/eth0 group=\"IPaddr::198.18.24.100/24/eth0\" resource=\"IPaddr::198.18.24.100/24/eth0\" ms=0
2026-12-02T14:46:51.902445Z  INFO resource group IPaddr::198.18.24.100/24/eth0 released in 40 ms group=IPaddr::198.18.24.100/24/eth0 ms=40
";
    const NEW: &str = "\
2026-12-02T14:46:50.193126Z  INFO Status update for node node1: status active node=node1
2026-12-02T14:46:51.200000Z  INFO added 198.18.24.100/24 resource=stale iface=eth0
2026-12-02T14:46:51.861900Z  INFO resource from node1: holds Local, stable false node=node1
2026-12-02T14:46:51.880000Z  WARN dropping packets from 198.18.24.50:37213 (claims to be node1): bad_auth
2026-12-02T14:46:51.903100Z  INFO resource from node1: holds None, stable true node=node1
2026-12-02T14:46:51.903751Z  INFO acquiring resource group IPaddr::198.18.24.100/24/eth0 group=\"IPaddr::198.18.24.100/24/eth0\"
2026-12-02T14:46:51.904284Z  INFO added 198.18.24.100/24 resource=IPaddr::198.18.24.100/24/eth0 iface=eth0
2026-12-02T14:46:51.904348Z  INFO started IPaddr::198.18.24.100/24/eth0 group=\"IPaddr::198.18.24.100/24/eth0\" resource=\"IPaddr::198.18.24.100/24/eth0\" ms=0
2026-12-02T14:46:51.921132Z  INFO started web::198.18.24.100 group=\"IPaddr::198.18.24.100/24/eth0\" resource=\"web::198.18.24.100\" ms=15
2026-12-02T14:46:51.921279Z  INFO resource group IPaddr::198.18.24.100/24/eth0 acquired in 17 ms group=IPaddr::198.18.24.100/24/eth0 ms=17
";

    #[test]
    fn split_of_a_captured_handover() {
        let answer = log_stamp("2026-12-02T14:46:51.925000Z").unwrap();
        let m = marks(Decision::Admin, OLD, NEW, "node1", "198.18.24.100", answer).unwrap();
        assert!(!m.message_acted_on);
        let p = m.parts_ms().map(Option::unwrap);
        let want = [41.638, 0.655, 1.184, 0.064, 16.931, 3.721];
        for (got, want) in p.iter().zip(want) {
            assert!((got - want).abs() < 0.001, "{p:?}");
        }
        // The parts add up to decision → answer.
        let total = answer.duration_since(m.decision).unwrap();
        assert!((p.iter().sum::<f64>() - total.as_secs_f64() * 1000.0).abs() < 0.01);
        // The report written before the release (`holds Local, stable false`) is not the
        // handover message: without the one after it, those two parts are unknown.
        let rate_limited: String = NEW
            .lines()
            .filter(|l| !l.contains("holds None"))
            .map(|l| format!("{l}\n"))
            .collect();
        let m = marks(
            Decision::Admin,
            OLD,
            &rate_limited,
            "node1",
            "198.18.24.100",
            answer,
        )
        .unwrap();
        let p = m.parts_ms().map(Option::unwrap);
        assert!(m.message_acted_on);
        // Release → acquiring line, acquiring → address: the two parts still add up.
        assert!(
            (p[1] - 1.306).abs() < 0.001 && (p[2] - 0.533).abs() < 0.001,
            "{p:?}"
        );
    }

    #[test]
    fn missing_lines_are_named() {
        let answer = log_stamp("2026-12-02T14:46:51.925000Z").unwrap();
        let e = marks(Decision::Admin, OLD, "", "node1", "198.18.24.100", answer).unwrap_err();
        assert!(e.contains("acquiring"), "{e}");
        let no_release: String = OLD
            .lines()
            .filter(|l| !l.contains("released in"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = marks(
            Decision::Admin,
            &no_release,
            NEW,
            "node1",
            "198.18.24.100",
            answer,
        )
        .unwrap_err();
        assert!(e.contains("released in"), "{e}");
        // A message from another node does not count as the handover message.
        let m = marks(Decision::Admin, OLD, NEW, "node3", "198.18.24.100", answer).unwrap();
        assert!(m.message_acted_on);
        // An answer before the group's `acquired` line (the web agent waits for its server to
        // listen before it reports started) is a negative last part, not hidden.
        let early = answer - Duration::from_millis(5);
        let m = marks(Decision::Admin, OLD, NEW, "node1", "198.18.24.100", early).unwrap();
        assert!(
            (m.parts_ms()[5].unwrap() + 1.279).abs() < 0.001,
            "{:?}",
            m.parts_ms()
        );
    }

    // Captured from a bench failback (crash drill, lab hlf5ad1f, release build): node1's had
    // restarted at 16:46:10.662909; node2 held the group and gave it back.
    const FB_OLD: &str = "\
2026-12-02T16:46:09.807845Z  INFO resource group IPaddr::198.18.88.100/24/eth0 acquired in 19 ms group=\"IPaddr::198.18.88.100/24/eth0\" ms=\"19\"
2026-12-02T16:46:10.663166Z  INFO Status update for node node1: status up node=\"node1\"
2026-12-02T16:46:10.664077Z  INFO Status update for node node1: status active node=\"node1\"
2026-12-02T16:46:10.664086Z  INFO resource from node1: holds None, stable true node=\"node1\"
2026-12-02T16:46:10.664178Z  INFO releasing resource group IPaddr::198.18.88.100/24/eth0 group=\"IPaddr::198.18.88.100/24/eth0\"
2026-12-02T16:46:10.669712Z  INFO stopped web::198.18.88.100 group=\"IPaddr::198.18.88.100/24/eth0\" resource=\"web::198.18.88.100\" ms=\"5\"
2026-12-02T16:46:10.669927Z  INFO removed 198.18.88.100 resource=IPaddr::198.18.88.100/24/eth0
2026-12-02T16:46:10.669973Z  INFO resource group IPaddr::198.18.88.100/24/eth0 released in 5 ms group=\"IPaddr::198.18.88.100/24/eth0\" ms=\"5\"
";
    const FB_NEW: &str = "\
2026-12-02T16:46:10.662909Z  INFO had 0.1.0 starting: node node1, peer node2, 1 group(s), keepalive 1s, deadtime 5s, initdead 10s node=\"node1\"
2026-12-02T16:46:10.663979Z  INFO resource from node2: holds All, stable true node=\"node2\"
2026-12-02T16:46:10.663986Z  INFO Comm up: status active
2026-12-02T16:46:10.664173Z  INFO resource from node2: holds All, stable false node=\"node2\"
2026-12-02T16:46:10.670130Z  INFO resource from node2: holds Local, stable true node=\"node2\"
2026-12-02T16:46:10.670311Z  INFO acquiring resource group IPaddr::198.18.88.100/24/eth0 group=\"IPaddr::198.18.88.100/24/eth0\"
2026-12-02T16:46:10.670510Z  INFO added 198.18.88.100/24 resource=IPaddr::198.18.88.100/24/eth0 iface=eth0
2026-12-02T16:46:10.670600Z  INFO started IPaddr::198.18.88.100/24/eth0 group=\"IPaddr::198.18.88.100/24/eth0\" ms=0
2026-12-02T16:46:10.702019Z  INFO started web::198.18.88.100 group=\"IPaddr::198.18.88.100/24/eth0\" resource=\"web::198.18.88.100\" ms=\"30\"
2026-12-02T16:46:10.702058Z  INFO resource group IPaddr::198.18.88.100/24/eth0 acquired in 31 ms group=\"IPaddr::198.18.88.100/24/eth0\" ms=\"31\"
";

    #[test]
    fn split_of_a_captured_failback() {
        let answer = log_stamp("2026-12-02T16:46:10.703000Z").unwrap();
        let back = Decision::PeerReturn { new: "node1" };
        let m = marks(back, FB_OLD, FB_NEW, "node2", "198.18.88.100", answer).unwrap();
        // The decision is node2 first hearing node1, not node1's own start or its old lines.
        assert_eq!(
            m.decision,
            log_stamp("2026-12-02T16:46:10.663166Z").unwrap()
        );
        let p = m.parts_ms().map(Option::unwrap);
        let want = [6.807, 0.157, 0.380, 0.090, 31.458, 0.942];
        for (got, want) in p.iter().zip(want) {
            assert!((got - want).abs() < 0.001, "{p:?}");
        }
        // A planned-move split finds no admin line here, and a failback needs the return.
        let e = marks(
            Decision::Admin,
            FB_OLD,
            FB_NEW,
            "node2",
            "198.18.88.100",
            answer,
        );
        assert!(e.unwrap_err().contains("admin"));
        let e = marks(back, FB_OLD, FB_NEW, "node2", "198.18.88.100", answer);
        assert!(e.is_ok());
        let other = Decision::PeerReturn { new: "node3" };
        let e = marks(other, FB_OLD, FB_NEW, "node2", "198.18.88.100", answer).unwrap_err();
        assert!(e.contains("node3"), "{e}");
    }
}
