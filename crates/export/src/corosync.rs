//! The [`Cluster`]'s membership layer as a Corosync 3 `corosync.conf`: knet transport with
//! encryption (the key is `corosync-keygen`'s, not authkeys), the node list, votequorum with
//! `two_node` for a pair.

use std::fmt::Write as _;

use crate::model::Cluster;

/// Renders `corosync.conf` for every node of `c` (the file is the same on all of them).
pub fn render(c: &Cluster) -> String {
    let mut s = String::new();
    for line in crate::header_lines(c) {
        let _ = writeln!(s, "# {}", line.replace(['\n', '\r'], " "));
    }
    s.push_str("#\n# Install as /etc/corosync/corosync.conf on every node, with the same /etc/corosync/authkey.\n\n");
    s.push_str("totem {\n\tversion: 2\n");
    let _ = writeln!(s, "\tcluster_name: {}", c.name);
    s.push_str("\ttransport: knet\n");
    let _ = writeln!(s, "\ttoken: {}", c.token_ms);
    s.push_str("\tcrypto_cipher: aes256\n\tcrypto_hash: sha256\n");
    let links = c.nodes.first().map_or(1, |n| n.addrs.len().max(1));
    for l in 0..links {
        let _ = writeln!(s, "\tinterface {{\n\t\tlinknumber: {l}\n\t}}");
    }
    s.push_str("}\n\nnodelist {\n");
    for n in &c.nodes {
        s.push_str("\tnode {\n");
        let _ = writeln!(s, "\t\tname: {}", n.name);
        let _ = writeln!(s, "\t\tnodeid: {}", n.id);
        for (i, a) in n.addrs.iter().enumerate() {
            let _ = writeln!(s, "\t\tring{i}_addr: {a}");
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n\nquorum {\n\tprovider: corosync_votequorum\n");
    if c.nodes.len() == 2 {
        s.push_str("\ttwo_node: 1\n");
    }
    s.push_str("}\n\nlogging {\n\tto_logfile: yes\n\tlogfile: /var/log/corosync/corosync.log\n\tto_syslog: yes\n\ttimestamp: on\n}\n");
    s
}
