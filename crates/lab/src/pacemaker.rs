//! Corosync 3 + Pacemaker 2 (Debian's packages) in a lab node, without systemd: the target
//! of `hactl export pacemaker`, run from the files it writes.
//!
//! A node is an anchor process (`sleep`) holding a private mount and UTS namespace inside the
//! node's network namespace, where `/run`, `/var/lib/pacemaker`, `/var/lib/corosync`,
//! `/var/log`, `/etc/corosync` and `/etc/init.d` are the node's own directories and
//! `/dev/shm` a private tmpfs (libqb's ring buffers). `corosync -f` and `pacemakerd` run in
//! those namespaces under `tini -s`, standing in for systemd as the reaper of their children
//! (resource agents, daemons started by init scripts). libqb's IPC sockets are abstract, so
//! the network namespace keeps nodes apart; no PID namespace is needed.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::unistd::{Group, User, chown};

use crate::netns;
use crate::node::{Node, sh_quote, tail};

/// Where Debian installs corosync.
pub const COROSYNC_BIN: &str = "/usr/sbin/corosync";
/// Where Debian installs pacemakerd.
pub const PACEMAKERD_BIN: &str = "/usr/sbin/pacemakerd";
/// The subreaper both daemons run under.
const TINI_BIN: &str = "/usr/bin/tini";

/// True when corosync, pacemaker, its CLI tools and tini are installed.
pub fn pacemaker_installed() -> bool {
    [
        COROSYNC_BIN,
        PACEMAKERD_BIN,
        "/usr/sbin/crm_mon",
        "/usr/sbin/corosync-keygen",
        TINI_BIN,
        "/usr/lib/ocf/resource.d/heartbeat/IPaddr2",
    ]
    .iter()
    .all(|p| Path::new(p).is_file())
}

/// The node's corosync log (`/var/log/corosync/corosync.log` inside the node), kept
/// across its crashes.
pub fn corosync_log(node: &Node) -> PathBuf {
    node.dir.join("pcmk/log/corosync/corosync.log")
}

/// The node's Pacemaker log, kept across its crashes.
pub fn pacemaker_log(node: &Node) -> PathBuf {
    node.dir.join("pcmk/log/pacemaker/pacemaker.log")
}

/// What one node runs with (the exported files).
#[derive(Debug, Clone, Copy)]
pub struct PacemakerFiles<'a> {
    /// `/etc/corosync/corosync.conf`.
    pub corosync_conf: &'a str,
    /// `/etc/corosync/authkey` (the same on every node).
    pub authkey: &'a [u8],
    /// The initial CIB, `/var/lib/pacemaker/cib/cib.xml`.
    pub cib: &'a str,
    /// Scripts for `lsb:` resources: (name, text) installed in the node's `/etc/init.d`.
    pub init_scripts: &'a [(&'a str, &'a str)],
}

/// Corosync and Pacemaker running in one lab node.
#[derive(Debug)]
pub struct PacemakerNode {
    node: String,
    netns: String,
    dir: PathBuf,
    anchor: Option<Child>,
    daemons: Vec<Child>,
}

impl PacemakerNode {
    /// Prepares the node's directories from `files` and starts corosync, then pacemakerd;
    /// returns once pacemaker-controld runs (the cluster forms afterwards).
    pub fn start(node: &Node, files: &PacemakerFiles<'_>) -> anyhow::Result<PacemakerNode> {
        let dir = node.dir.join("pcmk");
        prepare(&dir, node.name(), files)?;
        Self::launch(node, dir)
    }

    /// Starts the node again after a crash and `Node::power_on`, as a reboot does: `/run`
    /// is fresh, the CIB and everything else on "disk" are kept.
    pub fn restart(node: &Node) -> anyhow::Result<PacemakerNode> {
        let dir = node.dir.join("pcmk");
        if !dir.join("varlib-pcmk").is_dir() {
            bail!("{}: was never started", node.name());
        }
        let run = dir.join("run");
        std::fs::remove_dir_all(&run).with_context(|| format!("removing {}", run.display()))?;
        make_run(&dir)?;
        Self::launch(node, dir)
    }

    fn launch(node: &Node, dir: PathBuf) -> anyhow::Result<PacemakerNode> {
        let mut p = PacemakerNode {
            node: node.name().to_owned(),
            netns: node.netns().to_owned(),
            dir,
            anchor: None,
            daemons: Vec::new(),
        };
        let d = |s: &str| sh_quote(&p.dir.join(s).to_string_lossy());
        let script = format!(
            "hostname {name} && mount --bind {run} /run && mount --bind {lib} /var/lib/pacemaker \
             && mount --bind {coro} /var/lib/corosync && mount --bind {log} /var/log \
             && mount --bind {etc} /etc/corosync && mount --bind {initd} /etc/init.d \
             && mount -t tmpfs -o mode=1777,size=256m pcmk-shm /dev/shm && exec sleep 86400",
            name = sh_quote(node.name()),
            run = d("run"),
            lib = d("varlib-pcmk"),
            coro = d("varlib-coro"),
            log = d("log"),
            etc = d("etc-corosync"),
            initd = d("initd"),
        );
        let anchor = node
            .spawn_private(&script, p.out("anchor.out")?)
            .context("spawning the node's namespace anchor")?;
        let apid = anchor.id();
        p.anchor = Some(anchor);
        p.wait_for("the namespace anchor", Duration::from_secs(5), |_| {
            comm(apid).as_deref() == Some("sleep")
        })?;
        let corosync = p.spawn_in(
            &[TINI_BIN, "-s", "--", COROSYNC_BIN, "-f"],
            &[],
            "corosync.out",
        )?;
        p.daemons.push(corosync);
        p.wait_for("corosync", Duration::from_secs(10), |p| {
            p.exec("corosync-cfgtool -s")
                .is_ok_and(|o| o.status.success())
        })?;
        let env = [
            ("PCMK_logfile", "/var/log/pacemaker/pacemaker.log"),
            ("PCMK_logfacility", "none"),
            ("HA_LOGFACILITY", "none"),
        ];
        let pacemakerd = p.spawn_in(
            &[TINI_BIN, "-s", "--", PACEMAKERD_BIN],
            &env,
            "pacemakerd.out",
        )?;
        p.daemons.push(pacemakerd);
        let ns = p.netns.clone();
        p.wait_for("pacemaker-controld", Duration::from_secs(10), |_| {
            netns::netns_pids(&ns)
                .into_iter()
                .any(|pid| comm(pid as u32).as_deref() == Some("pacemaker-contr"))
        })?;
        Ok(p)
    }

    /// Runs `sh -c cmd` in the node's namespaces (as an admin on that machine would).
    pub fn exec(&self, cmd: &str) -> anyhow::Result<Output> {
        let pid = self
            .anchor_pid()
            .with_context(|| format!("{}: not running", self.node))?;
        Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-n",
                "-m",
                "-u",
                "--",
                "sh",
                "-c",
                cmd,
            ])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("{}: running {cmd:?}", self.node))
    }

    /// The anchor's PID while it runs.
    pub fn anchor_pid(&self) -> Option<u32> {
        let pid = self.anchor.as_ref()?.id();
        (comm(pid).as_deref() == Some("sleep")).then_some(pid)
    }

    /// After `Node::crash` killed every process of the node: reap our children.
    pub fn reap_crashed(&mut self) {
        for mut c in self.daemons.drain(..).chain(self.anchor.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of corosync's and pacemaker's logs, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        for f in [
            "log/corosync/corosync.log",
            "log/pacemaker/pacemaker.log",
            "corosync.out",
            "pacemakerd.out",
            "anchor.out",
        ] {
            let p = self.dir.join(f);
            if p.exists() {
                s.push_str(&format!("--- {} {} ---\n{}\n", self.node, f, tail(&p, n)));
            }
        }
        s
    }

    fn out(&self, name: &str) -> anyhow::Result<std::fs::File> {
        let p = self.dir.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("opening {}", p.display()))
    }

    fn spawn_in(&self, argv: &[&str], env: &[(&str, &str)], out: &str) -> anyhow::Result<Child> {
        let pid = self
            .anchor_pid()
            .with_context(|| format!("{}: anchor gone", self.node))?;
        let log = self.out(out)?;
        // nsenter without -p execs the program itself: the child's PID is tini's.
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "-m", "-u", "--"])
            .args(argv)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("{}: spawning {argv:?}", self.node))
    }

    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if ready(self) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{}: {what} not ready within {timeout:?}\n{}",
            self.node,
            self.log_tail(20)
        )
    }
}

impl Drop for PacemakerNode {
    fn drop(&mut self) {
        // Only our own children, by PID; the lab's teardown kills the rest of the netns.
        self.reap_crashed();
    }
}

/// The command name of `pid` (`/proc/PID/comm`), if it runs.
fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// A fresh node: the package's state dirs copied (with their owners), the files written.
fn prepare(dir: &Path, node: &str, files: &PacemakerFiles<'_>) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for sub in [
        "varlib-coro",
        "log/corosync",
        "log/pacemaker",
        "etc-corosync",
        "initd",
    ] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}/{sub}", dir.display()))?;
    }
    let copy = Command::new("cp")
        .args(["-a", "/var/lib/pacemaker"])
        .arg(dir.join("varlib-pcmk"))
        .output()
        .context("cp -a /var/lib/pacemaker")?;
    if !copy.status.success() {
        bail!(
            "{node}: cp -a /var/lib/pacemaker: {}",
            String::from_utf8_lossy(&copy.stderr).trim()
        );
    }
    let cib = dir.join("varlib-pcmk/cib/cib.xml");
    write(&cib, files.cib.as_bytes(), 0o600)?;
    for (p, mode) in [(cib, 0o600), (dir.join("log/pacemaker"), 0o770)] {
        hacluster_owns(&p, mode)?;
    }
    make_run(dir)?;
    let etc = dir.join("etc-corosync");
    write(
        &etc.join("corosync.conf"),
        files.corosync_conf.as_bytes(),
        0o644,
    )?;
    write(&etc.join("authkey"), files.authkey, 0o400)?;
    if Path::new("/etc/corosync/uidgid.d").is_dir() {
        let _ = Command::new("cp")
            .args(["-a", "/etc/corosync/uidgid.d"])
            .arg(&etc)
            .status();
    }
    for (name, text) in files.init_scripts {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("{name:?} is not a script name");
        }
        write(&dir.join("initd").join(name), text.as_bytes(), 0o755)?;
    }
    Ok(())
}

/// A fresh `/run` for the node, as after a boot.
fn make_run(dir: &Path) -> anyhow::Result<()> {
    for sub in ["run/crm", "run/resource-agents", "run/lock"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}/{sub}", dir.display()))?;
    }
    hacluster_owns(&dir.join("run/crm"), 0o750)
}

/// `chown hacluster:haclient` and `chmod mode`, as the package sets them.
fn hacluster_owns(p: &Path, mode: u32) -> anyhow::Result<()> {
    let uid = User::from_name("hacluster")?
        .context("no `hacluster` user: is pacemaker installed?")?
        .uid;
    let gid = Group::from_name("haclient")?
        .context("no `haclient` group: is pacemaker installed?")?
        .gid;
    chown(p, Some(uid), Some(gid)).with_context(|| format!("chown {}", p.display()))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}
