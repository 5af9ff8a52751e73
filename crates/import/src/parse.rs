//! keepalived.conf as keepalived 2.2 reads it: `!` and `#` comments, quoted strings, `{`/`}`
//! as tokens of their own, `include` with glob patterns, `@id` / `@^id` conditional lines,
//! `$NAME=value` definitions. The result is a tree of statements, each with its file and line.

use std::path::{Path, PathBuf};

use ha_config::{Diagnostic, Diagnostics, Severity};

/// One statement: a keyword, its arguments, and a block if `{` followed.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// The first word.
    pub key: String,
    /// The words after it (quotes removed).
    pub args: Vec<String>,
    /// The statements inside `{ }`, if any.
    pub block: Option<Vec<Stmt>>,
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
}

#[derive(Debug)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
    file: usize,
}

/// How deep `include` may nest (keepalived has no limit; a loop must not hang us).
const MAX_INCLUDE_DEPTH: usize = 8;
/// Largest file read: configs are small, and a device or a huge file is a mistake.
const MAX_FILE: u64 = 4 << 20;

/// Reading state: the files seen, the tokens, definitions, the config id for `@` lines.
pub struct Reader<'a> {
    files: Vec<PathBuf>,
    tokens: Vec<Token>,
    defs: Vec<(String, String)>,
    config_id: &'a str,
    /// Lines skipped by a non-matching `@id` prefix: (file, line, id).
    pub skipped: Vec<(PathBuf, usize, String)>,
}

impl<'a> Reader<'a> {
    /// A reader for the node whose keepalived `config_id` (`-i`, default the host name) is
    /// `config_id`.
    pub fn new(config_id: &'a str) -> Self {
        Self {
            files: Vec::new(),
            tokens: Vec::new(),
            defs: Vec::new(),
            config_id,
            skipped: Vec::new(),
        }
    }

    /// Read `path` and everything it includes into a statement tree.
    pub fn read(mut self, path: &Path, diags: &mut Diagnostics) -> (Vec<Stmt>, Self) {
        self.read_file(path, 0, diags, None);
        let stmts = self.build(diags);
        (stmts, self)
    }

    fn read_file(
        &mut self,
        path: &Path,
        depth: usize,
        diags: &mut Diagnostics,
        from: Option<(&Path, usize)>,
    ) {
        let err = |msg: String| {
            let mut d = match from {
                Some((f, _)) => Diagnostic::file_error(f, msg),
                None => Diagnostic::file_error(path, msg),
            };
            if let Some((_, l)) = from {
                d.line = l;
            }
            d
        };
        if depth > MAX_INCLUDE_DEPTH {
            diags.push(err(format!(
                "`include` nested deeper than {MAX_INCLUDE_DEPTH} levels at `{}` (an include loop?)",
                path.display()
            )));
            return;
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                diags.push(err(format!("cannot read `{}`: {e}", path.display())));
                return;
            }
        };
        if !meta.is_file() || meta.len() > MAX_FILE {
            diags.push(err(format!(
                "`{}` is not a regular file under {} MiB",
                path.display(),
                MAX_FILE >> 20
            )));
            return;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                diags.push(err(format!("cannot read `{}`: {e}", path.display())));
                return;
            }
        };
        // Latin-1 comments are common; keepalived reads bytes, so do we.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let fi = self.files.len();
        self.files.push(path.to_path_buf());
        let mut pending = String::new();
        let mut pending_line = 0;
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            // A trailing `\` continues the statement on the next line (keepalived 2.x).
            if let Some(head) = raw.strip_suffix('\\') {
                if pending.is_empty() {
                    pending_line = line_no;
                }
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            let (line, at) = if pending.is_empty() {
                (raw.to_string(), line_no)
            } else {
                let mut p = std::mem::take(&mut pending);
                p.push_str(raw);
                (p, pending_line)
            };
            self.read_line(&line, at, fi, path, depth, diags);
        }
        if !pending.is_empty() {
            let p = std::mem::take(&mut pending);
            self.read_line(&p, pending_line, fi, path, depth, diags);
        }
    }

    fn read_line(
        &mut self,
        line: &str,
        line_no: usize,
        fi: usize,
        path: &Path,
        depth: usize,
        diags: &mut Diagnostics,
    ) {
        let mut words = split_words(line);
        if words.is_empty() {
            return;
        }
        // `@id keyword ...` applies only on the node whose config id is `id`; `@^id` on every
        // other node.
        if let Some(first) = words.first().filter(|w| !w.1 && w.0.starts_with('@')) {
            let cond = &first.0[1..];
            let (neg, id) = match cond.strip_prefix('^') {
                Some(id) => (true, id),
                None => (false, cond),
            };
            if (id == self.config_id) == neg {
                self.skipped
                    .push((path.to_path_buf(), line_no, first.0.clone()));
                return;
            }
            words.remove(0);
            if words.is_empty() {
                return;
            }
        }
        // `$NAME=value` defines a parameter used later as `$NAME` or `${NAME}`.
        if let Some((w, false)) = words.first()
            && let Some(def) = w.strip_prefix('$')
            && let Some((name, value)) = def.split_once('=')
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            let mut value = value.to_string();
            for (w, _) in &words[1..] {
                value.push(' ');
                value.push_str(w);
            }
            self.defs.retain(|(n, _)| n != name);
            self.defs.push((name.to_string(), value));
            return;
        }
        let err = |msg: String, help: &str| {
            let mut d = Diagnostic::file_error(path, msg).with_help(help.to_string());
            d.line = line_no;
            d
        };
        // Templates (Jinja, Go, mustache) are for a renderer, not for keepalived.
        if words
            .iter()
            .any(|(w, _)| w.contains("{{") || w.contains("}}"))
            || line.contains("{{")
        {
            diags.push(err(
                "an unrendered template placeholder (`{{ ... }}`)".into(),
                "render the template first, then import the keepalived.conf it produces",
            ));
            return;
        }
        // Parameters are replaced before the line is split, as keepalived does.
        if line.contains('$') {
            let (text, missing) = self.substitute(line);
            if let Some(name) = missing {
                diags.push(err(
                    format!("`${name}` is not defined"),
                    "define it earlier with `$NAME=value`, or render the template that uses it",
                ));
                return;
            }
            words = split_words(&text);
            if words.is_empty() {
                return;
            }
        }
        if words[0].0 == "include" && !words[0].1 {
            let Some((pattern, _)) = words.get(1) else {
                let mut d = Diagnostic::file_error(path, "`include` without a file");
                d.line = line_no;
                diags.push(d);
                return;
            };
            let base = path.parent().unwrap_or(Path::new("."));
            let full = if Path::new(pattern).is_absolute() {
                PathBuf::from(pattern)
            } else {
                base.join(pattern)
            };
            let matches = glob(&full);
            if matches.is_empty() && !has_glob(pattern) {
                let mut d = Diagnostic::file_error(
                    path,
                    format!("`include {pattern}`: no such file ({})", full.display()),
                );
                d.line = line_no;
                diags.push(d);
            }
            for m in matches {
                self.read_file(&m, depth + 1, diags, Some((path, line_no)));
            }
            return;
        }
        for (w, quoted) in words {
            self.tokens.push(Token {
                text: w,
                quoted,
                line: line_no,
                file: fi,
            });
        }
        // The end of a line ends a statement: a marker token nobody can write.
        self.tokens.push(Token {
            text: String::new(),
            quoted: false,
            line: line_no,
            file: fi,
        });
    }

    /// Replace `$NAME` and `${NAME}`; the name of the first undefined parameter, if any.
    fn substitute(&self, w: &str) -> (String, Option<String>) {
        let mut out = String::new();
        let mut rest = w;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let (name, tail, braced) = if let Some(b) = after.strip_prefix('{') {
                match b.find('}') {
                    Some(e) => (&b[..e], &b[e + 1..], true),
                    None => ("", after, false),
                }
            } else {
                let e = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..e], &after[e..], false)
            };
            match self.defs.iter().find(|(n, _)| n == name) {
                Some((_, v)) if !name.is_empty() => out.push_str(v),
                // `${NAME}` can only be a parameter; an undefined `$word` (a `$` inside a
                // password) is text.
                _ if braced => return (out, Some(name.to_string())),
                _ => {
                    out.push('$');
                    rest = after;
                    continue;
                }
            }
            rest = tail;
        }
        out.push_str(rest);
        (out, None)
    }

    fn build(&mut self, diags: &mut Diagnostics) -> Vec<Stmt> {
        let tokens = std::mem::take(&mut self.tokens);
        let mut pos = 0;
        let out = self.block(&tokens, &mut pos, 0, diags);
        if pos < tokens.len() {
            let t = &tokens[pos];
            let mut d = Diagnostic::file_error(&self.files[t.file], "`}` without a matching `{`");
            d.line = t.line;
            diags.push(d);
        }
        out
    }

    fn block(
        &self,
        tokens: &[Token],
        pos: &mut usize,
        depth: usize,
        diags: &mut Diagnostics,
    ) -> Vec<Stmt> {
        let mut out: Vec<Stmt> = Vec::new();
        let mut cur: Option<Stmt> = None;
        while *pos < tokens.len() {
            let t = &tokens[*pos];
            *pos += 1;
            match (t.text.as_str(), t.quoted) {
                ("", false) => {
                    if let Some(s) = cur.take() {
                        out.push(s);
                    }
                }
                ("{", false) => {
                    // `{` on a line of its own opens the block of the statement before it.
                    let mut s = match cur.take() {
                        Some(s) => s,
                        None => match out.pop() {
                            Some(s) if s.block.is_none() => s,
                            other => {
                                out.extend(other);
                                let mut d = Diagnostic::file_error(
                                    &self.files[t.file],
                                    "`{` without a keyword before it",
                                );
                                d.line = t.line;
                                diags.push(d);
                                Stmt {
                                    key: String::new(),
                                    args: Vec::new(),
                                    block: None,
                                    file: self.files[t.file].clone(),
                                    line: t.line,
                                }
                            }
                        },
                    };
                    s.block = Some(self.block(tokens, pos, depth + 1, diags));
                    out.push(s);
                }
                ("}", false) => {
                    if let Some(s) = cur.take() {
                        out.push(s);
                    }
                    if depth == 0 {
                        *pos -= 1;
                        // Report and skip the stray brace, then go on.
                        let mut d = Diagnostic::file_error(
                            &self.files[t.file],
                            "`}` without a matching `{`",
                        );
                        d.line = t.line;
                        diags.push(d);
                        *pos += 1;
                        continue;
                    }
                    return out;
                }
                (w, _) => match &mut cur {
                    Some(s) => s.args.push(w.to_string()),
                    None => {
                        cur = Some(Stmt {
                            key: w.to_string(),
                            args: Vec::new(),
                            block: None,
                            file: self.files[t.file].clone(),
                            line: t.line,
                        })
                    }
                },
            }
        }
        if let Some(s) = cur.take() {
            out.push(s);
        }
        if depth > 0 {
            let (file, line) = tokens
                .last()
                .map(|t| (self.files[t.file].clone(), t.line))
                .unwrap_or_default();
            let mut d = Diagnostic::new(
                Severity::Error,
                &file,
                "end of file inside a `{ }` block: a `}` is missing",
            );
            d.line = line;
            diags.push(d);
        }
        out
    }
}

/// Split a line into words: blanks separate, `"..."` is one word without its quotes, `{` and
/// `}` are words of their own, and an unquoted `#` or `!` starts a comment.
fn split_words(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<(String, bool)>| {
        if !cur.is_empty() {
            out.push((std::mem::take(cur), false));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '"' => {
                flush(&mut cur, &mut out);
                let mut q = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    q.push(c);
                }
                out.push((q, true));
            }
            '{' | '}' => {
                flush(&mut cur, &mut out);
                out.push((c.to_string(), false));
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// The files matching `pattern` (`*`, `?` and `[...]` in any component), sorted, as glob(3).
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(if pattern.is_absolute() { "/" } else { "" })];
    for comp in pattern.components() {
        let c = comp.as_os_str().to_string_lossy();
        if matches!(comp, std::path::Component::RootDir) {
            continue;
        }
        let mut next = Vec::new();
        for p in &paths {
            if has_glob(&c) {
                let dir = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                };
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.') && wildcard(&c, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| p.join(n)));
            } else {
                let q = p.join(&*c);
                if q.exists() || !has_glob(&pattern.to_string_lossy()) {
                    next.push(q);
                }
            }
        }
        paths = next;
    }
    paths.retain(|p| p.is_file());
    paths
}

/// Shell wildcard match of one path component.
fn wildcard(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some('!' | '^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, id: &str) -> (Vec<Stmt>, Diagnostics) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("keepalived.conf");
        std::fs::write(&p, text).expect("write");
        let mut d = Diagnostics::new();
        let (s, _) = Reader::new(id).read(&p, &mut d);
        (s, d)
    }

    #[test]
    fn words_comments_quotes_braces() {
        assert_eq!(
            split_words(r#"script "killall -0 haproxy" # check{"#),
            vec![
                ("script".to_string(), false),
                ("killall -0 haproxy".to_string(), true)
            ]
        );
        let w: Vec<String> = split_words("vrrp_instance VI_1{ state MASTER}! x")
            .into_iter()
            .map(|w| w.0)
            .collect();
        assert_eq!(w, ["vrrp_instance", "VI_1", "{", "state", "MASTER", "}"]);
    }

    #[test]
    fn tree_with_lines_brace_on_next_line_and_conditionals() {
        let text = "! header\nvrrp_instance VI_1\n{\n  @a priority 100\n  @^a priority 90\n  virtual_ipaddress { 10.0.0.1/24 dev eth0 }\n}\n";
        let (s, d) = read(text, "a");
        assert!(d.is_empty(), "{d}");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].key.as_str(), s[0].line), ("vrrp_instance", 2));
        let b = s[0].block.as_ref().expect("block");
        assert_eq!(b[0].args, ["100"]);
        assert_eq!(b[0].line, 4);
        assert_eq!(b.len(), 2);
        let v = b[1].block.as_ref().expect("vip block");
        assert_eq!(v[0].key, "10.0.0.1/24");
        assert_eq!(v[0].args, ["dev", "eth0"]);
        let (s, _) = read(text, "b");
        assert_eq!(s[0].block.as_ref().expect("b")[0].args, ["90"]);
    }

    #[test]
    fn includes_globs_and_definitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
        std::fs::write(dir.path().join("conf.d/b.conf"), "vrrp_script b {\n}\n").expect("w");
        std::fs::write(dir.path().join("conf.d/a.conf"), "vrrp_script a {\n}\n").expect("w");
        std::fs::write(dir.path().join("conf.d/skip.txt"), "junk {\n").expect("w");
        let main = dir.path().join("keepalived.conf");
        std::fs::write(
            &main,
            "$IF=eth1\ninclude conf.d/*.conf\ninterface ${IF}\ninclude missing.conf\n",
        )
        .expect("w");
        let mut d = Diagnostics::new();
        let (s, _) = Reader::new("x").read(&main, &mut d);
        let keys: Vec<(&str, Vec<String>)> =
            s.iter().map(|s| (s.key.as_str(), s.args.clone())).collect();
        assert_eq!(
            keys,
            vec![
                ("vrrp_script", vec!["a".to_string()]),
                ("vrrp_script", vec!["b".to_string()]),
                ("interface", vec!["eth1".to_string()]),
            ]
        );
        assert!(s[0].file.ends_with("conf.d/a.conf"));
        assert_eq!(d.error_count(), 1, "{d}");
        assert_eq!(d.0[0].line, 4);
    }

    #[test]
    fn unbalanced_braces_are_reported_with_lines() {
        let (_, d) = read("vrrp_instance X {\n state MASTER\n", "x");
        assert_eq!(d.error_count(), 1, "{d}");
        let (_, d) = read("}\nvrrp_instance X {\n}\n", "x");
        assert_eq!((d.error_count(), d.0[0].line), (1, 1), "{d}");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.conf.bak"));
        assert!(wildcard("v?_[0-9]", "vi_3"));
        assert!(!wildcard("[!a]x", "ax"));
    }
}
