//! The guard: a small process `had` starts beside itself that releases what the daemon held
//! when the daemon dies without saying goodbye (kill -9, the OOM killer, an abort).
//!
//! It is the same binary re-executed (`/proc/self/exe`, first argument [`ARG`]), not a
//! forked copy: `had` is multi-threaded by then, and a forked child of a threaded process may
//! only make async-signal-safe calls until it execs, while the guard must log, talk netlink and
//! run scripts. The new image also inherits no memory, lock, thread or runtime of the daemon.
//! Its standard input is the read end of a pipe whose only write end `had` holds (close-on-exec,
//! so no script inherits it); every other descriptor but stderr (the log) is closed before
//! exec, it gets its own process group (a terminal's Ctrl-C is for the daemon) and
//! PR_SET_PDEATHSIG as a second trigger. `had` tells it, as JSON lines, what it holds as it
//! acquires and releases; on end of file without `goodbye` the guard releases it all, the
//! addresses first, through the daemon's own stop code (`groups::stop_one`), and exits.
//!
//! While it waits the guard has no async runtime: one thread blocked in `poll`. The runtime
//! the agents need is built when there is something to release.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::logcat::{LogEvent, log};
use ha_agents::{AgentEnv, NetBatch, OpTimeouts, Resource};
use ha_config::{Config, ResourceSpec};
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::cluster::GroupState;
use crate::cluster::leftovers::guard_order;
use crate::groups::Groups;

/// The hidden first argument that makes `had` the guard.
pub const ARG: &str = "--had-internal-guard";

/// The guard's process name (`ps`, `/proc/PID/comm`).
pub const COMM: &str = "had-guard";

/// How long the guard waits without a message before it gives back the memory handling
/// them used ([`crate::realtime::release_unused`]).
const SETTLE_BEFORE_TRIM_MS: libc::c_int = 5_000;

/// The signal PR_SET_PDEATHSIG sends the guard; blocked, and read through a signalfd.
const DEATH_SIGNAL: libc::c_int = libc::SIGUSR1;

/// A message from `had` to its guard: one JSON object per line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToGuard {
    /// First line: how to log, run and stop like the daemon.
    Hello(Hello),
    /// The daemon may hold these resources of group `group` (haresources tokens) from now on.
    Hold {
        group: String,
        resources: Vec<String>,
    },
    /// The daemon released group `group`.
    Release { group: String },
    /// The daemon is leaving cleanly: what it still holds stays (a failed stop is the admin's).
    Goodbye,
}

/// What the guard needs to log and stop as the daemon would.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub daemon_pid: u32,
    pub logfile: Option<PathBuf>,
    pub debugfile: Option<PathBuf>,
    pub logfacility: Option<String>,
    pub debug: u32,
    /// The SCHED_RR priority the daemon's heartbeat thread got, if it is realtime.
    pub rtprio: Option<i32>,
    pub resource_dirs: Vec<PathBuf>,
    pub systemd: bool,
    pub ocf_root: PathBuf,
    pub stop_timeout_ms: u64,
    /// had.toml's `[[resource]]` stop limits, by the name written there.
    #[serde(default)]
    pub resource_stop_timeouts_ms: BTreeMap<String, u64>,
    pub status_timeout_ms: u64,
    pub stop_retries: u32,
    pub stop_retry_delay_ms: u64,
}

impl Hello {
    /// The hello for the running daemon.
    pub fn new(config: &Config, groups: &Groups) -> Hello {
        let env = ha_config::agent::agent_env(&config.dir, config);
        let rt = crate::realtime::state();
        Hello {
            daemon_pid: std::process::id(),
            logfile: config.ha_cf.logfile.clone(),
            debugfile: config.ha_cf.debugfile.clone(),
            logfacility: config.ha_cf.logfacility.clone(),
            debug: config.ha_cf.debug,
            rtprio: rt.filter(|r| r.policy == "SCHED_RR").map(|r| r.priority),
            resource_dirs: env.resource_dirs,
            systemd: env.systemd,
            ocf_root: env.ocf_root,
            stop_timeout_ms: env.timeouts.stop.as_millis() as u64,
            resource_stop_timeouts_ms: env
                .resource_timeouts
                .iter()
                .map(|(name, t)| (name.clone(), t.stop.as_millis() as u64))
                .collect(),
            status_timeout_ms: env.timeouts.status.as_millis() as u64,
            stop_retries: groups.stop_retries,
            stop_retry_delay_ms: groups.stop_retry_delay.as_millis() as u64,
        }
    }

    fn agent_env(&self) -> AgentEnv {
        let d = AgentEnv::default();
        let timeouts = OpTimeouts {
            stop: Duration::from_millis(self.stop_timeout_ms),
            status: Duration::from_millis(self.status_timeout_ms),
            ..d.timeouts
        };
        AgentEnv {
            resource_dirs: self.resource_dirs.clone(),
            systemd: self.systemd,
            timeouts,
            // The guard only stops: each resource's own stop limit, as the daemon has it.
            resource_timeouts: self
                .resource_stop_timeouts_ms
                .iter()
                .map(|(name, ms)| {
                    let stop = Duration::from_millis(*ms);
                    (name.clone(), OpTimeouts { stop, ..timeouts })
                })
                .collect(),
            ocf_root: self.ocf_root.clone(),
            ..d
        }
    }
}

/// `ToGuard::Hold` as the daemon writes it, borrowing the daemon's resources: the same JSON
/// line, without a copy of every token of the group on the way (a thousand of them are tens
/// of KB, touched once and kept resident).
#[derive(Serialize)]
struct HoldRef<'a> {
    hold: HoldBody<'a>,
}

#[derive(Serialize)]
struct HoldBody<'a> {
    group: &'a str,
    resources: Names<'a>,
}

/// The resources' names, as a JSON array of strings.
struct Names<'a>(&'a [Resource]);

impl Serialize for Names<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|r| r.name()))
    }
}

/// Most bytes queued for a guard that does not read (it is stopped or stuck): beyond, the
/// daemon gives it up rather than grow or block.
const MAX_PENDING: usize = 1 << 20;

/// Capacity of the send buffer kept once it is empty (a few ordinary messages).
const KEEP_PENDING: usize = 4096;

/// The daemon's end: tells the guard what is held. Never blocks the loop.
pub struct Guard {
    pipe: Option<std::fs::File>,
    pid: Option<u32>,
    /// Per group slot: what the guard was told is held there (key, resources). The
    /// resources are the daemon's own, shared: a copy of every token of a held group
    /// would cost ≈ 70 bytes per address for the life of the daemon (issue 14).
    told: Vec<Option<(String, Arc<[Resource]>)>>,
    pending: Vec<u8>,
}

impl Guard {
    /// Start the guard. A guard that cannot start is one warning: the daemon runs without it.
    pub fn spawn(hello: Hello) -> Guard {
        let mut g = Guard {
            pipe: None,
            pid: None,
            told: Vec::new(),
            pending: Vec::new(),
        };
        match start() {
            Ok((pipe, pid)) => {
                log(&LogEvent::GuardStarted { pid });
                g.pipe = Some(pipe);
                g.pid = Some(pid);
                g.send(&ToGuard::Hello(hello));
            }
            Err(e) => log(&LogEvent::GuardCannotStart {
                reason: &e.to_string(),
            }),
        }
        g
    }

    /// The guard's pid while the daemon believes it runs.
    pub fn pid(&self) -> Option<u32> {
        self.pipe.as_ref().and(self.pid)
    }

    /// Tell the guard what changed since the last call: groups that may be up here now
    /// (starting, running, stopping, stop failed) are held, the others released.
    pub fn sync(&mut self, states: &[GroupState], groups: &Groups) {
        if self.pipe.is_none() {
            return;
        }
        let n = states.len().max(self.told.len());
        self.told.resize(n, None);
        for i in 0..n {
            let held = states.get(i).is_some_and(|s| s.is_held());
            let key = groups.keys.get(i);
            let res = groups.resources.get(i);
            let same = match (&self.told[i], key, res) {
                (Some((k, names)), Some(key), Some(res)) => {
                    held && k == key
                        && (Arc::ptr_eq(names, res)
                            || names.len() == res.len()
                                && names
                                    .iter()
                                    .zip(res.iter())
                                    .all(|(a, r)| a.name() == r.name()))
                }
                (None, _, _) => !held,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some((k, _)) = self.told[i].take() {
                self.send(&ToGuard::Release { group: k });
            }
            if held && let (Some(key), Some(res)) = (key, res) {
                self.send(&HoldRef {
                    hold: HoldBody {
                        group: key,
                        resources: Names(res),
                    },
                });
                self.told[i] = Some((key.clone(), res.clone()));
            }
        }
        self.flush();
    }

    /// A clean exit: the guard leaves without releasing anything.
    pub fn goodbye(&mut self) {
        if self.pipe.is_none() {
            return;
        }
        self.send(&ToGuard::Goodbye);
        // The last words must get through: wait briefly for a slow reader.
        let until = Instant::now() + Duration::from_secs(1);
        while !self.pending.is_empty() && self.pipe.is_some() && Instant::now() < until {
            self.flush();
            if !self.pending.is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.pipe = None;
    }

    fn send(&mut self, m: &impl Serialize) {
        if let Ok(mut line) = serde_json::to_vec(m) {
            line.push(b'\n');
            self.pending.extend_from_slice(&line);
        }
        self.flush();
    }

    fn flush(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match pipe.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                    // A group of a thousand addresses is one line of tens of KB: its
                    // buffer is not kept for the life of the daemon once sent.
                    if self.pending.is_empty() && self.pending.capacity() > KEEP_PENDING {
                        self.pending = Vec::new();
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if self.pending.len() > MAX_PENDING {
                        log(&LogEvent::GuardNotReading {
                            bytes: self.pending.len(),
                        });
                        self.pipe = None;
                        self.pending.clear();
                    }
                    return;
                }
                Err(e) => {
                    log(&LogEvent::GuardGone {
                        reason: &e.to_string(),
                    });
                    self.pipe = None;
                    self.pending.clear();
                    return;
                }
            }
        }
    }
}

/// Re-execute this binary as the guard; its pipe's write end (non-blocking) and pid.
fn start() -> std::io::Result<(std::fs::File, u32)> {
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(std::io::Error::from)?;
    // The read end must block in the guard: only the write end stays non-blocking.
    set_nonblocking(&rd, false)?;
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg(ARG)
        .stdin(Stdio::from(rd))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // systemd's notification and watchdog are the daemon's alone.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_PID")
        .env_remove("WATCHDOG_USEC")
        .current_dir("/");
    // SAFETY: between fork and exec only async-signal-safe system calls run here (prctl,
    // getppid, sigprocmask, setpgid, close_range, kill), on values computed before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, DEATH_SIGNAL);
            // Blocked across exec: the guard reads it from a signalfd, never loses it.
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                DEATH_SIGNAL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // Died before the request took: the signal will never come, so send it now.
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), DEATH_SIGNAL);
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Nothing of the daemon's but the pipe (0), /dev/null (1) and the log (2).
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok((std::fs::File::from(wr), child.id()))
}

fn set_nonblocking(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let mut flags = OFlag::from_bits_truncate(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
    Ok(())
}

/// True when this process was started as the guard.
pub fn invoked_as_guard() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == ARG)
}

/// A held group as the guard keeps it.
struct Held {
    key: String,
    resources: Record,
}

/// A held group's resources as the guard keeps them: their tokens, built into resources
/// (as the daemon built them) only when asked, that is when they are released. Built and
/// kept, a thousand addresses cost the guard ≈ 0.3 MiB it almost never uses (issue 14).
struct Record {
    tokens: Tokens,
    env: Arc<AgentEnv>,
}

impl Record {
    #[cfg(test)]
    fn new(names: &[String], env: Arc<AgentEnv>) -> Record {
        let mut tokens = Tokens::default();
        for n in names {
            tokens.push(n);
        }
        Record { tokens, env }
    }

    fn len(&self) -> usize {
        self.tokens.ends.len()
    }

    /// The `i`th token as the daemon wrote it.
    fn name(&self, i: usize) -> Option<&str> {
        self.tokens.get(i)
    }

    /// The `i`th resource, built now (`Some(None)`: it cannot be built here).
    fn get(&self, i: usize) -> Option<Option<Resource>> {
        self.name(i).map(|raw| build(raw, &self.env).ok())
    }

    fn iter(&self) -> impl Iterator<Item = Option<Resource>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// Tokens one after the other in one string, read from a `Hold` line without a `String`
/// of their own each on the way.
#[derive(Default)]
struct Tokens {
    text: String,
    /// Where each token ends in `text`.
    ends: Vec<u32>,
}

impl Tokens {
    fn push(&mut self, token: &str) {
        self.text.push_str(token);
        // A Hold line is far below 4 GiB (the guard reads at most MAX_PENDING per line).
        self.ends
            .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
    }

    fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = match i {
            0 => 0,
            _ => *self.ends.get(i - 1)? as usize,
        };
        self.text.get(start..end)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        (0..self.ends.len()).filter_map(|i| self.get(i))
    }
}

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tokens, D::Error> {
        struct Seq;
        impl<'de> serde::de::Visitor<'de> for Seq {
            type Value = Tokens;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Tokens, A::Error> {
                let mut t = Tokens::default();
                while seq.next_element_seed(Append(&mut t))?.is_some() {}
                t.text.shrink_to_fit();
                t.ends.shrink_to_fit();
                Ok(t)
            }
        }
        /// One token, appended to the text as read.
        struct Append<'a>(&'a mut Tokens);
        impl<'de> serde::de::DeserializeSeed<'de> for Append<'_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_str(self)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Append<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
                self.0.push(v);
                Ok(())
            }
        }
        d.deserialize_seq(Seq)
    }
}

/// [`ToGuard`] as the guard reads it: the same lines, a `Hold`'s tokens read into [`Tokens`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Incoming {
    Hello(Hello),
    Hold { group: String, resources: Tokens },
    Release { group: String },
    Goodbye,
}

/// A resource as the daemon built it from its token.
fn build(raw: &str, env: &AgentEnv) -> Result<Resource, String> {
    let spec = ResourceSpec::parse(raw).ok_or_else(|| format!("`{raw}` is no resource"))?;
    Resource::from_spec(&spec, env).map_err(|e| e.to_string())
}

/// What the guard has heard so far.
#[derive(Default)]
struct State {
    hello: Option<Hello>,
    /// From the hello; shared by the records of the held groups.
    env: Option<Arc<AgentEnv>>,
    held: Vec<Held>,
    goodbye: bool,
}

impl State {
    fn take_line(&mut self, line: &[u8]) {
        let msg: Incoming = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(e) => {
                // Only the daemon writes here; a line it did not mean is a bug, not an attack.
                log(&LogEvent::GuardBadMessage {
                    reason: &e.to_string(),
                });
                return;
            }
        };
        match msg {
            Incoming::Hello(h) => {
                crate::daemon::large_blocks_mapped();
                crate::logging::init(
                    h.logfile.as_deref(),
                    h.debugfile.as_deref(),
                    h.logfacility.as_deref(),
                    h.debug,
                );
                if let Some(prio) = h.rtprio {
                    crate::realtime::apply_guard(prio);
                }
                debug!("guard: watching had (pid {})", h.daemon_pid);
                self.env = Some(Arc::new(h.agent_env()));
                self.hello = Some(h);
            }
            Incoming::Hold { group, resources } => {
                let Some(env) = self.env.as_ref() else { return };
                // Built once now, as before, so that what cannot be built is said while
                // the daemon runs; the record keeps the tokens only.
                for raw in resources.names() {
                    // An empty agent name (`::x`) was never a resource; it stays silent.
                    if ResourceSpec::parse(raw).is_none() {
                        continue;
                    }
                    if let Err(reason) = build(raw, env) {
                        log(&LogEvent::GuardCannotBuild {
                            resource: raw,
                            group: &group,
                            reason: &reason,
                        });
                    }
                }
                let env = Arc::clone(env);
                self.held.retain(|h| h.key != group);
                debug!("guard: had holds {group}");
                self.held.push(Held {
                    key: group,
                    resources: Record {
                        tokens: resources,
                        env,
                    },
                });
            }
            Incoming::Release { group } => {
                debug!("guard: had released {group}");
                self.held.retain(|h| h.key != group);
            }
            Incoming::Goodbye => self.goodbye = true,
        }
    }
}

/// What a guard keeps once told that every group of `groups` is held (the memory test in
/// tests/memory.rs measures it).
#[doc(hidden)]
pub fn held_record(groups: &Groups) -> impl Sized + use<> {
    let mut state = State {
        env: Some(Arc::new(AgentEnv::default())),
        ..State::default()
    };
    for (key, res) in groups.keys.iter().zip(&groups.resources) {
        let hold = HoldRef {
            hold: HoldBody {
                group: key,
                resources: Names(res),
            },
        };
        if let Ok(line) = serde_json::to_vec(&hold) {
            state.take_line(&line);
        }
    }
    state
}

/// The guard's `main`: wait for the daemon's messages, then release or leave.
pub fn main() -> ExitCode {
    set_comm();
    let mut state = State::default();
    let ended = watch(&mut state);
    if state.goodbye {
        log(&LogEvent::GuardCleanStop {});
        return ExitCode::SUCCESS;
    }
    let pid = state.hello.as_ref().map(|h| h.daemon_pid).unwrap_or(0);
    if state.held.is_empty() {
        log(&LogEvent::GuardNothingHeld { pid, ended });
        return ExitCode::SUCCESS;
    }
    let n: usize = state.held.iter().map(|h| h.resources.len()).sum();
    log(&LogEvent::GuardReleasing {
        pid,
        ended,
        count: n,
    });
    release(&state);
    ExitCode::SUCCESS
}

/// Read the daemon's messages until end of file or the death signal.
fn watch(state: &mut State) -> &'static str {
    let sfd = death_signal_fd();
    let fd = libc::STDIN_FILENO;
    // Small: every page of it a message once filled stays resident while the guard waits
    // (a hold of 1,000 addresses is ≈ 30 KiB); a long message takes a few more reads.
    let mut buf = [0u8; 4096];
    let mut line = Vec::new();
    let mut parent_dead = false;
    // Messages were handled since the last trim (parsing them and building agents touched
    // code and heap the idle wait never uses): give it back once the daemon is quiet.
    let mut unsettled = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd.as_ref().map(|s| s.as_raw_fd()).unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // A dead parent whose pipe somebody else holds open: read what is there, then act.
        let timeout = match (parent_dead, unsettled) {
            (true, _) => 0,
            (false, true) => SETTLE_BEFORE_TRIM_MS,
            (false, false) => -1,
        };
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return "poll failed";
        }
        if r == 0 && !parent_dead {
            unsettled = false;
            // The release path never ran here before, trimmed or not: it faults its code in
            // either way, so the guard's trim costs it nothing.
            crate::realtime::release_unused(true);
            continue;
        }
        if fds[1].revents != 0 {
            parent_dead = true;
        }
        if fds[0].revents != 0 {
            // SAFETY: reading into a buffer we own, at most its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                return "end of its pipe";
            }
            if n < 0 {
                if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                    continue;
                }
                return "its pipe failed";
            }
            for &b in &buf[..n as usize] {
                if b == b'\n' {
                    state.take_line(&line);
                    line.clear();
                    if line.capacity() > buf.len() {
                        // A long message's room goes with it, or the trim cannot return it.
                        line = Vec::new();
                    }
                } else if line.len() < MAX_PENDING {
                    line.push(b);
                }
            }
            if state.goodbye {
                return "goodbye";
            }
            unsettled = true;
            continue;
        }
        if parent_dead {
            return "parent-death signal";
        }
    }
}

/// A signalfd for the (blocked) parent-death signal; `None` if it cannot be had (then the
/// pipe's end of file is the only trigger, as it is the main one anyway).
fn death_signal_fd() -> Option<OwnedFd> {
    // SAFETY: plain libc calls on a local, initialised sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, DEATH_SIGNAL);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return None;
        }
        Some(std::os::fd::FromRawFd::from_raw_fd(fd))
    }
}

fn set_comm() {
    let name = std::ffi::CString::new(COMM).unwrap_or_default();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Release everything held: addresses first, then the rest right to left, last group first.
fn release(state: &State) {
    let t0 = Instant::now();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log(&LogEvent::GuardNoRuntime {
                reason: &e.to_string(),
            });
            return;
        }
    };
    let (retries, delay) = state
        .hello
        .as_ref()
        .map(|h| (h.stop_retries, Duration::from_millis(h.stop_retry_delay_ms)))
        .unwrap_or((0, Duration::ZERO));
    let shape: Vec<Option<Vec<bool>>> = state
        .held
        .iter()
        .map(|h| {
            Some(
                h.resources
                    .iter()
                    .map(|r| matches!(r, Some(Resource::Ip(_))))
                    .collect(),
            )
        })
        .collect();
    let order = guard_order(&shape);
    let (ok, failed) = rt.block_on(async {
        if let Err(e) = ha_agents::process::init_reaper() {
            log(&LogEvent::GuardNoReaper {
                reason: &e.to_string(),
            });
        }
        // The view layer the daemon uses for status; the guard has none to show.
        let view = Mutex::new(Vec::new());
        let mut batch = NetBatch::new();
        let (mut ok, mut failed) = (0usize, 0usize);
        for (g, i) in order {
            let h = &state.held[g];
            let name = h.resources.name(i).unwrap_or("");
            let Some(Some(r)) = h.resources.get(i) else {
                log(&LogEvent::GuardUnbuilt {
                    resource: name,
                    group: &h.key,
                });
                failed += 1;
                continue;
            };
            let t = Instant::now();
            let policy = crate::groups::StopPolicy {
                key: &h.key,
                retries,
                delay,
                retry_line: crate::groups::stop_retry,
            };
            let slot = crate::groups::Slot {
                view: &view,
                group: crate::cluster::GroupId(g),
                i,
            };
            match crate::groups::stop_one(&policy, &r, &mut batch, Some(slot)).await {
                Ok(()) => {
                    ok += 1;
                    log(&LogEvent::GuardReleased {
                        resource: name,
                        group: &h.key,
                        ms: t.elapsed().as_millis() as u64,
                        after_ms: t0.elapsed().as_millis() as u64,
                    });
                }
                Err(_) => failed += 1,
            }
        }
        (ok, failed)
    });
    let total = t0.elapsed().as_millis() as u64;
    if failed == 0 {
        log(&LogEvent::GuardDone {
            released: ok,
            ms: total,
        });
    } else {
        log(&LogEvent::GuardDoneFailed {
            released: ok,
            failed,
            ms: total,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_groups(keys: &[&str]) -> Groups {
        let env = AgentEnv {
            resource_dirs: vec![],
            systemd: false,
            ..AgentEnv::default()
        };
        let res = keys
            .iter()
            .map(|k| {
                let spec = ResourceSpec::parse(k).expect("spec");
                vec![Resource::from_spec(&spec, &env).expect("ip")]
            })
            .collect();
        Groups::new(keys.iter().map(|k| k.to_string()).collect(), res)
    }

    fn read_lines(rd: &OwnedFd) -> Vec<ToGuard> {
        set_nonblocking(rd, true).expect("nonblock");
        let mut buf = vec![0u8; 4096];
        // SAFETY: reading into a buffer we own, at most its length.
        let n = unsafe { libc::read(rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return Vec::new();
        }
        buf[..n as usize]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("a message"))
            .collect()
    }

    #[test]
    fn the_daemon_tells_holds_before_and_releases_after_and_survives_a_gone_guard() {
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let groups = ip_groups(&["198.18.0.10", "198.18.0.20"]);
        let mut g = Guard {
            pipe: Some(std::fs::File::from(wr)),
            pid: Some(1),
            told: Vec::new(),
            pending: Vec::new(),
        };
        use GroupState::*;
        g.sync(&[Stopped, Failed], &groups);
        assert_eq!(read_lines(&rd), vec![]);
        g.sync(&[Starting, Stopped], &groups);
        let hold0 = ToGuard::Hold {
            group: "198.18.0.10".into(),
            resources: vec!["198.18.0.10".into()],
        };
        assert_eq!(read_lines(&rd), vec![hold0]);
        // Unchanged (starting -> running -> stopping are all held): nothing more is said.
        g.sync(&[Running, Stopped], &groups);
        g.sync(&[Stopping, Stopped], &groups);
        assert_eq!(read_lines(&rd), vec![]);
        // A failed stop keeps it held; a stopped group is released.
        g.sync(&[StopFailed, Starting], &groups);
        g.sync(&[Stopped, Running], &groups);
        assert_eq!(
            read_lines(&rd),
            vec![
                ToGuard::Hold {
                    group: "198.18.0.20".into(),
                    resources: vec!["198.18.0.20".into()],
                },
                ToGuard::Release {
                    group: "198.18.0.10".into()
                },
            ]
        );
        // A reload that put another group in slot 1 while held: the old one is released.
        let reloaded = ip_groups(&["198.18.0.10", "198.18.0.30"]);
        g.sync(&[Stopped, Running], &reloaded);
        assert_eq!(
            read_lines(&rd),
            vec![
                ToGuard::Release {
                    group: "198.18.0.20".into()
                },
                ToGuard::Hold {
                    group: "198.18.0.30".into(),
                    resources: vec!["198.18.0.30".into()],
                },
            ]
        );
        g.goodbye();
        assert_eq!(read_lines(&rd), vec![ToGuard::Goodbye]);
        assert_eq!(g.pid(), None);

        // A guard that died: the daemon notices on its next message and goes on.
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let mut g = Guard {
            pipe: Some(std::fs::File::from(wr)),
            pid: Some(1),
            told: Vec::new(),
            pending: Vec::new(),
        };
        drop(rd);
        g.sync(&[Running, Stopped], &groups);
        assert_eq!(g.pid(), None);
        g.sync(&[Stopped, Stopped], &groups);
        g.goodbye();
    }

    #[test]
    fn the_daemons_hold_line_is_the_messages_line() {
        let groups = ip_groups(&["198.18.0.10"]);
        let borrowed = HoldRef {
            hold: HoldBody {
                group: &groups.keys[0],
                resources: Names(&groups.resources[0]),
            },
        };
        let owned = ToGuard::Hold {
            group: "198.18.0.10".into(),
            resources: vec!["198.18.0.10".into()],
        };
        assert_eq!(
            serde_json::to_string(&borrowed).expect("json"),
            serde_json::to_string(&owned).expect("json")
        );
    }

    #[test]
    fn the_guards_record_keeps_the_tokens_and_builds_on_demand() {
        let env = Arc::new(AgentEnv {
            resource_dirs: vec![],
            systemd: false,
            ..AgentEnv::default()
        });
        let names = [
            "198.18.0.10".to_string(),
            "nosuchscript-12a".into(),
            String::new(),
        ];
        let r = Record::new(&names, env);
        assert_eq!(r.len(), 3);
        assert_eq!(
            (0..4).map(|i| r.name(i)).collect::<Vec<_>>(),
            vec![
                Some("198.18.0.10"),
                Some("nosuchscript-12a"),
                Some(""),
                None
            ]
        );
        assert!(matches!(r.get(0), Some(Some(Resource::Ip(_)))));
        assert!(matches!(r.get(1), Some(None)));
        assert!(r.get(3).is_none());
    }

    #[test]
    fn the_guard_reads_a_hold_lines_tokens_as_written() {
        let names = vec![
            "IPaddr::198.18.0.10/24/eth0".to_string(),
            "we\"b\\x".into(),
            "é".into(),
        ];
        let line = serde_json::to_vec(&ToGuard::Hold {
            group: "g".into(),
            resources: names.clone(),
        })
        .expect("json");
        let Ok(Incoming::Hold { group, resources }) = serde_json::from_slice(&line) else {
            panic!("not a hold");
        };
        assert_eq!(group, "g");
        assert_eq!(resources.names().collect::<Vec<_>>(), names);
    }

    #[test]
    fn messages_are_one_json_line_each_and_read_back() {
        let m = ToGuard::Hold {
            group: "IPaddr::198.18.0.10/24/eth0".into(),
            resources: vec!["IPaddr::198.18.0.10/24/eth0".into(), "web".into()],
        };
        let s = serde_json::to_string(&m).expect("json");
        assert!(!s.contains('\n'));
        assert_eq!(serde_json::from_str::<ToGuard>(&s).expect("back"), m);
        let s = serde_json::to_string(&ToGuard::Goodbye).expect("json");
        assert_eq!(s, "\"goodbye\"");
    }

    #[test]
    fn the_hello_carries_each_resources_stop_limit_to_the_guard() {
        let h = Hello {
            daemon_pid: 1,
            logfile: None,
            debugfile: None,
            logfacility: None,
            debug: 0,
            rtprio: None,
            resource_dirs: vec![],
            systemd: false,
            ocf_root: PathBuf::from("/usr/lib/ocf"),
            stop_timeout_ms: 30_000,
            resource_stop_timeouts_ms: BTreeMap::from([("web".to_string(), 2_500)]),
            status_timeout_ms: 20_000,
            stop_retries: 1,
            stop_retry_delay_ms: 200,
        };
        let line = serde_json::to_vec(&ToGuard::Hello(h.clone())).expect("json");
        let ToGuard::Hello(back) = serde_json::from_slice(&line).expect("back") else {
            panic!("not a hello");
        };
        let env = back.agent_env();
        let web = ResourceSpec::parse("web::198.18.0.10").expect("spec");
        let other = ResourceSpec::parse("named").expect("spec");
        assert_eq!(env.timeouts_for(&web).stop, Duration::from_millis(2_500));
        assert_eq!(env.timeouts_for(&other).stop, Duration::from_secs(30));
        assert_eq!(env.timeouts_for(&web).status, Duration::from_secs(20));
    }

    #[test]
    fn the_guard_state_follows_holds_releases_and_goodbye() {
        let mut st = State {
            env: Some(Arc::new(AgentEnv {
                resource_dirs: vec![],
                systemd: false,
                ..AgentEnv::default()
            })),
            ..State::default()
        };
        let hold = |g: &str, r: &[&str]| {
            serde_json::to_vec(&ToGuard::Hold {
                group: g.into(),
                resources: r.iter().map(|s| s.to_string()).collect(),
            })
            .expect("json")
        };
        st.take_line(&hold("198.18.0.10", &["198.18.0.10", "198.18.0.11"]));
        st.take_line(&hold("198.18.0.20", &["198.18.0.20"]));
        st.take_line(b"not json");
        assert_eq!(st.held.len(), 2);
        assert!(
            st.held[0]
                .resources
                .iter()
                .all(|r| matches!(r, Some(Resource::Ip(_))))
        );
        // Holding again replaces, never duplicates.
        st.take_line(&hold("198.18.0.10", &["198.18.0.10"]));
        assert_eq!(st.held.len(), 2);
        st.take_line(
            &serde_json::to_vec(&ToGuard::Release {
                group: "198.18.0.20".into(),
            })
            .expect("json"),
        );
        assert_eq!(
            st.held.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(),
            vec!["198.18.0.10"]
        );
        assert!(!st.goodbye);
        st.take_line(b"\"goodbye\"");
        assert!(st.goodbye);
    }
}
