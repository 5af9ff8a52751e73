//! The record of what a lab created (/run/ha-lab/<id>.json), and the cleanup
//! of recorded labs whose creator is gone. Nothing that is not in a record,
//! and not named after the record's id, is ever touched.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::netns;

/// Directory holding one JSON record per lab.
pub const RECORD_DIR: &str = "/run/ha-lab";

/// Parent of the labs' scratch dirs. Not /tmp: had refuses configs, scripts and state on a
/// path that anyone can write (StrictModes), and so must the lab's, as on a real node.
pub const SCRATCH_BASE: &str = "/var/lib/ha-lab";

/// The scratch dir of lab `id`.
pub fn scratch_dir(id: &str) -> PathBuf {
    Path::new(SCRATCH_BASE).join(id)
}

/// The scratch dir older versions used, still accepted when cleaning up their records.
fn legacy_scratch_dir(id: &str) -> PathBuf {
    Path::new("/tmp").join(format!("ha-lab-{id}"))
}

/// Creates `dir` and its missing parents with mode 0755 whatever the umask (which can only
/// take bits away), so had's StrictModes check passes on every lab path.
pub fn mkdir_0755(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Makes [`SCRATCH_BASE`] root-owned 0755, refusing one that someone else could write.
pub(crate) fn prepare_scratch_base() -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let base = Path::new(SCRATCH_BASE);
    mkdir_0755(base)?;
    let m = std::fs::symlink_metadata(base).with_context(|| format!("stat {SCRATCH_BASE}"))?;
    if !m.is_dir() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        bail!(
            "{SCRATCH_BASE} must be a directory owned by root and writable by root only \
             (found uid {}, mode {:o}); fix it with `chown root {SCRATCH_BASE} && chmod 755 {SCRATCH_BASE}`",
            m.uid(),
            m.mode() & 0o7777
        );
    }
    Ok(())
}

/// What one lab created, written before anything is created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The run id (`hl` + 6 hex digits).
    pub id: String,
    /// PID of the process that created the lab.
    pub pid: u32,
    /// Start time of that process (clock ticks since boot), to detect PID reuse.
    pub pid_start: Option<u64>,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// The third octet of the lab's subnet 198.18.<subnet>.0/24.
    pub subnet: u8,
    /// Network namespaces of the lab (they hold the bridge and the veths).
    pub netns: Vec<String>,
    /// The run's scratch directory.
    pub dir: PathBuf,
    /// Node names.
    pub nodes: Vec<String>,
    /// Kept on purpose by `ha-lab up`: its creator exits while the lab lives on.
    #[serde(default)]
    pub kept: bool,
}

/// Is `id` a lab run id (`hl` followed by 6 lower-case hex digits)?
pub fn valid_id(id: &str) -> bool {
    id.len() == 8
        && id.starts_with("hl")
        && id[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Record {
    /// Path of the record file for `id`.
    pub fn path_for(id: &str) -> PathBuf {
        Path::new(RECORD_DIR).join(format!("{id}.json"))
    }

    /// A new record for a lab created by this process now.
    pub(crate) fn new(
        id: &str,
        subnet: u8,
        netns: Vec<String>,
        dir: PathBuf,
        nodes: Vec<String>,
    ) -> Self {
        let pid = std::process::id();
        Record {
            id: id.to_owned(),
            pid,
            pid_start: netns::process_start_time(pid),
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            subnet,
            netns,
            dir,
            nodes,
            kept: false,
        }
    }

    /// Writes the record atomically (temp file + rename).
    pub fn write(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(RECORD_DIR).with_context(|| format!("creating {RECORD_DIR}"))?;
        let path = Self::path_for(&self.id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// Reads the record of lab `id`.
    pub fn read(id: &str) -> anyhow::Result<Record> {
        let path = Self::path_for(id);
        let bytes =
            std::fs::read(&path).with_context(|| format!("no record {}", path.display()))?;
        let rec: Record = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        rec.validate()?;
        Ok(rec)
    }

    /// Every record in /run/ha-lab, with the ones that cannot be read reported as errors.
    pub fn list() -> Vec<anyhow::Result<Record>> {
        let Ok(entries) = std::fs::read_dir(RECORD_DIR) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.iter()
            .map(|id| {
                if valid_id(id) {
                    Record::read(id)
                } else {
                    bail!("{RECORD_DIR}/{id}.json: not a lab record name")
                }
            })
            .collect()
    }

    /// Refuses records that name anything outside their own run: a damaged or
    /// forged record must not make `down` delete someone else's namespace or dir.
    fn validate(&self) -> anyhow::Result<()> {
        if !valid_id(&self.id) {
            bail!("record has an invalid id {:?}", self.id);
        }
        for ns in &self.netns {
            let ok = ns
                .strip_prefix(&self.id)
                .and_then(|s| s.strip_prefix('-'))
                .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()));
            if !ok {
                bail!("record {} lists foreign netns {ns:?}", self.id);
            }
        }
        if self.dir != scratch_dir(&self.id) && self.dir != legacy_scratch_dir(&self.id) {
            bail!(
                "record {} lists foreign dir {}",
                self.id,
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Is the process that created the lab still running (same PID, same start time)?
    pub fn creator_alive(&self) -> bool {
        match netns::process_start_time(self.pid) {
            None => false,
            Some(start) => self.pid_start.is_none_or(|s| s == start),
        }
    }

    /// Namespaces of the record that still exist.
    pub fn live_netns(&self) -> Vec<&str> {
        self.netns
            .iter()
            .map(String::as_str)
            .filter(|ns| netns::netns_exists(ns))
            .collect()
    }

    /// Removes everything the record lists: kills the processes in its
    /// namespaces (by PID), deletes the namespaces, the dir and the record.
    /// The record stays when something could not be removed, so a later
    /// `down` can retry.
    pub fn teardown(&self) -> anyhow::Result<()> {
        self.validate()?;
        let mut errors = Vec::new();
        // Nodes first, the switch last, as a real shutdown would go.
        for ns in self.netns.iter().rev() {
            if !netns::netns_exists(ns) {
                continue;
            }
            if let Err(e) = netns::kill_all_in(ns, Duration::from_secs(5)) {
                errors.push(format!("{e:#}"));
            }
            if let Err(e) = netns::ip(&["netns", "del", ns]) {
                errors.push(format!("{e:#}"));
            }
        }
        if self.dir.exists()
            && std::env::var_os("HA_LAB_KEEP_DIR").is_none()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            errors.push(format!("removing {}: {e}", self.dir.display()));
        }
        if !errors.is_empty() {
            bail!("lab {}: {}", self.id, errors.join("; "));
        }
        match std::fs::remove_file(Self::path_for(&self.id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).context("removing the record"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record::new(
            "hl0a1b2c",
            7,
            vec!["hl0a1b2c-sw".into(), "hl0a1b2c-n1".into()],
            PathBuf::from("/tmp/ha-lab-hl0a1b2c"),
            vec!["node1".into()],
        )
    }

    #[test]
    fn ids() {
        assert!(valid_id("hl0a1b2c"));
        assert!(!valid_id("hl0A1b2c"));
        assert!(!valid_id("hb0a1b2c"));
        assert!(!valid_id("hl0a1b2"));
        assert!(!valid_id("hl0a1b2c-"));
    }

    #[test]
    fn validation_refuses_foreign_names() {
        assert!(rec().validate().is_ok());
        let mut r = rec();
        r.netns.push("hbA-n1".into());
        assert!(r.validate().is_err());
        let mut r = rec();
        r.netns.push("hl0a1b2c-".into());
        assert!(r.validate().is_err());
        let mut r = rec();
        r.dir = PathBuf::from("/tmp");
        assert!(r.validate().is_err());
    }

    #[test]
    fn creator_alive_tracks_pid_and_start() {
        let r = rec();
        assert!(r.creator_alive());
        let mut r2 = rec();
        r2.pid_start = r2.pid_start.map(|s| s + 1);
        assert!(!r2.creator_alive());
        let json = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
