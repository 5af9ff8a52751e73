//! The small files kept under the state directory: Heartbeat's node UUID
//! (`hb_uuid`) and restart generation (`hb_generation`), and had's own
//! replay floor of each peer (`had_peer_generations`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ha_config::NodeName;

use crate::liveness::PeerFloor;

const UUID_FILE: &str = "hb_uuid";
const GENERATION_FILE: &str = "hb_generation";
/// One line per peer: `<node> <generation> <seq>`, decimal.
pub const PEER_FLOORS_FILE: &str = "had_peer_generations";
const FILE_MODE: u32 = 0o644;

/// Reads `state_dir/had_peer_generations` (empty when missing): the highest
/// generation and seq seen from each peer by earlier runs.
pub fn load_peer_floors(state_dir: &Path) -> io::Result<Vec<PeerFloor>> {
    let path = state_dir.join(PEER_FLOORS_FILE);
    // Same rules as hb_generation: no links, regular, root's, at most 64 KiB.
    let text = match read_state_file(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut floors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let parsed = match words.as_slice() {
            [] => continue,
            [node, generation, seq] => {
                generation
                    .parse()
                    .ok()
                    .zip(seq.parse().ok())
                    .map(|(generation, seq)| PeerFloor {
                        node: NodeName::from(*node),
                        generation,
                        seq,
                    })
            }
            _ => None,
        };
        // Garbled means someone else wrote it: refusing to start is safer
        // than silently forgetting what replays to refuse.
        floors.push(parsed.ok_or_else(|| {
            invalid(format!(
                "{}:{}: expected `<node> <generation> <seq>`; remove the file (had writes it again)",
                path.display(),
                n + 1
            ))
        })?);
    }
    Ok(floors)
}

/// Durably replaces `state_dir/had_peer_generations` with `floors`.
pub fn store_peer_floors(state_dir: &Path, floors: &[PeerFloor]) -> io::Result<()> {
    let text: String = floors
        .iter()
        .map(|f| format!("{} {} {}\n", f.node.as_str(), f.generation, f.seq))
        .collect();
    write_durably(state_dir, PEER_FLOORS_FILE, text.as_bytes())
}

/// Reads `state_dir/hb_uuid` (16 raw bytes), creating it with a random
/// version-4 UUID on first start.
pub fn load_or_create_uuid(state_dir: &Path) -> io::Result<[u8; 16]> {
    create_state_dir(state_dir)?;
    let path = state_dir.join(UUID_FILE);
    match read_state_file(&path) {
        Ok(bytes) => <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| {
            invalid(format!(
                "{}: expected 16 bytes, found {}",
                path.display(),
                bytes.len()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut uuid = [0u8; 16];
            File::open("/dev/urandom")?.read_exact(&mut uuid)?;
            // Mark it as a random (v4, RFC 4122 variant) UUID, as libuuid's
            // uuid_generate does, so tools that print it agree on its kind.
            uuid[6] = (uuid[6] & 0x0f) | 0x40;
            uuid[8] = (uuid[8] & 0x3f) | 0x80;
            write_durably(state_dir, UUID_FILE, &uuid)?;
            Ok(uuid)
        }
        Err(e) => Err(e),
    }
}

/// Increments and durably stores `state_dir/hb_generation`, returning the new
/// value; a missing file is seeded from the current unix time.
pub fn next_generation(state_dir: &Path) -> io::Result<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    next_generation_at(state_dir, now)
}

fn next_generation_at(state_dir: &Path, unix_now: u64) -> io::Result<u64> {
    create_state_dir(state_dir)?;
    let path = state_dir.join(GENERATION_FILE);
    let next = match read_state_file(&path).map(|b| String::from_utf8_lossy(&b).into_owned()) {
        Ok(text) => {
            // A garbled file is an error rather than a reseed: a generation
            // that went backwards would make every peer drop us as a replay.
            let current: u64 = text.trim().parse().map_err(|_| {
                invalid(format!(
                    "{}: not a generation number: {:?}",
                    path.display(),
                    text.trim()
                ))
            })?;
            current
                .checked_add(1)
                .ok_or_else(|| invalid(format!("{}: generation overflow", path.display())))?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => unix_now,
        Err(e) => return Err(e),
    };
    write_durably(
        state_dir,
        GENERATION_FILE,
        format!("{next:>15}\n").as_bytes(),
    )?;
    Ok(next)
}

/// Creates the state directory (and its parents) with mode 0755 whatever the umask says
/// (the umask can only take bits away).
pub fn create_state_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// Reads a state file without following a link, and only if it is a regular file owned by
/// root (or by us): a file planted by another user is an error, never trusted.
pub fn read_state_file(path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                invalid(format!(
                    "{}: is a symbolic link; had does not follow links in its state directory",
                    path.display()
                ))
            } else {
                e
            }
        })?;
    let meta = f.metadata()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || (meta.uid() != 0 && meta.uid() != me) || meta.mode() & 0o022 != 0 {
        return Err(invalid(format!(
            "{}: not a regular file owned by root and writable by root only (uid {}, mode {:o})",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    let mut out = Vec::new();
    // State files are a few bytes; a huge one is not ours.
    (&mut f).take(64 * 1024).read_to_end(&mut out)?;
    Ok(out)
}

/// Replaces `dir/name` so that a crash leaves either the old or the new
/// content, never a torn file: temp file, fsync, rename, fsync of the dir.
/// The temp file is created exclusively and never through a link.
fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    // A leftover from a crash (or anything planted under that name) goes first; unlink
    // removes a link itself, never its target.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(FILE_MODE)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn uuid_is_created_once_and_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("var/lib/heartbeat");
        let first = load_or_create_uuid(&state).unwrap();
        let raw = fs::read(state.join(UUID_FILE)).unwrap();
        assert_eq!(raw, first);
        assert_eq!(first[6] >> 4, 4, "version 4");
        assert_eq!(first[8] >> 6, 0b10, "RFC 4122 variant");
        let mode = fs::metadata(state.join(UUID_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(load_or_create_uuid(&state).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create_uuid(other.path()).unwrap(), first);
    }

    #[test]
    fn uuid_of_wrong_size_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(UUID_FILE), b"short").unwrap();
        let err = load_or_create_uuid(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn generation_seeds_from_time_then_increments() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            next_generation_at(dir.path(), 1_700_000_000).unwrap(),
            1_700_000_000
        );
        let raw = fs::read(dir.path().join(GENERATION_FILE)).unwrap();
        assert_eq!(raw, b"     1700000000\n");
        assert_eq!(raw.len(), 16);
        assert_eq!(next_generation_at(dir.path(), 5).unwrap(), 1_700_000_001);
        assert_eq!(next_generation(dir.path()).unwrap(), 1_700_000_002);
        assert!(!dir.path().join(".hb_generation.tmp").exists());
    }

    #[test]
    fn generation_reads_heartbeat_written_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(GENERATION_FILE), b"             41\n").unwrap();
        assert_eq!(next_generation(dir.path()).unwrap(), 42);
    }

    #[test]
    fn links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"             41\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(GENERATION_FILE)).unwrap();
        let err = next_generation(dir.path()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // A link planted where the temp file goes is removed, not written through.
        fs::remove_file(dir.path().join(GENERATION_FILE)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".hb_uuid.tmp")).unwrap();
        load_or_create_uuid(dir.path()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"             41\n");
        assert_eq!(fs::read(dir.path().join(UUID_FILE)).unwrap().len(), 16);
        // A FIFO under a state file's name is refused at once, not waited on.
        fs::remove_file(dir.path().join(UUID_FILE)).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join(UUID_FILE),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let err = load_or_create_uuid(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn peer_floors_round_trip_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_peer_floors(dir.path()).unwrap(), Vec::new());
        let floors = vec![PeerFloor {
            node: NodeName::from("node2"),
            generation: 1_700_000_123,
            seq: 4242,
        }];
        store_peer_floors(dir.path(), &floors).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(PEER_FLOORS_FILE)).unwrap(),
            "node2 1700000123 4242\n"
        );
        assert_eq!(load_peer_floors(dir.path()).unwrap(), floors);
        fs::write(dir.path().join(PEER_FLOORS_FILE), "node2 12\n").unwrap();
        let err = load_peer_floors(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("had_peer_generations:1"), "{err}");
    }

    #[test]
    fn peer_floors_are_never_read_or_written_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "node2 1 1\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(PEER_FLOORS_FILE)).unwrap();
        assert!(load_peer_floors(dir.path()).is_err());
        std::os::unix::fs::symlink(
            &elsewhere,
            dir.path().join(format!(".{PEER_FLOORS_FILE}.tmp")),
        )
        .unwrap();
        // The planted temp link is removed, never written through.
        fs::remove_file(dir.path().join(PEER_FLOORS_FILE)).unwrap();
        store_peer_floors(dir.path(), &[]).unwrap();
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "node2 1 1\n");
    }

    #[test]
    fn garbled_generation_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(GENERATION_FILE), b"banana\n").unwrap();
        let err = next_generation(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            fs::read(dir.path().join(GENERATION_FILE)).unwrap(),
            b"banana\n"
        );
    }
}
