//! The R1 messages had acts on, decoded once from a [`codec::Message`]'s fields into typed
//! values: the wire names of the message types live here and nowhere else, and so do the
//! rules for reading each field (hex or decimal, which defaults apply, what is malformed).
//! The envelope every message carries (`src`, `dest`, their UUIDs, `ttl`) stays with the
//! codec's field list: Liveness reads it before it knows whether the message is for us.

use std::fmt;

use crate::cluster::{AskInfo, HoldSet, PeerReport};
use crate::codec;
use crate::liveness::NodeStatus;

/// A message sequence number (`seq`, `firstseq`): hex on the wire, except in `NS_rexmit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

/// A node's generation (`hg`): bumped at each start, so older ones are replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

/// A duration in milliseconds as the wire carries it (`dt`, the sender's deadtime), hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

/// Heartbeat's hex numbers: surrounding blanks allowed, at most 16 digits (a longer one
/// cannot be a u64 Heartbeat wrote, so it is rejected rather than read modulo anything).
fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl Seq {
    /// Parses a hex `seq`-style value.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex(s).map(Self)
    }

    /// Parses `NS_rexmit`'s decimal `firstseq`/`lastseq` (Heartbeat reads those with atoi).
    pub fn from_decimal(s: &str) -> Option<Self> {
        s.trim().parse().ok().map(Self)
    }

    /// A message's own `seq`; `None` when absent, malformed or 0 (seqs start at 1).
    pub fn of(msg: &codec::Message) -> Option<Self> {
        msg.get("seq").and_then(Self::from_hex).filter(|s| s.0 > 0)
    }

    /// The wire form: lower-case hex.
    pub fn to_hex(self) -> String {
        format!("{:x}", self.0)
    }
}

impl Generation {
    /// Parses a hex `hg` value.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex(s).map(Self)
    }

    /// A message's `hg`; `None` when absent or malformed.
    pub fn of(msg: &codec::Message) -> Option<Self> {
        msg.get("hg").and_then(Self::from_hex)
    }

    /// The wire form: lower-case hex.
    pub fn to_hex(self) -> String {
        format!("{:x}", self.0)
    }
}

impl Millis {
    /// Parses a hex millisecond value.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex(s).map(Self)
    }

    /// The wire form: lower-case hex.
    pub fn to_hex(self) -> String {
        format!("{:x}", self.0)
    }
}

/// The message types had knows, by their wire name (field `t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `status`: the heartbeat itself.
    Status,
    /// `resource`: a full or partial resource report.
    Resource,
    /// `ask_resources`: a phase of the three-phase standby.
    AskResources,
    /// `hb_takeover`: the peer wants groups back.
    HbTakeover,
    /// `shutdone`: the peer released everything and stops.
    Shutdone,
    /// `starting`: the peer's daemon started.
    Starting,
    /// `ip-request`: `auto_failback legacy`'s request to release a group.
    IpRequest,
    /// `ip-request-resp`: its answer.
    IpRequestResp,
    /// `NS_rexmit`: a retransmission request.
    NsRexmit,
    /// `NS_nak_rexmit`: a retransmission refused (the seq is gone).
    NsNakRexmit,
    /// `NS_ackmsg`: flow control's acknowledgement (had keeps flow control off).
    NsAckmsg,
    /// `reqnodes`: a request for the node list.
    Reqnodes,
    /// `repnodes`: the node list.
    Repnodes,
    /// Any other type; `unsequenced` when its name starts with `NS_`, which Heartbeat sends
    /// without a `seq`.
    Other {
        /// Whether the name starts with `NS_`.
        unsequenced: bool,
    },
}

impl MessageType {
    /// Every known type, for tests and tables.
    pub const KNOWN: [MessageType; 13] = [
        Self::Status,
        Self::Resource,
        Self::AskResources,
        Self::HbTakeover,
        Self::Shutdone,
        Self::Starting,
        Self::IpRequest,
        Self::IpRequestResp,
        Self::NsRexmit,
        Self::NsNakRexmit,
        Self::NsAckmsg,
        Self::Reqnodes,
        Self::Repnodes,
    ];

    /// The type named `t`.
    pub fn from_name(t: &str) -> Self {
        match t {
            "status" => Self::Status,
            "resource" => Self::Resource,
            "ask_resources" => Self::AskResources,
            "hb_takeover" => Self::HbTakeover,
            "shutdone" => Self::Shutdone,
            "starting" => Self::Starting,
            "ip-request" => Self::IpRequest,
            "ip-request-resp" => Self::IpRequestResp,
            "NS_rexmit" => Self::NsRexmit,
            "NS_nak_rexmit" => Self::NsNakRexmit,
            "NS_ackmsg" => Self::NsAckmsg,
            "reqnodes" => Self::Reqnodes,
            "repnodes" => Self::Repnodes,
            other => Self::Other {
                unsequenced: other.starts_with("NS_"),
            },
        }
    }

    /// The type of `msg`; `None` when it has no `t`.
    pub fn of(msg: &codec::Message) -> Option<Self> {
        msg.msg_type().map(Self::from_name)
    }

    /// The wire name; `other` for an unknown type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Resource => "resource",
            Self::AskResources => "ask_resources",
            Self::HbTakeover => "hb_takeover",
            Self::Shutdone => "shutdone",
            Self::Starting => "starting",
            Self::IpRequest => "ip-request",
            Self::IpRequestResp => "ip-request-resp",
            Self::NsRexmit => "NS_rexmit",
            Self::NsNakRexmit => "NS_nak_rexmit",
            Self::NsAckmsg => "NS_ackmsg",
            Self::Reqnodes => "reqnodes",
            Self::Repnodes => "repnodes",
            Self::Other { .. } => "other",
        }
    }

    /// Whether messages of this type carry no `seq` (the `NS_` family): they are never
    /// ordered, acknowledged or retransmitted.
    pub fn is_unsequenced(self) -> bool {
        matches!(
            self,
            Self::NsRexmit | Self::NsNakRexmit | Self::NsAckmsg | Self::Other { unsequenced: true }
        )
    }

    /// An empty message of this type, to which the caller adds fields.
    pub fn message(self) -> codec::Message {
        codec::Message::with_type(self.as_str())
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded R1 message: its type and the fields had reads from it, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `status`: `st` when it names a status (else the reader assumes `up`), `dt` when
    /// present and non-zero.
    Status {
        /// The sender's status.
        st: Option<NodeStatus>,
        /// The sender's deadtime.
        dt: Option<Millis>,
    },
    /// `resource`: the report, and whether it is partial (no `rtype=full`).
    Resource {
        /// The report.
        report: PeerReport,
        /// Partial reports are OR-ed into the last full one.
        partial: bool,
    },
    /// `ask_resources`: `rsc_hold` (`all` when absent) and the phase.
    AskResources {
        /// The groups, from the point of view of the node giving them up.
        set: HoldSet,
        /// The phase.
        info: AskInfo,
    },
    /// `hb_takeover`: the groups the peer wants (its point of view; `failback` reads `all`).
    HbTakeover {
        /// The groups.
        set: HoldSet,
    },
    /// `shutdone`.
    Shutdone,
    /// `starting`.
    Starting,
    /// `ip-request ipaddr=KEY`.
    IpRequest {
        /// The group key.
        key: String,
    },
    /// `ip-request-resp`: the answer to `dest`'s request for `key`.
    IpRequestResp {
        /// The group key.
        key: String,
        /// The requester, lower-cased.
        dest: String,
        /// `weown=yes`.
        weown: bool,
        /// `ok=OK`.
        ok: bool,
    },
    /// `NS_rexmit`: resend `first..=last` (decimal on the wire).
    NsRexmit {
        /// First seq asked for.
        first: Seq,
        /// Last seq asked for.
        last: Seq,
    },
    /// `NS_nak_rexmit`: `first` cannot be resent.
    NsNakRexmit {
        /// The seq refused.
        first: Seq,
    },
    /// `NS_ackmsg`.
    NsAckmsg,
    /// `reqnodes`.
    Reqnodes,
    /// `repnodes`.
    Repnodes,
    /// A type had does not act on; the name as received (untrusted: escape it to log it).
    Other(String),
}

/// Why a message of a known type was not decoded.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// No `t` field.
    #[error("message without a type (field `t`)")]
    NoType,
    /// A field the type requires is absent.
    #[error("`{t}` message without its `{field}` field")]
    Missing {
        /// The message type.
        t: MessageType,
        /// The field.
        field: &'static str,
    },
    /// A field does not parse (an unknown word, not a number, or too many digits).
    #[error("`{t}` message with an invalid `{field}` field")]
    Invalid {
        /// The message type.
        t: MessageType,
        /// The field.
        field: &'static str,
    },
}

impl Message {
    /// Decodes `msg`'s fields for its type.
    pub fn decode(msg: &codec::Message) -> Result<Self, MessageError> {
        let raw = msg.msg_type().ok_or(MessageError::NoType)?;
        let t = MessageType::from_name(raw);
        let missing = |field| MessageError::Missing { t, field };
        let invalid = |field| MessageError::Invalid { t, field };
        let get = |field| msg.get(field).ok_or(missing(field));
        Ok(match t {
            MessageType::Status => Self::Status {
                st: msg.get("st").and_then(NodeStatus::parse),
                dt: msg.get("dt").and_then(Millis::from_hex).filter(|d| d.0 > 0),
            },
            MessageType::Resource => {
                let (report, partial) = resource(msg, t)?;
                Self::Resource { report, partial }
            }
            MessageType::AskResources => {
                // Heartbeat reads a missing set as `all`.
                let set = match msg.get("rsc_hold") {
                    None => HoldSet::All,
                    Some(s) => HoldSet::parse(s).ok_or(invalid("rsc_hold"))?,
                };
                let info = AskInfo::parse(get("info")?).ok_or(invalid("info"))?;
                Self::AskResources { set, info }
            }
            MessageType::HbTakeover => {
                // The peer's own rc.d/hb_takeover maps `failback` to nothing, so `hb_standby`
                // runs with its default, `all`: do the same.
                let set = match get("rsc_hold")? {
                    "failback" => HoldSet::All,
                    s => HoldSet::parse(s).ok_or(invalid("rsc_hold"))?,
                };
                Self::HbTakeover { set }
            }
            MessageType::Shutdone => Self::Shutdone,
            MessageType::Starting => Self::Starting,
            MessageType::IpRequest => Self::IpRequest {
                key: get("ipaddr")?.to_string(),
            },
            MessageType::IpRequestResp => Self::IpRequestResp {
                key: get("ipaddr")?.to_string(),
                dest: get("dest")?.to_ascii_lowercase(),
                weown: msg.get("weown") == Some("yes"),
                ok: msg.get("ok") == Some("OK"),
            },
            MessageType::NsRexmit => Self::NsRexmit {
                first: Seq::from_decimal(get("firstseq")?).ok_or(invalid("firstseq"))?,
                last: Seq::from_decimal(get("lastseq")?).ok_or(invalid("lastseq"))?,
            },
            MessageType::NsNakRexmit => Self::NsNakRexmit {
                first: Seq::from_hex(get("firstseq")?).ok_or(invalid("firstseq"))?,
            },
            MessageType::NsAckmsg => Self::NsAckmsg,
            MessageType::Reqnodes => Self::Reqnodes,
            MessageType::Repnodes => Self::Repnodes,
            MessageType::Other { .. } => Self::Other(raw.to_string()),
        })
    }

    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Status { .. } => MessageType::Status,
            Self::Resource { .. } => MessageType::Resource,
            Self::AskResources { .. } => MessageType::AskResources,
            Self::HbTakeover { .. } => MessageType::HbTakeover,
            Self::Shutdone => MessageType::Shutdone,
            Self::Starting => MessageType::Starting,
            Self::IpRequest { .. } => MessageType::IpRequest,
            Self::IpRequestResp { .. } => MessageType::IpRequestResp,
            Self::NsRexmit { .. } => MessageType::NsRexmit,
            Self::NsNakRexmit { .. } => MessageType::NsNakRexmit,
            Self::NsAckmsg => MessageType::NsAckmsg,
            Self::Reqnodes => MessageType::Reqnodes,
            Self::Repnodes => MessageType::Repnodes,
            Self::Other(t) => MessageType::from_name(t),
        }
    }
}

/// A `resource` report: Heartbeat's `rsc_hold`, `rtype`, `isstable`, `info`, and had's
/// exact per-group extension fields.
fn resource(m: &codec::Message, t: MessageType) -> Result<(PeerReport, bool), MessageError> {
    let field = "rsc_hold";
    let raw = m.get(field).ok_or(MessageError::Missing { t, field })?;
    let rsc_hold = HoldSet::parse(raw).ok_or(MessageError::Invalid { t, field })?;
    let partial = m.get("rtype") != Some("full");
    let stable = m.get("isstable").is_none_or(|v| v == "1");
    let split = |s: &str| s.split_whitespace().map(str::to_string).collect();
    let hold = m.get("had_hold").map(split);
    let refuse = m.get("had_refuse").map(split).unwrap_or_default();
    let want = m.get("had_want").map(split).unwrap_or_default();
    let standby = m.get("had_standby").map(split).unwrap_or_default();
    let ping = m.get("had_ping").and_then(|v| v.parse().ok());
    // `key=priority` pairs; a malformed or out-of-range pair is dropped, not trusted.
    let prio = m
        .get("had_prio")
        .map(|v| {
            v.split_whitespace()
                .filter_map(|pair| {
                    let (k, p) = pair.rsplit_once('=')?;
                    let p: u32 = p.parse().ok().filter(|p| (1..=255).contains(p))?;
                    (!k.is_empty()).then(|| (k.to_string(), p))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((
        PeerReport {
            rsc_hold,
            stable,
            hold,
            refuse,
            want,
            standby,
            ping,
            prio,
            // Only compared with known words, but kept and shown: never raw.
            info: m.get("info").map(ha_logsafe::clean),
        },
        partial,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
