//! The gate of lab tests: ha-gate's (root, the lab, a test's packages under the
//! `HA_REQUIRE_LAB=1` rule), plus the lab's own needs.

pub use ha_gate::{
    lab_available, lab_needs, lab_required, program_installed, require_lab, root_available,
};

/// The gate of a test that runs Debian's Heartbeat in the lab: [`lab_available`], then
/// the heartbeat package.
pub fn lab_with_heartbeat(test: &str) -> bool {
    lab_available(test)
        && lab_needs(
            test,
            crate::heartbeat_installed(),
            "Debian's heartbeat package is not installed (just setup)",
        )
}
