//! Unit tests of the export over small configurations written to a temp dir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    let mode = if name == "authkeys" { 0o600 } else { 0o755 };
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Loads ha.cf + haresources (+ had.toml) and exports with `opts` and no host scripts.
fn export_with(ha_cf: &str, haresources: &str, had_toml: Option<&str>, opts: &Options) -> Export {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ha.cf", ha_cf);
    write(dir.path(), "haresources", haresources);
    write(dir.path(), "authkeys", "auth 1\n1 sha1 secret\n");
    if let Some(t) = had_toml {
        write(dir.path(), "had.toml", t);
    }
    let config = ha_config::load(dir.path()).unwrap_or_else(|d| panic!("{d}"));
    pacemaker(&config, opts, &Host::default()).unwrap()
}

fn export(ha_cf: &str, haresources: &str, had_toml: Option<&str>) -> Export {
    export_with(ha_cf, haresources, had_toml, &Options::default())
}

const SEED_002_CF: &str = "keepalive 1\ndeadtime 5\nwarntime 3\ninitdead 10\nbcast enp0s3\nauto_failback on\nnode srv-web-theodore srv-web-bis-theodore\n";

#[test]
fn seed_002_maps_every_part() {
    let e = export(
        SEED_002_CF,
        "srv-web-theodore IPaddr::192.168.200.5/24/enp0s3 apache2\n",
        None,
    );
    let cib = &e.cib;
    assert!(
        cib.contains(
            r#"<primitive id="ip-192.168.200.5" class="ocf" provider="heartbeat" type="IPaddr2">"#
        ),
        "{cib}"
    );
    assert!(cib.contains(r#"name="ip" value="192.168.200.5""#));
    assert!(cib.contains(r#"name="cidr_netmask" value="24""#));
    assert!(cib.contains(r#"name="nic" value="enp0s3""#));
    assert!(cib.contains(
        r#"<op id="ip-192.168.200.5-monitor-10s" name="monitor" interval="10s" timeout="20s"/>"#
    ));
    // Nothing on this (empty) host: Pacemaker's `service` class chooses per node.
    assert!(cib.contains(r#"<primitive id="apache2" class="service" type="apache2">"#));
    let group = cib
        .find(r#"<group id="grp-ip-192.168.200.5" description="haresources line 1: srv-web-theodore IPaddr::192.168.200.5/24/enp0s3 apache2">"#)
        .unwrap();
    let ip = cib.find(r#"id="ip-192.168.200.5" class"#).unwrap();
    let web = cib.find(r#"id="apache2" class"#).unwrap();
    assert!(group < ip && ip < web, "members in haresources order");
    assert!(cib.contains(r#"<rsc_location id="grp-ip-192.168.200.5-prefers-srv-web-theodore" rsc="grp-ip-192.168.200.5" node="srv-web-theodore" score="100"/>"#));
    assert!(cib.contains(r#"name="resource-stickiness" value="0""#));
    assert!(cib.contains(r#"name="stonith-enabled" value="false""#));
    assert!(cib.contains(r#"name="dc-deadtime" value="10s""#));
    assert!(cib.contains("STONITH IS OFF"));
    assert!(
        e.cluster.notes[0].level == Level::Danger,
        "the loud note leads"
    );

    let crm = &e.crm;
    assert!(crm.contains("primitive ip-192.168.200.5 ocf:heartbeat:IPaddr2 \\\n\tparams ip=192.168.200.5 cidr_netmask=24 nic=enp0s3 \\\n\top monitor interval=10s timeout=20s\n"), "{crm}");
    assert!(crm.contains("group grp-ip-192.168.200.5 ip-192.168.200.5 apache2 \\\n\tdescription=\"haresources line 1: srv-web-theodore IPaddr::192.168.200.5/24/enp0s3 apache2\"\n"));
    assert!(crm.contains("location grp-ip-192.168.200.5-prefers-srv-web-theodore grp-ip-192.168.200.5 100: srv-web-theodore\n"));
    assert!(crm.contains(
        "property cib-bootstrap-options: stonith-enabled=false cluster-name=had dc-deadtime=10s\n"
    ));
    assert!(crm.contains("rsc_defaults rsc-options: resource-stickiness=0\n"));
    assert!(crm.contains("# !!! STONITH IS OFF"));

    let c = &e.corosync;
    assert!(c.contains("\ttransport: knet\n"), "{c}");
    // deadtime 5 s / 2.2 = 2273 → 2300 ms.
    assert!(c.contains("\ttoken: 2300\n"));
    assert!(c.contains("\ttwo_node: 1\n"));
    assert!(
        c.contains("\t\tname: srv-web-theodore\n\t\tnodeid: 1\n\t\tring0_addr: srv-web-theodore\n")
    );
    assert!(c.contains("\t\tname: srv-web-bis-theodore\n\t\tnodeid: 2\n"));
    assert!(
        e.cluster
            .notes
            .iter()
            .any(|n| n.level == Level::Review && n.text.contains("no address is known"))
    );
}

#[test]
fn every_address_form_becomes_ipaddr2() {
    let e = export(
        SEED_002_CF,
        "srv-web-theodore 10.0.0.6 IPaddr::10.0.0.5 IPaddr2::10.0.0.7/24/eth1:web/10.0.0.255 \
         IPaddr::10.0.0.8/255.255.255.0/eth0 10.0.0.9/16/10.0.255.255\n",
        None,
    );
    let crm = &e.crm;
    for want in [
        "primitive ip-10.0.0.6 ocf:heartbeat:IPaddr2 \\\n\tparams ip=10.0.0.6 \\\n",
        "primitive ip-10.0.0.5 ocf:heartbeat:IPaddr2 \\\n\tparams ip=10.0.0.5 \\\n",
        "params ip=10.0.0.7 cidr_netmask=24 nic=eth1 iflabel=web broadcast=10.0.0.255 \\\n",
        "params ip=10.0.0.8 cidr_netmask=24 nic=eth0 \\\n",
        "params ip=10.0.0.9 cidr_netmask=16 broadcast=10.0.255.255 \\\n",
        "group grp-ip-10.0.0.6 ip-10.0.0.6 ip-10.0.0.5 ip-10.0.0.7 ip-10.0.0.8 ip-10.0.0.9 \\\n",
    ] {
        assert!(crm.contains(want), "missing {want:?} in\n{crm}");
    }
}

#[test]
fn ipv6_addresses_become_ipaddr2_too() {
    let e = export(
        SEED_002_CF,
        "srv-web-theodore IPv6addr::2001:db8::10/64/eth0 IPaddr2::2001:db8::11/64 2001:db8::12\n",
        None,
    );
    let crm = &e.crm;
    for want in [
        "params ip=2001:db8::10 cidr_netmask=64 nic=eth0 \\\n",
        "params ip=2001:db8::11 cidr_netmask=64 \\\n",
        "params ip=2001:db8::12 \\\n",
    ] {
        assert!(crm.contains(want), "missing {want:?} in\n{crm}");
    }
}

#[test]
fn monitors_become_operations_and_thresholds() {
    let e = export(
        "keepalive 1\ndeadtime 5\nucast eth0 10.11.10.11\nucast eth0 10.11.10.12\nauto_failback off\nnode master backup\n",
        "master IPaddr::10.11.10.13/16/eth0 named apache2\nbackup 10.11.10.14 vsftpd\n",
        Some(
            "[[monitor]]\nresource = \"apache2\"\ncheck = \"process:apache2\"\ninterval = \"2s\"\ntimeout = \"1s\"\nrestarts = 2\nwindow = \"600s\"\n\
             [[monitor]]\nresource = \"IPaddr::10.11.10.13/16/eth0\"\ninterval = \"5s\"\ntimeout = \"30s\"\n\
             [[monitor]]\nresource = \"vsftpd\"\ncheck = \"tcp:127.0.0.1:21\"\ninterval = \"500ms\"\nfailures = 3\n",
        ),
    );
    let crm = &e.crm;
    assert!(crm.contains("primitive apache2 service:apache2 \\\n\tmeta migration-threshold=3 failure-timeout=600s \\\n\top monitor interval=2s timeout=20s\n"), "{crm}");
    // Not watched in had.toml: no monitor (had did not watch it either).
    assert!(crm.contains("primitive named service:named\n"));
    // A had.toml monitor on the address replaces the default one.
    assert!(crm.contains("op monitor interval=5s timeout=30s\n"));
    assert!(!crm.contains("ip-10.11.10.13 ocf:heartbeat:IPaddr2 \\\n\tparams ip=10.11.10.13 cidr_netmask=16 nic=eth0 \\\n\top monitor interval=10s"));
    assert!(crm.contains("op monitor interval=500ms timeout=20s\n"));
    assert!(
        e.cluster
            .notes
            .iter()
            .any(|n| { n.text.contains("had.toml:2 1s (apache2)") })
    );
    // Two lines, two groups, each with its preferred node.
    assert!(
        crm.contains("location grp-ip-10.11.10.14-prefers-backup grp-ip-10.11.10.14 100: backup\n")
    );
    assert!(crm.contains("rsc_defaults rsc-options: resource-stickiness=200\n"));
    // ucast addresses in node order.
    assert!(
        e.corosync
            .contains("name: master\n\t\tnodeid: 1\n\t\tring0_addr: 10.11.10.11\n"),
        "{}",
        e.corosync
    );
    assert!(
        e.corosync
            .contains("name: backup\n\t\tnodeid: 2\n\t\tring0_addr: 10.11.10.12\n")
    );
    let notes: Vec<&str> = e.cluster.notes.iter().map(|n| n.text.as_str()).collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("had.toml:2 process `apache2` alive → apache2 (service)")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("`failures = 3`")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("taken from the `ucast` lines")),
        "{notes:?}"
    );
}

#[test]
fn fence_is_named_and_stonith_stays_off_loudly() {
    let e = export(
        SEED_002_CF,
        "srv-web-theodore 10.0.0.6\n",
        Some("[fence]\ncommand = \"/usr/local/sbin/ipmi-power --host bmc-peer --off\"\n"),
    );
    assert!(e.cib.contains("stonith:fence_ipmilan"), "{}", e.cib);
    assert!(e.cib.contains(r#"name="stonith-enabled" value="false""#));
    // crmsh turns `#` lines into XML comments, so `--` is escaped there too.
    assert!(e.crm.contains("# [fence]\n# had.toml [fence] runs `/usr/local/sbin/ipmi-power -\u{2010}host bmc-peer -\u{2010}off` before"), "{}", e.crm);
    assert!(
        !e.crm
            .lines()
            .any(|l| l.starts_with('#') && l.contains("--"))
    );
    // `--` cannot appear inside an XML comment.
    let start = e.cib.find("<!--").unwrap() + 4;
    let end = e.cib.find("-->").unwrap();
    assert!(!e.cib[start..end].contains("--"), "{}", e.cib);
    assert!(
        e.cib[end..].starts_with("-->\n<cib "),
        "one comment, before the root"
    );
    let danger = &e.cluster.notes[0];
    assert_eq!(danger.level, Level::Danger);
    assert!(danger.text.contains("ipmi-power") && danger.text.contains("fence_ipmilan"));
}

#[test]
fn values_are_escaped_and_ids_valid() {
    let e = export(
        SEED_002_CF,
        "srv-web-theodore 10.0.0.6 ocf::heartbeat::Dummy::state=/run/a&b<\"x\">'y' MailTo::root@example.org::Fail&over \
         Filesystem::/dev/sdb1::/srv/data::ext4::rw,noatime Filesystem::-LDATA::/srv/other::xfs\n",
        None,
    );
    let cib = &e.cib;
    assert!(
        cib.contains(r#"value="/run/a&amp;b&lt;&quot;x&quot;&gt;&apos;y&apos;""#),
        "{cib}"
    );
    assert!(cib.contains(r#"value="Fail&amp;over""#));
    assert!(cib.contains(
        r#"<primitive id="fs-srv-data" class="ocf" provider="heartbeat" type="Filesystem">"#
    ));
    assert!(cib.contains(r#"name="options" value="rw,noatime""#));
    assert!(cib.contains(r#"name="device" value="-LDATA""#));
    assert!(
        e.crm.contains("params state=\"/run/a&b<\\\"x\\\">'y'\""),
        "{}",
        e.crm
    );
    // Every id="..." is an NCName and unique.
    let mut seen = std::collections::HashSet::new();
    for part in cib.split(" id=\"").skip(1) {
        let id = &part[..part.find('"').unwrap()];
        if id.chars().all(|c| c.is_ascii_digit()) {
            continue; // node ids are corosync node numbers, in their own space
        }
        assert!(id == id::sanitize(id), "{id}");
        assert!(seen.insert(id.to_string()), "duplicate id {id}");
    }
}

#[test]
fn added_nodes_and_addresses_from_flags() {
    let opts = Options {
        cluster_name: Some("web".into()),
        nodes: vec![
            NodeAddr::parse("srv-web-theodore=198.18.7.11,198.18.8.11").unwrap(),
            NodeAddr::parse("SRV-WEB-BIS-THEODORE=198.18.7.12,198.18.8.12").unwrap(),
            NodeAddr::parse("srv-web-ter=198.18.7.13,198.18.8.13").unwrap(),
        ],
        local_node: None,
    };
    let e = export_with(SEED_002_CF, "srv-web-theodore 10.0.0.6\n", None, &opts);
    let c = &e.corosync;
    assert!(!c.contains("two_node"), "{c}");
    assert!(c.contains("\tcluster_name: web\n"));
    assert!(c.contains("\t\tname: srv-web-ter\n\t\tnodeid: 3\n\t\tring0_addr: 198.18.7.13\n\t\tring1_addr: 198.18.8.13\n"));
    assert!(c.contains("\t\tlinknumber: 1\n"));
    assert!(e.cib.contains(r#"<node id="3" uname="srv-web-ter"/>"#));
    assert!(
        e.cluster
            .notes
            .iter()
            .any(|n| n.text.contains("`srv-web-ter` is not in ha.cf"))
    );

    assert!(NodeAddr::parse("x").is_err());
    assert!(NodeAddr::parse("x=1.2.3").is_err());
    assert!(NodeAddr::parse("a b=1.2.3.4").is_err());
    let uneven = Options {
        nodes: vec![NodeAddr::parse("srv-web-theodore=198.18.7.11,198.18.8.11").unwrap()],
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ha.cf", SEED_002_CF);
    write(dir.path(), "haresources", "srv-web-theodore 10.0.0.6\n");
    write(dir.path(), "authkeys", "auth 1\n1 sha1 secret\n");
    let config = ha_config::load(dir.path()).unwrap();
    let err = pacemaker(&config, &uneven, &Host::default()).unwrap_err();
    assert!(
        err.to_string().contains("one address per Corosync link"),
        "{err}"
    );
    let bad_name = Options {
        cluster_name: Some("has space".into()),
        ..Options::default()
    };
    assert!(pacemaker(&config, &bad_name, &Host::default()).is_err());
}

#[test]
fn scripts_resolve_as_had_resolves_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "ha.cf", SEED_002_CF);
    write(
        d,
        "haresources",
        "srv-web-theodore 10.0.0.6 web::10.0.0.6 apache2 drbddisk::r0\n",
    );
    write(d, "authkeys", "auth 1\n1 sha1 secret\n");
    write(d, "resource.d/web", "#!/bin/sh\n");
    write(d, "init.d/apache2", "#!/bin/sh\n");
    let config = ha_config::load(d).unwrap();
    let host = Host {
        resource_dirs: vec![d.join("resource.d"), d.join("init.d")],
        unit_dirs: vec![],
    };
    let e = pacemaker(&config, &Options::default(), &host).unwrap();
    assert!(e.crm.contains("primitive web lsb:web\n"), "{}", e.crm);
    assert!(e.crm.contains("primitive apache2 lsb:apache2\n"));
    assert!(
        e.crm
            .contains("clone ms-drbd-r0 drbd-r0 \\\n\tmeta promotable=true")
    );
    assert!(e.crm.contains("order drbd-r0-before-grp-ip-10.0.0.6 Mandatory: ms-drbd-r0:promote grp-ip-10.0.0.6:start\n") || e.crm.contains("Mandatory: ms-drbd-r0:promote grp-ip-10.0.0.6:start\n"), "{}", e.crm);
    let notes: Vec<&Note> = e.cluster.notes.iter().collect();
    assert!(
        notes.iter().any(
            |n| n.level == Level::Danger && n.text.contains("`web::10.0.0.6` passes arguments")
        ),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.text.contains("install it as /etc/init.d/web")),
        "{notes:?}"
    );
}

#[test]
fn unconvertible_resources_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "ha.cf", SEED_002_CF);
    write(
        d,
        "haresources",
        "# comment\nsrv-web-theodore 10.0.0.6 Filesystem::/dev/sdb1\n",
    );
    write(d, "authkeys", "auth 1\n1 sha1 secret\n");
    let config = ha_config::load(d).unwrap();
    let err = pacemaker(&config, &Options::default(), &Host::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "haresources:2: `Filesystem::/dev/sdb1`: Filesystem takes device::mountpoint::fstype[::options]"
    );
}

#[test]
fn wrap_keeps_words() {
    assert_eq!(wrap("a bb ccc dddd", 6), vec!["a bb", "ccc", "dddd"]);
    assert_eq!(
        wrap("averyveryverylongword x", 5),
        vec!["averyveryverylongword", "x"]
    );
    assert!(wrap("", 5).is_empty());
}

#[test]
fn ucast_addresses_are_read_per_interface_and_never_mixed() {
    let two_nets = export(
        "deadtime 5\nucast eth0 10.0.0.1\nucast eth0 10.0.0.2\nucast eth1 10.1.0.1\nucast eth1 10.1.0.2\nnode a b\n",
        "a 10.0.0.100\n",
        None,
    );
    let c = &two_nets.corosync;
    assert!(
        c.contains("name: a\n\t\tnodeid: 1\n\t\tring0_addr: 10.0.0.1\n\t\tring1_addr: 10.1.0.1\n"),
        "{c}"
    );
    assert!(
        c.contains("name: b\n\t\tnodeid: 2\n\t\tring0_addr: 10.0.0.2\n\t\tring1_addr: 10.1.0.2\n"),
        "{c}"
    );
    // One node's own file: the peer's address on two networks is not two nodes' addresses.
    let own = "deadtime 5\nucast eth0 10.0.0.2\nucast eth1 10.1.0.2\nnode a b\n";
    let e = export(own, "a 10.0.0.100\n", None);
    assert!(
        e.corosync.contains("ring0_addr: a\n") && e.corosync.contains("ring0_addr: b\n"),
        "{}",
        e.corosync
    );
    // The peer's lone address, when this machine is known to be `a`.
    let opts = Options {
        local_node: Some("a".into()),
        ..Options::default()
    };
    let e = export_with(
        "deadtime 5\nucast eth0 10.0.0.2\nnode a b\n",
        "a 10.0.0.100\n",
        None,
        &opts,
    );
    assert!(
        e.corosync
            .contains("name: b\n\t\tnodeid: 2\n\t\tring0_addr: 10.0.0.2\n"),
        "{}",
        e.corosync
    );
    assert!(
        e.corosync
            .contains("name: a\n\t\tnodeid: 1\n\t\tring0_addr: a\n"),
        "{}",
        e.corosync
    );
}

#[test]
fn keepalived_style_tracking_maps_to_scores_rules_and_notes() {
    let e = export(
        "deadtime 5\nbcast eth0\nauto_failback off\nnode node1 node2\n",
        "node1 IPaddr2::10.0.0.5/24/eth0 nginx\n",
        Some(
            "[priority]\nnode1 = 100\nnode2 = 100\n\n[group]\nfailback_delay = \"5s\"\n\n\
             [[monitor]]\nresource = \"nginx\"\ncheck = \"process:nginx\"\nweight = -20\nrise = 2\nnode = \"node1\"\n\n\
             [[monitor]]\nresource = \"IPaddr2::10.0.0.5/24/eth0\"\ncheck = \"link:eth0\"\n",
        ),
    );
    let crm = &e.crm;
    // Equal priorities: the haresources node wins the tie, as in had.
    assert!(
        crm.contains("location grp-ip-10.0.0.5-prefers-node1 grp-ip-10.0.0.5 101: node1\n"),
        "{crm}"
    );
    assert!(crm.contains("location grp-ip-10.0.0.5-prefers-node2 grp-ip-10.0.0.5 100: node2\n"));
    assert!(crm.contains("location grp-ip-10.0.0.5-needs-eth0 grp-ip-10.0.0.5 rule -inf: not_defined ethmonitor-eth0 or ethmonitor-eth0 number:lte 0\n"));
    assert!(crm.contains("primitive ethmon-eth0 ocf:heartbeat:ethmonitor \\\n\tparams interface=eth0 \\\n\top monitor interval=10s timeout=60s\nclone cl-ethmon-eth0 ethmon-eth0\n"));
    // Stickiness above the highest score, so `auto_failback off` still holds.
    assert!(crm.contains("resource-stickiness=201"), "{crm}");
    // The weighted check keeps its monitor but moves nothing by itself.
    assert!(
        crm.contains("primitive nginx service:nginx \\\n\top monitor interval=2s timeout=20s\n"),
        "{crm}"
    );
    assert!(e.cib.contains(r#"<expression id="grp-ip-10.0.0.5-needs-eth0-rule-expression-0" attribute="ethmonitor-eth0" operation="lte" value="0" type="number"/>"#), "{}", e.cib);
    let notes: Vec<&str> = e.cluster.notes.iter().map(|n| n.text.as_str()).collect();
    for want in [
        "weighted checks are not carried",
        "`rise = 2`",
        "run on one node only",
        "failback_delay = 5s",
        "[priority] (node1=100, node2=100)",
    ] {
        assert!(notes.iter().any(|n| n.contains(want)), "{want}: {notes:?}");
    }
}
