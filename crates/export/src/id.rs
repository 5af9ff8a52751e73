//! XML IDs and escaping: every `id` of the CIB is an XML NCName unique in the document, and
//! every value or comment is escaped, whatever haresources or had.toml hold.

use std::collections::HashSet;

/// Hands out IDs that are valid XML IDs (NCName: a letter or `_` first, then letters,
/// digits, `-`, `_`, `.`) and unique across one export.
#[derive(Debug, Default)]
pub struct Ids {
    used: HashSet<String>,
}

impl Ids {
    /// An unused ID made from `wanted`: invalid characters become `-`, a leading non-letter
    /// gets an `r` in front, and a clash gets `-2`, `-3`, ... appended.
    pub fn unique(&mut self, wanted: &str) -> String {
        let base = sanitize(wanted);
        let mut id = base.clone();
        let mut n = 2;
        while !self.used.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// Marks `id` as taken (IDs fixed by Pacemaker's conventions, e.g. node IDs).
    pub fn reserve(&mut self, id: &str) {
        self.used.insert(id.to_string());
    }
}

/// `s` made into an NCName; empty input becomes `r`.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Runs of replaced characters read badly (`/srv//data` → `srv--data`): squeeze them.
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    match out.chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => out,
        _ => format!("r{}{out}", if out.is_empty() { "" } else { "-" }),
    }
}

/// `s` escaped for an XML attribute value in double quotes (also safe in text).
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute-value normalisation would turn these into spaces: keep them.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            // Not representable in XML 1.0 at all.
            c if (c as u32) < 0x20 => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` made safe inside an XML comment: no `--` (forbidden there), no trailing `-`, and no
/// characters XML cannot carry.
pub fn escape_comment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if (c as u32) < 0x20 && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-\u{2010}");
    }
    if out.ends_with('-') {
        out.push(' ');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ncnames_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(ids.unique("apache2"), "apache2");
        assert_eq!(ids.unique("apache2"), "apache2-2");
        assert_eq!(ids.unique("apache2"), "apache2-3");
        assert_eq!(ids.unique("192.168.1.5"), "r-192.168.1.5");
        assert_eq!(ids.unique("fs-/srv//data/"), "fs-srv-data");
        assert_eq!(ids.unique(""), "r");
        assert_eq!(ids.unique("a b<c>&\"d"), "a-b-c-d");
        assert_eq!(ids.unique("ip-2001:db8::1"), "ip-2001-db8-1");
        ids.reserve("x");
        assert_eq!(ids.unique("x"), "x-2");
        for s in ["-", "é", "--x--", "9", "_ok"] {
            let id = sanitize(s);
            let first = id.chars().next().unwrap();
            assert!(
                first.is_ascii_alphabetic() || first == '_',
                "{s:?} -> {id:?}"
            );
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{id}"
            );
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape_attr("a&b<c>\"d\"'e'\nf"),
            "a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;&#10;f"
        );
        assert_eq!(escape_attr("x\u{1}y"), "x\u{FFFD}y");
        let c = escape_comment("run /sbin/fence --hard ---x -");
        assert!(!c.contains("--"), "{c}");
        assert!(!c.ends_with('-'), "{c}");
    }
}
