//! ha.cf's `realtime` (default on, as in Heartbeat): the threads that receive (`had-recv`),
//! time and send heartbeats (the loop's, the main thread) run SCHED_RR with the process's
//! memory locked, so that a short deadtime survives a loaded host. Everything else runs at normal priority: SCHED_RESET_ON_FORK makes
//! every thread and child created afterwards start as SCHED_OTHER (resource agents, hooks,
//! checks never inherit the realtime class), and memory locks end at exec anyway.
//! Not getting either (no CAP_SYS_NICE, RLIMIT_MEMLOCK) is one warning, never a refusal.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::logcat::{LogEvent, log};

/// Heartbeat 3.0.6 was measured running SCHED_RR priority 1: above every normal process,
/// below anything an admin made realtime on purpose.
pub const DEFAULT_PRIORITY: u8 = 1;

/// Stack touched before locking, so the heartbeat path never faults its stack in later.
/// Measured high-water marks at realtime off (docs/benchmarks.md, issue 14): `had-recv`
/// 8–24 KiB, the guard 32–36 KiB, the main thread 116 KiB at start-up (faulted in by then
/// anyway); 64 KiB is twice the largest the realtime paths need, and every KiB of it stays
/// resident for the daemon's life.
const STACK_PREFAULT: usize = 64 * 1024;

pub use ha_control::Realtime;

static STATE: OnceLock<Realtime> = OnceLock::new();

/// What [`apply`] obtained, once it ran.
pub fn state() -> Option<Realtime> {
    STATE.get().cloned()
}

/// Make the calling thread (the one that runs the heartbeat loop) realtime when `enabled`,
/// and record the result. Call it once, before the runtime starts its other threads.
pub fn apply(enabled: bool, rtprio: Option<u8>) -> Realtime {
    let mut problems = Vec::new();
    let mut locked = false;
    if enabled {
        prefault_stack();
        match lock_memory() {
            Ok(()) => locked = true,
            Err(e) => problems.push(format!(
                "memory not locked ({e}; raise RLIMIT_MEMLOCK, e.g. LimitMEMLOCK=infinity)"
            )),
        }
        let prio = i32::from(rtprio.unwrap_or(DEFAULT_PRIORITY));
        if let Err(e) = set_policy(libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, prio) {
            problems.push(format!(
                "SCHED_RR priority {prio} refused ({e}; needs CAP_SYS_NICE or RLIMIT_RTPRIO)"
            ));
        }
    }
    let (policy, priority) = current_policy();
    let state = Realtime {
        requested: enabled,
        policy,
        priority,
        memory_locked: locked,
        warning: (!problems.is_empty()).then(|| problems.join("; ")),
    };
    match &state.warning {
        Some(w) => log(&LogEvent::RealtimeDegraded {
            warning: w,
            policy: &state.policy,
            priority: state.priority,
        }),
        None if enabled => log(&LogEvent::RealtimeOn {
            policy: &state.policy,
            priority: state.priority,
        }),
        None => log(&LogEvent::RealtimeOff {}),
    }
    let _ = STATE.set(state.clone());
    state
}

/// Give the calling thread the heartbeat loop's class, when `apply` obtained SCHED_RR: the
/// receive thread is the other half of the heartbeat path. Under a datagram flood it may
/// then take a core (the kernel's RT throttling keeps 5 % for the rest); at normal priority
/// a CPU hog on every core would delay the peer's heartbeats into a false takeover instead.
pub fn join_heartbeat_path() {
    let Some(state) = STATE.get() else { return };
    if state.policy != "SCHED_RR" {
        return;
    }
    prefault_stack();
    if let Err(e) = set_policy(libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, state.priority) {
        log(&LogEvent::RealtimeReceiveNormal {
            reason: &e.to_string(),
        });
    }
}

/// The guard (`guard.rs`) runs at the daemon's class when the daemon got SCHED_RR, so that a
/// loaded host does not delay the release after the daemon's death; what it starts does not
/// inherit it (reset on fork). Its memory is locked as the daemon's is.
pub fn apply_guard(priority: i32) {
    prefault_stack();
    let locked = lock_memory();
    let class = set_policy(libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, priority);
    match (class, locked) {
        (Ok(()), Ok(())) => {
            tracing::debug!("guard: SCHED_RR priority {priority}, memory locked")
        }
        (c, l) => log(&LogEvent::GuardRealtimeIncomplete {
            class: &format!("{c:?}"),
            lock: &format!("{l:?}"),
        }),
    }
}

/// Put the calling thread back to normal priority (threads that run agents call this, in
/// case they were created before the reset-on-fork flag was set).
pub fn normal_priority_here() {
    let (policy, _) = current_policy();
    if policy != "SCHED_OTHER" {
        // Lowering one's own policy needs no privilege.
        if let Err(e) = set_policy(libc::SCHED_OTHER, 0) {
            log(&LogEvent::AgentThreadPriority {
                reason: &e.to_string(),
            });
        }
    }
}

/// The calling thread's scheduling class and priority.
pub fn current_policy() -> (String, i32) {
    // SAFETY: sched_getscheduler/sched_getparam on pid 0 (the calling thread) with a
    // properly sized, initialised out-parameter.
    let (policy, prio) = unsafe {
        let p = libc::sched_getscheduler(0);
        let mut param = libc::sched_param { sched_priority: 0 };
        let _ = libc::sched_getparam(0, &mut param);
        (p, param.sched_priority)
    };
    (policy_name(policy & !libc::SCHED_RESET_ON_FORK), prio)
}

/// The name of a `sched_getscheduler` result.
pub fn policy_name(policy: i32) -> String {
    match policy {
        libc::SCHED_OTHER => "SCHED_OTHER".into(),
        libc::SCHED_FIFO => "SCHED_FIFO".into(),
        libc::SCHED_RR => "SCHED_RR".into(),
        libc::SCHED_BATCH => "SCHED_BATCH".into(),
        libc::SCHED_IDLE => "SCHED_IDLE".into(),
        n => format!("policy {n}"),
    }
}

fn set_policy(policy: i32, priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `param` lives across the call.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How [`lock_memory`] locked the process, for [`release_unused`].
static LOCK_MODE: AtomicU8 = AtomicU8::new(UNLOCKED);
const UNLOCKED: u8 = 0;
/// `MCL_ONFAULT`: pages are locked as they are touched, so unlocking, dropping and locking
/// again costs nothing but the refaults.
const ON_FAULT: u8 = 1;
/// Everything mapped was faulted in and locked (a kernel before 4.4): locking again would
/// fault in what a trim dropped, so nothing is trimmed.
const EVERYTHING: u8 = 2;

/// Lock what is mapped now and what will be, each page as it is first touched
/// (MCL_ONFAULT): locking would otherwise fault in every reserved stack and arena at once
/// and multiply the resident size for nothing. Kernels before 4.4 lack ONFAULT.
fn lock_memory() -> std::io::Result<()> {
    trim_file_mappings();
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) } == 0 {
        LOCK_MODE.store(ON_FAULT, Ordering::Relaxed);
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    // SAFETY: as above.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0 {
        LOCK_MODE.store(EVERYTHING, Ordering::Relaxed);
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Give back what the process holds but no longer uses, once it has settled (the daemon a
/// while after its last group operation, the guard a while after its last message): a large
/// acquisition leaves freed heap behind, and start-up and a takeover run code an idle node
/// never runs again, yet with memory locked all of it stays resident. Locked memory cannot be
/// dropped, so the lock is lifted for the moment of the trim and set again.
///
/// Freed heap always goes: reusing it later costs a zero-filled page, never a read. Code and
/// read-only data go only when `code` is true: what the idle loop runs faults back in from
/// the page cache within its first round and is locked again, but a path it runs rarely (a
/// late-heartbeat warning, say) would then be read back on first use, and under memory
/// pressure that read can take longer than a short deadtime. Measured on the lab's idle
/// passive node at 1 s timers, the daemon's code mapping went from 2.5 MiB resident (all of
/// it) to 1.5 MiB, libc's from 0.9 to 0.5 MiB.
pub fn release_unused(code: bool) {
    let mode = LOCK_MODE.load(Ordering::Relaxed);
    if mode == EVERYTHING {
        return;
    }
    if mode == ON_FAULT {
        // SAFETY: munlockall takes no arguments.
        unsafe { libc::munlockall() };
    }
    // SAFETY: malloc_trim takes a size only; it returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    if code {
        trim_file_mappings();
    }
    if mode == ON_FAULT
        // SAFETY: mlockall takes flags only.
        && unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) } != 0
    {
        let e = std::io::Error::last_os_error();
        LOCK_MODE.store(UNLOCKED, Ordering::Relaxed);
        log(&LogEvent::MemoryRelockFailed {
            reason: &e.to_string(),
        });
    }
}

/// Unmap the file pages that start-up (argument and file parsing, validation) or an earlier
/// takeover mapped but the process may never use again, so that `mlockall` does not pin
/// them: measured on the lab's idle nodes, the guard's resident size went from 4.4 to 3.0
/// MiB and the daemon's from 5.9 to 5.5 MiB at start. Only code and read-only data mappings
/// that hold no anonymous page: they were never written, so dropping a page only means the
/// next use faults it back from the page cache. Relocated data (RELRO, written before it was
/// made read-only) holds anonymous copies and is left alone, as is everything writable.
fn trim_file_mappings() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (a, b) in droppable_mappings(&smaps) {
        // SAFETY: the range is a whole private, read-only file mapping of this process whose
        // pages are all the file's own (no anonymous copy): no page in it holds data of
        // ours, so the kernel can drop and refault any of them. Failures change nothing.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
        }
    }
}

/// The `[start, end)` ranges of `/proc/PID/smaps` that [`trim_file_mappings`] may drop:
/// private, not writable, backed by a file, no anonymous page.
fn droppable_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The current mapping's range, if it qualifies so far; decided at its `Anonymous:` line.
    let mut candidate: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(rest) = line.strip_prefix("Anonymous:") {
            let anon = rest.trim().trim_end_matches("kB").trim();
            if let Some(r) = candidate.take()
                && anon == "0"
            {
                out.push(r);
            }
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(_off), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        // A header line: `start-end perms offset dev inode [path]`.
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        candidate = (matches!(perms, "r-xp" | "r--p") && inode != "0" && a < b).then_some((a, b));
    }
    out
}

#[inline(never)]
fn prefault_stack() {
    let mut area = [0u8; STACK_PREFAULT];
    // Every page written, through black_box so the writes are not optimised away.
    for i in (0..STACK_PREFAULT).step_by(4096) {
        area[i] = 1;
    }
    std::hint::black_box(&mut area);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory locks are the process's: the tests that lock and unlock take turns.
    static PROCESS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn only_unwritten_read_only_file_mappings_are_dropped() {
        let smaps = "\
55928c0fc000-55928c1b2000 r--p 00000000 fe:00 10010826                   /usr/sbin/had
Rss:                 512 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
55928c1b2000-55928c432000 r-xp 000b5000 fe:00 10010826                   /usr/sbin/had
Rss:                2488 kB
Anonymous:             0 kB
55928c432000-55928c44f000 r--p 00334000 fe:00 10010826                   /usr/sbin/had
Rss:                 116 kB
Anonymous:           116 kB
55928c44f000-55928c452000 rw-p 00350000 fe:00 10010826                   /usr/sbin/had
Anonymous:             8 kB
7efd020f4000-7efd0224a000 r-xp 00026000 fe:00 326279                     /usr/lib/libc.so.6
Anonymous:             4 kB
7efd02400000-7efd02500000 r--p 00000000 00:00 0
Anonymous:             0 kB
7ffc2a1b8000-7ffc2a1d9000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           132 kB
";
        assert_eq!(
            droppable_mappings(smaps),
            vec![
                (0x5592_8c0f_c000, 0x5592_8c1b_2000),
                (0x5592_8c1b_2000, 0x5592_8c43_2000)
            ],
            "code and rodata go; relocated data, writable, breakpointed and anonymous stay"
        );
    }

    #[test]
    fn releasing_unused_memory_keeps_the_process_running_and_locked() {
        let _turn = PROCESS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        std::thread::spawn(|| {
            let s = apply(true, None);
            let v: Vec<u64> = (0..100_000).collect();
            drop(v);
            release_unused(true);
            // Code that was dropped runs again (it faults back in from the page cache).
            let again: u64 = (0..1_000u64).sum();
            assert_eq!(again, 499_500);
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            let locked = status
                .lines()
                .any(|l| l.starts_with("VmLck:") && l.split_whitespace().nth(1) != Some("0"));
            if s.memory_locked {
                assert!(
                    locked,
                    "memory must be locked again after the trim:\n{status}"
                );
            }
            // SAFETY: munlockall takes no arguments; the test process needs no locked memory.
            unsafe { libc::munlockall() };
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn off_changes_nothing_and_reports_the_class() {
        let before = current_policy();
        let s = std::thread::spawn(|| apply(false, None))
            .join()
            .expect("thread");
        assert!(!s.requested);
        assert!(!s.memory_locked);
        assert_eq!(s.warning, None);
        assert_eq!((s.policy.clone(), s.priority), before);
    }

    #[test]
    fn on_is_realtime_or_one_warning_and_children_run_normal() {
        let _turn = PROCESS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // Its own thread: the test harness's threads keep their class.
        let (s, child_policy, thread_policy) = std::thread::spawn(|| {
            let s = apply(true, Some(2));
            let out = std::process::Command::new("sh")
                .args(["-c", "grep '^policy' /proc/self/sched"])
                .output()
                .expect("sh runs");
            let thread = std::thread::spawn(current_policy).join().expect("thread");
            (s, String::from_utf8_lossy(&out.stdout).to_string(), thread)
        })
        .join()
        .expect("thread");
        eprintln!("realtime on: {s:?}; child: {child_policy:?}; new thread: {thread_policy:?}");
        if s.warning.is_none() {
            assert_eq!((s.policy.as_str(), s.priority), ("SCHED_RR", 2));
            assert!(s.memory_locked);
        } else {
            assert!(
                s.warning
                    .as_deref()
                    .is_some_and(|w| w.contains("SCHED_RR") || w.contains("memory")),
                "{s:?}"
            );
        }
        // policy 0 = SCHED_OTHER, whatever the parent thread got.
        assert!(
            child_policy.split_whitespace().last() == Some("0"),
            "a child must not inherit the realtime class: {child_policy:?}"
        );
        assert_eq!(thread_policy.0, "SCHED_OTHER");
        // SAFETY: munlockall takes no arguments; the test process needs no locked memory.
        unsafe { libc::munlockall() };
    }
}
