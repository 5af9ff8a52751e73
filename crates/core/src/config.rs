//! The configuration values the core reads (node names, `auto_failback`, signing methods,
//! resource tokens, admin scopes). They live here, not in ha-config, so the core needs no OS
//! crate; ha-config parses the files into them and re-exports them under their old paths.

use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A cluster node's name, always lower-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Lower-cases `name`.
    pub fn new(name: &str) -> Self {
        Self(name.to_lowercase())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> Self {
        Self::new(&s)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// `auto_failback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoFailback {
    /// Heartbeat's default: the pre-nice_failback behaviour.
    #[default]
    Legacy,
    /// Groups return to their preferred node when it comes back.
    On,
    /// Groups stay where they are.
    Off,
}

impl AutoFailback {
    /// `legacy`, `on` or `off`.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoFailback::Legacy => "legacy",
            AutoFailback::On => "on",
            AutoFailback::Off => "off",
        }
    }
}

/// Signing methods: Heartbeat's three plus had's sha256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthMethod {
    /// CRC-32 (no secret: integrity only).
    Crc,
    /// HMAC-MD5.
    Md5,
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256 (had extension; Heartbeat peers do not know it).
    Sha256,
}

impl AuthMethod {
    /// The name used in `authkeys` and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Crc => "crc",
            AuthMethod::Md5 => "md5",
            AuthMethod::Sha1 => "sha1",
            AuthMethod::Sha256 => "sha256",
        }
    }

    /// Parses a method name exactly as Heartbeat loads plugins (case-sensitive).
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        match name {
            "crc" => Some(AuthMethod::Crc),
            "md5" => Some(AuthMethod::Md5),
            "sha1" => Some(AuthMethod::Sha1),
            "sha256" => Some(AuthMethod::Sha256),
            _ => None,
        }
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text cut from a haresources line: a resource token, its agent name, one argument. All of
/// them point into one shared allocation (the line, or the token when parsed alone) instead of
/// each holding a copy: a group of a thousand addresses is kept by the daemon, its cluster
/// machine and its agents for the daemon's life (issue 14: idle RSS flat from 1 to 1,000
/// addresses). Compares, hashes, prints and debug-prints as the `str` it stands for.
#[derive(Clone)]
pub struct Word {
    // A thin pointer (8 bytes, not `Arc<str>`'s 16): a Word is kept per token per holder, a
    // thousand per group at scale, and the extra hop to the text costs nothing measurable.
    text: Arc<Box<str>>,
    // u32, not usize: a Word is kept per token per holder, and a haresources line is far
    // below 4 GiB.
    start: u32,
    end: u32,
}

impl Word {
    /// `part` of this word, sharing its text (a copy when `part` is not a slice of it).
    pub fn slice(&self, part: &str) -> Word {
        let whole: &str = &self.text;
        let base = whole.as_ptr() as usize;
        let at = (part.as_ptr() as usize).wrapping_sub(base);
        let end = at.saturating_add(part.len());
        match (u32::try_from(at), u32::try_from(end)) {
            (Ok(start), Ok(e)) if end <= whole.len() && whole.get(at..end) == Some(part) => Word {
                text: Arc::clone(&self.text),
                start,
                end: e,
            },
            _ => Word::from(part),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.text
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Word {
        let text: Arc<Box<str>> = Arc::new(s.into());
        let end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        Word {
            text,
            start: 0,
            end,
        }
    }
}

impl From<String> for Word {
    fn from(s: String) -> Word {
        Word::from(s.as_str())
    }
}

impl From<&String> for Word {
    fn from(s: &String) -> Word {
        Word::from(s.as_str())
    }
}

impl From<Word> for String {
    fn from(w: Word) -> String {
        w.as_str().to_owned()
    }
}

impl Default for Word {
    fn default() -> Word {
        Word::from("")
    }
}

impl std::ops::Deref for Word {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Word {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Word {
    fn eq(&self, other: &Word) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Word {}

impl PartialOrd for Word {
    fn partial_cmp(&self, other: &Word) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Word {
    fn cmp(&self, other: &Word) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Word {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Word {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Word> for str {
    fn eq(&self, other: &Word) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Word> for &str {
    fn eq(&self, other: &Word) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Word> for String {
    fn eq(&self, other: &Word) -> bool {
        self.as_str() == other.as_str()
    }
}

/// One resource: `agent::arg::arg`, or a bare IPv4 address.
///
/// Only the token is kept; the agent and arguments are cut from it when asked for. The
/// daemon keeps one per token of every group for its whole life, a thousand per group at
/// scale (issue 14: idle RSS flat from 1 to 1,000 addresses), and reads them rarely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    /// The token as written.
    pub raw: Word,
}

impl ResourceSpec {
    /// Splits a resource token; `None` when the agent name is empty (`::x`).
    pub fn parse(raw: &str) -> Option<ResourceSpec> {
        ResourceSpec::parse_word(Word::from(raw))
    }

    /// [`ResourceSpec::parse`] of a token already shared: the agent and arguments point into it.
    pub fn parse_word(raw: Word) -> Option<ResourceSpec> {
        let spec = ResourceSpec { raw };
        (!spec.agent().is_empty()).then_some(spec)
    }

    /// A bare address (`10.0.0.1/24/eth0`, or IPv6: had's extension, Heartbeat would split it
    /// at `::`), which stands for `IPaddr::` it.
    fn is_bare_address(&self) -> bool {
        let text = self.raw.as_str();
        (!text.contains("::") && looks_like_ipv4(text)) || looks_like_ipv6(text)
    }

    /// Script or agent name (`IPaddr` for a bare address).
    pub fn agent(&self) -> &str {
        if self.is_bare_address() {
            return "IPaddr";
        }
        self.raw.split("::").next().unwrap_or_default()
    }

    /// Arguments, in order, sharing the token's text.
    pub fn args(&self) -> Vec<Word> {
        if self.is_bare_address() {
            return vec![self.raw.clone()];
        }
        self.raw
            .split("::")
            .skip(1)
            .map(|a| self.raw.slice(a))
            .collect()
    }
}

/// The token as written, unchecked (a recorded or a test group; [`ResourceSpec::parse`]
/// checks it).
impl From<&str> for ResourceSpec {
    fn from(raw: &str) -> ResourceSpec {
        ResourceSpec {
            raw: Word::from(raw),
        }
    }
}

impl std::ops::Deref for ResourceSpec {
    type Target = str;
    fn deref(&self) -> &str {
        &self.raw
    }
}

impl PartialEq<&str> for ResourceSpec {
    fn eq(&self, other: &&str) -> bool {
        self.raw.as_str() == *other
    }
}

impl AsRef<str> for ResourceSpec {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

/// Heartbeat's shell pattern `[0-9]*.[0-9]*.[0-9]*.[0-9]*`: four dot-separated pieces that each
/// start with a digit (anything may follow, so `10.0.0.1/24/eth0` matches too).
pub fn looks_like_ipv4(token: &str) -> bool {
    fn rest_matches(s: &str, pieces: usize) -> bool {
        if !s.starts_with(|c: char| c.is_ascii_digit()) {
            return false;
        }
        if pieces == 1 {
            return true;
        }
        // `*` may swallow dots, so try every later dot.
        s.match_indices('.')
            .any(|(i, _)| rest_matches(&s[i + 1..], pieces - 1))
    }
    rest_matches(token, 4)
}

/// Whether the token, up to its first `/`, is an IPv6 address (`2001:db8::10/64/eth0`).
pub fn looks_like_ipv6(token: &str) -> bool {
    let ip = token.split('/').next().unwrap_or("");
    ip.contains(':') && ip.parse::<Ipv6Addr>().is_ok()
}

/// Which groups an admin command covers, from the point of view of the node it runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every group.
    #[default]
    All,
    /// The groups haresources prefers on this node.
    Local,
    /// The groups haresources prefers on the peer.
    Foreign,
}

impl Scope {
    /// Parse Heartbeat's words (`failback` means `foreign`, as in `hb_standby`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all" => Self::All,
            "local" => Self::Local,
            "foreign" | "failback" => Self::Foreign,
            _ => return None,
        })
    }

    /// Heartbeat's word for the scope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Local => "local",
            Self::Foreign => "foreign",
        }
    }

    /// Whether a group preferred here (`preferred_local`) is covered.
    pub fn covers(self, preferred_local: bool) -> bool {
        match self {
            Self::All => true,
            Self::Local => preferred_local,
            Self::Foreign => !preferred_local,
        }
    }
}

/// Who asked for a request, for the audit line every mutating request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A control-socket client, from `SO_PEERCRED`.
    Client {
        /// Its user id.
        uid: u32,
        /// Its process id, when the kernel gave one.
        pid: Option<i32>,
    },
    /// A message written into Heartbeat's FIFO (pipes carry no credentials).
    Fifo,
    /// A signal, by name.
    Signal(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Client {
                uid,
                pid: Some(pid),
            } => write!(f, "control socket uid {uid} pid {pid}"),
            Origin::Client { uid, pid: None } => write!(f, "control socket uid {uid}"),
            Origin::Fifo => f.write_str("FIFO"),
            Origin::Signal(name) => write!(f, "signal {name}"),
        }
    }
}
