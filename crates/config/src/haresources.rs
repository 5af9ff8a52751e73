//! `haresources`: one resource group per logical line (`NODE RES [RES…]`), with `\`
//! continuations, `SCRIPT::arg::arg` resources and bare IPv4 addresses meaning IPaddr.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::lex::{self, Token};
use crate::node::NodeName;

/// The parsed `haresources`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Haresources {
    /// Resource groups in file order.
    pub groups: Vec<GroupSpec>,
}

/// One resource group: a preferred node and resources started left to right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// The preferred node, lower-cased.
    pub node: NodeName,
    /// Resources in start order; shared with the cluster's view of the group rather than
    /// copied (issue 14: a thousand addresses per group).
    pub resources: std::sync::Arc<[ResourceSpec]>,
    /// 1-based line where the logical line starts.
    pub line: usize,
    /// Where each of `resources` was written (same index), for checks made after parsing;
    /// empty once [`Haresources::forget_spans`] ran.
    pub resource_at: Vec<crate::diag::Span>,
}

impl GroupSpec {
    /// The group's key: its first resource as written.
    pub fn key(&self) -> &str {
        self.resources.first().map_or("", |r| r.raw.as_str())
    }
}

pub use ha_core::config::{ResourceSpec, Word, looks_like_ipv4, looks_like_ipv6};

/// The agents that take an address: `IPaddr`, `IPaddr2` and Heartbeat's `IPv6addr`.
pub fn is_ip_agent(agent: &str) -> bool {
    matches!(agent, "IPaddr" | "IPaddr2" | "IPv6addr")
}

/// Checks an IPv6 argument `ip[/prefix[/iface]]`.
fn check_ipv6_arg(arg: &str) -> Result<(), String> {
    let mut f = arg.split('/');
    let ip = f.next().unwrap_or("");
    let a: Ipv6Addr = ip
        .parse()
        .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
    if a.is_multicast() || a.is_unspecified() || a.is_loopback() {
        return Err(format!(
            "`{ip}` cannot be a virtual address (multicast, unspecified or loopback)"
        ));
    }
    if let Some(p) = f.next()
        && !p.is_empty()
        && !matches!(p.parse::<u8>(), Ok(1..=128))
    {
        return Err(format!(
            "`{p}` is not an IPv6 prefix length (write e.g. `64`)"
        ));
    }
    let _iface = f.next();
    if let Some(x) = f.next() {
        return Err(format!(
            "`{x}`: an IPv6 address takes ip/prefix/interface, with no broadcast"
        ));
    }
    Ok(())
}

/// Checks an IPaddr/IPaddr2/IPv6addr argument; `Err` holds the reason.
fn check_ipaddr_arg(agent: &str, arg: &str) -> Result<(), String> {
    if looks_like_ipv6(arg) {
        return check_ipv6_arg(arg);
    }
    let mut f = arg.split('/');
    let ip = f.next().unwrap_or("");
    if agent == "IPv6addr" {
        return Err(format!("`{ip}` is not an IPv6 address"));
    }
    if ip.parse::<Ipv4Addr>().is_err() {
        return Err(format!("`{ip}` is not an IPv4 or IPv6 address"));
    }
    if let Some(mask) = f.next() {
        let ok = match mask.parse::<u8>() {
            Ok(bits) => bits <= 32,
            Err(_) => mask.parse::<Ipv4Addr>().is_ok(),
        };
        if !ok {
            return Err(format!("`{mask}` is not a netmask (write bits, e.g. `24`)"));
        }
    }
    Ok(())
}

struct LogicalLine<'a> {
    start: usize,
    /// Tokens with the physical line they sit on.
    tokens: Vec<(Token<'a>, lex::Line<'a>)>,
}

fn logical_lines(text: &str) -> Vec<LogicalLine<'_>> {
    let mut out = Vec::new();
    let mut cur: Option<LogicalLine<'_>> = None;
    for line in lex::lines(text) {
        let body = lex::strip_comment(line.text).trim_end_matches(lex::is_space);
        let (body, continues) = match body.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (body, false),
        };
        let entry = cur.get_or_insert_with(|| LogicalLine {
            start: line.number,
            tokens: Vec::new(),
        });
        for t in lex::tokens(body, lex::is_space) {
            entry.tokens.push((t, line.clone()));
        }
        if !continues && let Some(l) = cur.take() {
            out.push(l);
        }
    }
    out.extend(cur);
    out
}

impl Haresources {
    /// Drops where each resource was written. Only the checks made while validating read it
    /// (they fall back to the file when it is gone), and a running daemon keeps its
    /// configuration for its life: 40 bytes a resource (issue 14: idle RSS flat from 1 to
    /// 1,000 addresses).
    pub fn forget_spans(&mut self) {
        for g in &mut self.groups {
            g.resource_at = Vec::new();
        }
    }

    /// Parses `haresources`, checking node names against `nodes` from ha.cf.
    pub fn parse(
        path: &Path,
        text: &str,
        nodes: &[NodeName],
        diags: &mut Diagnostics,
    ) -> Haresources {
        let errors_before = diags.error_count();
        let mut groups: Vec<GroupSpec> = Vec::new();
        let node_names: Vec<&str> = nodes.iter().map(NodeName::as_str).collect();
        for ll in logical_lines(text) {
            let Some(((first, first_line), rest)) = ll.tokens.split_first() else {
                continue;
            };
            let span = first.span(first_line);
            let node = NodeName::new(first.text);
            let mut ok = true;
            if !nodes.is_empty() && !nodes.contains(&node) {
                ok = false;
                let mut help = format!("the nodes are: {}", node_names.join(", "));
                if let Some(s) = did_you_mean(node.as_str(), &node_names) {
                    help = format!("did you mean `{s}`? ({help})");
                }
                diags.push(
                    Diagnostic::file_error(
                        path,
                        format!(
                            "node `{}` is not a `node` in ha.cf (nodes: {})",
                            first.text,
                            node_names.join(", ")
                        ),
                    )
                    .at(&span)
                    .with_help(help),
                );
            }
            if rest.is_empty() {
                diags.push(
                    Diagnostic::file_error(path, format!("node `{node}` has no resources"))
                        .at(&span)
                        .with_help(format!(
                            "list the resources after the node, e.g. `{node} 198.18.0.100 apache2`"
                        )),
                );
                continue;
            }
            // One entry per token: sized once, kept for the daemon's life (issue 14).
            let mut resources = Vec::with_capacity(rest.len());
            let mut resource_at = Vec::with_capacity(rest.len());
            let mut shared = lex::SharedLines::default();
            for (tok, line) in rest {
                let span = shared.span(tok, line);
                let Some(r) = ResourceSpec::parse_word(shared.word(tok, line)) else {
                    diags.push(
                        Diagnostic::file_error(
                            path,
                            format!("resource `{}` has no script name", tok.text),
                        )
                        .at(&span)
                        .with_help("write `SCRIPT::arg`, e.g. `IPaddr::198.18.0.100/24/eth0`"),
                    );
                    ok = false;
                    continue;
                };
                if is_ip_agent(r.agent()) {
                    // `::` also splits an IPv6 address; the agent rejoins the pieces.
                    let arg = r.args().join("::");
                    if let Err(why) = check_ipaddr_arg(r.agent(), &arg) {
                        diags.push(
                            Diagnostic::file_error(path, format!("bad address in `{}`: {why}", tok.text))
                                .at(&span)
                                .with_help("write `IPaddr::ADDRESS[/BITS[/INTERFACE]]`, e.g. `IPaddr::198.18.0.100/24/eth0`"),
                        );
                        ok = false;
                        continue;
                    }
                }
                resources.push(r);
                resource_at.push(span);
            }
            let key = rest[0].0.text;
            if let Some(prev) = groups.iter().find(|g| g.key() == key) {
                diags.push(
                    Diagnostic::file_error(path, format!("group key `{key}` is used twice"))
                        .at(&rest[0].0.span(&rest[0].1))
                        .with_help(format!(
                            "the first resource of a line names its group and must be unique; `{key}` already starts line {}",
                            prev.line
                        )),
                );
                ok = false;
            }
            if ok {
                groups.push(GroupSpec {
                    node,
                    resources: resources.into(),
                    line: ll.start,
                    resource_at,
                });
            }
        }
        if groups.is_empty() && diags.error_count() == errors_before {
            diags.push(
                Diagnostic::file_warning(path, "no resource groups: had will manage nothing")
                    .with_help("add a line such as `alpha 198.18.0.100 apache2`"),
            );
        }
        Haresources { groups }
    }

    /// Finds a group by its key.
    pub fn group(&self, key: &str) -> Option<&GroupSpec> {
        self.groups.iter().find(|g| g.key() == key)
    }

    /// Groups whose preferred node is `node`.
    pub fn groups_of<'a>(&'a self, node: &'a NodeName) -> impl Iterator<Item = &'a GroupSpec> {
        self.groups.iter().filter(move |g| &g.node == node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeName> {
        vec![NodeName::from("alpha"), NodeName::from("beta")]
    }

    fn parse(text: &str) -> (Haresources, Diagnostics) {
        let mut d = Diagnostics::new();
        let h = Haresources::parse(Path::new("/etc/ha.d/haresources"), text, &nodes(), &mut d);
        (h, d)
    }

    fn spec(raw: &str) -> ResourceSpec {
        ResourceSpec::parse(raw).unwrap()
    }

    #[test]
    fn seed_002_line() {
        let mut d = Diagnostics::new();
        let n = vec![
            NodeName::from("srv-web-theodore"),
            NodeName::from("srv-web-bis-theodore"),
        ];
        let text = "#Ressources fournies par le serveur actif\nsrv-web-theodore IPaddr::192.168.200.5/24/enp0s3 apache2\n";
        let h = Haresources::parse(Path::new("h"), text, &n, &mut d);
        assert!(d.is_empty(), "{d}");
        let g = &h.groups[0];
        assert_eq!(g.node.as_str(), "srv-web-theodore");
        assert_eq!(g.line, 2);
        assert_eq!(g.key(), "IPaddr::192.168.200.5/24/enp0s3");
        assert_eq!(g.resources[0].agent(), "IPaddr");
        assert_eq!(g.resources[0].args(), vec!["192.168.200.5/24/enp0s3"]);
        assert_eq!(g.resources[1].raw, "apache2");
        assert_eq!(g.resources[1].agent(), "apache2");
        assert!(g.resources[1].args().is_empty());
        // The user's first attempt, without mask and interface, parses as well.
        let h = Haresources::parse(
            Path::new("h"),
            "srv-web-theodore IPaddr::192.168.200.5 apache2",
            &n,
            &mut d,
        );
        assert_eq!(h.groups[0].resources[0].args(), vec!["192.168.200.5"]);
    }

    #[test]
    fn heartbeat_lab_node1_file() {
        let mut d = Diagnostics::new();
        let n = vec![NodeName::from("node1"), NodeName::from("node2")];
        let h = Haresources::parse(
            Path::new("h"),
            "node1 IPaddr::198.18.0.100/24/hbA0 hbweb\n",
            &n,
            &mut d,
        );
        assert!(d.is_empty(), "{d}");
        assert_eq!(h.groups[0].resources.len(), 2);
        assert_eq!(h.groups[0].resources[1].agent(), "hbweb");
    }

    #[test]
    fn resource_syntax() {
        assert_eq!(spec("10.0.0.1").raw, "10.0.0.1");
        assert_eq!(spec("10.0.0.1").agent(), "IPaddr");
        assert_eq!(spec("10.0.0.1").args(), vec!["10.0.0.1"]);
        // An IPv6 address is bare too, though `::` splits other tokens.
        assert_eq!(spec("2001:db8::10/64/eth0").agent(), "IPaddr");
        assert_eq!(
            spec("2001:db8::10/64/eth0").args(),
            vec!["2001:db8::10/64/eth0"]
        );
        assert_eq!(
            spec("IPv6addr::2001:db8::10").args(),
            vec!["2001:db8", "10"]
        );
        assert_eq!(spec("10.0.0.1/24/eth0").agent(), "IPaddr");
        assert_eq!(spec("httpd::a::b").args(), vec!["a", "b"]);
        assert_eq!(
            spec("IPaddr2::10.0.0.10/24/eth0:1").args(),
            vec!["10.0.0.10/24/eth0:1"]
        );
        assert_eq!(spec("Filesystem::/dev/sda1::/data::ext4").args().len(), 3);
        assert!(ResourceSpec::parse("::x").is_none());
        assert!(looks_like_ipv4("1.2.3.4"));
        assert!(!looks_like_ipv4("a1.2.3.4"));
        assert!(!looks_like_ipv4("1.2.3"));
        assert!(!looks_like_ipv4("1.2.3."));
        assert!(looks_like_ipv4("1.2.3.4.5"));
    }

    #[test]
    fn continuations_comments_crlf_and_case() {
        let text = "# groups\r\nAlpha 198.18.0.100 \\\r\n\tapache2\t# web\r\n\r\nbeta   IPaddr::198.18.0.101 \\\n  named \\\n vsftpd";
        let (h, d) = parse(text);
        assert!(d.is_empty(), "{d}");
        assert_eq!(h.groups.len(), 2);
        assert_eq!(h.groups[0].node.as_str(), "alpha");
        assert_eq!(h.groups[0].line, 2);
        assert_eq!(h.groups[0].resources.len(), 2);
        assert_eq!(h.groups[1].line, 5);
        assert_eq!(
            h.groups[1]
                .resources
                .iter()
                .map(|r| r.agent())
                .collect::<Vec<_>>(),
            vec!["IPaddr", "named", "vsftpd"]
        );
        assert!(h.group("198.18.0.100").is_some());
        assert_eq!(h.groups_of(&NodeName::from("beta")).count(), 1);
    }

    #[test]
    fn a_long_line_is_kept_once_not_once_per_resource() {
        // 1,000 addresses on one line (issue 14's scale shape), a continued line after it.
        let mut text = String::from("alpha 198.18.0.100");
        for i in 0..999 {
            text.push_str(&format!(
                " IPaddr::198.19.{}.{}/16/eth0",
                i / 250,
                i % 250 + 1
            ));
        }
        text.push_str(" \\\n  apache2\n");
        let (h, d) = parse(&text);
        assert!(d.is_empty(), "{d}");
        let at = &h.groups[0].resource_at;
        assert_eq!(at.len(), 1001);
        assert!(
            at[..1000]
                .iter()
                .all(|s| std::sync::Arc::ptr_eq(&s.source_line, &at[0].source_line))
        );
        assert!(
            at[0]
                .source_line
                .starts_with("alpha 198.18.0.100 IPaddr::198.19.0.1/16/eth0")
        );
        // The continuation is its own line, with its own text and position.
        assert_eq!((at[1000].line, at[1000].column), (2, 3));
        assert_eq!(&*at[1000].source_line, "  apache2");
    }

    #[test]
    fn unknown_node_points_at_the_token() {
        let (h, d) = parse("alpha 198.18.0.1\n\n  bata apache2\n");
        assert_eq!(h.groups.len(), 1);
        let e: Vec<_> = d.errors().collect();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].column, e[0].len), (3, 3, 4));
        assert_eq!(
            e[0].message,
            "node `bata` is not a `node` in ha.cf (nodes: alpha, beta)"
        );
        assert!(
            e[0].help
                .as_deref()
                .unwrap()
                .starts_with("did you mean `beta`?")
        );
        let shown = e[0].to_string();
        assert!(
            shown.contains(" 3 |   bata apache2\n   |   ^^^^"),
            "{shown}"
        );
    }

    #[test]
    fn duplicate_key_missing_resources_and_bad_addresses() {
        let (_, d) = parse("alpha apache2\nbeta apache2\n");
        assert_eq!(d.error_count(), 1);
        assert!(d.0[0].message.contains("used twice"));
        let (_, d) = parse("alpha\n");
        assert!(d.0[0].message.contains("no resources"));
        let (_, d) = parse("alpha 10.0.0.300\n");
        assert_eq!(d.error_count(), 1);
        let (_, d) = parse("alpha IPaddr::10.0.0.1/40/eth0\n");
        assert_eq!(d.error_count(), 1);
        let (_, d) = parse("alpha ::x\n");
        assert_eq!(d.error_count(), 1);
    }

    #[test]
    fn ipv6_addresses_in_every_form() {
        let (h, d) = parse(
            "alpha IPaddr2::2001:db8::10/64/eth0 web\n\
             beta IPv6addr::2001:db8::11/64/eth0\n\
             alpha 2001:db8::12/64/eth0\n\
             beta 2001:db8::13 IPaddr::198.18.0.100/24/eth0\n",
        );
        assert!(d.is_empty(), "{d}");
        let g = &h.groups;
        assert_eq!(g[0].resources[0].agent(), "IPaddr2");
        // `::` splits the address too; the agent rejoins the pieces.
        assert_eq!(g[0].resources[0].args().join("::"), "2001:db8::10/64/eth0");
        assert_eq!(g[1].resources[0].agent(), "IPv6addr");
        assert_eq!(g[2].resources[0].agent(), "IPaddr");
        assert_eq!(g[2].resources[0].args(), vec!["2001:db8::12/64/eth0"]);
        assert_eq!(g[2].key(), "2001:db8::12/64/eth0");
        assert_eq!(g[3].resources[0].args(), vec!["2001:db8::13"]);
        assert_eq!(g[3].resources[1].agent(), "IPaddr");
    }

    #[test]
    fn bad_ipv6_addresses_name_line_and_fix() {
        for (text, col, what) in [
            ("alpha IPv6addr::198.18.0.9\n", 7, "not an IPv6 address"),
            ("alpha IPaddr2::2001:db8::10/129/eth0\n", 7, "prefix length"),
            (
                "alpha IPv6addr::2001:db8::10/64/eth0/1.2.3.255\n",
                7,
                "no broadcast",
            ),
            ("alpha IPaddr2::ff02::1/64/eth0\n", 7, "multicast"),
        ] {
            let (_, d) = parse(&format!("# vips\n{text}"));
            assert_eq!(d.error_count(), 1, "{text}: {d}");
            let e = &d.0[0];
            assert_eq!((e.line, e.column), (2, col), "{text}: {d}");
            assert!(e.message.contains(what), "{text}: {}", e.message);
            assert!(e.help.is_some());
        }
    }

    #[test]
    fn empty_file_is_a_warning() {
        let (h, d) = parse("# nothing yet\n\n");
        assert!(h.groups.is_empty());
        assert!(!d.has_errors());
        assert_eq!(d.warning_count(), 1);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let mut d = Diagnostics::new();
            let _ = Haresources::parse(Path::new("x"), &text, &nodes(), &mut d);
        }

        #[test]
        fn never_panics_on_likely_shapes(text in "([a-z0-9.:/\\\\# \\t]{0,20}\r?\n){0,8}") {
            let mut d = Diagnostics::new();
            let _ = Haresources::parse(Path::new("x"), &text, &nodes(), &mut d);
        }
    }
}
