//! The receive thread: it reads every medium, drops what fails the cheap checks or
//! authentication, and hands the daemon loop only authentic messages. Whatever the datagram
//! rate, the loop's timers and our own heartbeats never wait behind receive work: the work
//! runs here, and what reaches the loop is bounded (authentic packets, bounded queues).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::Poll;
use std::time::Instant;

use ha_core::logcat::LogEvent;
use ha_logsafe::Untrusted;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::auth::{Auth, DropReason};
use crate::codec::{self, Message};
use crate::liveness::MediumId;
use crate::media::{MediaError, MediaSet};

/// Authentic messages waiting for the loop; beyond this they are dropped and counted.
const QUEUE: usize = 256;
/// Rejection notices waiting for the loop's log limiter; beyond this only counted.
const NOTICES: usize = 16;
/// Datagrams read from one socket before the others get their turn.
const BATCH: usize = 64;
/// Bytes read per datagram; IPv4 UDP cannot carry more.
const RECV_BUF: usize = 64 * 1024;

/// An authentic message from a medium.
#[derive(Debug)]
pub struct Inbound {
    /// The link it came in on.
    pub medium: MediumId,
    /// Its source address.
    pub from: SocketAddr,
    /// When it was read.
    pub at: Instant,
    /// The decoded, authenticated message.
    pub msg: Message,
}

/// A datagram dropped before the loop, for the (rate-limited) log line.
#[derive(Clone, Copy, Debug)]
pub struct Rejected {
    /// Its source address.
    pub from: SocketAddr,
    /// Why it was dropped.
    pub reason: DropReason,
    /// The `src` it claims, escaped and cut short.
    pub claimed_src: Option<Untrusted>,
}

/// What the thread and the loop share: the keys and the counters.
#[derive(Debug)]
pub struct RecvShared {
    auth: RwLock<Auth>,
    received: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    queue_full: AtomicU64,
}

impl RecvShared {
    /// Replaces the keys (authkeys reload).
    pub fn set_auth(&self, auth: Auth) {
        *self.auth.write().unwrap_or_else(PoisonError::into_inner) = auth;
    }

    /// Datagrams read.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Datagrams dropped here, by reason.
    pub fn dropped(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(&self.dropped)
            .map(|(&r, n)| (r, n.load(Ordering::Relaxed)))
    }

    /// Authentic messages dropped because the loop's queue was full.
    pub fn queue_full(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed)
    }

    fn count(&self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|&r| r == reason) {
            self.dropped[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The loop's end of the receive thread.
#[derive(Debug)]
pub struct Receiver {
    /// Authentic messages.
    pub messages: mpsc::Receiver<Inbound>,
    /// Rejection notices (some are only counted when the loop lags).
    pub rejected: mpsc::Receiver<Rejected>,
    /// Keys and counters.
    pub shared: Arc<RecvShared>,
}

/// Starts the receive thread on copies of the media's sockets. It ends when the
/// [`Receiver`] is dropped.
pub fn spawn(media: &MediaSet, auth: Auth) -> Result<Receiver, MediaError> {
    spawn_with(media, auth, || {})
}

/// [`spawn`], running `on_start` first on the new thread (the daemon makes it realtime
/// there, as the loop's thread: both are the heartbeat path).
pub fn spawn_with(
    media: &MediaSet,
    auth: Auth,
    on_start: impl FnOnce() + Send + 'static,
) -> Result<Receiver, MediaError> {
    let socks = media
        .sockets()
        .map(|(medium, s)| {
            let fd = s.try_clone_to_owned().map_err(|e| MediaError::Recv {
                link: media.link_name(medium),
                source: e,
            })?;
            Ok((medium, std::net::UdpSocket::from(fd)))
        })
        .collect::<Result<Vec<_>, MediaError>>()?;
    let shared = Arc::new(RecvShared {
        auth: RwLock::new(auth),
        received: AtomicU64::new(0),
        dropped: std::array::from_fn(|_| AtomicU64::new(0)),
        queue_full: AtomicU64::new(0),
    });
    let (msg_tx, messages) = mpsc::channel(QUEUE);
    let (rej_tx, rejected) = mpsc::channel(NOTICES);
    let thread_shared = shared.clone();
    let thread_err = |e| MediaError::Recv {
        link: "receive thread".into(),
        source: e,
    };
    // Its own small runtime: the sockets' readiness is watched by this thread's reactor, so
    // a flood never wakes the loop's.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(thread_err)?;
    std::thread::Builder::new()
        .name("had-recv".into())
        .spawn(move || {
            on_start();
            rt.block_on(async move {
                let socks: Vec<(MediumId, UdpSocket)> = socks
                    .into_iter()
                    .filter_map(|(m, s)| match UdpSocket::from_std(s) {
                        Ok(s) => Some((m, s)),
                        Err(e) => {
                            ha_core::logcat::log(&LogEvent::ReceiveSocketFailed {
                                medium: m.0,
                                reason: &e.to_string(),
                            });
                            None
                        }
                    })
                    .collect();
                tokio::select! {
                    () = run(&socks, &thread_shared, &msg_tx, &rej_tx) => {}
                    () = msg_tx.closed() => {}
                }
            });
        })
        .map_err(thread_err)?;
    Ok(Receiver {
        messages,
        rejected,
        shared,
    })
}

async fn run(
    socks: &[(MediumId, UdpSocket)],
    shared: &RecvShared,
    msg_tx: &mpsc::Sender<Inbound>,
    rej_tx: &mpsc::Sender<Rejected>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut ready = vec![false; socks.len()];
    loop {
        poll_fn(|cx| {
            let mut any = false;
            for (r, (_, s)) in ready.iter_mut().zip(socks) {
                *r = s.poll_recv_ready(cx).is_ready();
                any |= *r;
            }
            if any { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
        for ((medium, sock), &r) in socks.iter().zip(&ready) {
            if r {
                drain(*medium, sock, &mut buf, shared, msg_tx, rej_tx);
            }
        }
    }
}

/// Reads up to `BATCH` datagrams from one socket.
fn drain(
    medium: MediumId,
    sock: &UdpSocket,
    buf: &mut [u8],
    shared: &RecvShared,
    msg_tx: &mpsc::Sender<Inbound>,
    rej_tx: &mpsc::Sender<Rejected>,
) {
    for _ in 0..BATCH {
        let (n, from) = match sock.try_recv_from(buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("receive error: {e}");
                return;
            }
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        let bytes = &buf[..n];
        match check(shared, bytes) {
            Ok(msg) => {
                let inbound = Inbound {
                    medium,
                    from,
                    at: Instant::now(),
                    msg,
                };
                if msg_tx.try_send(inbound).is_err() {
                    shared.queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(reason) => {
                shared.count(reason);
                // A full notice queue means the log limiter is saturated anyway.
                let _ = rej_tx.try_send(Rejected {
                    from,
                    reason,
                    claimed_src: codec::peek_src(bytes).map(Untrusted::from_bytes),
                });
            }
        }
    }
}

/// Cheap checks first (nothing allocated), then full authentication.
fn check(shared: &RecvShared, bytes: &[u8]) -> Result<Message, DropReason> {
    let auth = shared.auth.read().unwrap_or_else(PoisonError::into_inner);
    auth.precheck(bytes)?;
    auth.verify(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use ha_config::Medium;

    use super::*;
    use crate::auth::AuthMethod;

    fn auth(secret: &[u8]) -> Auth {
        Auth::from_keys(1, [(1, AuthMethod::Sha1, secret.to_vec())])
    }

    #[tokio::test]
    async fn only_authentic_messages_reach_the_loop_and_every_drop_is_counted() {
        // SO_BINDTODEVICE needs root.
        if !ha_gate::root_available("only_authentic_messages_reach_the_loop") {
            return;
        }
        let port = 20000 + (std::process::id() % 20000) as u16;
        let media = MediaSet::open(
            &[Medium::Ucast {
                iface: "lo".into(),
                peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            }],
            port,
        )
        .unwrap();
        let mut rx = spawn(&media, auth(b"secret")).unwrap();
        let to = (Ipv4Addr::LOCALHOST, port);
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut m = Message::with_type("status");
        m.push_str("src", "node2");
        s.send_to(b"junk", to).unwrap();
        s.send_to(&auth(b"guess").sign(&mut m.clone()), to).unwrap();
        s.send_to(&vec![b'#'; 60_000], to).unwrap();
        s.send_to(&auth(b"secret").sign(&mut m.clone()), to)
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.messages.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.msg.get("src"), Some("node2"));
        assert_eq!(rx.shared.received(), 4);
        let dropped: Vec<(DropReason, u64)> = rx.shared.dropped().filter(|d| d.1 > 0).collect();
        assert_eq!(
            dropped,
            vec![(DropReason::Malformed, 2), (DropReason::BadAuth, 1)]
        );
        let mut reasons = Vec::new();
        while let Ok(r) = rx.rejected.try_recv() {
            reasons.push((r.reason, r.claimed_src.map(|c| c.to_string())));
        }
        assert_eq!(
            reasons,
            vec![
                (DropReason::Malformed, None),
                (DropReason::BadAuth, Some("node2".into())),
                (DropReason::Malformed, None),
            ]
        );
        assert!(rx.messages.try_recv().is_err(), "nothing else got through");
    }

    #[tokio::test]
    async fn a_send_only_set_still_sends_and_leaves_reading_to_the_thread() {
        if !ha_gate::root_available("a_send_only_set_still_sends") {
            return;
        }
        let port = 20000 + ((std::process::id() + 7) % 20000) as u16;
        let mut media = MediaSet::open(
            &[Medium::Ucast {
                iface: "lo".into(),
                peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            }],
            port,
        )
        .unwrap();
        let mut rx = spawn(&media, auth(b"secret")).unwrap();
        media.send_only().unwrap();
        let mut m = Message::with_type("status");
        m.push_str("src", "node2");
        // Sent through the send-only socket to itself: only the thread's copy reads it.
        media.send_all(&auth(b"secret").sign(&mut m)).await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.messages.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.msg.get("src"), Some("node2"));
        // With the thread gone, a datagram waits unread: the set no longer reads sockets.
        drop(rx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        media.send_all(b"unread").await;
        let here = tokio::time::timeout(Duration::from_millis(300), media.recv()).await;
        assert!(here.is_err(), "the loop's set read a datagram: {here:?}");
    }
}
