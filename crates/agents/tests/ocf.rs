//! OCF agents through `Resource::from_spec`: a small OCF-style agent in a temporary OCF_ROOT,
//! and Debian's `ocf:heartbeat:Dummy` when the resource-agents package is installed.
#![allow(clippy::unwrap_used)] // test helpers: a failed setup step should panic

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use ha_agents::{AgentEnv, AgentError, ArpConfig, OpTimeouts, Resource, RunState};
use ha_config::ResourceSpec;

fn spec(raw: &str) -> ResourceSpec {
    ResourceSpec::parse(raw).expect("a resource token")
}

fn env(ocf_root: &Path, resource_dir: &Path) -> AgentEnv {
    AgentEnv {
        resource_dirs: vec![resource_dir.to_owned()],
        systemd: false,
        timeouts: OpTimeouts::default(),
        resource_timeouts: Default::default(),
        arp: ArpConfig::default(),
        ocf_root: ocf_root.to_owned(),
    }
}

/// An OCF agent that keeps its state in `$OCF_RESKEY_state`, logs each action with the
/// environment it got, and fails its monitor with OCF_ERR_GENERIC when `$OCF_RESKEY_broken`
/// is set.
fn write_agent(root: &Path) -> PathBuf {
    let dir = root.join("resource.d/had-test");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("Stateful");
    std::fs::write(
        &path,
        r#"#!/bin/sh
echo "$1 root=$OCF_ROOT type=$OCF_RESOURCE_TYPE provider=$OCF_RESOURCE_PROVIDER instance=$OCF_RESOURCE_INSTANCE colour=$OCF_RESKEY_colour" >> "$OCF_RESKEY_state.log"
case "$1" in
  start) touch "$OCF_RESKEY_state"; exit 0 ;;
  stop) rm -f "$OCF_RESKEY_state"; exit 0 ;;
  monitor)
    [ -n "$OCF_RESKEY_broken" ] && { echo "monitor: broken" >&2; exit 1; }
    [ -e "$OCF_RESKEY_state" ] && exit 0
    exit 7 ;;
  *) exit 3 ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "current_thread")]
async fn ocf_agent_lifecycle_with_reskey_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ocf");
    write_agent(&root);
    let state = tmp.path().join("thing.state");
    let env = env(&root, tmp.path());
    for raw in [
        format!(
            "ocf::had-test::Stateful::state={}::colour=blue",
            state.display()
        ),
        format!(
            "ocf:had-test:Stateful::state={}::colour=blue",
            state.display()
        ),
    ] {
        let r = Resource::from_spec(&spec(&raw), &env).unwrap();
        assert!(matches!(r, Resource::Ocf(_)));
        assert_eq!(r.status().await.unwrap(), RunState::Stopped);
        r.start().await.unwrap();
        assert!(state.exists());
        assert_eq!(r.status().await.unwrap(), RunState::Running);
        r.start().await.expect("start of a running agent succeeds");
        r.stop().await.unwrap();
        assert_eq!(r.status().await.unwrap(), RunState::Stopped);
        r.stop().await.expect("stop of a stopped agent succeeds");
    }
    let log = std::fs::read_to_string(format!("{}.log", state.display())).unwrap();
    let first = log.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "monitor root={} type=Stateful provider=had-test instance=ocf__had-test__Stateful__state_{}__colour_blue colour=blue",
            root.display(),
            state.display().to_string().replace('/', "_")
        )
    );
    let actions: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        &actions[..6],
        &["monitor", "start", "monitor", "start", "stop", "monitor"]
    );

    // A monitor error is an error, not "stopped".
    let broken = Resource::from_spec(
        &spec(&format!(
            "ocf::had-test::Stateful::state={}::broken=1",
            state.display()
        )),
        &env,
    )
    .unwrap();
    let e = broken.status().await.unwrap_err();
    assert!(
        matches!(e, AgentError::Failed { .. }) && e.to_string().contains("monitor: broken"),
        "{e}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_bare_ocf_agent_name_points_at_the_ocf_syntax() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ocf");
    write_agent(&root);
    let e = Resource::from_spec(&spec("Stateful::x"), &env(&root, tmp.path())).unwrap_err();
    assert!(
        e.to_string()
            .contains("is an OCF agent: write ocf::had-test::Stateful[::name=value...]"),
        "{e}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn debian_dummy_agent() {
    let root = Path::new("/usr/lib/ocf");
    if !root.join("resource.d/heartbeat/Dummy").exists() {
        eprintln!("skipping: resource-agents (ocf:heartbeat:Dummy) is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dummy.state");
    let r = Resource::from_spec(
        &spec(&format!(
            "ocf:heartbeat:Dummy::state={}::fake=x",
            state.display()
        )),
        &env(root, tmp.path()),
    )
    .unwrap();
    assert_eq!(r.status().await.unwrap(), RunState::Stopped);
    r.start().await.unwrap();
    assert!(state.exists(), "Dummy keeps its state in OCF_RESKEY_state");
    assert_eq!(r.status().await.unwrap(), RunState::Running);
    r.stop().await.unwrap();
    assert!(!state.exists());
    assert_eq!(r.status().await.unwrap(), RunState::Stopped);
    r.stop().await.unwrap();
}
