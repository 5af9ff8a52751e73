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

/// A background thread probing the site at a fixed pace.
pub struct Prober {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<ProbeSample>>>,
    handle: Option<JoinHandle<()>>,
}

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
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let stop = Arc::clone(&stop);
            let samples = Arc::clone(&samples);
            thread::Builder::new()
                .name("drill-prober".into())
                .spawn(move || {
                    let r = init();
                    let ok = r.is_ok();
                    // The receiver is gone only if spawn() itself is.
                    let _ = ready_tx.send(r);
                    if ok {
                        probe_loop(&stop, &samples, kind, addr, every, timeout);
                    }
                })
                .map_err(|e| format!("cannot start the prober thread: {e}"))?
        };
        let p = Prober {
            stop,
            samples,
            handle: Some(handle),
        };
        ready_rx
            .recv()
            .map_err(|_| "the prober thread died".to_string())??;
        Ok(p)
    }

    /// Every sample so far, oldest first.
    pub fn samples(&self) -> Vec<ProbeSample> {
        self.samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // A panicked probe loop only loses samples.
            let _ = h.join();
        }
    }
}

fn probe_loop(
    stop: &AtomicBool,
    samples: &Mutex<Vec<ProbeSample>>,
    kind: ProbeKind,
    addr: SocketAddrV4,
    every: Duration,
    timeout: Duration,
) {
    run_paced(stop, every, || {
        let sent = Instant::now();
        let ok = probe_once(kind, addr, timeout).is_ok();
        let at = Instant::now();
        samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ProbeSample { sent, at, ok });
    });
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
}
