//! Logging under systemd: when stderr is the journal (`$JOURNAL_STREAM` names stderr's device
//! and inode), events go to journald natively, with their fields (NODE, GROUP, RESOURCE, REASON…)
//! as journal fields, and nowhere else that ends in the journal, so no line is there twice.

/// Where log lines go, decided from ha.cf and the environment.
#[derive(Debug, PartialEq, Eq)]
pub struct Sinks {
    /// journald's native protocol.
    pub journald: bool,
    /// Formatted lines on stderr.
    pub stderr: bool,
    /// ha.cf `logfile`.
    pub file: bool,
    /// ha.cf `logfacility` through /dev/log.
    pub syslog: bool,
}

/// The rule: under the journal, journald only (plus a `logfile`, which is not the journal);
/// stderr and syslog would each be a second copy, as journald stores both. Otherwise stderr
/// (systemd-less or foreground use), plus what ha.cf asks.
pub fn plan(under_journal: bool, logfile: bool, facility: Option<&str>) -> Sinks {
    let syslog = facility.is_some_and(|f| f != "none");
    if under_journal {
        Sinks {
            journald: true,
            stderr: false,
            file: logfile,
            syslog: false,
        }
    } else {
        Sinks {
            journald: false,
            stderr: true,
            file: logfile,
            syslog,
        }
    }
}

/// Whether `$JOURNAL_STREAM` (`DEV:INODE`) is this stderr, as sd_journal_stream_fd documents:
/// a child whose stderr was redirected elsewhere inherits the variable but not the stream.
pub fn stream_is(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// `stream_is` for this process's stderr.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => stream_is(&v, st.st_dev, st.st_ino),
        Err(_) => false,
    }
}

/// The journald layer (fields as journal fields, SYSLOG_IDENTIFIER=had, ha.cf's facility as
/// SYSLOG_FACILITY); `None` when journald cannot be reached, and had logs as without systemd.
pub fn layer(facility: Option<&str>) -> Option<tracing_journald::Layer> {
    let layer = tracing_journald::layer()
        .ok()?
        .with_field_prefix(None)
        .with_syslog_identifier("had".into());
    Some(match facility.and_then(crate::logging::facility_code) {
        Some(code) => layer.with_custom_fields([("SYSLOG_FACILITY", code.to_string())]),
        None => layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_journal_each_line_is_stored_once() {
        // The bug this fixes: logfacility under systemd put every line in the journal twice
        // (stderr captured, and syslog forwarded by journald).
        assert_eq!(
            plan(true, false, Some("local0")),
            Sinks {
                journald: true,
                stderr: false,
                file: false,
                syslog: false
            }
        );
        assert_eq!(
            plan(true, true, None),
            Sinks {
                journald: true,
                stderr: false,
                file: true,
                syslog: false
            }
        );
        assert_eq!(
            plan(false, true, Some("local0")),
            Sinks {
                journald: false,
                stderr: true,
                file: true,
                syslog: true
            }
        );
        assert!(!plan(false, false, Some("none")).syslog);
    }

    #[test]
    fn journal_stream_must_name_this_stderr() {
        assert!(stream_is("64768:1234", 64768, 1234));
        assert!(stream_is("64768:1234\n", 64768, 1234));
        assert!(!stream_is("64768:1235", 64768, 1234));
        assert!(!stream_is("garbage", 64768, 1234));
        assert!(!stream_is("", 0, 0));
    }
}
