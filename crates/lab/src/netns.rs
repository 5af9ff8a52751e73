//! Namespace plumbing: running `ip`, finding the processes inside a network
//! namespace and killing them by PID, and running code inside a namespace.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Where `ip netns add` pins a namespace.
pub(crate) fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Does the named network namespace exist?
pub(crate) fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Runs `ip ARGS...` and fails with its stderr when it fails.
pub(crate) fn ip(args: &[&str]) -> anyhow::Result<()> {
    ip_output(args).map(|_| ())
}

/// Runs `ip ARGS...` and returns its stdout.
pub(crate) fn ip_output(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// PIDs of the processes living in the named network namespace (what
/// `ip netns pids` prints), never including this process.
///
/// Done in-process because it runs in loops while killing, where a fork per
/// round would only slow the loop down.
pub fn netns_pids(name: &str) -> Vec<i32> {
    let Ok(target) = std::fs::metadata(netns_path(name)) else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Zombies have no namespaces any more, so this also skips them.
        if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            && meta.dev() == target.dev()
            && meta.ino() == target.ino()
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// SIGKILLs every process in the namespace, by PID, until none is left.
pub(crate) fn kill_all_in(name: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let pids = netns_pids(name);
        if pids.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("processes {pids:?} survive SIGKILL in netns {name}");
        }
        for pid in pids {
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => bail!("kill -9 {pid} (netns {name}): {e}"),
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Moves the calling thread into the network namespace pinned at `file`.
pub(crate) fn enter(file: &File) -> anyhow::Result<()> {
    setns(file, CloneFlags::CLONE_NEWNET).context("setns(CLONE_NEWNET)")
}

/// Opens the pin file of a named network namespace.
pub(crate) fn open(name: &str) -> anyhow::Result<File> {
    File::open(netns_path(name)).with_context(|| format!("netns {name} does not exist"))
}

/// Runs `f` on a helper thread that has joined the named network namespace;
/// the calling thread's namespace is never changed.
pub(crate) fn in_netns<T: Send>(
    name: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let file = open(name)?;
    thread::scope(|s| {
        s.spawn(move || {
            enter(&file)?;
            f()
        })
        .join()
        .map_err(|_| anyhow!("thread running in netns {name} panicked"))?
    })
}

/// Start time of a process (clock ticks since boot), to tell a PID from its reuse.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}
