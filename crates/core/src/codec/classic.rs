//! Classic (NVPAIR) framing: `>>>\n`, one `[(t)]name=value\n` line per field,
//! `<<<\n`. Used by old peers, the FIFO, serial links and classic auth.

use super::{
    DecodeError, Decoded, Field, Framing, Message, Value, base64, check_name, check_string,
};

pub(super) const START: &[u8] = b">>>\n";
const END_LINE: &[u8] = b"<<<";
/// Stands in for `\n` inside string values (Heartbeat's `SPECIAL_SYM`).
const NEWLINE_SUB: u8 = 0x13;

/// Encodes a message as classic text, `>>>\n` through `<<<\n` (no trailing NUL).
pub fn encode_classic(msg: &Message) -> Vec<u8> {
    let mut out = Vec::from(START);
    write_fields(&mut out, msg, |_| true);
    out.extend_from_slice(END_LINE);
    out.push(b'\n');
    out
}

/// The bytes classic auth hashes: every field's line except those named `auth`, no framing.
pub fn classic_auth_text(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    write_fields(&mut out, msg, |f| f.name != "auth");
    out
}

fn write_fields(out: &mut Vec<u8>, msg: &Message, keep: impl Fn(&Field) -> bool) {
    for f in msg.fields().iter().filter(|f| keep(f)) {
        match &f.value {
            Value::Str(s) => {
                out.extend_from_slice(f.name.as_bytes());
                out.push(b'=');
                out.extend(s.bytes().map(|b| if b == b'\n' { NEWLINE_SUB } else { b }));
            }
            Value::Bin(b) => {
                out.extend_from_slice(b"(1)");
                out.extend_from_slice(f.name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(base64::encode(b).as_bytes());
            }
        }
        out.push(b'\n');
    }
}

fn parse_line(line: &[u8], at: usize) -> Result<Field, DecodeError> {
    let (ty, body, body_at) = if line.first() == Some(&b'(') {
        if line.len() < 3 || line[2] != b')' {
            return Err(DecodeError::MissingType(at));
        }
        (line[1], &line[3..], at + 3)
    } else {
        (b'0', line, at)
    };
    let eq = body
        .iter()
        .position(|&b| b == b'=')
        .ok_or(DecodeError::MissingEquals(at))?;
    let name = check_name(&body[..eq], body_at)?;
    let raw = &body[eq + 1..];
    let vat = body_at + eq + 1;
    let value = match ty {
        b'0' => {
            let v = raw
                .iter()
                .map(|&b| if b == NEWLINE_SUB { b'\n' } else { b })
                .collect();
            Value::Str(check_string(v, vat)?)
        }
        b'1' => Value::Bin(base64::decode(raw).ok_or(DecodeError::BadBase64(vat))?),
        b'2'..=b'5' => {
            return Err(DecodeError::Unsupported {
                at: at + 1,
                ty: ty - b'0',
            });
        }
        _ => {
            return Err(DecodeError::BadType {
                at: at + 1,
                ty: char::from(ty),
            });
        }
    };
    Ok(Field { name, value })
}

/// Decodes a packet that starts with `>>>\n`.
pub(super) fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut pos = START.len();
    let mut msg = Message::new();
    loop {
        let nl = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(DecodeError::Truncated(pos))?;
        let line = &bytes[pos..pos + nl];
        let at = pos;
        pos += nl + 1;
        if line == END_LINE {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let f = parse_line(line, at)?;
        msg.push(&f.name, f.value);
    }
    let signed_len = pos;
    // UDP senders of the glue <= 1.0.9 era append one NUL.
    let rest = &bytes[pos..];
    if !rest.is_empty() && rest != [0] {
        return Err(DecodeError::TrailingGarbage {
            at: pos,
            len: rest.len(),
        });
    }
    Ok(Decoded {
        msg,
        framing: Framing::Classic,
        trailer: None,
        signed_len,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::decode as decode_any;
    use super::*;

    fn err(bytes: &[u8]) -> DecodeError {
        decode_any(bytes).unwrap_err()
    }

    #[test]
    fn newline_maps_to_0x13_both_ways() {
        let mut m = Message::with_type("x");
        m.push_str("info", "two\nlines");
        let bytes = encode_classic(&m);
        assert_eq!(bytes, b">>>\nt=x\ninfo=two\x13lines\n<<<\n");
        assert_eq!(decode_any(&bytes).unwrap().msg, m);
    }

    #[test]
    fn binary_is_base64_with_prefix() {
        let mut m = Message::new();
        m.push_bin("u", vec![0xff, 0]);
        assert_eq!(encode_classic(&m), b">>>\n(1)u=/wA=\n<<<\n");
    }

    #[test]
    fn auth_text_skips_every_auth_field_and_framing() {
        let mut m = Message::with_type("x");
        m.push_str("auth", "1 a");
        m.push_str("a", "b");
        m.push_str("auth", "2 b");
        assert_eq!(classic_auth_text(&m), b"t=x\na=b\n");
    }

    #[test]
    fn accepts_nul_blank_lines_and_explicit_string_type() {
        let d = decode_any(b">>>\n\nt=x\n\n(0)a=b\n<<<\n\0").unwrap();
        assert_eq!(d.framing, Framing::Classic);
        assert_eq!(d.signed_len, 21);
        assert_eq!(d.trailer, None);
        let mut m = Message::with_type("x");
        m.push_str("a", "b");
        assert_eq!(d.msg, m);
    }

    #[test]
    fn value_may_hold_equals_signs() {
        let d = decode_any(b">>>\na=b=c\n<<<\n").unwrap();
        assert_eq!(d.msg.get("a"), Some("b=c"));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(err(b">>>\nt=x\n"), DecodeError::Truncated(8));
        assert_eq!(err(b">>>\nt=x\n<<<"), DecodeError::Truncated(8));
        assert_eq!(err(b">>>\ntx\n<<<\n"), DecodeError::MissingEquals(4));
        assert_eq!(err(b">>>\n=x\n<<<\n"), DecodeError::EmptyName(4));
        assert_eq!(err(b">>>\n(1x=\n<<<\n"), DecodeError::MissingType(4));
        assert_eq!(
            err(b">>>\n(7)x=\n<<<\n"),
            DecodeError::BadType { at: 5, ty: '7' }
        );
        assert_eq!(
            err(b">>>\n(2)x=>>>\n<<<\n"),
            DecodeError::Unsupported { at: 5, ty: 2 }
        );
        assert_eq!(err(b">>>\n(1)x=abc\n<<<\n"), DecodeError::BadBase64(9));
        // Found by fuzzing: a name that itself looks like a type prefix.
        assert_eq!(err(b">>>\n(0)(0)t=x\n<<<\n"), DecodeError::BadName(7));
        assert_eq!(err(b">>>\n(0)(t=x\n<<<\n"), DecodeError::BadName(7));
        assert_eq!(err(b">>>\nx=\xc3\n<<<\n"), DecodeError::BadString(6));
        assert_eq!(err(b">>>\nx=a\0b\n<<<\n"), DecodeError::BadString(6));
        assert_eq!(
            err(b">>>\nt=x\n<<<\n\0\0"),
            DecodeError::TrailingGarbage { at: 12, len: 2 }
        );
        assert_eq!(
            err(b">>>\nt=x\n<<<\nz"),
            DecodeError::TrailingGarbage { at: 12, len: 1 }
        );
    }
}
