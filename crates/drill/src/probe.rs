//! Probing the site through the VIP: one HTTP GET (any 2xx, [`crate::http`]) or TCP connect, and a background
//! prober that records every attempt with its time, so gaps can be measured afterwards.

use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::scenario::ProbeKind;

/// One probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSample {
    /// When the attempt started.
    pub sent: Instant,
    /// When it ended.
    pub at: Instant,
    /// Whether the site answered.
    pub ok: bool,
}

/// One probe of `addr` with `kind`, from the calling thread's network namespace.
pub fn probe_once(kind: ProbeKind, addr: SocketAddrV4, timeout: Duration) -> Result<(), String> {
    let sa = SocketAddr::V4(addr);
    if kind == ProbeKind::Tcp {
        return TcpStream::connect_timeout(&sa, timeout)
            .map(drop)
            .map_err(|e| format!("connect {addr}: {e}"));
    }
    crate::http::http_check(sa, "/", timeout)
}

/// A background thread that calls a probe at a fixed pace and keeps every sample it
/// returns: the one prober of the drill (its [`Prober`]) and the lab (`ha_lab::Prober`).
/// Stopped and joined when dropped.
pub struct Sampler<T> {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<T>>>,
    handle: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Sampler<T> {
    /// Starts the thread `name`. `init` runs first on it (the lab joins the client's network
    /// namespace there); its error is returned and nothing is sampled. Then `once` runs every
    /// `every` ([`run_paced`]) and its results are kept in order.
    pub fn spawn(
        name: &str,
        every: Duration,
        init: impl FnOnce() -> Result<(), String> + Send + 'static,
        mut once: impl FnMut() -> T + Send + 'static,
    ) -> Result<Sampler<T>, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let stop = Arc::clone(&stop);
            let samples = Arc::clone(&samples);
            thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let r = init();
                    let ok = r.is_ok();
                    // The receiver is gone only if spawn() itself is.
                    let _ = ready_tx.send(r);
                    if ok {
                        run_paced(&stop, every, || {
                            let sample = once();
                            samples
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(sample);
                        });
                    }
                })
                .map_err(|e| format!("cannot start the {name} thread: {e}"))?
        };
        let sampler = Sampler {
            stop,
            samples,
            handle: Some(handle),
        };
        ready_rx
            .recv()
            .map_err(|_| format!("the {name} thread died"))??;
        Ok(sampler)
    }

    /// `f` of the samples so far, oldest first, while sampling goes on.
    pub fn with<R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        f(&self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes the samples so far (oldest first), leaving the buffer empty while sampling
    /// goes on.
    pub fn drain(&self) -> Vec<T> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops sampling; every sample, oldest first.
    pub fn stop(mut self) -> Vec<T> {
        self.halt();
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<T> Sampler<T> {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // A panicked probe only loses samples; nothing to propagate.
            let _ = h.join();
        }
    }
}

impl<T> Drop for Sampler<T> {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A background thread probing the site at a fixed pace.
pub struct Prober(Sampler<ProbeSample>);

impl Prober {
    /// Starts probing. `init` runs first on the probing thread (the lab uses it to join the
    /// client's network namespace); its error is returned and nothing is probed.
    pub fn spawn(
        kind: ProbeKind,
        addr: SocketAddrV4,
        every: Duration,
        timeout: Duration,
        init: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) -> Result<Prober, String> {
        Sampler::spawn("drill-prober", every, init, move || {
            let sent = Instant::now();
            let ok = probe_once(kind, addr, timeout).is_ok();
            ProbeSample {
                sent,
                at: Instant::now(),
                ok,
            }
        })
        .map(Prober)
    }

    /// Every sample so far, oldest first.
    pub fn samples(&self) -> Vec<ProbeSample> {
        self.0.with(<[ProbeSample]>::to_vec)
    }
}

/// Call `once` every `every` until `stop` is set. After a slow call the loop carries on at
/// the normal pace instead of catching up in a burst (a burst would hide a gap).
pub fn run_paced(stop: &AtomicBool, every: Duration, mut once: impl FnMut()) {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        once();
        next += every;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener};

    fn serve(answer: &'static [u8]) -> (SocketAddrV4, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut b = [0u8; 512];
            let _ = c.read(&mut b);
            c.write_all(answer).unwrap();
        });
        (SocketAddrV4::new(Ipv4Addr::LOCALHOST, port), h)
    }

    #[test]
    fn http_accepts_any_2xx_and_refuses_the_rest() {
        let (a, h) = serve(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(
            probe_once(ProbeKind::Http, a, Duration::from_secs(2)),
            Ok(())
        );
        h.join().unwrap();
        let (a, h) = serve(b"HTTP/1.0 503 Busy\r\n\r\n");
        let e = probe_once(ProbeKind::Http, a, Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("503"), "{e}");
        h.join().unwrap();
    }

    #[test]
    fn tcp_needs_only_a_connect_and_a_closed_port_fails() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        assert_eq!(
            probe_once(ProbeKind::Tcp, a, Duration::from_secs(2)),
            Ok(())
        );
        drop(l);
        assert!(probe_once(ProbeKind::Tcp, a, Duration::from_secs(2)).is_err());
    }

    #[test]
    fn prober_records_samples_and_init_errors_stop_it() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let p = Prober::spawn(
            ProbeKind::Tcp,
            a,
            Duration::from_millis(10),
            Duration::from_millis(200),
            || Ok(()),
        )
        .unwrap();
        thread::sleep(Duration::from_millis(100));
        let s = p.samples();
        assert!(s.len() >= 2, "{s:?}");
        assert!(s.iter().all(|s| s.ok && s.at >= s.sent));
        drop(p);
        let e = Prober::spawn(
            ProbeKind::Tcp,
            a,
            Duration::from_millis(10),
            Duration::from_millis(200),
            || Err("no such namespace".into()),
        );
        assert_eq!(e.err().as_deref(), Some("no such namespace"));
    }

    #[test]
    fn sampler_keeps_every_sample_in_order_across_drains() {
        let mut n = 0u32;
        let s = Sampler::spawn(
            "test-sampler",
            Duration::from_millis(2),
            || Ok(()),
            move || {
                n += 1;
                n
            },
        )
        .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while s.with(<[u32]>::len) < 3 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let first = s.drain();
        assert!(first.len() >= 3, "{first:?}");
        thread::sleep(Duration::from_millis(20));
        let rest = s.stop();
        let all: Vec<u32> = first.into_iter().chain(rest).collect();
        assert_eq!(all, (1..=all.len() as u32).collect::<Vec<_>>());
    }
}
