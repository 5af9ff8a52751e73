//! Bad configurations: `had` refuses to start (exit 6) and `hactl check` fails, both naming
//! the file and line; real-world files in Heartbeat's loose syntax are accepted.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use ha_lab::find_bin;

/// This host's name: had and hactl check both check as this host, where every problem of
/// the machine (StrictModes included) is an error (docs/configuration.md, "One check").
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_lowercase()
}

/// A valid ha.cf on any machine: loopback exists everywhere and unicast needs no address.
fn good_cf() -> String {
    format!(
        "keepalive 1\ndeadtime 5\nucast lo 127.0.0.2\nauto_failback on\nnode {} node2\n",
        host()
    )
}

fn good_res() -> String {
    format!("{} 198.18.0.100\n", host())
}
const GOOD_KEYS: &str = "auth 1\n1 sha1 secret\n";

/// A scratch dir on a path had accepts (StrictModes): root-owned 0755 /run/had-tests as
/// root, else the user's runtime dir or home (had trusts the user running it as sshd does).
fn safe_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::DirBuilderExt;
    let base = if nix::unistd::geteuid().is_root() {
        std::path::PathBuf::from("/run/had-tests")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .or_else(|| std::env::var_os("HOME"))
            .map(|d| Path::new(&d).join(".had-tests"))
            .expect("XDG_RUNTIME_DIR or HOME")
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&base)
        .expect("test base dir");
    tempfile::Builder::new()
        .prefix("cfg-")
        .tempdir_in(&base)
        .expect("tempdir")
}

fn write_dir(cf: &str, res: &str, keys: &str, keys_mode: u32) -> tempfile::TempDir {
    let d = safe_tempdir();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (name, text) in [("ha.cf", cf), ("haresources", res)] {
        let p = d.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let k = d.path().join("authkeys");
    std::fs::write(&k, keys).expect("write");
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(keys_mode)).expect("chmod");
    d
}

/// Runs had on `dir` with `state` as its state and run dir; a had that starts (it should
/// not) is stopped after 20 s by its PID, and the test sees its output.
fn had_with_state(dir: &Path, state: &Path) -> Output {
    let logs = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = Command::new(find_bin("had").expect("had built"))
        .arg("--config-dir")
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .arg("--run-dir")
        .arg(state)
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("run had");
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait had") {
            break st;
        }
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            // Our own unreaped child: killing it by its PID cannot hit another process.
            child.kill().expect("stop had");
            break child.wait().expect("wait had");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

fn check(dir: &Path) -> Output {
    let d = safe_tempdir();
    check_with_state(dir, d.path())
}

fn check_with_state(dir: &Path, state: &Path) -> Output {
    Command::new(find_bin("hactl").expect("hactl built"))
        .args(["check", "--config-dir"])
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run hactl")
}

/// Both tools refuse with exit 6 and print `needle` (file:line and the reason).
fn refused(dir: &Path, needles: &[&str]) {
    let state = safe_tempdir();
    refused_with_state(dir, state.path(), needles);
}

fn refused_with_state(dir: &Path, state: &Path, needles: &[&str]) {
    for (tool, out) in [
        ("had", had_with_state(dir, state)),
        ("hactl check", check_with_state(dir, state)),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(6),
            "{tool} exit status; stderr:\n{err}"
        );
        for n in needles {
            assert!(err.contains(n), "{tool}: `{n}` missing from:\n{err}");
        }
    }
}

#[test]
fn missing_node_lines() {
    let d = write_dir(
        "keepalive 1\ndeadtime 5\nbcast eth0\n",
        &good_res(),
        GOOD_KEYS,
        0o600,
    );
    refused(d.path(), &["ha.cf", "node"]);
}

#[test]
fn authkeys_readable_by_others() {
    let d = write_dir(&good_cf(), &good_res(), GOOD_KEYS, 0o644);
    refused(d.path(), &["authkeys", "644", "chmod 600"]);
}

#[test]
fn unknown_auth_method() {
    let d = write_dir(&good_cf(), &good_res(), "auth 1\n1 md4 secret\n", 0o600);
    refused(d.path(), &["authkeys:2", "md4", "md5"]);
}

#[test]
fn unparseable_time() {
    let cf = "keepalive 1\ndeadtime 5s\nbcast eth0\nnode node1 node2\n";
    let d = write_dir(cf, &good_res(), GOOD_KEYS, 0o600);
    refused(d.path(), &["ha.cf:2", "5s"]);
}

#[test]
fn haresources_node_not_in_ha_cf() {
    let d = write_dir(&good_cf(), "node3 198.18.0.100\n", GOOD_KEYS, 0o600);
    refused(d.path(), &["haresources:1", "node3"]);
}

#[test]
fn real_world_files_parse_as_heartbeat_parses_them() {
    let cf = "# ha.cf written by hand\r\nlogfacility\tlocal0 # syslog\r\nkeepalive 500ms\r\n\
              deadtime\t5\r\nbcast eth0,eth1\r\nauto_failback on\r\nnode node1,node2 # both";
    let res = "# group\nnode1 \\\n\t198.18.0.100 \\\n  httpd::a::b\n";
    let d = write_dir(cf, res, "# keys\nauth 1\n1 sha1 secret", 0o600);
    // Checked for node1 from this host: what this machine lacks (eth1, httpd) only warns.
    let out = Command::new(find_bin("hactl").expect("hactl built"))
        .args(["check", "--node-name", "node1", "--config-dir"])
        .arg(d.path())
        .output()
        .expect("run hactl");
    assert!(
        out.status.success(),
        "hactl check refused a valid file:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 node(s), 1 resource group(s), 2 media"),
        "{text}"
    );
}

// StrictModes: each unsafe file refused by both tools, naming the file, what was found and
// the fix. chown needs root: these use the lab's root gate.

const NOBODY: u32 = 65534;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn good_dir() -> tempfile::TempDir {
    write_dir(&good_cf(), &good_res(), GOOD_KEYS, 0o600)
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn strict_authkeys_writable_by_others() {
    if !ha_lab::lab_available("strict_authkeys_writable_by_others") {
        return;
    }
    let d = good_dir();
    let k = d.path().join("authkeys");
    chmod(&k, 0o622);
    refused(
        d.path(),
        &[&shown(&k), "mode 622", &format!("chmod go-w {}", shown(&k))],
    );
}

#[test]
fn strict_authkeys_owned_by_nobody() {
    if !ha_lab::lab_available("strict_authkeys_owned_by_nobody") {
        return;
    }
    let d = good_dir();
    let k = d.path().join("authkeys");
    std::os::unix::fs::lchown(&k, Some(NOBODY), None).expect("chown");
    refused(
        d.path(),
        &[
            &shown(&k),
            "uid 65534",
            &format!("chown root {}", shown(&k)),
        ],
    );
}

#[test]
fn strict_config_files_group_or_world_writable() {
    if !ha_lab::lab_available("strict_config_files_writable") {
        return;
    }
    for (name, mode, who) in [
        ("ha.cf", 0o664, "its group"),
        ("haresources", 0o646, "others"),
        ("ha.cf", 0o666, "group and others"),
    ] {
        let d = good_dir();
        let p = d.path().join(name);
        chmod(&p, mode);
        refused(
            d.path(),
            &[
                &shown(&p),
                who,
                &format!("mode {mode:o}"),
                &format!("chmod go-w {}", shown(&p)),
            ],
        );
    }
}

#[test]
fn strict_symlink_into_a_world_writable_dir() {
    if !ha_lab::lab_available("strict_symlink_into_a_world_writable_dir") {
        return;
    }
    let d = good_dir();
    let open = tempfile::tempdir().expect("tempdir in /tmp");
    let target = open.path().join("haresources");
    std::fs::write(&target, good_res()).expect("write");
    chmod(&target, 0o644);
    let link = d.path().join("haresources");
    std::fs::remove_file(&link).expect("rm");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    refused(
        d.path(),
        &[
            &shown(&link),
            "a symbolic link to",
            "mode 1777",
            "move",
            "/etc/ha.d",
        ],
    );
}

#[test]
fn strict_world_writable_config_dir() {
    if !ha_lab::lab_available("strict_world_writable_config_dir") {
        return;
    }
    let d = good_dir();
    chmod(d.path(), 0o777);
    refused(
        d.path(),
        &["mode 777", &format!("chmod go-w {}", shown(d.path()))],
    );
}

#[test]
fn strict_notify_hook_in_tmp() {
    if !ha_lab::lab_available("strict_notify_hook_in_tmp") {
        return;
    }
    let d = good_dir();
    let open = tempfile::tempdir().expect("tempdir in /tmp");
    let hook = open.path().join("notify.sh");
    std::fs::write(&hook, "#!/bin/sh\n").expect("write");
    chmod(&hook, 0o755);
    let toml = d.path().join("had.toml");
    std::fs::write(
        &toml,
        format!("[notify]\ncommand = \"{}\"\n", hook.display()),
    )
    .expect("write");
    chmod(&toml, 0o644);
    refused(
        d.path(),
        &[
            &shown(&hook),
            "a program had runs as root",
            "mode 1777",
            "move",
            "/usr/local/sbin",
        ],
    );
    // A world-writable dir without the sticky bit: the fix is chmod.
    let open = safe_tempdir();
    chmod(open.path(), 0o777);
    let hook = open.path().join("fence.sh");
    std::fs::write(&hook, "#!/bin/sh\n").expect("write");
    chmod(&hook, 0o755);
    std::fs::write(
        &toml,
        format!("[fence]\ncommand = \"{}\"\n", hook.display()),
    )
    .expect("write");
    refused(
        d.path(),
        &[
            &shown(&hook),
            "mode 777",
            &format!("chmod go-w {}", shown(open.path())),
        ],
    );
}

#[test]
fn strict_command_monitor_writable_by_others() {
    if !ha_lab::lab_available("strict_command_monitor_writable_by_others") {
        return;
    }
    let d = write_dir(
        &good_cf(),
        &format!("{} 198.18.0.100 web\n", host()),
        GOOD_KEYS,
        0o600,
    );
    let check = d.path().join("check-web.sh");
    std::fs::write(&check, "#!/bin/sh\nexit 0\n").expect("write");
    chmod(&check, 0o757);
    let toml = d.path().join("had.toml");
    std::fs::write(
        &toml,
        format!(
            "[[monitor]]\nresource = \"web\"\ncheck = \"command:{} --quiet\"\n",
            check.display()
        ),
    )
    .expect("write");
    chmod(&toml, 0o644);
    std::fs::create_dir(d.path().join("resource.d")).expect("mkdir");
    let web = d.path().join("resource.d/web");
    std::fs::write(&web, "#!/bin/sh\nexit 0\n").expect("write");
    chmod(&web, 0o755);
    refused(
        d.path(),
        &[
            &shown(&check),
            "mode 757",
            &format!("chmod go-w {}", shown(&check)),
        ],
    );
    // The resource.d script haresources resolves to, writable by its group.
    chmod(&check, 0o755);
    chmod(&web, 0o775);
    refused(
        d.path(),
        &[
            &shown(&web),
            "mode 775",
            &format!("chmod go-w {}", shown(&web)),
        ],
    );
}

#[test]
fn strict_fifo_planted_by_another_user() {
    if !ha_lab::lab_available("strict_fifo_planted_by_another_user") {
        return;
    }
    let d = good_dir();
    let state = safe_tempdir();
    let fifo = state.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    std::os::unix::fs::lchown(&fifo, Some(NOBODY), None).expect("chown");
    refused_with_state(
        d.path(),
        state.path(),
        &[&shown(&fifo), "uid 65534", &format!("rm {}", shown(&fifo))],
    );
    let meta = std::fs::symlink_metadata(&fifo).expect("still there");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (NOBODY, 0o600),
        "left as found"
    );
}

#[test]
fn strict_state_file_that_is_a_symlink() {
    if !ha_lab::lab_available("strict_state_file_that_is_a_symlink") {
        return;
    }
    let d = good_dir();
    let state = safe_tempdir();
    let victim = safe_tempdir();
    let target = victim.path().join("shadow");
    std::fs::write(&target, "untouched\n").expect("write");
    let link = state.path().join("hb_generation");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    refused_with_state(
        d.path(),
        state.path(),
        &[&shown(&link), "symbolic link", "cp --remove-destination"],
    );
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "untouched\n"
    );
}

#[test]
fn strict_crc_and_short_keys_are_warnings() {
    let d = write_dir(
        &good_cf(),
        &good_res(),
        "auth 2\n1 sha1 abc\n2 crc\n",
        0o600,
    );
    let out = check(d.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("warning: no authentication"), "{err}");
    assert!(err.contains("key 1 is only 3 character(s) long"), "{err}");
}
