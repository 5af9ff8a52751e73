//! The import against the seeds' keepalived configurations and a corpus of real-world files
//! (tests/data/keepalived): each either imports to files `hactl check` accepts
//! (`ha_config::load`) or fails with reasons that name their line; none crashes.

use std::path::{Path, PathBuf};

use ha_config::{Diagnostics, Severity};
use ha_import::{Options, import, write};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/keepalived")
        .join(rel)
}

/// Import, write into a temporary directory, and load it as `hactl check` does.
fn import_and_check(opts: &Options) -> (ha_import::Output, ha_config::Config, tempfile::TempDir) {
    let mut d = Diagnostics::new();
    let out = import(opts, KEY, &mut d);
    assert!(!d.has_errors(), "{d}");
    let dir = tempfile::tempdir().expect("tempdir");
    write(&out, dir.path(), false).expect("write");
    let cfg = match ha_config::load(dir.path()) {
        Ok(c) => c,
        Err(e) => panic!(
            "hactl check refuses the import of {}:\n{e}",
            opts.file.display()
        ),
    };
    (out, cfg, dir)
}

fn file(out: &ha_import::Output, name: &str) -> String {
    out.files
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.clone())
        .expect("file written")
}

fn typo_fixed(rel: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(data(rel)).expect("seed");
    let p = dir.path().join("keepalived.conf");
    std::fs::write(&p, text.replace("vrp_", "vrrp_")).expect("write");
    (dir, p)
}

#[test]
fn seed_004_the_minimal_pair() {
    let (out, cfg, _dir) = import_and_check(&Options {
        file: data("seeds/seed-004-master.conf"),
        peer: Some(data("seeds/seed-004-backup.conf")),
        node: Some("server1".into()),
        peer_node: Some("server2".into()),
        ..Default::default()
    });
    assert_eq!(cfg.haresources.groups.len(), 1);
    assert_eq!(
        file(&out, "haresources").lines().last(),
        Some("server1 IPaddr2::192.168.1.100/32/eth0")
    );
    // advert_int 1, backup priority 90: 3 s + (256 - 90) / 256 s.
    assert_eq!(cfg.ha_cf.deadtime.as_millis(), 3649);
    assert_eq!(cfg.ha_cf.keepalive.as_millis(), 1000);
    assert_eq!(cfg.ha_cf.auto_failback, ha_config::AutoFailback::On);
    assert!(file(&out, "authkeys").contains(&format!("1 sha256 {KEY}")));
    assert!(out.dropped.is_empty(), "{:?}", out.dropped);
    // The primary interface is tracked, as keepalived does by default.
    assert_eq!(cfg.had.monitors.len(), 1);
    assert_eq!(
        cfg.had.monitors[0].check,
        ha_config::Check::Link("eth0".into())
    );
}

#[test]
fn seed_003_haproxy_pair() {
    let (out, cfg, dir) = import_and_check(&Options {
        file: data("seeds/seed-003-master.conf"),
        peer: Some(data("seeds/seed-003-backup.conf")),
        node: Some("lb1".into()),
        peer_node: Some("lb2".into()),
        ..Default::default()
    });
    assert!(
        file(&out, "haresources").ends_with("lb1 IPaddr2::192.168.69.110/32/eth0/192.168.69.255\n")
    );
    // `killall -0 haproxy` becomes the in-process check, on both nodes (same script).
    let m = &cfg.had.monitors[0];
    assert_eq!(m.check, ha_config::Check::Process("haproxy".into()));
    assert_eq!((m.weight, m.node.as_deref()), (0, None));
    assert_eq!(m.interval.as_secs(), 1);
    assert_eq!(cfg.had.monitors.len(), 2, "process and link");
    assert!(
        out.dropped
            .iter()
            .any(|d| d.contains("seed-003-master.conf:11: lvs_sync_daemon_interface"))
    );
    assert!(file(&out, "ha.cf").contains("#   ") && file(&out, "had.toml").contains("NOT CARRIED"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("authkeys"))
            .expect("authkeys")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn seed_001_weighted_checks_and_the_never_moves_warning() {
    let (_d, master) = typo_fixed("seeds/seed-001-master.conf");
    let (out, cfg, _dir) = import_and_check(&Options {
        file: master,
        peer: Some(data("seeds/seed-001-backup.conf")),
        node: Some("web".into()),
        peer_node: Some("web2".into()),
        ..Default::default()
    });
    assert_eq!(cfg.had.priority_of("web"), Some(100));
    assert_eq!(cfg.had.priority_of("web2"), Some(90));
    let weighted: Vec<_> = cfg.had.monitors.iter().filter(|m| m.weight != 0).collect();
    assert_eq!(weighted.len(), 3);
    for m in &weighted {
        assert_eq!((m.weight, m.node.as_deref()), (11, Some("web")), "{m:?}");
        assert!(matches!(m.check, ha_config::Check::Process(_)));
    }
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("no check result can move it") && n.contains("at least 100")),
        "{:?}",
        out.notes
    );
}

#[test]
fn the_seeds_typos_are_errors_with_their_lines() {
    let mut d = Diagnostics::new();
    import(
        &Options {
            file: data("seeds/seed-001-master.conf"),
            peer: Some(data("seeds/seed-001-backup.conf")),
            ..Default::default()
        },
        KEY,
        &mut d,
    );
    let typos: Vec<(usize, &str)> =
        d.0.iter()
            .filter(|e| e.severity == Severity::Error)
            .map(|e| (e.line, e.help.as_deref().unwrap_or("")))
            .collect();
    assert_eq!(typos.len(), 4, "{d}");
    for ((line, help), want) in typos.iter().zip([1, 7, 13, 19]) {
        assert_eq!(*line, want);
        assert!(help.starts_with("did you mean `vrrp_"), "{help}");
    }
    let mut d = Diagnostics::new();
    import(
        &Options {
            file: data("seeds/seed-003-overview.conf"),
            ..Default::default()
        },
        KEY,
        &mut d,
    );
    let lines: Vec<usize> =
        d.0.iter()
            .filter(|e| e.severity == Severity::Error)
            .map(|e| e.line)
            .collect();
    assert_eq!(lines, vec![3, 8], "{d}");
    assert!(
        d.to_string().contains("did you mean `vrrp_instance`?"),
        "{d}"
    );
    // The master file as printed: a `}` closed the instance early (a page break in the PDF).
    let mut d = Diagnostics::new();
    import(
        &Options {
            file: data("seeds/seed-003-master-as-printed.conf"),
            ..Default::default()
        },
        KEY,
        &mut d,
    );
    let errs: Vec<usize> =
        d.0.iter()
            .filter(|e| e.severity == Severity::Error)
            .map(|e| e.line)
            .collect();
    assert_eq!(errs, vec![29, 7], "{d}");
    assert!(
        d.to_string()
            .contains("`interface` belongs inside a vrrp_instance block"),
        "{d}"
    );
}

#[test]
fn unicast_sync_groups_labels_notify_and_conditionals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("keepalived.conf");
    std::fs::write(
        &p,
        r#"global_defs {
    router_id lb-a
    notification_email { ops@example.com }
}
vrrp_sync_group G {
    group {
        V4
        V6
    }
    notify_master "/usr/local/sbin/ha-up"
}
vrrp_instance V4 {
    state BACKUP
    interface eth1
    virtual_router_id 7
    @lb-a priority 120
    @^lb-a priority 110
    advert_int 0.5
    nopreempt
    preempt_delay 30
    unicast_src_ip 198.18.5.1
    unicast_peer {
        198.18.5.2
    }
    virtual_ipaddress {
        198.18.5.10/24 dev eth1 label eth1:vip
        198.18.5.11/24 dev eth1 scope link
    }
    track_interface {
        eth2 weight -30
    }
}
vrrp_instance V6 {
    state BACKUP
    interface eth1
    virtual_router_id 8
    priority 120
    virtual_ipaddress_excluded {
        2001:db8::10/64
    }
}
virtual_server 198.18.5.10 80 {
    real_server 198.18.5.20 80 {
    }
}
"#,
    )
    .expect("write");
    let (out, cfg, _dir) = import_and_check(&Options {
        file: p.clone(),
        peer_config_id: Some("lb-b".into()),
        peer_node: Some("lb-b".into()),
        ..Default::default()
    });
    let hr = file(&out, "haresources");
    assert!(
        hr.ends_with("lb-a IPaddr2::198.18.5.10/24/eth1:vip IPaddr2::198.18.5.11/24/eth1 IPaddr2::2001:db8::10/64/eth1\n"),
        "{hr}"
    );
    let hacf = file(&out, "ha.cf");
    assert!(
        hacf.contains("ucast eth1 198.18.5.2\nucast eth1 198.18.5.1\n"),
        "{hacf}"
    );
    assert!(hacf.contains("keepalive 500ms\n"), "{hacf}");
    assert_eq!(
        cfg.ha_cf.deadtime.as_millis(),
        1786,
        "3 x 0.5 + (256 - 110) / 256 x 0.5, rounded up"
    );
    assert_eq!(cfg.ha_cf.auto_failback, ha_config::AutoFailback::Off);
    assert_eq!(cfg.had.group.failback_delay.as_secs(), 30);
    assert_eq!(cfg.had.priority_of("lb-a"), Some(120));
    assert_eq!(cfg.had.priority_of("lb-b"), Some(110));
    assert!(cfg.had.notify.active.is_some());
    assert!(
        cfg.had
            .monitors
            .iter()
            .any(|m| m.check == ha_config::Check::Link("eth2".into()) && m.weight == -30)
    );
    let dropped = out.dropped.join("\n");
    for what in [
        "notification_email",
        "virtual_server 198.18.5.10",
        "scope link",
    ] {
        assert!(dropped.contains(what), "{what} missing from {dropped}");
    }
    assert!(
        file(&out, "ha.cf").contains("virtual_server 198.18.5.10"),
        "listed in the file header"
    );
}

#[test]
fn corpus_imports_or_fails_with_line_precise_reasons() {
    let dir = data("corpus");
    let sources = std::fs::read_to_string(dir.join("SOURCES")).expect("SOURCES");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "{} files", files.len());
    let (mut imported, mut refused) = (0, 0);
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(sources.contains(name), "{name} is not in SOURCES");
        let mut d = Diagnostics::new();
        // One file is one node's: the peer's priority is what a user adds when weights ask.
        let out = import(
            &Options {
                file: f.clone(),
                peer_priority: Some(90),
                ..Default::default()
            },
            KEY,
            &mut d,
        );
        if d.has_errors() {
            refused += 1;
            for e in d.0.iter().filter(|e| e.severity == Severity::Error) {
                assert!(e.line > 0, "{name}: an error without a line: {e}");
                assert!(!e.source_line.is_empty(), "{name}: no snippet: {e}");
            }
            let first =
                d.0.iter()
                    .find(|e| e.severity == Severity::Error)
                    .expect("error");
            println!("{name}: refused: line {}: {}", first.line, first.message);
        } else {
            let tmp = tempfile::tempdir().expect("tempdir");
            write(&out, tmp.path(), false).expect("write");
            if let Err(e) = ha_config::load(tmp.path()) {
                panic!("{name}: imported, but hactl check refuses it:\n{e}");
            }
            imported += 1;
            println!("{name}: imported ({} not carried)", out.dropped.len());
        }
    }
    println!(
        "corpus: {} files, {imported} imported, {refused} refused with line-precise reasons",
        files.len()
    );
    assert!(imported >= 10, "only {imported} imported");
}

/// keepalived.conf-like text built from real keywords, braces, quotes, comments and values.
fn soup() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let word = prop_oneof![
        proptest::sample::select(vec![
            "vrrp_instance",
            "vrrp_script",
            "vrrp_sync_group",
            "global_defs",
            "virtual_server",
            "state",
            "MASTER",
            "BACKUP",
            "interface",
            "eth0",
            "priority",
            "100",
            "advert_int",
            "0.5",
            "virtual_ipaddress",
            "198.18.0.1/24",
            "dev",
            "label",
            "eth0:1",
            "brd",
            "scope",
            "track_script",
            "weight",
            "-20",
            "script",
            "\"pidof x\"",
            "unicast_peer",
            "nopreempt",
            "@a",
            "@^a",
            "$X=1",
            "${X}",
            "$X",
            "include",
            "*.conf",
            "{",
            "}",
            "{{",
            "}}",
            "#",
            "!",
            "\"",
            "\\",
            "group",
            "notify_master",
            "/bin/true",
            "authentication",
            "auth_pass",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
    ];
    proptest::collection::vec(
        (proptest::collection::vec(word, 0..6), proptest::bool::ANY),
        0..40,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .map(|(w, crlf)| w.join(" ") + if crlf { "\r\n" } else { "\n" })
            .collect()
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    #[test]
    fn never_panics_and_what_imports_loads(text in soup(), peer in soup()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.conf"), dir.path().join("b.conf"));
        std::fs::write(&a, &text).expect("write");
        std::fs::write(&b, &peer).expect("write");
        let mut d = Diagnostics::new();
        let out = import(
            &Options { file: a, peer: Some(b), ..Default::default() },
            KEY,
            &mut d,
        );
        if !d.has_errors() {
            let tmp = tempfile::tempdir().expect("tempdir");
            write(&out, tmp.path(), false).expect("write");
            if let Err(e) = ha_config::load(tmp.path()) {
                panic!("imported without error, refused by hactl check:\n{e}\n--- input ---\n{text}\n--- peer ---\n{peer}");
            }
        }
    }
}
