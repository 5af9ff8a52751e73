//! `hactl import keepalived`: read a keepalived.conf (and optionally the peer's) as
//! keepalived 2.2 does, and write the equivalent ha.cf, haresources, authkeys and had.toml,
//! listing plainly what cannot be carried. See docs/migrating-from-keepalived.md.

mod emit;
mod keywords;
mod model;
mod parse;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ha_config::{Diagnostic, Diagnostics};

pub use emit::Output;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// This node's keepalived.conf.
    pub file: PathBuf,
    /// The peer's keepalived.conf, if at hand.
    pub peer: Option<PathBuf>,
    /// This node's name (`uname -n`); default: global_defs `router_id`, else `node1`.
    pub node: Option<String>,
    /// The peer's name; default: its `router_id`, else `node2`.
    pub peer_node: Option<String>,
    /// keepalived's config id for this node (`@id` lines); default: `node`.
    pub config_id: Option<String>,
    /// The peer's config id; default: `peer_node`.
    pub peer_config_id: Option<String>,
    /// The peer's priority when its file is not given.
    pub peer_priority: Option<u32>,
}

/// Node names must be usable in ha.cf (`uname -n` style).
fn valid_node(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// Read one file into the model.
fn read_one(
    path: &Path,
    config_id: &str,
    diags: &mut Diagnostics,
) -> (model::Keepalived, Vec<String>) {
    let (stmts, reader) = parse::Reader::new(config_id).read(path, diags);
    let conf = model::model(&stmts, diags);
    let skipped = reader
        .skipped
        .iter()
        .map(|(f, l, id)| {
            format!(
                "{}:{l}: `{id}` line skipped (config id is `{config_id}`)",
                f.display()
            )
        })
        .collect();
    (conf, skipped)
}

/// Run the import; the files are returned, not written. Errors (and warnings) are in
/// `diags`; on any error the output must not be written.
pub fn import(opts: &Options, key: &str, diags: &mut Diagnostics) -> Output {
    // A first pass for router_id (node names); config ids decide which `@` lines count, so
    // the names must be known before the real read when the user gave none.
    let guess = |p: &Path| {
        let mut d = Diagnostics::new();
        read_one(p, "", &mut d).0.router_id
    };
    let local_name = opts
        .node
        .clone()
        .or_else(|| guess(&opts.file))
        .unwrap_or_else(|| "node1".into())
        .to_lowercase();
    let peer_file = opts
        .peer
        .clone()
        .or_else(|| opts.peer_config_id.as_ref().map(|_| opts.file.clone()));
    let peer_name = opts
        .peer_node
        .clone()
        .or_else(|| {
            peer_file
                .as_deref()
                .and_then(guess)
                .filter(|r| r.to_lowercase() != local_name)
        })
        .unwrap_or_else(|| "node2".into())
        .to_lowercase();
    let mut notes = Vec::new();
    for (n, flag) in [(&local_name, "--node"), (&peer_name, "--peer-node")] {
        if !valid_node(n) {
            diags.push(
                Diagnostic::file_error(&opts.file, format!("`{n}` cannot be a node name in ha.cf"))
                    .with_help(format!("give the node's `uname -n` with {flag}")),
            );
        }
    }
    if local_name == peer_name {
        diags.push(
            Diagnostic::file_error(
                &opts.file,
                format!("both nodes would be called `{local_name}`"),
            )
            .with_help("give the names with --node and --peer-node"),
        );
    }
    if opts.node.is_none() && local_name == "node1"
        || opts.peer_node.is_none() && peer_name == "node2"
    {
        notes.push(format!(
            "node names `{local_name}` and `{peer_name}` are placeholders where no router_id or --node/--peer-node gave one: they must be each node's `uname -n`"
        ));
    }
    let (local_conf, mut skipped) = read_one(
        &opts.file,
        opts.config_id.as_deref().unwrap_or(&local_name),
        diags,
    );
    let peer_conf = peer_file.as_ref().map(|p| {
        let (c, s) = read_one(
            p,
            opts.peer_config_id.as_deref().unwrap_or(&peer_name),
            diags,
        );
        skipped.extend(s);
        (c, p.clone())
    });
    let local = emit::Side {
        node: local_name.clone(),
        conf: &local_conf,
        path: &opts.file,
    };
    let peer_side = peer_conf.as_ref().map(|(c, p)| emit::Side {
        node: peer_name.clone(),
        conf: c,
        path: p,
    });
    let mut out = emit::emit(
        &local,
        peer_side.as_ref(),
        &peer_name,
        opts.peer_priority,
        key,
        diags,
    );
    out.notes.extend(notes);
    out.notes.extend(skipped);
    add_snippets(diags);
    out
}

/// Give each diagnostic its source line, the statement's first word underlined.
fn add_snippets(diags: &mut Diagnostics) {
    let mut cache: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for d in &mut diags.0 {
        if d.line == 0 || !d.source_line.is_empty() {
            continue;
        }
        if !cache.iter().any(|(p, _)| *p == d.file) {
            let lines = std::fs::read(&d.file)
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .split('\n')
                        .map(|l| l.trim_end_matches('\r').to_string())
                        .collect()
                })
                .unwrap_or_default();
            cache.push((d.file.clone(), lines));
        }
        let Some(text) = cache
            .iter()
            .find(|(p, _)| *p == d.file)
            .and_then(|(_, l)| l.get(d.line - 1))
        else {
            continue;
        };
        let start = text.chars().take_while(|c| c.is_whitespace()).count();
        let word = text
            .chars()
            .skip(start)
            .take_while(|c| !c.is_whitespace())
            .count();
        d.source_line = text.clone();
        if word > 0 {
            d.column = start + 1;
            d.len = word;
        }
    }
}

/// A new random HMAC key (32 bytes from the kernel, hex).
pub fn new_key() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Write the files into `dir` (created if missing). Existing files are not overwritten unless
/// `force`; authkeys is created with mode 0600.
pub fn write(out: &Output, dir: &Path, force: bool) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    if !force {
        let existing: Vec<String> = out
            .files
            .iter()
            .map(|(n, _)| dir.join(n))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} already exist(s); use --force to overwrite",
                    existing.join(", ")
                ),
            ));
        }
    }
    let mut written = Vec::new();
    for (name, text) in &out.files {
        let p = dir.join(name);
        let mode = if name == "authkeys" { 0o600 } else { 0o644 };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)?;
        // O_NOFOLLOW above: never write through a symlink planted in the output directory.
        f.write_all(text.as_bytes())?;
        // An existing file keeps its mode on open: set it.
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        written.push(p);
    }
    Ok(written)
}

/// The report printed by `hactl import`.
pub fn report(out: &Output) -> String {
    let mut s = String::new();
    if !out.dropped.is_empty() {
        s.push_str("not carried:\n");
        for d in &out.dropped {
            s.push_str("  ");
            s.push_str(d);
            s.push('\n');
        }
    }
    if !out.notes.is_empty() {
        s.push_str("notes:\n");
        for n in &out.notes {
            s.push_str("  ");
            s.push_str(n);
            s.push('\n');
        }
    }
    s
}
