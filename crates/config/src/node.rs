//! Node names as Heartbeat compares them: lower-cased `uname -n`.

use std::fmt;

/// A cluster node's name, always lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Lower-cases `name`.
    pub fn new(name: &str) -> Self {
        Self(name.to_lowercase())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> Self {
        Self::new(&s)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

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
