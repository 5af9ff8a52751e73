//! Node names as Heartbeat compares them: lower-cased `uname -n`.

pub use ha_core::config::NodeName;

/// This machine's node name: `uname -n`, lower-cased.
///
/// Read from procfs, which reports the nodename of the caller's UTS namespace exactly as
/// `uname(2)` does, so lab nodes in their own namespaces get their own names.
pub fn local_node_name() -> std::io::Result<NodeName> {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    let name = raw.trim();
    if name.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the host name is empty",
        ));
    }
    Ok(NodeName::new(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased() {
        let n = NodeName::from("Srv-Web");
        assert_eq!(n.as_str(), "srv-web");
        assert_eq!(n.to_string(), "srv-web");
        assert_eq!(n, NodeName::from("SRV-WEB".to_string()));
    }

    #[test]
    fn local_name_matches_uname() {
        let n = local_node_name().unwrap();
        let out = std::process::Command::new("uname")
            .arg("-n")
            .output()
            .unwrap();
        let expected = String::from_utf8(out.stdout).unwrap().trim().to_lowercase();
        assert_eq!(n.as_str(), expected);
    }
}
