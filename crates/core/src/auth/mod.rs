//! Packet authentication: the classic `auth` field, the netstring trailer,
//! the crc/md5/sha1 methods (and sha256, our extension) and why packets drop.

mod crc;

use std::collections::BTreeMap;

use hmac::{EagerHash, Hmac, KeyInit, Mac};

use crate::codec::{
    self, Decoded, Framing, MAX_MSG, Message, classic_auth_text, encode_classic, encode_netstring,
    encode_trailer,
};
use crate::logcat::LogEvent;

pub use crate::config::AuthMethod;
pub use crc::crc32;

/// Why a received packet was dropped; `as_str()` names the JSON counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Not a decodable message.
    Malformed,
    /// Larger than `MAX_MSG`.
    TooBig,
    /// No netstring trailer / no classic `auth` field.
    NoAuth,
    /// The token does not match.
    BadAuth,
    /// Signed with a key index we do not have.
    UnknownKey,
    /// Generation older than the one we know (liveness layer).
    Replay,
    /// From a node not in the configuration (liveness layer).
    UnknownNode,
    /// Addressed to another node (liveness layer).
    NotForUs,
    /// Missing or invalid `seq` (liveness layer).
    BadSeq,
    /// Already seen, e.g. the same packet over a second medium (liveness layer).
    Duplicate,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 10] = [
        DropReason::Malformed,
        DropReason::TooBig,
        DropReason::NoAuth,
        DropReason::BadAuth,
        DropReason::UnknownKey,
        DropReason::Replay,
        DropReason::UnknownNode,
        DropReason::NotForUs,
        DropReason::BadSeq,
        DropReason::Duplicate,
    ];

    /// snake_case name for counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::TooBig => "too_big",
            DropReason::NoAuth => "no_auth",
            DropReason::BadAuth => "bad_auth",
            DropReason::UnknownKey => "unknown_key",
            DropReason::Replay => "replay",
            DropReason::UnknownNode => "unknown_node",
            DropReason::NotForUs => "not_for_us",
            DropReason::BadSeq => "bad_seq",
            DropReason::Duplicate => "duplicate",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Computes a method's token over `data`: crc as `%lx`, HMACs as lower-case hex.
pub fn token(method: AuthMethod, key: &[u8], data: &[u8]) -> String {
    match method {
        AuthMethod::Crc => format!("{:x}", crc32(data)),
        AuthMethod::Md5 => hmac_hex::<md5::Md5>(key, data),
        AuthMethod::Sha1 => hmac_hex::<sha1::Sha1>(key, data),
        AuthMethod::Sha256 => hmac_hex::<sha2::Sha256>(key, data),
    }
}

fn hmac_hex<D: EagerHash>(key: &[u8], data: &[u8]) -> String {
    // HMAC takes keys of any length, so this never fails; an empty token
    // would never verify because the decoders reject empty tokens.
    let Ok(mut mac) = <Hmac<D> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Compares tokens without an early exit on the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // The length of a token follows from the public method, so it is no secret.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One configured key.
#[derive(Clone)]
struct Key {
    method: AuthMethod,
    secret: Vec<u8>,
}

/// Signs and verifies packets with the keys of an `authkeys` file.
#[derive(Clone)]
pub struct Auth {
    active: u8,
    keys: BTreeMap<u8, Key>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Auth")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A parsed key set [`Auth`] is built from: ha-config's `Authkeys` implements it, so the core
/// needs no file parser.
pub trait KeySet {
    /// The index outgoing messages are signed with (`auth N`).
    fn active_index(&self) -> u8;
    /// Every key as `(index, method, secret)`.
    fn key_triples(&self) -> Vec<(u8, AuthMethod, Vec<u8>)>;
}

/// `Auth::try_new` refuses key sets it could not sign with.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// `auth N` names a key index that has no key line.
    #[error("active key index {0} has no key")]
    NoActiveKey(u8),
}

impl Auth {
    /// Builds from parsed authkeys. The config loader guarantees the active
    /// key exists; if it does not, see [`Auth::can_sign`].
    pub fn new(keys: &impl KeySet) -> Self {
        Self::from_keys(keys.active_index(), keys.key_triples())
    }

    /// Like [`Auth::new`], but refuses a key set whose active index has no key.
    pub fn try_new(keys: &impl KeySet) -> Result<Self, AuthError> {
        let a = Self::new(keys);
        if a.can_sign() {
            Ok(a)
        } else {
            Err(AuthError::NoActiveKey(a.active))
        }
    }

    /// Builds from `(index, method, secret)` triples and the active index.
    pub fn from_keys(
        active: u8,
        keys: impl IntoIterator<Item = (u8, AuthMethod, Vec<u8>)>,
    ) -> Self {
        let keys = keys
            .into_iter()
            .map(|(i, method, secret)| (i, Key { method, secret }))
            .collect();
        Self { active, keys }
    }

    /// The key index used for signing (`auth N`).
    pub fn active_index(&self) -> u8 {
        self.active
    }

    /// Each key's index and method (what a record may show: never a secret).
    pub fn methods(&self) -> Vec<(u8, AuthMethod)> {
        self.keys.iter().map(|(i, k)| (*i, k.method)).collect()
    }

    /// Whether the active index has a key. Without one, `sign` sends
    /// unauthenticated packets that every peer drops (`no_auth`).
    pub fn can_sign(&self) -> bool {
        self.keys.contains_key(&self.active)
    }

    /// Whether the active key is an HMAC (md5, sha1, sha256), not crc.
    pub fn active_is_hmac(&self) -> bool {
        self.keys
            .get(&self.active)
            .is_some_and(|k| k.method != AuthMethod::Crc)
    }

    fn active_token(&self, data: &[u8]) -> Option<String> {
        let k = self.keys.get(&self.active)?;
        Some(token(k.method, &k.secret, data))
    }

    /// Sets the inner classic `auth` field (modified in place if present).
    fn add_auth_field(&self, msg: &mut Message) -> Option<()> {
        let t = self.active_token(&classic_auth_text(msg))?;
        msg.set_str("auth", format!("{} {t}", self.active));
        Some(())
    }

    /// Signs as Heartbeat 3.0.6 sends on UDP: inner `auth` field, netstring, trailer.
    pub fn sign(&self, msg: &mut Message) -> Vec<u8> {
        if self.add_auth_field(msg).is_none() {
            crate::logcat::log(&LogEvent::UnsignedSend { key: self.active });
            return encode_netstring(msg);
        }
        let mut out = encode_netstring(msg);
        if let Some(t) = self.active_token(&out) {
            out.extend_from_slice(&encode_trailer(self.active, &t));
        }
        out
    }

    /// Signs in classic framing (inner `auth` field only), for the FIFO, serial links and tests.
    pub fn sign_classic(&self, msg: &mut Message) -> Vec<u8> {
        if self.add_auth_field(msg).is_none() {
            crate::logcat::log(&LogEvent::UnsignedSend { key: self.active });
        }
        encode_classic(msg)
    }

    fn check(&self, index: u8, token_text: &str, data: &[u8]) -> Result<(), DropReason> {
        let k = self.keys.get(&index).ok_or(DropReason::UnknownKey)?;
        // crc is a checksum anyone can compute: beside an HMAC active key a
        // leftover `crc` line would let any host forge packets. Other HMAC
        // keys stay valid, so that keys can be rotated one node at a time.
        if k.method == AuthMethod::Crc && self.active_is_hmac() {
            return Err(DropReason::BadAuth);
        }
        let expect = token(k.method, &k.secret, data);
        if ct_eq(expect.as_bytes(), token_text.as_bytes()) {
            Ok(())
        } else {
            Err(DropReason::BadAuth)
        }
    }

    /// Decodes and authenticates a received packet with any configured key.
    pub fn verify(&self, bytes: &[u8]) -> Result<Message, DropReason> {
        if bytes.len() > MAX_MSG {
            return Err(DropReason::TooBig);
        }
        let Decoded {
            msg,
            framing,
            trailer,
            signed_len,
        } = codec::decode(bytes).map_err(|e| match e {
            codec::DecodeError::TooBig(_) => DropReason::TooBig,
            _ => DropReason::Malformed,
        })?;
        match framing {
            Framing::Netstring => {
                // Like Heartbeat, the inner classic `auth` field is not checked here:
                // peers with `msgfmt netstring` do not send one.
                let t = trailer.ok_or(DropReason::NoAuth)?;
                self.check(t.key_index, &t.token, &bytes[..signed_len])?;
            }
            Framing::Classic => {
                let field = msg.get("auth").ok_or(DropReason::NoAuth)?;
                let (index, tok) = parse_auth_field(field).ok_or(DropReason::BadAuth)?;
                self.check(index, tok, &classic_auth_text(&msg))?;
            }
        }
        Ok(msg)
    }
}

/// The netstring trailer is `<len>:<N> <token>,`: a few bytes beyond the longest token.
const TRAILER_MAX: usize = 96;

impl Auth {
    /// The cheap checks, run on the receive path before anything is allocated: framing, the
    /// key index, and for netstring packets the trailer's token itself. `Ok` does not mean
    /// authentic: [`Auth::verify`] decides; an `Err` is a packet `verify` would drop too.
    pub fn precheck(&self, bytes: &[u8]) -> Result<(), DropReason> {
        if bytes.len() > MAX_MSG {
            return Err(DropReason::TooBig);
        }
        if bytes.starts_with(b"###\n") {
            self.precheck_netstring(bytes)
        } else if bytes.starts_with(b">>>\n") {
            // Classic framing (Heartbeat's FIFO and serial format): only the key index is
            // cheap to find; the token covers a re-encoding, left to `verify`.
            let Some(at) = find(bytes, b"\nauth=") else {
                return Err(DropReason::NoAuth);
            };
            match leading_index(&bytes[at + 6..]) {
                Some(i) if !self.keys.contains_key(&i) => Err(DropReason::UnknownKey),
                _ => Ok(()),
            }
        } else {
            Err(DropReason::Malformed)
        }
    }

    fn precheck_netstring(&self, bytes: &[u8]) -> Result<(), DropReason> {
        let from = bytes.len().saturating_sub(TRAILER_MAX);
        // The trailer holds no `%%%`, so the last end marker is the message's own.
        let Some(end) = rfind(&bytes[from..], b"%%%\n").map(|p| from + p + 4) else {
            return Err(DropReason::Malformed);
        };
        let trailer = &bytes[end..];
        if trailer.is_empty() {
            return Err(DropReason::NoAuth);
        }
        let inner = trailer
            .iter()
            .position(|&b| b == b':')
            .and_then(|c| trailer.get(c + 1..trailer.len().checked_sub(1)?))
            .filter(|_| trailer.ends_with(b","))
            .ok_or(DropReason::Malformed)?;
        let index = leading_index(inner).ok_or(DropReason::BadAuth)?;
        let key = self.keys.get(&index).ok_or(DropReason::UnknownKey)?;
        let digits = if index >= 10 { 2 } else { 1 };
        let token = inner.get(digits + 1..).ok_or(DropReason::BadAuth)?;
        if token_matches(key.method, &key.secret, &bytes[..end], token) {
            Ok(())
        } else {
            Err(DropReason::BadAuth)
        }
    }
}

/// `N ` at the start of `b` (N = 0..=15, as `parse_auth_field` reads it).
fn leading_index(b: &[u8]) -> Option<u8> {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&digits) || b.get(digits) != Some(&b' ') {
        return None;
    }
    let n = b[..digits].iter().fold(0u8, |acc, d| acc * 10 + (d - b'0'));
    (n <= 15).then_some(n)
}

/// Whether `token` (lower-case hex, as received) is the method's token over `data`; computed
/// on the stack, compared without an early exit.
fn token_matches(method: AuthMethod, key: &[u8], data: &[u8], token: &[u8]) -> bool {
    match method {
        AuthMethod::Crc => {
            let mut buf = [0u8; 8];
            let n = hex_u32(crc32(data), &mut buf);
            ct_eq(&buf[..n], token)
        }
        AuthMethod::Md5 => hmac_matches::<md5::Md5>(key, data, token),
        AuthMethod::Sha1 => hmac_matches::<sha1::Sha1>(key, data, token),
        AuthMethod::Sha256 => hmac_matches::<sha2::Sha256>(key, data, token),
    }
}

fn hmac_matches<D: EagerHash>(key: &[u8], data: &[u8], token: &[u8]) -> bool {
    let Ok(mut mac) = <Hmac<D> as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(data);
    let digest = mac.finalize().into_bytes();
    if token.len() != digest.len() * 2 {
        return false;
    }
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let diff = digest.iter().zip(token.chunks(2)).fold(0u8, |acc, (b, t)| {
        acc | (DIGITS[usize::from(b >> 4)] ^ t[0]) | (DIGITS[usize::from(b & 0xf)] ^ t[1])
    });
    diff == 0
}

/// `%x` of `v` into `buf`; returns the length.
fn hex_u32(v: u32, buf: &mut [u8; 8]) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = (8 - v.leading_zeros() as usize / 4).max(1);
    for i in 0..n {
        buf[n - 1 - i] = DIGITS[((v >> (4 * i)) & 0xf) as usize];
    }
    n
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// Parses a classic `auth` value `"<N> <token>"` (Heartbeat reads it with `%d %s`).
fn parse_auth_field(v: &str) -> Option<(u8, &str)> {
    let (n, tok) = v.split_once(' ')?;
    if n.is_empty() || n.len() > 2 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = n.parse().ok()?;
    if n > 15 || tok.is_empty() || tok.contains(' ') {
        return None;
    }
    Some((n, tok))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
