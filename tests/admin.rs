//! What an admin sets up around the daemon, in the lab with a real `had`: `debugfile` and
//! `debug N`, read-only access for monitoring (`[control] read_group`) tried by unprivileged
//! uids, and `hactl status --nagios`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ha_lab::{ClusterSpec, Group, Lab, LabOptions, Net, find_bin};

/// Unprivileged uids with no passwd entry: setpriv needs none.
const MEMBER_UID: &str = "64123";
const STRANGER_UID: &str = "64124";

/// A throwaway system group, removed on drop (also when the test fails).
struct TempGroup {
    name: String,
    gid: u32,
}

impl TempGroup {
    fn new() -> TempGroup {
        let name = format!("hadro{}", std::process::id() % 100_000);
        let out = Command::new("groupadd")
            .args(["--system", &name])
            .output()
            .expect("groupadd runs");
        assert!(out.status.success(), "groupadd {name}: {out:?}");
        let gid = std::fs::read_to_string("/etc/group")
            .expect("/etc/group")
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&name.as_str()))
                    .then(|| f.get(2).and_then(|g| g.parse().ok()))
                    .flatten()
            })
            .expect("the new group's gid");
        TempGroup { name, gid }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `hactl --socket S args...` as `uid`, with `groups` as its only groups.
fn hactl_as(hactl: &Path, socket: &Path, uid: &str, groups: Option<u32>, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", uid, "--regid", uid]);
    match groups {
        Some(g) => cmd.args(["--groups", &g.to_string()]),
        None => cmd.arg("--clear-groups"),
    };
    cmd.arg("--")
        .arg(hactl)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("setpriv runs")
}

/// Lets other uids reach `path` through every directory from `top` down.
fn open_path(top: &Path, path: &Path) {
    let mut p = path.to_path_buf();
    while p.starts_with(top) {
        if let Ok(m) = std::fs::metadata(&p)
            && m.is_dir()
        {
            let mode = m.permissions().mode() | 0o011;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        if !p.pop() {
            break;
        }
    }
}

#[test]
fn debugfile_read_group_and_nagios() {
    if !ha_lab::lab_available("debugfile_read_group_and_nagios") {
        return;
    }
    let t0 = Instant::now();
    let group = TempGroup::new();
    let mut lab = Lab::new(LabOptions::default()).expect("lab");
    let had = find_bin("had").expect("had");
    // A copy other uids can execute wherever the build tree lives.
    let hactl: PathBuf = lab.dir().join("hactl");
    std::fs::copy(find_bin("hactl").expect("hactl"), &hactl).expect("copy hactl");
    std::fs::set_permissions(&hactl, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let vip = lab.vip(0);
    let node = lab.node("node1");
    let dir = node.config_dir();
    let (debugfile, logfile) = (dir.join("ha-debug"), dir.join("ha-log"));
    let state = dir.join("svc.state");
    ClusterSpec::new("admin lab")
        .logfacility(None)
        .node_line(
            "node1",
            &format!(
                "logfile {}\ndebugfile {}",
                logfile.display(),
                debugfile.display()
            ),
        )
        .timers("500ms", "1", "2", "4")
        .auto_failback("on")
        .auth("sha1 admin-test")
        .group(Group::new("node1").ip(vip, 24).res("svc12a"))
        .had_toml(&format!("[control]\nread_group = \"{}\"\n", group.name))
        .write_node(&lab, "node1", &Net::of(&lab))
        .expect("configuration");
    let st = state.display().to_string();
    node.write_file(
        "resource.d/svc12a",
        &format!(
            "#!/bin/sh\ncase \"$1\" in\n start) touch {st} ;;\n stop) rm -f {st} ;;\n \
             status) if [ -e {st} ]; then echo running; else echo stopped; fi ;;\nesac\n"
        ),
        0o755,
    )
    .expect("script");
    lab.node_mut("node1")
        .start_had(&had, &[])
        .expect("had node1");
    let node = lab.node("node1");
    let socket = node.socket_path();
    // Alone, node1 takes its group after initdead.
    let held = lab.wait_until(Duration::from_secs(30), || node.has_addr(vip));
    assert!(held.is_some(), "node1 never took its group");
    println!("group up after {held:?}");

    // debugfile: debug lines (the script runs are logged at debug level); logfile: none.
    let debug = std::fs::read_to_string(&debugfile).expect("debugfile written");
    let log = std::fs::read_to_string(&logfile).expect("logfile written");
    assert!(
        debug
            .lines()
            .any(|l| l.contains(" DEBUG ") && l.contains("running")),
        "debugfile:\n{debug}"
    );
    assert!(debug.lines().any(|l| l.contains(" INFO ")), "{debug}");
    assert!(log.lines().any(|l| l.contains(" INFO ")), "logfile:\n{log}");
    assert!(!log.contains(" DEBUG "), "logfile has debug lines:\n{log}");
    let stderr = std::fs::read_to_string(node.log_path()).expect("had's stderr");
    assert!(
        !stderr.contains(" DEBUG "),
        "stderr has debug lines:\n{stderr}"
    );

    // The socket belongs to the read group, mode 0660.
    let m = std::fs::metadata(&socket).expect("socket");
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(m.gid(), group.gid);
    open_path(lab.dir(), &socket);

    // A member (supplementary group only) may look...
    let o = hactl_as(&hactl, &socket, MEMBER_UID, Some(group.gid), &["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Node node1 (this node)"), "{}", text(&o));
    let o = hactl_as(
        &hactl,
        &socket,
        MEMBER_UID,
        Some(group.gid),
        &["cl-status", "rscstatus"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // ...Nagios sees a lone node: running, no redundancy.
    let o = hactl_as(
        &hactl,
        &socket,
        MEMBER_UID,
        Some(group.gid),
        &["status", "--nagios"],
    );
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("nagios (member): {}", line.trim());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        line.starts_with("HAD WARNING - node node1 active"),
        "{line}"
    );
    assert!(line.contains("1/1 group(s) running (1 here)"), "{line}");
    assert!(line.contains(" | groups_running=1;;1:;0;1"), "{line}");
    assert_eq!(line.lines().count(), 1);

    // ...but not touch.
    for cmd in [&["standby"][..], &["reload"], &["cleanup"], &["takeover"]] {
        let o = hactl_as(&hactl, &socket, MEMBER_UID, Some(group.gid), cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {}", text(&o));
        assert!(
            text(&o).contains("permission denied: the read group may only look"),
            "{cmd:?}: {}",
            text(&o)
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(node.has_addr(vip), "a refused standby moved the group");

    // A stranger cannot even connect; root still can do everything.
    let o = hactl_as(&hactl, &socket, STRANGER_UID, None, &["status"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ermission denied"), "{}", text(&o));
    let o = node.hactl(&hactl, &["status", "--nagios"]).expect("hactl");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // had stopped: the monitored service is down, which is critical.
    lab.node_mut("node1")
        .signal_had(nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM");
    let code = lab
        .node_mut("node1")
        .wait_had_exit(Duration::from_secs(20))
        .expect("wait");
    assert_eq!(code, Some(0));
    let o = lab
        .node("node1")
        .hactl(&hactl, &["status", "--nagios"])
        .expect("hactl");
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("nagios (had stopped): {}", line.trim());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        line.starts_with("HAD CRITICAL - had is not running"),
        "{line}"
    );
    drop(lab);
    drop(group);
    println!("took {:?}", t0.elapsed());
}
