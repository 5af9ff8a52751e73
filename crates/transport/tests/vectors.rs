//! Every Heartbeat 3.0.6 packet in the captured pcaps must decode, verify
//! (trailer and inner classic `auth`) and re-encode to the same bytes.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ha_transport::auth::{Auth, AuthMethod, token};
use ha_transport::codec::{
    Framing, classic_auth_text, decode, encode_classic, encode_netstring, encode_trailer,
};

const HB_PORT: u16 = 694;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn u16_at(b: &[u8], at: usize, le: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if le {
        u16::from_le_bytes(v)
    } else {
        u16::from_be_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, le: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if le {
        u32::from_le_bytes(v)
    } else {
        u32::from_be_bytes(v)
    }
}

/// UDP payloads to or from port 694 in a classic pcap file (IPv4 only).
fn heartbeat_payloads(pcap: &[u8]) -> Vec<Vec<u8>> {
    let le = match pcap[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a pcap file"),
    };
    let linktype = u32_at(pcap, 20, le);
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= pcap.len() {
        let caplen = u32_at(pcap, pos + 8, le) as usize;
        let frame = &pcap[pos + 16..pos + 16 + caplen];
        pos += 16 + caplen;
        let (ethertype, l3) = match linktype {
            1 => (u16_at(frame, 12, false), 14),
            113 => (u16_at(frame, 14, false), 16),
            276 => (u16_at(frame, 0, false), 20),
            other => panic!("unsupported link type {other}"),
        };
        if ethertype != 0x0800 {
            continue;
        }
        let ip = &frame[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16_at(ip, 2, false));
        let frag = u16_at(ip, 6, false) & 0x3fff;
        assert_eq!(frag, 0, "IP fragments are not expected in these captures");
        if ip[9] != 17 {
            continue;
        }
        let udp = &ip[ihl..total];
        let (sport, dport) = (u16_at(udp, 0, false), u16_at(udp, 2, false));
        if sport != HB_PORT && dport != HB_PORT {
            continue;
        }
        let ulen = usize::from(u16_at(udp, 4, false));
        out.push(udp[8..ulen].to_vec());
    }
    assert_eq!(pos, pcap.len(), "pcap ends mid-record");
    out
}

/// Checks one packet; returns the number of fields.
fn check_packet(auth: &Auth, method: AuthMethod, key: &[u8], p: &[u8]) -> usize {
    let d = decode(p).unwrap_or_else(|e| panic!("decode: {e}: {:?}", String::from_utf8_lossy(p)));
    assert_eq!(d.framing, Framing::Netstring);
    let trailer = d.trailer.as_ref().expect("3.0.6 always sends a trailer");
    assert_eq!(trailer.key_index, 1);

    // Trailer: the method over '###\n'..'%%%\n'.
    assert_eq!(trailer.token, token(method, key, &p[..d.signed_len]));
    assert_eq!(auth.verify(p).as_ref(), Ok(&d.msg));

    // Inner classic auth field: same key over the classic text.
    let inner = d.msg.get("auth").expect("inner auth field");
    assert_eq!(
        inner,
        format!("1 {}", token(method, key, &classic_auth_text(&d.msg)))
    );

    // Byte-exact re-encoding, and re-signing from scratch gives the same packet.
    let mut again = encode_netstring(&d.msg);
    again.extend_from_slice(&encode_trailer(trailer.key_index, &trailer.token));
    assert_eq!(again, p);
    let mut msg = d.msg.clone();
    assert_eq!(auth.sign(&mut msg), p);
    assert_eq!(msg, d.msg);

    // The classic rendering of the same message verifies too.
    let classic = encode_classic(&d.msg);
    assert_eq!(auth.verify(&classic).as_ref(), Ok(&d.msg));
    d.msg.fields().len()
}

fn check_file(name: &str, method: AuthMethod, key: &[u8]) -> usize {
    let bytes = std::fs::read(fixture(name)).expect("fixture");
    let auth = Auth::from_keys(1, [(1, method, key.to_vec())]);
    let packets = heartbeat_payloads(&bytes);
    assert!(!packets.is_empty(), "{name}: no heartbeat packets");
    for (i, p) in packets.iter().enumerate() {
        let fields = check_packet(&auth, method, key, p);
        assert!(fields > 0, "{name} packet {i}");
    }
    packets.len()
}

#[test]
fn sha1_captures() {
    for f in [
        "hb-sha1-ka1-dt5.pcap",
        "hb-sha1-ka200ms-dt1s-crash.pcap",
        "hb-sha1-selected.pcap",
        "hb-sha1-ucast-ka1-dt5.pcap",
    ] {
        let n = check_file(f, AuthMethod::Sha1, b"secret");
        assert!(n >= 10, "{f}: only {n} packets");
    }
}

#[test]
fn md5_capture() {
    assert!(check_file("hb-md5-ka1-dt5.pcap", AuthMethod::Md5, b"secret") >= 10);
}

#[test]
fn crc_capture() {
    assert!(check_file("hb-crc-ka1-dt5.pcap", AuthMethod::Crc, b"") >= 10);
}

#[test]
fn wrong_key_rejects_every_captured_packet() {
    let bytes = std::fs::read(fixture("hb-sha1-selected.pcap")).expect("fixture");
    let auth = Auth::from_keys(1, [(1, AuthMethod::Sha1, b"not-the-secret".to_vec())]);
    for p in heartbeat_payloads(&bytes) {
        assert_eq!(
            auth.verify(&p),
            Err(ha_transport::auth::DropReason::BadAuth)
        );
    }
}

#[test]
fn status_vector_from_reference() {
    // hb-sha1-ka1-dt5.pcap packet #32, as dissected in status-vector.txt.
    let text = std::fs::read_to_string(fixture("status-vector.txt")).expect("fixture");
    let hex: Vec<u8> = text
        .lines()
        .filter(|l| {
            l.len() > 6 && l.as_bytes()[4] == b' ' && l[..4].chars().all(|c| c.is_ascii_hexdigit())
        })
        .flat_map(|l| {
            // Hex columns are fixed-width; the ASCII column may hold look-alikes.
            let cols = &l[6..l.len().min(6 + 16 * 3)];
            cols.split_whitespace()
                .map(|w| u8::from_str_radix(w, 16).expect("hex"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(hex.len(), 309);
    let d = decode(&hex).expect("decode");
    assert_eq!(d.signed_len, 263);
    assert_eq!(d.msg.get("dt"), Some("1388"));
    assert_eq!(
        d.msg.get_bin("srcuuid"),
        Some(
            &[
                0xa3, 0xf4, 0xac, 0x1f, 0xe1, 0xc0, 0x45, 0x3f, 0x97, 0xf0, 0x0e, 0xa5, 0x0c, 0x10,
                0x73, 0x2b
            ][..]
        )
    );
    assert_eq!(
        d.trailer.map(|t| t.token).as_deref(),
        Some("bb671dc10a7dcaac0603cdb27f5efda01433364b")
    );
    let auth = Auth::from_keys(1, [(1, AuthMethod::Sha1, b"secret".to_vec())]);
    assert!(auth.verify(&hex).is_ok());
}
