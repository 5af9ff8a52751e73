//! The receive thread: it reads every medium, drops what fails the cheap checks or
//! authentication, and hands the daemon loop only authentic messages. Whatever the datagram
//! rate, the loop's timers and our own heartbeats never wait behind receive work: the work
//! runs here, and what reaches the loop is bounded (authentic packets, bounded queues).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::Poll;
use std::time::Instant;

use ha_core::logcat::LogEvent;
use ha_logsafe::Untrusted;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::auth::{Auth, DropReason};
use crate::codec::{self, Field, Message};
use crate::liveness::MediumId;
use crate::media::{MediaError, MediaSet};
use ha_core::message::{MessageType, Seq};

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

/// Authentic messages in arrival order, between the receive thread and the loop.
///
/// The loop is woken only for a message that may change something. A routine status
/// heartbeat (the same as the last one from that node on that link but for its sequence
/// number, time and load, and next in sequence) waits for the loop's next wake-up, which
/// its own heartbeat timer brings within a keepalive; it carries the time it was read,
/// and the loop takes every waiting message, in order, before it looks at a deadline.
/// At 1 s timers this halves the loop's wake-ups on an idle node (issue 14).
#[derive(Debug, Default)]
pub struct Inbox {
    queue: Mutex<VecDeque<Inbound>>,
    wake: Notify,
}

impl Inbox {
    /// Queues `m`, and wakes the loop if `urgent`; false (and nothing queued) when full.
    pub fn push(&self, m: Inbound, urgent: bool) -> bool {
        {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if q.len() >= QUEUE {
                return false;
            }
            q.push_back(m);
        }
        if urgent {
            self.wake.notify_one();
        }
        true
    }

    /// The oldest waiting message.
    pub fn pop(&self) -> Option<Inbound> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// Until an urgent message was queued (at once if one was since the last wait).
    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    /// Makes the next [`Inbox::wait`] return at once: the loop left messages for later.
    pub fn rewake(&self) {
        self.wake.notify_one();
    }
}

/// The loop's end of the inbox; the receive thread ends when it is dropped.
#[derive(Debug)]
pub struct Messages {
    inbox: Arc<Inbox>,
    _stop: oneshot::Sender<()>,
}

impl Messages {
    /// An inbox fed by the caller instead of a receive thread (tests, replays).
    pub fn detached() -> (Arc<Inbox>, Messages) {
        let inbox = Arc::new(Inbox::default());
        let (stop, _) = oneshot::channel();
        (inbox.clone(), Messages { inbox, _stop: stop })
    }
}

impl std::ops::Deref for Messages {
    type Target = Inbox;

    fn deref(&self) -> &Inbox {
        &self.inbox
    }
}

/// Fields of a status heartbeat that change at every beat (`auth`: its signature, already
/// checked).
const EVERY_BEAT: [&str; 4] = ["seq", "ts", "ld", "auth"];
/// Nodes whose last status the receive thread remembers (a cluster has two; a key holder
/// inventing names cannot make it grow).
const REMEMBERED: usize = 8;

/// What the receive thread remembers to tell a routine heartbeat from news.
#[derive(Debug, Default)]
struct LastStatus {
    last: VecDeque<(MediumId, Message)>,
}

impl LastStatus {
    /// Whether `msg` may wait for the loop's next wake-up; remembers it either way.
    fn routine(&mut self, medium: MediumId, msg: &Message) -> bool {
        let Some(src) = msg.get("src") else {
            return false;
        };
        let at = self
            .last
            .iter()
            .position(|(m, last)| *m == medium && last.get("src") == Some(src));
        let previous = at.and_then(|i| self.last.remove(i));
        let status = MessageType::of(msg) == Some(MessageType::Status);
        let routine = status && previous.is_some_and(|(_, last)| next_beat(&last, msg));
        if status {
            if self.last.len() >= REMEMBERED {
                self.last.pop_front();
            }
            self.last.push_back((medium, msg.clone()));
        }
        routine
    }
}

/// `msg` is `last` again, one sequence number on.
fn next_beat(last: &Message, msg: &Message) -> bool {
    let kept = |f: &&Field| !EVERY_BEAT.contains(&f.name.as_str());
    matches!((Seq::of(last), Seq::of(msg)), (Some(a), Some(b)) if a.0.checked_add(1) == Some(b.0))
        && last
            .fields()
            .iter()
            .filter(kept)
            .eq(msg.fields().iter().filter(kept))
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
    pub messages: Messages,
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
    let inbox = Arc::new(Inbox::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let messages = Messages {
        inbox: inbox.clone(),
        _stop: stop,
    };
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
                // Readable interest only: the loop sends on the same sockets, and a
                // registration for writability would wake this thread after every
                // heartbeat we send (the send buffer's space coming back), for nothing.
                let socks: Vec<(MediumId, AsyncFd<std::net::UdpSocket>)> = socks
                    .into_iter()
                    .filter_map(|(m, s)| match readable(s) {
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
                    () = run(&socks, &thread_shared, &inbox, &rej_tx) => {}
                    _ = stopped => {}
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

/// `socket` registered with this thread's reactor for readability alone.
// Deprecated because a borrowed raw fd could be closed while registered; the AsyncFd owns
// this socket (as in `MediaSet`), so the descriptor lives as long as the registration.
#[allow(deprecated)]
fn readable(socket: std::net::UdpSocket) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    AsyncFd::with_interest(socket, Interest::READABLE)
}

async fn run(
    socks: &[(MediumId, AsyncFd<std::net::UdpSocket>)],
    shared: &RecvShared,
    inbox: &Inbox,
    rej_tx: &mpsc::Sender<Rejected>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut last = LastStatus::default();
    loop {
        poll_fn(|cx| {
            let mut any = false;
            for (medium, fd) in socks {
                // An error here is the reactor's own (shutting down): nothing to read.
                if let Poll::Ready(Ok(mut ready)) = fd.poll_read_ready(cx) {
                    any = true;
                    // Emptied: wait for the next edge. Not emptied (a full batch): the
                    // readiness stays, and the other sockets get their turn first.
                    let sock = fd.get_ref();
                    if drain(*medium, sock, &mut buf, shared, inbox, &mut last, rej_tx) {
                        ready.clear_ready();
                    }
                }
            }
            if any { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
    }
}

/// Reads up to `BATCH` datagrams from one (non-blocking) socket; true when it read it empty.
fn drain(
    medium: MediumId,
    sock: &std::net::UdpSocket,
    buf: &mut [u8],
    shared: &RecvShared,
    inbox: &Inbox,
    last: &mut LastStatus,
    rej_tx: &mpsc::Sender<Rejected>,
) -> bool {
    for _ in 0..BATCH {
        let (n, from) = match sock.recv_from(buf) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!("receive error: {e}");
                return true;
            }
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        let bytes = &buf[..n];
        match check(shared, bytes) {
            Ok(msg) => {
                let urgent = !last.routine(medium, &msg);
                let inbound = Inbound {
                    medium,
                    from,
                    at: Instant::now(),
                    msg,
                };
                if !inbox.push(inbound, urgent) {
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
    false
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

    fn beat(src: &str, seq: u64, st: &str) -> Message {
        let mut m = Message::with_type("status");
        m.push_str("st", st);
        m.push_str("src", src);
        m.push_str("seq", format!("{seq:x}"));
        m.push_str("hg", "5");
        m.push_str("ts", format!("{:x}", 1_700_000_000 + seq));
        m.push_str("ld", format!("0.0{seq} 0.00 0.00 1/90 {seq}"));
        m.push_str("auth", format!("1 {:x}", seq * 7919));
        m
    }

    #[test]
    fn only_the_next_unchanged_status_of_a_known_node_waits() {
        let (eth0, eth1) = (MediumId(0), MediumId(1));
        let mut last = LastStatus::default();
        assert!(!last.routine(eth0, &beat("n2", 9, "active")), "first heard");
        assert!(last.routine(eth0, &beat("n2", 10, "active")));
        assert!(
            !last.routine(eth1, &beat("n2", 10, "active")),
            "first on eth1"
        );
        assert!(last.routine(eth1, &beat("n2", 11, "active")));
        assert!(
            !last.routine(eth0, &beat("n2", 13, "active")),
            "a gap: rexmit to ask"
        );
        assert!(!last.routine(eth0, &beat("n2", 13, "active")), "a repeat");
        assert!(!last.routine(eth0, &beat("n2", 1, "active")), "a restart");
        assert!(!last.routine(eth0, &beat("n2", 2, "standby")), "news");
        let mut extra = beat("n2", 3, "standby");
        extra.push_str("rsc_hold", "local");
        assert!(!last.routine(eth0, &extra), "a field more");
        let mut other = Message::with_type("ask_resources");
        other.push_str("src", "n2");
        other.push_str("seq", "4");
        assert!(!last.routine(eth0, &other), "not a heartbeat");
        assert!(
            !last.routine(eth0, &beat("n2", 5, "standby")),
            "after another message"
        );
        assert!(last.routine(eth0, &beat("n2", 6, "standby")));
        // Invented names push the oldest out instead of growing the table.
        for i in 0..100 {
            last.routine(eth0, &beat(&format!("x{i}"), 1, "active"));
        }
        assert_eq!(last.last.len(), REMEMBERED);
        assert!(!last.routine(eth0, &beat("n2", 7, "standby")), "forgotten");
    }

    #[tokio::test]
    async fn the_inbox_wakes_only_for_urgent_messages_and_keeps_the_order() {
        let (inbox, messages) = Messages::detached();
        let m = |seq| Inbound {
            medium: MediumId(0),
            from: "198.18.0.2:694".parse().unwrap(),
            at: Instant::now(),
            msg: beat("n2", seq, "active"),
        };
        assert!(inbox.push(m(1), false));
        let slept = tokio::time::timeout(Duration::from_millis(200), messages.wait()).await;
        assert!(slept.is_err(), "a routine message woke the loop");
        assert!(inbox.push(m(2), true));
        tokio::time::timeout(Duration::from_secs(5), messages.wait())
            .await
            .unwrap();
        let seqs: Vec<_> = std::iter::from_fn(|| messages.pop())
            .map(|i| i.msg.get("seq").map(str::to_owned))
            .collect();
        assert_eq!(seqs, vec![Some("1".into()), Some("2".into())]);
        for s in 0..QUEUE as u64 {
            assert!(inbox.push(m(s), false));
        }
        assert!(!inbox.push(m(0), true), "full: dropped, not queued");
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
        tokio::time::timeout(Duration::from_secs(5), rx.messages.wait())
            .await
            .unwrap();
        let got = rx.messages.pop().unwrap();
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
        assert!(rx.messages.pop().is_none(), "nothing else got through");
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
        let rx = spawn(&media, auth(b"secret")).unwrap();
        media.send_only().unwrap();
        let mut m = Message::with_type("status");
        m.push_str("src", "node2");
        // Sent through the send-only socket to itself: only the thread's copy reads it.
        media.send_all(&auth(b"secret").sign(&mut m)).await;
        tokio::time::timeout(Duration::from_secs(5), rx.messages.wait())
            .await
            .unwrap();
        let got = rx.messages.pop().unwrap();
        assert_eq!(got.msg.get("src"), Some("node2"));
        // With the thread gone, a datagram waits unread: the set no longer reads sockets.
        drop(rx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        media.send_all(b"unread").await;
        let here = tokio::time::timeout(Duration::from_millis(300), media.recv()).await;
        assert!(here.is_err(), "the loop's set read a datagram: {here:?}");
    }
}
