use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::codec::{decode, encode_classic, encode_netstring};

fn msg(t: &str, fields: &[(&str, &str)]) -> codec::Message {
    let mut m = codec::Message::with_type(t);
    for (k, v) in fields {
        m.push_str(k, *v);
    }
    m
}

/// Decodes `m` after a trip through both real framings, checking both agree.
fn through_wire(m: &codec::Message) -> Result<Message, MessageError> {
    let ns = decode(&encode_netstring(m)).unwrap().msg;
    let classic = decode(&encode_classic(m)).unwrap().msg;
    let a = Message::decode(&ns);
    assert_eq!(a, Message::decode(&classic), "framings disagree on {m:?}");
    a
}

#[test]
fn every_known_type_round_trips_through_the_codec() {
    let report = PeerReport {
        rsc_hold: HoldSet::Local,
        stable: false,
        hold: Some(BTreeSet::from(["10.0.0.1".to_string()])),
        refuse: BTreeSet::from(["web".to_string()]),
        want: BTreeSet::new(),
        standby: BTreeSet::from(["web".to_string()]),
        ping: Some(2),
        prio: BTreeMap::from([("10.0.0.1".to_string(), 80)]),
        info: Some("mach_down".into()),
    };
    let cases: Vec<(codec::Message, Message)> = vec![
        (
            msg("status", &[("st", "active"), ("dt", "2710")]),
            Message::Status {
                st: Some(NodeStatus::Active),
                dt: Some(Millis(10_000)),
            },
        ),
        (
            report.to_message(),
            Message::Resource {
                report: report.clone(),
                partial: false,
            },
        ),
        (
            msg(
                "ask_resources",
                &[("rsc_hold", "foreign"), ("info", "other")],
            ),
            Message::AskResources {
                set: HoldSet::Foreign,
                info: AskInfo::Other,
            },
        ),
        (
            msg("hb_takeover", &[("rsc_hold", "failback")]),
            Message::HbTakeover { set: HoldSet::All },
        ),
        (msg("shutdone", &[("st", "dead")]), Message::Shutdone),
        (msg("starting", &[]), Message::Starting),
        (
            msg("ip-request", &[("ipaddr", "10.0.0.1")]),
            Message::IpRequest {
                key: "10.0.0.1".into(),
            },
        ),
        (
            msg(
                "ip-request-resp",
                &[
                    ("dest", "Alpha"),
                    ("ipaddr", "10.0.0.1"),
                    ("weown", "yes"),
                    ("ok", "OK"),
                ],
            ),
            Message::IpRequestResp {
                key: "10.0.0.1".into(),
                dest: "alpha".into(),
                weown: true,
                ok: true,
            },
        ),
        (
            msg("NS_rexmit", &[("firstseq", "10"), ("lastseq", " 12 ")]),
            Message::NsRexmit {
                first: Seq(10),
                last: Seq(12),
            },
        ),
        (
            msg(
                "NS_nak_rexmit",
                &[("firstseq", "1f"), ("info", "seqno too low")],
            ),
            Message::NsNakRexmit { first: Seq(0x1f) },
        ),
        (msg("NS_ackmsg", &[("ackseq", "3")]), Message::NsAckmsg),
        (msg("reqnodes", &[]), Message::Reqnodes),
        (
            msg(
                "repnodes",
                &[("nodelist", "alpha beta "), ("delnodelist", " ")],
            ),
            Message::Repnodes,
        ),
    ];
    assert_eq!(cases.len(), MessageType::KNOWN.len());
    for (wire, want) in cases {
        let got = through_wire(&wire).unwrap();
        assert_eq!(got, want);
        assert_eq!(Some(got.message_type()), MessageType::of(&wire));
    }
}

#[test]
fn type_names_round_trip_and_unknown_ones_are_other() {
    for t in MessageType::KNOWN {
        assert_eq!(MessageType::from_name(t.as_str()), t);
        assert_eq!(t.message().msg_type(), Some(t.as_str()));
    }
    assert_eq!(
        MessageType::from_name("Status"),
        MessageType::Other { unsequenced: false }
    );
    assert_eq!(
        through_wire(&msg("hbapi-clstat", &[("x", "1")])),
        Ok(Message::Other("hbapi-clstat".into()))
    );
    // An unknown NS_ type still travels without a seq.
    let t = MessageType::from_name("NS_whatever");
    assert_eq!(t, MessageType::Other { unsequenced: true });
    assert!(t.is_unsequenced());
    assert_eq!(
        through_wire(&msg("NS_whatever", &[])).map(|m| m.message_type()),
        Ok(t)
    );
    let sequenced: Vec<_> = MessageType::KNOWN
        .into_iter()
        .filter(|t| !t.is_unsequenced())
        .collect();
    assert_eq!(sequenced.len(), 10);
}

#[test]
fn a_message_without_a_type_is_rejected() {
    let mut m = codec::Message::new();
    m.push_str("src", "alpha");
    assert_eq!(Message::decode(&m), Err(MessageError::NoType));
    assert_eq!(MessageType::of(&m), None);
}

#[test]
fn missing_fields_are_rejected_and_named() {
    let missing = |t, field| Err(MessageError::Missing { t, field });
    use MessageType as T;
    assert_eq!(
        through_wire(&msg("resource", &[("rtype", "full")])),
        missing(T::Resource, "rsc_hold")
    );
    assert_eq!(
        through_wire(&msg("ask_resources", &[("rsc_hold", "all")])),
        missing(T::AskResources, "info")
    );
    assert_eq!(
        through_wire(&msg("hb_takeover", &[])),
        missing(T::HbTakeover, "rsc_hold")
    );
    assert_eq!(
        through_wire(&msg("ip-request", &[])),
        missing(T::IpRequest, "ipaddr")
    );
    assert_eq!(
        through_wire(&msg("ip-request-resp", &[("ipaddr", "10.0.0.1")])),
        missing(T::IpRequestResp, "dest")
    );
    assert_eq!(
        through_wire(&msg("NS_rexmit", &[("firstseq", "1")])),
        missing(T::NsRexmit, "lastseq")
    );
    assert_eq!(
        through_wire(&msg("NS_nak_rexmit", &[])),
        missing(T::NsNakRexmit, "firstseq")
    );
    let e = through_wire(&msg("hb_takeover", &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`hb_takeover` message without its `rsc_hold` field"
    );
}

#[test]
fn defaults_apply_where_heartbeat_has_them() {
    // A missing set in ask_resources is `all`; status fields are optional.
    assert_eq!(
        through_wire(&msg("ask_resources", &[("info", "me")])),
        Ok(Message::AskResources {
            set: HoldSet::All,
            info: AskInfo::Me
        })
    );
    assert_eq!(
        through_wire(&msg("status", &[("st", "sleepy"), ("dt", "0")])),
        Ok(Message::Status { st: None, dt: None })
    );
    // A resource report without rtype=full is partial.
    assert!(matches!(
        through_wire(&msg(
            "resource",
            &[("rsc_hold", "none"), ("info", "mach_down")]
        )),
        Ok(Message::Resource { partial: true, .. })
    ));
}

#[test]
fn invalid_and_oversized_fields_are_rejected() {
    let invalid = |t, field| Err(MessageError::Invalid { t, field });
    use MessageType as T;
    assert_eq!(
        through_wire(&msg("resource", &[("rsc_hold", "most")])),
        invalid(T::Resource, "rsc_hold")
    );
    assert_eq!(
        through_wire(&msg("ask_resources", &[("info", "maybe")])),
        invalid(T::AskResources, "info")
    );
    assert_eq!(
        through_wire(&msg("hb_takeover", &[("rsc_hold", "mine")])),
        invalid(T::HbTakeover, "rsc_hold")
    );
    // 17 hex digits cannot be a u64 Heartbeat wrote, even with leading zeros.
    assert_eq!(
        through_wire(&msg("NS_nak_rexmit", &[("firstseq", "0000000000000001f")])),
        invalid(T::NsNakRexmit, "firstseq")
    );
    // One past u64::MAX in decimal.
    assert_eq!(
        through_wire(&msg(
            "NS_rexmit",
            &[("firstseq", "18446744073709551616"), ("lastseq", "1")]
        )),
        invalid(T::NsRexmit, "firstseq")
    );
    assert_eq!(
        through_wire(&msg("NS_rexmit", &[("firstseq", "1"), ("lastseq", "0x2")])),
        invalid(T::NsRexmit, "lastseq")
    );
    // An oversized dt is no deadtime rather than a wrapped one.
    assert_eq!(
        through_wire(&msg("status", &[("dt", "1ffffffffffffffff")])),
        Ok(Message::Status { st: None, dt: None })
    );
}

#[test]
fn newtypes_read_and_write_heartbeat_numbers() {
    assert_eq!(Seq::from_hex(" 1f "), Some(Seq(0x1f)));
    assert_eq!(Seq::from_hex("ffffffffffffffff"), Some(Seq(u64::MAX)));
    assert_eq!(Seq::from_hex("10000000000000000"), None);
    assert_eq!(Seq::from_hex(""), None);
    assert_eq!(Seq::from_hex("g"), None);
    assert_eq!(Seq::from_decimal("31"), Some(Seq(31)));
    assert_eq!(Seq(0x1f).to_hex(), "1f");
    assert_eq!(Generation::from_hex("a"), Some(Generation(10)));
    assert_eq!(Generation(10).to_hex(), "a");
    assert_eq!(Millis::from_hex("2710"), Some(Millis(10_000)));
    assert_eq!(Millis(10_000).to_hex(), "2710");
    for n in [1, 0x1f, u64::MAX] {
        assert_eq!(Seq::from_hex(&Seq(n).to_hex()), Some(Seq(n)));
    }
    // A message's own seq starts at 1; its generation may be anything parseable.
    let m = msg("status", &[("seq", "0"), ("hg", "5")]);
    assert_eq!(Seq::of(&m), None);
    assert_eq!(Generation::of(&m), Some(Generation(5)));
    let m = msg("status", &[("seq", "2a")]);
    assert_eq!(Seq::of(&m), Some(Seq(42)));
    assert_eq!(Generation::of(&m), None);
}
