//! Line splitting and tokenising shared by the line-oriented Heartbeat files: CRLF, a missing
//! final newline and invalid UTF-8 all have to be tolerated, and every token keeps its position.

use std::sync::Arc;

use crate::diag::Span;
use ha_core::config::Word;

/// One physical line of a file.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub number: usize,
    /// The line without its terminator (and without a trailing CR).
    pub text: &'a str,
}

/// A token and where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token<'a> {
    pub text: &'a str,
    /// 1-based column in characters.
    pub column: usize,
}

/// Splits a file into lines, accepting `\n`, `\r\n` and no final newline.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    // A final newline ends the last line; it does not start an empty one.
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.split('\n').enumerate().map(|(i, l)| Line {
        number: i + 1,
        text: l.strip_suffix('\r').unwrap_or(l),
    })
}

/// The part of a line before any `#`.
pub(crate) fn strip_comment(line: &str) -> &str {
    line.find('#').map_or(line, |i| &line[..i])
}

/// Splits on any character for which `is_sep` holds, keeping 1-based character columns.
pub(crate) fn tokens(line: &str, is_sep: impl Fn(char) -> bool) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    let mut col = 0;
    for (byte, c) in line.char_indices() {
        col += 1;
        if is_sep(c) {
            if let Some((b, cl)) = start.take() {
                out.push(Token {
                    text: &line[b..byte],
                    column: cl,
                });
            }
        } else if start.is_none() {
            start = Some((byte, col));
        }
    }
    if let Some((b, cl)) = start {
        out.push(Token {
            text: &line[b..],
            column: cl,
        });
    }
    out
}

/// Whitespace in the Heartbeat sense (space, tab, and stray CR/LF/FF/VT).
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0b' | '\x0c')
}

/// Separators between ha.cf values: whitespace and commas.
pub(crate) fn is_space_or_comma(c: char) -> bool {
    is_space(c) || c == ','
}

impl Token<'_> {
    /// The span of this token on `line`.
    pub(crate) fn span(&self, line: &Line<'_>) -> Span {
        Span {
            line: line.number,
            column: self.column,
            len: self.text.chars().count(),
            source_line: line.text.into(),
        }
    }
}

/// Makes the spans of many tokens share their line's text: [`Token::span`] copies the
/// line for each token, which is quadratic when a line holds many tokens that are kept
/// (a haresources group of a thousand addresses).
#[derive(Debug, Default)]
pub(crate) struct SharedLines {
    /// The line's number, its text for spans and (made on first use) for words.
    last: Option<(usize, Arc<str>, Option<Word>)>,
}

impl SharedLines {
    /// The span of `tok` on `line`, its text shared with the previous span's if it is on
    /// the same line.
    pub(crate) fn span(&mut self, tok: &Token<'_>, line: &Line<'_>) -> Span {
        let text = Arc::clone(&self.line(line).1);
        Span {
            line: line.number,
            column: tok.column,
            len: tok.text.chars().count(),
            source_line: text,
        }
    }

    /// The token's text, pointing into the shared copy of its line rather than a copy of
    /// its own (the token must come from that line).
    pub(crate) fn word(&mut self, tok: &Token<'_>, line: &Line<'_>) -> Word {
        let (_, text, word) = self.line(line);
        let shared = word.get_or_insert_with(|| Word::from(&**text));
        // The token is a slice of `line.text`; the same bytes sit at the same offset in
        // the shared copy.
        let at = (tok.text.as_ptr() as usize).wrapping_sub(line.text.as_ptr() as usize);
        match shared.get(at..at.saturating_add(tok.text.len())) {
            Some(part) if part == tok.text => shared.slice(part),
            _ => Word::from(tok.text),
        }
    }

    fn line(&mut self, line: &Line<'_>) -> &mut (usize, Arc<str>, Option<Word>) {
        if !matches!(&self.last, Some((n, _, _)) if *n == line.number) {
            self.last = None;
        }
        self.last
            .get_or_insert_with(|| (line.number, line.text.into(), None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_handle_crlf_and_missing_newline() {
        let l: Vec<_> = lines("a\r\nb\n\nc").map(|l| (l.number, l.text)).collect();
        assert_eq!(l, vec![(1, "a"), (2, "b"), (3, ""), (4, "c")]);
        let l: Vec<_> = lines("a\n").map(|l| l.text).collect();
        assert_eq!(l, vec!["a"]);
        assert_eq!(lines("").count(), 1);
    }

    #[test]
    fn tokens_keep_char_columns() {
        let t = tokens("\tbcast  eth0,éth1", is_space_or_comma);
        let t: Vec<_> = t.iter().map(|t| (t.text, t.column)).collect();
        assert_eq!(t, vec![("bcast", 2), ("eth0", 9), ("éth1", 14)]);
    }

    #[test]
    fn comments_cut_anywhere() {
        assert_eq!(strip_comment("deadtime 5 # five"), "deadtime 5 ");
        assert_eq!(strip_comment("#x"), "");
    }
}
