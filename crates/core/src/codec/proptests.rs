//! Property tests: round trips for both framings, and no panics on hostile input.

use proptest::prelude::*;

use super::*;
use crate::auth::{Auth, AuthMethod};

fn name() -> impl Strategy<Value = String> {
    "[a-z_]{1,12}"
}

/// Strings legal in netstring framing: no NUL, newlines allowed.
fn ns_string() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,40}"
}

/// Strings legal in classic framing: no NUL and no 0x13 (which stands for `\n`).
fn classic_string() -> impl Strategy<Value = String> {
    "[^\u{0}\u{13}]{0,40}"
}

fn message(s: impl Strategy<Value = String>) -> impl Strategy<Value = Message> {
    let value = prop_oneof![
        s.prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bin),
    ];
    proptest::collection::vec((name(), value), 0..12).prop_map(|fs| {
        let mut m = Message::new();
        for (n, v) in fs {
            m.push(&n, v);
        }
        m
    })
}

fn auth() -> Auth {
    Auth::from_keys(
        1,
        [
            (1, AuthMethod::Sha1, b"secret".to_vec()),
            (2, AuthMethod::Crc, Vec::new()),
        ],
    )
}

/// A real status packet from the 3.0.6 captures (hb-sha1-ka1-dt5.pcap #32).
fn real_packet() -> Vec<u8> {
    let mut p = b"###\n11:(0)t=status,12:(0)st=active,10:(0)dt=1388,13:(0)protocol=1,12:(0)src=node1,27:(1)srcuuid=".to_vec();
    p.extend_from_slice(&[
        0xa3, 0xf4, 0xac, 0x1f, 0xe1, 0xc0, 0x45, 0x3f, 0x97, 0xf0, 0x0e, 0xa5, 0x0c, 0x10, 0x73,
        0x2b,
    ]);
    p.extend_from_slice(b",8:(0)seq=f,14:(0)hg=6b04de54,14:(0)ts=6b04de59,30:(0)ld=1.94 2.12 1.03 1/99 7507,8:(0)ttl=3,50:(0)auth=1 e6474b13bbda4101f6ef4a08d3124593b56d18dc,%%%\n42:1 bb671dc10a7dcaac0603cdb27f5efda01433364b,");
    p
}

#[test]
fn real_packet_verifies() {
    assert!(auth().verify(&real_packet()).is_ok());
}

proptest! {
    #[test]
    fn netstring_round_trip(m in message(ns_string())) {
        let bytes = encode_netstring(&m);
        let d = decode(&bytes).unwrap();
        prop_assert_eq!(d.framing, Framing::Netstring);
        prop_assert_eq!(d.signed_len, bytes.len());
        prop_assert_eq!(d.msg, m);
    }

    #[test]
    fn classic_round_trip(m in message(classic_string()), nul in any::<bool>()) {
        let mut bytes = encode_classic(&m);
        if nul {
            bytes.push(0);
        }
        let d = decode(&bytes).unwrap();
        prop_assert_eq!(d.framing, Framing::Classic);
        prop_assert_eq!(d.msg, m);
    }

    #[test]
    fn signed_round_trip(m in message(ns_string())) {
        let a = auth();
        let mut signed = m.clone();
        let bytes = a.sign(&mut signed);
        prop_assert_eq!(a.verify(&bytes), Ok(signed));
    }

    #[test]
    fn signed_classic_round_trip(m in message(classic_string())) {
        let a = auth();
        let mut signed = m.clone();
        let bytes = a.sign_classic(&mut signed);
        prop_assert_eq!(a.verify(&bytes), Ok(signed));
    }

    #[test]
    fn base64_round_trip(b in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(base64_decode(base64_encode(&b).as_bytes()), Some(b));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&b);
        let _ = auth().verify(&b);
    }

    #[test]
    fn framed_garbage_never_panics(
        head in prop_oneof![Just(&b"###\n"[..]), Just(&b">>>\n"[..])],
        b in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut p = head.to_vec();
        p.extend_from_slice(&b);
        let _ = decode(&p);
        let _ = auth().verify(&p);
    }

    #[test]
    fn truncated_real_packet_is_rejected(cut in 0usize..309) {
        let p = real_packet();
        prop_assert!(auth().verify(&p[..cut]).is_err());
    }

    #[test]
    fn mutated_real_packet_never_panics_nor_verifies(
        flips in proptest::collection::vec((0usize..309, 0u8..8), 1..4),
    ) {
        let mut p = real_packet();
        for (at, bit) in flips {
            p[at] ^= 1 << bit;
        }
        let _ = decode(&p);
        // Flips can cancel out; otherwise a corrupted packet must not pass.
        if p != real_packet() {
            prop_assert!(auth().verify(&p).is_err());
        }
    }

    #[test]
    fn spliced_real_packet_never_panics(
        at in 0usize..309,
        insert in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut p = real_packet();
        p.splice(at..at, insert);
        let _ = decode(&p);
        let _ = auth().verify(&p);
    }
}
