//! The serial medium: Heartbeat's classic text framing (`>>>` … `<<<`, one field a line) on
//! a raw tty, and the ring rule that copies a peer's message to the other serial ports with
//! `ttl` decremented and the classic `auth` recomputed.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::future::Future as _;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::sync::Mutex;
use std::task::{Context, Poll};

use nix::sys::termios::{
    self, BaudRate, ControlFlags, InputFlags, SetArg, SpecialCharacterIndices,
};
use tokio::io::unix::AsyncFd;

use super::MediaError;
use crate::auth::Auth;
use crate::codec::{self, MAX_MSG, encode_classic};

const START: &[u8] = b">>>";
const END: &[u8] = b"<<<";

/// Splits a byte stream into classic messages. Bytes before a `>>>` line are skipped (line
/// noise, a half message from before we opened), a `>>>` inside a message restarts it, and a
/// message longer than Heartbeat's MAXMSG is dropped whole.
#[derive(Debug, Default)]
pub struct Framer {
    line: Vec<u8>,
    msg: Vec<u8>,
    inside: bool,
    /// Set when the current line or message overflowed: skip to the next `>>>`.
    overflow: bool,
    /// Messages dropped for size.
    pub dropped: u64,
}

impl Framer {
    /// Feeds bytes; returns each complete message, `>>>\n` through `<<<\n`.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < MAX_MSG {
                    self.line.push(b);
                } else {
                    self.overflow = true;
                }
                continue;
            }
            let line = std::mem::take(&mut self.line);
            if line == START {
                self.msg.clear();
                self.msg.extend_from_slice(b">>>\n");
                self.inside = true;
                self.overflow = false;
                continue;
            }
            if !self.inside {
                continue;
            }
            if self.msg.len() + line.len() + 1 > MAX_MSG {
                self.overflow = true;
            }
            if line == END {
                self.inside = false;
                if std::mem::take(&mut self.overflow) {
                    self.dropped += 1;
                    self.msg.clear();
                    continue;
                }
                self.msg.extend_from_slice(b"<<<\n");
                out.push(std::mem::take(&mut self.msg));
                continue;
            }
            if !self.overflow {
                self.msg.extend_from_slice(&line);
                self.msg.push(b'\n');
            }
        }
        out
    }
}

/// What goes on the tty for one packet: classic text, as Heartbeat's `serial_write` turns
/// its netstring packets back into. The inner `auth` field travels along unchanged: it was
/// computed over the same classic text. `None` for bytes that do not decode.
pub fn to_tty(bytes: &[u8]) -> Option<Vec<u8>> {
    Some(encode_classic(&codec::decode(bytes).ok()?.msg))
}

/// Heartbeat's ring rule for a message read from a serial port: when it is authentic, not
/// ours and its `ttl` is above zero, the copy for the other ports has `ttl - 1` and a fresh
/// classic `auth`.
pub fn ring_copy(auth: &Auth, local: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut msg = auth.verify(bytes).ok()?;
    if msg.get("src")? == local {
        return None;
    }
    let ttl: u32 = msg.get("ttl")?.parse().ok()?;
    if ttl == 0 {
        return None;
    }
    msg.set_str("ttl", (ttl - 1).to_string());
    Some(auth.sign_classic(&mut msg))
}

fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        _ => return None,
    })
}

/// How long a port that failed to read (a pty whose other end closed, a device gone) rests
/// before the next try, so a dead line cannot spin the loop or flood the log.
const READ_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Receive state: the framer, messages framed but not handed out yet, and the back-off.
#[derive(Debug, Default)]
struct Rx {
    framer: Framer,
    queue: VecDeque<Vec<u8>>,
    resting: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Whether the current failure streak was reported already.
    reported: bool,
}

/// One open serial port.
#[derive(Debug)]
pub(super) struct Port {
    fd: AsyncFd<OwnedFd>,
    rx: Mutex<Rx>,
}

impl Port {
    /// Opens `device` (a character device), raw at `baud`, non-blocking, not as our
    /// controlling terminal.
    pub(super) fn open(device: &str, baud: u32) -> Result<Port, MediaError> {
        let fail = |op: &'static str, source: io::Error| MediaError::Serial {
            device: device.to_owned(),
            op,
            source,
        };
        let meta = std::fs::metadata(device).map_err(|e| fail("stat", e))?;
        if !meta.file_type().is_char_device() {
            return Err(fail(
                "open",
                io::Error::other("not a character device (a tty)"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(device)
            .map_err(|e| fail("open", e))?;
        let fd = OwnedFd::from(file);
        let mut t = termios::tcgetattr(&fd).map_err(|e| fail("tcgetattr", e.into()))?;
        // Raw 8-bit, no echo, no signals, no flow control by characters; carriage returns
        // dropped as Heartbeat's IGNCR does, so a CRLF line still frames.
        termios::cfmakeraw(&mut t);
        t.input_flags |= InputFlags::IGNCR | InputFlags::IGNBRK;
        t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        let rate = baud_rate(baud).ok_or_else(|| {
            fail(
                "baud",
                io::Error::other(format!("unsupported speed {baud}")),
            )
        })?;
        termios::cfsetspeed(&mut t, rate).map_err(|e| fail("cfsetspeed", e.into()))?;
        termios::tcsetattr(&fd, SetArg::TCSANOW, &t).map_err(|e| fail("tcsetattr", e.into()))?;
        // Whatever sat in the buffers belongs to an earlier run.
        let _ = termios::tcflush(&fd, termios::FlushArg::TCIOFLUSH);
        // `new` is deprecated because a borrowed raw fd could be closed while registered; here
        // the AsyncFd owns the OwnedFd, so the descriptor lives exactly as long as the
        // registration, and no `unsafe` is needed.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd).map_err(|e| fail("register with tokio", e))?;
        Ok(Port {
            fd,
            rx: Mutex::new(Rx::default()),
        })
    }

    /// The next complete message read from the line. A read error is returned once per
    /// failure streak; the port then rests for [`READ_RETRY`] between tries.
    pub(super) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<io::Result<Vec<u8>>> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = rx.queue.pop_front() {
            return Poll::Ready(Ok(m));
        }
        if let Some(sleep) = rx.resting.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            rx.resting = None;
        }
        let mut buf = [0u8; 4096];
        loop {
            let mut guard = match self.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let read = guard
                .try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(io::Error::from));
            let n = match read {
                Ok(Ok(n)) if n > 0 => n,
                Err(_would_block) => continue,
                // End of file or an error (EIO: the other end of a pty closed, the device is
                // gone): rest, and say so once.
                other => {
                    let mut sleep = Box::pin(tokio::time::sleep(READ_RETRY));
                    let _ = sleep.as_mut().poll(cx);
                    rx.resting = Some(sleep);
                    if std::mem::replace(&mut rx.reported, true) {
                        return Poll::Pending;
                    }
                    let e = match other {
                        Ok(Err(e)) => e,
                        _ => {
                            io::Error::new(io::ErrorKind::UnexpectedEof, "end of file on the line")
                        }
                    };
                    return Poll::Ready(Err(e));
                }
            };
            rx.reported = false;
            let framed = rx.framer.push(&buf[..n]);
            rx.queue.extend(framed);
            if let Some(m) = rx.queue.pop_front() {
                return Poll::Ready(Ok(m));
            }
        }
    }

    /// Writes one framed message without waiting: a line that does not drain (no peer
    /// reading, a stuck cable) loses packets instead of stalling the daemon.
    pub(super) fn try_send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut off = 0;
        while off < bytes.len() {
            match nix::unistd::write(self.fd.get_ref(), &bytes[off..]) {
                Ok(n) => off += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::Message;

    fn auth() -> Auth {
        let mut d = ha_config::Diagnostics::new();
        let keys = ha_config::Authkeys::parse(
            std::path::Path::new("authkeys"),
            "auth 1\n1 sha1 secret\n",
            &mut d,
        );
        Auth::new(&keys)
    }

    fn status(src: &str, ttl: &str) -> Message {
        let mut m = Message::with_type("status");
        m.push_str("st", "active");
        m.push_str("src", src);
        m.push_str("seq", "1a");
        m.push_str("ttl", ttl);
        m
    }

    #[test]
    fn framer_finds_messages_in_noise_and_pieces() {
        let mut f = Framer::default();
        let a = b">>>\nt=status\nsrc=b\n<<<\n";
        assert!(f.push(b"garbage\n<<<\nsrc=x\n").is_empty());
        assert!(f.push(&a[..7]).is_empty());
        assert_eq!(f.push(&a[7..]), vec![a.to_vec()]);
        // A restart inside a message, then two in one read.
        let two = [&b">>>\nt=cut\n"[..], a, a].concat();
        assert_eq!(f.push(&two), vec![a.to_vec(), a.to_vec()]);
    }

    #[test]
    fn framer_drops_oversized_messages_whole() {
        let mut f = Framer::default();
        let mut big = b">>>\n".to_vec();
        for _ in 0..(MAX_MSG / 1000 + 2) {
            big.extend_from_slice(&[b'x'; 999]);
            big.push(b'\n');
        }
        big.extend_from_slice(b"<<<\n");
        assert!(f.push(&big).is_empty());
        assert_eq!(f.dropped, 1);
        let a = b">>>\nt=status\n<<<\n";
        assert_eq!(f.push(a), vec![a.to_vec()], "resynchronised");
        // One endless line without a newline is bounded too.
        let mut g = Framer::default();
        g.push(b">>>\n");
        g.push(&vec![b'y'; MAX_MSG + 10]);
        assert!(g.line.len() <= MAX_MSG);
        assert!(g.push(b"\n<<<\n").is_empty());
    }

    #[test]
    fn netstring_goes_on_the_tty_as_verifiable_classic() {
        let a = auth();
        let mut m = status("alpha", "3");
        let wire = a.sign(&mut m);
        assert!(wire.starts_with(b"###\n"));
        let tty = to_tty(&wire).unwrap();
        assert!(tty.starts_with(b">>>\nt=status\n"));
        assert!(tty.ends_with(b"<<<\n"));
        let back = a.verify(&tty).unwrap();
        assert_eq!(back.get("src"), Some("alpha"));
        // Framed off the line, it is the same message.
        let mut f = Framer::default();
        assert_eq!(f.push(&tty), vec![tty.clone()]);
        assert!(to_tty(b"not a message").is_none());
    }

    #[test]
    fn ring_copies_peers_messages_with_ttl_decremented() {
        let a = auth();
        let tty = a.sign_classic(&mut status("beta", "2"));
        let copy = ring_copy(&a, "alpha", &tty).unwrap();
        let m = a.verify(&copy).expect("re-authenticated");
        assert_eq!(m.get("ttl"), Some("1"));
        let copy2 = ring_copy(&a, "gamma", &copy).unwrap();
        assert_eq!(a.verify(&copy2).unwrap().get("ttl"), Some("0"));
        assert!(ring_copy(&a, "gamma", &copy2).is_none(), "ttl 0 stops");
        assert!(
            ring_copy(&a, "beta", &tty).is_none(),
            "our own message stops"
        );
        let mut forged = tty.clone();
        let i = forged.windows(5).position(|w| w == b"ttl=2").unwrap();
        forged[i + 4] = b'9';
        assert!(ring_copy(&a, "alpha", &forged).is_none(), "unauthentic");
    }

    #[tokio::test]
    async fn a_pty_carries_messages_both_ways() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let path = nix::unistd::ttyname(&pty.slave).unwrap();
        let port = Port::open(path.to_str().unwrap(), 115200).unwrap();
        let a = auth();
        let tty = a.sign_classic(&mut status("beta", "3"));
        // The far end writes with CRLF line ends and noise before the start.
        let crlf: Vec<u8> = tty
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        nix::unistd::write(&pty.master, b"noise\r\n").unwrap();
        nix::unistd::write(&pty.master, &crlf).unwrap();
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            std::future::poll_fn(|cx| port.poll_recv(cx)),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, tty);
        assert!(a.verify(&got).is_ok());
        port.try_send(&tty).unwrap();
        let mut buf = vec![0u8; tty.len()];
        let mut off = 0;
        while off < buf.len() {
            off += nix::unistd::read(&pty.master, &mut buf[off..]).unwrap();
        }
        assert_eq!(buf, tty, "raw: no CR added on output");
        assert!(Port::open("/dev/null", 19200).is_err(), "not a tty");
        assert!(Port::open("/nonexistent/tty", 19200).is_err());
    }

    #[test]
    fn baud_rates_map_and_others_do_not() {
        for b in ha_config::ha_cf::BAUD_RATES {
            assert!(baud_rate(*b).is_some(), "{b}");
        }
        assert!(baud_rate(300).is_none());
    }
}
