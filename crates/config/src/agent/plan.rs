//! Every other agent's arguments parsed and its programs found, as ha-agents' constructors
//! did before the check and the daemon shared them.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::MsFlags;

use super::{AgentEnv, ArpConfig, IpFlavour, IpPlan, OpTimeouts, SpecError};
use crate::{ResourceSpec, Word};

/// What kind of script a resource is, which decides how its status is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// A Heartbeat resource.d script: status judged from stdout text only.
    ResourceD,
    /// An LSB init script (found in a directory named `init.d`): status exit codes 0/3 decide.
    Lsb,
}

/// A resource run through an executable script.
#[derive(Debug, Clone)]
pub struct ScriptPlan {
    /// The resource as written.
    pub name: String,
    /// The script.
    pub path: PathBuf,
    /// Its arguments (the operation is appended).
    pub args: Vec<String>,
    /// How its status is judged.
    pub kind: ScriptKind,
    /// Per-operation limits.
    pub timeouts: OpTimeouts,
}

impl ScriptPlan {
    /// Find `spec.agent` in the resource directories, in order; `None` if no directory has it.
    pub fn locate(spec: &ResourceSpec, env: &AgentEnv) -> Result<Option<ScriptPlan>, SpecError> {
        let agent = spec.agent();
        if agent.is_empty() || agent.contains('/') || agent == ".." {
            return Err(SpecError::InvalidArgs {
                resource: spec.raw.to_string(),
                reason: format!("`{agent}` is not a resource script name"),
            });
        }
        for dir in &env.resource_dirs {
            let path = dir.join(agent);
            if is_executable_file(&path) {
                let kind = if dir.file_name().is_some_and(|n| n == "init.d") {
                    ScriptKind::Lsb
                } else {
                    ScriptKind::ResourceD
                };
                return Ok(Some(ScriptPlan {
                    name: spec.raw.to_string(),
                    path,
                    args: spec.args().iter().map(Word::to_string).collect(),
                    kind,
                    timeouts: env.timeouts_for(spec),
                }));
            }
        }
        Ok(None)
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Where unit files (and generated units) live, in systemd's precedence order.
const UNIT_DIRS: [&str; 7] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
];

const SYSTEMCTL_CANDIDATES: [&str; 2] = ["/usr/bin/systemctl", "/bin/systemctl"];

/// A resource backed by a systemd service unit.
#[derive(Debug, Clone)]
pub struct SystemdPlan {
    /// The resource as written.
    pub name: String,
    /// The unit, e.g. `nginx.service`.
    pub unit: String,
    /// The `systemctl` found.
    pub systemctl: PathBuf,
    /// Per-operation limits.
    pub timeouts: OpTimeouts,
}

impl SystemdPlan {
    /// `<agent>.service` if a unit file for it exists; `None` otherwise.
    pub fn locate(spec: &ResourceSpec, env: &AgentEnv) -> Result<Option<SystemdPlan>, SpecError> {
        let unit = format!("{}.service", spec.agent());
        if !UNIT_DIRS.iter().any(|d| Path::new(d).join(&unit).exists()) {
            return Ok(None);
        }
        if !spec.args().is_empty() {
            return Err(SpecError::InvalidArgs {
                resource: spec.raw.to_string(),
                reason: format!(
                    "systemd unit {unit} takes no `::` arguments; put them in the unit or a resource.d script"
                ),
            });
        }
        let Some(systemctl) = SYSTEMCTL_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            return Err(SpecError::Unavailable {
                resource: spec.raw.to_string(),
                reason: "systemd is running but systemctl was not found".into(),
            });
        };
        Ok(Some(SystemdPlan {
            name: spec.raw.to_string(),
            unit,
            systemctl,
            timeouts: env.timeouts_for(spec),
        }))
    }
}

/// A Filesystem resource.
#[derive(Debug, Clone)]
pub struct FilesystemPlan {
    /// The resource as written.
    pub name: String,
    /// The device (labels and UUIDs resolved to their /dev/disk paths).
    pub device: String,
    /// The mount point, without a trailing `/`.
    pub mountpoint: PathBuf,
    /// The file system type.
    pub fstype: String,
    /// The mount(2) flags the options give.
    pub flags: MsFlags,
    /// The file-system-specific data the options give.
    pub data: String,
    /// The options as written.
    pub options: String,
    /// Per-operation limits.
    pub timeouts: OpTimeouts,
}

impl FilesystemPlan {
    /// Parse `device::mountpoint::fstype[::options]` (options comma-separated, as in fstab).
    pub fn new(name: &str, args: &[String], timeouts: OpTimeouts) -> Result<Self, SpecError> {
        let invalid = |reason: String| SpecError::InvalidArgs {
            resource: name.to_owned(),
            reason,
        };
        let (device, mountpoint, fstype, options) = match args {
            [d, m, t] => (d, m, t, ""),
            [d, m, t, o] => (d, m, t, o.as_str()),
            _ => {
                return Err(invalid(
                    "Filesystem takes device::mountpoint::fstype[::options]".into(),
                ));
            }
        };
        let device = resolve_device(device).map_err(invalid)?;
        if !mountpoint.starts_with('/') || mountpoint.contains("/../") || mountpoint == "/" {
            return Err(invalid(format!(
                "`{mountpoint}`: the mount point must be an absolute path other than /"
            )));
        }
        if fstype.is_empty() || fstype.contains(char::is_whitespace) {
            return Err(invalid(format!("`{fstype}` is not a file system type")));
        }
        let (flags, data) = split_options(options);
        Ok(Self {
            name: name.to_owned(),
            device,
            mountpoint: PathBuf::from(mountpoint.trim_end_matches('/')),
            fstype: fstype.clone(),
            flags,
            data,
            options: options.to_owned(),
            timeouts,
        })
    }
}

/// `-Llabel`/`LABEL=` and `-Uuuid`/`UUID=` to their /dev/disk paths; other devices as written.
fn resolve_device(d: &str) -> Result<String, String> {
    let by = |kind: &str, v: &str| {
        if v.is_empty() || v.contains('/') {
            Err(format!("`{d}`: bad {kind}"))
        } else {
            Ok(format!("/dev/disk/by-{kind}/{v}"))
        }
    };
    if let Some(l) = d.strip_prefix("-L").or_else(|| d.strip_prefix("LABEL=")) {
        by("label", l)
    } else if let Some(u) = d.strip_prefix("-U").or_else(|| d.strip_prefix("UUID=")) {
        by("uuid", u)
    } else if d.is_empty() || d.starts_with('-') {
        Err(format!("`{d}` is not a device"))
    } else {
        Ok(d.to_owned())
    }
}

/// fstab-style options to mount(2) flags and the data string the file system parses.
fn split_options(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "defaults" | "auto" | "noauto" | "nouser" | "_netdev" => {}
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "bind" => flags |= MsFlags::MS_BIND,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Where `sendmail` is looked for, in order.
pub const SENDMAIL_CANDIDATES: [&str; 2] = ["/usr/sbin/sendmail", "/usr/lib/sendmail"];

/// A MailTo resource.
#[derive(Debug, Clone)]
pub struct MailToPlan {
    /// The resource as written.
    pub name: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The subject, when given.
    pub subject: Option<String>,
    /// `sendmail`, when installed.
    pub sendmail: Option<PathBuf>,
    /// Limit for one mail.
    pub timeout: Duration,
}

impl MailToPlan {
    /// Parse `addr[,addr...]` and an optional subject; `sendmail` as found on this host.
    pub fn new(name: &str, args: &[String], timeout: Duration) -> Result<Self, SpecError> {
        let sendmail = SENDMAIL_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        Self::with_sendmail(name, args, sendmail, timeout)
    }

    /// As [`MailToPlan::new`] with an explicit `sendmail` (`None`: not installed).
    pub fn with_sendmail(
        name: &str,
        args: &[String],
        sendmail: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, SpecError> {
        let invalid = |reason: &str| SpecError::InvalidArgs {
            resource: name.to_owned(),
            reason: reason.to_owned(),
        };
        let (to, subject) = match args {
            [to] => (to, None),
            [to, subject] => (to, Some(subject.clone())),
            _ => {
                return Err(invalid(
                    "MailTo takes `addr[,addr...]` and an optional subject",
                ));
            }
        };
        let to: Vec<String> = to
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if to.is_empty() {
            return Err(invalid("MailTo needs at least one address"));
        }
        if let Some(bad) = to
            .iter()
            .find(|a| a.starts_with('-') || a.chars().any(char::is_whitespace))
        {
            return Err(invalid(&format!("`{bad}` is not a mail address")));
        }
        Ok(Self {
            name: name.to_owned(),
            to,
            subject,
            sendmail,
            timeout,
        })
    }
}

const DRBDADM_CANDIDATES: [&str; 2] = ["/usr/sbin/drbdadm", "/sbin/drbdadm"];

/// A drbddisk resource.
#[derive(Debug, Clone)]
pub struct DrbdPlan {
    /// The resource as written.
    pub name: String,
    /// The DRBD resource (`all` when none was named).
    pub res: String,
    /// The `drbdadm` found.
    pub drbdadm: PathBuf,
    /// Per-operation limits.
    pub timeouts: OpTimeouts,
}

impl DrbdPlan {
    /// Parse the arguments; `drbdadm` from the usual places (a clear error if absent).
    pub fn new(name: &str, args: &[String], timeouts: OpTimeouts) -> Result<Self, SpecError> {
        let Some(drbdadm) = DRBDADM_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            // Argument errors first: they hold on every machine, the missing program only here.
            Self::with_drbdadm(name, args, PathBuf::new(), timeouts)?;
            return Err(SpecError::Unavailable {
                resource: name.to_owned(),
                reason: "drbddisk needs drbdadm (install drbd-utils)".into(),
            });
        };
        Self::with_drbdadm(name, args, drbdadm, timeouts)
    }

    /// As [`DrbdPlan::new`] with an explicit `drbdadm`.
    pub fn with_drbdadm(
        name: &str,
        args: &[String],
        drbdadm: PathBuf,
        timeouts: OpTimeouts,
    ) -> Result<Self, SpecError> {
        let res = match args {
            [] => "all".to_owned(),
            [r] if valid_drbd_name(r) => r.clone(),
            [r] => {
                return Err(SpecError::InvalidArgs {
                    resource: name.to_owned(),
                    reason: format!("`{r}` is not a DRBD resource name"),
                });
            }
            _ => {
                return Err(SpecError::InvalidArgs {
                    resource: name.to_owned(),
                    reason: "drbddisk takes one argument, the DRBD resource".into(),
                });
            }
        };
        Ok(Self {
            name: name.to_owned(),
            res,
            drbdadm,
            timeouts,
        })
    }
}

fn valid_drbd_name(r: &str) -> bool {
    !r.is_empty()
        && !r.starts_with('-')
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

const APACHECTL_CANDIDATES: [&str; 4] = [
    "/usr/sbin/apache2ctl",
    "/usr/sbin/apachectl",
    "/usr/local/apache2/bin/apachectl",
    "/usr/bin/apachectl",
];

/// An apache resource.
#[derive(Debug, Clone)]
pub struct ApachePlan {
    /// The resource as written.
    pub name: String,
    /// The config file, when given.
    pub config: Option<PathBuf>,
    /// `apache2ctl` or `apachectl`, as found.
    pub ctl: PathBuf,
    /// Per-operation limits.
    pub timeouts: OpTimeouts,
}

impl ApachePlan {
    /// Parse the optional config file argument; find apachectl.
    pub fn new(name: &str, args: &[String], timeouts: OpTimeouts) -> Result<Self, SpecError> {
        let Some(ctl) = APACHECTL_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        else {
            // Argument errors first: they hold on every machine, the missing program only here.
            Self::with_ctl(name, args, PathBuf::new(), timeouts)?;
            return Err(SpecError::Unavailable {
                resource: name.to_owned(),
                reason: format!(
                    "apache needs apache2ctl or apachectl (looked in {})",
                    APACHECTL_CANDIDATES.join(", ")
                ),
            });
        };
        Self::with_ctl(name, args, ctl, timeouts)
    }

    /// As [`ApachePlan::new`] with an explicit control program.
    pub fn with_ctl(
        name: &str,
        args: &[String],
        ctl: PathBuf,
        timeouts: OpTimeouts,
    ) -> Result<Self, SpecError> {
        let config = match args {
            [] => None,
            [c] if c.starts_with('/') => Some(PathBuf::from(c)),
            [c] => {
                return Err(SpecError::InvalidArgs {
                    resource: name.to_owned(),
                    reason: format!("`{c}`: the apache config file must be an absolute path"),
                });
            }
            _ => {
                return Err(SpecError::InvalidArgs {
                    resource: name.to_owned(),
                    reason: "apache takes one argument, the config file".into(),
                });
            }
        };
        Ok(Self {
            name: name.to_owned(),
            config,
            ctl,
            timeouts,
        })
    }
}

/// Whether a haresources agent name asks for an OCF agent (`ocf` or `ocf:...`).
pub fn is_ocf(agent: &str) -> bool {
    agent == "ocf" || agent.starts_with("ocf:")
}

/// An OCF agent bound to its parameters.
#[derive(Debug, Clone)]
pub struct OcfPlan {
    /// The resource as written.
    pub name: String,
    /// The provider directory.
    pub provider: String,
    /// The agent's name.
    pub agent: String,
    /// The agent program.
    pub path: PathBuf,
    /// `OCF_ROOT`.
    pub root: PathBuf,
    /// `name=value` parameters, in order.
    pub params: Vec<(String, String)>,
    /// Per-operation limits.
    pub timeouts: OpTimeouts,
}

impl OcfPlan {
    /// Parse `ocf::provider::agent::k=v...` (agent `ocf`) or `ocf:provider:agent::k=v...`
    /// and check that the agent exists under `root` and is executable.
    pub fn new(
        name: &str,
        agent_field: &str,
        args: &[String],
        root: &Path,
        timeouts: OpTimeouts,
    ) -> Result<OcfPlan, SpecError> {
        let invalid = |reason: String| SpecError::InvalidArgs {
            resource: name.to_owned(),
            reason,
        };
        let usage = "write ocf::provider::agent[::name=value...], e.g. ocf::heartbeat::Dummy::state=/run/dummy.state";
        let (provider, agent, rest) = if agent_field == "ocf" {
            match args {
                [p, a, rest @ ..] => (p.as_str(), a.as_str(), rest),
                _ => return Err(invalid(format!("missing provider or agent; {usage}"))),
            }
        } else {
            let mut it = agent_field.splitn(3, ':').skip(1);
            match (it.next(), it.next()) {
                (Some(p), Some(a)) => (p, a, args),
                _ => return Err(invalid(format!("missing provider or agent; {usage}"))),
            }
        };
        for (what, v) in [("provider", provider), ("agent", agent)] {
            if v.is_empty() || v.contains('/') || v.starts_with('.') {
                return Err(invalid(format!("`{v}` is not an OCF {what} name; {usage}")));
            }
        }
        let mut params = Vec::new();
        for p in rest {
            match p.split_once('=') {
                Some((k, v))
                    if !k.is_empty()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    params.push((k.to_owned(), v.to_owned()))
                }
                _ => {
                    return Err(invalid(format!(
                        "OCF parameters are name=value, got `{p}`; {usage}"
                    )));
                }
            }
        }
        let path = root.join("resource.d").join(provider).join(agent);
        if !is_executable_file(&path) {
            return Err(SpecError::NotFound {
                resource: name.to_owned(),
                agent: format!("ocf:{provider}:{agent}"),
                looked_in: path.display().to_string(),
            });
        }
        Ok(OcfPlan {
            name: name.to_owned(),
            provider: provider.to_owned(),
            agent: agent.to_owned(),
            path,
            root: root.to_owned(),
            params,
            timeouts,
        })
    }
}

/// The OCF agents called `agent` under `root` (any provider), for a "did you mean" hint.
pub fn find_ocf_by_name(root: &Path, agent: &str) -> Vec<PathBuf> {
    let Ok(providers) = std::fs::read_dir(root.join("resource.d")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = providers
        .flatten()
        .map(|p| p.path().join(agent))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}

/// A gratuitous-ARP-only resource: the address it announces.
#[derive(Debug, Clone)]
pub struct SendArpPlan {
    /// A /32 on the named interface: nothing is looked up or added, only announced.
    pub ip: IpPlan,
}

impl SendArpPlan {
    /// Parse `ip/iface` (IPv4; the interface is required, as in Heartbeat's agent).
    pub fn new(name: &str, args: &[String], arp: ArpConfig) -> Result<SendArpPlan, SpecError> {
        let invalid = |reason: String| SpecError::InvalidArgs {
            resource: name.to_owned(),
            reason,
        };
        let [arg] = args else {
            return Err(invalid("SendArp takes one argument: ip/interface".into()));
        };
        let (ip, iface) = arg
            .split_once('/')
            .filter(|(_, i)| !i.is_empty() && !i.contains('/'))
            .ok_or_else(|| invalid(format!("`{arg}`: write SendArp::ip/interface")))?;
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => {}
            _ => return Err(invalid(format!("`{ip}` is not an IPv4 address"))),
        }
        let spec = format!("{ip}/32/{iface}");
        let ip = IpPlan::new(name, IpFlavour::IPaddr2, &[spec], arp)?;
        Ok(SendArpPlan { ip })
    }
}
