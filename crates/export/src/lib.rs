//! ha-export: the Pacemaker + Corosync 3 configuration equivalent to a had (Heartbeat)
//! configuration: a CIB, a `crm configure` script and `corosync.conf`, with review notes.
//!
//! [`model::build`] is pure (it reads only the [`Host`]'s script and unit directories);
//! `cib`, `crm` and `corosync` print its result.

// Tests may unwrap: a panic there is a failed test, which is the point.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cib;
pub mod corosync;
pub mod crm;
mod fence;
pub mod id;
pub mod model;
mod nodes;
mod resolve;
mod resources;
mod tracking;

use std::path::{Path, PathBuf};

pub use fence::FenceAdvice;
pub use model::{Cluster, ExportError, Level, NodeAddr, Note, Options};
pub use resolve::{Host, Service};

/// The written forms of one export.
#[derive(Debug, Clone)]
pub struct Export {
    /// The model they print.
    pub cluster: Cluster,
    /// `cib.xml`.
    pub cib: String,
    /// `crm configure` script.
    pub crm: String,
    /// `corosync.conf`.
    pub corosync: String,
}

/// File names [`Export::write_to`] uses.
pub const FILES: [&str; 3] = ["cib.xml", "crm.txt", "corosync.conf"];

/// Exports `config` (see [`model::build`]).
pub fn pacemaker(
    config: &ha_config::Config,
    opts: &Options,
    host: &Host,
) -> Result<Export, ExportError> {
    let cluster = model::build(config, opts, host)?;
    Ok(Export {
        cib: cib::render(&cluster),
        crm: crm::render(&cluster),
        corosync: corosync::render(&cluster),
        cluster,
    })
}

impl Export {
    /// Writes [`FILES`] into `dir` (created if missing); the paths written.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut out = Vec::new();
        for (name, text) in FILES.iter().zip([&self.cib, &self.crm, &self.corosync]) {
            let p = dir.join(name);
            std::fs::write(&p, text)?;
            out.push(p);
        }
        Ok(out)
    }
}

/// The prefix of a note of `level` in text output.
pub fn level_tag(level: Level) -> &'static str {
    match level {
        Level::Danger => "!!! ",
        Level::Review => "REVIEW: ",
        Level::Info => "note: ",
    }
}

/// The comment block every file starts with: origin, then the notes, wrapped.
pub(crate) fn header_lines(c: &Cluster) -> Vec<String> {
    let mut v = vec![
        format!(
            "Written by `hactl export pacemaker` from {} (ha.cf, haresources, had.toml).",
            c.source
        ),
        "Read every note before switching; docs/migrating-to-pacemaker.md explains them.".into(),
        String::new(),
    ];
    for n in &c.notes {
        let tag = level_tag(n.level);
        for (i, line) in wrap(&n.text, 88 - tag.len()).into_iter().enumerate() {
            let lead = if i == 0 {
                tag.to_string()
            } else {
                " ".repeat(tag.len())
            };
            v.push(format!("{lead}{line}"));
        }
    }
    if let Some(f) = &c.fence {
        v.push(String::new());
        v.push("[fence]".into());
        for line in f.lines() {
            v.extend(wrap(&line, 88));
        }
    }
    v
}

/// Greedy word wrap at `width` characters (a longer word gets a line of its own).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests;
