//! Per-peer sequence tracking: duplicates, gaps, and the retransmission
//! requests still owed for the seqs a gap left missing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A gap wider than this resets tracking instead of asking for each seq
/// (Heartbeat's `FLOWCONTROL_LIMIT`, half its 500-message history).
pub(super) const MAX_GAP: u64 = 250;
/// At most this many missing seqs are remembered (`MAXMISSING`).
pub(super) const MAX_MISSING: usize = 500;
/// Interval between repeated requests for one seq (`max_rexmit_delay`).
pub(super) const REXMIT_REPEAT: Duration = Duration::from_millis(250);
/// Requests per missing seq before giving up on it. Heartbeat asks forever
/// while the peer lives; a bound keeps a peer that lost its history (or a
/// lost NAK) from costing us a packet every 250 ms indefinitely.
pub(super) const MAX_REQUESTS: u32 = 20;

/// What a received seq means for the message carrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// In order (or the first seen): accept.
    Accept,
    /// Seen before: absorb.
    Duplicate,
    /// Accept; these seqs before it are now missing.
    Gap(Vec<u64>),
    /// Accept; the gap was too wide to repair, so tracking restarted here.
    Reset,
    /// Accept; it filled a recorded gap.
    Recovered,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    due: Instant,
    requests: u32,
}

/// Sequence state of one peer.
#[derive(Debug, Default)]
pub(super) struct SeqTracker {
    last: Option<u64>,
    missing: BTreeMap<u64, Pending>,
}

impl SeqTracker {
    /// Forgets everything (restart, healed partition).
    pub(super) fn reset(&mut self) {
        self.last = None;
        self.missing.clear();
    }

    /// The highest seq seen since the last reset.
    pub(super) fn last(&self) -> Option<u64> {
        self.last
    }

    /// Tracks a new generation of a peer already known: its seqs start again at 1, so the
    /// ones below the first seen are missing, not duplicates. Messages sent together may
    /// arrive out of order (two links, a retransmission); the restart's own status or its
    /// `starting` must not be dropped because a later message came first.
    pub(super) fn new_generation(&mut self) {
        self.last = Some(0);
        self.missing.clear();
    }

    /// Stops asking for missing seqs (the peer died) but keeps `last`.
    pub(super) fn forget_missing(&mut self) {
        self.missing.clear();
    }

    /// Classifies `seq`; missing seqs get their first request at `first_request`.
    pub(super) fn classify(&mut self, seq: u64, first_request: Instant) -> Verdict {
        let Some(last) = self.last else {
            self.last = Some(seq);
            return Verdict::Accept;
        };
        if seq == last {
            return Verdict::Duplicate;
        }
        if seq < last {
            return if self.missing.remove(&seq).is_some() {
                Verdict::Recovered
            } else {
                Verdict::Duplicate
            };
        }
        self.last = Some(seq);
        if seq == last + 1 {
            return Verdict::Accept;
        }
        if seq - last - 1 > MAX_GAP {
            self.missing.clear();
            return Verdict::Reset;
        }
        let new: Vec<u64> = (last + 1..seq).collect();
        for &s in &new {
            self.missing.insert(
                s,
                Pending {
                    due: first_request,
                    requests: 0,
                },
            );
        }
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_first();
        }
        Verdict::Gap(new)
    }

    /// Stops asking for `seq` (the origin NAKed it); true if it was missing.
    pub(super) fn give_up(&mut self, seq: u64) -> bool {
        self.missing.remove(&seq).is_some()
    }

    /// The seqs whose request is due at `now`, rescheduling each.
    pub(super) fn due_requests(&mut self, now: Instant) -> Vec<u64> {
        let due: Vec<u64> = self
            .missing
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(&s, _)| s)
            .collect();
        for s in &due {
            if let Some(p) = self.missing.get_mut(s) {
                p.requests += 1;
                p.due = now + REXMIT_REPEAT;
                if p.requests >= MAX_REQUESTS {
                    self.missing.remove(s);
                }
            }
        }
        due
    }

    /// When the next request falls due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.missing.values().map(|p| p.due).min()
    }

    /// Whether `seq` is recorded as missing.
    #[cfg(test)]
    pub(super) fn is_missing(&self, seq: u64) -> bool {
        self.missing.contains_key(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_duplicate_gap_recover() {
        let t0 = Instant::now();
        let mut s = SeqTracker::default();
        assert_eq!(s.classify(5, t0), Verdict::Accept);
        assert_eq!(s.classify(5, t0), Verdict::Duplicate);
        assert_eq!(s.classify(6, t0), Verdict::Accept);
        assert_eq!(s.classify(9, t0), Verdict::Gap(vec![7, 8]));
        assert!(s.is_missing(7) && s.is_missing(8));
        assert_eq!(s.classify(8, t0), Verdict::Recovered);
        assert_eq!(s.classify(8, t0), Verdict::Duplicate);
        assert_eq!(s.classify(4, t0), Verdict::Duplicate);
        assert!(s.give_up(7));
        assert!(!s.give_up(7));
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_new_generation_counts_from_one() {
        let t0 = Instant::now();
        let mut s = SeqTracker::default();
        s.classify(40, t0);
        s.new_generation();
        // Its report (seq 4) overtook its status (2) and its `starting` (3).
        assert_eq!(s.classify(4, t0), Verdict::Gap(vec![1, 2, 3]));
        assert_eq!(s.classify(2, t0), Verdict::Recovered);
        assert_eq!(s.classify(3, t0), Verdict::Recovered);
        assert_eq!(s.classify(3, t0), Verdict::Duplicate);
    }

    #[test]
    fn wide_gap_resets() {
        let t0 = Instant::now();
        let mut s = SeqTracker::default();
        s.classify(1, t0);
        assert_eq!(
            s.classify(2 + MAX_GAP, t0),
            Verdict::Gap((2..2 + MAX_GAP).collect())
        );
        assert_eq!(s.classify(3 + 2 * MAX_GAP + 1, t0), Verdict::Reset);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn requests_repeat_then_stop() {
        let t0 = Instant::now();
        let mut s = SeqTracker::default();
        s.classify(1, t0);
        s.classify(3, t0 + Duration::from_millis(100));
        assert_eq!(s.due_requests(t0), Vec::<u64>::new());
        let mut at = t0 + Duration::from_millis(100);
        for _ in 0..MAX_REQUESTS {
            assert_eq!(s.next_due(), Some(at));
            assert_eq!(s.due_requests(at), vec![2]);
            at += REXMIT_REPEAT;
        }
        assert_eq!(s.next_due(), None);
    }
}
