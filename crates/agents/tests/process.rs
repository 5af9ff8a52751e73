//! `process::run` and the subreaper, with real children.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::path::Path;
use std::time::{Duration, Instant};

use ha_agents::process::{self, ExitStatus, RunError};

fn sh(script: &str) -> Vec<String> {
    vec!["-c".to_owned(), script.to_owned()]
}

const SH: &str = "/bin/sh";
const LONG: Duration = Duration::from_secs(10);

#[tokio::test]
async fn captures_output_code_and_env() {
    let out = process::run(
        Path::new(SH),
        &sh("echo out $GREETING; echo err >&2; exit 7"),
        &[("GREETING".to_owned(), "hello".to_owned())],
        LONG,
    )
    .await
    .unwrap();
    assert_eq!(out.status, ExitStatus::Code(7));
    assert_eq!(out.stdout, "out hello\n");
    assert_eq!(out.stderr, "err\n");
}

#[tokio::test]
async fn stdin_is_null() {
    let out = process::run(Path::new(SH), &sh("cat; echo done"), &[], LONG)
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, "done\n");
}

#[tokio::test]
async fn signal_death_is_reported() {
    let out = process::run(Path::new(SH), &sh("kill -9 $$"), &[], LONG)
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Signal(9));
    assert_eq!(out.status.to_string(), "killed by SIGKILL");
}

#[tokio::test]
async fn many_fast_children_are_never_lost() {
    let scripts: Vec<Vec<String>> = (0..40).map(|i| sh(&format!("exit {}", i % 5))).collect();
    let runs = scripts
        .iter()
        .map(|args| process::run(Path::new(SH), args, &[], LONG));
    let outs = futures::future::join_all(runs).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap().status.code(), Some((i % 5) as i32));
    }
}

#[tokio::test]
async fn missing_program_is_a_spawn_error() {
    let err = process::run(Path::new("/nonexistent/had-agent"), &[], &[], LONG)
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Spawn { .. }), "{err}");
}

#[tokio::test]
async fn timeout_kills_the_group() {
    let began = Instant::now();
    let err = process::run(
        Path::new(SH),
        &sh("sleep 30"),
        &[],
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RunError::Timeout { .. }), "{err}");
    assert!(began.elapsed() < Duration::from_secs(3));
}

/// A daemonising start script: the service detaches with setsid and outlives the script.
#[tokio::test]
async fn orphaned_daemon_is_reaped_when_it_dies() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("daemon.pid");
    let script = format!(
        "setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $! > '{}'; echo started",
        pidfile.display()
    );
    let began = Instant::now();
    let out = process::run(Path::new(SH), &sh(&script), &[], LONG)
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, "started\n");
    assert!(began.elapsed() < Duration::from_secs(5));

    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Its parent exited, so as subreaper we inherited it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = stat_field(&stat, 1).parse().unwrap();
    assert_eq!(ppid, std::process::id(), "daemon re-parented to us: {stat}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    let mut last_state = String::new();
    while Instant::now() < end {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(stat) => last_state = stat_field(&stat, 0).to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("daemon {pid} not reaped; state {last_state}");
}

/// A daemon that keeps our stdout pipe open must not hold `run` until it exits.
#[tokio::test]
async fn daemon_holding_the_pipe_does_not_block_run() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("holder.pid");
    let script = format!("sleep 30 & echo $! > '{}'; echo up", pidfile.display());
    let began = Instant::now();
    let out = process::run(Path::new(SH), &sh(&script), &[], LONG)
        .await
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(out.stdout, "up\n");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Field `n` after the `(comm)` of /proc/<pid>/stat: 0 = state, 1 = ppid.
fn stat_field(stat: &str, n: usize) -> &str {
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().nth(n).unwrap_or("")
}

/// Dropping `run` (the caller's own timeout) must not leave the child running.
#[tokio::test]
async fn cancelled_run_kills_the_child() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("child.pid");
    let script = format!("echo $$ > '{}'; exec sleep 30", pidfile.display());
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        process::run(Path::new(SH), &sh(&script), &[], LONG),
    )
    .await;
    assert!(cancelled.is_err(), "run should still have been waiting");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("child {pid} survived the cancelled run");
}
