//! A null-modem cable for the lab: two pseudo-terminals joined by `socat`, one end for each
//! node, linked at paths in the lab's scratch dir (visible in every node's mount namespace).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Two joined pseudo-terminals; `socat` is killed by PID on drop.
#[derive(Debug)]
pub struct PtyPair {
    child: Child,
    ends: [PathBuf; 2],
    /// One descriptor held open on each end: a daemon that dies and closes its end must not
    /// make socat see end-of-file and quit, or the cable would be gone for its restart.
    _held: [File; 2],
}

impl PtyPair {
    /// Starts `socat` with the ends linked at `dir/name-a` and `dir/name-b`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<PtyPair> {
        let ends = [dir.join(format!("{name}-a")), dir.join(format!("{name}-b"))];
        for e in &ends {
            let _ = std::fs::remove_file(e);
        }
        let log = File::create(dir.join(format!("{name}.socat.log")))
            .with_context(|| format!("creating {}", dir.display()))?;
        let addr = |p: &Path| format!("pty,raw,echo=0,wait-slave,link={}", p.display());
        let child = Command::new("socat")
            .args(["-d", "-d", &addr(&ends[0]), &addr(&ends[1])])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning socat (the `socat` package; just setup installs it)")?;
        let mut pair = PtyPairBuilder {
            child: Some(child),
            held: Vec::new(),
        };
        // With wait-slave, socat makes the second pty only once the first was opened.
        for e in &ends {
            pair.held.push(open_when_there(e, pair.child.as_mut())?);
        }
        pair.finish(ends)
    }

    /// The end for node 0 or node 1 (a symlink to its /dev/pts/N).
    pub fn end(&self, i: usize) -> &Path {
        &self.ends[i.min(1)]
    }
}

/// Holds the child until both ends are open, so that an error kills socat too.
struct PtyPairBuilder {
    child: Option<Child>,
    held: Vec<File>,
}

impl PtyPairBuilder {
    fn finish(mut self, ends: [PathBuf; 2]) -> anyhow::Result<PtyPair> {
        let (Some(child), Ok(held)) = (
            self.child.take(),
            <[File; 2]>::try_from(std::mem::take(&mut self.held)),
        ) else {
            bail!("pty pair half built");
        };
        Ok(PtyPair {
            child,
            ends,
            _held: held,
        })
    }
}

impl Drop for PtyPairBuilder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn open_when_there(path: &Path, child: Option<&mut Child>) -> anyhow::Result<File> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut child = child;
    loop {
        if path.exists() {
            return OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(path)
                .with_context(|| format!("opening {}", path.display()));
        }
        if let Some(c) = child.as_deref_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            bail!("socat exited ({st}) before making {}", path.display());
        }
        if Instant::now() > deadline {
            bail!("socat made no {} within 5 s", path.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        // By PID: our own child, never by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for e in &self.ends {
            let _ = std::fs::remove_file(e);
        }
    }
}
