//! Script and LSB resources with real shell scripts in a temporary directory.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ha_agents::{AgentEnv, AgentError, ArpConfig, OpTimeouts, Resource, RunState, ScriptKind};
use ha_config::ResourceSpec;

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn spec(raw: &str) -> ResourceSpec {
    ResourceSpec::parse(raw).expect("a resource token")
}

fn env_with(dirs: Vec<PathBuf>, timeouts: OpTimeouts) -> AgentEnv {
    AgentEnv {
        resource_dirs: dirs,
        systemd: false,
        timeouts,
        resource_timeouts: Default::default(),
        arp: ArpConfig::default(),
        ocf_root: PathBuf::from("/nonexistent-ocf-root"),
    }
}

/// A resource.d script that logs every call and keeps its state in a file.
fn stateful_script(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let state = dir.join(format!("{name}.state"));
    let log = dir.join(format!("{name}.log"));
    write_script(
        &path,
        &format!(
            r#"echo "$*" >> '{log}'
eval op=\${{$#}}
case "$op" in
  start) touch '{state}' ;;
  stop) rm -f '{state}' ;;
  status) if [ -e '{state}' ]; then echo "INFO: Running OK"; else echo "INFO: Resource is stopped"; fi ;;
esac"#,
            log = log.display(),
            state = state.display()
        ),
    );
    path
}

fn log_lines(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn resource_d_lifecycle_passes_arguments_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let rd = tmp.path().join("resource.d");
    std::fs::create_dir(&rd).unwrap();
    stateful_script(&rd, "svc");
    let env = env_with(vec![rd.clone()], OpTimeouts::default());

    let res = Resource::from_spec(&spec("svc::one::two"), &env).unwrap();
    assert_eq!(res.name(), "svc::one::two");
    let Resource::Script(script) = &res else {
        panic!("expected a script resource, got {res:?}");
    };
    assert_eq!(script.kind(), ScriptKind::ResourceD);
    assert_eq!(script.path(), rd.join("svc"));

    assert_eq!(res.status().await.unwrap(), RunState::Stopped);
    res.start().await.unwrap();
    assert_eq!(res.status().await.unwrap(), RunState::Running);
    // Already running: only the status probe runs, not a second start.
    res.start().await.unwrap();
    res.stop().await.unwrap();
    assert_eq!(res.status().await.unwrap(), RunState::Stopped);
    res.stop().await.unwrap();

    assert_eq!(
        log_lines(&rd, "svc"),
        [
            "one two status",
            "one two status",
            "one two start",
            "one two status",
            "one two status",
            "one two stop",
            "one two status",
            "one two stop",
        ]
    );
}

#[tokio::test]
async fn lookup_order_and_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let second = tmp.path().join("init.d");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    // Not executable, and a directory: both skipped.
    std::fs::write(first.join("web"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir(first.join("db")).unwrap();
    write_script(&second.join("web"), "exit 0");
    write_script(&second.join("db"), "exit 0");
    write_script(&first.join("both"), "exit 0");
    write_script(&second.join("both"), "exit 0");
    let env = env_with(vec![first.clone(), second.clone()], OpTimeouts::default());

    for (name, dir, kind) in [
        ("web", &second, ScriptKind::Lsb),
        ("db", &second, ScriptKind::Lsb),
        ("both", &first, ScriptKind::ResourceD),
    ] {
        match Resource::from_spec(&spec(name), &env).unwrap() {
            Resource::Script(s) => {
                assert_eq!(s.path(), dir.join(name));
                assert_eq!(s.kind(), kind, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    let err = Resource::from_spec(&spec("nope::x"), &env).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AgentError::NotFound { .. }));
    assert!(
        msg.contains("cannot locate resource script `nope`"),
        "{msg}"
    );
    assert!(
        msg.contains(&first.join("nope").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&second.join("nope").display().to_string()),
        "{msg}"
    );

    let err = Resource::from_spec(&spec("../etc/x"), &env).unwrap_err();
    assert!(matches!(err, AgentError::InvalidArgs { .. }), "{err}");
}

#[tokio::test]
async fn ipaddr_is_built_in_even_if_resource_d_has_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_script(&tmp.path().join("IPaddr"), "exit 1");
    write_script(&tmp.path().join("IPaddr2"), "exit 1");
    let env = env_with(vec![tmp.path().to_owned()], OpTimeouts::default());
    for raw in ["IPaddr::198.18.0.100/24/eth0", "IPaddr2::198.18.0.100"] {
        let res = Resource::from_spec(&spec(raw), &env).unwrap();
        assert!(matches!(res, Resource::Ip(_)), "{raw}: {res:?}");
    }
}

#[tokio::test]
async fn lsb_exit_codes_decide_status() {
    let tmp = tempfile::tempdir().unwrap();
    let init = tmp.path().join("init.d");
    std::fs::create_dir(&init).unwrap();
    // The text says running, the LSB code says stopped: the code wins.
    write_script(&init.join("liar"), "echo 'is running'; exit 3");
    write_script(&init.join("quiet"), "exit 0");
    write_script(&init.join("dead"), "echo 'service is not running'; exit 1");
    let env = env_with(vec![init.clone()], OpTimeouts::default());
    for (name, want) in [
        ("liar", RunState::Stopped),
        ("quiet", RunState::Running),
        ("dead", RunState::Stopped),
    ] {
        let res = Resource::from_spec(&spec(name), &env).unwrap();
        assert_eq!(res.status().await.unwrap(), want, "{name}");
    }
}

#[tokio::test]
async fn failing_start_reports_exit_code_and_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    write_script(
        &tmp.path().join("broken"),
        r#"eval op=\${$#}
[ "$op" = status ] && { echo stopped; exit 0; }
echo "first line" >&2
echo "boom: cannot bind port 80" >&2
exit 2"#,
    );
    let env = env_with(vec![tmp.path().to_owned()], OpTimeouts::default());
    let res = Resource::from_spec(&spec("broken"), &env).unwrap();
    let err = res.start().await.unwrap_err();
    match &err {
        AgentError::Failed {
            resource,
            op,
            status,
            stderr_tail,
        } => {
            assert_eq!(resource, "broken");
            assert_eq!(*op, ha_agents::Op::Start);
            assert_eq!(status.code(), Some(2));
            assert!(
                stderr_tail.contains("boom: cannot bind port 80"),
                "{stderr_tail}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("broken: start failed with exit code 2"),
        "{err}"
    );
    assert!(res.stop().await.is_err());
}

#[tokio::test]
async fn hanging_script_times_out_and_its_group_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let pidfile = tmp.path().join("sleep.pid");
    write_script(
        &tmp.path().join("hang"),
        &format!(
            r#"eval op=\${{$#}}
[ "$op" = status ] && {{ echo stopped; exit 0; }}
echo "starting slowly" >&2
sleep 30 &
echo $! > '{}'
wait"#,
            pidfile.display()
        ),
    );
    let timeouts = OpTimeouts {
        start: Duration::from_millis(400),
        ..OpTimeouts::default()
    };
    let env = env_with(vec![tmp.path().to_owned()], timeouts);
    let res = Resource::from_spec(&spec("hang"), &env).unwrap();
    let began = Instant::now();
    let err = res.start().await.unwrap_err();
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "took {:?}",
        began.elapsed()
    );
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string().contains("start timed out after 400ms"),
        "{err}"
    );
    assert!(err.to_string().contains("starting slowly"), "{err}");

    // The grandchild shared the process group, so it died too (and was reaped).
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(3)),
        "sleep {pid} survived the timeout"
    );
}

/// True once /proc/<pid> is gone, i.e. the process exited and was reaped.
fn wait_gone(pid: i32, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// had.toml's `[[resource]]` limit reaches the script: its stop is killed after that limit,
/// not the common 60 s, and another resource keeps the common limits.
#[tokio::test]
async fn a_per_resource_stop_limit_kills_a_hanging_stop() {
    let tmp = tempfile::tempdir().unwrap();
    write_script(
        &tmp.path().join("hangstop"),
        r#"eval op=\${$#}
[ "$op" = status ] && { echo running; exit 0; }
[ "$op" = stop ] && exec sleep 30
exit 0"#,
    );
    let mut env = env_with(vec![tmp.path().to_owned()], OpTimeouts::default());
    let short = OpTimeouts {
        stop: Duration::from_millis(300),
        ..OpTimeouts::default()
    };
    env.resource_timeouts.insert("hangstop".into(), short);
    let res = Resource::from_spec(&spec("hangstop::a"), &env).unwrap();
    let began = Instant::now();
    let err = res.stop().await.unwrap_err();
    println!("stop gave up after {:?}", began.elapsed());
    assert!(began.elapsed() < Duration::from_secs(10), "{err}");
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string().contains("stop timed out after 300ms"),
        "{err}"
    );
    let other = spec("hangstop::b");
    assert_eq!(env.timeouts_for(&other), short, "by agent name");
    let exact = OpTimeouts {
        stop: Duration::from_secs(2),
        ..OpTimeouts::default()
    };
    env.resource_timeouts.insert("hangstop::b".into(), exact);
    assert_eq!(env.timeouts_for(&other), exact, "the raw text wins");
    assert_eq!(env.timeouts_for(&spec("hangstop::a")), short);
    env.resource_timeouts.clear();
    assert_eq!(env.timeouts_for(&other), OpTimeouts::default());
}
