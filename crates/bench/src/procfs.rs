//! What a daemon costs, read from /proc: resident and proportional memory,
//! CPU time of the process and of the children it reaped. Also the CPU load
//! (busy loops) under which timer stability is tested.

use std::process::{Child, Command, Stdio};

use anyhow::Context;

use ha_lab::netns_pids;

/// One reading of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// Of it, RssAnon (heap, stacks; not the program's and libraries' file pages) in KiB.
    pub anon_kib: u64,
    /// Pss in KiB (smaps_rollup), when readable.
    pub pss_kib: Option<u64>,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// cutime + cstime (children waited for), clock ticks.
    pub child_ticks: u64,
    /// Time on a CPU of every thread, nanoseconds (`/proc/PID/task/*/schedstat`): the ticks
    /// above count in 10 ms steps, coarser than an idle daemon's whole minute.
    pub cpu_ns: Option<u64>,
}

impl ProcSample {
    /// CPU seconds of the process itself from `earlier` to this sample, from the
    /// nanosecond counters when both have them.
    pub fn cpu_secs_since(&self, earlier: &ProcSample) -> f64 {
        match (self.cpu_ns, earlier.cpu_ns) {
            (Some(a), Some(b)) => a.saturating_sub(b) as f64 / 1e9,
            _ => self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64 / clock_ticks(),
        }
    }
}

/// The summed on-CPU nanoseconds of `pid`'s threads, if schedstat is readable.
fn threads_cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let mut p = t.path();
        p.push("schedstat");
        // A thread that ended between the listing and the read has nothing more to add.
        let Ok(line) = std::fs::read_to_string(&p) else {
            continue;
        };
        total += line.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Reads `pid`'s memory and CPU counters; None if it is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (cpu_ticks, child_ticks) = parse_stat_cpu(&stat)?;
    let pss_kib = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| kib_field(&s, "Pss:"));
    Some(ProcSample {
        // Kernel threads and zombies have no VmRSS: count them as 0.
        rss_kib: kib_field(&status, "VmRSS:").unwrap_or(0),
        anon_kib: kib_field(&status, "RssAnon:").unwrap_or(0),
        pss_kib,
        cpu_ticks,
        child_ticks,
        cpu_ns: threads_cpu_ns(pid),
    })
}

/// `(utime + stime, cutime + cstime)` from a /proc/PID/stat line.
pub fn parse_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime..cstime are fields 14..17.
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some((n(14)? + n(15)?, n(16)? + n(17)?))
}

/// The KiB value of a `Name:   1234 kB` line.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second (sysconf(_SC_CLK_TCK)), 100 if unknown.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The command name (`comm`) of `pid`.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// PIDs in the network namespace `ns` whose comm is `name`.
pub fn pids_named(ns: &str, name: &str) -> Vec<u32> {
    netns_pids(ns)
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .filter(|p| comm(*p).as_deref() == Some(name))
        .collect()
}

/// The daemons named by `comms` in the network namespace `ns`: the PIDs found by two scans
/// 100 ms apart. A daemon that runs checks (keepalived's `vrrp_script`) forks children that
/// carry its name until they exec; one caught by a single scan is gone before an idle window
/// ends and would read as a daemon that died.
pub fn daemon_pids(ns: &str, comms: &[&str]) -> Vec<u32> {
    let scan = || -> Vec<u32> { comms.iter().flat_map(|c| pids_named(ns, c)).collect() };
    let first = scan();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let second = scan();
    first.into_iter().filter(|p| second.contains(p)).collect()
}

/// Busy loops, one per CPU, to load the machine while timers are watched.
/// Each is a `sh` spinning on `:`; dropped, they are killed by PID.
pub struct Load {
    children: Vec<Child>,
}

impl Load {
    /// Starts `n` busy loops.
    pub fn start(n: usize) -> anyhow::Result<Load> {
        let mut load = Load {
            children: Vec::new(),
        };
        for _ in 0..n {
            let c = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting a busy loop")?;
            load.children.push(c);
        }
        Ok(load)
    }

    /// The loops' CPU seconds so far (proof they ran).
    pub fn cpu_secs(&self) -> f64 {
        let ticks: u64 = self
            .children
            .iter()
            .filter_map(|c| sample(c.id()))
            .map(|s| s.cpu_ticks)
            .sum();
        ticks as f64 / clock_ticks()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let line = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 25 7 3 2 20 0 1 0 100 1000 50";
        assert_eq!(parse_stat_cpu(line), Some((32, 5)));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn kib_lines() {
        let s = "Name:\thad\nVmRSS:\t    3120 kB\nThreads:\t2\n";
        assert_eq!(kib_field(s, "VmRSS:"), Some(3120));
        assert_eq!(kib_field(s, "Pss:"), None);
    }

    #[test]
    fn samples_this_process_and_a_busy_loop() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_kib > 0);
        let load = Load::start(1).unwrap();
        let pid = load.children[0].id();
        // Right after fork the child still has the test thread's name: wait for the exec.
        let start = std::time::Instant::now();
        while comm(pid).as_deref() != Some("sh")
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(comm(pid).as_deref(), Some("sh"));
        // A spinning shell accumulates CPU time; give it a generous while.
        while load.cpu_secs() < 0.05 && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(load.cpu_secs() >= 0.05);
        drop(load);
        assert!(sample(pid).is_none_or(|s| s.rss_kib == 0));
    }
}
