//! ha-config: reads Heartbeat's `ha.cf`, `haresources` and `authkeys` (plus had's own
//! `had.toml`) into typed, validated values, reporting every problem like a compiler.

// Tests may unwrap: a panic there is a failed test, which is the point.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent;
pub mod authkeys;
pub mod check;
pub mod diag;
pub mod ha_cf;
pub mod had_toml;
pub mod haresources;
pub mod hooks;
mod lex;
pub mod media;
pub mod node;
pub mod ping;
pub mod strict;
pub mod time;
pub mod validate;

pub use authkeys::{AuthKey, AuthMethod, Authkeys, check_mode};
pub use check::{EXAMPLE_MARKER, Target, is_example};
pub use diag::{Diagnostic, Diagnostics, Severity, Span};
pub use ha_cf::{AutoFailback, HaCf, Medium};
pub use had_toml::{
    AgentTimeouts, ArpSettings, Check, GroupSettings, HadToml, MonitorSpec, NodePriority,
    ResourceTimeouts,
};
pub use haresources::{GroupSpec, Haresources, ResourceSpec, Word};
pub use hooks::{CommandLine, FenceSettings, NotifySettings};
pub use node::{NodeName, local_node_name};
pub use ping::PingNode;

use std::path::{Path, PathBuf};

use diag::did_you_mean;

/// The whole validated configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// `ha.cf`.
    pub ha_cf: HaCf,
    /// `haresources`.
    pub haresources: Haresources,
    /// `authkeys`.
    pub authkeys: Authkeys,
    /// `had.toml`, or its defaults when absent.
    pub had: HadToml,
    /// Warnings found while loading.
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Checks that `node` is one of the `node` lines in ha.cf.
    // The contract returns a plain Diagnostic; this runs once at start-up.
    #[allow(clippy::result_large_err)]
    pub fn check_local_node(&self, node: &NodeName) -> Result<(), Diagnostic> {
        if self.ha_cf.nodes.contains(node) {
            return Ok(());
        }
        let names: Vec<&str> = self.ha_cf.nodes.iter().map(NodeName::as_str).collect();
        let list = names.join(", ");
        let help = match did_you_mean(node.as_str(), &names) {
            Some(s) => format!(
                "did you mean `{s}`? Node names must match `uname -n`; fix the `node` line or the host name"
            ),
            None => format!(
                "add `{node}` to a `node` line (names must match `uname -n`), or pass `--node-name`"
            ),
        };
        Err(Diagnostic::file_error(
            &self.dir.join("ha.cf"),
            format!("this node, `{node}`, is not a `node` in ha.cf (nodes: {list})"),
        )
        .with_help(help))
    }

    /// The cluster nodes other than `local`.
    pub fn peers(&self, local: &NodeName) -> Vec<NodeName> {
        self.ha_cf
            .nodes
            .iter()
            .filter(|n| *n != local)
            .cloned()
            .collect()
    }
}

/// Reads a config file as text; invalid UTF-8 (Latin-1 comments) is replaced, not refused.
fn read_text(path: &Path, diags: &mut Diagnostics) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => {
            let help = if e.kind() == std::io::ErrorKind::NotFound {
                "create it; see docs/configuration.md for its format".to_string()
            } else {
                "check the file's permissions (had must run as root)".to_string()
            };
            diags.push(
                Diagnostic::file_error(path, format!("cannot read `{}`: {e}", path.display()))
                    .with_help(help),
            );
            None
        }
    }
}

/// Loads `ha.cf`, `haresources`, `authkeys` and the optional `had.toml` from `dir`, checking
/// the files only (names resolve through the system resolver; no node, interface or program
/// checks). `had` and `hactl check` use [`validate::validate`], which calls [`load_for`].
///
/// Every file is checked even when an earlier one has errors, so one run reports every
/// problem. On success the warnings are in [`Config::warnings`].
pub fn load(dir: &Path) -> Result<Config, Diagnostics> {
    let target = Target {
        node: None,
        here: true,
        resolve: &ha_cf::system_resolver,
    };
    load_for(dir, &target)
}

/// [`load`] for `target`: also checks that its node is one of the two in ha.cf, probes this
/// machine as `target` says, and reports problems of the machine (names, interfaces, the
/// authkeys mode) as errors only when the check is made on the node itself.
pub fn load_for(dir: &Path, target: &Target<'_>) -> Result<Config, Diagnostics> {
    let mut diags = Diagnostics::new();

    let ha_cf_path = dir.join("ha.cf");
    let ha_cf = match read_text(&ha_cf_path, &mut diags) {
        Some(text) => HaCf::parse_for(
            &ha_cf_path,
            &text,
            ha_cf::default_udpport(),
            target,
            &mut diags,
        ),
        None => HaCf::default(),
    };

    let hr_path = dir.join("haresources");
    let haresources = match read_text(&hr_path, &mut diags) {
        Some(text) => Haresources::parse(&hr_path, &text, &ha_cf.nodes, &mut diags),
        None => Haresources::default(),
    };

    let ak_path = dir.join("authkeys");
    let authkeys = match read_text(&ak_path, &mut diags) {
        Some(text) => {
            if let Err(d) = check_mode(&ak_path) {
                // The mode is how the file was installed on this machine (git keeps 0644).
                diags.push(target.machine(d));
            }
            Authkeys::parse(&ak_path, &text, &mut diags)
        }
        None => Authkeys::default(),
    };

    let toml_path = dir.join("had.toml");
    let had = if toml_path.exists() {
        match read_text(&toml_path, &mut diags) {
            Some(text) => HadToml::parse(&toml_path, &text, &haresources, &mut diags),
            None => HadToml::default(),
        }
    } else {
        HadToml::default()
    };

    check_had_nodes(&toml_path, &had, &ha_cf, &mut diags);

    let config = Config {
        dir: dir.to_path_buf(),
        ha_cf,
        haresources,
        authkeys,
        had,
        warnings: Vec::new(),
    };
    if let Some(node) = &target.node
        && !config.ha_cf.nodes.is_empty()
        && let Err(d) = config.check_local_node(node)
    {
        diags.push(d);
    }
    if diags.has_errors() {
        return Err(diags);
    }
    Ok(Config {
        warnings: diags.0,
        ..config
    })
}

/// had.toml's node names (`[priority]`, a monitor's `node`) must be ha.cf nodes, and weights
/// need a priority for both nodes: otherwise the weighted rule compares against nothing.
fn check_had_nodes(path: &Path, had: &HadToml, ha_cf: &HaCf, diags: &mut Diagnostics) {
    if ha_cf.nodes.is_empty() {
        return; // ha.cf's own error says so
    }
    let names: Vec<&str> = ha_cf.nodes.iter().map(NodeName::as_str).collect();
    let unknown = |node: &str, line: usize, what: &str| {
        let help = match diag::did_you_mean(node, &names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("nodes in ha.cf: {}", names.join(", ")),
        };
        let mut d = Diagnostic::file_error(
            path,
            format!("{what} names `{node}`, which is not a `node` in ha.cf"),
        )
        .with_help(help);
        d.line = line;
        d
    };
    for p in &had.priority {
        if !names.contains(&p.node.as_str()) {
            diags.push(unknown(&p.node, p.line, "[priority]"));
        }
    }
    for m in &had.monitors {
        if let Some(n) = &m.node
            && !names.contains(&n.as_str())
        {
            diags.push(unknown(n, m.line, "the monitor's `node`"));
        }
    }
    if let Some(m) = had.monitors.iter().find(|m| m.weight != 0) {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| had.priority_of(n).is_none())
            .collect();
        if !missing.is_empty() {
            let mut d = Diagnostic::file_error(
                path,
                format!(
                    "a weighted monitor needs every node's priority; `[priority]` lacks {}",
                    missing.join(", ")
                ),
            )
            .with_help(format!(
                "add e.g. `[priority]` with `{} = 100`",
                missing.first().copied().unwrap_or("node")
            ));
            d.line = m.line;
            diags.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn write(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let mode = if name == "authkeys" { 0o600 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn seed_002_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ha.cf",
            "logfile /var/log/ha-log\nlogfacility local0\nkeepalive 1\ndeadtime 5\nbcast enp0s3\nauto_failback on\nnode srv-web-theodore srv-web-bis-theodore\n",
        );
        write(
            dir.path(),
            "haresources",
            "srv-web-theodore IPaddr::192.168.200.5/24/enp0s3 apache2\n",
        );
        write(dir.path(), "authkeys", "auth 1\n1 md5 motdepasse\n");
        dir
    }

    /// The warnings other than about a short key (the seed's `motdepasse` gets one).
    fn other_warnings(c: &Config) -> Vec<&Diagnostic> {
        c.warnings
            .iter()
            .filter(|w| !w.message.contains("character(s) long"))
            .collect()
    }

    #[test]
    fn loads_seed_002() {
        let dir = seed_002_dir();
        let c = load(dir.path()).unwrap();
        assert_eq!(c.warnings.len(), 1, "the short key: {:?}", c.warnings);
        assert!(other_warnings(&c).is_empty(), "{:?}", c.warnings);
        assert_eq!(c.ha_cf.deadtime, Duration::from_secs(5));
        assert_eq!(
            c.haresources.groups[0].key(),
            "IPaddr::192.168.200.5/24/enp0s3"
        );
        assert_eq!(c.authkeys.active_key().unwrap().method, AuthMethod::Md5);
        assert_eq!(c.had, HadToml::default());
        let me = NodeName::from("SRV-WEB-THEODORE");
        assert!(c.check_local_node(&me).is_ok());
        assert_eq!(c.peers(&me), vec![NodeName::from("srv-web-bis-theodore")]);
        let e = c
            .check_local_node(&NodeName::from("srv-web-theodor"))
            .unwrap_err();
        assert!(
            e.help
                .unwrap()
                .starts_with("did you mean `srv-web-theodore`?")
        );
    }

    #[test]
    fn loads_heartbeat_lab_node1() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ha.cf",
            "# written by heartbeat-lab.sh for node1\nlogfile /var/log/ha-log\ndebugfile /var/log/ha-debug\nlogfacility none\nkeepalive 1\nwarntime 3\ndeadtime 5\ninitdead 10\nbcast hbA0\nauto_failback on\nnode node1\nnode node2\ncrm off\n",
        );
        write(
            dir.path(),
            "haresources",
            "node1 IPaddr::198.18.0.100/24/hbA0 hbweb\n",
        );
        write(dir.path(), "authkeys", "auth 1\n1 sha1 secret\n");
        let c = load(dir.path()).unwrap();
        assert!(other_warnings(&c).is_empty(), "{:?}", c.warnings);
        assert_eq!(
            c.peers(&NodeName::from("node1")),
            vec![NodeName::from("node2")]
        );
        assert_eq!(c.authkeys.keys[&1].secret, b"secret");
    }

    #[test]
    fn reports_every_problem_at_once() {
        let dir = seed_002_dir();
        write(dir.path(), "ha.cf", "keepalive 1\n");
        write(dir.path(), "haresources", "nobody apache2\n");
        write(dir.path(), "authkeys", "auth 1\n1 md4 x\n");
        std::fs::set_permissions(
            dir.path().join("authkeys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write(
            dir.path(),
            "had.toml",
            "[[monitor]]\nresource = \"apache3\"\n",
        );
        let d = load(dir.path()).unwrap_err();
        let msgs: Vec<&str> = d.0.iter().map(|d| d.message.as_str()).collect();
        // ha.cf: no node, no media. haresources: nothing to check nodes against, so no
        // error there. authkeys: mode, method. had.toml: unknown resource.
        assert_eq!(d.error_count(), 5, "{d}");
        assert!(msgs.iter().any(|m| m.contains("mode 644")));
        assert!(msgs.iter().any(|m| m.contains("unknown auth method `md4`")));
        assert!(msgs.iter().any(|m| m.contains("`apache3`")));
        assert!(d.to_string().ends_with("5 errors"));
    }

    #[test]
    fn unknown_haresources_node_is_reported_against_ha_cf_nodes() {
        let dir = seed_002_dir();
        write(dir.path(), "haresources", "srv-web 192.168.200.5 apache2\n");
        let d = load(dir.path()).unwrap_err();
        assert_eq!(d.error_count(), 1, "{d}");
        assert_eq!(
            d.0[0].message,
            "node `srv-web` is not a `node` in ha.cf (nodes: srv-web-theodore, srv-web-bis-theodore)"
        );
    }

    #[test]
    fn repository_examples_load() {
        use std::os::unix::fs::PermissionsExt;
        let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc");
        for seed in ["seed-000", "seed-002"] {
            // Git keeps no 0600 modes: install the example as an admin would, then load it.
            let dir = tempfile::tempdir().unwrap();
            for entry in std::fs::read_dir(etc.join(seed)).unwrap() {
                let entry = entry.unwrap();
                // The marker stays behind, as the install commands in it leave it.
                if entry.file_type().unwrap().is_file() && entry.file_name() != EXAMPLE_MARKER {
                    std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
                }
            }
            let keys = dir.path().join("authkeys");
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
            let c = load(dir.path()).unwrap_or_else(|d| panic!("{seed}:\n{d}"));
            assert!(other_warnings(&c).is_empty(), "{seed}: {:?}", c.warnings);
            if seed == "seed-000" {
                assert!(!c.had.monitors.is_empty(), "seed 000 watches its services");
            }
        }
    }

    #[test]
    fn an_example_is_checked_as_one() {
        let dir = seed_002_dir();
        write(dir.path(), EXAMPLE_MARKER, "example\n");
        // Tools read an example like any directory; `had` refuses it (crate::validate).
        assert!(load(dir.path()).is_ok());
        let example = Target {
            node: None,
            here: false,
            resolve: &ha_cf::no_resolver,
        };
        std::fs::set_permissions(
            dir.path().join("authkeys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let c = load_for(dir.path(), &example).unwrap();
        let w = other_warnings(&c);
        assert_eq!(w.len(), 1, "{:?}", c.warnings);
        assert!(w[0].message.contains("mode 644"));
    }

    #[test]
    fn the_node_checked_for_must_be_in_ha_cf() {
        let dir = seed_002_dir();
        for here in [true, false] {
            let t = Target {
                node: Some(NodeName::from("srv-web")),
                here,
                resolve: &ha_cf::no_resolver,
            };
            let d = load_for(dir.path(), &t).unwrap_err();
            assert_eq!(d.error_count(), 1, "{d}");
            assert!(
                d.errors()
                    .next()
                    .unwrap()
                    .help
                    .as_deref()
                    .unwrap()
                    .starts_with("did you mean `srv-web-theodore`?")
            );
        }
    }

    #[test]
    fn missing_files_are_errors_had_toml_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let d = load(dir.path()).unwrap_err();
        assert_eq!(d.error_count(), 3, "{d}");
        assert!(d.0[0].message.starts_with("cannot read"));
    }

    #[test]
    fn warnings_survive_a_successful_load() {
        let dir = seed_002_dir();
        write(
            dir.path(),
            "ha.cf",
            "node srv-web-theodore srv-web-bis-theodore\r\nbcast enp0s3\r\nwatchdog /dev/watchdog\r\nfrobnicate yes",
        );
        let c = load(dir.path()).unwrap();
        assert_eq!(other_warnings(&c).len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn no_parser_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            let p = Path::new("x");
            let mut d = Diagnostics::new();
            let cf = HaCf::parse_with(p, &text, 694, &ha_cf::no_resolver, &mut d);
            let hr = Haresources::parse(p, &text, &cf.nodes, &mut d);
            let _ = Authkeys::parse(p, &text, &mut d);
            let _ = HadToml::parse(p, &text, &hr, &mut d);
            for diag in &d.0 {
                let _ = diag.to_string();
            }
        }
    }
}
