//! systemd's notify protocol (`sd_notify(3)`): readiness, status lines, reload and stop
//! announcements, and watchdog pings, as datagrams to `$NOTIFY_SOCKET`. A no-op outside systemd.
//!
//! Hand-written rather than a crate: it is one `sendto` on a Unix datagram socket, and owning it
//! lets the watchdog rule (`watchdog_interval`) be tested against invented environments.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where notifications go; `None` inside when not started by systemd (`Type=notify`).
pub struct Notifier {
    target: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    last_status: String,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace. An unusable value
    /// is reported once on stderr and notifications are off: they must never stop the daemon.
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|v| match open(&v) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("had: NOTIFY_SOCKET {v:?} unusable ({e}); not notifying systemd");
                None
            }
        });
        Self {
            target,
            last_status: String::new(),
        }
    }

    /// Whether a service manager listens (`$NOTIFY_SOCKET` was usable).
    pub fn active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (`KEY=value` lines). Failures are ignored: a busy or gone
    /// manager must not slow the cluster loop (the socket is non-blocking).
    pub fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            let _ = sock.send_to_addr(state.as_bytes(), addr);
        }
    }

    /// `READY=1`: configuration valid, sockets bound, the loop is about to run.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// `STATUS=…` when it changed since the last one (systemctl status shows it).
    pub fn status(&mut self, status: &str) {
        if status != self.last_status {
            // Newlines would start a new assignment; a status is one line.
            let line = status.replace('\n', " ");
            self.send(&format!("STATUS={line}"));
            self.last_status = status.to_string();
        }
    }

    /// `WATCHDOG=1`: the loop is alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

fn open(v: &std::ffi::OsStr) -> std::io::Result<(UnixDatagram, std::os::unix::net::SocketAddr)> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = v.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name)?,
        None if bytes.starts_with(b"/") => std::os::unix::net::SocketAddr::from_pathname(v)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor @abstract",
            ));
        }
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    Ok((sock, addr))
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec` (`$WATCHDOG_USEC`), as sd_watchdog_enabled
/// advises, when the watchdog is meant for this process (`$WATCHDOG_PID` absent or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(p) = pid
        && p.trim().parse::<u32>().ok() != Some(my_pid)
    {
        return None;
    }
    let us: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(us / 2))
}

/// `watchdog_interval` from this process's environment.
pub fn watchdog_from_env() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_timeout_and_only_for_our_pid() {
        assert_eq!(
            watchdog_interval(Some("20000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval(Some("1000000"), Some("7"), 7),
            Some(Duration::from_millis(500))
        );
        assert_eq!(watchdog_interval(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn messages_reach_a_path_listener_and_status_is_sent_once_per_change() {
        let dir = std::env::temp_dir().join(format!("had-sdn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).expect("bind");
        rx.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut n = Notifier {
            target: Some(open(path.as_os_str()).expect("open")),
            last_status: String::new(),
        };
        n.ready();
        n.status("node1: active");
        n.status("node1: active");
        n.status("node1: standby\nx");
        n.watchdog();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        for _ in 0..4 {
            let k = rx.recv(&mut buf).expect("recv");
            got.push(String::from_utf8_lossy(&buf[..k]).into_owned());
        }
        assert_eq!(
            got,
            [
                "READY=1",
                "STATUS=node1: active",
                "STATUS=node1: standby x",
                "WATCHDOG=1"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn abstract_names_and_bad_values() {
        assert!(open(std::ffi::OsStr::new("@had-test-abstract")).is_ok());
        assert!(open(std::ffi::OsStr::new("relative/path")).is_err());
    }
}
