//! The StrictModes check (`ha_config::strict`) over everything one `had` would read or run:
//! the configuration files, the programs had.toml names, the scripts and agents haresources
//! resolves to, and the state and run directories. `had` at start and at reload and
//! `hactl check` call this one function.

use std::path::Path;

use ha_agents::Resource;
use ha_config::strict::{Checker, Purpose};
use ha_config::{Config, Diagnostic};

/// Every StrictModes violation, as errors naming the file, owner, mode and fix. `config` is
/// `None` when the files did not parse (their programs are then unknown); resources that do
/// not resolve are skipped here (their own check reports them).
pub fn unsafe_files(
    config_dir: &Path,
    config: Option<&Config>,
    state_dir: Option<&Path>,
    run_dir: Option<&Path>,
) -> Vec<Diagnostic> {
    let mut c = Checker::new();
    c.check_config(config_dir, config);
    if let Some(config) = config {
        let env = crate::reload::agent_env(config_dir, config);
        for spec in config.haresources.groups.iter().flat_map(|g| &g.resources) {
            if let Ok(r) = Resource::from_spec(spec, &env)
                && let Some(p) = r.program()
            {
                c.check(p, Purpose::Program);
            }
        }
    }
    if let Some(d) = state_dir {
        c.check_state_dir(d);
    }
    if let Some(d) = run_dir {
        c.check(d, Purpose::Directory);
    }
    c.finish()
}
