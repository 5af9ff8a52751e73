//! StrictModes (sshd's rule) for everything had reads or runs as root: the file, and every
//! directory on its path with symbolic links resolved, must be owned by root (or by the user
//! running the check, as sshd trusts the account owner) and writable by nobody else.
//!
//! A world-writable directory anywhere on the path is a violation even with the sticky bit
//! (/tmp), as in sshd: anyone can create the name before root does, or point a link there.
//! Used by `had` at start and at reload and by `hactl check`; each violation is an error
//! naming the file, the owner and mode found, and the command that fixes it.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::Config;
use crate::diag::Diagnostic;
use crate::had_toml::Check;

/// The state files had creates under `--state-dir` (besides the FIFO).
pub const STATE_FILES: &[&str] = &["hb_uuid", "hb_generation"];

/// Heartbeat's FIFO under `--state-dir`.
pub const FIFO_NAME: &str = "fifo";

/// What had does with a path, which decides what it must be and how problems are worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A configuration file had reads as root (ha.cf, haresources, had.toml, authkeys).
    Config,
    /// A program had runs as root (hooks, `command:` monitors, resource scripts).
    Program,
    /// A directory had writes its own files in (state dir, run dir).
    Directory,
}

impl Purpose {
    fn role(self) -> &'static str {
        match self {
            Purpose::Config => "a file had reads as root",
            Purpose::Program => "a program had runs as root",
            Purpose::Directory => "a directory had keeps its own files in",
        }
    }

    fn safe_home(self) -> &'static str {
        match self {
            Purpose::Config => "/etc/ha.d",
            Purpose::Program => "/usr/local/sbin or /etc/ha.d",
            Purpose::Directory => "/var/lib or /run",
        }
    }
}

/// Whether `uid` may own what had trusts: root, or the user running the check.
pub fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// `name (uid N)` for messages.
pub fn owner_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

fn found(meta: &Metadata) -> String {
    format!(
        "owner {}, mode {:o}",
        owner_name(meta.uid()),
        meta.mode() & 0o7777
    )
}

/// Checks one path; the first violation, if any.
// The contract returns a plain Diagnostic, as the other file checks of this crate do.
#[allow(clippy::result_large_err)]
pub fn check_path(path: &Path, purpose: Purpose) -> Result<(), Diagnostic> {
    let mut c = Checker::default();
    c.check(path, purpose);
    match c.finish().into_iter().next() {
        Some(d) => Err(d),
        None => Ok(()),
    }
}

/// Collects violations over several paths, reporting a shared directory only once.
#[derive(Debug, Default)]
pub struct Checker {
    seen: HashSet<(u64, u64)>,
    out: Vec<Diagnostic>,
}

impl Checker {
    /// A checker with nothing found yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The violations found, in the order found.
    pub fn finish(self) -> Vec<Diagnostic> {
        self.out
    }

    /// Checks `path` (which need not exist yet: then its directories are checked, since
    /// whoever can write them can create it) for `purpose`.
    pub fn check(&mut self, path: &Path, purpose: Purpose) {
        self.check_at(path, purpose, 0);
    }

    fn check_at(&mut self, path: &Path, purpose: Purpose, depth: u32) {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // The resolved path first: a link's target and the directories it sits in.
        match std::fs::canonicalize(&abs) {
            Ok(real) => {
                let via = (real != abs).then_some(real.as_path());
                if let Ok(meta) = std::fs::metadata(&real) {
                    self.leaf(&abs, via, &meta, purpose);
                }
                for dir in real.ancestors().skip(1) {
                    self.dir(&abs, via, dir, purpose);
                }
            }
            Err(_) => {
                // A dangling link: whoever can create its target decides what runs.
                if let Ok(target) = std::fs::read_link(&abs)
                    && depth < 8
                {
                    let parent = abs.parent().unwrap_or(Path::new("/"));
                    self.check_at(&parent.join(target), purpose, depth + 1);
                }
                // Missing: the deepest directory that exists decides who could create it.
                if let Some(parent) = abs
                    .ancestors()
                    .skip(1)
                    .find_map(|a| std::fs::canonicalize(a).ok())
                {
                    for dir in parent.ancestors() {
                        self.dir(&abs, None, dir, purpose);
                    }
                }
            }
        }
        // Then the path as written: a directory on it that is a link, or the directory
        // holding a link, lets its owner redirect the whole path.
        for dir in abs.ancestors().skip(1) {
            self.dir(&abs, None, dir, purpose);
        }
    }

    /// ha.cf, haresources, authkeys and had.toml in `dir`, and, when the configuration
    /// parsed, every program it names: notify and fence hooks and `command:` monitors.
    pub fn check_config(&mut self, dir: &Path, config: Option<&Config>) {
        for name in ["ha.cf", "haresources", "authkeys"] {
            self.check(&dir.join(name), Purpose::Config);
        }
        let toml = dir.join("had.toml");
        if std::fs::symlink_metadata(&toml).is_ok() {
            self.check(&toml, Purpose::Config);
        }
        let Some(config) = config else { return };
        let n = &config.had.notify;
        let hooks = [&n.command, &n.active, &n.standby, &n.fault];
        let fence = config.had.fence.as_ref().map(|f| &f.command);
        for c in hooks.into_iter().flatten().chain(fence) {
            self.check(&c.program, Purpose::Program);
        }
        for m in &config.had.monitors {
            if let Check::Command { program, .. } = &m.check {
                self.check(program, Purpose::Program);
            }
        }
    }

    /// The state directory, the state files in it and the FIFO: none may be a link, a file
    /// planted by another user, or writable by anyone but root.
    pub fn check_state_dir(&mut self, dir: &Path) {
        self.check(dir, Purpose::Directory);
        for name in STATE_FILES {
            self.state_file(&dir.join(name), false);
        }
        self.state_file(&dir.join(FIFO_NAME), true);
    }

    fn state_file(&mut self, path: &Path, fifo: bool) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        let shown = path.display();
        let problem = if meta.file_type().is_symlink() {
            Some((
                format!(
                    "`{shown}` is a symbolic link; had never follows links in its state directory"
                ),
                if fifo {
                    format!("run `rm {shown}` (had creates its own FIFO, mode 600)")
                } else {
                    format!(
                        "replace the link with a regular file owned by root: `cp --remove-destination \"$(readlink -f {shown})\" {shown}`"
                    )
                },
            ))
        } else if fifo && !meta.file_type().is_fifo() {
            Some((
                format!("`{shown}` is not a FIFO ({})", found(&meta)),
                format!("run `rm {shown}` (had creates its own FIFO, mode 600)"),
            ))
        } else if fifo && (!trusted_owner(meta.uid()) || meta.mode() & 0o077 != 0) {
            // Not fixed by chmod: whoever made it, or opened it while it was open to them,
            // may still hold it open for writing.
            Some((
                format!(
                    "the FIFO `{shown}` is not root's alone ({}): whoever can write it can move resources",
                    found(&meta)
                ),
                format!("run `rm {shown}` (had creates its own FIFO, mode 600)"),
            ))
        } else if !fifo && !meta.file_type().is_file() {
            Some((
                format!("`{shown}` is not a regular file ({})", found(&meta)),
                format!("remove it (`rm -r {shown}`); had recreates it"),
            ))
        } else if !fifo && !trusted_owner(meta.uid()) {
            Some((
                format!(
                    "`{shown}` is owned by {}, not root (mode {:o})",
                    owner_name(meta.uid()),
                    meta.mode() & 0o7777
                ),
                format!("run `chown root {shown}`"),
            ))
        } else if !fifo && meta.mode() & 0o022 != 0 {
            Some((
                format!(
                    "`{shown}` is writable by group or others ({})",
                    found(&meta)
                ),
                format!("run `chmod go-w {shown}`"),
            ))
        } else {
            None
        };
        if let Some((msg, help)) = problem {
            self.out
                .push(Diagnostic::file_error(path, msg).with_help(help));
        }
    }

    fn leaf(&mut self, file: &Path, via: Option<&Path>, meta: &Metadata, purpose: Purpose) {
        if !self.seen.insert((meta.dev(), meta.ino())) {
            return;
        }
        let real = via.unwrap_or(file);
        let wanted_dir = purpose == Purpose::Directory;
        if wanted_dir != meta.is_dir() || (!wanted_dir && !meta.is_file()) {
            let what = if wanted_dir {
                "a directory"
            } else {
                "a regular file"
            };
            self.out.push(
                Diagnostic::file_error(
                    file,
                    format!("`{}` is not {what} ({})", real.display(), found(meta)),
                )
                .with_help(format!("replace it with {what} owned by root")),
            );
            return;
        }
        self.component(file, via, real, meta, purpose, true);
    }

    fn dir(&mut self, file: &Path, via: Option<&Path>, dir: &Path, purpose: Purpose) {
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        if !self.seen.insert((meta.dev(), meta.ino())) {
            return;
        }
        self.component(file, via, dir, &meta, purpose, false);
    }

    fn component(
        &mut self,
        file: &Path,
        via: Option<&Path>,
        comp: &Path,
        meta: &Metadata,
        purpose: Purpose,
        leaf: bool,
    ) {
        let mode = meta.mode() & 0o7777;
        let bad_owner = !trusted_owner(meta.uid());
        let writable = mode & 0o022 != 0;
        if !bad_owner && !writable {
            return;
        }
        let c = comp.display();
        let subject = if leaf && via.is_none() {
            format!("`{c}`")
        } else {
            let link = via
                .map(|v| format!(", a symbolic link to `{}`", v.display()))
                .unwrap_or_default();
            if leaf {
                format!("`{c}` (the target of `{}`{link})", file.display())
            } else {
                format!("`{c}` (on the path of `{}`{link})", file.display())
            }
        };
        let role = purpose.role();
        let (msg, help) = if bad_owner {
            (
                format!(
                    "{subject} is owned by {}, not root (mode {mode:o}), so that user controls {role}",
                    owner_name(meta.uid())
                ),
                format!("run `chown root {c}`"),
            )
        } else {
            let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            };
            let help = if !leaf && mode & 0o1002 == 0o1002 {
                // /tmp and the like: meant for everyone, chmod would break the system.
                format!(
                    "move `{}` to a directory only root can write, such as {}",
                    via.unwrap_or(file).display(),
                    purpose.safe_home()
                )
            } else {
                format!("run `chmod go-w {c}`")
            };
            (
                format!(
                    "{subject} is writable by {who} ({}), so someone other than root can replace {role}",
                    found(meta)
                ),
                help,
            )
        };
        self.out
            .push(Diagnostic::file_error(file, msg).with_help(help));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A scratch directory on a path that passes the rule (root-owned /run as root).
    pub(crate) fn safe_tempdir() -> tempfile::TempDir {
        let base = Path::new("/run/had-tests");
        std::fs::create_dir_all(base).unwrap();
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
        tempfile::Builder::new()
            .prefix("strict-")
            .tempdir_in(base)
            .unwrap()
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn chown(p: &Path, uid: u32) {
        std::os::unix::fs::lchown(p, Some(uid), None).unwrap();
    }

    const NOBODY: u32 = 65534;

    /// A config dir with the three files, all as had wants them.
    fn good_dir() -> tempfile::TempDir {
        let d = safe_tempdir();
        chmod(d.path(), 0o755);
        for (n, m) in [
            ("ha.cf", 0o644),
            ("haresources", 0o644),
            ("authkeys", 0o600),
        ] {
            std::fs::write(d.path().join(n), "x\n").unwrap();
            chmod(&d.path().join(n), m);
        }
        d
    }

    fn config_errors(dir: &Path) -> Vec<Diagnostic> {
        let mut c = Checker::new();
        c.check_config(dir, None);
        c.finish()
    }

    fn one(ds: &[Diagnostic], file: &Path, needles: &[&str]) {
        assert_eq!(ds.len(), 1, "{ds:#?}");
        let d = &ds[0];
        assert_eq!(d.file, file);
        let text = d.to_string();
        for n in needles {
            assert!(text.contains(n), "`{n}` missing from:\n{text}");
        }
    }

    #[test]
    fn a_safe_dir_passes() {
        if !ha_gate::root_available("a_safe_dir_passes") {
            return;
        }
        let d = good_dir();
        assert!(config_errors(d.path()).is_empty());
        assert!(check_path(Path::new("/bin/sh"), Purpose::Program).is_ok());
    }

    #[test]
    fn authkeys_writable_by_others() {
        if !ha_gate::root_available("authkeys_writable_by_others") {
            return;
        }
        let d = good_dir();
        let k = d.path().join("authkeys");
        chmod(&k, 0o622);
        let ds = config_errors(d.path());
        one(
            &ds,
            &k,
            &["mode 622", &format!("chmod go-w {}", k.display())],
        );
    }

    #[test]
    fn authkeys_owned_by_nobody() {
        if !ha_gate::root_available("authkeys_owned_by_nobody") {
            return;
        }
        let d = good_dir();
        let k = d.path().join("authkeys");
        chown(&k, NOBODY);
        let ds = config_errors(d.path());
        one(
            &ds,
            &k,
            &[
                "uid 65534",
                "mode 600",
                &format!("chown root {}", k.display()),
            ],
        );
    }

    #[test]
    fn group_or_world_writable_config_files() {
        if !ha_gate::root_available("group_or_world_writable_config_files") {
            return;
        }
        for (name, mode, who) in [
            ("ha.cf", 0o664, "its group"),
            ("haresources", 0o646, "others"),
        ] {
            let d = good_dir();
            let p = d.path().join(name);
            chmod(&p, mode);
            let ds = config_errors(d.path());
            one(&ds, &p, &[who, &format!("mode {mode:o}"), "chmod go-w"]);
        }
    }

    #[test]
    fn a_world_writable_config_dir_is_reported_once() {
        if !ha_gate::root_available("a_world_writable_config_dir_is_reported_once") {
            return;
        }
        let d = good_dir();
        chmod(d.path(), 0o777);
        let ds = config_errors(d.path());
        one(
            &ds,
            &d.path().join("ha.cf"),
            &["mode 777", &format!("chmod go-w {}", d.path().display())],
        );
    }

    #[test]
    fn a_link_into_a_world_writable_dir() {
        if !ha_gate::root_available("a_link_into_a_world_writable_dir") {
            return;
        }
        let d = good_dir();
        let open = safe_tempdir();
        chmod(open.path(), 0o1777);
        let target = open.path().join("haresources");
        std::fs::write(&target, "x\n").unwrap();
        let link = d.path().join("haresources");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let ds = config_errors(d.path());
        one(
            &ds,
            &link,
            &["symbolic link", "mode 1777", "move", "/etc/ha.d"],
        );
        // The same through /tmp, the commonest case.
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("notify");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        chmod(&p, 0o755);
        let e = check_path(&p, Purpose::Program).unwrap_err();
        assert!(e.to_string().contains("/usr/local/sbin"), "{e}");
    }

    #[test]
    fn programs_writable_by_others_or_missing_in_an_open_dir() {
        if !ha_gate::root_available("programs_writable_by_others") {
            return;
        }
        let d = good_dir();
        let p = d.path().join("check.sh");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        chmod(&p, 0o757);
        let e = check_path(&p, Purpose::Program).unwrap_err();
        assert!(e.message.contains("a program had runs as root"), "{e}");
        assert!(e.help.unwrap().contains("chmod go-w"));
        // Not there yet, but anyone may create it.
        let open = safe_tempdir();
        chmod(open.path(), 0o777);
        assert!(check_path(&open.path().join("later.sh"), Purpose::Program).is_err());
        // A dangling link into that directory: the same.
        let link = d.path().join("hook");
        std::os::unix::fs::symlink(open.path().join("later.sh"), &link).unwrap();
        let e = check_path(&link, Purpose::Program).unwrap_err();
        assert!(e.message.contains("mode 777"), "{e}");
    }

    #[test]
    fn state_dir_fifo_and_links() {
        if !ha_gate::root_available("state_dir_fifo_and_links") {
            return;
        }
        let d = safe_tempdir();
        let check = |d: &Path| {
            let mut c = Checker::new();
            c.check_state_dir(d);
            c.finish()
        };
        assert!(check(d.path()).is_empty(), "a fresh dir is fine");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(check(d.path()).is_empty(), "root's own FIFO is fine");
        chown(&fifo, NOBODY);
        one(
            &check(d.path()),
            &fifo,
            &["uid 65534", &format!("rm {}", fifo.display())],
        );
        std::fs::remove_file(&fifo).unwrap();
        let generation = d.path().join("hb_generation");
        std::os::unix::fs::symlink("/etc/passwd", &generation).unwrap();
        one(
            &check(d.path()),
            &generation,
            &["symbolic link", "cp --remove-destination"],
        );
    }
}
