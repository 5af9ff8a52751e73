//! The client side of the lab: the project's HTTP GET (ha-drill's), and a prober that
//! records every answer with its time so failovers can be measured.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use ha_drill::probe::Sampler;

use crate::netns;

/// `GET /` to ip:port from the calling thread's namespace; the body of a 2xx answer
/// (the project's one client and rule: [`ha_drill::http`]).
pub fn http_get(ip: impl Into<IpAddr>, port: u16, timeout: Duration) -> anyhow::Result<String> {
    http_get_path(ip, port, "/", timeout)
}

/// `GET path` to ip:port from the calling thread's namespace; the body of a 2xx answer.
pub fn http_get_path(
    ip: impl Into<IpAddr>,
    port: u16,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    ha_drill::http_get(SocketAddr::from((ip.into(), port)), path, timeout)
        .map_err(anyhow::Error::msg)
}

/// One probe: when it was sent, when it ended, and the body or the error.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the request was started.
    pub sent: Instant,
    /// When the answer (or the failure) came.
    pub at: Instant,
    /// The body of a 2xx answer, or the error text.
    pub result: Result<String, String>,
}

impl Sample {
    /// The trimmed body, if the probe was answered.
    pub fn body(&self) -> Option<&str> {
        self.result.as_ref().ok().map(|b| b.trim())
    }
}

/// A background thread in the client namespace probing ip:port over HTTP (ha-drill's
/// [`Sampler`]), one probe at a time or, for a fine probe, handing each tick to a pool of
/// workers.
pub struct Prober {
    kind: Kind,
    counts: Arc<Counts>,
    started: Instant,
}

enum Kind {
    Seq(Sampler<Sample>),
    Pool(Pool),
}

/// The pacing thread (its samples are the ticks, zero-sized) and the workers it feeds.
struct Pool {
    ticks: Option<Sampler<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Pool {
    /// Stops the ticks; the workers end once the pacer's sender is gone and their probe is
    /// done (at most one timeout).
    fn halt(&mut self) {
        if let Some(t) = self.ticks.take() {
            t.stop();
        }
        let handles =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handles {
            // A panicked worker only lost its sample.
            let _ = h.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Probes sent and ticks skipped, shared with the probing threads.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    skipped: AtomicU64,
}

/// How fast a prober actually probed: a loaded machine may not keep the asked pace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeRate {
    /// Probes sent.
    pub sent: u64,
    /// Ticks with no idle worker (every worker still waiting on an earlier probe): not sent.
    pub skipped: u64,
    /// Seconds since the prober started.
    pub secs: f64,
}

impl ProbeRate {
    /// Probes sent per second.
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.sent as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Where and how long each probe may take.
#[derive(Clone, Copy)]
struct Target {
    ip: IpAddr,
    port: u16,
    timeout: Duration,
}

impl Target {
    fn probe(&self, sent: Instant) -> Sample {
        let result = http_get(self.ip, self.port, self.timeout).map_err(|e| format!("{e:#}"));
        Sample {
            sent,
            at: Instant::now(),
            result,
        }
    }
}

impl Prober {
    /// Starts probing from inside the network namespace `netns_name`.
    pub(crate) fn start(
        netns_name: &str,
        ip: IpAddr,
        port: u16,
        every: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Prober> {
        let file = netns::open(netns_name)?;
        let init = move || netns::enter(&file).map_err(|e| format!("{e:#}"));
        let counts = Arc::new(Counts::default());
        let target = Target { ip, port, timeout };
        let c = Arc::clone(&counts);
        let sampler = Sampler::spawn("ha-lab-prober", every, init, move || {
            c.sent.fetch_add(1, Ordering::Relaxed);
            target.probe(Instant::now())
        })
        .map_err(anyhow::Error::msg)
        .context("starting the prober")?;
        Ok(Prober {
            kind: Kind::Seq(sampler),
            counts,
            started: Instant::now(),
        })
    }

    /// Starts probing with `workers` threads, each probe on a fresh connection: a tick starts
    /// a probe whether or not earlier ones still wait on a dead address, so the first answer
    /// after a gap is seen within one tick; a tick finding every worker busy is counted as
    /// skipped.
    pub(crate) fn start_pool(
        netns_name: &str,
        ip: IpAddr,
        port: u16,
        every: Duration,
        timeout: Duration,
        workers: usize,
    ) -> anyhow::Result<Prober> {
        let file = netns::open(netns_name)?;
        let enter = move || netns::enter(&file).map_err(|e| format!("{e:#}"));
        Prober::pool(enter, Target { ip, port, timeout }, every, workers)
    }

    /// The pool prober, its pacing thread set up by `enter` (threads it spawns after that
    /// inherit the client's namespace).
    fn pool(
        enter: impl FnOnce() -> Result<(), String> + Send + 'static,
        target: Target,
        every: Duration,
        workers: usize,
    ) -> anyhow::Result<Prober> {
        let counts = Arc::new(Counts::default());
        let samples = Arc::new(Mutex::new(Vec::new()));
        let handles = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<Instant>();
        // Idle workers: the pacer takes one before sending a tick, a worker gives it back
        // when its probe is done, so a tick never waits behind a busy worker.
        let idle = Arc::new(AtomicUsize::new(0));
        let init = {
            let (samples, handles, idle) = (
                Arc::clone(&samples),
                Arc::clone(&handles),
                Arc::clone(&idle),
            );
            move || {
                enter()?;
                spawn_workers(workers, rx, &samples, &handles, &idle, target)
            }
        };
        let c = Arc::clone(&counts);
        let ticks = Sampler::spawn("ha-lab-prober", every, init, move || {
            let took = idle.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if took.is_ok() && tx.send(Instant::now()).is_ok() {
                c.sent.fetch_add(1, Ordering::Relaxed);
            } else {
                c.skipped.fetch_add(1, Ordering::Relaxed);
            }
        })
        .map_err(anyhow::Error::msg)
        .context("starting the prober")?;
        Ok(Prober {
            kind: Kind::Pool(Pool {
                ticks: Some(ticks),
                samples,
                workers: handles,
            }),
            counts,
            started: Instant::now(),
        })
    }

    /// `f` of the samples so far.
    fn with<R>(&self, f: impl FnOnce(&[Sample]) -> R) -> R {
        match &self.kind {
            Kind::Seq(s) => s.with(f),
            Kind::Pool(p) => f(&p.samples.lock().unwrap_or_else(PoisonError::into_inner)),
        }
    }

    /// A copy of the samples taken so far, while probing goes on.
    pub fn snapshot(&self) -> Vec<Sample> {
        self.with(<[Sample]>::to_vec)
    }

    /// Takes the samples taken so far (oldest first), leaving the buffer empty while probing
    /// goes on: a long run reads its samples in batches instead of copying them all each time.
    pub fn drain(&self) -> Vec<Sample> {
        match &self.kind {
            Kind::Seq(s) => s.drain(),
            Kind::Pool(p) => {
                let mut v =
                    std::mem::take(&mut *p.samples.lock().unwrap_or_else(PoisonError::into_inner));
                v.sort_by_key(|s| s.sent);
                v
            }
        }
    }

    /// Probes sent and skipped so far, and over how long.
    pub fn rate(&self) -> ProbeRate {
        ProbeRate {
            sent: self.counts.sent.load(Ordering::Relaxed),
            skipped: self.counts.skipped.load(Ordering::Relaxed),
            secs: self.started.elapsed().as_secs_f64(),
        }
    }

    /// When the first probe sent at or after `after` was answered with `body`, so far.
    pub fn first_answer_from(&self, body: &str, after: Instant) -> Option<Instant> {
        self.with(|s| first_answer_from(s, body, after))
    }

    /// Stops probing and returns every sample, oldest (by sending time) first.
    pub fn stop(self) -> Vec<Sample> {
        match self.kind {
            Kind::Seq(s) => s.stop(),
            Kind::Pool(mut p) => {
                p.halt();
                let mut v =
                    std::mem::take(&mut *p.samples.lock().unwrap_or_else(PoisonError::into_inner));
                v.sort_by_key(|s| s.sent);
                v
            }
        }
    }
}

fn spawn_workers(
    workers: usize,
    rx: mpsc::Receiver<Instant>,
    samples: &Arc<Mutex<Vec<Sample>>>,
    handles: &Mutex<Vec<JoinHandle<()>>>,
    idle: &Arc<AtomicUsize>,
    target: Target,
) -> Result<(), String> {
    let rx = Arc::new(Mutex::new(rx));
    let mut spawned = handles.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..workers.max(1) {
        let (rx, idle, samples) = (Arc::clone(&rx), Arc::clone(idle), Arc::clone(samples));
        let h = thread::Builder::new()
            .name("ha-lab-probe".into())
            .spawn(move || {
                idle.fetch_add(1, Ordering::SeqCst);
                loop {
                    let tick = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    // The pacer is gone: probing stopped.
                    let Ok(sent) = tick else { break };
                    let s = target.probe(sent);
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(s);
                    idle.fetch_add(1, Ordering::SeqCst);
                }
            })
            .map_err(|e| format!("cannot start a probe worker: {e}"))?;
        spawned.push(h);
    }
    Ok(())
}

/// The answer times of the answered probes, in order (a pool of workers records them out
/// of order).
fn answer_times(samples: &[Sample]) -> Vec<Instant> {
    let mut v: Vec<Instant> = samples
        .iter()
        .filter(|s| s.result.is_ok())
        .map(|s| s.at)
        .collect();
    v.sort();
    v
}

/// The largest interval between two consecutive answered probes.
pub fn max_gap(samples: &[Sample]) -> Option<Duration> {
    let mut answered = answer_times(samples).into_iter();
    let mut prev = answered.next()?;
    let mut gap = None;
    for at in answered {
        let d = at.saturating_duration_since(prev);
        gap = Some(gap.map_or(d, |g: Duration| g.max(d)));
        prev = at;
    }
    gap
}

/// The largest interval between consecutive answered probes that ends after `after`:
/// the client-visible outage around an event at `after`.
pub fn max_gap_after(samples: &[Sample], after: Instant) -> Option<Duration> {
    let mut answered = answer_times(samples).into_iter();
    let mut prev = answered.next()?;
    let mut gap = None;
    for at in answered {
        if at >= after {
            let d = at.saturating_duration_since(prev);
            gap = Some(gap.map_or(d, |g: Duration| g.max(d)));
        }
        prev = at;
    }
    gap
}

/// When the first probe sent at or after `after` was answered with `body`
/// (compared without surrounding whitespace).
pub fn first_answer_from(samples: &[Sample], body: &str, after: Instant) -> Option<Instant> {
    samples
        .iter()
        .filter(|s| s.sent >= after && s.body() == Some(body.trim()))
        .map(|s| s.at)
        .min()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(base: Instant, ms: u64, body: Option<&str>) -> Sample {
        let at = base + Duration::from_millis(ms);
        Sample {
            sent: at,
            at,
            result: body.map(str::to_owned).ok_or_else(|| "refused".to_owned()),
        }
    }

    #[test]
    fn gaps_and_first_answers() {
        let t = Instant::now();
        let s = vec![
            sample(t, 0, Some("node1\n")),
            sample(t, 20, Some("node1\n")),
            sample(t, 40, None),
            sample(t, 60, None),
            sample(t, 300, Some("node2\n")),
            sample(t, 320, Some("node2\n")),
        ];
        assert_eq!(max_gap(&s), Some(Duration::from_millis(280)));
        assert_eq!(
            max_gap_after(&s, t + Duration::from_millis(310)),
            Some(Duration::from_millis(20))
        );
        assert_eq!(
            first_answer_from(&s, "node2", t),
            Some(t + Duration::from_millis(300))
        );
        assert_eq!(
            first_answer_from(&s, "node1", t + Duration::from_millis(1)),
            Some(t + Duration::from_millis(20))
        );
        assert_eq!(first_answer_from(&s, "node3", t), None);
        assert_eq!(max_gap(&s[..1]), None);
    }

    #[test]
    fn pool_keeps_the_pace_past_stuck_probes() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for (n, c) in listener.incoming().enumerate() {
                let Ok(mut c) = c else { break };
                thread::spawn(move || {
                    let mut req = [0u8; 256];
                    let _ = c.read(&mut req);
                    // Every third probe hangs past its timeout, as one to a vanished address.
                    if n % 3 == 0 {
                        thread::sleep(Duration::from_millis(150));
                    }
                    let _ = c.write_all(b"HTTP/1.0 200 OK\r\n\r\nnode1\n");
                });
            }
        });
        let target = Target {
            ip: std::net::Ipv4Addr::LOCALHOST.into(),
            port,
            timeout: Duration::from_millis(50),
        };
        let p = Prober::pool(|| Ok(()), target, Duration::from_millis(5), 28).unwrap();
        thread::sleep(Duration::from_millis(1000));
        let rate = p.rate();
        let s = p.stop();
        let ok = s.iter().filter(|x| x.result.is_ok()).count();
        let late = s.len() - ok;
        println!(
            "pool: {} sent in {:.2} s ({:.0}/s), {} skipped, {ok} answered, {late} timed out",
            rate.sent,
            rate.secs,
            rate.per_sec(),
            rate.skipped
        );
        // Every probe sent came back (stop joins the workers), oldest first.
        assert!(s.len() as u64 >= rate.sent);
        assert!(s.windows(2).all(|w| w[0].sent <= w[1].sent));
        // A sequential prober would manage ≤ 1 s / (5 ms + a third of 50 ms) ≈ 45; generous
        // bound for a loaded machine.
        assert!(rate.sent >= 80, "{rate:?}");
        assert!(late > 0 && ok > late, "{ok} {late}");
    }

    #[test]
    fn gaps_from_samples_recorded_out_of_order() {
        let t = Instant::now();
        // A pool of workers pushes a slow probe after faster, later ones.
        let s = vec![
            sample(t, 0, Some("node1")),
            sample(t, 10, Some("node1")),
            sample(t, 100, Some("node2")),
            sample(t, 5, Some("node1")),
            sample(t, 95, Some("node2")),
        ];
        assert_eq!(max_gap(&s), Some(Duration::from_millis(85)));
        assert_eq!(
            first_answer_from(&s, "node2", t),
            Some(t + Duration::from_millis(95))
        );
    }
}
