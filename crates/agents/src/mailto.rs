//! `MailTo::addr[,addr...]::subject`: a pseudo resource that mails on takeover and release,
//! as Heartbeat's MailTo does. Through the local `sendmail`; start and stop never fail (a mail
//! that cannot be sent must not block a failover), they warn instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ha_config::agent::{MailToPlan, SENDMAIL_CANDIDATES};
use ha_core::logcat::{LogEvent, log};

use crate::process;
use crate::{AgentError, RunState};

/// A MailTo resource.
#[derive(Debug)]
pub struct MailToResource {
    name: String,
    to: Vec<String>,
    subject: Option<String>,
    sendmail: Option<PathBuf>,
    timeout: Duration,
    /// Pseudo state: "running" between start and stop (nothing runs; like Heartbeat's state file).
    active: AtomicBool,
}

impl MailToResource {
    /// Parse `addr[,addr...]` and an optional subject; `sendmail` as found on this host.
    pub fn new(name: &str, args: &[String], timeout: Duration) -> Result<Self, AgentError> {
        Ok(Self::from_plan(MailToPlan::new(name, args, timeout)?))
    }

    /// As [`MailToResource::new`] with an explicit `sendmail` (`None`: not installed).
    pub fn with_sendmail(
        name: &str,
        args: &[String],
        sendmail: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, AgentError> {
        Ok(Self::from_plan(MailToPlan::with_sendmail(
            name, args, sendmail, timeout,
        )?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: MailToPlan) -> Self {
        let MailToPlan {
            name,
            to,
            subject,
            sendmail,
            timeout,
        } = p;
        Self {
            name,
            to,
            subject,
            sendmail,
            timeout,
            active: AtomicBool::new(false),
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The recipients.
    pub fn recipients(&self) -> &[String] {
        &self.to
    }

    /// Mail "takeover"; never fails.
    pub async fn start(&self) -> Result<(), AgentError> {
        self.mail("Takeover in progress").await;
        self.active.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Mail "migrating away"; never fails.
    pub async fn stop(&self) -> Result<(), AgentError> {
        if self.active.swap(false, Ordering::SeqCst) {
            self.mail("Migrating resource away").await;
        }
        Ok(())
    }

    /// Running between start and stop.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        Ok(if self.active.load(Ordering::SeqCst) {
            RunState::Running
        } else {
            RunState::Stopped
        })
    }

    /// The message for `what`, headers included.
    pub fn message(&self, what: &str, host: &str) -> String {
        let subject = match &self.subject {
            Some(s) => format!("{s} {what} on {host}"),
            None => format!("Resource group: {what} on {host}"),
        };
        format!(
            "To: {}\nSubject: {subject}\n\n{what} on {host} (had, resource {}).\n",
            self.to.join(", "),
            self.name
        )
    }

    async fn mail(&self, what: &str) {
        let Some(sendmail) = &self.sendmail else {
            log(&LogEvent::MailToNoSendmail {
                resource: &self.name,
                what,
                candidates: &SENDMAIL_CANDIDATES.join(" or "),
                to: &self.to.join(", "),
            });
            return;
        };
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "this node".into());
        let msg = self.message(what, &host);
        let mut args = vec!["-oi".to_owned(), "--".to_owned()];
        args.extend(self.to.iter().cloned());
        match process::run_with_stdin(sendmail, &args, &[], msg.as_bytes(), self.timeout).await {
            Ok(o) if o.status.success() => log(&LogEvent::MailToSent {
                resource: &self.name,
                what,
                to: &self.to.join(", "),
            }),
            Ok(o) => log(&LogEvent::MailToRefused {
                resource: &self.name,
                sendmail: &Path::new(sendmail).display().to_string(),
                status: &o.status.to_string(),
                reason: &process::stderr_tail(&o.stderr),
            }),
            Err(e) => log(&LogEvent::MailToFailed {
                resource: &self.name,
                reason: &e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_heartbeat_forms() {
        let t = Duration::from_secs(5);
        let m = MailToResource::with_sendmail("MailTo::root", &args(&["root"]), None, t)
            .expect("one address");
        assert_eq!(m.recipients(), ["root"]);
        let m = MailToResource::with_sendmail(
            "x",
            &args(&["admin@example.org, ops@example.org", "DB failover"]),
            None,
            t,
        )
        .expect("two addresses and a subject");
        assert_eq!(m.recipients(), ["admin@example.org", "ops@example.org"]);
        assert!(
            m.message("Takeover in progress", "node1")
                .contains("Subject: DB failover Takeover in progress on node1\n")
        );
        for bad in [
            &[][..],
            &["", "s"],
            &["-oQ/tmp"],
            &["a b"],
            &["a", "b", "c"],
        ] {
            assert!(
                MailToResource::with_sendmail("x", &args(bad), None, t).is_err(),
                "{bad:?}"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn mails_through_sendmail_and_never_fails_without_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("mail.txt");
        let fake = dir.path().join("sendmail");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho \"args: $*\" >> {0}\ncat >> {0}\n",
                out.display()
            ),
        )
        .expect("write");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let m = MailToResource::with_sendmail(
            "MailTo::ops@example.org::web",
            &args(&["ops@example.org", "web"]),
            Some(fake),
            Duration::from_secs(5),
        )
        .expect("valid");
        assert_eq!(m.status().await.expect("status"), RunState::Stopped);
        m.start().await.expect("start never fails");
        assert_eq!(m.status().await.expect("status"), RunState::Running);
        m.stop().await.expect("stop never fails");
        m.stop().await.expect("second stop: no mail, still ok");
        let text = std::fs::read_to_string(&out).expect("mail written");
        assert!(text.contains("args: -oi -- ops@example.org"), "{text}");
        assert!(
            text.contains("Subject: web Takeover in progress on"),
            "{text}"
        );
        assert!(
            text.contains("Subject: web Migrating resource away on"),
            "{text}"
        );
        assert_eq!(text.matches("Subject:").count(), 2, "{text}");

        let none = MailToResource::with_sendmail(
            "MailTo::root",
            &args(&["root"]),
            None,
            Duration::from_secs(5),
        )
        .expect("valid");
        none.start()
            .await
            .expect("no sendmail: start still succeeds");
        none.stop().await.expect("no sendmail: stop still succeeds");
    }
}
