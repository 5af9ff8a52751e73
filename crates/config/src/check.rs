//! Whom a configuration is checked for: the node this machine runs (`had`, and `hactl check` on
//! a node), another node (`hactl check --node-name` elsewhere), or an example directory. What
//! depends on the machine (names, interfaces, programs, file modes) is an error only when the
//! machine is the node; one place decides that severity for every check.

use std::path::Path;

use crate::diag::{Diagnostic, Severity};
use crate::ha_cf::{Resolver, system_resolver};
use crate::node::NodeName;

/// The file that marks a directory as an example to install, not a live configuration.
pub const EXAMPLE_MARKER: &str = "EXAMPLE";

/// Whether `dir` holds the example marker (see [`EXAMPLE_MARKER`]).
pub fn is_example(dir: &Path) -> bool {
    dir.join(EXAMPLE_MARKER).is_file()
}

/// How a configuration is checked.
pub struct Target<'a> {
    /// The node the configuration is checked for; `None` for an example directory.
    pub node: Option<NodeName>,
    /// The machine doing the check runs `node`: its own problems are errors then.
    pub here: bool,
    /// Host-name lookups (`ucast` peers, ping nodes).
    pub resolve: Resolver<'a>,
}

impl Target<'_> {
    /// As `had` starts: node `node` on this machine, every problem an error.
    pub fn here(node: NodeName) -> Target<'static> {
        Target {
            node: Some(node),
            here: true,
            resolve: &system_resolver,
        }
    }

    /// A problem of this machine rather than of the files (a name that does not resolve, a
    /// missing interface or program, a file mode): an error when the check is for this
    /// machine, else a warning that says `had` will refuse it on a node where it holds.
    pub fn machine(&self, mut d: Diagnostic) -> Diagnostic {
        if !self.here && d.severity == Severity::Error {
            d.severity = Severity::Warning;
            let note = match &self.node {
                Some(n) => format!(
                    "checked for node {n} from another machine: `had` refuses this on {n} if it holds there"
                ),
                None => "checked as an example: `had` refuses this on a node if it holds there"
                    .to_string(),
            };
            d.help = Some(match d.help.take() {
                Some(h) => format!("{h}; {note}"),
                None => note,
            });
        }
        d
    }

    /// The severity of a problem of this machine (see [`Target::machine`]).
    pub fn machine_severity(&self) -> Severity {
        if self.here {
            Severity::Error
        } else {
            Severity::Warning
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha_cf::no_resolver;

    #[test]
    fn machine_problems_are_errors_only_here() {
        let d = || Diagnostic::file_error(Path::new("ha.cf"), "no such interface").with_help("h");
        let here = Target::here(NodeName::from("a"));
        assert!(here.machine(d()).is_error());
        let away = Target {
            node: Some(NodeName::from("b")),
            here: false,
            resolve: &no_resolver,
        };
        let w = away.machine(d());
        assert!(!w.is_error());
        assert!(w.help.unwrap().starts_with("h; checked for node b"));
        // Warnings stay warnings.
        let warn = Diagnostic::file_warning(Path::new("x"), "w");
        assert_eq!(here.machine(warn.clone()), warn);
    }
}
