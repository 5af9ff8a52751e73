//! The one validation that `had` runs at start and at reload and `hactl check` runs offline:
//! the files (`ha_config::load_for`), the heartbeat media this machine can open, and every
//! haresources resource built as the daemon will run it. What fails only because of this
//! machine is an error on the node itself and a warning in a check made for another node.

use std::path::Path;

use crate::agent::{ResourcePlan, agent_env};
use crate::media::check_medium;
use crate::strict::{Checker, Purpose};
use crate::{Config, Diagnostic, Diagnostics, NodeName, Target};

/// A configuration that passed, with what the daemon needs to run it: its resources as
/// [`ResourcePlan`]s here, built into ha-agents' resources by the daemon
/// ([`Validated::map_resources`]).
#[derive(Debug)]
pub struct Validated<R = ResourcePlan> {
    /// The configuration, its warnings included.
    pub config: Config,
    /// The node it was checked for (`None` for an example directory).
    pub local: Option<NodeName>,
    /// The other node, when `local` is one of the two.
    pub peer: Option<NodeName>,
    /// Every group's resources, built, in haresources order (a resource whose agent is
    /// missing here is left out when the check was made for another node).
    pub resources: Vec<Vec<R>>,
}

impl<R> Validated<R> {
    /// The same configuration with every resource turned into `f(resource)`.
    pub fn map_resources<S>(self, f: impl Fn(R) -> S) -> Validated<S> {
        Validated {
            config: self.config,
            local: self.local,
            peer: self.peer,
            resources: self
                .resources
                .into_iter()
                .map(|g| g.into_iter().map(&f).collect())
                .collect(),
        }
    }

    /// The group keys, in haresources order.
    pub fn keys(&self) -> Vec<String> {
        self.config
            .haresources
            .groups
            .iter()
            .map(|g| g.key().to_string())
            .collect()
    }
}

/// had's state and run directories, checked with the configuration (StrictModes); `None`
/// skips one (a reload keeps the directories it started with).
#[derive(Debug, Default, Clone, Copy)]
pub struct Dirs<'a> {
    /// `--state-dir` (hb_uuid, hb_generation, the FIFO).
    pub state: Option<&'a Path>,
    /// The control socket's directory.
    pub run: Option<&'a Path>,
}

/// Checks `dir` for `target`; every problem found is in the `Err`, or among the warnings
/// of the `Ok`.
pub fn validate(
    dir: &Path,
    target: &Target<'_>,
    dirs: &Dirs<'_>,
) -> Result<Validated, Diagnostics> {
    // Owners and modes are how files were installed on this machine: problems of the machine.
    let strict = |config: Option<&Config>| {
        unsafe_files(dir, config, dirs.state, dirs.run)
            .into_iter()
            .map(|d| target.machine(d))
    };
    let example = (target.here && crate::is_example(dir)).then(|| {
        Diagnostic::file_error(
            &dir.join(crate::EXAMPLE_MARKER),
            format!(
                "{} is an example to install, not a live configuration",
                dir.display()
            ),
        )
        .with_help("copy ha.cf, haresources (and had.toml) into /etc/ha.d, install authkeys with mode 600 and a key of your own; docs/configuration.md shows how")
    });
    let mut config = match crate::load_for(dir, target) {
        Ok(c) => c,
        Err(mut d) => {
            d.0.splice(0..0, example);
            d.0.extend(strict(None));
            return Err(d);
        }
    };
    let mut diags = Diagnostics(std::mem::take(&mut config.warnings));
    diags.0.extend(example);
    diags.0.extend(strict(Some(&config)));
    check_media(&config, target, &mut diags);
    check_read_group(&config, target, &mut diags);
    let resources = build_resources(dir, &config, target, &mut diags);
    if diags.has_errors() {
        return Err(diags);
    }
    let peer = target
        .node
        .as_ref()
        .and_then(|n| config.peers(n).into_iter().next());
    config.warnings = diags.0;
    Ok(Validated {
        config,
        local: target.node.clone(),
        peer,
        resources,
    })
}

/// Every StrictModes violation, as errors naming the file, owner, mode and fix. `config` is
/// `None` when the files did not parse (their programs are then unknown); resources that do
/// not resolve are skipped here (their own check reports them).
pub fn unsafe_files(
    config_dir: &Path,
    config: Option<&Config>,
    state_dir: Option<&Path>,
    run_dir: Option<&Path>,
) -> Vec<Diagnostic> {
    let mut c = Checker::new();
    c.check_config(config_dir, config);
    if let Some(config) = config {
        let env = agent_env(config_dir, config);
        for spec in config
            .haresources
            .groups
            .iter()
            .flat_map(|g| g.resources.iter())
        {
            if let Ok(r) = ResourcePlan::from_spec(spec, &env)
                && let Some(p) = r.program()
            {
                c.check(p, Purpose::Program);
            }
        }
    }
    if let Some(d) = state_dir {
        c.check_state_dir(d);
    }
    if let Some(d) = run_dir {
        c.check(d, Purpose::Directory);
    }
    c.finish()
}

/// What ha-transport's `MediaSet::open` would refuse, placed on the ha.cf line of the medium.
fn check_media(config: &Config, target: &Target<'_>, diags: &mut Diagnostics) {
    let path = config.dir.join("ha.cf");
    for (m, at) in config.ha_cf.media.iter().zip(&config.ha_cf.media_at) {
        let Err(e) = check_medium(m) else {
            continue;
        };
        let d = Diagnostic::file_error(&path, e.to_string()).at(at);
        diags.push(if e.depends_on_machine() {
            target.machine(d.with_help(
                "check the interface with `ip addr`: had needs it, with an address of the medium's family, to open the medium",
            ))
        } else {
            d.with_help("had's `ucast` and `bcast` media are IPv4: write `ucast IFACE IPv4-ADDRESS`")
        });
    }
}

/// `[control] read_group` must name a group of this machine: the socket is chowned to it.
fn check_read_group(config: &Config, target: &Target<'_>, diags: &mut Diagnostics) {
    let c = &config.had.control;
    let Some(name) = &c.read_group else { return };
    if read_group_gid(name).is_none() {
        let d = Diagnostic::file_error(
            &config.dir.join("had.toml"),
            format!("group `{name}` does not exist on this machine"),
        )
        .at(&c.read_group_at)
        .with_help(format!(
            "create it (`groupadd --system {name}`) and add the monitoring users to it"
        ));
        diags.push(target.machine(d));
    }
}

/// The gid of group `name` on this machine.
pub fn read_group_gid(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// Every resource built as `had` runs it; problems placed on the resource in haresources.
fn build_resources(
    dir: &Path,
    config: &Config,
    target: &Target<'_>,
    diags: &mut Diagnostics,
) -> Vec<Vec<ResourcePlan>> {
    let path = config.dir.join("haresources");
    let env = agent_env(dir, config);
    let mut out = Vec::new();
    for g in &config.haresources.groups {
        let mut rs = Vec::new();
        for (i, spec) in g.resources.iter().enumerate() {
            match ResourcePlan::from_spec(spec, &env) {
                Ok(r) => rs.push(r),
                Err(e) => {
                    let d = Diagnostic::file_error(&path, format!("resource {e}"));
                    let d = match g.resource_at.get(i) {
                        Some(at) => d.at(at),
                        None => d,
                    };
                    diags.push(if e.depends_on_machine() {
                        target.machine(d.with_help(
                            "install it on this node (or put an executable script in /etc/ha.d/resource.d), or fix the name",
                        ))
                    } else {
                        d.with_help("see docs/agents.md for the agents and their arguments")
                    });
                }
            }
        }
        out.push(rs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch dir StrictModes accepts: under a root-owned 0755 dir as root, else under
    /// the user's home (had trusts the user running it, as sshd does).
    fn dir(cf: &str, res: &str) -> tempfile::TempDir {
        use std::os::unix::fs::DirBuilderExt;
        let base = if nix::unistd::geteuid().is_root() {
            std::path::PathBuf::from("/run/had-tests")
        } else {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".had-tests")
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&base)
            .expect("base dir");
        let d = tempfile::Builder::new()
            .prefix("validate-")
            .tempdir_in(&base)
            .expect("tempdir");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for (name, text) in [("ha.cf", cf), ("haresources", res)] {
            let p = d.path().join(name);
            std::fs::write(&p, text).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let k = d.path().join("authkeys");
        std::fs::write(&k, "auth 1\n1 sha1 0123456789abcdef0\n").expect("write");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        d
    }

    fn validate(dir: &Path, target: &Target<'_>) -> Result<Validated, Diagnostics> {
        super::validate(dir, target, &Dirs::default())
    }

    fn target(here: bool) -> Target<'static> {
        Target {
            node: Some(NodeName::from("a")),
            here,
            resolve: &crate::ha_cf::no_resolver,
        }
    }

    const CF: &str = "node a b\nbcast lo\nkeepalive 1\ndeadtime 5\n";

    #[test]
    fn missing_agent_is_an_error_here_and_a_warning_elsewhere() {
        let d = dir(CF, "a 198.18.0.1 nosuchservice-12a\n");
        let e = validate(d.path(), &target(true)).expect_err("refused here");
        let errs: Vec<_> = e.errors().collect();
        // lo has no broadcast address, and the agent is missing: two problems of the machine.
        assert_eq!(errs.len(), 2, "{e}");
        assert_eq!(errs[1].line, 1);
        assert_eq!(errs[1].column, 14);
        let ok = validate(d.path(), &target(false)).expect("a warning elsewhere");
        assert_eq!(ok.config.warnings.len(), 2);
        assert_eq!(ok.peer, Some(NodeName::from("b")));
    }

    #[test]
    fn a_configuration_without_spans_is_still_checked_whole() {
        let d = dir(CF, "a 198.18.0.1 nosuchservice-12a\n");
        let mut config = validate(d.path(), &target(false))
            .expect("a warning elsewhere")
            .config;
        config.haresources.forget_spans();
        let mut diags = Diagnostics::default();
        let built = build_resources(d.path(), &config, &target(true), &mut diags);
        // Both resources are looked at (none skipped for want of a span); the missing agent
        // is still an error, placed on the file.
        let errs: Vec<_> = diags.errors().collect();
        assert!(
            errs.iter().any(|e| e.file.ends_with("haresources")
                && e.message.contains("nosuchservice-12a")),
            "{diags}"
        );
        assert_eq!(built.len(), 1);
    }

    #[test]
    fn bad_arguments_and_paths_are_errors_everywhere() {
        let d = dir(
            CF,
            "a 198.18.0.1 Filesystem::/dev/drbd0::/srv\nb /tmp/x drbddisk::r0::extra\n",
        );
        for here in [true, false] {
            let e = validate(d.path(), &target(here)).expect_err("refused");
            let lines: Vec<(usize, usize)> = e
                .errors()
                .filter(|d| d.file.ends_with("haresources"))
                .map(|d| (d.line, d.column))
                .collect();
            assert_eq!(lines, vec![(1, 14), (2, 3), (2, 10)], "here={here}: {e}");
        }
    }

    #[test]
    fn an_example_is_no_live_configuration() {
        let d = dir(
            CF.replace("bcast lo", "ucast lo 127.0.0.2").as_str(),
            "a 198.18.0.1\n",
        );
        std::fs::write(d.path().join(crate::EXAMPLE_MARKER), "example\n").expect("write");
        let e = validate(d.path(), &target(true)).expect_err("had refuses it");
        assert_eq!(e.error_count(), 1, "{e}");
        assert!(
            e.0[0]
                .message
                .ends_with("is an example to install, not a live configuration")
        );
        assert!(validate(d.path(), &target(false)).is_ok());
    }

    #[test]
    fn had_toml_agent_timeouts_reach_the_resolved_resources() {
        let cf = CF.replace("bcast lo", "ucast lo 127.0.0.2");
        let d = dir(&cf, "a 198.18.0.1 web::x other\n");
        let rd = d.path().join("resource.d");
        std::fs::create_dir(&rd).expect("mkdir");
        std::fs::set_permissions(&rd, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for name in ["web", "other"] {
            let p = rd.join(name);
            std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let toml = d.path().join("had.toml");
        std::fs::write(
            &toml,
            "[agent]\nstop_timeout = \"10s\"\n[[resource]]\nname = \"web\"\nstart_timeout = \"3s\"\n",
        )
        .expect("write");
        std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let v = validate(d.path(), &target(true)).expect("valid");
        let limits: Vec<(String, u64, u64)> = v.resources[0]
            .iter()
            .filter_map(|r| match r {
                ResourcePlan::Script(p) => Some((
                    p.name.clone(),
                    p.timeouts.start.as_secs(),
                    p.timeouts.stop.as_secs(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            limits,
            vec![("web::x".into(), 3, 10), ("other".into(), 60, 10)]
        );
    }

    #[test]
    fn ipv6_media_are_checked_like_the_others() {
        let d = dir("node a b\nucast6 nosuch12a 2001:db8::2\n", "a 198.18.0.1\n");
        let e = validate(d.path(), &target(true)).expect_err("refused here");
        let first = e.errors().next().expect("an error");
        assert_eq!((first.line, first.column), (2, 8), "{e}");
        assert!(first.message.contains("no such interface"), "{e}");
        let ok = validate(d.path(), &target(false)).expect("a warning elsewhere");
        assert_eq!(ok.config.warnings.len(), 1);
    }
}
