//! `Filesystem::device::mountpoint::fstype[::options]`: mount on start, unmount on stop, as
//! Heartbeat's Filesystem agent. Block file systems are mounted with mount(2); network and
//! FUSE file systems need their userspace helpers, so those go through `mount(8)`.
//! Status reads /proc/self/mountinfo: the mount point is mounted (in had's mount namespace).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use ha_config::agent::FilesystemPlan;
use ha_core::logcat::{LogEvent, log};

use crate::process;
use crate::{AgentError, Op, OpTimeouts, RunState};

/// File system types whose mounting needs a userspace helper.
const HELPER_TYPES: [&str; 6] = ["nfs", "nfs4", "cifs", "smb3", "glusterfs", "ceph"];

/// A Filesystem resource.
#[derive(Debug, Clone)]
pub struct FilesystemResource {
    name: String,
    device: String,
    mountpoint: PathBuf,
    fstype: String,
    flags: MsFlags,
    data: String,
    options: String,
    timeouts: OpTimeouts,
}

impl FilesystemResource {
    /// Parse `device::mountpoint::fstype[::options]` (options comma-separated, as in fstab).
    pub fn new(name: &str, args: &[String], timeouts: OpTimeouts) -> Result<Self, AgentError> {
        Ok(Self::from_plan(FilesystemPlan::new(name, args, timeouts)?))
    }

    /// The resource a checked plan describes.
    pub fn from_plan(p: FilesystemPlan) -> Self {
        let FilesystemPlan {
            name,
            device,
            mountpoint,
            fstype,
            flags,
            data,
            options,
            timeouts,
        } = p;
        Self {
            name,
            device,
            mountpoint,
            fstype,
            flags,
            data,
            options,
            timeouts,
        }
    }

    /// The resource as written in haresources.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device (labels and UUIDs resolved to their /dev/disk paths).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The mount(2) flags and the file-system-specific data the options give.
    pub fn mount_args(&self) -> (MsFlags, &str) {
        (self.flags, &self.data)
    }

    /// Mount unless mounted; the mount point is created if missing.
    pub async fn start(&self) -> Result<(), AgentError> {
        if self.status().await? == RunState::Running {
            return Ok(());
        }
        std::fs::create_dir_all(&self.mountpoint).map_err(|e| {
            self.system(
                Op::Start,
                format!("creating {}: {e}", self.mountpoint.display()),
            )
        })?;
        if HELPER_TYPES.contains(&self.fstype.as_str()) || self.fstype.starts_with("fuse") {
            return self.mount_with_helper().await;
        }
        let (device, mp, fstype) = (
            self.device.clone(),
            self.mountpoint.clone(),
            self.fstype.clone(),
        );
        let (flags, data) = (self.flags, self.data.clone());
        let r = tokio::task::spawn_blocking(move || {
            let data = (!data.is_empty()).then_some(data.as_str());
            nix::mount::mount(
                Some(device.as_str()),
                &mp,
                Some(fstype.as_str()),
                flags,
                data,
            )
        })
        .await
        .map_err(|e| self.system(Op::Start, format!("mount task: {e}")))?;
        match r {
            Ok(()) => {
                log(&LogEvent::Mounted {
                    resource: &self.name,
                    device: &self.device,
                    mountpoint: &self.mountpoint.display().to_string(),
                });
                Ok(())
            }
            Err(e) => Err(self.system(
                Op::Start,
                format!(
                    "mount -t {} {} {}: {}",
                    self.fstype,
                    self.device,
                    self.mountpoint.display(),
                    e.desc()
                ),
            )),
        }
    }

    /// Unmount if mounted; a busy file system is retried for the stop timeout, then reported
    /// (never lazily detached: a shared disk must really be released before the peer mounts it).
    pub async fn stop(&self) -> Result<(), AgentError> {
        let deadline = tokio::time::Instant::now() + self.timeouts.stop;
        loop {
            if self.status().await? == RunState::Stopped {
                return Ok(());
            }
            let mp = self.mountpoint.clone();
            let r =
                tokio::task::spawn_blocking(move || nix::mount::umount2(&mp, MntFlags::empty()))
                    .await
                    .map_err(|e| self.system(Op::Stop, format!("umount task: {e}")))?;
            match r {
                Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {
                    log(&LogEvent::Unmounted {
                        resource: &self.name,
                        mountpoint: &self.mountpoint.display().to_string(),
                    });
                }
                Err(Errno::EBUSY) if tokio::time::Instant::now() < deadline => {
                    log(&LogEvent::UnmountBusy {
                        resource: &self.name,
                        mountpoint: &self.mountpoint.display().to_string(),
                    });
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    return Err(self.system(
                        Op::Stop,
                        format!("umount {}: {}", self.mountpoint.display(), e.desc()),
                    ));
                }
            }
        }
    }

    /// Running when something is mounted on the mount point.
    pub async fn status(&self) -> Result<RunState, AgentError> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| self.system(Op::Status, format!("reading mountinfo: {e}")))?;
        let mp = std::fs::canonicalize(&self.mountpoint).unwrap_or(self.mountpoint.clone());
        Ok(if mounted_at(&text, &mp) {
            RunState::Running
        } else {
            RunState::Stopped
        })
    }

    async fn mount_with_helper(&self) -> Result<(), AgentError> {
        let mut args = vec!["-t".to_owned(), self.fstype.clone()];
        if !self.options.is_empty() {
            args.extend(["-o".to_owned(), self.options.clone()]);
        }
        args.extend([self.device.clone(), self.mountpoint.display().to_string()]);
        let out = process::run(Path::new("/bin/mount"), &args, &[], self.timeouts.start)
            .await
            .map_err(|e| AgentError::from_run(&self.name, Op::Start, e))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(AgentError::Failed {
                resource: self.name.clone(),
                op: Op::Start,
                status: out.status,
                stderr_tail: process::stderr_tail(&out.stderr),
            })
        }
    }

    fn system(&self, op: Op, reason: String) -> AgentError {
        AgentError::System {
            resource: self.name.clone(),
            op,
            reason,
        }
    }
}

/// Whether mountinfo lists a mount on `mp` (field 5, with octal escapes for spaces etc.).
fn mounted_at(mountinfo: &str, mp: &Path) -> bool {
    let want = mp.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|field| unescape(field) == want)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn heartbeat_argument_forms() {
        let t = OpTimeouts::default();
        let f = FilesystemResource::new(
            "Filesystem::/dev/sdb1::/data::ext4",
            &args(&["/dev/sdb1", "/data", "ext4"]),
            t,
        )
        .expect("three fields");
        assert_eq!(
            (f.device(), f.mountpoint()),
            ("/dev/sdb1", Path::new("/data"))
        );
        assert_eq!(f.mount_args(), (MsFlags::empty(), ""));
        let f = FilesystemResource::new(
            "x",
            &args(&["/dev/drbd0", "/srv/db/", "xfs", "noatime,ro,logbufs=8"]),
            t,
        )
        .expect("with options");
        assert_eq!(f.mountpoint(), Path::new("/srv/db"));
        assert_eq!(
            f.mount_args(),
            (MsFlags::MS_NOATIME | MsFlags::MS_RDONLY, "logbufs=8")
        );
        let l = FilesystemResource::new("x", &args(&["-Ldata", "/d", "ext4"]), t).expect("label");
        assert_eq!(l.device(), "/dev/disk/by-label/data");
        let u = FilesystemResource::new("x", &args(&["UUID=1234-abcd", "/d", "vfat"]), t)
            .expect("uuid");
        assert_eq!(u.device(), "/dev/disk/by-uuid/1234-abcd");
        let nfs = FilesystemResource::new("x", &args(&["nfs1:/export", "/mnt/n", "nfs"]), t)
            .expect("nfs device");
        assert_eq!(nfs.device(), "nfs1:/export");
        for bad in [
            &["/dev/sdb1", "/data"][..],
            &["/dev/sdb1", "data", "ext4"],
            &["/dev/sdb1", "/", "ext4"],
            &["-L", "/d", "ext4"],
            &["/dev/sdb1", "/d", ""],
            &["a", "/b", "c", "d", "e"],
        ] {
            assert!(
                FilesystemResource::new("x", &args(bad), t).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mountinfo_lookup_unescapes() {
        let mi = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw\n\
                  37 35 98:0 / /data rw - ext4 /dev/loop0 rw\n";
        assert!(mounted_at(mi, Path::new("/mnt/my disk")));
        assert!(mounted_at(mi, Path::new("/data")));
        assert!(!mounted_at(mi, Path::new("/dat")));
    }

    const CHILD: &str = "HA_AGENTS_FS_CHILD";

    fn host_cmd(
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<crate::process::Output, crate::process::RunError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(crate::process::run(
            Path::new(program),
            &args,
            &env,
            std::time::Duration::from_secs(60),
        ))
    }

    /// A real mount of a loop device, in a private mount namespace: this test re-runs itself
    /// under `unshare --mount` (a multi-threaded test process cannot unshare its own).
    #[test]
    fn loop_device_mounts_and_unmounts_in_a_private_namespace() {
        if std::env::var_os(CHILD).is_some() {
            return;
        }
        if !ha_gate::root_available("loop_device_mounts_and_unmounts_in_a_private_namespace") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(16 << 20))
            .expect("image");
        // Through the crate's own runner: another test in this process may have started the
        // reaper, which would reap a std::process child before std could wait for it.
        let ok = host_cmd("mkfs.ext4", &["-q", "-F", &img.display().to_string()], &[])
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("SKIPPED: mkfs.ext4 unavailable");
            return;
        }
        let out = host_cmd(
            "losetup",
            &["--find", "--show", &img.display().to_string()],
            &[],
        )
        .expect("losetup");
        if !out.status.success() {
            eprintln!("SKIPPED: no loop device: {}", out.stderr);
            return;
        }
        let loopdev = out.stdout.trim().to_string();
        let mp = dir.path().join("mnt");
        let exe = std::env::current_exe().expect("exe");
        let exe = exe.display().to_string();
        let child = host_cmd(
            "unshare",
            &[
                "--mount",
                "--propagation",
                "private",
                "--",
                &exe,
                "--exact",
                "filesystem::tests::loop_device_child",
                "--ignored",
                "--nocapture",
            ],
            &[(CHILD, &format!("{loopdev}\n{}", mp.display()))],
        );
        let _ = host_cmd("losetup", &["-d", &loopdev], &[]);
        let child = child.expect("unshare runs");
        let text = format!("{}{}", child.stdout, child.stderr);
        assert!(child.status.success(), "child failed:\n{text}");
        assert!(text.contains("1 passed"), "child did not run:\n{text}");
        // The mount was private to the child's namespace and is gone with it.
        let mi = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(!mounted_at(&mi, &mp));
    }

    #[tokio::test(flavor = "current_thread")]
    #[ignore = "run by loop_device_mounts_and_unmounts_in_a_private_namespace"]
    async fn loop_device_child() {
        let Some(spec) = std::env::var_os(CHILD) else {
            return;
        };
        let spec = spec.to_string_lossy().into_owned();
        let (dev, mp) = spec.split_once('\n').expect("dev and mountpoint");
        let fs = FilesystemResource::new(
            "Filesystem",
            &args(&[dev, mp, "ext4", "noatime"]),
            OpTimeouts {
                stop: Duration::from_secs(3),
                ..OpTimeouts::default()
            },
        )
        .expect("valid");
        assert_eq!(fs.status().await.expect("status"), RunState::Stopped);
        fs.start().await.expect("mount");
        fs.start().await.expect("start of a mounted fs succeeds");
        assert_eq!(fs.status().await.expect("status"), RunState::Running);
        std::fs::write(Path::new(mp).join("hello"), "world").expect("write on it");
        // Busy: a file open on it keeps umount from succeeding; stop reports it after retries.
        let busy = std::fs::File::open(Path::new(mp).join("hello")).expect("open");
        assert!(fs.stop().await.is_err(), "a busy fs was reported unmounted");
        drop(busy);
        fs.stop().await.expect("umount");
        fs.stop().await.expect("stop of an unmounted fs succeeds");
        assert_eq!(fs.status().await.expect("status"), RunState::Stopped);
        assert!(!Path::new(mp).join("hello").exists());
    }
}
