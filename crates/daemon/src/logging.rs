//! Log setup: stderr (the journal natively instead under systemd: journald.rs), plus ha.cf's `logfile`,
//! `debugfile` and `logfacility` (syslog through /dev/log, as Heartbeat does; `none` turns it off).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Install the global subscriber. Log destinations that cannot be opened are reported on
/// stderr and skipped: a bad log path must never keep the cluster from running.
///
/// `debug` is ha.cf's `debug N` (or 1 for `-d`). As in Heartbeat, `debugfile` receives every
/// line down to debug level (trace from level 2); the other outputs get info and up, and debug
/// lines too when `debug` asks and no debugfile takes them. `HAD_LOG` overrides the filter.
pub fn init(logfile: Option<&Path>, debugfile: Option<&Path>, facility: Option<&str>, debug: u32) {
    let verbose = if debug >= 2 {
        Level::TRACE
    } else {
        Level::DEBUG
    };
    let env = EnvFilter::try_from_env("HAD_LOG").ok();
    let main_level = if env.is_some() || (debug >= 1 && debugfile.is_none()) {
        verbose
    } else {
        Level::INFO
    };
    let filter = env.unwrap_or_else(|| {
        let all = if debug >= 1 || debugfile.is_some() {
            verbose
        } else {
            Level::INFO
        };
        EnvFilter::new(all.as_str().to_ascii_lowercase())
    });
    // Under systemd's journal: native fields and one copy of each line (journald.rs): the
    // journal stores stderr and syslog too, so neither is written then.
    let journal = if crate::journald::stderr_is_journal() {
        crate::journald::layer(facility)
    } else {
        None
    };
    let mut writer = if journal.is_some() {
        BoxMakeWriter::new(io::sink)
    } else {
        BoxMakeWriter::new(io::stderr.with_max_level(main_level))
    };
    if let Some(f) = logfile.and_then(|p| open_log("logfile", p)) {
        writer = BoxMakeWriter::new(writer.and(f.with_max_level(main_level)));
    }
    if let Some(f) = debugfile.and_then(|p| open_log("debugfile", p)) {
        writer = BoxMakeWriter::new(writer.and(f));
    }
    if journal.is_none()
        && let Some(s) = facility.and_then(Syslog::open)
    {
        writer = BoxMakeWriter::new(writer.and(s.with_max_level(main_level)));
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    let journal = journal.map(|j| j.with_filter(LevelFilter::from_level(main_level)));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(journal)
        .init();
}

fn open_log(what: &str, p: &Path) -> Option<Arc<std::fs::File>> {
    match OpenOptions::new().create(true).append(true).open(p) {
        Ok(f) => Some(Arc::new(f)),
        Err(e) => {
            eprintln!(
                "had: cannot open {what} {}: {e}; not logging there",
                p.display()
            );
            None
        }
    }
}

/// Syslog facility number for an ha.cf `logfacility` name.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Writes each formatted event as one datagram to the local syslog socket.
#[derive(Clone)]
pub struct Syslog {
    sock: Arc<UnixDatagram>,
    facility: u8,
}

impl Syslog {
    fn open(name: &str) -> Option<Self> {
        if name == "none" {
            return None;
        }
        let Some(facility) = facility_code(name) else {
            eprintln!("had: unknown logfacility `{name}`; not logging to syslog");
            return None;
        };
        match Self::connect(Path::new("/dev/log"), facility) {
            Ok(s) => Some(s),
            Err(e) => {
                // Common in containers and the lab: no syslog daemon. Files and stderr remain.
                eprintln!(
                    "had: logfacility {name}: no syslog at /dev/log ({e}); not logging to syslog"
                );
                None
            }
        }
    }

    /// A non-blocking socket to the syslog daemon at `path`: when syslog is slow and its
    /// queue is full, lines are dropped instead of stopping the cluster loop.
    fn connect(path: &Path, facility: u8) -> io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock: Arc::new(sock),
            facility,
        })
    }
}

/// One event's writer: buffers the formatted line and sends it on drop.
pub struct SyslogLine {
    sock: Arc<UnixDatagram>,
    pri: u8,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buf);
        let msg = format!(
            "<{}>had[{}]: {}",
            self.pri,
            std::process::id(),
            line.trim_end()
        );
        // Losing a syslog line is better than blocking the cluster loop on it (the socket
        // is non-blocking: a full queue fails at once).
        let _ = self.sock.send(msg.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;
    fn make_writer(&'a self) -> SyslogLine {
        self.line(6)
    }
    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        let sev = match *meta.level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        self.line(sev)
    }
}

impl Syslog {
    fn line(&self, severity: u8) -> SyslogLine {
        SyslogLine {
            sock: self.sock.clone(),
            pri: self.facility * 8 + severity,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_map_to_syslog_codes() {
        assert_eq!(facility_code("local0"), Some(16));
        assert_eq!(facility_code("daemon"), Some(3));
        assert_eq!(facility_code("bogus"), None);
    }

    #[test]
    fn a_syslog_that_never_reads_does_not_block_the_writer() {
        let dir = std::env::temp_dir().join(format!("had-syslog-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        // Bound, never read: its queue fills after a few hundred lines.
        let _stuck = UnixDatagram::bind(&path).expect("bind");
        let s = Syslog::connect(&path, 3).expect("connect");
        let t0 = std::time::Instant::now();
        for i in 0..5000 {
            let mut w = s.line(4);
            let _ = writeln!(w, "line {i} of a flood that syslog cannot take");
        }
        let took = t0.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_line_is_one_datagram_with_priority() {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let s = Syslog {
            sock: Arc::new(a),
            facility: 16,
        };
        {
            let mut w = s.line(4);
            w.write_all(b"Link node2:eth0 dead.\n").expect("write");
        }
        let mut buf = [0u8; 256];
        let n = b.recv(&mut buf).expect("recv");
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<132>had["), "{got}");
        assert!(got.ends_with("]: Link node2:eth0 dead."), "{got}");
    }
}
