//! `ha_config::validate`, the one validation `had` (at start and at reload) and `hactl check`
//! share, with the resources it resolved built as the daemon runs them.

use std::path::Path;

use ha_agents::Resource;
use ha_config::{Diagnostics, Target};

pub use ha_config::validate::{Dirs, read_group_gid};

/// A configuration that passed, its resources built.
pub type Validated = ha_config::validate::Validated<Resource>;

/// [`ha_config::validate::validate`], then every resource built from its plan.
pub fn validate(
    dir: &Path,
    target: &Target<'_>,
    dirs: &Dirs<'_>,
) -> Result<Validated, Diagnostics> {
    Ok(ha_config::validate::validate(dir, target, dirs)?.map_resources(Resource::from_plan))
}
