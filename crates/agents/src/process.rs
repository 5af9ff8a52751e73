//! Child processes for agents: one process-wide reaper and a bounded `run`.
//! Owns every `waitpid` in the process, so nothing else may wait on children.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ha_core::logcat::{LogEvent, log};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt as _;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Keep at most this much of each output stream; scripts that chatter more lose the rest.
const MAX_CAPTURE: usize = 1 << 20;

/// After the child exits, how long to keep reading pipes that a daemonised grandchild may hold open.
const PIPE_GRACE: Duration = Duration::from_millis(100);

/// How a child ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited normally with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

/// The name the brief used for [`ExitStatus`].
pub type ExitStatusLike = ExitStatus;

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The exit code, if the child exited normally.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) => None,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => match Signal::try_from(*s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}

/// What a finished child printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code or signal.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8, capped at 1 MiB).
    pub stdout: String,
    /// Standard error (lossy UTF-8, capped at 1 MiB).
    pub stderr: String,
}

/// Why `run` could not produce an [`Output`].
#[derive(thiserror::Error, Debug)]
pub enum RunError {
    /// The program could not be started at all.
    #[error("cannot execute {}: {source}", program.display())]
    Spawn {
        /// The program that failed to start.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program outlived its timeout; its process group was killed.
    #[error("{} timed out after {after:?}{}", program.display(), tail_suffix(stderr))]
    Timeout {
        /// The program that hung.
        program: PathBuf,
        /// The timeout that expired.
        after: Duration,
        /// What it wrote to stderr before being killed.
        stderr: String,
    },
    /// The reaper could not be set up, so exit statuses cannot be collected.
    #[error("cannot start the child reaper: {0}")]
    Reaper(#[source] std::io::Error),
    /// The reaper stopped before reporting this child's exit.
    #[error("the child reaper stopped before {} exited", program.display())]
    ReaperGone {
        /// The program whose exit was lost.
        program: PathBuf,
    },
}

fn tail_suffix(stderr: &str) -> String {
    let tail = stderr_tail(stderr);
    if tail.is_empty() {
        String::new()
    } else {
        format!(" (stderr: {tail})")
    }
}

/// The last few lines of `stderr`, trimmed, for error messages.
pub fn stderr_tail(stderr: &str) -> String {
    const LINES: usize = 3;
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let start = lines.len().saturating_sub(LINES);
    lines[start..].join(" | ")
}

/// Registered waiters: pid → where to send its exit status.
type Waiters = HashMap<i32, oneshot::Sender<ExitStatus>>;

fn waiters() -> &'static Mutex<Waiters> {
    static WAITERS: OnceLock<Mutex<Waiters>> = OnceLock::new();
    WAITERS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock_waiters() -> MutexGuard<'static, Waiters> {
    // A panic while holding the lock cannot leave the map inconsistent (single insert/remove).
    waiters()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

static REAPER: OnceLock<Result<(), String>> = OnceLock::new();

/// Become a child subreaper and start reaping every child on SIGCHLD.
///
/// Idempotent. The reaper runs on its own thread with a small current-thread
/// runtime, so it outlives whichever runtime called this (tests create many).
/// Orphans that re-parent to us (daemonised services) are reaped and discarded.
pub fn init_reaper() -> std::io::Result<()> {
    let result = REAPER.get_or_init(|| start_reaper().map_err(|e| e.to_string()));
    result.clone().map_err(std::io::Error::other)
}

fn start_reaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Register the handler before returning so a child spawned right after cannot be missed.
    let mut sigchld = {
        let _guard = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?
    };
    std::thread::Builder::new()
        .name("had-reaper".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    reap_all();
                    if sigchld.recv().await.is_none() {
                        break;
                    }
                }
            });
        })?;
    Ok(())
}

/// Reap every exited child, handing statuses to their waiters.
fn reap_all() {
    let mut map = lock_waiters();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => deliver(&mut map, pid, ExitStatus::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                deliver(&mut map, pid, ExitStatus::Signal(sig as i32));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            // Stopped/continued children are not reported without WUNTRACED; keep going.
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                log(&LogEvent::WaitpidFailed {
                    reason: &e.to_string(),
                });
                break;
            }
        }
    }
}

fn deliver(map: &mut Waiters, pid: Pid, status: ExitStatus) {
    match map.remove(&pid.as_raw()) {
        // The waiter may have given up (its future dropped); nothing to do then.
        Some(tx) => drop(tx.send(status)),
        None => tracing::debug!(pid = pid.as_raw(), %status, "reaped orphan"),
    }
}

/// Run `program args...` with extra `env`, capture its output, and bound it by `timeout`.
///
/// The child gets a null stdin and its own process group, which is killed
/// with SIGKILL when the timeout expires. Starts the reaper if needed.
pub async fn run(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Output, RunError> {
    run_inner(program, args, env, None, timeout).await
}

/// Like [`run`], with `input` on the child's stdin (at most [`MAX_STDIN`] bytes: it is
/// written into a pipe before the child starts, so it must fit the pipe's buffer).
pub async fn run_with_stdin(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    input: &[u8],
    timeout: Duration,
) -> Result<Output, RunError> {
    run_inner(program, args, env, Some(input), timeout).await
}

/// Largest stdin [`run_with_stdin`] accepts (a Linux pipe holds 64 KiB).
pub const MAX_STDIN: usize = 60 * 1024;

async fn run_inner(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, RunError> {
    init_reaper().map_err(RunError::Reaper)?;
    let deadline = Instant::now() + timeout;
    let (pid, exit_rx, stdout, stderr) = spawn_registered(program, args, env, input).await?;
    let mut guard = KillOnDrop { pid, armed: true };
    let mut stdout = pipe::Receiver::from_owned_fd(stdout).map_err(|source| RunError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    let mut stderr = pipe::Receiver::from_owned_fd(stderr).map_err(|source| RunError::Spawn {
        program: program.to_owned(),
        source,
    })?;

    let mut out = Vec::new();
    let mut err = Vec::new();
    let (mut out_open, mut err_open) = (true, true);
    let mut exit_rx = exit_rx;
    let mut status: Option<ExitStatus> = None;
    let mut grace_end = deadline;
    let mut out_buf = [0u8; 4096];
    let mut err_buf = [0u8; 4096];

    loop {
        if status.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            r = stdout.read(&mut out_buf), if out_open => match r {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => append_capped(&mut out, &out_buf[..n]),
            },
            r = stderr.read(&mut err_buf), if err_open => match r {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => append_capped(&mut err, &err_buf[..n]),
            },
            s = &mut exit_rx, if status.is_none() => match s {
                Ok(s) => {
                    status = Some(s);
                    guard.armed = false;
                    grace_end = Instant::now() + PIPE_GRACE;
                }
                Err(_) => return Err(RunError::ReaperGone { program: program.to_owned() }),
            },
            () = tokio::time::sleep_until(grace_end), if status.is_some() => break,
            () = tokio::time::sleep_until(deadline), if status.is_none() => {
                guard.armed = false;
                kill_group(pid);
                // SIGKILL cannot be ignored; wait briefly so the zombie is reaped before we return.
                let _ = tokio::time::timeout(Duration::from_secs(2), exit_rx).await;
                drain_ready(&mut stderr, &mut err);
                return Err(RunError::Timeout {
                    program: program.to_owned(),
                    after: timeout,
                    stderr: String::from_utf8_lossy(&err).into_owned(),
                });
            }
        }
    }
    let Some(status) = status else {
        return Err(RunError::ReaperGone {
            program: program.to_owned(),
        });
    };
    Ok(Output {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}

fn append_capped(buf: &mut Vec<u8>, chunk: &[u8]) {
    let room = MAX_CAPTURE.saturating_sub(buf.len());
    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

/// Take whatever is already buffered in the pipe without waiting.
fn drain_ready(rx: &mut pipe::Receiver, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = rx.try_read(&mut chunk) {
        if n == 0 {
            break;
        }
        append_capped(buf, &chunk[..n]);
    }
}

/// Kills the child's group if `run` is cancelled (its future dropped) before the child exits.
struct KillOnDrop {
    pid: i32,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pid);
        }
    }
}

fn kill_group(pid: i32) {
    // The child leads its own group (process_group(0)), so its group id is its pid.
    if let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGKILL)
        && e != Errno::ESRCH
    {
        log(&LogEvent::KillFailed {
            pid,
            reason: &e.to_string(),
        });
    }
}

type Spawned = (i32, oneshot::Receiver<ExitStatus>, OwnedFd, OwnedFd);

/// Spawn under the waiter lock so the reaper cannot reap the child before it is registered.
async fn spawn_registered(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    input: Option<&[u8]>,
) -> Result<Spawned, RunError> {
    // A script written just before (tests, config tools) can briefly be "text file busy"
    // while a concurrent fork elsewhere still holds its write descriptor.
    let mut busy_retries = 10;
    loop {
        match spawn_once(program, args, env, input) {
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && busy_retries > 0 => {
                busy_retries -= 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => {
                return Err(RunError::Spawn {
                    program: program.to_owned(),
                    source,
                });
            }
            Ok(spawned) => return Ok(spawned),
        }
    }
}

fn spawn_once(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    input: Option<&[u8]>,
) -> std::io::Result<Spawned> {
    let stdin = match input {
        None => Stdio::null(),
        Some(bytes) => Stdio::from(stdin_pipe(bytes)?),
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut map = lock_waiters();
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let (tx, rx) = oneshot::channel();
    map.insert(pid, tx);
    drop(map);
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other("child pipes missing"));
    };
    // `child` is dropped without waiting: the reaper owns its exit status.
    Ok((pid, rx, OwnedFd::from(stdout), OwnedFd::from(stderr)))
}

/// A pipe already holding `bytes` and closed for writing: the read end, for a child's stdin.
fn stdin_pipe(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    if bytes.len() > MAX_STDIN {
        return Err(std::io::Error::other(format!(
            "stdin of {} bytes is larger than {MAX_STDIN}",
            bytes.len()
        )));
    }
    // Close-on-exec, so children spawned meanwhile by other threads do not inherit them.
    let (rd, wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let mut wr = std::fs::File::from(wr);
    std::io::Write::write_all(&mut wr, bytes)?;
    Ok(rd)
}
