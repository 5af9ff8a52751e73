//! Netstring framing: `###\n`, one `<len>:(t)name=value,` per field,
//! `%%%\n`, then the auth trailer `<len>:<N> <token>,`.

use super::{
    AuthTrailer, DecodeError, Decoded, Field, Framing, Message, Value, check_name, check_string,
};

pub(super) const START: &[u8] = b"###\n";
pub(super) const END: &[u8] = b"%%%\n";

/// Encodes a message as netstrings, `###\n` through `%%%\n`, without a trailer.
pub fn encode_netstring(msg: &Message) -> Vec<u8> {
    let body: usize = msg
        .fields()
        .iter()
        .map(|f| 3 + f.name.len() + 1 + value_bytes(&f.value).len() + 10)
        .sum();
    let mut out = Vec::with_capacity(START.len() + body + END.len());
    out.extend_from_slice(START);
    for f in msg.fields() {
        let value = value_bytes(&f.value);
        let len = 3 + f.name.len() + 1 + value.len();
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b":(");
        out.push(b'0' + f.value.type_digit());
        out.push(b')');
        out.extend_from_slice(f.name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b',');
    }
    out.extend_from_slice(END);
    out
}

/// Encodes the auth trailer `<len>:<N> <token>,` that follows `%%%\n`.
pub fn encode_trailer(key_index: u8, token: &str) -> Vec<u8> {
    let inner = format!("{key_index} {token}");
    format!("{}:{inner},", inner.len()).into_bytes()
}

fn value_bytes(v: &Value) -> &[u8] {
    match v {
        Value::Str(s) => s.as_bytes(),
        Value::Bin(b) => b,
    }
}

/// Reads one netstring at `pos`; returns its payload range and the offset after the `,`.
fn peel(bytes: &[u8], pos: usize) -> Result<(usize, usize, usize), DecodeError> {
    let rest = &bytes[pos..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // Heartbeat prints lengths with %d: no leading zeros, and MAX_MSG fits in 6 digits.
    if digits == 0 || digits > 7 || (digits > 1 && rest[0] == b'0') {
        return Err(DecodeError::BadLength(pos));
    }
    if rest.get(digits) != Some(&b':') {
        return Err(DecodeError::BadLength(pos));
    }
    let len = rest[..digits]
        .iter()
        .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
    let start = pos + digits + 1;
    let left = bytes.len() - start;
    if len >= left {
        // Payload plus the closing comma must fit.
        if len > left {
            return Err(DecodeError::LengthOutOfBounds { at: pos, len, left });
        }
        return Err(DecodeError::MissingComma(start + len));
    }
    let end = start + len;
    if bytes[end] != b',' {
        return Err(DecodeError::MissingComma(end));
    }
    Ok((start, end, end + 1))
}

fn parse_field(bytes: &[u8], start: usize, end: usize) -> Result<Field, DecodeError> {
    let p = &bytes[start..end];
    if p.len() < 3 || p[0] != b'(' || p[2] != b')' {
        return Err(DecodeError::MissingType(start));
    }
    let ty = p[1];
    let eq = p[3..]
        .iter()
        .position(|&b| b == b'=')
        .ok_or(DecodeError::MissingEquals(start))?;
    let name = check_name(&p[3..3 + eq], start + 3)?;
    let vstart = 3 + eq + 1;
    let raw = &p[vstart..];
    let value = match ty {
        b'0' => Value::Str(check_string(raw.to_vec(), start + vstart)?),
        b'1' => Value::Bin(raw.to_vec()),
        b'2'..=b'5' => {
            return Err(DecodeError::Unsupported {
                at: start + 1,
                ty: ty - b'0',
            });
        }
        _ => {
            return Err(DecodeError::BadType {
                at: start + 1,
                ty: char::from(ty),
            });
        }
    };
    Ok(Field { name, value })
}

fn parse_trailer(bytes: &[u8], start: usize, end: usize) -> Result<AuthTrailer, DecodeError> {
    let p = &bytes[start..end];
    let bad = DecodeError::BadTrailer(start);
    let sp = p.iter().position(|&b| b == b' ').ok_or(bad.clone())?;
    let (idx, token) = (&p[..sp], &p[sp + 1..]);
    if idx.is_empty() || idx.len() > 2 || !idx.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let key_index = idx.iter().fold(0u8, |n, &d| n * 10 + (d - b'0'));
    if key_index > 15 || (idx.len() > 1 && idx[0] == b'0') {
        return Err(bad);
    }
    if token.is_empty() || !token.iter().all(u8::is_ascii_graphic) {
        return Err(bad);
    }
    let token = String::from_utf8(token.to_vec()).map_err(|_| bad)?;
    Ok(AuthTrailer { key_index, token })
}

/// Decodes a packet that starts with `###\n`.
pub(super) fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let mut pos = START.len();
    let mut msg = Message::new();
    loop {
        if bytes[pos..].starts_with(END) {
            pos += END.len();
            break;
        }
        if pos >= bytes.len() {
            return Err(DecodeError::Truncated(pos));
        }
        let (start, end, next) = peel(bytes, pos)?;
        let f = parse_field(bytes, start, end)?;
        msg.push(&f.name, f.value);
        pos = next;
    }
    let signed_len = pos;
    let trailer = if pos == bytes.len() {
        None
    } else {
        let (start, end, next) = peel(bytes, pos)?;
        let t = parse_trailer(bytes, start, end)?;
        if next != bytes.len() {
            return Err(DecodeError::TrailingGarbage {
                at: next,
                len: bytes.len() - next,
            });
        }
        Some(t)
    };
    Ok(Decoded {
        msg,
        framing: Framing::Netstring,
        trailer,
        signed_len,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::decode as decode_any;
    use super::*;

    fn sample() -> Message {
        let mut m = Message::with_type("status");
        m.push_str("st", "active");
        m.push_bin("srcuuid", vec![0, b',', b':', 0xff]);
        m.push_str("empty", "");
        m
    }

    #[test]
    fn encodes_with_type_prefix_and_lengths() {
        let bytes = encode_netstring(&sample());
        assert_eq!(
            bytes,
            b"###\n11:(0)t=status,12:(0)st=active,15:(1)srcuuid=\0,:\xff,9:(0)empty=,%%%\n"
        );
    }

    #[test]
    fn round_trip_without_and_with_trailer() {
        let mut bytes = encode_netstring(&sample());
        let d = decode_any(&bytes).unwrap();
        assert_eq!(d.msg, sample());
        assert_eq!(d.framing, Framing::Netstring);
        assert_eq!(d.trailer, None);
        assert_eq!(d.signed_len, bytes.len());
        let signed = bytes.len();
        bytes.extend_from_slice(&encode_trailer(1, "abc"));
        let d = decode_any(&bytes).unwrap();
        assert_eq!(d.signed_len, signed);
        assert_eq!(
            d.trailer,
            Some(AuthTrailer {
                key_index: 1,
                token: "abc".into()
            })
        );
    }

    #[test]
    fn trailer_format() {
        assert_eq!(encode_trailer(1, "ab"), b"4:1 ab,");
        assert_eq!(encode_trailer(15, "ab"), b"5:15 ab,");
    }

    fn err(bytes: &[u8]) -> DecodeError {
        decode_any(bytes).unwrap_err()
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            err(b"###\n011:(0)t=status,%%%\n"),
            DecodeError::BadLength(4)
        );
        assert_eq!(err(b"###\n:(0)t=status,%%%\n"), DecodeError::BadLength(4));
        assert_eq!(err(b"###\n11(0)t=status,%%%\n"), DecodeError::BadLength(4));
        assert_eq!(err(b"###\n-1:(0)t=status,%%%\n"), DecodeError::BadLength(4));
        assert_eq!(
            err(b"###\n99999999:x,%%%\n"),
            DecodeError::BadLength(4),
            "more than 7 digits"
        );
        assert_eq!(
            err(b"###\n50:(0)t=status,%%%\n"),
            DecodeError::LengthOutOfBounds {
                at: 4,
                len: 50,
                left: 16
            }
        );
        assert_eq!(
            err(b"###\n10:(0)t=status,%%%\n"),
            DecodeError::MissingComma(17)
        );
        assert_eq!(err(b"###\n11:(0)t=status"), DecodeError::MissingComma(18));
    }

    #[test]
    fn rejects_bad_fields() {
        assert_eq!(err(b"###\n8:t=status,%%%\n"), DecodeError::MissingType(6));
        assert_eq!(err(b"###\n2:(0,%%%\n"), DecodeError::MissingType(6));
        assert_eq!(
            err(b"###\n11:(9)t=status,%%%\n"),
            DecodeError::BadType { at: 8, ty: '9' }
        );
        assert_eq!(
            err(b"###\n11:(2)t=status,%%%\n"),
            DecodeError::Unsupported { at: 8, ty: 2 }
        );
        assert_eq!(
            err(b"###\n11:(3)t=status,%%%\n"),
            DecodeError::Unsupported { at: 8, ty: 3 }
        );
        assert_eq!(
            err(b"###\n10:(0)tstatus,%%%\n"),
            DecodeError::MissingEquals(7)
        );
        assert_eq!(err(b"###\n10:(0)=status,%%%\n"), DecodeError::EmptyName(10));
        assert_eq!(err(b"###\n5:(0)\xff=,%%%\n"), DecodeError::BadName(9));
        assert_eq!(err(b"###\n5:(0)(=,%%%\n"), DecodeError::BadName(9));
        assert_eq!(err(b"###\n6:(0)t=\xff,%%%\n"), DecodeError::BadString(11));
        assert_eq!(err(b"###\n6:(0)t=\0,%%%\n"), DecodeError::BadString(11));
    }

    #[test]
    fn rejects_truncation_and_garbage() {
        assert_eq!(err(b"###\n"), DecodeError::Truncated(4));
        assert_eq!(err(b"###\n11:(0)t=status,"), DecodeError::Truncated(19));
        assert_eq!(err(b"###\n11:(0)t=status,%%%"), DecodeError::BadLength(19));
        assert_eq!(
            err(b"###\n11:(0)t=status,%%%\n4:1 ab,x"),
            DecodeError::TrailingGarbage { at: 30, len: 1 }
        );
        assert_eq!(
            err(b"###\n11:(0)t=status,%%%\n4:1 ab,\0"),
            DecodeError::TrailingGarbage { at: 30, len: 1 }
        );
        assert_eq!(
            err(b"###\n11:(0)t=status,%%%\n\0"),
            DecodeError::BadLength(23)
        );
    }

    #[test]
    fn rejects_bad_trailers() {
        for t in [
            &b"3:1ab,"[..],
            b"3: ab,",
            b"4:x ab,",
            b"5:16 ab,",
            b"5:01 ab,",
            b"2:1 ,",
            b"5:1 a b,",
            b"5:100 a,",
        ] {
            let mut p = b"###\n11:(0)t=status,%%%\n".to_vec();
            p.extend_from_slice(t);
            assert_eq!(
                err(&p),
                DecodeError::BadTrailer(25),
                "{}",
                String::from_utf8_lossy(t)
            );
        }
    }
}
