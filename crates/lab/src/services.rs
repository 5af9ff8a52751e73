//! Debian's own services (bind9's `named`, `apache2`, `vsftpd`) run through their init scripts
//! inside lab nodes, as on the seed 000 machines. Nodes share the host's file system and PID
//! namespace, so each node gets what a separate machine would have: its own /var/log, bind
//! cache and zone directory, a web site and an FTP banner that name the node, and `pidof` /
//! `pgrep` that see only the node's processes (the init scripts use them to find "their" daemon).
//!
//! All of it is set up by a wrapper that `Node::start_had` runs in the node's private mount
//! namespace before it becomes `had`, so nothing outside the node changes.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::node::sh_quote;
use crate::{Lab, Node, netns};

/// The DNS zone the seed's site lives in; `node.<zone>` has a TXT record naming the node.
pub const ZONE: &str = "saveol.coop";

/// The init scripts of the services, as haresources names them.
pub const SERVICES: [&str; 3] = ["named", "apache2", "vsftpd"];

/// Whether Debian's bind9, apache2 and vsftpd packages are installed.
pub fn services_installed() -> bool {
    SERVICES
        .iter()
        .all(|s| Path::new("/etc/init.d").join(s).is_file())
        && ["/usr/sbin/named", "/usr/sbin/apache2", "/usr/sbin/vsftpd"]
            .iter()
            .all(|p| Path::new(p).is_file())
}

/// Prepares `node` to run the services with `vip` as the site's address, and returns the
/// wrapper to pass to `Node::start_had` instead of `had` itself.
pub fn prepare(node: &Node, had: &Path, vip: Ipv4Addr) -> anyhow::Result<PathBuf> {
    let had =
        std::fs::canonicalize(had).with_context(|| format!("{}: no such binary", had.display()))?;
    let dir = node.dir.join("services");
    let real = dir.join("real");
    let www = dir.join("www");
    for d in [&dir, &real, &www] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        // apache (www-data) and named (bind) must reach their files through these.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    write(&www.join("index.html"), &format!("{}\n", node.name), 0o644)?;
    write(&dir.join("site.conf"), &site_conf(&www), 0o644)?;
    write(&dir.join("vsftpd.conf"), &vsftpd_conf(&node.name), 0o644)?;
    write(&dir.join("named.conf.local"), &named_conf_local(), 0o644)?;
    write(&dir.join("zone"), &zone(vip, &node.name), 0o644)?;

    // The real tools, called by the namespace-limited wrappers below.
    copy_exec(Path::new("/usr/sbin/killall5"), &real.join("pidof"))?;
    copy_exec(Path::new("/usr/bin/pgrep"), &real.join("pgrep"))?;
    let pkill = real.join("pkill");
    if !pkill.exists() {
        std::os::unix::fs::symlink("pgrep", &pkill)
            .with_context(|| format!("linking {}", pkill.display()))?;
    }
    write(&dir.join("pidof"), &pidof_wrapper(&real), 0o755)?;
    write(&dir.join("pgrep"), &pgrep_wrapper(&real), 0o755)?;

    let wrapper = dir.join("had-in-node");
    write(&wrapper, &had_wrapper(&dir, &had), 0o755)?;
    Ok(wrapper)
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn copy_exec(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", to.display()))
}

/// The wrapper: private mounts over what the services write or read per machine, then had.
fn had_wrapper(dir: &Path, had: &Path) -> String {
    let s = sh_quote(&dir.to_string_lossy());
    let had = sh_quote(&had.to_string_lossy());
    format!(
        r#"#!/bin/sh
# ha-lab: give this node what a separate machine has, then become had.
set -e
S={s}
mount -t tmpfs -o mode=0755 tmpfs /var/log
mkdir -p /var/log/apache2
chown root:adm /var/log/apache2
chmod 0750 /var/log/apache2
mount -t tmpfs -o mode=0775 tmpfs /var/cache/bind
chown root:bind /var/cache/bind
mount -t tmpfs -o mode=0775 tmpfs /var/lib/bind
chown root:bind /var/lib/bind
cp "$S/zone" /var/lib/bind/db.{ZONE}
chmod 0644 /var/lib/bind/db.{ZONE}
mount --bind "$S/named.conf.local" /etc/bind/named.conf.local
mount --bind "$S/site.conf" /etc/apache2/sites-available/000-default.conf
mount --bind "$S/vsftpd.conf" /etc/vsftpd.conf
mount --bind "$S/pidof" /usr/bin/pidof
mount --bind "$S/pgrep" /usr/bin/pgrep
exec {had} "$@"
"#
    )
}

/// `pidof` through the real one, keeping only processes in the caller's network namespace.
fn pidof_wrapper(real: &Path) -> String {
    let real = sh_quote(&real.join("pidof").to_string_lossy());
    format!(
        r#"#!/bin/sh
# ha-lab: nodes share one PID namespace; report only this node's processes.
me=$(readlink /proc/self/ns/net)
pids=$({real} "$@") || exit $?
out=
for p in $pids; do
    [ "$(readlink /proc/$p/ns/net 2>/dev/null)" = "$me" ] && out="$out $p"
done
[ -n "$out" ] || exit 1
echo ${{out# }}
"#
    )
}

/// `pgrep`/`pkill` limited to the caller's network namespace.
fn pgrep_wrapper(real: &Path) -> String {
    let real = sh_quote(&real.to_string_lossy());
    format!(
        r#"#!/bin/sh
# ha-lab: nodes share one PID namespace; match only this node's processes.
exec {real}/"$(basename "$0")" --ns $$ --nslist net "$@"
"#
    )
}

fn site_conf(www: &Path) -> String {
    let www = www.to_string_lossy();
    format!(
        "# ha-lab: the default site, serving the node's name\n\
         <VirtualHost *:80>\n\
         \tServerName {ZONE}\n\
         \tDocumentRoot {www}\n\
         \t<Directory {www}>\n\
         \t\tRequire all granted\n\
         \t</Directory>\n\
         \tErrorLog ${{APACHE_LOG_DIR}}/error.log\n\
         \tCustomLog ${{APACHE_LOG_DIR}}/access.log combined\n\
         </VirtualHost>\n"
    )
}

fn vsftpd_conf(node: &str) -> String {
    format!(
        "# ha-lab: standalone vsftpd (Debian's default expects socket activation)\n\
         listen=YES\n\
         listen_ipv6=NO\n\
         anonymous_enable=NO\n\
         local_enable=YES\n\
         secure_chroot_dir=/var/run/vsftpd/empty\n\
         pam_service_name=vsftpd\n\
         ftpd_banner={node}\n"
    )
}

fn named_conf_local() -> String {
    format!("zone \"{ZONE}\" {{\n\ttype master;\n\tfile \"/var/lib/bind/db.{ZONE}\";\n}};\n")
}

fn zone(vip: Ipv4Addr, node: &str) -> String {
    format!(
        "$TTL 60\n\
         @\tIN\tSOA\tns.{ZONE}. root.{ZONE}. 1 60 60 600 60\n\
         @\tIN\tNS\tns\n\
         ns\tIN\tA\t{vip}\n\
         @\tIN\tA\t{vip}\n\
         www\tIN\tA\t{vip}\n\
         node\tIN\tTXT\t\"{node}\"\n"
    )
}

/// The TXT record `node.<zone>` as served by `ip` from the client: the node answering DNS.
pub fn dns_node(lab: &Lab, ip: Ipv4Addr) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.client_netns(),
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            &format!("@{ip}"),
            &format!("node.{ZONE}"),
            "TXT",
        ])
        .stdin(Stdio::null())
        .output()
        .context("running dig in the client namespace (install bind9-dnsutils)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let answer = text.trim().trim_matches('"');
    if !out.status.success() || answer.is_empty() || answer.starts_with(';') {
        bail!("no DNS answer from {ip}: {}", text.trim());
    }
    Ok(answer.to_owned())
}

/// The FTP greeting's text from `ip:21`, read from the client: the node answering FTP.
pub fn ftp_banner(lab: &Lab, ip: Ipv4Addr, timeout: Duration) -> anyhow::Result<String> {
    netns::in_netns(lab.client_netns(), || {
        let addr = SocketAddr::from((ip, 21));
        let s = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("connect {addr}"))?;
        s.set_read_timeout(Some(timeout))?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .with_context(|| format!("reading the greeting of {addr}"))?;
        match line.trim().strip_prefix("220 ") {
            Some(text) => Ok(text.to_owned()),
            None => bail!("unexpected FTP greeting {line:?}"),
        }
    })
}

/// Runs `/etc/init.d/<service> <verb>` inside the node, as an admin on that machine would.
pub fn init_script(node: &Node, service: &str, verb: &str) -> anyhow::Result<()> {
    if !SERVICES.contains(&service) {
        bail!("{service}: not one of the lab's services {SERVICES:?}");
    }
    let out = node.exec(&format!("/etc/init.d/{service} {verb} >/dev/null 2>&1"))?;
    if !out.status.success() {
        bail!(
            "{}: /etc/init.d/{service} {verb} failed ({})",
            node.name,
            out.status
        );
    }
    Ok(())
}

/// Whether a process of `service` runs inside the node (its own network namespace).
pub fn service_running(node: &Node, service: &str) -> bool {
    node.exec(&format!("pidof {service} >/dev/null"))
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn zone_and_configs_name_the_node() {
        let z = zone(Ipv4Addr::new(198, 18, 7, 100), "node1");
        assert!(z.contains("@\tIN\tA\t198.18.7.100"));
        assert!(z.contains("node\tIN\tTXT\t\"node1\""));
        assert!(vsftpd_conf("node2").contains("ftpd_banner=node2\n"));
        assert!(vsftpd_conf("x").contains("listen=YES\n"));
        assert!(named_conf_local().contains("/var/lib/bind/db.saveol.coop"));
        let w = had_wrapper(Path::new("/tmp/a b"), Path::new("/bin/had"));
        assert!(w.contains("S='/tmp/a b'\n"));
        assert!(w.ends_with("exec '/bin/had' \"$@\"\n"));
    }

    #[test]
    fn pidof_wrapper_keeps_only_this_namespace() {
        // Run the wrapper against the real pidof: this test process is in our namespace.
        let dir = std::env::temp_dir().join(format!("ha-lab-pidof-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real")).unwrap();
        copy_exec(Path::new("/usr/sbin/killall5"), &dir.join("real/pidof")).unwrap();
        write(&dir.join("pidof"), &pidof_wrapper(&dir.join("real")), 0o755).unwrap();
        // A process of our own, in our namespace, with a name nothing else has.
        copy_exec(Path::new("/bin/sleep"), &dir.join("halab-pidof-t")).unwrap();
        let mut child = Command::new(dir.join("halab-pidof-t"))
            .arg("5")
            .spawn()
            .unwrap();
        let out = Command::new(dir.join("pidof"))
            .arg("halab-pidof-t")
            .output()
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let pids = String::from_utf8_lossy(&out.stdout);
        assert_eq!(pids.trim(), child.id().to_string(), "{pids:?}");
        let none = Command::new(dir.join("pidof"))
            .arg("no-such-process-ha-lab")
            .output()
            .unwrap();
        assert_eq!(none.status.code(), Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
