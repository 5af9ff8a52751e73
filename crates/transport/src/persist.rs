//! The two small files Heartbeat keeps under its state directory: the node
//! UUID (`hb_uuid`) and the restart generation (`hb_generation`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const UUID_FILE: &str = "hb_uuid";
const GENERATION_FILE: &str = "hb_generation";
const FILE_MODE: u32 = 0o644;

/// Reads `state_dir/hb_uuid` (16 raw bytes), creating it with a random
/// version-4 UUID on first start.
pub fn load_or_create_uuid(state_dir: &Path) -> io::Result<[u8; 16]> {
    fs::create_dir_all(state_dir)?;
    let path = state_dir.join(UUID_FILE);
    match fs::read(&path) {
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
    fs::create_dir_all(state_dir)?;
    let path = state_dir.join(GENERATION_FILE);
    let next = match fs::read_to_string(&path) {
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

/// Replaces `dir/name` so that a crash leaves either the old or the new
/// content, never a torn file: temp file, fsync, rename, fsync of the dir.
fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
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
