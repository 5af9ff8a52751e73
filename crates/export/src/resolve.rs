//! Where a haresources service name is found on the exporting machine, in had's order
//! (`resource.d` of the config dir, `/etc/ha.d/resource.d`, `/etc/init.d`, then a systemd
//! unit), so the export names the same program had would run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The directories the export looks in.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Script directories, in had's order; one named `init.d` holds LSB scripts.
    pub resource_dirs: Vec<PathBuf>,
    /// systemd unit directories.
    pub unit_dirs: Vec<PathBuf>,
}

/// What a service name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A Heartbeat `resource.d` script (not in an `init.d` directory).
    ResourceD(PathBuf),
    /// An LSB init script.
    InitD(PathBuf),
    /// A systemd unit file (`NAME.service`).
    Systemd(PathBuf),
    /// Found nowhere here.
    Unknown,
}

impl Host {
    /// The places had itself searches for `config_dir` (see ha-daemon's `agent_env`), plus
    /// systemd's unit directories; systemd units count even where systemd is not running
    /// here, since the Pacemaker nodes will run it.
    pub fn for_config_dir(config_dir: &Path) -> Host {
        Host {
            resource_dirs: vec![
                config_dir.join("resource.d"),
                PathBuf::from("/etc/ha.d/resource.d"),
                PathBuf::from("/etc/init.d"),
            ],
            // ha-agents' list (docs/agents.md), in its order.
            unit_dirs: [
                "/etc/systemd/system",
                "/run/systemd/system",
                "/run/systemd/generator",
                "/usr/local/lib/systemd/system",
                "/usr/lib/systemd/system",
                "/lib/systemd/system",
                "/run/systemd/generator.late",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
        }
    }

    /// Resolves `name` as had would (scripts first, then systemd).
    pub fn locate(&self, name: &str) -> Service {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Service::Unknown;
        }
        for dir in &self.resource_dirs {
            let p = dir.join(name);
            if is_executable_file(&p) {
                return if dir.file_name().is_some_and(|n| n == "init.d") {
                    Service::InitD(p)
                } else {
                    Service::ResourceD(p)
                };
            }
        }
        self.unit(name).map_or(Service::Unknown, Service::Systemd)
    }

    /// The unit file of `NAME.service`, when one exists.
    pub fn unit(&self, name: &str) -> Option<PathBuf> {
        let unit = format!("{name}.service");
        self.unit_dirs
            .iter()
            .map(|d| d.join(&unit))
            .find(|p| p.exists())
    }
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn had_order_scripts_then_systemd() {
        let t = tempfile::tempdir().unwrap();
        let rd = t.path().join("resource.d");
        let init = t.path().join("init.d");
        let units = t.path().join("units");
        for d in [&rd, &init, &units] {
            std::fs::create_dir_all(d).unwrap();
        }
        let exe = |p: PathBuf| {
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let web = exe(rd.join("web"));
        let both = exe(init.join("apache2"));
        std::fs::write(units.join("apache2.service"), "").unwrap();
        std::fs::write(units.join("nginx.service"), "").unwrap();
        std::fs::write(rd.join("notexec"), "").unwrap();
        let host = Host {
            resource_dirs: vec![rd, init],
            unit_dirs: vec![units.clone()],
        };
        assert_eq!(host.locate("web"), Service::ResourceD(web));
        assert_eq!(host.locate("apache2"), Service::InitD(both));
        assert_eq!(
            host.locate("nginx"),
            Service::Systemd(units.join("nginx.service"))
        );
        assert_eq!(host.locate("notexec"), Service::Unknown);
        assert_eq!(host.locate("../etc/passwd"), Service::Unknown);
    }
}
