//! had.toml's operator hooks: `[notify]` (commands run when a group becomes active, standby
//! or faulty, as Keepalived's notify_master/backup/fault) and `[fence]` (a command that
//! must succeed before taking over from a peer that was not heard releasing its groups).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// A program with its arguments (`"/usr/local/sbin/notify --quiet"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// Its arguments, split on whitespace.
    pub args: Vec<String>,
}

/// `[notify]`: commands per group state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// Run on every change (`HA_STATE` says which).
    pub command: Option<CommandLine>,
    /// Run when a group becomes active here.
    pub active: Option<CommandLine>,
    /// Run when a group stops here (handed over, standby, shutdown).
    pub standby: Option<CommandLine>,
    /// Run when a group fails here (start or stop failed, monitor failing).
    pub fault: Option<CommandLine>,
    /// Longest a hook may run before it is killed.
    pub timeout: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            command: None,
            active: None,
            standby: None,
            fault: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl NotifySettings {
    /// Whether any hook is configured.
    pub fn is_empty(&self) -> bool {
        self.command.is_none()
            && self.active.is_none()
            && self.standby.is_none()
            && self.fault.is_none()
    }
}

/// `[fence]`: the external fencing command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceSettings {
    /// Run with the peer's name in `HA_PEER` (and as its last argument); exit 0 = fenced.
    pub command: CommandLine,
    /// Longest one attempt may run.
    pub timeout: Duration,
    /// Pause between failed attempts (takeover waits until one succeeds).
    pub retry: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub(crate) command: Option<Spanned<String>>,
    pub(crate) active: Option<Spanned<String>>,
    pub(crate) standby: Option<Spanned<String>>,
    pub(crate) fault: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<crate::had_toml::DurationValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFence {
    pub(crate) command: Spanned<String>,
    pub(crate) timeout: Option<Spanned<crate::had_toml::DurationValue>>,
    pub(crate) retry: Option<Spanned<crate::had_toml::DurationValue>>,
}

/// Split a command line; `Err` when the program is not an absolute path.
pub(crate) fn command_line(s: &str) -> Result<CommandLine, String> {
    let mut words = s.split_whitespace();
    match words.next() {
        Some(p) if p.starts_with('/') => Ok(CommandLine {
            program: PathBuf::from(p),
            args: words.map(str::to_string).collect(),
        }),
        Some(p) => Err(format!(
            "`{p}` is not an absolute path (hooks run without a search path)"
        )),
        None => Err("the command is empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::diag::Diagnostics;
    use crate::had_toml::HadToml;
    use crate::haresources::Haresources;

    fn parse(text: &str) -> (HadToml, Diagnostics) {
        let mut d = Diagnostics::new();
        let t = HadToml::parse(
            Path::new("/etc/ha.d/had.toml"),
            text,
            &Haresources::default(),
            &mut d,
        );
        (t, d)
    }

    #[test]
    fn notify_and_fence_sections() {
        let (t, d) = parse(
            "[notify]\ncommand = \"/usr/local/sbin/notify all\"\nfault = \"/bin/logger -t ha\"\ntimeout = \"5s\"\n\
             [fence]\ncommand = \"/usr/local/sbin/fence-peer --hard\"\nretry = \"2s\"\n",
        );
        assert!(d.is_empty(), "{d}");
        let c = t.notify.command.expect("command");
        assert_eq!(c.program, Path::new("/usr/local/sbin/notify"));
        assert_eq!(c.args, vec!["all"]);
        assert!(t.notify.active.is_none());
        assert_eq!(t.notify.timeout, std::time::Duration::from_secs(5));
        let f = t.fence.expect("fence");
        assert_eq!(f.command.args, vec!["--hard"]);
        assert_eq!(f.retry, std::time::Duration::from_secs(2));
        assert_eq!(f.timeout, std::time::Duration::from_secs(60));
    }

    #[test]
    fn relative_programs_and_typos_are_errors_with_lines() {
        let (_, d) = parse("[notify]\nactive = \"notify.sh\"\n");
        assert!(d.has_errors());
        let text = d.to_string();
        assert!(text.contains("not an absolute path"), "{text}");
        assert!(text.contains(":2:"), "{text}");
        let (_, d) = parse("[notify]\nactiv = \"/bin/true\"\n");
        assert!(d.to_string().contains("did you mean `active`"), "{d}");
        let (_, d) = parse("[fence]\ntimeout = \"1s\"\n");
        assert!(d.has_errors(), "a fence needs a command");
    }
}
