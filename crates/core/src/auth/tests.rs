use super::*;
use crate::codec::{Value, decode};

const UUID1: [u8; 16] = [
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
];

/// The status message of the protocol reference §1.7 A/B, without `auth`.
fn example_status() -> Message {
    let mut m = Message::with_type("status");
    m.push_str("st", "active");
    m.push_str("dt", "7530");
    m.push_str("protocol", "1");
    m.push_str("src", "node1");
    m.push_bin("srcuuid", UUID1.to_vec());
    m.push_str("seq", "1a");
    m.push_str("hg", "5f5e1001");
    m.push_str("ts", "65f0a1b2");
    m.push_str("ld", "0.08 0.03 0.01 1/187 2345");
    m.push_str("ttl", "3");
    m
}

fn sha1_mysecret() -> Auth {
    Auth::from_keys(1, [(1, AuthMethod::Sha1, b"mysecret".to_vec())])
}

const EXAMPLE_A: &[u8] = b">>>\nt=status\nst=active\ndt=7530\nprotocol=1\nsrc=node1\n\
(1)srcuuid=Dx4tPEtaaXiHlqW0w9Lh8A==\nseq=1a\nhg=5f5e1001\nts=65f0a1b2\n\
ld=0.08 0.03 0.01 1/187 2345\nttl=3\nauth=1 4bb6d22d367a3a31800a2ac21944a0410bafb143\n<<<\n\0";

#[test]
fn example_a_classic_tokens() {
    let text = classic_auth_text(&example_status());
    assert_eq!(
        token(AuthMethod::Sha1, b"mysecret", &text),
        "4bb6d22d367a3a31800a2ac21944a0410bafb143"
    );
    assert_eq!(
        token(AuthMethod::Md5, b"mysecret", &text),
        "61336b47839ffb94551cfde1045bf225"
    );
    assert_eq!(token(AuthMethod::Crc, b"", &text), "72fe9914");
}

#[test]
fn example_a_exact_bytes_and_verify() {
    assert_eq!(EXAMPLE_A.len(), 207);
    let mut m = example_status();
    let mut out = sha1_mysecret().sign_classic(&mut m);
    out.push(0);
    assert_eq!(out, EXAMPLE_A);
    let got = sha1_mysecret().verify(EXAMPLE_A).unwrap();
    assert_eq!(got, m);
}

#[test]
fn example_b_netstring_exact_bytes() {
    let mut expect = Vec::new();
    expect.extend_from_slice(
        b"###\n11:(0)t=status,12:(0)st=active,10:(0)dt=7530,13:(0)protocol=1,12:(0)src=node1,27:(1)srcuuid=",
    );
    expect.extend_from_slice(&UUID1);
    expect.extend_from_slice(
        b",9:(0)seq=1a,14:(0)hg=5f5e1001,14:(0)ts=65f0a1b2,31:(0)ld=0.08 0.03 0.01 1/187 2345,\
8:(0)ttl=3,50:(0)auth=1 4bb6d22d367a3a31800a2ac21944a0410bafb143,%%%\n\
42:1 367f68e167b8a88377dc0780705a705f5409c7d5,",
    );
    assert_eq!(expect.len(), 311);
    let mut m = example_status();
    let out = sha1_mysecret().sign(&mut m);
    assert_eq!(out, expect);
    let d = decode(&out).unwrap();
    assert_eq!(d.signed_len, 311 - 46);
    assert_eq!(sha1_mysecret().verify(&out).unwrap(), m);
}

#[test]
fn example_c_ns_rexmit_crc() {
    let mut m = Message::with_type("NS_rexmit");
    m.push_str("dest", "node1");
    m.push_str("firstseq", "26");
    m.push_str("lastseq", "26");
    m.push_bin("destuuid", UUID1.to_vec());
    m.push_str("src", "node2");
    m.push_bin(
        "srcuuid",
        crate::codec::base64_decode(b"obLD1OX2BxgpOktcbX6PkA==").unwrap(),
    );
    m.push_str("hg", "5f5e2002");
    m.push_str("ts", "65f0a1b3");
    m.push_str("ttl", "3");
    let auth = Auth::from_keys(2, [(2, AuthMethod::Crc, Vec::new())]);
    let out = auth.sign_classic(&mut m);
    assert_eq!(m.get("auth"), Some("2 ef3a2b67"));
    assert_eq!(
        out,
        &b">>>\nt=NS_rexmit\ndest=node1\nfirstseq=26\nlastseq=26\n\
(1)destuuid=Dx4tPEtaaXiHlqW0w9Lh8A==\nsrc=node2\n(1)srcuuid=obLD1OX2BxgpOktcbX6PkA==\n\
hg=5f5e2002\nts=65f0a1b3\nttl=3\nauth=2 ef3a2b67\n<<<\n"[..]
    );
    assert!(auth.verify(&out).is_ok());
}

#[test]
fn crc_prints_without_leading_zeros() {
    // Find short input whose CRC has a leading zero nibble, to pin `%lx`.
    let data = (0u32..)
        .map(|i| i.to_le_bytes())
        .find(|d| crc32(d) < 0x1000_0000)
        .unwrap();
    let t = token(AuthMethod::Crc, b"", &data);
    assert!(!t.starts_with('0'));
    assert_eq!(u32::from_str_radix(&t, 16).unwrap(), crc32(&data));
}

#[test]
fn sha256_is_rfc4231_hmac() {
    // RFC 4231 test case 2.
    assert_eq!(
        token(AuthMethod::Sha256, b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn md5_hashes_long_keys_first() {
    // RFC 2202 test case 6: an 80-byte key is replaced by its digest.
    assert_eq!(
        token(
            AuthMethod::Md5,
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
    );
}

#[test]
fn sign_replaces_existing_auth_in_place() {
    let mut m = example_status();
    m.push_str("auth", "9 stale");
    m.push_str("after", "x");
    let auth = sha1_mysecret();
    let out = auth.sign(&mut m);
    assert_eq!(m.fields().iter().filter(|f| f.name == "auth").count(), 1);
    assert_eq!(m.fields().last().map(|f| f.name.as_str()), Some("after"));
    assert!(auth.verify(&out).is_ok());
}

#[test]
fn verify_accepts_every_configured_key() {
    let old = Auth::from_keys(1, [(1, AuthMethod::Md5, b"old".to_vec())]);
    let new = Auth::from_keys(2, [(2, AuthMethod::Sha256, b"new".to_vec())]);
    let both = Auth::from_keys(
        2,
        [
            (1, AuthMethod::Md5, b"old".to_vec()),
            (2, AuthMethod::Sha256, b"new".to_vec()),
        ],
    );
    for signer in [&old, &new] {
        let p = signer.sign(&mut example_status());
        assert!(both.verify(&p).is_ok());
        let c = signer.sign_classic(&mut example_status());
        assert!(both.verify(&c).is_ok());
    }
    assert_eq!(
        new.verify(&old.sign(&mut example_status())),
        Err(DropReason::UnknownKey)
    );
}

#[test]
fn crc_beside_an_hmac_active_key_is_never_accepted() {
    // authkeys `auth 1` / `1 sha1 …` / `2 crc` (a leftover from a rotation).
    let receiver = Auth::from_keys(
        1,
        [
            (1, AuthMethod::Sha1, b"rotated".to_vec()),
            (2, AuthMethod::Crc, Vec::new()),
            (3, AuthMethod::Md5, b"previous".to_vec()),
        ],
    );
    assert!(receiver.active_is_hmac());
    let crc = Auth::from_keys(2, [(2, AuthMethod::Crc, Vec::new())]);
    let mut takeover = Message::with_type("hb_takeover");
    takeover.push_str("src", "node2");
    assert_eq!(
        receiver.verify(&crc.sign(&mut takeover.clone())),
        Err(DropReason::BadAuth)
    );
    assert_eq!(
        receiver.verify(&crc.sign_classic(&mut takeover.clone())),
        Err(DropReason::BadAuth)
    );
    // The other HMAC key stays valid, for key rotation.
    let previous = Auth::from_keys(3, [(3, AuthMethod::Md5, b"previous".to_vec())]);
    assert!(
        receiver
            .verify(&previous.sign(&mut takeover.clone()))
            .is_ok()
    );
    assert!(
        receiver
            .verify(&receiver.sign(&mut takeover.clone()))
            .is_ok()
    );
    // crc as the active method (no authentication, by the admin's choice) still works.
    let crc_cluster = Auth::from_keys(
        2,
        [
            (1, AuthMethod::Sha1, b"rotated".to_vec()),
            (2, AuthMethod::Crc, Vec::new()),
        ],
    );
    assert!(!crc_cluster.active_is_hmac());
    assert!(crc_cluster.verify(&crc.sign(&mut takeover.clone())).is_ok());
    assert!(
        crc_cluster
            .verify(&receiver.sign(&mut takeover.clone()))
            .is_ok()
    );
}

#[test]
fn verify_uses_the_key_of_the_index_not_the_active_one() {
    // Heartbeat verifies netstring trailers with its own outbound key
    // whatever N says; we use key N.
    let receiver = Auth::from_keys(
        1,
        [
            (1, AuthMethod::Sha1, b"one".to_vec()),
            (2, AuthMethod::Sha1, b"two".to_vec()),
        ],
    );
    let sender = Auth::from_keys(2, [(2, AuthMethod::Sha1, b"two".to_vec())]);
    assert!(receiver.verify(&sender.sign(&mut example_status())).is_ok());
    let wrong = Auth::from_keys(2, [(2, AuthMethod::Sha1, b"one".to_vec())]);
    assert_eq!(
        receiver.verify(&wrong.sign(&mut example_status())),
        Err(DropReason::BadAuth)
    );
}

#[test]
fn verify_drop_reasons() {
    let auth = sha1_mysecret();
    let signed = auth.sign(&mut example_status());
    let body_end = decode(&signed).unwrap().signed_len;

    assert_eq!(auth.verify(&signed[..body_end]), Err(DropReason::NoAuth));
    assert_eq!(auth.verify(b"junk"), Err(DropReason::Malformed));
    assert_eq!(
        auth.verify(&vec![b'#'; MAX_MSG + 1]),
        Err(DropReason::TooBig)
    );

    let mut flipped = signed.clone();
    flipped[14] ^= 1;
    assert_eq!(auth.verify(&flipped), Err(DropReason::BadAuth));

    let mut bad_token = signed.clone();
    let n = bad_token.len();
    bad_token[n - 2] = if bad_token[n - 2] == b'0' { b'1' } else { b'0' };
    assert_eq!(auth.verify(&bad_token), Err(DropReason::BadAuth));

    // Upper-case hex is not what Heartbeat's strcmp accepts either.
    let upper = String::from_utf8(signed.clone()).map(|s| {
        let (body, trailer) = s.split_at(body_end);
        format!("{body}{}", trailer.to_uppercase())
    });
    if let Ok(upper) = upper {
        assert_eq!(auth.verify(upper.as_bytes()), Err(DropReason::BadAuth));
    }

    let mut classic = example_status();
    assert_eq!(
        auth.verify(&encode_classic(&classic)),
        Err(DropReason::NoAuth)
    );
    classic.push_str("auth", "1");
    assert_eq!(
        auth.verify(&encode_classic(&classic)),
        Err(DropReason::BadAuth)
    );
    classic.set_str("auth", "3 abc");
    assert_eq!(
        auth.verify(&encode_classic(&classic)),
        Err(DropReason::UnknownKey)
    );
    classic.set(
        "auth",
        Value::Bin(b"1 4bb6d22d367a3a31800a2ac21944a0410bafb143".to_vec()),
    );
    assert_eq!(
        auth.verify(&encode_classic(&classic)),
        Err(DropReason::NoAuth)
    );
}

#[test]
fn unsigned_when_active_key_missing() {
    let auth = Auth::from_keys(3, [(1, AuthMethod::Sha1, b"k".to_vec())]);
    assert!(!auth.can_sign());
    let out = auth.sign(&mut example_status());
    assert_eq!(decode(&out).unwrap().trailer, None);
    assert_eq!(auth.verify(&out), Err(DropReason::NoAuth));
}

#[test]
fn parse_auth_field_rules() {
    assert_eq!(parse_auth_field("1 abc"), Some((1, "abc")));
    assert_eq!(parse_auth_field("15 abc"), Some((15, "abc")));
    for bad in [
        "1", "16 abc", "x abc", " abc", "1 ", "1 a b", "-1 a", "123 a",
    ] {
        assert_eq!(parse_auth_field(bad), None, "{bad}");
    }
}

#[test]
fn drop_reason_names_are_unique_snake_case() {
    let names: std::collections::BTreeSet<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), DropReason::ALL.len());
    assert!(
        names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    assert_eq!(DropReason::UnknownKey.to_string(), "unknown_key");
}

#[test]
fn debug_hides_secrets() {
    let s = format!("{:?}", sha1_mysecret());
    assert!(!s.contains("mysecret"));
}

#[test]
fn precheck_passes_what_verify_accepts_and_drops_junk_without_decoding() {
    for (i, method, secret) in [
        (1u8, AuthMethod::Sha1, b"mysecret".to_vec()),
        (2, AuthMethod::Md5, b"other".to_vec()),
        (3, AuthMethod::Crc, Vec::new()),
        (12, AuthMethod::Sha256, b"k".to_vec()),
    ] {
        let a = Auth::from_keys(i, [(i, method, secret)]);
        let signed = a.sign(&mut example_status());
        assert!(a.verify(&signed).is_ok());
        assert_eq!(a.precheck(&signed), Ok(()), "{method:?}");
        let classic = a.sign_classic(&mut example_status());
        assert_eq!(a.precheck(&classic), Ok(()), "{method:?} classic");
        // One flipped token digit: the token check catches it before any decoding.
        let mut bad = signed.clone();
        let at = bad.len() - 2;
        bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
        assert_eq!(a.precheck(&bad), Err(DropReason::BadAuth), "{method:?}");
        assert_eq!(a.verify(&bad).err(), Some(DropReason::BadAuth));
    }
    let a = sha1_mysecret();
    let other_key = Auth::from_keys(2, [(2, AuthMethod::Sha1, b"x".to_vec())]);
    let wrong_index = other_key.sign(&mut example_status());
    assert_eq!(a.precheck(&wrong_index), Err(DropReason::UnknownKey));
    let wrong_secret =
        Auth::from_keys(1, [(1, AuthMethod::Sha1, b"guess".to_vec())]).sign(&mut example_status());
    assert_eq!(a.precheck(&wrong_secret), Err(DropReason::BadAuth));
    let unsigned = crate::codec::encode_netstring(&example_status());
    assert_eq!(a.precheck(&unsigned), Err(DropReason::NoAuth));
    assert_eq!(a.precheck(b"junk"), Err(DropReason::Malformed));
    assert_eq!(a.precheck(&[0u8; 60_000]), Err(DropReason::Malformed));
    assert_eq!(a.precheck(b"###\nno end"), Err(DropReason::Malformed));
    assert_eq!(
        a.precheck(&vec![b'#'; MAX_MSG + 1]),
        Err(DropReason::TooBig)
    );
    assert_eq!(a.precheck(b">>>\nt=status\n<<<\n"), Err(DropReason::NoAuth));
    assert_eq!(
        a.precheck(b">>>\nt=status\nauth=7 abc\n<<<\n"),
        Err(DropReason::UnknownKey)
    );
}
