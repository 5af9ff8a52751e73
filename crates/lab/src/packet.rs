//! What the lab's packet watchers (ARP, heartbeats) share: a thread inside a namespace that
//! reports whether its setup worked, a raw packet socket on the lab interface, and a wait
//! for a frame with a high-resolution timer.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::netns;
use crate::node::IFACE;

/// Runs `setup` then `body` on a thread inside namespace `ns`; returns once `setup` has
/// succeeded, or its error (`what` names the watcher when the thread does not answer).
pub(crate) fn spawn_in<S: 'static>(
    ns: &str,
    what: &str,
    setup: impl FnOnce() -> anyhow::Result<S> + Send + 'static,
    body: impl FnOnce(S) + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let file = netns::open(ns)?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = thread::spawn(move || match netns::enter(&file).and_then(|()| setup()) {
        Ok(state) => {
            let _ = ready_tx.send(Ok(()));
            body(state);
        }
        Err(e) => {
            let _ = ready_tx.send(Err(e));
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .with_context(|| format!("{what} did not start"))??;
    Ok(thread)
}

/// A raw packet socket for Ethernet protocol `protocol` (host order) in the current
/// namespace, and the index of the lab interface there.
pub(crate) fn socket(protocol: u16) -> anyhow::Result<(OwnedFd, i32)> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        )
    };
    if raw < 0 {
        bail!("packet socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let name = std::ffi::CString::new(IFACE)?;
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no {IFACE} in the namespace");
    }
    Ok((fd, i32::try_from(index)?))
}

/// Waits until `fd` has a frame or `wait` (under a second) has passed. The wait is ppoll's,
/// a high-resolution timer: a socket timeout (SO_RCVTIMEO) counts in jiffies, so a 0.5 ms
/// wait took 4–10 ms.
pub(crate) fn wait_readable(fd: &OwnedFd, wait: Duration) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: libc::c_long::from(wait.subsec_nanos()),
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    unsafe { libc::ppoll(&raw mut pfd, 1, &raw const ts, std::ptr::null()) };
}

/// Hands every frame waiting on `fd` to `each`, without blocking.
pub(crate) fn drain(fd: &OwnedFd, buf: &mut [u8], mut each: impl FnMut(&[u8])) {
    loop {
        // SAFETY: recv into a buffer we own; MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let Ok(n) = usize::try_from(n) else { return };
        each(&buf[..n.min(buf.len())]);
    }
}
