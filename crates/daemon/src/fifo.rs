//! Heartbeat's FIFO (`/var/lib/heartbeat/fifo`, under `--state-dir`, mode 0600): scripts
//! write classic messages into it (`>>>`, `name=value` lines, `<<<`), as `hb_standby`,
//! `hb_takeover` and `ha_clustermsg` do. had understands the two an admin's scripts send:
//!
//! - `t=ask_resources rsc_hold=all|local|foreign info=me` (hb_standby) → standby;
//! - `t=hb_takeover rsc_hold=all|local|foreign` (hb_takeover) → takeover.
//!
//! `local`/`foreign` are from this node's point of view, as in Heartbeat. Other messages
//! are logged and dropped: nothing else from a local script changes what had does.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::logcat::{LogEvent, log};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tracing::debug;

use crate::cluster::{AdminCommand, Scope};
use ha_core::message::MessageType;

/// One complete message read from the FIFO, as name/value pairs in order.
pub type FifoMessage = Vec<(String, String)>;

/// Splits a byte stream into `>>>` ... `<<<` messages; partial input waits for more.
/// Memory is bounded: a line or message over [`MAX_MESSAGE`] bytes is dropped whole.
#[derive(Debug, Default)]
pub struct Parser {
    buf: String,
    current: Option<FifoMessage>,
    current_len: usize,
    overflow: bool,
}

impl Parser {
    /// Feed bytes; returns every message completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<FifoMessage> {
        self.buf.push_str(&String::from_utf8_lossy(bytes));
        let mut out = Vec::new();
        while let Some(nl) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=nl).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            match line {
                ">>>" => {
                    self.current = Some(Vec::new());
                    self.current_len = 0;
                }
                "<<<" => {
                    if let Some(m) = self.current.take() {
                        out.push(m);
                    }
                }
                _ => {
                    if let (Some(m), Some((k, v))) = (self.current.as_mut(), line.split_once('=')) {
                        self.current_len += line.len();
                        if self.current_len > MAX_MESSAGE {
                            self.current = None;
                            self.overflow = true;
                        } else {
                            m.push((k.to_string(), v.to_string()));
                        }
                    }
                }
            }
        }
        if self.buf.len() > MAX_MESSAGE {
            // A line without end: drop it and whatever message it was part of.
            self.buf.clear();
            self.current = None;
            self.overflow = true;
        }
        out
    }

    /// Whether input was dropped for size since the last call.
    pub fn take_overflow(&mut self) -> bool {
        std::mem::take(&mut self.overflow)
    }
}

/// The admin command a FIFO message asks for, or why it is ignored.
pub fn command_of(msg: &FifoMessage) -> Result<AdminCommand, String> {
    let get = |k: &str| msg.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let t = get("t").unwrap_or("");
    let scope = || {
        let set = get("rsc_hold").unwrap_or("all");
        Scope::parse(set).ok_or_else(|| format!("{t}: unknown rsc_hold `{set}`"))
    };
    match MessageType::from_name(t) {
        // Only the request phase (`info=me`) comes from a script; the other phases are
        // Heartbeat-to-Heartbeat traffic that has no business in a local FIFO.
        MessageType::AskResources if get("info").is_none_or(|i| i == "me") => {
            Ok(AdminCommand::Standby(scope()?))
        }
        MessageType::HbTakeover => Ok(AdminCommand::Takeover(scope()?)),
        _ => Err(format!("message type `{t}` is not acted on")),
    }
}

/// Longest message (or line outside one) kept; more is dropped as garbage.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Create the FIFO (0600) if needed and forward every command written to it on `tx`.
/// A failure to create it is logged, not fatal: only scripts using it lose.
/// The task is the caller's to own.
pub fn spawn(
    state_dir: &Path,
    tx: mpsc::UnboundedSender<AdminCommand>,
) -> Option<tokio::task::JoinHandle<()>> {
    let path = state_dir.join("fifo");
    let rx = match open(&path) {
        Ok(rx) => rx,
        Err(e) => {
            log(&LogEvent::FifoUnusable {
                path: &path.display().to_string(),
                reason: &e.to_string(),
            });
            return None;
        }
    };
    Some(tokio::spawn(async move {
        if let Err(e) = read_loop(&path, rx, tx).await {
            log(&LogEvent::FifoClosed {
                path: &path.display().to_string(),
                reason: &e.to_string(),
            });
        }
    }))
}

/// Opens our FIFO, making it first when it is missing. Never through a link, and only a
/// FIFO owned by us that nobody else may open: one planted by another user (who may hold it
/// open for writing) is refused, not chmod'ed and used.
pub fn open(path: &Path) -> std::io::Result<pipe::Receiver> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        // Made by us just now (mkfifo never follows a link and fails on any existing name).
        Ok(()) => {}
        Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    // Read-write so that the last writer closing never gives us end-of-file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other(format!(
                    "is a symbolic link; remove it (`rm {}`) and had makes its own",
                    path.display()
                ))
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.file_type().is_fifo() {
        return Err(std::io::Error::other(format!(
            "exists and is not a FIFO; remove it (`rm {}`)",
            path.display()
        )));
    }
    if meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::other(format!(
            "not ours alone (uid {}, mode {:o}); remove it (`rm {}`) and had makes its own",
            meta.uid(),
            meta.mode() & 0o7777,
            path.display()
        )));
    }
    pipe::Receiver::from_file_unchecked(file)
}

async fn read_loop(
    path: &Path,
    mut rx: pipe::Receiver,
    tx: mpsc::UnboundedSender<AdminCommand>,
) -> std::io::Result<()> {
    log(&LogEvent::FifoReading {
        path: &path.display().to_string(),
    });
    let mut parser = Parser::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = rx.read(&mut buf).await?;
        for m in parser.feed(&buf[..n]) {
            match command_of(&m) {
                Ok(cmd) => {
                    if tx.send(cmd).is_err() {
                        return Ok(());
                    }
                }
                Err(why) => debug!("FIFO: {why}"),
            }
        }
        if parser.take_overflow() {
            log(&LogEvent::FifoOversized { max: MAX_MESSAGE });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hb_standby_and_hb_takeover_messages() {
        let mut p = Parser::default();
        let ms = p.feed(b">>>\nt=ask_resources\nrsc_hold=foreign\ninfo=me\n<<<\n>>>\nt=hb_tak");
        assert_eq!(ms.len(), 1);
        assert_eq!(
            command_of(&ms[0]),
            Ok(AdminCommand::Standby(Scope::Foreign))
        );
        let ms = p.feed(b"eover\nrsc_hold=all\n<<<\n");
        assert_eq!(command_of(&ms[0]), Ok(AdminCommand::Takeover(Scope::All)));
        let ms = p.feed(b">>>\nt=ask_resources\nrsc_hold=all\ninfo=other\n<<<\n");
        assert!(command_of(&ms[0]).is_err());
        let ms = p.feed(b">>>\nt=ask_resources\nrsc_hold=bogus\n<<<\n");
        assert!(command_of(&ms[0]).is_err());
        // Lines outside a message are noise.
        assert!(p.feed(b"garbage\nt=hb_takeover\n").is_empty());
    }

    #[test]
    fn oversized_input_is_dropped_and_the_parser_recovers() {
        let mut p = Parser::default();
        assert!(p.feed(&vec![b'x'; MAX_MESSAGE + 1]).is_empty());
        assert!(p.take_overflow());
        assert!(p.buf.is_empty(), "the endless line is not kept");
        let mut big = b">>>\n".to_vec();
        for _ in 0..(MAX_MESSAGE / 5) {
            big.extend_from_slice(b"k=vvvvvvv\n");
        }
        big.extend_from_slice(b"t=hb_takeover\n<<<\n");
        assert!(
            p.feed(&big).is_empty(),
            "an oversized message is not acted on"
        );
        assert!(p.take_overflow());
        let ms = p.feed(b">>>\nt=hb_takeover\n<<<\n");
        assert_eq!(command_of(&ms[0]), Ok(AdminCommand::Takeover(Scope::All)));
        assert!(!p.take_overflow());
    }

    #[tokio::test]
    async fn a_planted_fifo_or_link_is_refused_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("scratch dir");
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).expect("chmod");
        let e = open(&path).expect_err("mode 622 refused");
        assert!(e.to_string().contains("mode 622"), "{e}");
        assert_eq!(
            std::fs::metadata(&path)
                .expect("still there")
                .permissions()
                .mode()
                & 0o7777,
            0o622,
            "refused, not chmod'ed"
        );
        if nix::unistd::geteuid().is_root() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            std::os::unix::fs::lchown(&path, Some(65534), None).expect("chown");
            let e = open(&path).expect_err("another user's FIFO refused");
            assert!(e.to_string().contains("uid 65534"), "{e}");
        }
        std::fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).expect("symlink");
        let e = open(&path).expect_err("a link refused");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(
            !dir.path().join("elsewhere").exists(),
            "nothing made through the link"
        );
    }

    #[tokio::test]
    async fn fifo_is_created_0600_and_delivers_commands() {
        let dir = std::env::temp_dir().join(format!("had-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let (tx, mut rx) = mpsc::unbounded_channel();
        spawn(&dir, tx);
        let path = dir.join("fifo");
        let meta = std::fs::metadata(&path).expect("fifo exists");
        assert!(meta.file_type().is_fifo());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Writing needs a reader, which the spawned task opens; write from a thread.
        let p2 = path.clone();
        std::thread::spawn(move || {
            std::fs::write(p2, ">>>\nt=hb_takeover\nrsc_hold=local\n<<<\n").expect("write")
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("in time");
        assert_eq!(got, Some(AdminCommand::Takeover(Scope::Local)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
