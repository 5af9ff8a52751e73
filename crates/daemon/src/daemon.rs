//! The daemon loop: owns the IO (sockets, timers, signals, control socket, agent tasks) and
//! drives the pure [`Node`]. Every source becomes an [`Input`], every [`Output`] a syscall or
//! a task; nothing here decides policy.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ha_config::{AutoFailback, Config, NodeName};
use ha_transport::auth::Auth;
use ha_transport::liveness::LivenessConfig;
use ha_transport::media::{MediaError, MediaSet, Received};
use ha_transport::recv::{RecvShared, Rejected};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::cluster::{
    Action, AdminCommand, Cluster, ClusterConfig, GroupId, GroupInfo, Op, PeerState,
};
use crate::control::{self, Origin, Request, Response};
use crate::groups::{Groups, Outcome};
use crate::logcat::{Dur, LogEvent, log};
use crate::metrics::Metrics;
use crate::metrics_http::ScrapeRequest;
use crate::monitor::CheckResult;
use crate::node::{Input, Node, NodeSetup, Output};
use crate::record::Recorder;
use crate::sd_notify::Notifier;

/// How often the `ld` field of our heartbeats is refreshed from /proc/loadavg.
const LOAD_EVERY: Duration = Duration::from_secs(5);

/// Authentic messages handled per wake-up before timers and the other sources get a look.
const RECV_BUDGET: usize = 32;

/// Everything the loop needs, prepared by `main` before the runtime starts.
pub struct DaemonSetup {
    pub config: Config,
    pub local: NodeName,
    pub peer: NodeName,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub groups: Groups,
    /// `had --record FILE`: every node input and output as JSON lines.
    pub record: Option<PathBuf>,
}

type ControlMsg = (Request, Origin, oneshot::Sender<Response>);

/// Run until a graceful shutdown completes. Returns the process exit code.
pub async fn run(setup: DaemonSetup) -> anyhow::Result<i32> {
    large_blocks_mapped();
    let (mut daemon, mut node, mut sources) = open(setup).await?;
    Ok(serve(&mut node, &mut daemon, &mut sources).await)
}

/// Blocks of 32 KiB and more get pages of their own (mmap), returned when freed. glibc's
/// default threshold rises to the largest block freed so far, so the large buffers of a
/// group operation or a status answer (a thousand addresses: netlink dumps, announcement
/// lists, JSON of tens or hundreds of KB) come from the heap and, once freed, stay there as
/// holes between the blocks that live on: resident (and locked, with `realtime on`) for the
/// daemon's life (issue 14: idle RSS flat from 1 to 1,000 addresses). The guard too: a
/// `Hold` line of a thousand tokens is tens of KB.
pub(crate) fn large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only tunes the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * 1024);
    }
}

/// The loop: carry out what the node wants, wait for the first source or deadline, turn it
/// into inputs. Returns the exit code once `settle` says so.
pub async fn serve<E: Effects>(node: &mut Node, fx: &mut E, src: &mut Sources) -> i32 {
    loop {
        while let Some(o) = node.poll_output() {
            fx.carry_out(node, o).await;
        }
        fx.drained();
        if let Some(code) = fx.settle(node).await {
            return code;
        }
        let deadline = node
            .poll_timeout()
            .into_iter()
            .chain(fx.deadline())
            .min()
            .unwrap_or_else(|| clock_now() + Duration::from_secs(1));
        src.timer.set(deadline);
        // Timers first, receive work last and bounded: our heartbeats go out on time
        // whatever arrives.
        let wake = tokio::select! {
            biased;
            _ = src.timer.wait() => Wake::Timer,
            Some(o) = src.outcomes.recv() => Wake::Outcome(o),
            Some(r) = src.checks.recv() => Wake::Check(r),
            Some(reply) = src.scrapes.recv() => Wake::Scrape(reply),
            Some(c) = src.control.recv() => Wake::Control(c),
            Some(n) = src.pings.recv() => Wake::Ping(n),
            Some(f) = src.fenced.recv() => Wake::Fenced(f),
            Some(cmd) = src.fifo.recv() => Wake::Fifo(cmd),
            Some(s) = src.signals.recv() => Wake::Signal(s),
            () = src.messages.wait() => Wake::Messages,
            r = recv_serial(src.serial.as_deref()), if src.serial.is_some() => Wake::Serial(r),
            Some(r) = src.rejected.recv() => Wake::Rejected(r),
        };
        on_wake(node, fx, src, wake).await;
    }
}

/// Every source the loop waits on, as channels: the daemon's tasks and threads feed them,
/// and a test can feed them alone.
pub struct Sources {
    /// The loop's one timer, moved only when the deadline moves.
    pub timer: crate::loop_timer::LoopTimer,
    /// Authentic messages; only those that may change something wake the loop.
    pub messages: ha_transport::recv::Messages,
    /// When the last wake-up's inputs went in: no message is fed earlier than that.
    pub fed_until: Option<Instant>,
    pub rejected: mpsc::Receiver<Rejected>,
    /// Serial media are read on the loop (no LAN host can flood them).
    pub serial: Option<Arc<MediaSet>>,
    pub outcomes: mpsc::UnboundedReceiver<Outcome>,
    pub checks: mpsc::UnboundedReceiver<CheckResult>,
    pub scrapes: mpsc::Receiver<ScrapeRequest>,
    pub control: mpsc::Receiver<ControlMsg>,
    pub pings: mpsc::UnboundedReceiver<u32>,
    pub fenced: mpsc::UnboundedReceiver<crate::fence::FenceResult>,
    pub fifo: mpsc::UnboundedReceiver<AdminCommand>,
    /// SIGTERM, SIGINT, SIGHUP by name.
    pub signals: mpsc::UnboundedReceiver<&'static str>,
}

/// What woke the loop.
pub enum Wake {
    Timer,
    Outcome(Outcome),
    Check(CheckResult),
    Scrape(ScrapeRequest),
    Control(ControlMsg),
    Ping(u32),
    Fenced(crate::fence::FenceResult),
    Fifo(AdminCommand),
    Signal(&'static str),
    /// An urgent message (and whatever waited before it) was queued.
    Messages,
    Serial(Result<Received, MediaError>),
    Rejected(Rejected),
}

/// The loop's clock: the system's, or tokio's paused one under test.
fn clock_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn recv_serial(media: Option<&MediaSet>) -> Result<Received, MediaError> {
    match media {
        Some(m) => m.recv_serial().await,
        None => std::future::pending().await,
    }
}

/// The IO side of the loop: what carries out outputs and answers what is not an input.
pub trait Effects {
    /// Carry out one output of the node.
    fn carry_out(&mut self, node: &Node, o: Output) -> impl Future<Output = ()>;
    /// Once per wake-up after the outputs: bookkeeping; `Some(code)` ends the loop.
    fn settle(&mut self, node: &mut Node) -> impl Future<Output = Option<i32>>;
    /// Every output of this wake-up was carried out.
    fn drained(&mut self) {}
    /// Hand one input to the node (the daemon records it first).
    fn feed(&mut self, node: &mut Node, input: Input) -> Result<(), String> {
        self.feed_at(node, clock_now(), input)
    }
    /// [`Effects::feed`] at a time already past: when a message was read.
    fn feed_at(&mut self, node: &mut Node, at: Instant, input: Input) -> Result<(), String> {
        node.handle(at, input)
    }
    /// A deadline of the IO side (the systemd watchdog).
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Inputs read when a timer fires, before `Input::Timeout` (load, receive queue).
    fn on_timer(&mut self, _now: Instant) -> Vec<Input> {
        Vec::new()
    }
    /// Log and count what a source said before the node hears it.
    fn note(&mut self, _node: &Node, _wake: &Wake) {}
    /// Answer a control request (status, admin commands, reload).
    fn request(&mut self, node: &mut Node, req: Request, origin: Origin) -> Response {
        let _ = (node, origin);
        Response::err(format!("{req:?}: not served here"))
    }
    /// Reload the configuration.
    fn reload(&mut self, _node: &mut Node, _origin: Origin) {}
    /// The metrics page.
    fn scrape(&self, _node: &Node) -> String {
        String::new()
    }
}

/// Turn one wake-up into the node's inputs (and answers).
async fn on_wake<E: Effects>(node: &mut Node, fx: &mut E, src: &mut Sources, wake: Wake) {
    // Whatever woke the loop, the messages that waited go in first, at the time they were
    // read: a routine heartbeat left for this wake-up counts before a deadline is looked at.
    take_messages(node, fx, src);
    on_wake_of(node, fx, src, wake).await;
    src.fed_until = Some(clock_now());
}

/// Feeds up to `RECV_BUDGET` waiting messages in arrival order, each at the time it was
/// read (never before the last wake-up's inputs, never after now), and asks to be woken
/// again at once for the rest.
fn take_messages<E: Effects>(node: &mut Node, fx: &mut E, src: &mut Sources) {
    let now = clock_now();
    let mut floor = src.fed_until.unwrap_or(now).min(now);
    for _ in 0..RECV_BUDGET {
        let Some(m) = src.messages.pop() else {
            return;
        };
        floor = m.at.clamp(floor, now);
        let (medium, from, msg) = (m.medium, m.from, m.msg);
        let _ = fx.feed_at(node, floor, Input::Verified { medium, from, msg });
    }
    src.messages.rewake();
}

async fn on_wake_of<E: Effects>(node: &mut Node, fx: &mut E, src: &mut Sources, wake: Wake) {
    fx.note(node, &wake);
    let feed = |fx: &mut E, node: &mut Node, input| {
        let _ = fx.feed(node, input);
    };
    match wake {
        Wake::Timer => {
            for i in fx.on_timer(clock_now()) {
                feed(fx, node, i);
            }
            feed(fx, node, Input::Timeout);
        }
        Wake::Outcome(o) => feed(fx, node, Input::Outcome(o.done)),
        Wake::Check(r) => feed(fx, node, Input::Check(r)),
        Wake::Scrape(reply) => {
            let _ = reply.send(fx.scrape(node));
        }
        Wake::Control((req, origin, reply)) => {
            let _ = reply.send(fx.request(node, req, origin));
        }
        Wake::Ping(n) => feed(fx, node, Input::Ping(n)),
        Wake::Fenced(f) => feed(
            fx,
            node,
            Input::Fenced {
                ok: f.ok,
                detail: f.detail,
            },
        ),
        // As from hactl: refused commands are logged with their reason.
        Wake::Fifo(cmd) => feed(
            fx,
            node,
            Input::Admin {
                cmd,
                origin: Origin::Fifo,
            },
        ),
        Wake::Signal("SIGHUP") => fx.reload(node, Origin::Signal("SIGHUP")),
        Wake::Signal(s) => feed(
            fx,
            node,
            Input::Admin {
                cmd: AdminCommand::Shutdown,
                origin: Origin::Signal(s),
            },
        ),
        // Taken above, with every other wake-up.
        Wake::Messages => {}
        Wake::Serial(Ok((medium, from, bytes))) => feed(
            fx,
            node,
            Input::Datagram {
                medium,
                from,
                bytes,
            },
        ),
        Wake::Serial(Err(e)) => {
            feed(fx, node, Input::SerialError(e.to_string()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Wake::Rejected(r) => {
            let rejected = |r: Rejected| Input::Rejected {
                from: r.from,
                claimed_src: r.claimed_src,
                reason: r.reason,
            };
            feed(fx, node, rejected(r));
            // The whole (small) queue at once: one wake-up per notice would be waste.
            while let Ok(r) = src.rejected.try_recv() {
                feed(fx, node, rejected(r));
            }
        }
    }
}

/// A task that ends when this handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the daemon stays without a group operation before it gives back the memory the
/// last one (or start-up) used: long enough that a failover's follow-ups (a failback, a
/// retry) still find their code resident.
const SETTLE_BEFORE_TRIM: Duration = Duration::from_secs(10);

/// The shortest deadtime at which the settled daemon also gives back code it is not running
/// (`realtime::release_unused`): a rarely run path of the heartbeat loop would be read back
/// from disk on first use, which under memory pressure and disk load can take a few hundred
/// milliseconds; ten times that is still far inside this deadtime.
const CODE_TRIM_MIN_DEADTIME: Duration = Duration::from_secs(2);

/// The real IO side: media, agents, guard, systemd, metrics, the recorder.
pub struct Daemon {
    config: Config,
    local: NodeName,
    peer: NodeName,
    state_dir: PathBuf,
    socket: PathBuf,
    groups: Groups,
    media: Arc<MediaSet>,
    recv: Arc<RecvShared>,
    guard: crate::guard::Guard,
    metrics: Metrics,
    check_log: crate::monitor::CheckLog,
    /// One switch per group: its monitors run only while they have something to say.
    monitor_active: Vec<tokio::sync::watch::Sender<bool>>,
    sd: Notifier,
    watchdog: Option<Duration>,
    next_ping: Option<Instant>,
    /// When to give back memory start-up or the last group operation used
    /// ([`crate::realtime::release_unused`]); moved on by every operation.
    trim_at: Option<Instant>,
    noted_seen: u64,
    last_role: (usize, bool, bool, u8),
    keepalive: Duration,
    last_load: Instant,
    loadavg: LoadAvg,
    start: Instant,
    exit: bool,
    outcomes: mpsc::UnboundedSender<Outcome>,
    fenced: mpsc::UnboundedSender<crate::fence::FenceResult>,
    record: Option<Recorder>,
    /// The long-lived tasks (monitors, control socket, metrics, ping, FIFO, signals): they
    /// end with the daemon.
    tasks: JoinSet<()>,
}

/// What the cluster state machine knows of each group, as `local` sees it.
pub fn group_infos(config: &Config, local: &NodeName) -> Vec<GroupInfo> {
    config
        .haresources
        .groups
        .iter()
        .map(|g| GroupInfo {
            key: g.key().to_string(),
            preferred_local: g.node == *local,
            resources: std::sync::Arc::clone(&g.resources),
        })
        .collect()
}

/// Open everything (in the order that keeps a second had from touching anything), build the
/// node, and start the tasks that feed the sources.
async fn open(setup: DaemonSetup) -> anyhow::Result<(Daemon, Node, Sources)> {
    let DaemonSetup {
        config,
        local,
        peer,
        state_dir,
        socket,
        mut groups,
        record,
    } = setup;
    groups.configure(&config.had.group);
    // The ha.cf the sockets and timers were set up with; a reload does not change these.
    let hacf = config.ha_cf.clone();
    // First, so that a second had refuses to start before it touches anything (the
    // restart generation on disk included).
    let read_gid = config
        .had
        .control
        .read_group
        .as_deref()
        .and_then(crate::validate::read_group_gid);
    let listener = bind_control(&socket, read_gid)?;
    let uuid = ha_transport::persist::load_or_create_uuid(&state_dir)
        .with_context(|| format!("cannot read or create {}/hb_uuid", state_dir.display()))?;
    let generation = ha_transport::persist::next_generation(&state_dir)
        .with_context(|| format!("cannot update {}/hb_generation", state_dir.display()))?;
    // What earlier runs consumed of each peer: its old packets stay replays after our restart.
    let peer_floors = ha_transport::persist::load_peer_floors(&state_dir)
        .with_context(|| format!("cannot read {}/had_peer_generations", state_dir.display()))?;

    // What a previous run left up goes before we take part (cluster/leftovers.rs).
    let not_released = crate::leftovers::release(&groups).await;
    // From here on, what we hold is released even if we are killed (guard.rs).
    let guard = crate::guard::Guard::spawn(crate::guard::Hello::new(&config, &groups));

    let mut media = MediaSet::open_with_baud(&hacf.media, hacf.udpport, hacf.baud)
        .context("cannot open heartbeat media")?;
    media.set_ring(local.as_str(), Auth::new(&config.authkeys));
    // Reading, checking and authenticating the network media run on their own thread
    // (recv.rs): no datagram rate can make a timer or one of our heartbeats wait behind
    // receive work. Serial ports (no LAN host can flood them) stay on the loop.
    let inbound = ha_transport::recv::spawn_with(
        &media,
        Auth::new(&config.authkeys),
        crate::realtime::join_heartbeat_path,
    )
    .context("cannot start the receive thread")?;
    // The thread reads its copies; ours would wake the loop at every datagram.
    media
        .send_only()
        .context("cannot hand the heartbeat media to the receive thread")?;
    let start = clock_now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let group_infos = group_infos(&config, &local);
    let loadavg = LoadAvg::open();
    let node_setup = NodeSetup {
        live: LivenessConfig {
            local: local.clone(),
            uuid,
            generation,
            peers: vec![peer.clone()],
            media: media.names(),
            keepalive: hacf.keepalive,
            deadtime: hacf.deadtime,
            warntime: hacf.warntime,
            initdead: hacf.initdead,
            auth: Auth::new(&config.authkeys),
            unix_now_at_start: unix_now,
            local_addrs: local_addrs(),
            peer_floors,
        },
        cluster: ClusterConfig {
            local: local.to_string(),
            peer: peer.to_string(),
            groups: group_infos,
            auto_failback: hacf.auto_failback,
            // A peer answers `starting` within one round trip; a Heartbeat peer in legacy
            // mode never does, so do not wait on it for longer than a couple of heartbeats.
            report_timeout: (hacf.keepalive * 2).max(Duration::from_secs(2)),
        },
        fencing: config.had.fence.as_ref().map(|f| f.retry),
        priority: config.had.priority_of(local.as_str()),
        failback_delay: config.had.group.failback_delay,
        // ipfail's giveup delay: both nodes losing the same upstream must not move anything.
        ping_grace: hacf.keepalive * 2,
        not_released: not_released
            .iter()
            .map(|(g, why)| (*g, why.to_string()))
            .collect(),
        load: loadavg.read(),
    };
    let record = match record {
        Some(path) => Some(
            Recorder::create(&path, &node_setup, &config.authkeys, start)
                .with_context(|| format!("cannot write the record {}", path.display()))?,
        ),
        None => None,
    };
    log(&LogEvent::Starting {
        version: env!("CARGO_PKG_VERSION"),
        node: &local,
        peer: &peer,
        groups: node_setup.cluster.groups.len(),
        keepalive: Dur(hacf.keepalive),
        deadtime: Dur(hacf.deadtime),
        initdead: Dur(hacf.initdead),
    });
    let node = Node::new(node_setup, start);

    let mut tasks = JoinSet::new();
    let (out_tx, outcomes) = mpsc::unbounded_channel::<Outcome>();
    let (mon_tx, checks) = mpsc::unbounded_channel::<CheckResult>();
    let monitor_active: Vec<tokio::sync::watch::Sender<bool>> = (0..groups.resources.len())
        .map(|_| tokio::sync::watch::channel(false).0)
        .collect();
    for m in crate::monitor::bind(&config, &groups.resources) {
        // A monitor pinned to the other node (Keepalived: that node's track_script).
        if m.spec.node.as_deref().is_some_and(|n| n != local.as_str()) {
            continue;
        }
        log(&LogEvent::MonitorStarted {
            resource: &m.spec.resource,
            interval: Dur(m.spec.interval),
            timeout: Dur(m.spec.timeout),
            failures: m.spec.failures.max(1),
        });
        let Some(active) = monitor_active.get(m.group.0).map(|s| s.subscribe()) else {
            continue;
        };
        tasks.spawn(crate::monitor::run(m, mon_tx.clone(), active));
    }
    let (fence_tx, fenced) = mpsc::unbounded_channel();
    let (ping_tx, pings) = mpsc::unbounded_channel::<u32>();
    let ping = crate::ping::spawn(
        hacf.ping.clone(),
        hacf.deadping.unwrap_or(hacf.deadtime),
        hacf.keepalive,
        ping_tx,
    );
    let (fifo_tx, fifo) = mpsc::unbounded_channel::<AdminCommand>();
    let fifo_task = crate::fifo::spawn(&state_dir, fifo_tx);
    for h in [ping, fifo_task].into_iter().flatten() {
        // Owned like the others: aborting the wrapper aborts the task.
        tasks.spawn(async move {
            let mut owned = AbortOnDrop(h);
            let _ = (&mut owned.0).await;
        });
    }
    let (ctl_tx, control) = mpsc::channel::<ControlMsg>(16);
    tasks.spawn(accept_loop(
        listener,
        ctl_tx,
        control::READ_TIMEOUT,
        read_gid,
    ));
    let (sig_tx, signals) = mpsc::unbounded_channel();
    for (kind, name) in [
        (SignalKind::terminate(), "SIGTERM"),
        (SignalKind::interrupt(), "SIGINT"),
        (SignalKind::hangup(), "SIGHUP"),
    ] {
        let mut s = signal(kind).with_context(|| format!("{name} handler"))?;
        let tx = sig_tx.clone();
        tasks.spawn(async move { while s.recv().await.is_some() && tx.send(name).is_ok() {} });
    }
    let (scrape_tx, scrapes) = mpsc::channel::<ScrapeRequest>(4);
    if let Some(m) = config.had.metrics {
        match crate::metrics_http::bind(m.listen).await {
            Ok(l) => {
                log(&LogEvent::MetricsServing { from: m.listen });
                tasks.spawn(crate::metrics_http::serve(l, scrape_tx));
            }
            Err(e) => log(&LogEvent::MetricsOff {
                from: m.listen,
                reason: &e.to_string(),
            }),
        }
    }
    // Configuration valid, media and control socket bound: systemd may start what follows us.
    let sd = Notifier::from_env();
    sd.ready();
    // Fed from this loop, not from a task of its own, so a stuck loop stops the pings.
    let watchdog = if sd.active() {
        crate::sd_notify::watchdog_from_env()
    } else {
        None
    };
    let media = Arc::new(media);
    let timer = crate::loop_timer::LoopTimer::timerfd().unwrap_or_else(|e| {
        tracing::debug!("no timerfd ({e}): the loop uses tokio's timer");
        crate::loop_timer::LoopTimer::tokio()
    });
    let sources = Sources {
        timer,
        messages: inbound.messages,
        fed_until: None,
        rejected: inbound.rejected,
        serial: media.has_serial().then(|| media.clone()),
        outcomes,
        checks,
        scrapes,
        control,
        pings,
        fenced,
        fifo,
        signals,
    };
    let daemon = Daemon {
        config,
        local,
        peer,
        state_dir,
        socket,
        groups,
        media,
        recv: inbound.shared.clone(),
        guard,
        metrics: Metrics::default(),
        check_log: crate::monitor::CheckLog::default(),
        monitor_active,
        sd,
        watchdog,
        next_ping: watchdog.map(|_| clock_now()),
        // Start-up is the first thing to settle from.
        trim_at: Some(clock_now() + SETTLE_BEFORE_TRIM),
        noted_seen: 0,
        last_role: (usize::MAX, false, false, u8::MAX),
        keepalive: hacf.keepalive,
        last_load: clock_now(),
        loadavg,
        start,
        exit: false,
        outcomes: out_tx,
        fenced: fence_tx,
        record,
        tasks,
    };
    Ok((daemon, node, sources))
}

impl Effects for Daemon {
    async fn carry_out(&mut self, node: &Node, o: Output) {
        if let Some(r) = &mut self.record {
            r.output(clock_now(), &o);
        }
        let now = clock_now();
        match o {
            Output::Transmit(bytes) => self.media.send_all(&bytes).await,
            // Rare (a peer restarted or died) and must survive a crash of ours: fsync'ed here.
            Output::StoreFloors(f) => store_peer_floors(&self.state_dir, &f),
            Output::Stopping => self.sd.send("STOPPING=1"),
            Output::PeerDead { since, not_held } => {
                let keys: Vec<String> = not_held
                    .iter()
                    .filter_map(|g| self.groups.keys.get(g.0).cloned())
                    .collect();
                self.metrics.peer_dead(since, &keys);
            }
            Output::PeerUp => self.metrics.peer_up(),
            Output::Act(a) => {
                self.unsettled(now);
                self.act(node, a, now)
            }
        }
    }

    async fn settle(&mut self, node: &mut Node) -> Option<i32> {
        if let (Some(every), Some(at)) = (self.watchdog, self.next_ping)
            && clock_now() >= at
        {
            self.sd.watchdog();
            self.next_ping = Some(clock_now() + every);
        }
        if self.trim_at.is_some_and(|at| clock_now() >= at) {
            self.trim_at = None;
            crate::realtime::release_unused(self.config.ha_cf.deadtime >= CODE_TRIM_MIN_DEADTIME);
        }
        let cluster = node.cluster();
        observe_cluster(
            &mut self.metrics,
            &mut self.noted_seen,
            cluster,
            &self.config,
            self.peer.as_str(),
        );
        self.guard.sync(&cluster.group_states(), &self.groups);
        // Formatted only when the role changed: this runs once per wake-up.
        if self.sd.active() {
            let role = role_key(cluster);
            if role != self.last_role {
                self.last_role = role;
                let line = role_line(cluster, &self.groups, &self.local, &self.peer);
                self.sd.status(&line);
            }
        }
        if self.exit {
            // The shutdone packet went out with the outputs, before the sockets close.
            store_peer_floors(&self.state_dir, &node.liveness().peer_floors());
            self.guard.goodbye();
            log(&LogEvent::HadStopped {});
            let _ = std::fs::remove_file(&self.socket);
            return Some(0);
        }
        while self.tasks.try_join_next().is_some() {}
        for (g, tx) in self.monitor_active.iter().enumerate() {
            let need = cluster.monitor_needed(GroupId(g));
            tx.send_if_modified(|v| std::mem::replace(v, need) != need);
        }
        None
    }

    fn feed_at(&mut self, node: &mut Node, at: Instant, input: Input) -> Result<(), String> {
        if let Some(r) = &mut self.record {
            r.input(at, &input);
        }
        node.handle(at, input)
    }

    fn deadline(&self) -> Option<Instant> {
        self.next_ping.into_iter().chain(self.trim_at).min()
    }

    fn drained(&mut self) {
        if let Some(r) = &mut self.record {
            r.drained(clock_now());
        }
    }

    fn on_timer(&mut self, now: Instant) -> Vec<Input> {
        // The kernel recomputes the load average every 5 s: reading it more often only
        // costs a read of /proc per heartbeat.
        if now.duration_since(self.last_load) < self.keepalive.max(LOAD_EVERY) {
            return Vec::new();
        }
        self.last_load = now;
        vec![
            Input::Load(self.loadavg.read()),
            Input::QueueFull(self.recv.queue_full()),
        ]
    }

    fn note(&mut self, node: &Node, wake: &Wake) {
        match wake {
            Wake::Outcome(o) => {
                self.unsettled(clock_now());
                self.note_outcome(o)
            }
            Wake::Check(r) => {
                let key = self.groups.keys.get(r.group.0).cloned().unwrap_or_default();
                // A weighted or link check acts wherever the group is: log it as acting.
                let here = r.rule.everywhere
                    || node.cluster().group_states().get(r.group.0)
                        == Some(&crate::cluster::GroupState::Running);
                if let Some(spec) = self.config.had.monitors.get(r.monitor) {
                    self.metrics.monitor(&spec.resource, r.ok);
                }
                match self.check_log.line(r, &key, here) {
                    Some(crate::monitor::LogLine::Warn(l)) => log(&LogEvent::MonitorWarning {
                        group: &key,
                        text: &l,
                    }),
                    Some(crate::monitor::LogLine::Info(l)) => log(&LogEvent::MonitorNote {
                        group: &key,
                        text: &l,
                    }),
                    None => {}
                }
            }
            _ => {}
        }
    }

    fn request(&mut self, node: &mut Node, req: Request, origin: Origin) -> Response {
        match req {
            Request::Status => {
                let mut r = Response::ok("status");
                r.status = Some(snapshot(&self.view(node), clock_now()));
                r
            }
            Request::Standby { scope } | Request::Takeover { scope } => {
                let peer = &self.peer;
                let (cmd, answer) = if matches!(req, Request::Standby { .. }) {
                    (
                        AdminCommand::Standby(scope),
                        format!(
                            "standby: handing {} resource groups to {peer}",
                            scope.as_str()
                        ),
                    )
                } else {
                    (
                        AdminCommand::Takeover(scope),
                        format!(
                            "takeover: taking {} resource groups from {peer}",
                            scope.as_str()
                        ),
                    )
                };
                match self.feed(node, Input::Admin { cmd, origin }) {
                    Err(why) => Response::err(why),
                    Ok(()) => Response::ok(answer),
                }
            }
            Request::Cleanup => {
                let cmd = AdminCommand::Cleanup;
                let _ = self.feed(node, Input::Admin { cmd, origin });
                Response::ok("cleanup: failures forgotten on this node")
            }
            Request::Reload => self.do_reload(node, origin),
            Request::Parameter { name } => {
                match crate::params::hb_parameter(&self.config.ha_cf, &name) {
                    Some(v) => Response::ok(v),
                    None => Response::err(format!("parameter {name} is not set")),
                }
            }
        }
    }

    fn reload(&mut self, node: &mut Node, origin: Origin) {
        self.unsettled(clock_now());
        self.do_reload(node, origin);
    }

    fn scrape(&self, node: &Node) -> String {
        let s = snapshot(&self.view(node), clock_now());
        crate::metrics::render(&s, &self.metrics)
    }
}

impl Daemon {
    /// Something used memory the idle daemon will not need: give it back once quiet again.
    fn unsettled(&mut self, now: Instant) {
        self.trim_at = Some(now + SETTLE_BEFORE_TRIM);
    }

    /// A cluster action: an agent operation, fencing, hooks, announcements, the end.
    fn act(&mut self, node: &Node, a: Action, now: Instant) {
        let cluster = node.cluster();
        let tx = self.outcomes.clone();
        match a {
            Action::Start(g) | Action::Stop(g) => {
                let op = if matches!(a, Action::Start(_)) {
                    Op::Start
                } else {
                    Op::Stop
                };
                // The guard hears of a start before the agents begin it.
                self.guard.sync(&cluster.group_states(), &self.groups);
                if let Some(key) = self.groups.keys.get(g.0) {
                    if op == Op::Start {
                        self.metrics.start_started(key);
                    } else if matches!(cluster.peer(), PeerState::Alive { .. }) {
                        self.metrics.release_started(now, key);
                    }
                }
                self.groups.spawn(g, op, tx);
            }
            Action::Restart { group, from } => self.groups.spawn_restart(group, from, tx),
            Action::StopResources { group, resources } => {
                self.groups.spawn_reload_stop(group, &resources, tx)
            }
            Action::StartResources { group, resources } => {
                self.guard.sync(&cluster.group_states(), &self.groups);
                self.groups.spawn_reload_start(group, &resources, tx);
            }
            Action::Exit => self.exit = true,
            Action::Fence => crate::fence::spawn(
                self.config.had.fence.as_ref(),
                self.local.as_str(),
                self.peer.as_str(),
                self.fenced.clone(),
            ),
            Action::Notify {
                group,
                state,
                reason,
            } => crate::notify::spawn(
                &self.config.had.notify,
                crate::notify::Event {
                    group: self.groups.keys.get(group.0).cloned().unwrap_or_default(),
                    resources: self
                        .groups
                        .resources
                        .get(group.0)
                        .map(|rs| rs.iter().map(|r| r.name().to_string()).collect())
                        .unwrap_or_default(),
                    state,
                    reason,
                    node: self.local.to_string(),
                    peer: self.peer.to_string(),
                },
            ),
            Action::Announce(g) => crate::announce::spawn(
                &self.groups,
                g,
                self.config.had.arp.count,
                self.config.had.arp.interval,
            ),
            // Messages and comm-up are the node's own (node.rs): never handed out.
            Action::SendReport(_)
            | Action::SendStarting
            | Action::SendShutdone
            | Action::Send(_)
            | Action::CommUp => {}
        }
    }

    /// An operation's line and figures, before the cluster hears of it.
    fn note_outcome(&mut self, outcome: &Outcome) {
        let o = &outcome.done;
        let key = self.groups.keys.get(o.group.0).cloned().unwrap_or_default();
        let ms = outcome.elapsed.as_millis() as u64;
        self.metrics
            .outcome(clock_now(), &key, o.op, o.ok, outcome.elapsed);
        let group = key.as_str();
        let op = format!("{:?}", o.op);
        log(&match (o.op, o.ok) {
            (Op::Start, true) => LogEvent::Acquired { group, ms },
            (Op::Stop, true) => LogEvent::Released { group, ms },
            (Op::Restart, true) => LogEvent::RestartedInPlace { group, ms },
            (Op::ReloadStop | Op::ReloadStart, true) => LogEvent::ReloadApplied { group, ms },
            (_, false) => LogEvent::OperationFailed {
                group,
                op: &op,
                ms,
                reason: &o.detail,
            },
        });
    }

    /// Reload the configuration (see `reload.rs`), log the outcome, answer hactl.
    fn do_reload(&mut self, node: &mut Node, origin: Origin) -> Response {
        let _ = self.feed(node, Input::LocalAddrs(local_addrs()));
        self.sd.send("RELOADING=1");
        log(&LogEvent::AdminReload {
            origin,
            dir: &self.config.dir.display().to_string(),
        });
        let running = crate::reload::Running {
            node,
            record: self.record.as_mut(),
            groups: &mut self.groups,
            config: &mut self.config,
            local: &self.local,
            peer: &self.peer,
        };
        let resp = match crate::reload::reload(clock_now(), running) {
            crate::reload::ReloadResult::Applied(a) => {
                let a = a.to_string();
                log(&LogEvent::ReloadDone { summary: &a });
                Response::ok(a)
            }
            crate::reload::ReloadResult::Refused(e) => {
                let e = e.to_string();
                log(&LogEvent::ReloadRefused { reason: &e });
                Response::err(e)
            }
        };
        self.recv.set_auth(Auth::new(&self.config.authkeys));
        self.sd.ready();
        resp
    }

    fn view<'a>(&'a self, node: &'a Node) -> View<'a> {
        View {
            node,
            recv: &self.recv,
            groups: &self.groups,
            config: &self.config,
            local: &self.local,
            peer: &self.peer,
            start: self.start,
        }
    }
}

/// What a status snapshot is made from.
struct View<'a> {
    node: &'a Node,
    recv: &'a RecvShared,
    groups: &'a Groups,
    config: &'a Config,
    local: &'a NodeName,
    peer: &'a NodeName,
    start: Instant,
}

/// After the machines ran: count new transitions, and end handovers the peer's report completes.
fn observe_cluster(
    m: &mut Metrics,
    seen: &mut u64,
    cluster: &Cluster,
    config: &Config,
    peer: &str,
) {
    let total = cluster.transitions_total();
    if total > *seen {
        let new = usize::try_from(total - *seen).unwrap_or(usize::MAX);
        let log: Vec<_> = cluster.transitions().collect();
        for t in &log[log.len().saturating_sub(new)..] {
            m.transition(&t.what);
        }
        *seen = total;
    }
    if !m.handover_pending() {
        return;
    }
    let Some(report) = cluster.peer_report() else {
        return;
    };
    let done: Vec<String> = m
        .pending_handovers()
        .filter(|k| {
            config
                .haresources
                .groups
                .iter()
                .find(|g| g.key() == *k)
                .is_some_and(|g| report.holds(k, g.node.as_str() == peer))
        })
        .map(str::to_string)
        .collect();
    let now = clock_now();
    for k in done {
        m.peer_holds(now, &k);
    }
}

/// What `role_line` depends on, cheap to compare.
fn role_key(cluster: &Cluster) -> (usize, bool, bool, u8) {
    let held = cluster
        .group_states()
        .iter()
        .filter(|s| s.is_held())
        .count();
    let peer = match cluster.peer() {
        PeerState::Unknown => 0,
        PeerState::Alive { .. } => 1,
        PeerState::Dead => 2,
        PeerState::Gone => 3,
    };
    (held, cluster.is_standby(), cluster.is_shutting_down(), peer)
}

/// The one-line `STATUS=` systemd shows: this node's role and the peer's state.
fn role_line(cluster: &Cluster, groups: &Groups, local: &NodeName, peer: &NodeName) -> String {
    let held: Vec<&str> = groups
        .keys
        .iter()
        .enumerate()
        .filter(|(i, _)| cluster.group_states().get(*i).is_some_and(|s| s.is_held()))
        .map(|(_, k)| k.as_str())
        .collect();
    let role = if cluster.is_shutting_down() {
        "stopping (releasing resources)".to_string()
    } else if held.is_empty() {
        format!("{local}: passive, holding nothing")
    } else {
        format!(
            "{local}: active, holding {}/{} group(s)",
            held.len(),
            groups.keys.len()
        )
    };
    let standby = if cluster.is_standby() {
        ", in standby"
    } else {
        ""
    };
    let peer_state = match cluster.peer() {
        PeerState::Unknown => "not heard yet",
        PeerState::Alive { .. } => "alive",
        PeerState::Dead => "dead",
        PeerState::Gone => "gone",
    };
    format!("{role}{standby}; peer {peer} {peer_state}")
}

/// The status every client and the metrics page see.
fn snapshot(v: &View<'_>, now: Instant) -> control::Snapshot {
    let View {
        node,
        recv,
        groups,
        config,
        local,
        peer,
        start,
    } = *v;
    let (cluster, live) = (node.cluster(), node.liveness());
    let ls = live.snapshot(now);
    let p = ls.peers.iter().find(|p| p.node == peer.as_str());
    let report = cluster.peer_report();
    let peer_status = match cluster.peer() {
        PeerState::Gone => "gone".to_string(),
        // Heard, but no status packet yet since it (re)started: it is up, not unknown.
        _ => match p {
            Some(p) if p.status == "init" && p.last_heard_ms.is_some() => "up".into(),
            Some(p) => p.status.clone(),
            None => "init".into(),
        },
    };
    let view = groups.view.lock().map(|v| v.clone()).unwrap_or_default();
    let gs = config
        .haresources
        .groups
        .iter()
        .enumerate()
        .filter(|(i, _)| crate::reload::shown(cluster, *i))
        .map(|(i, g)| {
            let st = cluster.group_states().get(i).copied();
            let refusal = cluster.refusal(crate::cluster::GroupId(i));
            let here = st.is_some_and(|s| s.is_held());
            let key = g.key().to_string();
            let senders_local = g.node == *peer;
            let there = report.is_some_and(|r| r.holds(&key, senders_local));
            let held_by = if here {
                Some(local.to_string())
            } else if there {
                Some(peer.to_string())
            } else {
                None
            };
            control::GroupStatus {
                key,
                preferred: g.node.to_string(),
                state: st.map(|s| s.as_str()).unwrap_or("stopped").to_string(),
                held_by,
                refused_here: refusal.is_told(),
                refused_for: if refusal.is_told() {
                    refusal.reasons().map(|r| r.as_str().to_string()).collect()
                } else {
                    Vec::new()
                },
                priority: cluster
                    .effective_priority(crate::cluster::GroupId(i))
                    .map(|here| control::Priorities {
                        here,
                        peer: report.and_then(|r| r.prio.get(g.key()).copied()),
                    }),
                resources: g
                    .resources
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        let v = view.get(i).and_then(|v| v.get(j));
                        control::ResourceStatus {
                            name: r.raw.to_string(),
                            state: v.map(|v| v.state()).unwrap_or("stopped").to_string(),
                            last_error: v.and_then(|v| v.last_error()).map(str::to_string),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    control::Snapshot {
        schema: control::SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
        nodes: config.ha_cf.nodes.iter().map(|n| n.to_string()).collect(),
        node: control::LocalNode {
            name: local.to_string(),
            status: ls.local_status.clone(),
            pid: std::process::id(),
            uptime_ms: now.duration_since(start).as_millis() as u64,
            generation: ls.generation,
            standby: cluster.is_standby(),
            shutting_down: cluster.is_shutting_down(),
            auto_failback: match config.ha_cf.auto_failback {
                AutoFailback::On => "on",
                AutoFailback::Off => "off",
                AutoFailback::Legacy => "legacy",
            }
            .to_string(),
            keepalive_ms: config.ha_cf.keepalive.as_millis() as u64,
            deadtime_ms: config.ha_cf.deadtime.as_millis() as u64,
            auth: config
                .authkeys
                .active_key()
                .map(|k| k.method.as_str().to_string())
                .unwrap_or_default(),
            realtime: crate::realtime::state(),
        },
        peer: control::PeerNode {
            name: peer.to_string(),
            status: peer_status,
            last_heard_ms: p.and_then(|p| p.last_heard_ms),
            deadtime_ms: p.map(|p| p.deadtime_ms).unwrap_or(0),
            generation: p.and_then(|p| p.generation),
            links: p
                .map(|p| {
                    p.links
                        .iter()
                        .map(|l| control::Link {
                            name: l.name.clone(),
                            status: l.status.clone(),
                            last_heard_ms: l.last_heard_ms,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            rsc_hold: report.map(|r| r.rsc_hold.as_str().to_string()),
            stable: report.map(|r| r.stable),
        },
        groups: gs,
        packets: control::Packets {
            sent: ls.sent,
            received: ls.received + recv.received(),
            dropped: {
                // Dropped on the receive thread, and by Liveness after authentication.
                let mut d = ls.dropped.clone();
                for (r, n) in recv.dropped() {
                    *d.entry(r.as_str().to_string()).or_insert(0) += n;
                }
                *d.entry("queue_full".to_string()).or_insert(0) += recv.queue_full();
                d
            },
            late: ls.late,
            own_name_elsewhere: ls.own_name_elsewhere,
            rexmit_limited: ls.rexmit_limited,
        },
        transitions: cluster
            .transitions()
            .map(|t| control::TransitionEntry {
                at_ms: t.at_ms,
                group: t.group.clone(),
                what: t.what.clone(),
                reason: t.reason.clone(),
            })
            .collect(),
    }
}

/// Every address of this host, for telling our own looped-back packets from
/// another node that uses our name; empty (everything foreign) if unreadable.
fn local_addrs() -> Vec<std::net::IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        log(&LogEvent::NoLocalAddrs {});
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let a = a.address?;
            a.as_sockaddr_in()
                .map(|v4| std::net::IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
        })
        .collect()
}

fn store_peer_floors(state_dir: &std::path::Path, floors: &[ha_transport::liveness::PeerFloor]) {
    if let Err(e) = ha_transport::persist::store_peer_floors(state_dir, floors) {
        // Not fatal: only our next restart loses the replay floor.
        log(&LogEvent::FloorsNotWritten {
            path: &format!(
                "{}/{}",
                state_dir.display(),
                ha_transport::persist::PEER_FLOORS_FILE
            ),
            reason: &e.to_string(),
        });
    }
}

/// `/proc/loadavg`, opened once: the `ld` field is read at every keepalive, and a fresh
/// open + statx + close each time was most of an idle node's system calls.
struct LoadAvg(Option<std::fs::File>);

impl LoadAvg {
    fn open() -> Self {
        LoadAvg(std::fs::File::open("/proc/loadavg").ok())
    }

    /// The first line, or "n/a". A read at offset 0 makes procfs format the figures anew.
    fn read(&self) -> String {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = match &self.0 {
            Some(f) => f.read_at(&mut buf, 0).unwrap_or(0),
            None => 0,
        };
        load_line(&buf[..n])
    }
}

/// The first line of what `/proc/loadavg` gave, printable ASCII only, or "n/a".
fn load_line(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    match std::str::from_utf8(line) {
        Ok(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => {
            s.to_string()
        }
        _ => "n/a".into(),
    }
}

/// Binds the control socket: root's only (0600), or also connectable by `read_gid` (0660,
/// group `read_gid`), whose members are then held to read-only requests in `serve_client`.
fn bind_control(path: &std::path::Path, read_gid: Option<u32>) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        // 0755 whatever the umask: had refuses a run dir others can write (StrictModes).
        ha_transport::persist::create_state_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // A stale socket from a crashed daemon would make bind fail; a live daemon answers.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "another had is already running (control socket {} answers)",
                path.display()
            );
        }
        let _ = std::fs::remove_file(path);
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    if let Some(gid) = read_gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot chgrp {} to gid {gid}", path.display()))?;
    }
    let mode = if read_gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))?;
    Ok(l)
}

async fn accept_loop(
    listener: UnixListener,
    tx: mpsc::Sender<ControlMsg>,
    read_timeout: Duration,
    read_gid: Option<u32>,
) {
    // Bounded: a local client opening connections without end cannot make us hold more.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(control::MAX_CLIENTS));
    // The clients' tasks are this one's: they end when it is dropped.
    let mut clients = JoinSet::new();
    loop {
        while clients.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(
                        "control socket: {} clients already connected; one more turned away",
                        control::MAX_CLIENTS
                    );
                    continue;
                };
                let tx = tx.clone();
                clients.spawn(async move {
                    if let Err(e) = serve_client(stream, tx, read_timeout, read_gid).await {
                        tracing::debug!("control client: {e}");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                log(&LogEvent::ControlAcceptFailed {
                    reason: &e.to_string(),
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_client(
    stream: UnixStream,
    tx: mpsc::Sender<ControlMsg>,
    read_timeout: Duration,
    read_gid: Option<u32>,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    // Root may do anything; members of `[control] read_group` may only look. Judged on each
    // request from the kernel's credentials of the peer, whatever the socket's mode lets in.
    let cred = stream.peer_cred()?;
    let origin = Origin::Client {
        uid: cred.uid(),
        pid: cred.pid(),
    };
    let me = nix::unistd::geteuid().as_raw();
    let access = control::access(
        cred.uid(),
        me,
        read_gid,
        cred.gid(),
        cred.pid()
            .and_then(peer_groups)
            .unwrap_or_default()
            .as_slice(),
    );
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = Vec::new();
        let limit = control::MAX_REQUEST as u64 + 1;
        let mut bounded = (&mut rd).take(limit);
        let read = bounded.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(read_timeout, read).await {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("{origin}: no request within {read_timeout:?}"),
        };
        if n == 0 {
            return Ok(());
        }
        let too_big = line.len() > control::MAX_REQUEST;
        let resp = if access == control::Access::None {
            log(&LogEvent::ControlNotRoot { origin });
            Response::err("permission denied: hactl must run as root")
        } else {
            match control::decode_request(&line) {
                Err(e) => Response::err(e),
                Ok(req) => match control::authorize(access, &req) {
                    Err(why) => {
                        log(&LogEvent::ControlRefused {
                            request: &format!("{req:?}"),
                            origin,
                            reason: &why.to_string(),
                        });
                        Response::err(why)
                    }
                    Ok(()) => {
                        let (otx, orx) = oneshot::channel();
                        tx.send((req, origin, otx)).await?;
                        orx.await?
                    }
                },
            }
        };
        wr.write_all(&control::encode_response(&resp)?).await?;
        if too_big {
            // The rest of that line is not worth reading.
            return Ok(());
        }
    }
}

/// The supplementary groups of process `pid` (the `Groups:` line of its status), as the
/// kernel holds them: SO_PEERCRED carries only the primary group.
fn peer_groups(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_load_line_is_the_first_printable_line_or_n_a() {
        assert_eq!(
            load_line(b"0.52 0.61 0.70 2/125 4242\n"),
            "0.52 0.61 0.70 2/125 4242"
        );
        assert_eq!(load_line(b""), "n/a");
        assert_eq!(load_line(b"1.00\x1b[2J\n"), "n/a");
        // Read twice through the one descriptor: procfs formats it anew at offset 0.
        let l = LoadAvg::open();
        for _ in 0..2 {
            let line = l.read();
            assert_eq!(line.split(' ').count(), 5, "{line}");
        }
    }

    use super::*;
    use tokio::io::AsyncReadExt;

    /// A control socket whose requests all get `ok`, with a short read timeout; its tasks
    /// end when the returned set drops.
    async fn serve(
        dir: &std::path::Path,
        timeout: Duration,
    ) -> (PathBuf, mpsc::Receiver<Origin>, tokio::task::JoinSet<()>) {
        let path = dir.join("had.sock");
        let listener = bind_control(&path, None).expect("bind");
        let (tx, mut rx) = mpsc::channel::<ControlMsg>(16);
        let (otx, orx) = mpsc::channel(64);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(accept_loop(listener, tx, timeout, None));
        tasks.spawn(async move {
            while let Some((_, origin, reply)) = rx.recv().await {
                let _ = otx.send(origin).await;
                let _ = reply.send(Response::ok("done"));
            }
        });
        (path, orx, tasks)
    }

    /// The other ends of a loop's sources.
    struct Feeds {
        messages: Arc<ha_transport::recv::Inbox>,
        _rejected: mpsc::Sender<Rejected>,
        _outcomes: mpsc::UnboundedSender<Outcome>,
        _checks: mpsc::UnboundedSender<CheckResult>,
        _scrapes: mpsc::Sender<ScrapeRequest>,
        _control: mpsc::Sender<ControlMsg>,
        _pings: mpsc::UnboundedSender<u32>,
        _fenced: mpsc::UnboundedSender<crate::fence::FenceResult>,
        _fifo: mpsc::UnboundedSender<AdminCommand>,
        _signals: mpsc::UnboundedSender<&'static str>,
    }

    fn channel_sources() -> (Feeds, Sources) {
        let (messages, m) = ha_transport::recv::Messages::detached();
        let (rejected, r) = mpsc::channel(64);
        let (outcomes, o) = mpsc::unbounded_channel();
        let (checks, c) = mpsc::unbounded_channel();
        let (scrapes, s) = mpsc::channel(4);
        let (control, ctl) = mpsc::channel(4);
        let (pings, p) = mpsc::unbounded_channel();
        let (fenced, f) = mpsc::unbounded_channel();
        let (fifo, fi) = mpsc::unbounded_channel();
        let (signals, sig) = mpsc::unbounded_channel();
        let feeds = Feeds {
            messages,
            _rejected: rejected,
            _outcomes: outcomes,
            _checks: checks,
            _scrapes: scrapes,
            _control: control,
            _pings: pings,
            _fenced: fenced,
            _fifo: fifo,
            _signals: signals,
        };
        let sources = Sources {
            timer: crate::loop_timer::LoopTimer::tokio(),
            messages: m,
            fed_until: None,
            rejected: r,
            serial: None,
            outcomes: o,
            checks: c,
            scrapes: s,
            control: ctl,
            pings: p,
            fenced: f,
            fifo: fi,
            signals: sig,
        };
        (feeds, sources)
    }

    /// Effects that only tell the test what the loop carried out, and when.
    struct Recorded(mpsc::UnboundedSender<(Instant, Output)>);

    impl Effects for Recorded {
        async fn carry_out(&mut self, _node: &Node, o: Output) {
            let _ = self.0.send((clock_now(), o));
        }
        async fn settle(&mut self, _node: &mut Node) -> Option<i32> {
            None
        }
    }

    fn live_config(local: &str, peer: &str, id: u8) -> LivenessConfig {
        LivenessConfig {
            local: NodeName::from(local),
            uuid: [id; 16],
            generation: 1,
            peers: vec![NodeName::from(peer)],
            media: vec!["eth0".into()],
            keepalive: Duration::from_secs(1),
            deadtime: Duration::from_secs(5),
            warntime: Duration::from_secs(3),
            initdead: Duration::from_secs(10),
            auth: test_auth(),
            unix_now_at_start: 1_700_000_000,
            local_addrs: Vec::new(),
            peer_floors: Vec::new(),
        }
    }

    fn test_auth() -> Auth {
        Auth::from_keys(1, [(1, ha_config::AuthMethod::Sha1, b"loop-test".to_vec())])
    }

    /// The loop itself on paused time, its IO replaced by channels: a peer's heartbeats come
    /// in through the message source, then stop; the loop's own timer must declare the peer
    /// dead at deadtime and start the peer's group, with no clock but tokio's.
    #[tokio::test(start_paused = true)]
    async fn the_loop_takes_over_at_deadtime_on_paused_time() {
        peer_talks_then_falls_silent(Duration::from_secs(4), true).await;
    }

    /// The same with every heartbeat after the first left waiting without waking the loop
    /// (as the receive thread leaves routine ones): for twice the deadtime the peer stays
    /// up, each heartbeat counting from when it was read, and silence still ends in a
    /// takeover at deadtime, not a keepalive later.
    #[tokio::test(start_paused = true)]
    async fn heartbeats_that_wait_for_the_loop_keep_the_peer_up_and_time_its_death() {
        peer_talks_then_falls_silent(Duration::from_secs(10), false).await;
    }

    async fn peer_talks_then_falls_silent(talk: Duration, wake_for_each: bool) {
        let t0 = clock_now();
        let deadtime = Duration::from_secs(5);
        let node = Node::new(
            NodeSetup {
                live: live_config("alpha", "beta", 1),
                cluster: ClusterConfig {
                    local: "alpha".into(),
                    peer: "beta".into(),
                    groups: vec![GroupInfo {
                        key: "198.18.0.10".into(),
                        preferred_local: false,
                        resources: ["198.18.0.10".into()].into(),
                    }],
                    auto_failback: AutoFailback::On,
                    report_timeout: Duration::from_secs(2),
                },
                fencing: None,
                priority: None,
                failback_delay: Duration::ZERO,
                ping_grace: Duration::from_secs(2),
                not_released: Vec::new(),
                load: "0.00 0.00 0.00 1/100 1".into(),
            },
            t0,
        );
        let (feeds, mut src) = channel_sources();
        let (otx, mut orx) = mpsc::unbounded_channel();
        let looping = tokio::spawn(async move {
            let mut node = node;
            super::serve(&mut node, &mut Recorded(otx), &mut src).await
        });

        // The peer, a real Liveness, talks (virtual time), then falls silent.
        let mut beta = ha_transport::liveness::Liveness::new(live_config("beta", "alpha", 2), t0);
        let from: std::net::SocketAddr = "198.18.0.2:694".parse().expect("addr");
        let mut last_heard = t0;
        let mut heard = 0;
        while clock_now() < t0 + talk {
            beta.handle_timeout(clock_now());
            while let Some(t) = beta.poll_transmit() {
                let msg = test_auth().verify(&t.bytes).expect("signed by the peer");
                let at = clock_now();
                let inbound = ha_transport::recv::Inbound {
                    medium: ha_transport::liveness::MediumId(0),
                    from,
                    at,
                    msg,
                };
                let urgent = wake_for_each || heard == 0;
                assert!(feeds.messages.push(inbound, urgent), "room in the inbox");
                heard += 1;
                last_heard = at;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        let (mut up, mut dead, mut sent) = (false, false, 0);
        let started = loop {
            let (at, o) = tokio::time::timeout(Duration::from_secs(60), orx.recv())
                .await
                .expect("the loop starts the group within a minute (virtual)")
                .expect("the loop runs");
            match o {
                Output::PeerUp => up = true,
                Output::PeerDead { .. } => {
                    assert!(at >= last_heard, "peer declared dead while it talked");
                    dead = true
                }
                Output::Transmit(_) => sent += 1,
                Output::Act(Action::Start(GroupId(0))) => break at,
                _ => {}
            }
        };
        let after = started.duration_since(last_heard);
        eprintln!(
            "{heard} heartbeats; peer silent at {:?}, group started {after:?} later; {sent} packets sent",
            last_heard.duration_since(t0)
        );
        assert!(heard >= 4, "{heard} heartbeats heard");
        assert!(up && dead, "peer never seen up ({up}) or dead ({dead})");
        assert!(
            after >= deadtime && after <= deadtime + Duration::from_millis(100),
            "takeover {after:?} after the last heartbeat, deadtime {deadtime:?}"
        );
        // Keepalive 1 s: the loop's own heartbeats went out on time meanwhile.
        let span = started.duration_since(t0).as_secs();
        assert!(sent + 1 >= span, "{sent} packets sent in {span} s");
        looping.abort();
    }

    async fn read_all(s: &mut UnixStream) -> String {
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
        out
    }

    /// The clients' tasks belong to the accept loop: when it goes, an idle client is closed
    /// at once, not after its read timeout.
    #[tokio::test]
    async fn dropping_the_accept_loop_ends_its_clients() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _origins, tasks) = serve(dir.path(), Duration::from_secs(60)).await;
        let mut idle = UnixStream::connect(&path).await.expect("connect");
        // Let the loop accept it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        drop(tasks);
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
            .await
            .expect("closed before 10 s")
            .expect("read");
        eprintln!(
            "idle client closed {:?} after the loop dropped",
            t0.elapsed()
        );
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn requests_are_capped_clients_bounded_and_timed_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let timeout = Duration::from_millis(1500);
        let (path, mut origins, _tasks) = serve(dir.path(), timeout).await;

        // A request carries its sender's credentials to the loop.
        let mut s = UnixStream::connect(&path).await.expect("connect");
        s.write_all(b"{\"cmd\":\"cleanup\"}\n")
            .await
            .expect("write");
        let mut line = vec![0u8; 256];
        let n = s.read(&mut line).await.expect("answer");
        assert!(String::from_utf8_lossy(&line[..n]).contains("done"));
        assert_eq!(
            origins.recv().await,
            Some(Origin::Client {
                uid: nix::unistd::geteuid().as_raw(),
                pid: Some(std::process::id() as i32)
            })
        );
        drop(s);

        // Over 64 KiB without a newline: refused, closed, never parsed.
        let mut s = UnixStream::connect(&path).await.expect("connect");
        let big = vec![b'x'; control::MAX_REQUEST + 10];
        let (mut rd, mut wr) = s.split();
        let (_, answer) = tokio::join!(wr.write_all(&big), async {
            let mut out = String::new();
            let _ = rd.read_to_string(&mut out).await;
            out
        });
        assert!(answer.contains("longer than 65536 bytes"), "{answer:?}");

        // Idle clients hold at most MAX_CLIENTS slots; one more is turned away at once,
        // and the idle ones are dropped after the read timeout.
        let t0 = Instant::now();
        let mut idle = Vec::new();
        for _ in 0..control::MAX_CLIENTS {
            idle.push(UnixStream::connect(&path).await.expect("connect"));
        }
        let mut extra = UnixStream::connect(&path).await.expect("connect");
        assert_eq!(read_all(&mut extra).await, "");
        let turned_away = t0.elapsed();
        assert!(turned_away < timeout, "turned away after {turned_away:?}");
        assert_eq!(read_all(&mut idle[0]).await, "");
        let timed_out = t0.elapsed();
        assert!(
            timed_out >= timeout,
            "idle client closed after {timed_out:?}"
        );
        eprintln!(
            "extra client turned away after {turned_away:?}, idle ones closed after {timed_out:?}"
        );
        drop(idle);
        // Slots come back.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut s = UnixStream::connect(&path).await.expect("connect");
        s.write_all(b"{\"cmd\":\"cleanup\"}\n")
            .await
            .expect("write");
        let n = s.read(&mut line).await.expect("answer");
        assert!(String::from_utf8_lossy(&line[..n]).contains("done"));
    }
}
