//! Resource monitoring (had.toml `[[monitor]]`): each monitor is a task that runs its check
//! every interval and reports pass/fail to the loop; the cluster decides what a failure means.
//! Process, TCP and HTTP checks run in-process, so an idle node forks nothing.
//! A passing `process:` check also watches the process it found (a pidfd), so its death is
//! checked at once instead of at the next tick.

use std::collections::HashMap;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use ha_agents::{Resource, RunState};
use ha_config::{Check, Config, MonitorSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::{CheckRule, GroupId};

/// One check result: the core's input as it is.
pub use crate::cluster::CheckOutcome as CheckResult;

/// A monitor bound to its group (and resource, for `status` checks).
pub struct Monitor {
    /// The monitor's index in had.toml.
    pub index: usize,
    /// Its settings.
    pub spec: MonitorSpec,
    /// The group holding the watched resource.
    pub group: GroupId,
    /// The watched resource's index in its group (0 for a group key).
    pub position: usize,
    /// The watched resource, for `status` checks.
    pub resource: Option<Resource>,
}

impl Monitor {
    /// The rule the cluster applies to this monitor's failures.
    pub fn rule(&self) -> CheckRule {
        CheckRule {
            failures: self.spec.failures.max(1),
            restarts: self.spec.restarts,
            window: self.spec.window,
            from: self.position,
            weight: self.spec.weight,
            rise: self.spec.rise.max(1),
            everywhere: self.spec.counts_everywhere(),
        }
    }
}

/// Match each monitor to the group holding the resource it names: a resource's raw text,
/// its agent name (`named` for `named`, `apache2` for `apache2::x`), or a group key.
pub fn bind(config: &Config, resources: &[Arc<[Resource]>]) -> Vec<Monitor> {
    let mut out = Vec::new();
    for (index, spec) in config.had.monitors.iter().enumerate() {
        let mut found = None;
        'groups: for (gi, g) in config.haresources.groups.iter().enumerate() {
            for (ri, r) in g.resources.iter().enumerate() {
                if r.raw == spec.resource || r.agent() == spec.resource || g.key() == spec.resource
                {
                    found = Some((gi, ri));
                    break 'groups;
                }
            }
        }
        if let Some((gi, ri)) = found {
            out.push(Monitor {
                index,
                spec: spec.clone(),
                group: GroupId(gi),
                position: ri,
                resource: resources.get(gi).and_then(|g| g.get(ri)).cloned(),
            });
        }
    }
    out
}

/// Checks a process exit may trigger between two ticks: a service whose processes die one
/// after the other (workers, then the master) is followed to the last one, while a process
/// name that is respawned in a loop cannot make the monitor spin.
const EXIT_CHECKS_PER_TICK: u32 = 8;

/// Run a monitor forever, sending each result.
/// Checks run only while `active` is true (the daemon's view: the group runs here or is
/// unhealthy here).
pub async fn run(
    m: Monitor,
    tx: UnboundedSender<CheckResult>,
    mut active: tokio::sync::watch::Receiver<bool>,
) {
    if let Check::Link(name) = &m.spec.check {
        let name = name.clone();
        return run_link(m, &name, tx).await;
    }
    // Weighted checks feed the priority wherever the group runs: never paused.
    let gated = !m.spec.counts_everywhere();
    let mut tick = tokio::time::interval(m.spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch: Option<ExitWatch> = None;
    let mut exit_checks = 0;
    loop {
        if gated && !*active.borrow_and_update() {
            watch = None;
            if active.wait_for(|a| *a).await.is_err() {
                return;
            }
            // A group that just started gets its first check one interval later, as usual.
            tick.reset();
        }
        let on_exit = match &watch {
            Some(w) => tokio::select! {
                _ = tick.tick() => false,
                _ = w.exited() => true,
            },
            None => {
                tick.tick().await;
                false
            }
        };
        if on_exit {
            exit_checks += 1;
            // The next regular check comes a full interval after this one.
            tick.reset();
        } else {
            exit_checks = 0;
            // The process a passing check found is still there (its pidfd would say
            // otherwise): the check passes without walking /proc again. This keeps an idle
            // node's CPU near zero; the scan runs again the moment that process exits.
            if watch.as_ref().is_some_and(ExitWatch::alive) {
                if tx
                    .send(CheckResult {
                        group: m.group,
                        monitor: m.index,
                        ok: true,
                        rule: m.rule(),
                        detail: String::new(),
                    })
                    .is_err()
                {
                    return;
                }
                continue;
            }
        }
        watch = None;
        let r = tokio::time::timeout(m.spec.timeout, check(&m)).await;
        let (ok, detail, pid) = match r {
            Ok(Ok(pid)) => (true, String::new(), pid),
            Ok(Err(e)) => (false, e, None),
            Err(_) => (
                false,
                format!("check timed out after {:?}", m.spec.timeout),
                None,
            ),
        };
        if exit_checks < EXIT_CHECKS_PER_TICK {
            // A process that exits between the scan and here makes the pidfd readable at
            // once, so nothing is missed; a failed open only means waiting for the tick.
            watch = pid.and_then(|p| ExitWatch::open(p).ok());
        }
        if tx
            .send(CheckResult {
                group: m.group,
                monitor: m.index,
                ok,
                rule: m.rule(),
                detail,
            })
            .is_err()
        {
            return;
        }
    }
}

/// A `link:` monitor: one result at start and one per carrier change, as the kernel reports
/// them (no polling). If the netlink socket fails (e.g. an overrun), it is opened again after
/// one `interval`, which also re-reads the state.
async fn run_link(m: Monitor, name: &str, tx: UnboundedSender<CheckResult>) {
    use ha_agents::link::{LinkState, LinkWatch};
    let send = |st: Result<LinkState, String>| {
        let (ok, detail) = match st {
            Ok(LinkState::Carrier) => (true, String::new()),
            Ok(LinkState::NoCarrier) => (false, format!("{name}: no carrier")),
            Ok(LinkState::Missing) => (false, format!("{name}: no such interface")),
            Err(e) => (false, format!("{name}: cannot watch the link: {e}")),
        };
        tx.send(CheckResult {
            group: m.group,
            monitor: m.index,
            ok,
            rule: m.rule(),
            detail,
        })
        .is_ok()
    };
    loop {
        match LinkWatch::open(name).await {
            Ok((mut w, st)) => {
                if !send(Ok(st)) {
                    return;
                }
                let mut last = st;
                while let Some(st) = w.next().await {
                    if st != last {
                        last = st;
                        if !send(Ok(st)) {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                if !send(Err(e.to_string())) {
                    return;
                }
            }
        }
        tokio::time::sleep(m.spec.interval).await;
    }
}

/// Run one check; `Ok` carries the PID a `process:` check found (to watch for its exit).
async fn check(m: &Monitor) -> Result<Option<u32>, String> {
    match &m.spec.check {
        Check::Status => match &m.resource {
            Some(r) => match r.status().await {
                Ok(RunState::Running) => Ok(None),
                Ok(RunState::Stopped) => Err(format!("{} is not running", r.name())),
                Err(e) => Err(e.to_string()),
            },
            None => Err("no resource to ask for status".into()),
        },
        Check::Process(name) => {
            let name = name.clone();
            match tokio::task::spawn_blocking(move || find_process(&name)).await {
                Ok(Ok(Some(pid))) => Ok(Some(pid)),
                Ok(Ok(None)) => Err(format!("no process named {}", m.process_name())),
                Ok(Err(e)) => Err(format!("cannot scan /proc: {e}")),
                Err(e) => Err(format!("process check failed: {e}")),
            }
        }
        Check::Tcp { host, port } => tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map(|_| None)
            .map_err(|e| format!("tcp {host}:{port}: {e}")),
        Check::Http { url } => http_get(url).await.map(|()| None),
        Check::Link(name) => match ha_agents::link::LinkWatch::open(name).await {
            Ok((_, ha_agents::link::LinkState::Carrier)) => Ok(None),
            Ok((_, st)) => Err(format!("{name}: {st:?}")),
            Err(e) => Err(format!("{name}: {e}")),
        },
        Check::Command { program, args } => {
            match ha_agents::process::run(program, args, &[], m.spec.timeout).await {
                Ok(o) if o.status.success() => Ok(None),
                Ok(o) => Err(format!("{} exited {}", program.display(), o.status)),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

impl Monitor {
    fn process_name(&self) -> &str {
        match &self.spec.check {
            Check::Process(n) => n,
            _ => "",
        }
    }
}

/// A pidfd of a watched process: readable once the process has exited.
struct ExitWatch(tokio::io::unix::AsyncFd<OwnedFd>);

impl ExitWatch {
    fn open(pid: u32) -> std::io::Result<ExitWatch> {
        let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid overflow"))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no
        // memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("fd overflow"))?;
        // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd moves into the AsyncFd, which deregisters it before it is closed
        // and never replaced.
        let afd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)?
        };
        Ok(ExitWatch(afd))
    }

    /// Whether the process is still running: its pidfd is not readable yet.
    fn alive(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.0.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, a zero timeout: poll only reads and writes it.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 0
    }

    /// Resolves when the process has exited (or the pidfd cannot be polled: then pending).
    async fn exited(&self) {
        if self.0.readable().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Whether a process named `name` runs in our network namespace (see [`find_process`]).
#[cfg(test)]
fn process_running(name: &str) -> std::io::Result<bool> {
    find_process(name).map(|p| p.is_some())
}

/// The oldest live process named `name` in our network namespace (the service's master
/// rather than a worker, so its exit is the one worth watching). Matching on the namespace
/// keeps lab nodes (one PID namespace, one network namespace each) from seeing each other's
/// services; on a real host every process shares it.
fn find_process(name: &str) -> std::io::Result<Option<u32>> {
    let my_net = std::fs::read_link("/proc/self/ns/net")?;
    let mut oldest: Option<(u64, u32)> = None;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let dir = Path::new("/proc").join(pid);
        if !matches_name(&dir, name) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue; // exited meanwhile
        };
        let Some((_, fields)) = stat.rsplit_once(") ") else {
            continue;
        };
        // Zombies are dead services whose parent has not reaped them yet.
        if fields.starts_with('Z') {
            continue;
        }
        if std::fs::read_link(dir.join("ns/net")).ok().as_ref() != Some(&my_net) {
            continue;
        }
        // starttime is stat field 22, the 20th after the command name.
        let started = fields
            .split_whitespace()
            .nth(19)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if oldest.is_none_or(|(t, p)| (started, pid) < (t, p)) {
            oldest = Some((started, pid));
        }
    }
    Ok(oldest.map(|(_, pid)| pid))
}

/// What the last check of a monitor showed, for deciding what to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Pass,
    /// Failed while the group ran here (acted on).
    FailHere,
    /// Failed while the group did not run here (expected, not acted on).
    FailElsewhere,
}

/// Keeps the log to what matters: a monitor that starts or stops passing while its group runs
/// here, a monitor that passes again (which clears a failure), and - once per monitor - that
/// it fails on a node where its group does not run (on the standby node a `process:` check
/// fails all the time; that is expected and not acted on).
#[derive(Debug, Default)]
pub struct CheckLog {
    last: HashMap<usize, Seen>,
    told_elsewhere: HashMap<usize, ()>,
}

/// A log line chosen by [`CheckLog::line`].
#[derive(Debug, PartialEq, Eq)]
pub enum LogLine {
    /// Worth a warning: a failure that is acted on.
    Warn(String),
    /// Informational.
    Info(String),
}

impl CheckLog {
    /// The line to log for `r` (of group `key`), if any; `runs_here` is whether the group is
    /// running on this node.
    pub fn line(&mut self, r: &CheckResult, key: &str, runs_here: bool) -> Option<LogLine> {
        let now = match (r.ok, runs_here) {
            (true, _) => Seen::Pass,
            (false, true) => Seen::FailHere,
            (false, false) => Seen::FailElsewhere,
        };
        let before = self.last.insert(r.monitor, now);
        if before == Some(now) {
            return None;
        }
        let m = r.monitor;
        match now {
            Seen::Pass => Some(LogLine::Info(format!("monitor {m} of {key}: passes"))),
            Seen::FailHere => Some(LogLine::Warn(format!(
                "monitor {m} of {key}: fails: {}",
                r.detail
            ))),
            Seen::FailElsewhere if self.told_elsewhere.insert(m, ()).is_none() => {
                Some(LogLine::Info(format!(
                    "monitor {m} of {key}: fails while {key} does not run here (expected; not acted on, logged once): {}",
                    r.detail
                )))
            }
            Seen::FailElsewhere => None,
        }
    }
}

/// `pidof NAME` semantics: the program's argv[0] base name, or its kernel name (`comm`, cut at
/// 15 bytes) for daemons that rewrite argv. A script run by an interpreter also carries the
/// script's name in `comm` (`/etc/init.d/named stop` shows as `named`); like `pidof` without
/// `-x`, that does not count, or a stop script would pass for the service it stops.
fn matches_name(dir: &Path, name: &str) -> bool {
    // comm (the executed file's name, cut at 15 bytes) first: it is one small read, and it
    // rules out almost every process, so an unhealthy group's repeated scans stay cheap.
    let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
        return false;
    };
    let comm = comm.trim_end();
    if !(comm == name || (comm.len() == 15 && name.starts_with(comm))) {
        return false;
    }
    // A script named like the service (`/bin/sh /etc/init.d/named stop`) is not the service.
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let mut argv = cmdline.split(|&b| b == 0).filter(|a| !a.is_empty());
    let base = |a: &[u8]| {
        let a = String::from_utf8_lossy(a).into_owned();
        a.rsplit('/').next().unwrap_or_default().to_owned()
    };
    let argv0 = argv.next().map(base);
    if argv0.as_deref() == Some(name) {
        return true;
    }
    let runs_script_named_so = argv
        .next()
        .map(base)
        .is_some_and(|a1| a1 == name || (comm.len() == 15 && a1.starts_with(comm)));
    !runs_script_named_so
}

async fn http_get(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("{url}: bad port"))?),
        None => (hostport, 80),
    };
    let mut s = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: had-monitor\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.map_err(|e| format!("{url}: {e}"))?;
    let head = String::from_utf8_lossy(&buf[..n]);
    let code = head.split_whitespace().nth(1).unwrap_or("");
    if code.starts_with('2') || code.starts_with('3') {
        Ok(())
    } else {
        Err(format!("{url}: HTTP status {code:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_itself_and_not_a_missing_process() {
        let me = std::fs::read_to_string("/proc/self/comm").expect("comm");
        assert!(process_running(me.trim()).expect("scan"));
        assert!(!process_running("no-such-process-had").expect("scan"));
    }

    #[test]
    fn a_script_named_like_the_service_is_not_the_service() {
        let dir = std::env::temp_dir().join(format!("had-monitor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tempdir");
        let script = dir.join("had-svc-test");
        std::fs::write(&script, "#!/bin/sh\nsleep 5\n").expect("write");
        let copy = dir.join("had-bin-test");
        std::fs::copy("/bin/sleep", &copy).expect("copy sleep");
        for p in [&script, &copy] {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        }
        // A file just written can be briefly "busy" for exec while another test thread's
        // fork still holds its descriptor: retry, as that window closes at once.
        let spawn = |p: &std::path::Path, args: &[&str]| {
            let mut last = None;
            for _ in 0..50 {
                match std::process::Command::new(p).args(args).spawn() {
                    Ok(c) => return c,
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                        last = Some(e);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("spawn {}: {e}", p.display()),
                }
            }
            panic!("spawn {}: {last:?}", p.display())
        };
        let mut sh = spawn(&script, &[]);
        let mut bin = spawn(&copy, &["5"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let script_seen = process_running("had-svc-test").expect("scan");
        let bin_seen = process_running("had-bin-test").expect("scan");
        let _ = sh.kill();
        let _ = bin.kill();
        let _ = sh.wait();
        let _ = bin.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!script_seen, "a shell script counted as the service");
        assert!(bin_seen, "the binary was not found");
    }

    fn result(monitor: usize, ok: bool) -> CheckResult {
        CheckResult {
            group: GroupId(0),
            monitor,
            ok,
            rule: CheckRule {
                failures: 1,
                restarts: 0,
                window: std::time::Duration::from_secs(60),
                from: 0,
                weight: 0,
                rise: 1,
                everywhere: false,
            },
            detail: if ok {
                String::new()
            } else {
                "no process named x".into()
            },
        }
    }

    #[test]
    fn failing_checks_where_the_group_does_not_run_are_logged_once() {
        let mut log = CheckLog::default();
        let mut lines = |ok, here| log.line(&result(0, ok), "g", here);
        // Standby node: fails all the time; said once.
        assert!(matches!(lines(false, false), Some(LogLine::Info(l)) if l.contains("logged once")));
        assert_eq!(lines(false, false), None);
        // The group arrives and passes, leaves again: the failure is not repeated.
        assert!(matches!(lines(true, true), Some(LogLine::Info(l)) if l.ends_with("passes")));
        assert_eq!(lines(false, false), None);
        assert_eq!(lines(false, false), None);
        // While the group runs here a failure is a warning, once per failure streak.
        assert!(matches!(lines(true, true), Some(LogLine::Info(_))));
        assert!(
            matches!(lines(false, true), Some(LogLine::Warn(l)) if l.contains("fails: no process"))
        );
        assert_eq!(lines(false, true), None);
        // The group moves away after the failure: quiet (the standby case was told already).
        assert_eq!(lines(false, false), None);
        // Still failing when the group comes back: warned again.
        assert!(matches!(lines(false, true), Some(LogLine::Warn(_))));
        // Monitors are independent.
        assert!(log.line(&result(1, false), "g", false).is_some());
    }

    #[test]
    fn the_oldest_process_of_a_name_is_found() {
        let dir = std::env::temp_dir().join(format!("had-oldest-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tempdir");
        let copy = dir.join("had-old-test");
        std::fs::copy("/bin/sleep", &copy).expect("copy sleep");
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let mut first = std::process::Command::new(&copy)
            .arg("5")
            .spawn()
            .expect("first");
        // starttime counts clock ticks (10 ms): make the second one clearly younger.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut second = std::process::Command::new(&copy)
            .arg("5")
            .spawn()
            .expect("second");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let found = find_process("had-old-test").expect("scan");
        let _ = first.kill();
        let _ = first.wait();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let then = find_process("had-old-test").expect("scan");
        let _ = second.kill();
        let _ = second.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, Some(first.id()));
        assert_eq!(then, Some(second.id()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_exit_watch_fires_when_the_process_dies() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("5")
            .spawn()
            .expect("sleep");
        let w = ExitWatch::open(child.id()).expect("pidfd_open");
        let early = tokio::time::timeout(std::time::Duration::from_millis(200), w.exited()).await;
        assert!(early.is_err(), "fired while the process lives");
        assert!(w.alive());
        let _ = child.kill();
        tokio::time::timeout(std::time::Duration::from_secs(5), w.exited())
            .await
            .expect("no wake-up after the process died");
        assert!(!w.alive());
        let _ = child.wait();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn http_and_tcp_checks_against_a_local_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 256];
                let _ = s.read(&mut b).await;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhi").await;
            }
        });
        http_get(&format!("http://127.0.0.1:{port}/"))
            .await
            .expect("http ok");
        assert!(http_get("http://127.0.0.1:1/").await.is_err());
    }
}
