//! The real Linux-HA Heartbeat 3.0.6 (Debian's package) as a lab node, for interop tests:
//! start it the way a host would (its own /etc/ha.d, /run, /var/lib/heartbeat, /var/log),
//! run `cl_status`, `hb_standby` and `hb_takeover` inside it, stop it or crash it.
//!
//! The node's daemon slot (`Node::child`) holds the `tini -s` that runs Heartbeat, so the
//! node's `exec`, `crash`, `power_on` and `wait_had_exit` work for a Heartbeat node too.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::netns;
use crate::node::{Node, sh_quote, tail};

/// Heartbeat's master control process (`heartbeat -f` keeps it in the foreground).
pub const HEARTBEAT_BIN: &str = "/usr/libexec/heartbeat/heartbeat";
/// The package's configuration dir: harc, rc.d/, resource.d/, shellfuncs.
const PACKAGE_HA_D: &str = "/etc/ha.d";
/// The package's state dir skeleton (api/, ccm/, ... with their owners).
const PACKAGE_VAR_LIB: &str = "/var/lib/heartbeat";
/// The administrator's scripts.
const HB_STANDBY: &str = "/usr/share/heartbeat/hb_standby";
const HB_TAKEOVER: &str = "/usr/share/heartbeat/hb_takeover";
/// The init process that reaps Heartbeat's orphans at once (see the reference lab notes:
/// the sandbox's own PID 1 reaps only every ~2 s, which slows every resource stop).
const TINI: &str = "/usr/bin/tini";

/// Is Debian's heartbeat package installed here?
pub fn heartbeat_installed() -> bool {
    Path::new(HEARTBEAT_BIN).is_file() && Path::new(PACKAGE_HA_D).join("harc").is_file()
}

impl Node {
    /// `<node dir>/hb-run`: bound on /run inside a Heartbeat node (heartbeat.pid, API sockets).
    pub fn heartbeat_run_dir(&self) -> PathBuf {
        self.dir.join("hb-run")
    }

    /// `<node dir>/hb-lib`: bound on /var/lib/heartbeat (hb_uuid, hb_generation, fifo).
    pub fn heartbeat_state_dir(&self) -> PathBuf {
        self.dir.join("hb-lib")
    }

    /// `<node dir>/hb-log`: bound on /var/log (ha-log and ha-debug when ha.cf names them).
    pub fn heartbeat_log_dir(&self) -> PathBuf {
        self.dir.join("hb-log")
    }

    /// `hb-log/ha-log`: Heartbeat's log when ha.cf says `logfile /var/log/ha-log`.
    pub fn heartbeat_log_path(&self) -> PathBuf {
        self.heartbeat_log_dir().join("ha-log")
    }

    /// Copies the package's /etc/ha.d (harc, rc.d/, resource.d/, shellfuncs) into the
    /// node's config dir, keeping files already written there (ha.cf, authkeys, scripts).
    pub fn install_heartbeat_files(&self) -> anyhow::Result<()> {
        let cfg = self.config_dir();
        std::fs::create_dir_all(&cfg).with_context(|| format!("creating {}", cfg.display()))?;
        let src = format!("{PACKAGE_HA_D}/.");
        run_ok(Command::new("cp").args(["-a", "-n", &src]).arg(&cfg))
            .context("copying the package's /etc/ha.d")
    }

    /// Starts Debian's Heartbeat (`heartbeat -f` under `tini -s`) in the node: its own UTS
    /// namespace (hostname = node name) and mount namespace in which the config dir is
    /// /etc/ha.d, a fresh `hb-run` is /run, `hb-lib` is /var/lib/heartbeat and `hb-log` is
    /// /var/log. Returns once the master control process wrote its pid file.
    pub fn start_heartbeat(&mut self) -> anyhow::Result<()> {
        if !heartbeat_installed() {
            bail!("Debian's heartbeat package is not installed (just setup installs it)");
        }
        if self.had_pid().is_some() {
            bail!("{}: a daemon already runs in this node", self.name);
        }
        self.install_heartbeat_files()?;
        self.prepare_heartbeat_dirs()?;
        let out_path = self.heartbeat_log_dir().join("start.out");
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out_path)
            .with_context(|| format!("opening {}", out_path.display()))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        writeln!(
            out,
            "=== ha-lab: starting heartbeat on {} at unix time {stamp:.3} ===",
            self.name
        )?;
        let script = format!(
            "hostname {name} && mount --bind {cfg} /etc/ha.d && mount --bind {run} /run \
             && mount --bind {lib} /var/lib/heartbeat && mount --bind {log} /var/log \
             && exec {TINI} -s -- {HEARTBEAT_BIN} -f",
            name = sh_quote(&self.name),
            cfg = sh_quote(&self.config_dir().to_string_lossy()),
            run = sh_quote(&self.heartbeat_run_dir().to_string_lossy()),
            lib = sh_quote(&self.heartbeat_state_dir().to_string_lossy()),
            log = sh_quote(&self.heartbeat_log_dir().to_string_lossy()),
        );
        let child = self
            .spawn_private(&script, out)
            .context("spawning `ip netns exec ... unshare ... tini -s -- heartbeat -f`")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.heartbeat_pid().is_some() {
                return Ok(());
            }
            if let Some(code) = self.wait_had_exit(Duration::ZERO)? {
                bail!(
                    "{}: heartbeat exited at once (status {code}); start.out:\n{}\nha-log:\n{}",
                    self.name,
                    tail(&out_path, 20),
                    tail(&self.heartbeat_log_path(), 30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: heartbeat wrote no pid file within 10 s; ha-log:\n{}",
                    self.name,
                    tail(&self.heartbeat_log_path(), 30)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fresh /run (as after a boot) with the dirs the package's tmpfiles.d would make, and
    /// a /var/lib/heartbeat kept across restarts (its hb_generation must grow).
    fn prepare_heartbeat_dirs(&self) -> anyhow::Result<()> {
        let run = self.heartbeat_run_dir();
        if run.exists() {
            std::fs::remove_dir_all(&run).with_context(|| format!("clearing {}", run.display()))?;
        }
        for d in [
            "heartbeat/ccm",
            "heartbeat/crm",
            "heartbeat/dopd",
            "crm",
            "resource-agents",
            "lock",
        ] {
            let p = run.join(d);
            std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
        let hb = run.join("heartbeat");
        let crm = run.join("crm");
        run_ok(
            Command::new("chown")
                .args(["-R", "hacluster:haclient"])
                .arg(&hb)
                .arg(&crm),
        )
        .context("chown hacluster:haclient (is the heartbeat package installed?)")?;
        for d in [
            hb.clone(),
            hb.join("ccm"),
            hb.join("crm"),
            hb.join("dopd"),
            crm,
        ] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750))
                .with_context(|| format!("chmod {}", d.display()))?;
        }
        let lib = self.heartbeat_state_dir();
        if !lib.exists() {
            run_ok(Command::new("cp").args(["-a", PACKAGE_VAR_LIB]).arg(&lib))
                .context("copying /var/lib/heartbeat")?;
        }
        let log = self.heartbeat_log_dir();
        std::fs::create_dir_all(&log).with_context(|| format!("creating {}", log.display()))?;
        Ok(())
    }

    /// The PID of Heartbeat's master control process, while it runs in this node.
    pub fn heartbeat_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.heartbeat_run_dir().join("heartbeat.pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        // The pid file may be left over from a crash: the PID must be a heartbeat in our netns.
        let ns = std::fs::metadata(netns::netns_path(&self.netns)).ok()?;
        let its = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
        if ns.dev() != its.dev() || ns.ino() != its.ino() {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains("heartbeat")
            .then_some(pid)
    }

    /// Runs `argv` inside the Heartbeat node (nsenter into its network, mount and UTS
    /// namespaces), so that it sees the node's /etc/ha.d, /run and /var/lib/heartbeat.
    pub fn heartbeat_exec(&self, argv: &[&str]) -> anyhow::Result<Output> {
        let pid = self
            .heartbeat_pid()
            .with_context(|| format!("{}: heartbeat is not running", self.name))?;
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "-m", "-u", "--"])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("{}: running {argv:?}", self.name))
    }

    /// `cl_status ARGS...` in the node; its trimmed stdout when it exits 0.
    pub fn cl_status(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut argv = vec!["cl_status"];
        argv.extend_from_slice(args);
        let out = self.heartbeat_exec(&argv)?;
        if !out.status.success() {
            bail!(
                "cl_status {} exited {:?}: {}{}",
                args.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `hb_standby WHICH` (all, local, foreign or failback) in the node.
    pub fn hb_standby(&self, which: &str) -> anyhow::Result<()> {
        run_output_ok(self.heartbeat_exec(&[HB_STANDBY, which])?, "hb_standby")
    }

    /// `hb_takeover WHICH` (all, local, foreign or failback) in the node.
    pub fn hb_takeover(&self, which: &str) -> anyhow::Result<()> {
        run_output_ok(self.heartbeat_exec(&[HB_TAKEOVER, which])?, "hb_takeover")
    }

    /// Graceful stop (what `heartbeat -k` does): SIGTERM to the master control process, which
    /// gives up its resources, sends `shutdone` and exits. Waits up to `timeout` for it;
    /// `Some(exit code)` of the node's tini, `None` if it still runs.
    pub fn stop_heartbeat(&mut self, timeout: Duration) -> anyhow::Result<Option<i32>> {
        let pid = self
            .heartbeat_pid()
            .with_context(|| format!("{}: heartbeat is not running", self.name))?;
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM)
            .with_context(|| format!("kill -TERM {pid}"))?;
        self.wait_had_exit(timeout)
    }
}

fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    run_output_ok(out, &format!("{cmd:?}"))
}

fn run_output_ok(out: Output, what: &str) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{what} exited {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
