//! `[fence]` → the fence-agents package's agent that does the same job, named from the
//! command had runs (Pacemaker runs fence agents, not arbitrary commands).

use ha_config::FenceSettings;

/// The fence-agents program most likely equivalent to a `[fence]` command, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceAdvice {
    /// The command as had.toml has it.
    pub command: String,
    /// `fence_...` when one can be named.
    pub agent: Option<&'static str>,
}

/// Keywords in the command's program name or arguments, and the agent they point at.
/// First match wins, so the more specific words come first.
const KEYWORDS: &[(&str, &str)] = &[
    ("ipmi", "fence_ipmilan"),
    ("idrac", "fence_idrac"),
    ("drac", "fence_drac5"),
    ("ilo", "fence_ilo"),
    ("redfish", "fence_redfish"),
    ("virsh", "fence_virsh"),
    ("libvirt", "fence_virsh"),
    ("xvm", "fence_xvm"),
    ("vmware", "fence_vmware_rest"),
    ("esx", "fence_vmware_rest"),
    ("proxmox", "fence_pve"),
    ("pve", "fence_pve"),
    ("apc", "fence_apc_snmp"),
    ("pdu", "fence_apc_snmp"),
    ("aws", "fence_aws"),
    ("ec2", "fence_aws"),
    ("azure", "fence_azure_arm"),
    ("gce", "fence_gce"),
    ("gcp", "fence_gce"),
    ("ovirt", "fence_rhevm"),
    ("rhev", "fence_rhevm"),
    ("sbd", "fence_sbd"),
    ("scsi", "fence_scsi"),
];

impl FenceAdvice {
    /// Names the agent for `f`: the program itself when it is a `fence_*` agent, else by
    /// keyword in the command line.
    pub fn new(f: &FenceSettings) -> FenceAdvice {
        let mut command = f.command.program.display().to_string();
        for a in &f.command.args {
            command.push(' ');
            command.push_str(a);
        }
        let program = f
            .command
            .program
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let lower = command.to_ascii_lowercase();
        let agent = if program.starts_with("fence_") {
            KEYWORDS
                .iter()
                .map(|(_, a)| *a)
                .chain(EXTRA_AGENTS.iter().copied())
                .find(|a| *a == program)
        } else {
            None
        }
        .or_else(|| {
            KEYWORDS
                .iter()
                .find(|(k, _)| lower.contains(k))
                .map(|(_, a)| *a)
        });
        FenceAdvice { command, agent }
    }

    /// The advice as comment lines (no comment markers).
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![format!(
            "had.toml [fence] runs `{}` before taking over from a silent peer.",
            self.command
        )];
        match self.agent {
            Some(a) => v.push(format!(
                "The fence-agents package's equivalent: stonith:{a} (`{a} --help` lists its parameters)."
            )),
            None => v.push(
                "No fence-agents program could be named from it: pick the one for the hardware \
                 (`ls /usr/sbin/fence_*`: fence_ipmilan for IPMI BMCs, fence_virsh/fence_xvm for \
                 libvirt guests, fence_vmware_rest, fence_aws, fence_sbd for shared-disk fencing)."
                    .into(),
            ),
        }
        let a = self.agent.unwrap_or("fence_AGENT");
        v.push(format!(
            "Add one per node, e.g. `crm configure primitive fence-NODE stonith:{a} params pcmk_host_list=NODE ...`, \
             test it with `stonith_admin --reboot NODE`, then `crm configure property stonith-enabled=true`."
        ));
        v
    }
}

/// Agents recognised by their own name but reached by no keyword above.
const EXTRA_AGENTS: &[&str] = &[
    "fence_ipmilanplus",
    "fence_ilo4",
    "fence_ilo5",
    "fence_ilo_ssh",
    "fence_kdump",
    "fence_mpath",
    "fence_heuristics_ping",
    "fence_ibmblade",
    "fence_eaton_snmp",
    "fence_cisco_ucs",
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ha_config::CommandLine;
    use std::path::PathBuf;
    use std::time::Duration;

    fn advice(cmd: &str) -> FenceAdvice {
        let mut w = cmd.split_whitespace();
        let f = FenceSettings {
            command: CommandLine {
                program: PathBuf::from(w.next().unwrap()),
                args: w.map(str::to_string).collect(),
            },
            timeout: Duration::from_secs(60),
            retry: Duration::from_secs(5),
        };
        FenceAdvice::new(&f)
    }

    #[test]
    fn names_the_agent() {
        assert_eq!(
            advice("/usr/local/sbin/ipmi-reset --host bmc2").agent,
            Some("fence_ipmilan")
        );
        assert_eq!(
            advice("/usr/sbin/fence_ilo4 -a 10.0.0.9").agent,
            Some("fence_ilo4")
        );
        assert_eq!(
            advice("/usr/local/bin/kill-vm --virsh").agent,
            Some("fence_virsh")
        );
        assert_eq!(advice("/usr/local/sbin/fence-peer --hard").agent, None);
        let lines = advice("/usr/local/sbin/fence-peer --hard").lines();
        assert!(lines[0].contains("fence-peer --hard"));
        assert!(lines[1].contains("fence_ipmilan"));
        assert!(lines[2].contains("stonith-enabled=true"));
    }
}
