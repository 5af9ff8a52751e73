//! Resource monitoring (had.toml `[[monitor]]`): each monitor is a task that runs its check
//! every interval and reports pass/fail to the loop; the cluster decides what a failure means.
//! Process, TCP and HTTP checks run in-process, so an idle node forks nothing.

use std::path::Path;
use std::sync::Arc;

use ha_agents::{Resource, RunState};
use ha_config::{Check, Config, MonitorSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::{CheckRule, ClusterInput, GroupId};

/// One check result.
#[derive(Debug)]
pub struct CheckResult {
    /// The group the monitor watches.
    pub group: GroupId,
    /// The monitor's index in had.toml.
    pub monitor: usize,
    /// Whether the check passed.
    pub ok: bool,
    /// How failures are acted on.
    pub rule: CheckRule,
    /// Why it failed (empty when it passed).
    pub detail: String,
}

impl CheckResult {
    /// The cluster input for this result.
    pub fn into_input(self) -> ClusterInput {
        ClusterInput::Check {
            group: self.group,
            monitor: self.monitor,
            ok: self.ok,
            rule: self.rule,
            detail: self.detail,
        }
    }
}

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
    pub resource: Option<Arc<Resource>>,
}

impl Monitor {
    /// The rule the cluster applies to this monitor's failures.
    pub fn rule(&self) -> CheckRule {
        CheckRule {
            failures: self.spec.failures.max(1),
            restarts: self.spec.restarts,
            window: self.spec.window,
            from: self.position,
        }
    }
}

/// Match each monitor to the group holding the resource it names: a resource's raw text,
/// its agent name (`named` for `named`, `apache2` for `apache2::x`), or a group key.
pub fn bind(config: &Config, resources: &[Vec<Arc<Resource>>]) -> Vec<Monitor> {
    let mut out = Vec::new();
    for (index, spec) in config.had.monitors.iter().enumerate() {
        let mut found = None;
        'groups: for (gi, g) in config.haresources.groups.iter().enumerate() {
            for (ri, r) in g.resources.iter().enumerate() {
                if r.raw == spec.resource || r.agent == spec.resource || g.key() == spec.resource {
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

/// Run a monitor forever, sending each result.
pub async fn run(m: Monitor, tx: UnboundedSender<CheckResult>) {
    let mut tick = tokio::time::interval(m.spec.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = tokio::time::timeout(m.spec.timeout, check(&m)).await;
        let (ok, detail) = match r {
            Ok(Ok(())) => (true, String::new()),
            Ok(Err(e)) => (false, e),
            Err(_) => (false, format!("check timed out after {:?}", m.spec.timeout)),
        };
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

async fn check(m: &Monitor) -> Result<(), String> {
    match &m.spec.check {
        Check::Status => match &m.resource {
            Some(r) => match r.status().await {
                Ok(RunState::Running) => Ok(()),
                Ok(RunState::Stopped) => Err(format!("{} is not running", r.name())),
                Err(e) => Err(e.to_string()),
            },
            None => Err("no resource to ask for status".into()),
        },
        Check::Process(name) => {
            let name = name.clone();
            match tokio::task::spawn_blocking(move || process_running(&name)).await {
                Ok(Ok(true)) => Ok(()),
                Ok(Ok(false)) => Err(format!("no process named {}", m.process_name())),
                Ok(Err(e)) => Err(format!("cannot scan /proc: {e}")),
                Err(e) => Err(format!("process check failed: {e}")),
            }
        }
        Check::Tcp { host, port } => tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map(|_| ())
            .map_err(|e| format!("tcp {host}:{port}: {e}")),
        Check::Http { url } => http_get(url).await,
        Check::Command { program, args } => {
            match ha_agents::process::run(program, args, &[], m.spec.timeout).await {
                Ok(o) if o.status.success() => Ok(()),
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

/// Whether a process named `name` runs in our network namespace. Matching on the namespace
/// keeps lab nodes (one PID namespace, one network namespace each) from seeing each other's
/// services; on a real host every process shares it.
fn process_running(name: &str) -> std::io::Result<bool> {
    let my_net = std::fs::read_link("/proc/self/ns/net")?;
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
        // Zombies are dead services whose parent has not reaped them yet.
        if let Ok(stat) = std::fs::read_to_string(dir.join("stat"))
            && let Some(rest) = stat.rsplit_once(") ")
            && rest.1.starts_with('Z')
        {
            continue;
        }
        if std::fs::read_link(dir.join("ns/net")).ok().as_ref() == Some(&my_net) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `pidof NAME` semantics: the program's argv[0] base name, or its kernel name (`comm`, cut at
/// 15 bytes) for daemons that rewrite argv. A script run by an interpreter also carries the
/// script's name in `comm` (`/etc/init.d/named stop` shows as `named`); like `pidof` without
/// `-x`, that does not count, or a stop script would pass for the service it stops.
fn matches_name(dir: &Path, name: &str) -> bool {
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
    let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
        return false;
    };
    let comm = comm.trim_end();
    let comm_matches = comm == name || (comm.len() == 15 && name.starts_with(comm));
    let runs_script_named_so = argv
        .next()
        .map(base)
        .is_some_and(|a1| a1 == name || (comm.len() == 15 && a1.starts_with(comm)));
    comm_matches && !runs_script_named_so
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
        let mut sh = std::process::Command::new(&script).spawn().expect("script");
        let mut bin = std::process::Command::new(&copy)
            .arg("5")
            .spawn()
            .expect("binary");
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
