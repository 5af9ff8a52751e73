//! Keepalived 2.x in a lab node, the reference VRRP peer `just bench` measures
//! had against: a config renderer (one VRRP instance on the node's eth0,
//! unicast to the peer, one VIP, an optional `vrrp_script` health check) and
//! a launcher that runs `keepalived --dont-fork` inside the node, in its own
//! mount and UTS namespace with a private /run, like `Node::start_had`.
//!
//! Also here: [`StaticWeb`], a busybox httpd on 0.0.0.0 answering the node
//! name, the always-running web service a keepalived cluster fronts.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::netns;
use crate::node::{Node, sh_quote, tail};

/// Where Debian installs keepalived.
pub const KEEPALIVED_BIN: &str = "/usr/sbin/keepalived";

/// The `vrrp_script` health check of a [`KeepalivedConf`].
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpCheck {
    /// The command line keepalived runs (it forks for every check).
    pub script: String,
    /// Seconds between checks (keepalived's minimum is 1).
    pub interval_secs: u32,
    /// Failures before the check counts as down.
    pub fall: u32,
    /// Successes before it counts as up again.
    pub rise: u32,
    /// Added to the priority while the check is down (negative).
    pub weight: i32,
}

impl VrrpCheck {
    /// The reference check: fetch `/` from the local web server every second,
    /// one failure lowers the priority by 20 (keepalived-2.2.7-measured.md).
    pub fn http_local(port: u16) -> VrrpCheck {
        VrrpCheck {
            // curl, as in the reference; this machine's busybox wget segfaults.
            script: format!("/usr/bin/curl -s -o /dev/null -m 1 http://127.0.0.1:{port}/"),
            interval_secs: 1,
            fall: 1,
            rise: 1,
            weight: -20,
        }
    }
}

/// One node's keepalived.conf: a single VRRP instance.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepalivedConf {
    /// `router_id` in global_defs (the node name).
    pub router_id: String,
    /// Interface carrying VRRP and the VIP.
    pub iface: String,
    /// This node's address (unicast source).
    pub src: Ipv4Addr,
    /// The peer's address (unicast destination).
    pub peer: Ipv4Addr,
    /// The virtual address.
    pub vip: Ipv4Addr,
    /// Its prefix length.
    pub vip_prefix: u8,
    /// VRRP priority (1..=254); the higher one is master.
    pub priority: u8,
    /// Start as MASTER (the preferred node) or BACKUP.
    pub master: bool,
    /// Advertisement interval; below 1 s VRRPv3 is used (v2 only has whole seconds).
    pub advert: Duration,
    /// The virtual router id (1..=255), the same on both nodes.
    pub vrid: u8,
    /// Optional health check tracked by the instance.
    pub check: Option<VrrpCheck>,
}

impl KeepalivedConf {
    /// VRRPv2 when the advert interval is whole seconds, else v3.
    pub fn vrrp_version(&self) -> u8 {
        if self.advert.subsec_nanos() == 0 && self.advert >= Duration::from_secs(1) {
            2
        } else {
            3
        }
    }

    /// The keepalived.conf text.
    pub fn render(&self) -> String {
        let version = self.vrrp_version();
        let mut s = String::new();
        let _ = writeln!(s, "# written by ha-lab for {}", self.router_id);
        let _ = writeln!(s, "global_defs {{");
        let _ = writeln!(s, "    router_id {}", self.router_id);
        let _ = writeln!(s, "    vrrp_version {version}");
        // Root runs the check; saying so keeps keepalived from looking for a
        // `keepalived_script` user. Script security makes keepalived check
        // that no one but root can replace the program (here /usr/bin/curl);
        // without it `--config-test` reports a security violation.
        let _ = writeln!(s, "    script_user root");
        let _ = writeln!(s, "    enable_script_security");
        let _ = writeln!(s, "}}");
        if let Some(c) = &self.check {
            let _ = writeln!(s, "vrrp_script web_check {{");
            let _ = writeln!(s, "    script \"{}\"", c.script);
            let _ = writeln!(s, "    interval {}", c.interval_secs.max(1));
            let _ = writeln!(s, "    fall {}", c.fall.max(1));
            let _ = writeln!(s, "    rise {}", c.rise.max(1));
            let _ = writeln!(s, "    weight {}", c.weight);
            let _ = writeln!(s, "}}");
        }
        let _ = writeln!(s, "vrrp_instance VI_1 {{");
        let _ = writeln!(
            s,
            "    state {}",
            if self.master { "MASTER" } else { "BACKUP" }
        );
        let _ = writeln!(s, "    interface {}", self.iface);
        let _ = writeln!(s, "    virtual_router_id {}", self.vrid);
        let _ = writeln!(s, "    priority {}", self.priority);
        let _ = writeln!(s, "    advert_int {}", fmt_secs(self.advert));
        if version == 2 {
            // VRRPv3 has no authentication; v2 gets the reference's PASS.
            let _ = writeln!(
                s,
                "    authentication {{\n        auth_type PASS\n        auth_pass secret\n    }}"
            );
        }
        let _ = writeln!(s, "    unicast_src_ip {}", self.src);
        let _ = writeln!(s, "    unicast_peer {{\n        {}\n    }}", self.peer);
        let _ = writeln!(
            s,
            "    virtual_ipaddress {{\n        {}/{} dev {}\n    }}",
            self.vip, self.vip_prefix, self.iface
        );
        if self.check.is_some() {
            let _ = writeln!(s, "    track_script {{\n        web_check\n    }}");
        }
        let _ = writeln!(s, "}}");
        s
    }
}

/// Seconds as keepalived reads them: `1`, `0.1`, `0.05`.
fn fmt_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        return d.as_secs().to_string();
    }
    let s = format!("{:.6}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A keepalived running inside a lab node.
#[derive(Debug)]
pub struct Keepalived {
    node: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Keepalived {
    /// Writes `conf` to `<node dir>/keepalived.conf` and starts
    /// `keepalived --dont-fork --vrrp` inside the node with its own UTS
    /// namespace (hostname = node name) and a private tmpfs on /run; output
    /// goes to `<node dir>/keepalived.log`. Returns once keepalived is exec'ed.
    pub fn start(node: &Node, conf: &KeepalivedConf) -> anyhow::Result<Keepalived> {
        Self::start_text(node, &conf.render())
    }

    /// Like [`Keepalived::start`] with a keepalived.conf written by the caller (several
    /// instances, many addresses: what [`KeepalivedConf`] does not render).
    pub fn start_text(node: &Node, conf: &str) -> anyhow::Result<Keepalived> {
        let dir = node.config_dir().parent().map(Path::to_path_buf);
        let dir = dir.context("node config dir has no parent")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf_path = dir.join("keepalived.conf");
        std::fs::write(&conf_path, conf)
            .with_context(|| format!("writing {}", conf_path.display()))?;
        let log_path = dir.join("keepalived.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        writeln!(
            log,
            "=== ha-lab: starting keepalived on {} ===",
            node.name()
        )?;
        let script = format!(
            "hostname {name} && mount -t tmpfs -o mode=0755 tmpfs /run && exec {bin} --dont-fork --vrrp --log-console --log-detail --no-syslog --use-file {conf} --pid /run/keepalived.pid --vrrp_pid /run/keepalived_vrrp.pid",
            name = sh_quote(node.name()),
            bin = KEEPALIVED_BIN,
            conf = sh_quote(&conf_path.to_string_lossy()),
        );
        let child = node
            .spawn_private(&script, log)
            .context("spawning `ip netns exec ... keepalived` (is keepalived installed?)")?;
        let mut k = Keepalived {
            node: node.name().to_owned(),
            child: Some(child),
            log: log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(pid) = k.pid()
                && exe_is(pid, Path::new(KEEPALIVED_BIN))
            {
                return Ok(k);
            }
            if let Some(code) = k.try_reap()? {
                bail!(
                    "{}: keepalived exited at once (status {code}); log:\n{}",
                    k.node,
                    tail(&k.log, 20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: keepalived was not exec'ed within 5 s; log:\n{}",
                    k.node,
                    tail(&k.log, 20)
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The parent keepalived's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        let pid = self.child.as_ref()?.id();
        alive(pid).then_some(pid)
    }

    /// The log file (keepalived's console output).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends `sig` to the parent keepalived.
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("{}: keepalived is not running", self.node))?;
        kill(Pid::from_raw(pid as i32), sig).with_context(|| format!("kill -{sig} {pid}"))
    }

    /// Waits up to `timeout` for keepalived to exit; true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.child.is_none() || self.try_reap()?.is_some() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn try_reap(&mut self) -> anyhow::Result<Option<i32>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        match child.try_wait().context("waiting for keepalived")? {
            None => Ok(None),
            Some(st) => {
                self.child = None;
                Ok(Some(st.code().unwrap_or(-1)))
            }
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Only our own child, by PID; the lab's teardown kills the VRRP child.
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// A busybox httpd on 0.0.0.0:port inside a node's network namespace,
/// serving the node name from `<node dir>/www`. Killed by PID on drop.
#[derive(Debug)]
pub struct StaticWeb {
    child: Option<Child>,
    netns: String,
    port: u16,
}

impl StaticWeb {
    /// Starts the server and waits (up to 5 s) until it listens.
    pub fn start(node: &Node, port: u16) -> anyhow::Result<StaticWeb> {
        let dir = node
            .config_dir()
            .parent()
            .map(|d| d.join("www"))
            .context("node config dir has no parent")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("index.html"), format!("{}\n", node.name()))
            .context("writing index.html")?;
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                node.netns(),
                "busybox",
                "httpd",
                "-f",
                "-p",
            ])
            .arg(format!("0.0.0.0:{port}"))
            .arg("-h")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning busybox httpd")?;
        let mut web = StaticWeb {
            child: Some(child),
            netns: node.netns().to_owned(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !web.listening() {
            if web.pid().is_none() {
                web.child = None;
                bail!("busybox httpd in {} exited at start", web.netns);
            }
            if Instant::now() > deadline {
                bail!("busybox httpd in {} does not listen", web.netns);
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(web)
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        let pid = self.child.as_ref()?.id();
        alive(pid).then_some(pid)
    }

    /// SIGKILLs the server (the "service dies" fault) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if child.try_wait()?.is_none() {
                child.kill().context("killing busybox httpd")?;
            }
            child.wait().context("reaping busybox httpd")?;
        }
        Ok(())
    }

    fn listening(&self) -> bool {
        let port = self.port;
        netns::in_netns(&self.netns, || {
            Ok(std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Duration::from_millis(200),
            )
            .is_ok())
        })
        .unwrap_or(false)
    }
}

impl Drop for StaticWeb {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Does `pid` run and is it not a zombie?
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|st| st != "Z" && st != "X")
}

/// Is `pid`'s executable `bin`?
fn exe_is(pid: u32, bin: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == bin)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conf(advert: Duration) -> KeepalivedConf {
        KeepalivedConf {
            router_id: "node1".into(),
            iface: "eth0".into(),
            src: Ipv4Addr::new(198, 18, 3, 11),
            peer: Ipv4Addr::new(198, 18, 3, 12),
            vip: Ipv4Addr::new(198, 18, 3, 100),
            vip_prefix: 24,
            priority: 150,
            master: true,
            advert,
            vrid: 51,
            check: Some(VrrpCheck::http_local(80)),
        }
    }

    #[test]
    fn one_second_adverts_use_v2_with_auth() {
        let c = conf(Duration::from_secs(1));
        assert_eq!(c.vrrp_version(), 2);
        let s = c.render();
        assert!(s.contains("vrrp_version 2\n"), "{s}");
        assert!(s.contains("advert_int 1\n"), "{s}");
        assert!(s.contains("auth_type PASS"), "{s}");
        assert!(s.contains("state MASTER\n"));
        assert!(s.contains("unicast_peer {\n        198.18.3.12\n"));
        assert!(s.contains("198.18.3.100/24 dev eth0"));
        assert!(s.contains("track_script {\n        web_check"));
        assert!(s.contains("weight -20\n"));
    }

    #[test]
    fn fast_adverts_use_v3_without_auth() {
        let mut c = conf(Duration::from_millis(100));
        c.check = None;
        c.master = false;
        assert_eq!(c.vrrp_version(), 3);
        let s = c.render();
        assert!(s.contains("advert_int 0.1\n"), "{s}");
        assert!(!s.contains("auth_type"));
        assert!(!s.contains("track_script"));
        assert!(!s.contains("vrrp_script"));
        assert!(s.contains("state BACKUP\n"));
        // Braces balance, or keepalived would read a different config.
        assert_eq!(s.matches('{').count(), s.matches('}').count());
    }

    #[test]
    fn seconds_format() {
        assert_eq!(fmt_secs(Duration::from_secs(2)), "2");
        assert_eq!(fmt_secs(Duration::from_millis(50)), "0.05");
        assert_eq!(fmt_secs(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn keepalived_accepts_the_config() {
        // `keepalived --config-test` parses without starting anything.
        if !Path::new(KEEPALIVED_BIN).exists() {
            eprintln!("SKIPPED: {KEEPALIVED_BIN} not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ha-lab-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for advert in [Duration::from_secs(1), Duration::from_millis(100)] {
            let path = dir.join("k.conf");
            std::fs::write(&path, conf(advert).render()).unwrap();
            let out = Command::new(KEEPALIVED_BIN)
                .arg(format!("--config-test={}", dir.join("t.log").display()))
                .arg("--use-file")
                .arg(&path)
                .output()
                .unwrap();
            let log = std::fs::read_to_string(dir.join("t.log")).unwrap_or_default();
            assert!(
                out.status.success(),
                "{advert:?}: {}{}{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
