//! `authkeys`: the shared secrets (`N METHOD [KEY]`), the `auth N` line choosing the key we
//! sign with, and Heartbeat's refusal of a group- or world-readable file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::diag::{Diagnostic, Diagnostics, Span, did_you_mean};
use crate::lex;

/// The parsed `authkeys`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Authkeys {
    /// Index of the key outgoing messages are signed with.
    pub active: u8,
    /// Every key, all of them accepted when verifying.
    pub keys: BTreeMap<u8, AuthKey>,
}

impl Authkeys {
    /// The key outgoing messages are signed with.
    pub fn active_key(&self) -> Option<&AuthKey> {
        self.keys.get(&self.active)
    }

    /// Whether messages are signed with crc, which anyone can compute: no authentication.
    pub fn unauthenticated(&self) -> bool {
        self.active_key()
            .is_some_and(|k| k.method == AuthMethod::Crc)
    }
}

impl ha_core::auth::KeySet for Authkeys {
    fn active_index(&self) -> u8 {
        self.active
    }

    fn key_triples(&self) -> Vec<(u8, AuthMethod, Vec<u8>)> {
        self.keys
            .iter()
            .map(|(&i, k)| (i, k.method, k.secret.clone()))
            .collect()
    }
}

/// One key.
#[derive(Clone, PartialEq, Eq)]
// Debug is written by hand so secrets never end up in logs.
pub struct AuthKey {
    /// Hash method.
    pub method: AuthMethod,
    /// The secret's bytes as written (empty for crc).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKey")
            .field("method", &self.method)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

pub use ha_core::config::AuthMethod;

const METHODS: &[&str] = &["crc", "md5", "sha1", "sha256"];

/// Refuses an authkeys file that its group or others can read, as Heartbeat does.
// The contract returns a plain Diagnostic; this runs once at load, so its size is irrelevant.
#[allow(clippy::result_large_err)]
pub fn check_mode(path: &Path) -> Result<(), Diagnostic> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        Diagnostic::file_error(path, format!("cannot read `{}`: {e}", path.display()))
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o044 != 0 {
        return Err(Diagnostic::file_error(
            path,
            format!(
                "`{}` is readable by group or others (mode {mode:o}); its keys would be exposed",
                path.display()
            ),
        )
        .with_help(format!(
            "run `chmod 600 {}` (Heartbeat refuses such a file too)",
            path.display()
        )));
    }
    Ok(())
}

/// Secrets shorter than this get a warning.
pub const MIN_SECRET_CHARS: usize = 16;

/// The warning for crc as the active method, at every start, in checks and in the status.
pub const CRC_WARNING: &str = "no authentication: `crc` is the active method, so anyone on the LAN can forge heartbeats, standby and takeover requests";

fn parse_index(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|i| *i <= 15)
}

impl Authkeys {
    /// Parses `authkeys` text; problems go to `diags`.
    pub fn parse(path: &Path, text: &str, diags: &mut Diagnostics) -> Authkeys {
        let err = |span: &Span, msg: String, help: String| {
            Diagnostic::file_error(path, msg).at(span).with_help(help)
        };
        let mut keys = BTreeMap::new();
        let mut auth: Option<(u8, Span)> = None;
        // Keys whose line was reported as broken: `auth N` naming them needs no second error.
        let mut broken = Vec::new();
        for line in lex::lines(text) {
            // Only whole-line comments: a `#` inside a key is part of the key for Heartbeat.
            if line.text.trim_start_matches(lex::is_space).starts_with('#') {
                continue;
            }
            let toks = lex::tokens(line.text, lex::is_space);
            let Some(first) = toks.first() else { continue };
            if first.text == "auth" {
                let Some(n) = toks.get(1) else {
                    diags.push(err(
                        &first.span(&line),
                        "`auth` needs a key index".into(),
                        "write e.g. `auth 1`".into(),
                    ));
                    continue;
                };
                match parse_index(n.text) {
                    Some(i) => {
                        if auth.is_some() {
                            diags.push(
                                Diagnostic::new(
                                    crate::Severity::Warning,
                                    path,
                                    "`auth` given twice; the last one is used",
                                )
                                .at(&first.span(&line)),
                            );
                        }
                        auth = Some((i, n.span(&line)));
                    }
                    None => diags.push(err(
                        &n.span(&line),
                        format!("invalid key index `{}`", n.text),
                        "key indexes are 0 to 15".into(),
                    )),
                }
                continue;
            }
            let Some(index) = parse_index(first.text) else {
                let help = if first.text.starts_with(|c: char| c.is_ascii_digit()) {
                    "key indexes are 0 to 15".to_string()
                } else if let Some(s) = did_you_mean(first.text, &["auth"]) {
                    format!("did you mean `{s}`?")
                } else {
                    "lines are `auth N` or `N METHOD [KEY]`, e.g. `1 sha1 SomeSecret`".to_string()
                };
                diags.push(err(
                    &first.span(&line),
                    format!("unexpected `{}`", first.text),
                    help,
                ));
                continue;
            };
            broken.push(index);
            let Some(m) = toks.get(1) else {
                diags.push(err(
                    &first.span(&line),
                    format!("key {index} has no method"),
                    format!("write e.g. `{index} sha1 SomeSecret`"),
                ));
                continue;
            };
            let Some(method) = AuthMethod::from_name(m.text) else {
                let list = METHODS.join(", ");
                let help = match did_you_mean(m.text, METHODS) {
                    Some(s) => format!("did you mean `{s}`? (methods: {list})"),
                    None => format!("methods: {list}"),
                };
                diags.push(err(
                    &m.span(&line),
                    format!("unknown auth method `{}`", m.text),
                    help,
                ));
                continue;
            };
            let secret = toks.get(2);
            match (method, secret) {
                (AuthMethod::Crc, Some(s)) if !s.text.starts_with('#') => {
                    diags.push(err(
                        &s.span(&line),
                        "crc doesn't use a key".into(),
                        format!("write `{index} crc`, or use `{index} sha1 {}` to sign with this secret", s.text),
                    ));
                    continue;
                }
                (AuthMethod::Md5 | AuthMethod::Sha1 | AuthMethod::Sha256, None) => {
                    diags.push(err(
                        &m.span(&line),
                        format!("{} needs a key", method.as_str()),
                        format!("write `{index} {} SomeLongSecret`", method.as_str()),
                    ));
                    continue;
                }
                _ => {}
            }
            broken.retain(|i| *i != index);
            if let Some(s) = secret.filter(|s| s.text.chars().count() < MIN_SECRET_CHARS) {
                diags.push(
                    Diagnostic::new(
                        crate::Severity::Warning,
                        path,
                        format!(
                            "key {index} is only {} character(s) long: a short secret can be guessed offline from one captured packet",
                            s.text.chars().count()
                        ),
                    )
                    .at(&s.span(&line))
                    .with_help(format!(
                        "use at least {MIN_SECRET_CHARS} random characters, e.g. the output of `openssl rand -hex 16`, on both nodes"
                    )),
                );
            }
            let secret_bytes = match (method, secret) {
                (AuthMethod::Crc, _) | (_, None) => Vec::new(),
                (_, Some(s)) => s.text.as_bytes().to_vec(),
            };
            let extra_from = if method == AuthMethod::Crc { 2 } else { 3 };
            if let Some(x) = toks.get(extra_from).filter(|x| !x.text.starts_with('#')) {
                diags.push(
                    Diagnostic::new(
                        crate::Severity::Warning,
                        path,
                        "text after the key is ignored (keys cannot contain spaces)",
                    )
                    .at(&x.span(&line)),
                );
            }
            if keys
                .insert(
                    index,
                    AuthKey {
                        method,
                        secret: secret_bytes,
                    },
                )
                .is_some()
            {
                diags.push(
                    Diagnostic::new(
                        crate::Severity::Warning,
                        path,
                        format!("key {index} is defined twice; the last one is used"),
                    )
                    .at(&first.span(&line)),
                );
            }
        }
        let defined = || {
            keys.keys()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let active = match auth {
            None => {
                let help = match keys.keys().next() {
                    Some(i) => format!("add `auth {i}` to sign with key {i}"),
                    None => "add `auth 1` and a key, e.g. `1 sha1 SomeLongSecret`".into(),
                };
                diags.push(
                    Diagnostic::file_error(path, "Missing `auth` directive: add `auth 1`")
                        .with_help(help),
                );
                0
            }
            Some((i, span)) => {
                if !keys.contains_key(&i) && !broken.contains(&i) {
                    let help = if keys.is_empty() {
                        format!("add a key line, e.g. `{i} sha1 SomeLongSecret`")
                    } else {
                        format!(
                            "defined keys: {}; add `{i} sha1 SomeLongSecret` or point `auth` at one of them",
                            defined()
                        )
                    };
                    diags.push(err(
                        &span,
                        format!("`auth {i}` names key {i}, which is not defined"),
                        help,
                    ));
                }
                if keys.get(&i).is_some_and(|k| k.method == AuthMethod::Crc) {
                    diags.push(
                        Diagnostic::new(crate::Severity::Warning, path, CRC_WARNING)
                            .at(&span)
                            .with_help(format!(
                                "sign with a secret: `{i} sha1 <random secret>` (the same file on both nodes)"
                            )),
                    );
                }
                i
            }
        };
        Authkeys { active, keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses, leaving out the short-key warnings that the short test keys all get
    /// (`crc_and_short_keys_are_warned_about` checks those).
    fn parse(text: &str) -> (Authkeys, Diagnostics) {
        let (a, mut d) = parse_all(text);
        d.0.retain(|d| !d.message.contains("character(s) long"));
        (a, d)
    }

    fn parse_all(text: &str) -> (Authkeys, Diagnostics) {
        let mut d = Diagnostics::new();
        let a = Authkeys::parse(Path::new("/etc/ha.d/authkeys"), text, &mut d);
        (a, d)
    }

    #[test]
    fn seed_002_file() {
        let (a, d) = parse(
            "#numéro de méthode d'authentification (1 = 1ère méthode)\nauth 1\n#type de hachage et mot de passe à utiliser pour la méthode 1\n#Le mot de passe utilisé est libre.\n1 md5 motdepasse\n",
        );
        assert!(d.is_empty(), "{d}");
        assert_eq!(a.active, 1);
        assert_eq!(
            a.active_key(),
            Some(&AuthKey {
                method: AuthMethod::Md5,
                secret: b"motdepasse".to_vec()
            })
        );
    }

    #[test]
    fn several_keys_crlf_and_rotation() {
        let (a, d) = parse(
            "auth 2\r\n1 sha1 SomeLongSecret\r\n\t2 md5 Other#Secret\r\n3 crc\r\n15 sha256 k # comment",
        );
        assert!(d.is_empty(), "{d}");
        assert_eq!(a.keys.len(), 4);
        assert_eq!(a.keys[&2].secret, b"Other#Secret");
        assert_eq!(
            a.keys[&3],
            AuthKey {
                method: AuthMethod::Crc,
                secret: vec![]
            }
        );
        assert_eq!(a.keys[&15].method.as_str(), "sha256");
        assert!(!format!("{a:?}").contains("SomeLongSecret"));
    }

    #[test]
    fn unknown_method_renders_with_hint() {
        let (_, d) = parse("auth 1\n1 md4 secret\n");
        assert_eq!(d.error_count(), 1, "{d}");
        let expected = "error: unknown auth method `md4`\n  --> /etc/ha.d/authkeys:2:3\n   |\n 2 | 1 md4 secret\n   |   ^^^\n   = help: did you mean `md5`? (methods: crc, md5, sha1, sha256)";
        assert_eq!(d.0[0].to_string(), expected);
        let (_, d) = parse("auth 1\n1 sha secret\n");
        assert!(
            d.0[0]
                .help
                .as_deref()
                .unwrap()
                .starts_with("did you mean `sha1`?")
        );
    }

    #[test]
    fn auth_line_errors() {
        let (_, d) = parse("1 sha1 x\n");
        assert_eq!(d.0[0].message, "Missing `auth` directive: add `auth 1`");
        let (_, d) = parse("auth 3\n1 sha1 x\n");
        assert_eq!(d.error_count(), 1);
        assert!(d.0[0].message.contains("key 3"));
        assert_eq!((d.0[0].line, d.0[0].column), (1, 6));
        let (_, d) = parse("auth 16\n1 sha1 x\n");
        assert!(d.has_errors());
        let (_, d) = parse("auht 1\n1 sha1 x\n");
        assert_eq!(d.0[0].help.as_deref(), Some("did you mean `auth`?"));
    }

    #[test]
    fn key_rules() {
        let (_, d) = parse("auth 1\n1 crc abc\n");
        assert_eq!(d.0[0].message, "crc doesn't use a key");
        let (_, d) = parse("auth 1\n1 sha1\n");
        assert_eq!(d.0[0].message, "sha1 needs a key");
        assert_eq!(
            d.error_count(),
            1,
            "a broken key line is not also reported as undefined"
        );
        let (_, d) = parse("auth 1\n16 sha1 x\n1 sha1 y\n");
        assert_eq!(d.error_count(), 1);
        let (_, d) = parse("auth 1\n1 sha1 x y\n");
        assert_eq!(d.warning_count(), 1);
        let (_, d) = parse("auth 1\n1 MD5 x\n");
        assert_eq!(
            d.0[0].help.as_deref().unwrap(),
            "did you mean `md5`? (methods: crc, md5, sha1, sha256)"
        );
    }

    #[test]
    fn crc_and_short_keys_are_warned_about() {
        let (a, d) = parse_all("auth 2\n1 sha1 0123456789abcdef\n2 crc\n");
        assert!(a.unauthenticated());
        assert_eq!((d.error_count(), d.warning_count()), (0, 1), "{d}");
        assert!(d.0[0].message.starts_with("no authentication"), "{d}");
        assert_eq!(d.0[0].line, 1);
        // crc only listed (key rotation leftovers are 9a's business), sha1 active: no warning.
        let (a, d) = parse_all("auth 1\n1 sha1 0123456789abcdef\n2 crc\n");
        assert!(!a.unauthenticated());
        assert!(d.is_empty(), "{d}");
        let (_, d) = parse_all("auth 1\n1 md5 x\n2 sha1 0123456789abcde\n");
        assert_eq!(d.warning_count(), 2, "{d}");
        assert!(d.0[0].message.contains("only 1 character"), "{d}");
        assert_eq!((d.0[1].line, d.0[1].column), (3, 8));
        assert!(d.0[1].help.as_deref().unwrap().contains("openssl rand"));
    }

    #[test]
    fn mode_check() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("authkeys");
        std::fs::write(&p, "auth 1\n1 md5 motdepasse\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_mode(&p).unwrap_err();
        assert!(e.message.contains("mode 644"), "{e}");
        assert!(e.message.contains(&p.display().to_string()));
        assert_eq!(
            e.help.as_deref().unwrap(),
            format!(
                "run `chmod 600 {}` (Heartbeat refuses such a file too)",
                p.display()
            )
        );
        for ok in [0o600, 0o400, 0o620] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(ok)).unwrap();
            assert!(check_mode(&p).is_ok(), "{ok:o}");
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(check_mode(&p).is_err());
        assert!(check_mode(&dir.path().join("missing")).is_err());
    }
}
