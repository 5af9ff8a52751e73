//! The loop's one timer. tokio's timer wheel wakes the thread twice for a deadline more than
//! 64 ms away (once at the start of its coarse slot, once at the deadline), and once more
//! each time the deadline moves, which every heartbeat heard does (the peer's death deadline
//! follows it): on an idle passive node at 1 s timers, two of the loop's four wake-ups a
//! second. A timerfd armed at the absolute deadline wakes the thread once, and moving it is
//! one syscall that wakes nothing.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

pub enum LoopTimer {
    /// tokio's own: tests run the loop on paused time, which a timerfd does not follow.
    Tokio(Pin<Box<Sleep>>),
    /// A CLOCK_MONOTONIC timerfd (the clock `std::time::Instant` reads on Linux).
    Fd {
        fd: AsyncFd<OwnedFd>,
        armed: Option<Instant>,
    },
}

impl LoopTimer {
    /// tokio's timer, first due now.
    pub fn tokio() -> Self {
        LoopTimer::Tokio(Box::pin(tokio::time::sleep_until(
            tokio::time::Instant::now(),
        )))
    }

    /// A timerfd, registered with the current runtime (call it inside one); not armed yet.
    pub fn timerfd() -> io::Result<Self> {
        // SAFETY: timerfd_create takes a clock id and flags; the result is checked.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just created and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "no tokio runtime to register the timerfd with",
            ));
        }
        // SAFETY: the OwnedFd moves into the AsyncFd, which deregisters it before it is closed
        // and never replaced.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)? };
        Ok(LoopTimer::Fd { fd, armed: None })
    }

    /// Fire at `deadline` (at once if it is past), replacing the previous deadline.
    pub fn set(&mut self, deadline: Instant) {
        match self {
            LoopTimer::Tokio(sleep) => {
                if sleep.deadline() != deadline.into() {
                    sleep.as_mut().reset(deadline.into());
                }
            }
            LoopTimer::Fd { fd, armed } => {
                if *armed == Some(deadline) {
                    return;
                }
                *armed = Some(deadline);
                let at = monotonic_at(deadline);
                let spec = libc::itimerspec {
                    it_interval: libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: at,
                };
                // SAFETY: a timerfd we own, a valid itimerspec, no old value wanted. Arming an
                // absolute CLOCK_MONOTONIC time cannot fail on a valid descriptor; were it to,
                // the loop still wakes for its sources and the next `set` tries again.
                let r = unsafe {
                    libc::timerfd_settime(
                        fd.get_ref().as_raw_fd(),
                        libc::TFD_TIMER_ABSTIME,
                        &spec,
                        std::ptr::null_mut(),
                    )
                };
                if r != 0 {
                    *armed = None;
                }
            }
        }
    }

    /// Wait until the deadline last set.
    pub async fn wait(&mut self) {
        match self {
            LoopTimer::Tokio(sleep) => sleep.as_mut().await,
            LoopTimer::Fd { fd, .. } => loop {
                let Ok(mut ready) = fd.readable().await else {
                    return;
                };
                let mut ticks = [0u8; 8];
                // Re-arming resets the expiry count: readiness left over from a deadline
                // that has since moved reads as WouldBlock, and try_io then clears it.
                match ready.try_io(|f| {
                    // SAFETY: reading 8 bytes into a buffer of 8 from a descriptor we own.
                    let n = unsafe {
                        libc::read(f.get_ref().as_raw_fd(), ticks.as_mut_ptr().cast(), 8)
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                }) {
                    Ok(_) => return,
                    Err(_would_block) => continue,
                }
            },
        }
    }
}

/// `deadline` as an absolute CLOCK_MONOTONIC time (a past deadline: now, which has expired).
fn monotonic_at(deadline: Instant) -> libc::timespec {
    let now = Instant::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let ahead = deadline.saturating_duration_since(now);
    let total = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32) + ahead;
    libc::timespec {
        tv_sec: total.as_secs() as libc::time_t,
        // A zero it_value disarms a timerfd: never send one.
        tv_nsec: total.subsec_nanos().max(1) as libc::c_long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_timerfd_fires_at_its_deadline_once_and_follows_a_moved_one() {
        let mut t = LoopTimer::timerfd().expect("timerfd");
        let t0 = Instant::now();
        t.set(t0 + Duration::from_millis(200));
        // Moved earlier before it fired: the earlier deadline counts.
        t.set(t0 + Duration::from_millis(30));
        t.wait().await;
        let fired = t0.elapsed();
        assert!(
            fired >= Duration::from_millis(30) && fired < Duration::from_millis(190),
            "{fired:?}"
        );
        // Fired once: waiting again without a new deadline does not return.
        let again = tokio::time::timeout(Duration::from_millis(100), t.wait()).await;
        assert!(again.is_err(), "a fired timerfd fired again");
        // A past deadline fires at once.
        t.set(t0);
        tokio::time::timeout(Duration::from_secs(2), t.wait())
            .await
            .expect("a past deadline fires");
    }

    #[tokio::test]
    async fn a_deadline_moved_later_after_it_fired_unseen_does_not_fire_early() {
        let mut t = LoopTimer::timerfd().expect("timerfd");
        let t0 = Instant::now();
        t.set(t0 + Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(40)).await;
        // It expired while nobody waited; the loop then moved the deadline on.
        t.set(t0 + Duration::from_millis(300));
        t.wait().await;
        assert!(
            t0.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t0.elapsed()
        );
    }
}
