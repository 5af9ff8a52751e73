//! One cluster node of the lab: its namespace, its files, its `had`, and the
//! faults that can be done to it (crash, power on, cut link).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::netns;

/// The node-side interface name, the same in every node.
pub(crate) const IFACE: &str = "eth0";

/// A cluster node: a network namespace joined to the switch, with its own
/// config, state and run dirs under the lab's scratch dir.
#[derive(Debug)]
pub struct Node {
    pub(crate) name: String,
    pub(crate) netns: String,
    pub(crate) ip: Ipv4Addr,
    pub(crate) prefix_len: u8,
    /// The node's own IPv6 address (labs built with `ipv6`).
    pub(crate) ip6: Option<Ipv6Addr>,
    pub(crate) dir: PathBuf,
    pub(crate) switch_ns: String,
    pub(crate) switch_port: String,
    pub(crate) child: Option<Child>,
}

impl Node {
    /// The node name (its `uname -n` when had runs).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's network namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The node's own address on eth0.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `<run dir>/<node>/ha.d`: ha.cf, haresources, authkeys, resource.d/.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("ha.d")
    }

    /// `<run dir>/<node>/lib`: had's `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("lib")
    }

    /// `<run dir>/<node>/run`: had's `--run-dir`, holding the control socket `had.sock`.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// `<run dir>/<node>/had.log`: had's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("had.log")
    }

    /// The control socket of this node's had.
    pub fn socket_path(&self) -> PathBuf {
        self.run_dir().join("had.sock")
    }

    /// The switch-side veth of this node (in the switch namespace).
    pub fn switch_port(&self) -> &str {
        &self.switch_port
    }

    /// Writes `contents` to `rel` under the config dir with `mode`, creating parent dirs.
    pub fn write_file(&self, rel: &str, contents: &str, mode: u32) -> anyhow::Result<()> {
        let rel_path = Path::new(rel);
        if rel_path.is_absolute() || rel_path.components().any(|c| c.as_os_str() == "..") {
            bail!("{rel}: must be relative to the config dir, without `..`");
        }
        let path = self.config_dir().join(rel_path);
        if let Some(parent) = path.parent() {
            crate::record::mkdir_0755(parent)?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(contents.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        // The mode given to open() is filtered by the umask; authkeys must be exactly 0600.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(())
    }

    /// Run `sh -c script` inside this node: its network namespace plus a private mount and
    /// UTS namespace (so the script may set the hostname and bind-mount over /run, /etc/ha.d
    /// or /var/log without touching the host), stdout and stderr to `out`. Each step execs,
    /// so the child's PID ends up being the daemon the script starts.
    pub(crate) fn spawn_private(
        &self,
        script: &str,
        out: std::fs::File,
    ) -> std::io::Result<std::process::Child> {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns,
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
    }

    /// Starts `had -f` inside the node (its own UTS and mount namespace with a
    /// private tmpfs on /run), output appended to `log_path()`. Returns once
    /// the child has exec'ed had, so `had_pid()` is had itself.
    pub fn start_had(&mut self, had_bin: &Path, extra_args: &[&str]) -> anyhow::Result<()> {
        self.start_had_env(had_bin, extra_args, &[])
    }

    /// [`Node::start_had`] with extra environment variables for had (e.g. NOTIFY_SOCKET, as
    /// systemd sets it).
    pub fn start_had_env(
        &mut self,
        had_bin: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let wrapper = if env.is_empty() {
            String::new()
        } else {
            let vars: Vec<String> = env
                .iter()
                .map(|(k, v)| sh_quote(&format!("{k}={v}")))
                .collect();
            format!("env {}", vars.join(" "))
        };
        self.start_had_wrapped(had_bin, extra_args, "true", &wrapper)
    }

    /// [`Node::start_had`] with a shell `prelude` run first inside the node's namespaces (after
    /// its private /run is mounted) and `wrapper` words that exec had in the end (e.g. a
    /// journald and `systemd-cat`, as a service manager would set up).
    pub fn start_had_wrapped(
        &mut self,
        had_bin: &Path,
        extra_args: &[&str],
        prelude: &str,
        wrapper: &str,
    ) -> anyhow::Result<()> {
        if self.had_pid().is_some() {
            bail!("{}: had is already running", self.name);
        }
        let had_bin = std::fs::canonicalize(had_bin)
            .with_context(|| format!("{}: no such binary", had_bin.display()))?;
        for d in [self.config_dir(), self.state_dir(), self.run_dir()] {
            crate::record::mkdir_0755(&d)?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        writeln!(
            log,
            "=== ha-lab: starting had on {} at unix time {stamp:.3} ===",
            self.name
        )?;
        let mut script = format!(
            "hostname {name} && mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/lock && {prelude} && exec {wrapper} {had} -f --config-dir {cfg} --state-dir {state} --run-dir {run}",
            name = sh_quote(&self.name),
            had = sh_quote(&had_bin.to_string_lossy()),
            cfg = sh_quote(&self.config_dir().to_string_lossy()),
            state = sh_quote(&self.state_dir().to_string_lossy()),
            run = sh_quote(&self.run_dir().to_string_lossy()),
        );
        for a in extra_args {
            script.push(' ');
            script.push_str(&sh_quote(a));
        }
        let child = self.spawn_private(&script, log).context(
            "spawning `ip netns exec ... unshare ... had` (need iproute2 and util-linux)",
        )?;
        let pid = child.id();
        self.child = Some(child);
        // Every step execs, so the child becomes had; wait for that so that
        // exec()/nsenter joins had's mount namespace, not a half-built one.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if runs_binary(pid, &had_bin) {
                return Ok(());
            }
            if let Some(code) = self.reap()? {
                bail!(
                    "{}: had exited at once (status {code}); log {}:\n{}",
                    self.name,
                    self.log_path().display(),
                    tail(&self.log_path(), 20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: had was not exec'ed within 5 s; log:\n{}",
                    self.name,
                    tail(&self.log_path(), 20)
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The PID of had while it runs (it is the lab's direct child).
    pub fn had_pid(&self) -> Option<u32> {
        let child = self.child.as_ref()?;
        let pid = child.id();
        // A child that exited but is not reaped yet is a zombie: report it as gone.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = state
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .to_owned();
        (state != "Z" && state != "X").then_some(pid)
    }

    /// Sends `sig` to had.
    pub fn signal_had(&self, sig: Signal) -> anyhow::Result<()> {
        let pid = self
            .had_pid()
            .with_context(|| format!("{}: had is not running", self.name))?;
        kill(Pid::from_raw(pid as i32), sig).with_context(|| format!("kill -{sig} {pid}"))
    }

    /// Waits up to `timeout` for had to exit: `Some(exit code)` (128 + signal
    /// when killed by a signal), `None` if it still runs. Ok(Some(0)) if no had was started.
    pub fn wait_had_exit(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        if self.child.is_none() {
            return Ok(Some(0));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(code) = self.reap()? {
                return Ok(Some(code));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Reaps had if it exited, forgetting the child; its exit code.
    fn reap(&mut self) -> anyhow::Result<Option<i32>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        match child.try_wait().context("waiting for had")? {
            None => Ok(None),
            Some(status) => {
                self.child = None;
                Ok(Some(exit_code(status)))
            }
        }
    }

    /// Power cut: the switch port goes down, every process in the node is
    /// SIGKILLed (by PID), had is reaped. Addresses (a VIP) stay on eth0.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        self.cut_link()?;
        netns::kill_all_in(&self.netns, Duration::from_secs(5))?;
        if let Some(mut child) = self.child.take() {
            // had was in the namespace, so it is dead or dying: this wait is short.
            if child.try_wait()?.is_none() {
                let _ = child.kill();
                child.wait().context("reaping had")?;
            }
        }
        Ok(())
    }

    /// The reboot after `crash()`: leftover processes killed, every address on
    /// eth0 but the node's own removed (a rebooted machine has no VIP), link up.
    pub fn power_on(&mut self) -> anyhow::Result<()> {
        if self.had_pid().is_some() {
            bail!("{}: power_on while had runs; crash() it first", self.name);
        }
        netns::kill_all_in(&self.netns, Duration::from_secs(5))?;
        self.child = None;
        // Right to left: secondaries before their primary, whose removal would take them
        // along (and make their own removal fail).
        for (addr, len) in self.addrs()?.into_iter().rev() {
            if addr != self.ip {
                netns::ip(&[
                    "-n",
                    &self.netns,
                    "addr",
                    "del",
                    &format!("{addr}/{len}"),
                    "dev",
                    IFACE,
                ])?;
            }
        }
        if !self.addrs()?.iter().any(|(a, _)| *a == self.ip) {
            netns::ip(&[
                "-n",
                &self.netns,
                "addr",
                "add",
                &format!("{}/{}", self.ip, self.prefix_len),
                "brd",
                "+",
                "dev",
                IFACE,
            ])?;
        }
        if self.ip6.is_some() {
            for (a, len) in self.addrs6_with_len()? {
                if Some(a) != self.ip6 {
                    netns::ip(&[
                        "-n",
                        &self.netns,
                        "addr",
                        "del",
                        &format!("{a}/{len}"),
                        "dev",
                        IFACE,
                    ])?;
                }
            }
        }
        netns::ip(&["-n", &self.netns, "link", "set", IFACE, "up"])?;
        self.restore_link()
    }

    /// The global IPv6 addresses on the node's eth0 (labs built with `ipv6`).
    pub fn addrs6(&self) -> anyhow::Result<Vec<Ipv6Addr>> {
        Ok(self
            .addrs6_with_len()?
            .into_iter()
            .map(|(a, _)| a)
            .collect())
    }

    fn addrs6_with_len(&self) -> anyhow::Result<Vec<(Ipv6Addr, u8)>> {
        let out = netns::ip_output(&[
            "-n",
            &self.netns,
            "-6",
            "-o",
            "addr",
            "show",
            "dev",
            IFACE,
            "scope",
            "global",
        ])?;
        Ok(parse_addrs6(&out))
    }

    /// Is the IPv6 address `ip` on this node's eth0?
    pub fn has_addr6(&self, ip: Ipv6Addr) -> bool {
        self.addrs6().is_ok_and(|a| a.contains(&ip))
    }

    /// Sets the switch-side veth down: the node keeps running but hears nothing.
    pub fn cut_link(&self) -> anyhow::Result<()> {
        netns::ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.switch_port,
            "down",
        ])
    }

    /// Sets the switch-side veth up again.
    pub fn restore_link(&self) -> anyhow::Result<()> {
        netns::ip(&[
            "-n",
            &self.switch_ns,
            "link",
            "set",
            &self.switch_port,
            "up",
        ])
    }

    /// The node's own IPv6 address, in labs built with `ipv6`.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6
    }

    /// The IPv4 addresses (with prefix length) configured on the node's eth0.
    pub fn addrs(&self) -> anyhow::Result<Vec<(Ipv4Addr, u8)>> {
        let out = netns::ip_output(&["-n", &self.netns, "-4", "-o", "addr", "show", "dev", IFACE])?;
        Ok(parse_addrs(&out))
    }

    /// Is `ip` configured on any interface in this node's namespace?
    pub fn has_addr(&self, ip: Ipv4Addr) -> bool {
        netns::ip_output(&["-n", &self.netns, "-4", "-o", "addr", "show"])
            .is_ok_and(|out| parse_addrs(&out).iter().any(|(a, _)| *a == ip))
    }

    /// Runs `sh -c cmd` inside the node: in had's network, mount and UTS
    /// namespaces when had runs, else in the node's network namespace only.
    /// A background process started by `cmd` must redirect its output, or
    /// this waits for it.
    pub fn exec(&self, cmd: &str) -> anyhow::Result<Output> {
        let mut c = match self.had_pid() {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                c.args([
                    "-t",
                    &pid.to_string(),
                    "-n",
                    "-m",
                    "-u",
                    "--",
                    "sh",
                    "-c",
                    cmd,
                ]);
                c
            }
            None => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.netns, "sh", "-c", cmd]);
                c
            }
        };
        c.stdin(Stdio::null())
            .output()
            .with_context(|| format!("{}: running {cmd:?}", self.name))
    }

    /// Runs `hactl --socket <run_dir>/had.sock args...` from the host.
    pub fn hactl(&self, hactl_bin: &Path, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(hactl_bin)
            .arg("--socket")
            .arg(self.socket_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", hactl_bin.display()))
    }
}

/// Has `pid` exec'ed `bin -f ...`? Its argv then holds the path followed by
/// `-f` (after the interpreter, when `bin` is a script), which the `sh -c`
/// wrapper's argv never does.
fn runs_binary(pid: u32, bin: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let bin = bin.as_os_str().as_encoded_bytes();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    // `env K=V bin -f` is the step before the exec of bin, not bin itself.
    args.first() != Some(&b"env".as_slice())
        && args.windows(2).any(|w| w[0] == bin && w[1] == b"-f")
}

/// Exit code of a child, 128 + signal number when a signal ended it (as sh reports it).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Addresses from `ip -4 -o addr show` lines (`2: eth0 inet 198.18.5.11/24 brd ...`).
pub(crate) fn parse_addrs(out: &str) -> Vec<(Ipv4Addr, u8)> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            let (addr, len) = words.next()?.split_once('/')?;
            Some((addr.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// `(address, prefix length)` of each `inet6` line of `ip -6 -o addr show`.
pub(crate) fn parse_addrs6(out: &str) -> Vec<(Ipv6Addr, u8)> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet6")?;
            let (addr, len) = words.next()?.split_once('/')?;
            Some((addr.parse().ok()?, len.parse().ok()?))
        })
        .collect()
}

/// Quotes `s` for sh: inside single quotes, with `'` written as `'\''`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The last `n` lines of a file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let out = "2: eth0    inet 198.18.5.11/24 brd 198.18.5.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                   2: eth0    inet 198.18.5.101/24 brd 198.18.5.255 scope global secondary eth0\\       valid_lft forever\n";
        assert_eq!(
            parse_addrs(out),
            vec![
                (Ipv4Addr::new(198, 18, 5, 11), 24),
                (Ipv4Addr::new(198, 18, 5, 101), 24)
            ]
        );
        assert!(parse_addrs("").is_empty());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a b"), "'a b'");
        let out = Command::new("sh")
            .args(["-c", &format!("printf %s {}", sh_quote("it's $x"))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $x");
    }
}
