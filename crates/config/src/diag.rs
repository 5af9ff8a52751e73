//! Compiler-like diagnostics for configuration files: one problem, the line it is on, a caret
//! under the offending text and a hint. Also the "did you mean" suggestions used by every parser.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The configuration cannot be used.
    Error,
    /// The configuration is usable, but something looks wrong or is ignored.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a configuration file.
///
/// `line` and `column` are 1-based; `line == 0` means the problem concerns the whole file
/// (missing file, bad permissions, a required directive that is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, 0 for the whole file.
    pub line: usize,
    /// 1-based column in characters, 0 for the whole line.
    pub column: usize,
    /// Number of characters to underline.
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The text of the line, for the snippet.
    pub source_line: String,
}

impl Diagnostic {
    /// An error about the whole file.
    pub fn file_error(file: &Path, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, file, message)
    }

    /// A warning about the whole file.
    pub fn file_warning(file: &Path, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, file, message)
    }

    /// A diagnostic with no position yet.
    pub fn new(severity: Severity, file: &Path, message: impl Into<String>) -> Self {
        Self {
            severity,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            len: 0,
            message: message.into(),
            help: None,
            source_line: String::new(),
        }
    }

    /// Places the diagnostic on a span of a line.
    pub fn at(mut self, span: &Span) -> Self {
        self.line = span.line;
        self.column = span.column;
        self.len = span.len;
        self.source_line = span.source_line.to_string();
        self
    }

    /// Adds a help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Where a piece of text sits in a file, with the line's text for rendering.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// Length in characters.
    pub len: usize,
    /// The whole line as written (without line terminator), shared by the spans of its
    /// tokens: a haresources group of a thousand addresses on one line is kept once, not a
    /// thousand times (issue 14: 29 MiB of the daemon's heap at 1,000 addresses).
    pub source_line: std::sync::Arc<str>,
}

impl Diagnostic {
    /// A TOML syntax or schema error of `path` (whose text is `text`), placed on the line
    /// and column serde reports, with the caller's hint.
    pub fn from_toml(
        path: &std::path::Path,
        text: &str,
        err: &toml::de::Error,
        help: Option<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic::file_error(path, err.message().trim_end().to_string());
        if let Some(r) = err.span() {
            d = d.at(&Span::from_byte_range(text, r));
        }
        d.help = help;
        d
    }
}

impl Span {
    /// The line, column and underline of a byte range of `text` (e.g. a TOML span); a range
    /// across lines is cut at the end of its first line.
    pub fn from_byte_range(text: &str, range: std::ops::Range<usize>) -> Span {
        let start = range.start.min(text.len());
        let start = (0..=start)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = &text[line_start..line_end];
        let end = range.end.clamp(start, line_end);
        let end = (end..=line_end)
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(line_end);
        Span {
            line: text[..start].matches('\n').count() + 1,
            column: text[line_start..start].chars().count() + 1,
            len: text[start..end].chars().count().max(1),
            source_line: line_text.strip_suffix('\r').unwrap_or(line_text).into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.severity, self.message)?;
        let width = if self.line == 0 {
            1
        } else {
            self.line.to_string().len()
        };
        let pad = " ".repeat(width + 1);
        if self.line == 0 {
            write!(f, "{pad}--> {}", self.file.display())?;
        } else if self.column == 0 {
            write!(f, "{pad}--> {}:{}", self.file.display(), self.line)?;
        } else {
            write!(
                f,
                "{pad}--> {}:{}:{}",
                self.file.display(),
                self.line,
                self.column
            )?;
        }
        if self.line != 0 {
            let shown = self.source_line.trim_end();
            writeln!(f)?;
            writeln!(f, "{pad} |")?;
            write!(f, " {:>width$} | {shown}", self.line)?;
            if self.column != 0 {
                // Copy tabs from the source so the caret lines up however the terminal
                // expands them.
                let lead: String = shown
                    .chars()
                    .take(self.column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f)?;
                write!(f, "{pad} | {lead}{}", "^".repeat(self.len.max(1)))?;
            }
        }
        if let Some(help) = &self.help {
            writeln!(f)?;
            write!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found while loading a configuration, errors and warnings together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// An empty list.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }

    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The one-line tally, e.g. `2 errors, 1 warning`.
    pub fn summary(&self) -> String {
        fn count(n: usize, word: &str) -> String {
            if n == 1 {
                format!("1 {word}")
            } else {
                format!("{n} {word}s")
            }
        }
        let (e, w) = (self.error_count(), self.warning_count());
        match (e, w) {
            (0, 0) => "no problems".to_string(),
            (_, 0) => count(e, "error"),
            (0, _) => count(w, "warning"),
            _ => format!("{}, {}", count(e, "error"), count(w, "warning")),
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
            writeln!(f)?;
        }
        write!(f, "{}", self.summary())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}

/// Edit distance counted in characters, where swapping two neighbours costs one edit
/// (optimal string alignment), since transposed letters are the commonest typo.
/// The edit distance if it is at most `limit`. Lengths that differ by more than `limit`
/// cannot be that close, so a long word is never compared character by character with every
/// candidate (a 300-character garbage line cost milliseconds per directive).
pub fn edit_distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la.abs_diff(lb) > limit {
        return None;
    }
    let d = edit_distance(a, b);
    (d <= limit).then_some(d)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
///
/// Case is ignored, and a candidate that `word` is a prefix of (`sha` for `sha1`) counts as close.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lw = word.to_lowercase();
    let limit = (lw.chars().count() / 3).max(1);
    candidates
        .iter()
        .filter_map(|c| {
            let lc = c.to_lowercase();
            let prefix = lw.len() >= 2 && lc.starts_with(&lw);
            // A prefix match ranks by its full distance; anything else only matters within
            // the limit, and the bounded form skips words whose lengths alone rule them out.
            let d = if prefix {
                edit_distance(&lw, &lc)
            } else {
                edit_distance_within(&lw, &lc, limit)?
            };
            Some((d, !prefix, *c))
        })
        .min_by_key(|(d, not_prefix, _)| (*d, *not_prefix))
        .map(|(_, _, c)| c)
}

/// `did you mean `x`?` or nothing.
pub fn suggestion(word: &str, candidates: &[&str]) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_compiler() {
        let span = Span {
            line: 2,
            column: 3,
            len: 3,
            source_line: "1 md4 secret".into(),
        };
        let d = Diagnostic::new(
            Severity::Error,
            Path::new("/etc/ha.d/authkeys"),
            "unknown auth method `md4`",
        )
        .at(&span)
        .with_help("did you mean `md5`? (methods: crc, md5, sha1, sha256)");
        let expected = "error: unknown auth method `md4`\n  --> /etc/ha.d/authkeys:2:3\n   |\n 2 | 1 md4 secret\n   |   ^^^\n   = help: did you mean `md5`? (methods: crc, md5, sha1, sha256)";
        assert_eq!(d.to_string(), expected);
    }

    #[test]
    fn caret_follows_tabs_and_wide_line_numbers() {
        let span = Span {
            line: 12,
            column: 2,
            len: 4,
            source_line: "\tnode x".into(),
        };
        let d = Diagnostic::new(Severity::Warning, Path::new("f"), "m").at(&span);
        assert_eq!(
            d.to_string(),
            "warning: m\n   --> f:12:2\n    |\n 12 | \tnode x\n    | \t^^^^"
        );
    }

    #[test]
    fn file_level_diagnostic_has_no_snippet() {
        let d = Diagnostic::file_error(Path::new("/x/ha.cf"), "no `node` line").with_help("h");
        assert_eq!(
            d.to_string(),
            "error: no `node` line\n  --> /x/ha.cf\n   = help: h"
        );
    }

    #[test]
    fn summary_counts_both_kinds() {
        let p = Path::new("f");
        let mut ds = Diagnostics::new();
        assert_eq!(ds.summary(), "no problems");
        ds.push(Diagnostic::file_error(p, "a"));
        assert_eq!(ds.summary(), "1 error");
        ds.push(Diagnostic::file_error(p, "b"));
        ds.push(Diagnostic::file_warning(p, "c"));
        assert_eq!(ds.summary(), "2 errors, 1 warning");
        assert!(ds.has_errors());
        assert!(ds.to_string().ends_with("2 errors, 1 warning"));
        let w = Diagnostics(vec![Diagnostic::file_warning(p, "c")]);
        assert!(!w.has_errors());
        assert_eq!(w.summary(), "1 warning");
    }

    #[test]
    fn distance_and_suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("auht", "auth"), 1);
        assert_eq!(did_you_mean("of", &["on", "off", "legacy"]), Some("off"));
        assert_eq!(did_you_mean("md4", &["crc", "md5", "sha1"]), Some("md5"));
        assert_eq!(did_you_mean("sha", &["crc", "md5", "sha1"]), Some("sha1"));
        assert_eq!(
            did_you_mean("deadtim", &["deadtime", "keepalive"]),
            Some("deadtime")
        );
        assert_eq!(did_you_mean("Node", &["node"]), Some("node"));
        assert_eq!(did_you_mean("zzzzzz", &["node", "keepalive"]), None);
    }
}
