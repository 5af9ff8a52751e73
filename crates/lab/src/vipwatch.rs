//! A fast watcher of where an address is configured: one thread hops between the nodes'
//! network namespaces (`setns` + `getifaddrs`, no fork) and records a sample every few
//! milliseconds, so that a VIP on two nodes at once is seen even when it lasts 10 ms.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::netns;

/// One sample: whether the address was on each watched namespace, in the order given.
///
/// The namespaces are read one after the other, so two reads that both find the address do
/// not show it on both at once: a handover that completes between them (node1 read before
/// its release, node2 read after its acquisition, 1 ms apart on a loaded machine) looks the
/// same. Each namespace but the last is therefore read again after the others (`again`): the
/// address was on `i` and `j` at once only if `i` still had it when re-read after `j`'s read.
#[derive(Clone, Debug)]
pub struct VipSample {
    /// When the sample was taken.
    pub at: Instant,
    /// Per namespace: is the address configured there (first read).
    pub on: Vec<bool>,
    /// Per namespace but the last: is it still configured there, read after all of `on`.
    pub again: Vec<bool>,
}

impl VipSample {
    /// A sample of a state that did not change while it was read (tests, simulations).
    pub fn steady(at: Instant, on: Vec<bool>) -> VipSample {
        let again = on
            .iter()
            .take(on.len().saturating_sub(1))
            .copied()
            .collect();
        VipSample { at, on, again }
    }

    /// Proven on two namespaces at once: on `i` before and after the read that found it on a
    /// later `j` (soak seed 202, fault 158: a 1 ms handover between two reads was counted as
    /// an overlap).
    pub fn on_several(&self) -> bool {
        let n = self.on.len();
        (0..n).any(|i| {
            self.on[i]
                && self.again.get(i).copied().unwrap_or(true)
                && (i + 1..n).any(|j| self.on[j])
        })
    }
}

/// A sampler thread; stops (and is joined) on [`VipWatch::stop`] or drop.
pub struct VipWatch {
    samples: Arc<Mutex<Vec<VipSample>>>,
    /// Per namespace: when set, that namespace counts as without the address (a crashed node).
    off: Arc<Vec<AtomicBool>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl VipWatch {
    /// Starts sampling `ip` in each named network namespace every `every`.
    pub fn start(netns_names: &[&str], ip: Ipv4Addr, every: Duration) -> anyhow::Result<Self> {
        let files: Vec<File> = netns_names
            .iter()
            .map(|n| netns::open(n))
            .collect::<anyhow::Result<_>>()?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let off: Arc<Vec<AtomicBool>> =
            Arc::new(files.iter().map(|_| AtomicBool::new(false)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, off, stop) = (samples.clone(), off.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let read = |i: usize, f: &File| {
                        !off[i].load(Ordering::Relaxed) && has_addr_in(f, ip).unwrap_or(false)
                    };
                    let on: Vec<bool> = files.iter().enumerate().map(|(i, f)| read(i, f)).collect();
                    let again: Vec<bool> = files
                        .iter()
                        .enumerate()
                        .take(files.len().saturating_sub(1))
                        .map(|(i, f)| on[i] && read(i, f))
                        .collect();
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(VipSample { at, on, again });
                    thread::sleep(every.saturating_sub(at.elapsed()));
                }
            })
        };
        Ok(Self {
            samples,
            off,
            stop,
            thread: Some(thread),
        })
    }

    /// Marks namespace `i` as powered off (its addresses stop counting) or on again.
    pub fn set_off(&self, i: usize, off: bool) {
        if let Some(o) = self.off.get(i) {
            o.store(off, Ordering::Relaxed);
        }
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<VipSample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the samples so far (oldest first), leaving the buffer empty while sampling goes
    /// on (a long run reads them in batches). [`VipWatch::last`] then waits for the next one.
    pub fn drain(&self) -> Vec<VipSample> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The latest sample, if any.
    pub fn last(&self) -> Option<VipSample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    }

    /// Stops the thread; the samples stay readable.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VipWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs of consecutive samples with the address on more than one namespace, from `from` on:
/// `(first sample, time to the first sample after the run)`. A run still open at the last
/// sample ends there.
pub fn overlaps(samples: &[VipSample], from: Instant) -> Vec<(Instant, Duration)> {
    let mut out = Vec::new();
    let mut open: Option<Instant> = None;
    for s in samples.iter().filter(|s| s.at >= from) {
        match (open, s.on_several()) {
            (None, true) => open = Some(s.at),
            (Some(t), false) => {
                out.push((t, s.at.duration_since(t)));
                open = None;
            }
            _ => {}
        }
    }
    if let (Some(t), Some(last)) = (open, samples.last()) {
        out.push((t, last.at.duration_since(t)));
    }
    out
}

/// Enters the namespace on this thread and looks for `ip` among its addresses.
fn has_addr_in(ns: &File, ip: Ipv4Addr) -> anyhow::Result<bool> {
    netns::enter(ns)?;
    let addrs = nix::ifaddrs::getifaddrs()?;
    Ok(addrs.into_iter().any(|a| {
        a.address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .is_some_and(|s| IpAddr::V4(s.ip()) == IpAddr::V4(ip))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t0: Instant, ms: u64, on: [bool; 2]) -> VipSample {
        VipSample::steady(t0 + Duration::from_millis(ms), on.to_vec())
    }

    #[test]
    fn overlap_runs_are_measured_to_the_next_sample() {
        let t0 = Instant::now();
        let samples = vec![
            s(t0, 0, [true, false]),
            s(t0, 5, [true, true]),
            s(t0, 10, [true, true]),
            s(t0, 15, [false, true]),
            s(t0, 20, [true, true]),
        ];
        let got = overlaps(&samples, t0);
        assert_eq!(
            got,
            vec![
                (t0 + Duration::from_millis(5), Duration::from_millis(10)),
                (t0 + Duration::from_millis(20), Duration::ZERO),
            ]
        );
        assert_eq!(overlaps(&samples, t0 + Duration::from_millis(16)).len(), 1);
    }

    /// Soak seed 202, fault 158: node1 read at 22.8644 with the address, its release at
    /// 22.8648, node2's acquisition at 22.8660 and its read after: two reads, no overlap.
    #[test]
    fn a_handover_between_two_reads_is_not_an_overlap() {
        let t0 = Instant::now();
        let handover = VipSample {
            at: t0,
            on: vec![true, true],
            again: vec![false],
        };
        assert!(!handover.on_several());
        let both = VipSample {
            at: t0,
            on: vec![true, true],
            again: vec![true],
        };
        assert!(both.on_several());
        let samples = vec![s(t0, 0, [true, false]), handover, s(t0, 10, [false, true])];
        assert!(overlaps(&samples, t0).is_empty());
        // Three namespaces: the first and the third at once, the second never.
        let three = VipSample {
            at: t0,
            on: vec![true, false, true],
            again: vec![true, false],
        };
        assert!(three.on_several());
        assert!(!VipSample::steady(t0, vec![false, true, false]).on_several());
    }
}
