//! Bad configurations: `had` refuses to start (exit 6) and `hactl check` fails, both naming
//! the file and line; real-world files in Heartbeat's loose syntax are accepted.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use ha_lab::find_bin;

const GOOD_CF: &str = "keepalive 1\ndeadtime 5\nbcast eth0\nauto_failback on\nnode node1 node2\n";
const GOOD_RES: &str = "node1 198.18.0.100\n";
const GOOD_KEYS: &str = "auth 1\n1 sha1 secret\n";

fn write_dir(cf: &str, res: &str, keys: &str, keys_mode: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("ha.cf"), cf).expect("write");
    std::fs::write(d.path().join("haresources"), res).expect("write");
    let k = d.path().join("authkeys");
    std::fs::write(&k, keys).expect("write");
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(keys_mode)).expect("chmod");
    d
}

fn had(dir: &Path) -> Output {
    let d = tempfile::tempdir().expect("tempdir");
    Command::new(find_bin("had").expect("had built"))
        .arg("--config-dir")
        .arg(dir)
        .args(["--node-name", "node1", "--state-dir"])
        .arg(d.path())
        .arg("--run-dir")
        .arg(d.path())
        .output()
        .expect("run had")
}

fn check(dir: &Path) -> Output {
    Command::new(find_bin("hactl").expect("hactl built"))
        .args(["check", "--config-dir"])
        .arg(dir)
        .output()
        .expect("run hactl")
}

/// Both tools refuse with exit 6 and print `needle` (file:line and the reason).
fn refused(dir: &Path, needles: &[&str]) {
    for (tool, out) in [("had", had(dir)), ("hactl check", check(dir))] {
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
        GOOD_RES,
        GOOD_KEYS,
        0o600,
    );
    refused(d.path(), &["ha.cf", "node"]);
}

#[test]
fn authkeys_readable_by_others() {
    let d = write_dir(GOOD_CF, GOOD_RES, GOOD_KEYS, 0o644);
    refused(d.path(), &["authkeys", "644", "chmod 600"]);
}

#[test]
fn unknown_auth_method() {
    let d = write_dir(GOOD_CF, GOOD_RES, "auth 1\n1 md4 secret\n", 0o600);
    refused(d.path(), &["authkeys:2", "md4", "md5"]);
}

#[test]
fn unparseable_time() {
    let cf = "keepalive 1\ndeadtime 5s\nbcast eth0\nnode node1 node2\n";
    let d = write_dir(cf, GOOD_RES, GOOD_KEYS, 0o600);
    refused(d.path(), &["ha.cf:2", "5s"]);
}

#[test]
fn haresources_node_not_in_ha_cf() {
    let d = write_dir(GOOD_CF, "node3 198.18.0.100\n", GOOD_KEYS, 0o600);
    refused(d.path(), &["haresources:1", "node3"]);
}

#[test]
fn real_world_files_parse_as_heartbeat_parses_them() {
    let cf = "# ha.cf written by hand\r\nlogfacility\tlocal0 # syslog\r\nkeepalive 500ms\r\n\
              deadtime\t5\r\nbcast eth0,eth1\r\nauto_failback on\r\nnode node1,node2 # both";
    let res = "# group\nnode1 \\\n\t198.18.0.100 \\\n  httpd::a::b\n";
    let d = write_dir(cf, res, "# keys\nauth 1\n1 sha1 secret", 0o600);
    let out = check(d.path());
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
