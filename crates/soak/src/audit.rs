//! The overlap rule and the figures: a VIP may be on both nodes only while they cannot talk
//! (a window the injector opens and closes) plus a bounded handover time after; any other
//! overlap is a violation. Pure, tested without a lab.

use std::time::{Duration, Instant};

use ha_lab::VipSample;

/// One stretch during which the nodes could not talk (all links cut, a side frozen or its
/// daemon dead, heavy loss, one way only), opened at `from` by fault `fault`.
#[derive(Clone, Debug)]
struct Window {
    from: Instant,
    to: Option<Instant>,
    /// When the cluster was seen settled after the window closed: the handover allowance
    /// ends there, so a later overlap (a new race) is never excused by an old window.
    cap: Option<Instant>,
}

/// A finished run of samples with the VIP on both nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlap {
    /// First sample on both.
    pub start: Instant,
    /// Until the first sample after the run.
    pub len: Duration,
    /// The part outside the allowed windows (zero: allowed).
    pub outside: Duration,
}

/// Tracks the no-talk windows and classifies each overlap run as it closes.
#[derive(Debug)]
pub struct OverlapAudit {
    handover: Duration,
    windows: Vec<Window>,
    open_run: Option<Instant>,
    last: Option<VipSample>,
}

impl OverlapAudit {
    /// `handover`: how long after the nodes can talk again an overlap is still allowed.
    pub fn new(handover: Duration) -> Self {
        OverlapAudit {
            handover,
            windows: Vec::new(),
            open_run: None,
            last: None,
        }
    }

    /// The handover bound.
    pub fn handover(&self) -> Duration {
        self.handover
    }

    /// The nodes cannot talk from `at` on (nested windows are fine).
    pub fn cannot_talk(&mut self, at: Instant) -> usize {
        self.windows.push(Window {
            from: at,
            to: None,
            cap: None,
        });
        self.windows.len() - 1
    }

    /// Window `id` ends at `at`.
    pub fn can_talk(&mut self, id: usize, at: Instant) {
        if let Some(w) = self.windows.get_mut(id)
            && w.to.is_none()
        {
            w.to = Some(at);
        }
    }

    /// The cluster was seen settled (one holder, stable) at `at`: every closed window's
    /// handover allowance ends there.
    pub fn settled(&mut self, at: Instant) {
        for w in &mut self.windows {
            if let Some(to) = w.to
                && w.cap.is_none()
            {
                w.cap = Some(at.max(to));
            }
        }
    }

    /// Whether some window is still open.
    pub fn any_open(&self) -> bool {
        self.windows.iter().any(|w| w.to.is_none())
    }

    /// The latest sample fed.
    pub fn last(&self) -> Option<&VipSample> {
        self.last.as_ref()
    }

    /// Feeds samples in time order; returns the overlap runs that closed.
    pub fn feed(&mut self, samples: Vec<VipSample>) -> Vec<Overlap> {
        let mut out = Vec::new();
        for s in samples {
            match (self.open_run, s.on_several()) {
                (None, true) => self.open_run = Some(s.at),
                (Some(t), false) => {
                    out.push(self.classify(t, s.at));
                    self.open_run = None;
                }
                _ => {}
            }
            self.last = Some(s);
        }
        out
    }

    /// Closes a run still open at the last sample (end of the run).
    pub fn finish(&mut self) -> Option<Overlap> {
        let t = self.open_run.take()?;
        let end = self.last.as_ref().map(|s| s.at).unwrap_or(t);
        Some(self.classify(t, end))
    }

    /// The start of a still-open overlap run, if the VIP is on both nodes now.
    pub fn open_since(&self) -> Option<Instant> {
        self.open_run
    }

    /// The part of [start, end) not covered by any window stretched by the handover bound.
    fn classify(&self, start: Instant, end: Instant) -> Overlap {
        let mut spans: Vec<(Instant, Option<Instant>)> = self
            .windows
            .iter()
            .map(|w| {
                let end = w.to.map(|t| {
                    let stretched = t + self.handover;
                    w.cap.map_or(stretched, |c| stretched.min(c))
                });
                (w.from, end)
            })
            .collect();
        spans.sort_by_key(|s| s.0);
        let mut covered_to = start;
        let mut outside = Duration::ZERO;
        for (from, to) in spans {
            if covered_to >= end {
                break;
            }
            let to = to.unwrap_or(end);
            if to <= covered_to {
                continue;
            }
            if from > covered_to {
                let gap_end = from.min(end);
                outside += gap_end.saturating_duration_since(covered_to);
                covered_to = gap_end;
            }
            if to > covered_to {
                covered_to = to.min(end);
            }
        }
        if covered_to < end {
            outside += end - covered_to;
        }
        Overlap {
            start,
            len: end - start,
            outside,
        }
    }
}

/// min / median / p99 / max of a set of durations, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    /// How many.
    pub n: usize,
    /// Smallest.
    pub min_ms: u64,
    /// Median (the lower middle for an even count).
    pub median_ms: u64,
    /// 99th percentile (nearest rank).
    pub p99_ms: u64,
    /// Largest.
    pub max_ms: u64,
}

impl Spread {
    /// The spread of `ms`; all zero when empty.
    pub fn of(ms: &[u64]) -> Spread {
        let mut v = ms.to_vec();
        v.sort_unstable();
        let n = v.len();
        if n == 0 {
            return Spread::default();
        }
        let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Spread {
            n,
            min_ms: v[0],
            median_ms: v[(n - 1) / 2],
            p99_ms: rank(0.99),
            max_ms: v[n - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t0: Instant, ms: u64, a: bool, b: bool) -> VipSample {
        VipSample::steady(t0 + Duration::from_millis(ms), vec![a, b])
    }

    #[test]
    fn overlap_inside_a_window_plus_handover_is_allowed() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut a = OverlapAudit::new(Duration::from_millis(100));
        let w = a.cannot_talk(ms(10));
        a.can_talk(w, ms(50));
        // On both from 20 to 140: covered by [10, 50 + 100).
        let got = a.feed(vec![
            s(t0, 0, true, false),
            s(t0, 20, true, true),
            s(t0, 100, true, true),
            s(t0, 140, false, true),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len, Duration::from_millis(120));
        assert_eq!(got[0].outside, Duration::ZERO);
        // On both again from 200 to 260: no window, all of it is outside.
        let got = a.feed(vec![s(t0, 200, true, true), s(t0, 260, true, false)]);
        assert_eq!(got[0].outside, Duration::from_millis(60));
    }

    /// Lab soak seed 1000, fault 536: an overlap that began after the cluster had settled
    /// from the previous fault was excused by that fault's handover allowance.
    #[test]
    fn an_overlap_after_the_settle_is_not_excused_by_an_old_window() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut a = OverlapAudit::new(Duration::from_millis(2000));
        let w = a.cannot_talk(ms(10));
        a.can_talk(w, ms(50));
        a.settled(ms(600));
        // Inside the old stretch [50, 2050) but after the settle at 600.
        let got = a.feed(vec![s(t0, 1000, true, true), s(t0, 1070, true, false)]);
        assert_eq!(got[0].outside, Duration::from_millis(70));
    }

    #[test]
    fn overlap_outlasting_the_handover_counts_the_excess() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut a = OverlapAudit::new(Duration::from_millis(100));
        let w = a.cannot_talk(ms(0));
        a.can_talk(w, ms(50));
        let got = a.feed(vec![s(t0, 10, true, true), s(t0, 400, true, false)]);
        assert_eq!(got[0].outside, Duration::from_millis(250));
        // An overlap that starts before any window: the part before it is outside.
        let mut a = OverlapAudit::new(Duration::from_millis(100));
        a.cannot_talk(ms(30));
        let got = a.feed(vec![s(t0, 10, true, true), s(t0, 60, true, false)]);
        assert_eq!(got[0].outside, Duration::from_millis(20));
        // Still open at the end, inside an open window: allowed.
        let mut a = OverlapAudit::new(Duration::from_millis(100));
        a.cannot_talk(ms(0));
        assert!(
            a.feed(vec![s(t0, 10, true, true), s(t0, 20, true, true)])
                .is_empty()
        );
        assert!(a.any_open());
        assert_eq!(a.finish().map(|o| o.outside), Some(Duration::ZERO));
    }

    #[test]
    fn spreads() {
        assert_eq!(Spread::of(&[]), Spread::default());
        let s = Spread::of(&[5, 1, 3]);
        assert_eq!((s.min_ms, s.median_ms, s.p99_ms, s.max_ms), (1, 3, 5, 5));
        let v: Vec<u64> = (1..=200).collect();
        let s = Spread::of(&v);
        assert_eq!((s.median_ms, s.p99_ms, s.max_ms), (100, 198, 200));
    }
}
