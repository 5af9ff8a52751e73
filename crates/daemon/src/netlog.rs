//! Every log line a packet can trigger goes through here: one limiter (`ha_logsafe`), keyed
//! by reason (never by sender, so fresh source ports share one budget), with "N more
//! suppressed in the last S s" summaries; values from packets arrive already escaped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ha_logsafe::{Budget, RateLimiter, Untrusted};
use ha_transport::auth::DropReason;
use tracing::{info, warn};

/// The reasons a packet can make us write a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetLine {
    /// A packet dropped before it was authenticated (per drop reason).
    Dropped(DropReason),
    /// Authentic packets dropped because the loop's queue was full.
    QueueFull,
    /// Late heartbeats.
    Late,
    /// Links going up or down.
    Link,
    /// A peer's status, death, restart or return.
    Peer,
    /// A packet lost for good on the peer's side (`NS_nak_rexmit`).
    Lost,
    /// Resource messages from the peer (reports, standby, takeover, shutdown).
    Message,
    /// Serial port read errors.
    Serial,
    /// Signed packets with our own name from another address.
    OwnName,
}

/// Drops: a few lines a minute say enough (the counters are in `hactl status`). State lines
/// are rare in a healthy cluster; their budget only bites when something replays or flaps.
fn budget(line: NetLine) -> Budget {
    let minute = Duration::from_secs(60);
    match line {
        NetLine::Dropped(_) | NetLine::QueueFull | NetLine::OwnName => Budget {
            lines: 3,
            window: minute,
        },
        _ => Budget {
            lines: 20,
            window: minute,
        },
    }
}

/// The limiter and the lines.
#[derive(Debug)]
pub struct NetLog {
    limiter: RateLimiter<NetLine>,
}

impl Default for NetLog {
    fn default() -> Self {
        Self {
            limiter: RateLimiter::new(budget),
        }
    }
}

impl NetLog {
    /// Whether a line for `line` may be written now (else it is counted for the summary).
    pub fn allow(&mut self, line: NetLine, now: Instant) -> bool {
        self.limiter.allow(line, now)
    }

    /// A packet that failed the checks or authentication.
    pub fn dropped(
        &mut self,
        now: Instant,
        from: SocketAddr,
        claimed_src: Option<Untrusted>,
        reason: DropReason,
    ) {
        if !self.allow(NetLine::Dropped(reason), now) {
            return;
        }
        let claim = claimed_src
            .map(|s| format!(" (claims to be {s})"))
            .unwrap_or_default();
        warn!(
            from = %from,
            reason = reason.as_str(),
            "dropping packets from {from}{claim}: {reason}; check that /etc/ha.d/authkeys is \
             identical on both nodes (lines like this are rate-limited; `hactl status` counts \
             every packet)"
        );
    }

    /// Authentic packets the loop could not take in time.
    pub fn queue_full(&mut self, now: Instant, lost: u64) {
        if self.allow(NetLine::QueueFull, now) {
            warn!("receive queue full: {lost} authentic packet(s) dropped so far");
        }
    }

    /// Writes the summaries whose window ended.
    pub fn flush(&mut self, now: Instant) {
        while let Some(s) = self.limiter.poll_summary(now) {
            let what = match s.key {
                NetLine::Dropped(r) => format!("dropping packets ({r})"),
                NetLine::QueueFull => "receive queue full".into(),
                NetLine::Late => "late heartbeats".into(),
                NetLine::Link => "link changes".into(),
                NetLine::Peer => "peer status changes".into(),
                NetLine::Lost => "packets lost for good".into(),
                NetLine::Message => "resource messages".into(),
                NetLine::Serial => "serial receive errors".into(),
                NetLine::OwnName => "another node uses our name".into(),
            };
            match s.key {
                NetLine::Message | NetLine::Peer => info!("{what}: {s}"),
                _ => warn!("{what}: {s}"),
            }
        }
    }

    /// When the next summary is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.limiter.poll_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_thousand_senders_share_one_budget() {
        let t0 = Instant::now();
        let mut l = NetLog::default();
        let shown = (0..2000u64)
            .filter(|i| {
                l.allow(
                    NetLine::Dropped(DropReason::NoAuth),
                    t0 + Duration::from_millis(*i),
                )
            })
            .count();
        assert_eq!(shown, 3);
        assert!(l.allow(NetLine::Late, t0), "each reason has its own budget");
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    }
}
