//! Heartbeat's message object (`ha_msg`) and its two wire framings: classic
//! (`>>>`/`<<<` text) and netstring (`###`/`%%%` plus an auth trailer).

mod base64;
mod classic;
mod netstring;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests;

pub use base64::{decode as base64_decode, encode as base64_encode};
pub use classic::{classic_auth_text, encode_classic};
pub use netstring::{encode_netstring, encode_trailer};

/// The largest encoded message Heartbeat accepts (`MAXMSG`, 256 KiB).
pub const MAX_MSG: usize = 262_144;

/// A field value: Heartbeat type 0 (string) or 1 (binary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `FT_STRING`: NUL-free UTF-8 text.
    Str(String),
    /// `FT_BINARY`: opaque bytes (UUIDs, for example).
    Bin(Vec<u8>),
}

impl Value {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bin(_) => None,
        }
    }

    /// The bytes, if this is a binary value.
    pub fn as_bin(&self) -> Option<&[u8]> {
        match self {
            Value::Str(_) => None,
            Value::Bin(b) => Some(b),
        }
    }

    /// Heartbeat's type digit for this value.
    pub fn type_digit(&self) -> u8 {
        match self {
            Value::Str(_) => 0,
            Value::Bin(_) => 1,
        }
    }
}

/// One named field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name (non-empty; on the wire never contains `=`, `\n` or NUL, nor starts with `(`).
    pub name: String,
    /// Field value.
    pub value: Value,
}

/// A Heartbeat message: an ordered list of fields in which names may repeat
/// and lookups return the first match.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    fields: Vec<Field>,
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// A message whose first field is `t=<t>`.
    pub fn with_type(t: &str) -> Self {
        let mut m = Self::new();
        m.push_str("t", t);
        m
    }

    /// All fields in wire order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the message has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The first string field called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .filter(|f| f.name == name)
            .find_map(|f| f.value.as_str())
    }

    /// The first binary field called `name`.
    pub fn get_bin(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .filter(|f| f.name == name)
            .find_map(|f| f.value.as_bin())
    }

    /// The message type (field `t`).
    pub fn msg_type(&self) -> Option<&str> {
        self.get("t")
    }

    /// Replaces the first field called `name` in place, else appends (Heartbeat's `ha_msg_mod`).
    pub fn set_str(&mut self, name: &str, v: impl Into<String>) {
        self.set(name, Value::Str(v.into()));
    }

    /// Binary counterpart of [`Message::set_str`].
    pub fn set_bin(&mut self, name: &str, v: Vec<u8>) {
        self.set(name, Value::Bin(v));
    }

    /// Replaces the first field called `name` in place (whatever its type), else appends.
    pub fn set(&mut self, name: &str, value: Value) {
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(f) => f.value = value,
            None => self.push(name, value),
        }
    }

    /// Appends a string field, even if the name already exists.
    pub fn push_str(&mut self, name: &str, v: impl Into<String>) {
        self.push(name, Value::Str(v.into()));
    }

    /// Appends a binary field, even if the name already exists.
    pub fn push_bin(&mut self, name: &str, v: Vec<u8>) {
        self.push(name, Value::Bin(v));
    }

    /// Appends a field, even if the name already exists.
    pub fn push(&mut self, name: &str, value: Value) {
        self.fields.push(Field {
            name: name.to_owned(),
            value,
        });
    }

    /// Removes every field called `name`.
    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|f| f.name != name);
    }
}

/// Which framing a packet used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `>>>\n` … `<<<\n` text, optionally followed by one NUL.
    Classic,
    /// `###\n` … `%%%\n` netstrings, optionally followed by an auth trailer.
    Netstring,
}

/// The netstring packet's trailer `<len>:<N> <token>,`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthTrailer {
    /// Key index `N` (0..=15).
    pub key_index: u8,
    /// The method's token, exactly as received.
    pub token: String,
}

/// A decoded packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The message's fields.
    pub msg: Message,
    /// Framing the packet used.
    pub framing: Framing,
    /// Netstring auth trailer, if any (always `None` for classic).
    pub trailer: Option<AuthTrailer>,
    /// Bytes covered by the trailer's token: `###\n` through `%%%\n` inclusive.
    /// For classic packets, the bytes through `<<<\n`.
    pub signed_len: usize,
}

/// Why a packet could not be decoded. Offsets are byte offsets into the packet.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Larger than [`MAX_MSG`].
    #[error("packet of {0} bytes exceeds the {MAX_MSG}-byte limit")]
    TooBig(usize),
    /// Neither `>>>\n` nor `###\n` at the start.
    #[error("no message framing (expected `>>>\\n` or `###\\n`) at offset 0")]
    NoFraming,
    /// Input ended before the closing marker.
    #[error("message truncated at offset {0}: no closing `<<<` / `%%%` marker")]
    Truncated(usize),
    /// A netstring length is not canonical decimal, or is followed by no `:`.
    #[error("bad netstring length at offset {0}")]
    BadLength(usize),
    /// A netstring length runs past the end of the packet.
    #[error("netstring at offset {at} claims {len} bytes but only {left} remain")]
    LengthOutOfBounds {
        /// Offset of the length digits.
        at: usize,
        /// Claimed length.
        len: usize,
        /// Bytes remaining after the `:`.
        left: usize,
    },
    /// A netstring is not closed by `,`.
    #[error("netstring not terminated by `,` at offset {0}")]
    MissingComma(usize),
    /// A netstring field lacks its `(t)` type prefix.
    #[error("field at offset {0} lacks the `(t)` type prefix")]
    MissingType(usize),
    /// A type digit other than 0..=5.
    #[error("unknown field type `{ty}` at offset {at}")]
    BadType {
        /// Offset of the type character.
        at: usize,
        /// The type byte as a char.
        ty: char,
    },
    /// Types 2..=5 (struct, list, compressed): not used by R1 clusters.
    #[error("field type {ty} at offset {at} is not supported (R1 clusters use only 0 and 1)")]
    Unsupported {
        /// Offset of the type digit.
        at: usize,
        /// The type digit.
        ty: u8,
    },
    /// A field without `=`.
    #[error("field at offset {0} has no `=`")]
    MissingEquals(usize),
    /// A field with an empty name.
    #[error("field at offset {0} has an empty name")]
    EmptyName(usize),
    /// A field name that is not UTF-8, holds NUL or `\n`, or starts with `(`.
    #[error("field name at offset {0} is not valid text")]
    BadName(usize),
    /// A string value that is not UTF-8 or holds NUL.
    #[error("string value at offset {0} is not NUL-free UTF-8")]
    BadString(usize),
    /// A classic binary value that is not canonical padded base64.
    #[error("binary value at offset {0} is not canonical base64")]
    BadBase64(usize),
    /// The netstring auth trailer is not `<N> <token>`.
    #[error("malformed auth trailer at offset {0}")]
    BadTrailer(usize),
    /// Bytes after the end of the message (or its trailer).
    #[error("{len} bytes of trailing garbage at offset {at}")]
    TrailingGarbage {
        /// Offset of the first extra byte.
        at: usize,
        /// Number of extra bytes.
        len: usize,
    },
}

/// Decodes a packet in either framing.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.len() > MAX_MSG {
        return Err(DecodeError::TooBig(bytes.len()));
    }
    if bytes.starts_with(netstring::START) {
        netstring::decode(bytes)
    } else if bytes.starts_with(classic::START) {
        classic::decode(bytes)
    } else {
        Err(DecodeError::NoFraming)
    }
}

/// Where [`peek_src`] looks: Heartbeat puts `src` among the first fields.
const PEEK_SRC_WITHIN: usize = 1024;

/// The `src` a packet claims, found by a bounded scan without decoding (for the log line
/// about a packet that failed authentication; never trusted for anything else).
pub fn peek_src(bytes: &[u8]) -> Option<&[u8]> {
    let head = &bytes[..bytes.len().min(PEEK_SRC_WITHIN)];
    // `(0)src=` in netstring framing, `\nsrc=` in classic; `srcuuid` does not match.
    let at = head
        .windows(4)
        .enumerate()
        .find(|(i, w)| *w == b"src=" && *i > 0 && matches!(head[i - 1], b')' | b'\n'))
        .map(|(i, _)| i + 4)?;
    let rest = &head[at..];
    let end = rest
        .iter()
        .position(|&b| b == b',' || b == b'\n')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Checks a decoded field name; `at` is its offset for errors.
fn check_name(name: &[u8], at: usize) -> Result<String, DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::EmptyName(at));
    }
    // A leading `(` would read back as a classic type prefix.
    if name[0] == b'(' || name.iter().any(|&b| b == 0 || b == b'\n') {
        return Err(DecodeError::BadName(at));
    }
    String::from_utf8(name.to_vec()).map_err(|_| DecodeError::BadName(at))
}

/// Checks a decoded string value; `at` is its offset for errors.
fn check_string(value: Vec<u8>, at: usize) -> Result<String, DecodeError> {
    if value.contains(&0) {
        return Err(DecodeError::BadString(at));
    }
    String::from_utf8(value).map_err(|_| DecodeError::BadString(at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn set_modifies_first_in_place_and_push_appends() {
        let mut m = Message::with_type("status");
        m.push_str("a", "1");
        m.push_str("a", "2");
        m.set_str("a", "3");
        assert_eq!(m.get("a"), Some("3"));
        assert_eq!(m.fields()[2].value, Value::Str("2".into()));
        m.set_str("b", "x");
        assert_eq!(m.fields().last().map(|f| f.name.as_str()), Some("b"));
        m.remove("a");
        assert_eq!(m.len(), 2);
        assert_eq!(m.msg_type(), Some("status"));
    }

    #[test]
    fn get_skips_binary_and_get_bin_skips_strings() {
        let mut m = Message::new();
        m.push_bin("u", vec![1, 2]);
        m.push_str("u", "s");
        assert_eq!(m.get("u"), Some("s"));
        assert_eq!(m.get_bin("u"), Some(&[1u8, 2][..]));
        assert_eq!(m.get("missing"), None);
    }

    #[test]
    fn peek_src_finds_the_claimed_sender_in_both_framings() {
        let mut m = Message::with_type("status");
        m.push_bin("srcuuid", vec![1, 2]);
        m.push_str("src", "node1");
        assert_eq!(peek_src(&encode_netstring(&m)), Some(&b"node1"[..]));
        assert_eq!(peek_src(&encode_classic(&m)), Some(&b"node1"[..]));
        assert_eq!(peek_src(b"junk"), None);
    }

    #[test]
    fn rejects_oversize_and_unframed() {
        let big = vec![b'#'; MAX_MSG + 1];
        assert_eq!(decode(&big), Err(DecodeError::TooBig(MAX_MSG + 1)));
        assert_eq!(decode(b"hello"), Err(DecodeError::NoFraming));
        assert_eq!(decode(b""), Err(DecodeError::NoFraming));
        assert_eq!(decode(b"##"), Err(DecodeError::NoFraming));
    }
}
