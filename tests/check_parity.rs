//! `had` at start and `hactl check` run one validation: a table of broken configurations,
//! each refused by both (exit 6) at the same file:line. Both run as this host (`uname -n`
//! is a node), so problems of the machine are errors for both; `hactl check --node-name`
//! for the other node turns those (and only those) into warnings.
//!
//! Host names in the table end in `.invalid` (RFC 6761): they never resolve.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ha_lab::find_bin;

const PEER: &str = "peer-12a";

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_lowercase()
}

/// A configuration every machine accepts: loopback exists everywhere, and a unicast
/// medium needs no address on its interface.
fn base_cf(host: &str) -> String {
    format!("keepalive 1\ndeadtime 5\nucast lo 127.0.0.2\nauto_failback on\nnode {host} {PEER}\n")
}

struct Case {
    name: &'static str,
    /// ha.cf; `{host}` is this host's name.
    cf: String,
    res: String,
    /// had.toml, if not empty.
    toml: String,
    keys_mode: u32,
    cf_mode: u32,
    /// Where the error must be, as `file:line` (`file` alone for a whole-file problem).
    at: &'static str,
    /// Text the message must contain.
    says: &'static str,
    /// A problem of this machine: a warning in a check made for the other node.
    machine: bool,
}

fn cases(host: &str) -> Vec<Case> {
    let cf = base_cf(host);
    let res = format!("{host} 198.18.0.100\n");
    let case = |name, cf: String, res: String, at, says, machine| Case {
        name,
        cf,
        res,
        toml: String::new(),
        keys_mode: 0o600,
        cf_mode: 0o644,
        at,
        says,
        machine,
    };
    let mut v = vec![
        case(
            "agent that does not exist",
            cf.clone(),
            format!("{host} 198.18.0.100 nosuchservice-12a\n"),
            "haresources:1",
            "cannot locate resource script `nosuchservice-12a`",
            true,
        ),
        case(
            "Filesystem with an argument missing",
            cf.clone(),
            format!("{host} 198.18.0.100 Filesystem::/dev/drbd0::/srv\n"),
            "haresources:1",
            "Filesystem takes device::mountpoint::fstype",
            false,
        ),
        case(
            "agent given as a path",
            cf.clone(),
            format!("{host} 198.18.0.100 /tmp/x\n"),
            "haresources:1",
            "is not a resource script name",
            false,
        ),
        case(
            "node list without this host",
            "keepalive 1\ndeadtime 5\nucast lo 127.0.0.2\nnode other-12a peer-12a\n".into(),
            "other-12a 198.18.0.100\n".into(),
            "ha.cf",
            "is not a `node` in ha.cf",
            false,
        ),
        case(
            "three nodes",
            format!("{cf}node third-12a\n"),
            res.clone(),
            "ha.cf:6",
            "`third-12a` is a third node",
            false,
        ),
        case(
            "ucast6 to a loopback peer",
            format!("{cf}ucast6 lo ::1\n"),
            res.clone(),
            "ha.cf:6",
            "cannot be a ucast6 peer",
            false,
        ),
        case(
            "ucast6 on an interface that does not exist",
            format!("{cf}ucast6 nosuch12a0 2001:db8::2\n"),
            res.clone(),
            "ha.cf:6",
            "ucast6 nosuch12a0: no such interface",
            true,
        ),
        case(
            "ping node that does not resolve",
            format!("{cf}ping gateway.invalid\n"),
            res.clone(),
            "ha.cf:6",
            "`gateway.invalid` is not an IPv4 address or a resolvable host name",
            true,
        ),
        case(
            "ucast peer that does not resolve",
            format!("{cf}ucast lo peer.example.invalid\n"),
            res.clone(),
            "ha.cf:6",
            "`peer.example.invalid` is neither an IP address nor a resolvable host",
            true,
        ),
        case(
            "interface that does not exist",
            format!("{cf}bcast nosuch12a0\n"),
            res.clone(),
            "ha.cf:6",
            "bcast nosuch12a0: no such interface",
            true,
        ),
        case(
            "near miss of a directive",
            format!("{cf}deadtim 10\n"),
            res.clone(),
            "ha.cf:6",
            "did you mean `deadtime`?",
            false,
        ),
        Case {
            keys_mode: 0o644,
            ..case(
                "authkeys readable by others",
                cf.clone(),
                res.clone(),
                "authkeys",
                "mode 644",
                true,
            )
        },
        // StrictModes (docs/security.md): a file others may write, through the same door.
        Case {
            cf_mode: 0o646,
            ..case(
                "ha.cf writable by others",
                cf.clone(),
                res.clone(),
                "ha.cf",
                "mode 646",
                true,
            )
        },
        Case {
            toml: "[agent]\nstop_timeout = 0\n".into(),
            ..case(
                "agent stop timeout of zero",
                cf.clone(),
                res.clone(),
                "had.toml:2",
                "`agent.stop_timeout` must be greater than zero",
                false,
            )
        },
        Case {
            toml: "[[resource]]\nname = \"IPadr\"\nstart_timeout = \"3s\"\n".into(),
            ..case(
                "timeouts for a resource not in haresources",
                cf.clone(),
                res.clone(),
                "had.toml:2",
                "did you mean `IPaddr`?",
                false,
            )
        },
    ];
    if ["/usr/sbin/drbdadm", "/sbin/drbdadm"]
        .iter()
        .any(|p| Path::new(p).exists())
    {
        println!("drbdadm is installed here: the `drbddisk::r0` row cannot run");
    } else {
        v.push(case(
            "drbddisk without drbdadm",
            cf.clone(),
            format!("{host} 198.18.0.100 drbddisk::r0\n"),
            "haresources:1",
            "drbddisk needs drbdadm",
            true,
        ));
    }
    v
}

/// A scratch dir StrictModes accepts: under root-owned 0755 /run/had-tests as root, else
/// under the user's home (had trusts the user running it, as sshd does).
fn safe_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::DirBuilderExt;
    let base = if nix::unistd::geteuid().is_root() {
        std::path::PathBuf::from("/run/had-tests")
    } else {
        Path::new(&std::env::var_os("HOME").expect("HOME")).join(".had-tests")
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&base)
        .expect("test base dir");
    let d = tempfile::Builder::new()
        .prefix("parity-")
        .tempdir_in(&base)
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn write_dir(c: &Case) -> tempfile::TempDir {
    let d = safe_tempdir();
    for (name, text) in [("ha.cf", &c.cf), ("haresources", &c.res)] {
        let p = d.path().join(name);
        std::fs::write(&p, text).expect("write");
        let mode = if name == "ha.cf" { c.cf_mode } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    if !c.toml.is_empty() {
        let p = d.path().join("had.toml");
        std::fs::write(&p, &c.toml).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let k = d.path().join("authkeys");
    std::fs::write(&k, "auth 1\n1 sha1 0123456789abcdef0\n").expect("write");
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(c.keys_mode)).expect("chmod");
    d
}

/// Runs `cmd`, killing it after `limit` (a `had` that wrongly starts must not hang the test).
fn run(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn had(dir: &Path) -> Output {
    let d = safe_tempdir();
    let mut cmd = Command::new(find_bin("had").expect("had built"));
    cmd.arg("--config-dir")
        .arg(dir)
        .arg("--state-dir")
        .arg(d.path())
        .arg("--run-dir")
        .arg(d.path());
    run(cmd, Duration::from_secs(30))
}

fn check(dir: &Path, node: Option<&str>) -> Output {
    let d = safe_tempdir();
    let mut cmd = Command::new(find_bin("hactl").expect("hactl built"));
    cmd.args(["check", "--config-dir"])
        .arg(dir)
        .arg("--state-dir")
        .arg(d.path());
    if let Some(n) = node {
        cmd.args(["--node-name", n]);
    }
    run(cmd, Duration::from_secs(30))
}

/// The `file:line` of every error in a report, file names without their directory.
fn error_places(stderr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_error = false;
    for l in stderr.lines() {
        if l.starts_with("error: ") {
            in_error = true;
        } else if l.starts_with("warning: ") {
            in_error = false;
        } else if in_error && let Some(p) = l.trim_start().strip_prefix("--> ") {
            let name = Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // file:line:column -> file:line
            let parts: Vec<&str> = name.split(':').collect();
            out.push(parts[..parts.len().min(2)].join(":"));
            in_error = false;
        }
    }
    out
}

#[test]
fn the_base_configuration_passes_the_check() {
    let host = host();
    let c = Case {
        name: "base",
        cf: base_cf(&host),
        res: format!("{host} 198.18.0.100\n"),
        toml: String::new(),
        keys_mode: 0o600,
        cf_mode: 0o644,
        at: "",
        says: "",
        machine: false,
    };
    let stdout = passes(&c);
    assert!(
        stdout.contains(&format!("checked as node {host} (this host)")),
        "{stdout}"
    );
    assert!(!stdout.contains("agent timeouts"), "{stdout}");
    // had.toml's agent limits are shown as had will use them.
    let c = Case {
        toml: "[agent]\nstart_timeout = \"90s\"\n[[resource]]\nname = \"IPaddr\"\nstop_timeout = \"2500ms\"\n"
            .into(),
        ..c
    };
    let stdout = passes(&c);
    assert!(
        stdout.contains("agent timeouts: start 90 s, stop 60 s; IPaddr: start 90 s, stop 2.5 s"),
        "{stdout}"
    );
}

/// `hactl check` of `c`'s files exits 0; its standard output.
fn passes(c: &Case) -> String {
    let d = write_dir(c);
    let out = check(d.path(), None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn had_and_hactl_check_refuse_the_same_configurations_at_the_same_place() {
    let host = host();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    for c in cases(&host) {
        let d = write_dir(&c);
        let h = had(d.path());
        let k = check(d.path(), None);
        let (he, ke) = (
            String::from_utf8_lossy(&h.stderr).into_owned(),
            String::from_utf8_lossy(&k.stderr).into_owned(),
        );
        assert_eq!(h.status.code(), Some(6), "{}: had\n{he}", c.name);
        assert_eq!(k.status.code(), Some(6), "{}: hactl check\n{ke}", c.name);
        let (hp, kp) = (error_places(&he), error_places(&ke));
        assert_eq!(hp, kp, "{}: had and hactl check disagree", c.name);
        assert_eq!(hp, vec![c.at.to_string()], "{}: had:\n{he}", c.name);
        for (tool, err) in [("had", &he), ("hactl check", &ke)] {
            assert!(
                err.contains(c.says),
                "{}: {tool} lacks `{}`:\n{err}",
                c.name,
                c.says
            );
        }
        // Checked for the other node, from here: only problems of this machine soften.
        if c.cf.contains(&host) {
            let other = check(d.path(), Some(PEER));
            let oe = String::from_utf8_lossy(&other.stderr);
            let want = if c.machine { 0 } else { 6 };
            assert_eq!(
                other.status.code(),
                Some(want),
                "{}: hactl check --node-name {PEER}\n{oe}",
                c.name
            );
            let out = String::from_utf8_lossy(&other.stdout);
            if c.machine {
                assert!(
                    oe.contains(c.says),
                    "{}: the warning names it:\n{oe}",
                    c.name
                );
                assert!(
                    out.contains(&format!("for node {PEER} from host {host}")),
                    "{out}"
                );
            }
        }
        rows.push(format!("{:<40} {:<16} machine={}", c.name, c.at, c.machine));
    }
    println!("{} configurations, {:?}:", rows.len(), t0.elapsed());
    for r in rows {
        println!("  {r}");
    }
}
