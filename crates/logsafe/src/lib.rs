//! What a hostile LAN host may put in front of an admin: every value taken from a packet is
//! escaped and truncated ([`Untrusted`]), and every log line a packet can trigger goes
//! through one [`RateLimiter`], keyed by reason, with "N more suppressed" summaries.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Characters of a packet value kept before it is cut short.
pub const MAX_CHARS: usize = 64;
/// Bytes of escaped text kept, whatever the escapes expand to.
const MAX_ESCAPED: usize = 96;
/// What marks a cut value.
const ELLIPSIS: &str = "...";
const CAP: usize = MAX_ESCAPED + ELLIPSIS.len();

/// Untrusted text made safe for a log line, a status field or a hook's environment: plain
/// printable ASCII stays, `\` and control characters are escaped (`\n`, `\x1b`), anything
/// else is written `\u{…}` (so no bidi trick or look-alike reaches a terminal), invalid
/// UTF-8 bytes are `\xNN`, and it is cut after [`MAX_CHARS`] characters with `...`. Held in
/// a fixed buffer: building one never allocates, which matters on the receive path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Untrusted {
    buf: [u8; CAP],
    len: usize,
}

impl Untrusted {
    /// Escapes and truncates `s`.
    pub fn new(s: &str) -> Self {
        Self::from_bytes(s.as_bytes())
    }

    /// Escapes and truncates raw bytes (invalid UTF-8 is escaped byte by byte).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut out = Self {
            buf: [0; CAP],
            len: 0,
        };
        let mut rest = bytes;
        let mut chars = 0;
        while !rest.is_empty() {
            if chars == MAX_CHARS {
                out.push(ELLIPSIS.as_bytes());
                break;
            }
            let (piece, used) = escape_one(rest);
            if out.len + piece.len > MAX_ESCAPED {
                out.push(ELLIPSIS.as_bytes());
                break;
            }
            out.push(piece.as_bytes());
            rest = &rest[used..];
            chars += 1;
        }
        out
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn push(&mut self, b: &[u8]) {
        let end = (self.len + b.len()).min(CAP);
        let n = end - self.len;
        self.buf[self.len..end].copy_from_slice(&b[..n]);
        self.len = end;
    }
}

/// One escaped character (or invalid byte) at the start of `b`, and the bytes it used.
fn escape_one(b: &[u8]) -> (Piece, usize) {
    let first = b[0];
    if first.is_ascii() {
        let p = match first {
            b'\\' => Piece::text("\\\\"),
            b'\n' => Piece::text("\\n"),
            b'\r' => Piece::text("\\r"),
            b'\t' => Piece::text("\\t"),
            0x20..=0x7e => Piece::byte(first),
            _ => Piece::hex(first),
        };
        return (p, 1);
    }
    // A multi-byte character: decode it if valid, else escape the lone byte.
    let len = match first {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (Piece::hex(first), 1),
    };
    match b.get(..len).and_then(|s| std::str::from_utf8(s).ok()) {
        Some(s) => match s.chars().next() {
            Some(c) => (Piece::unicode(c), len),
            None => (Piece::hex(first), 1),
        },
        None => (Piece::hex(first), 1),
    }
}

/// A short escaped piece on the stack.
struct Piece {
    buf: [u8; 12],
    len: usize,
}

impl Piece {
    fn text(s: &str) -> Self {
        let mut p = Piece {
            buf: [0; 12],
            len: s.len().min(12),
        };
        p.buf[..p.len].copy_from_slice(&s.as_bytes()[..p.len]);
        p
    }
    fn byte(b: u8) -> Self {
        let mut p = Piece {
            buf: [0; 12],
            len: 1,
        };
        p.buf[0] = b;
        p
    }
    fn hex(b: u8) -> Self {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut p = Piece {
            buf: [0; 12],
            len: 4,
        };
        p.buf[..4].copy_from_slice(&[
            b'\\',
            b'x',
            DIGITS[usize::from(b >> 4)],
            DIGITS[usize::from(b & 0xf)],
        ]);
        p
    }
    fn unicode(c: char) -> Self {
        use std::io::Write;
        let mut p = Piece {
            buf: [0; 12],
            len: 0,
        };
        let mut w = &mut p.buf[..];
        // `\u{10ffff}` is 10 bytes: it always fits.
        if write!(w, "\\u{{{:x}}}", u32::from(c)).is_ok() {
            p.len = 12 - w.len();
        }
        p
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_str())
    }
}

/// [`Untrusted`] as an owned `String`, for values stored beyond the receive path.
pub fn clean(s: &str) -> String {
    Untrusted::new(s).as_str().to_owned()
}

/// Escapes like [`Untrusted`] with a caller's length limit, for longer texts that may carry
/// packet or program output (a notify hook's `HA_REASON`).
pub fn escape(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 2));
    let mut rest = s.as_bytes();
    let mut chars = 0;
    while !rest.is_empty() {
        if chars == max_chars {
            out.push_str(ELLIPSIS);
            break;
        }
        let (piece, used) = escape_one(rest);
        out.push_str(std::str::from_utf8(piece.as_bytes()).unwrap_or(""));
        rest = &rest[used..];
        chars += 1;
    }
    out
}

/// How many lines each reason may write per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Lines shown per window.
    pub lines: u32,
    /// The window.
    pub window: Duration,
}

/// Lines of one reason suppressed during a window that has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary<K> {
    /// The reason.
    pub key: K,
    /// Lines not written.
    pub suppressed: u64,
    /// The window they fell in.
    pub window: Duration,
}

impl<K> fmt::Display for Summary<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} more suppressed in the last {} s",
            self.suppressed,
            self.window.as_secs().max(1)
        )
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    start: Instant,
    shown: u32,
    suppressed: u64,
}

/// A per-reason line budget. Pure: time is passed in. The first `lines` lines of a reason in
/// a window are written, the others counted; when the window ends a [`Summary`] is due
/// ([`RateLimiter::poll_summary`], [`RateLimiter::poll_timeout`]). Keys are reasons, never
/// addresses, so a flood from fresh source ports shares one budget and the map stays small.
#[derive(Debug)]
pub struct RateLimiter<K: Ord + Copy> {
    budget: fn(K) -> Budget,
    slots: BTreeMap<K, Slot>,
    due: Vec<Summary<K>>,
}

impl<K: Ord + Copy + fmt::Debug> RateLimiter<K> {
    /// A limiter giving each reason the budget `budget(reason)`.
    pub fn new(budget: fn(K) -> Budget) -> Self {
        Self {
            budget,
            slots: BTreeMap::new(),
            due: Vec::new(),
        }
    }

    /// Whether a line for `key` may be written now; if not, it is counted.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        let budget = (self.budget)(key);
        if let Some(slot) = self.slots.get(&key).copied()
            && now.saturating_duration_since(slot.start) >= budget.window
        {
            self.close(key, slot, budget.window);
        }
        let slot = self.slots.entry(key).or_insert(Slot {
            start: now,
            shown: 0,
            suppressed: 0,
        });
        if slot.shown < budget.lines {
            slot.shown += 1;
            true
        } else {
            slot.suppressed += 1;
            false
        }
    }

    /// A summary whose window has ended, if any.
    pub fn poll_summary(&mut self, now: Instant) -> Option<Summary<K>> {
        let ended: Vec<(K, Slot, Duration)> = self
            .slots
            .iter()
            .filter_map(|(&k, &s)| {
                let w = (self.budget)(k).window;
                (now.saturating_duration_since(s.start) >= w).then_some((k, s, w))
            })
            .collect();
        for (k, s, w) in ended {
            self.close(k, s, w);
        }
        self.due.pop()
    }

    /// When the next summary falls due (only windows with suppressed lines need a wake-up).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.due.is_empty() {
            return Some(Instant::now());
        }
        self.slots
            .iter()
            .filter(|(_, s)| s.suppressed > 0)
            .map(|(&k, s)| s.start + (self.budget)(k).window)
            .min()
    }

    fn close(&mut self, key: K, slot: Slot, window: Duration) {
        self.slots.remove(&key);
        if slot.suppressed > 0 {
            self.due.push(Summary {
                key,
                suppressed: slot.suppressed,
                window,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_backslashes_are_escaped() {
        assert_eq!(Untrusted::new("node2").as_str(), "node2");
        assert_eq!(
            Untrusted::new("a\nINFO resource group x acquired").as_str(),
            "a\\nINFO resource group x acquired"
        );
        assert_eq!(
            Untrusted::new("\r\t\\\x1b[31m").as_str(),
            "\\r\\t\\\\\\x1b[31m"
        );
        assert_eq!(Untrusted::new("\u{7f}").as_str(), "\\x7f");
        // Bidi overrides and other non-ASCII never reach a terminal as such.
        assert_eq!(Untrusted::new("é\u{202e}").as_str(), "\\u{e9}\\u{202e}");
        assert_eq!(Untrusted::from_bytes(b"\xff\xc3(").as_str(), "\\xff\\xc3(");
    }

    #[test]
    fn escape_keeps_longer_text_but_no_control_characters() {
        assert_eq!(
            escape("monitor http:80 failed", 256),
            "monitor http:80 failed"
        );
        assert_eq!(escape("a\nb", 256), "a\\nb");
        assert_eq!(escape("abcdef", 3), "abc...");
    }

    #[test]
    fn long_values_are_cut_with_a_mark() {
        let long = "x".repeat(1000);
        let u = Untrusted::new(&long);
        assert_eq!(u.as_str(), format!("{}...", "x".repeat(MAX_CHARS)));
        // Escapes count against the byte budget too.
        let nl = "\n".repeat(200);
        let u = Untrusted::new(&nl);
        assert!(u.as_str().len() <= MAX_ESCAPED + 3, "{}", u.as_str().len());
        assert!(u.as_str().ends_with("..."));
        assert!(!u.as_str().contains('\n'));
        let wide = "\u{10ffff}".repeat(50);
        assert!(Untrusted::new(&wide).as_str().ends_with("..."));
        assert_eq!(
            Untrusted::new(&"y".repeat(MAX_CHARS)).as_str().len(),
            MAX_CHARS
        );
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum R {
        Auth,
        Late,
    }

    fn limiter() -> RateLimiter<R> {
        RateLimiter::new(|_| Budget {
            lines: 3,
            window: Duration::from_secs(10),
        })
    }

    #[test]
    fn each_reason_gets_its_budget_then_a_summary() {
        let t0 = Instant::now();
        let mut l = limiter();
        let shown = (0..2000)
            .filter(|i| l.allow(R::Auth, t0 + Duration::from_millis(*i)))
            .count();
        assert_eq!(shown, 3);
        assert!(l.allow(R::Late, t0), "another reason has its own budget");
        assert_eq!(l.poll_summary(t0 + Duration::from_secs(5)), None);
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        let s = l.poll_summary(t0 + Duration::from_secs(10));
        assert_eq!(
            s,
            Some(Summary {
                key: R::Auth,
                suppressed: 1997,
                window: Duration::from_secs(10)
            })
        );
        assert_eq!(
            s.map(|s| s.to_string()).as_deref(),
            Some("1997 more suppressed in the last 10 s")
        );
        assert_eq!(l.poll_summary(t0 + Duration::from_secs(10)), None);
        // R::Late had nothing suppressed: no summary, no wake-up.
        assert_eq!(l.poll_timeout(), None);
        assert!(l.allow(R::Auth, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn a_line_after_the_window_queues_the_summary_first() {
        let t0 = Instant::now();
        let mut l = limiter();
        for _ in 0..5 {
            l.allow(R::Auth, t0);
        }
        assert!(l.allow(R::Auth, t0 + Duration::from_secs(30)));
        assert!(
            l.poll_timeout().is_some(),
            "the closed window's summary is due"
        );
        let s = l.poll_summary(t0 + Duration::from_secs(30));
        assert_eq!(s.map(|s| s.suppressed), Some(2));
    }
}
