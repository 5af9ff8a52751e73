//! ha-gate: the one gate of every test that needs root, the lab or an installed package:
//! it runs the test, or skips it with a line saying why, or — when `HA_REQUIRE_LAB=1`, as in
//! CI — fails it loudly, so a CI run can never pass by skipping. A crate of its own (no
//! dependency but nix) so that every crate's tests can use it, ha-config's included;
//! `ha_lab::gate` re-exports it.

use std::process::{Command, Stdio};

/// True when `HA_REQUIRE_LAB=1`: a test that cannot run must fail instead of skipping.
pub fn lab_required() -> bool {
    std::env::var("HA_REQUIRE_LAB").is_ok_and(|v| v == "1")
}

/// The single rule: panics when the lab is required, else prints `SKIPPED (<tag>): <test>:
/// <why>` on stderr; false either way (the caller returns).
fn skip(test: &str, tag: &str, why: &str) -> bool {
    assert!(
        !lab_required(),
        "HA_REQUIRE_LAB=1 but {test} cannot run: {why}"
    );
    eprintln!("SKIPPED ({tag}): {test}: {why}");
    false
}

/// Ok if this process is root; else `why` it needs to be.
fn require_root(why: &str) -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(format!("not root: {why}"))
    }
}

/// Ok if this process can build a lab: root, and `ip netns` works.
pub fn require_lab() -> Result<(), String> {
    require_root("the lab needs network namespaces")?;
    match Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `ip` (install iproute2): {e}")),
    }
}

/// The lab-test gate: true if the lab can run. Otherwise panics when `HA_REQUIRE_LAB=1`,
/// else prints `SKIPPED (needs root): <test>: why` and returns false.
pub fn lab_available(test: &str) -> bool {
    match require_lab() {
        Ok(()) => true,
        Err(why) => skip(test, "needs root", &why),
    }
}

/// The gate of a test that needs root but no lab (its own namespace, chown, mounts).
pub fn root_available(test: &str) -> bool {
    match require_root("the test changes owners, mounts or namespaces") {
        Ok(()) => true,
        Err(why) => skip(test, "needs root", &why),
    }
}

/// The gate of a test's other needs (a package, a program): true if `have`, else the same
/// rule as [`lab_available`] with `missing` as the reason (say how to get it).
pub fn lab_needs(test: &str, have: bool, missing: &str) -> bool {
    have || skip(test, "missing", missing)
}

/// True if `path` is an installed program (a regular file; run it to know more).
pub fn program_installed(path: &str) -> bool {
    std::path::Path::new(path).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as this run's environment has it: a missing need skips (false) or, under
    /// `HA_REQUIRE_LAB=1`, fails with the test's name and the reason.
    #[test]
    fn a_missing_need_skips_or_fails_by_the_one_rule() {
        assert!(lab_needs("gate_test", true, "never said"));
        let r = std::panic::catch_unwind(|| lab_needs("gate_test", false, "no such package"));
        match r {
            Ok(ran) => {
                assert!(!lab_required());
                assert!(!ran);
            }
            Err(e) => {
                assert!(lab_required());
                let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(
                    msg.contains("gate_test") && msg.contains("no such package"),
                    "{msg}"
                );
            }
        }
        assert!(program_installed("/bin/sh"));
        assert!(!program_installed("/nonexistent/program"));
    }
}
