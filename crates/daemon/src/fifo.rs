//! Heartbeat's FIFO (`/var/lib/heartbeat/fifo`, under `--state-dir`, mode 0600): scripts
//! write classic messages into it (`>>>`, `name=value` lines, `<<<`), as `hb_standby`,
//! `hb_takeover` and `ha_clustermsg` do. had understands the two an admin's scripts send:
//!
//! - `t=ask_resources rsc_hold=all|local|foreign info=me` (hb_standby) → standby;
//! - `t=hb_takeover rsc_hold=all|local|foreign` (hb_takeover) → takeover.
//!
//! `local`/`foreign` are from this node's point of view, as in Heartbeat. Other messages
//! are logged and dropped: nothing else from a local script changes what had does.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::cluster::{AdminCommand, Scope};

/// One complete message read from the FIFO, as name/value pairs in order.
pub type FifoMessage = Vec<(String, String)>;

/// Splits a byte stream into `>>>` ... `<<<` messages; partial input waits for more.
#[derive(Debug, Default)]
pub struct Parser {
    buf: String,
    current: Option<FifoMessage>,
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
                ">>>" => self.current = Some(Vec::new()),
                "<<<" => {
                    if let Some(m) = self.current.take() {
                        out.push(m);
                    }
                }
                _ => {
                    if let (Some(m), Some((k, v))) = (self.current.as_mut(), line.split_once('=')) {
                        m.push((k.to_string(), v.to_string()));
                    }
                }
            }
        }
        out
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
    match t {
        // Only the request phase (`info=me`) comes from a script; the other phases are
        // Heartbeat-to-Heartbeat traffic that has no business in a local FIFO.
        "ask_resources" if get("info").is_none_or(|i| i == "me") => {
            Ok(AdminCommand::Standby(scope()?))
        }
        "hb_takeover" => Ok(AdminCommand::Takeover(scope()?)),
        other => Err(format!("message type `{other}` is not acted on")),
    }
}

/// Create the FIFO (0600) if needed and forward every command written to it on `tx`.
/// A failure to create it is logged, not fatal: only scripts using it lose.
pub fn spawn(state_dir: &Path, tx: mpsc::UnboundedSender<AdminCommand>) {
    let path = state_dir.join("fifo");
    if let Err(e) = prepare(&path) {
        warn!(
            "cannot use the FIFO {}: {e}; hb_standby-style scripts will not reach had",
            path.display()
        );
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = read_loop(&path, tx).await {
            warn!("FIFO {}: {e}; no longer read", path.display());
        }
    });
}

fn prepare(path: &PathBuf) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => {}
        Ok(_) => {
            return Err(std::io::Error::other(
                "exists and is not a FIFO (remove it)",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(std::io::Error::from)?;
        }
        Err(e) => return Err(e),
    }
    // Anyone who can write here moves production resources: root only, as Heartbeat.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

async fn read_loop(path: &Path, tx: mpsc::UnboundedSender<AdminCommand>) -> std::io::Result<()> {
    // Opened read-write so that the last writer closing never gives us end-of-file.
    let mut rx = tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(path)?;
    info!("reading scripts' messages from {}", path.display());
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

    #[tokio::test]
    async fn fifo_is_created_0600_and_delivers_commands() {
        let dir = std::env::temp_dir().join(format!("had-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let (tx, mut rx) = mpsc::unbounded_channel();
        spawn(&dir, tx);
        let path = dir.join("fifo");
        let meta = std::fs::metadata(&path).expect("fifo exists");
        assert!(meta.file_type().is_fifo());
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
