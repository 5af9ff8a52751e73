//! Every log line a packet can trigger goes through here: one limiter (`ha_logsafe`), keyed
//! by the catalogue's variant (and a drop's reason; never by sender, so fresh source ports
//! share one budget), with "N more suppressed in the last S s" summaries. The lines
//! themselves, and the escaping of what a packet supplied, are the catalogue's (`logcat`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::auth::DropReason;
use ha_logsafe::{Budget, RateLimiter, Untrusted};

use crate::logcat::{self, Claim, Limit, LogEvent};

/// What the limiter counts by: a catalogue variant, and for drops the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NetKey {
    /// The variant's name.
    pub id: &'static str,
    /// The drop reason, for [`LogEvent::Dropped`].
    pub reason: Option<DropReason>,
    limit: LimitKey,
}

/// [`Limit`], ordered (only the limiter needs that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum LimitKey {
    Drops,
    Trouble,
    Chatter,
}

/// Drops: a few lines a minute say enough (the counters are in `hactl status`). State lines
/// are rare in a healthy cluster; their budget only bites when something replays or flaps.
fn budget(key: NetKey) -> Budget {
    let minute = Duration::from_secs(60);
    match key.limit {
        LimitKey::Drops => Budget {
            lines: 3,
            window: minute,
        },
        LimitKey::Trouble | LimitKey::Chatter => Budget {
            lines: 20,
            window: minute,
        },
    }
}

/// The limiter and the lines.
#[derive(Debug)]
pub struct NetLog {
    limiter: RateLimiter<NetKey>,
}

impl Default for NetLog {
    fn default() -> Self {
        Self {
            limiter: RateLimiter::new(budget),
        }
    }
}

impl NetLog {
    /// Writes `ev` if its budget allows (else it is counted for the summary). Lines without a
    /// limit in the catalogue are written as they are.
    pub fn emit(&mut self, now: Instant, ev: &LogEvent<'_>) {
        if self.allow(ev, now) {
            logcat::log(ev);
        }
    }

    /// Whether `ev` may be written now (else it is counted for the summary).
    pub fn allow(&mut self, ev: &LogEvent<'_>, now: Instant) -> bool {
        let e = ev.entry();
        let limit = match e.limit {
            Limit::None => return true,
            Limit::Drops => LimitKey::Drops,
            Limit::Trouble => LimitKey::Trouble,
            Limit::Chatter => LimitKey::Chatter,
        };
        let reason = match ev {
            LogEvent::Dropped { reason, .. } => Some(*reason),
            _ => None,
        };
        self.limiter.allow(
            NetKey {
                id: e.id,
                reason,
                limit,
            },
            now,
        )
    }

    /// A packet that failed the checks or authentication.
    pub fn dropped(
        &mut self,
        now: Instant,
        from: SocketAddr,
        claimed_src: Option<Untrusted>,
        reason: DropReason,
    ) {
        self.emit(
            now,
            &LogEvent::Dropped {
                from,
                claim: Claim(claimed_src),
                reason,
            },
        );
    }

    /// Authentic packets the loop could not take in time.
    pub fn queue_full(&mut self, now: Instant, lost: u64) {
        self.emit(now, &LogEvent::QueueFull { lost });
    }

    /// Writes the summaries whose window ended.
    pub fn flush(&mut self, now: Instant) {
        while let Some(s) = self.limiter.poll_summary(now) {
            let label = logcat::ENTRIES
                .iter()
                .find(|e| e.id == s.key.id)
                .map_or(s.key.id, |e| e.summary);
            let what = match s.key.reason {
                Some(r) => format!("{label} ({r})"),
                None => label.to_string(),
            };
            let ev = match s.key.limit {
                LimitKey::Chatter => LogEvent::SuppressedInfo {
                    what: &what,
                    summary: &s,
                },
                LimitKey::Drops | LimitKey::Trouble => LogEvent::Suppressed {
                    what: &what,
                    summary: &s,
                },
            };
            logcat::log(&ev);
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
    use crate::NodeName;

    #[test]
    fn two_thousand_senders_share_one_budget() {
        let t0 = Instant::now();
        let mut l = NetLog::default();
        let shown = (0..2000u64)
            .filter(|i| {
                let from = SocketAddr::from(([198, 18, 0, 9], 1024 + *i as u16));
                let ev = LogEvent::Dropped {
                    from,
                    claim: Claim(None),
                    reason: DropReason::NoAuth,
                };
                l.allow(&ev, t0 + Duration::from_millis(*i))
            })
            .count();
        assert_eq!(shown, 3);
        let node = NodeName::from("node2");
        let late = LogEvent::LateHeartbeat {
            node: &node,
            ms: 4000,
        };
        assert!(l.allow(&late, t0), "each variant has its own budget");
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn lines_not_triggered_by_packets_are_never_limited() {
        let t0 = Instant::now();
        let mut l = NetLog::default();
        let ev = LogEvent::CommUp {};
        assert!((0..1000).all(|_| l.allow(&ev, t0)));
        assert_eq!(l.poll_timeout(), None);
    }
}
