//! The IPaddr/IPaddr2 argument: `ip[/netmask[/iface[:label][/broadcast]]]`, parsed purely.
//! Empty fields and a trailing `/` mean "default", as the Heartbeat wrappers treat them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{ArpConfig, SpecError};
use crate::Word;

/// Which haresources name the address was written with; both behave the same here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFlavour {
    /// `IPaddr` (and bare addresses).
    IPaddr,
    /// `IPaddr2`.
    IPaddr2,
    /// `IPv6addr` (Heartbeat's IPv6 agent; IPv6 addresses only).
    IPv6addr,
}

impl IpFlavour {
    /// The flavour for a haresources agent name, if it is one of the built-in ones.
    pub fn from_agent(agent: &str) -> Option<IpFlavour> {
        match agent {
            "IPaddr" => Some(IpFlavour::IPaddr),
            "IPaddr2" => Some(IpFlavour::IPaddr2),
            "IPv6addr" => Some(IpFlavour::IPv6addr),
            _ => None,
        }
    }

    /// The agent name.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFlavour::IPaddr => "IPaddr",
            IpFlavour::IPaddr2 => "IPaddr2",
            IpFlavour::IPv6addr => "IPv6addr",
        }
    }
}

/// A virtual IP address resource, its argument parsed.
#[derive(Debug, Clone)]
pub struct IpPlan {
    /// The resource as written (sharing the text haresources was parsed into).
    pub name: Word,
    /// The agent name it was written with.
    pub flavour: IpFlavour,
    /// The parsed argument.
    pub spec: IpSpec,
    /// The announcement burst.
    pub arp: ArpConfig,
}

impl IpPlan {
    /// Parse the haresources arguments of an IPaddr/IPaddr2 resource.
    ///
    /// `::` splits haresources arguments, so an IPv6 address may arrive in pieces;
    /// they are rejoined when the whole parses as IPv6.
    pub fn new(
        name: &str,
        flavour: IpFlavour,
        args: &[String],
        arp: ArpConfig,
    ) -> Result<IpPlan, SpecError> {
        let args: Vec<Word> = args.iter().map(Word::from).collect();
        IpPlan::from_words(&Word::from(name), flavour, &args, arp)
    }

    /// [`IpPlan::new`] of a parsed token: the plan's name and interface share its text.
    pub fn from_words(
        name: &Word,
        flavour: IpFlavour,
        args: &[Word],
        arp: ArpConfig,
    ) -> Result<IpPlan, SpecError> {
        let invalid = |reason: String| SpecError::InvalidArgs {
            resource: name.to_string(),
            reason,
        };
        let spec = match args {
            [] => {
                return Err(invalid(format!(
                    "{} needs an address argument",
                    flavour.as_str()
                )));
            }
            [one] => IpSpec::parse_word(one).map_err(|e| invalid(e.to_string()))?,
            many => match IpSpec::parse(&many.join("::")) {
                Ok(spec) if spec.addr.is_ipv6() => spec,
                _ => {
                    return Err(invalid(format!(
                        "{} takes one argument (ip/netmask/interface/broadcast), got {}",
                        flavour.as_str(),
                        many.len()
                    )));
                }
            },
        };
        if flavour == IpFlavour::IPv6addr && spec.addr.is_ipv4() {
            return Err(invalid(format!(
                "IPv6addr takes an IPv6 address, not {}; use IPaddr2 for IPv4",
                spec.addr
            )));
        }
        Ok(IpPlan {
            name: name.clone(),
            flavour,
            spec,
            arp,
        })
    }
}

/// One parsed IPaddr argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpSpec {
    /// The virtual address.
    pub addr: IpAddr,
    /// Prefix length; `None` = take it from the subnet found at start time.
    pub prefix: Option<u8>,
    /// The interface as written, with its `:label` if any (`eth0`, `eth0:1`); `None` = pick
    /// the interface whose subnet holds `addr`. One word for both, not two: the daemon keeps
    /// one of these per address (issue 14).
    pub device: Option<Word>,
    /// Explicit IPv4 broadcast; `None` = the highest address of the subnet.
    pub broadcast: Option<Ipv4Addr>,
}

/// Why an IPaddr argument cannot be used.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("bad IPaddr argument `{arg}`: {reason}")]
pub struct IpSpecError {
    /// The argument as written.
    pub arg: String,
    /// What is wrong with it, with a fix where one is likely.
    pub reason: String,
}

/// Linux's IFNAMSIZ minus the terminating NUL; labels share the limit.
const MAX_IFNAME: usize = 15;

impl IpSpec {
    /// Interface name without label.
    pub fn iface(&self) -> Option<&str> {
        let d = self.device.as_deref()?;
        Some(d.split_once(':').map_or(d, |(iface, _)| iface))
    }

    /// Full IFA_LABEL (`eth0:1`) when the interface was written with a `:label`.
    pub fn label(&self) -> Option<&str> {
        self.device.as_deref().filter(|d| d.contains(':'))
    }

    /// Parse every form Heartbeat's IPaddr/IPaddr2 wrappers accept.
    pub fn parse(arg: &str) -> Result<IpSpec, IpSpecError> {
        IpSpec::parse_word(&Word::from(arg))
    }

    /// [`IpSpec::parse`] of an argument already shared: the interface and label point into it.
    pub fn parse_word(word: &Word) -> Result<IpSpec, IpSpecError> {
        let arg = word.as_str();
        let fail = |reason: String| IpSpecError {
            arg: arg.to_owned(),
            reason,
        };
        let fields: Vec<&str> = arg.trim().split('/').collect();
        let first = fields.first().copied().unwrap_or_default();
        if first.is_empty() {
            return Err(fail("the address is missing".into()));
        }
        if let Ok(v4) = first.parse::<Ipv4Addr>() {
            parse_v4(word, v4, &fields[1..]).map_err(fail)
        } else if let Ok(v6) = first.parse::<Ipv6Addr>() {
            parse_v6(word, v6, &fields[1..]).map_err(fail)
        } else {
            Err(fail(format!("`{first}` is not an IP address")))
        }
    }
}

fn parse_v4(word: &Word, addr: Ipv4Addr, rest: &[&str]) -> Result<IpSpec, String> {
    if rest.len() > 3 {
        return Err("too many `/` fields; the form is ip/netmask/interface/broadcast".into());
    }
    let field = |i: usize| rest.get(i).copied().unwrap_or_default();
    let prefix = match field(0) {
        "" => None,
        mask => Some(parse_v4_mask(mask)?),
    };
    let mut spec = IpSpec {
        addr: IpAddr::V4(addr),
        prefix,
        device: None,
        broadcast: None,
    };
    let third = field(1);
    if third.starts_with(|c: char| c.is_ascii_digit()) {
        // Heartbeat's rule: a third field starting with a digit is the broadcast, not a NIC.
        if prefix.is_none() && third.parse::<u8>().is_ok_and(|p| p <= 32) {
            return Err(format!(
                "`{third}` in the interface position looks like a prefix length; did you mean {addr}/{third}{}?",
                rest.get(2).map(|s| format!("/{s}")).unwrap_or_default()
            ));
        }
        spec.broadcast = Some(parse_broadcast(third)?);
        if !field(2).is_empty() {
            return Err(format!(
                "`{third}` was taken as the broadcast (it starts with a digit), so `{}` has no place",
                field(2)
            ));
        }
        return Ok(spec);
    }
    if !third.is_empty() {
        parse_iface(third)?;
        spec.device = Some(word.slice(third));
    }
    match field(2) {
        "" => {}
        b => spec.broadcast = Some(parse_broadcast(b)?),
    }
    Ok(spec)
}

fn parse_v6(word: &Word, addr: Ipv6Addr, rest: &[&str]) -> Result<IpSpec, String> {
    if rest.len() > 2 {
        return Err("an IPv6 address takes at most ip/prefix/interface (no broadcast)".into());
    }
    let field = |i: usize| rest.get(i).copied().unwrap_or_default();
    let prefix = match field(0) {
        "" => None,
        p => match p.parse::<u8>() {
            Ok(n @ 1..=128) => Some(n),
            _ => return Err(format!("`{p}` is not an IPv6 prefix length (1-128)")),
        },
    };
    let iface = match field(1) {
        "" => None,
        name => match parse_iface(name)? {
            (iface, None) => Some(word.slice(iface)),
            (_, Some(_)) => return Err("IPv6 addresses cannot carry an interface label".into()),
        },
    };
    Ok(IpSpec {
        addr: IpAddr::V6(addr),
        prefix,
        device: iface,
        broadcast: None,
    })
}

/// A CIDR bit count (`24`) or a contiguous dotted mask (`255.255.255.0`).
fn parse_v4_mask(mask: &str) -> Result<u8, String> {
    if mask.contains('.') {
        let m: Ipv4Addr = mask
            .parse()
            .map_err(|_| format!("`{mask}` is not a netmask"))?;
        let bits = u32::from(m);
        let ones = bits.leading_ones();
        if bits.checked_shl(ones).unwrap_or(0) != 0 || ones == 0 {
            return Err(format!("netmask `{mask}` is not a contiguous mask"));
        }
        return u8::try_from(ones).map_err(|_| format!("`{mask}` is not a netmask"));
    }
    match mask.parse::<u8>() {
        Ok(n @ 1..=32) => Ok(n),
        _ => Err(format!(
            "`{mask}` is not a netmask (CIDR bits 1-32 or a dotted mask)"
        )),
    }
}

fn parse_broadcast(b: &str) -> Result<Ipv4Addr, String> {
    b.parse()
        .map_err(|_| format!("broadcast `{b}` is not an IPv4 address"))
}

/// `eth0` → (`eth0`, None); `eth0:1` → (`eth0`, Some(`eth0:1`)).
fn parse_iface(text: &str) -> Result<(&str, Option<&str>), String> {
    let bad = |why: &str| format!("interface `{text}` {why}");
    if text.len() > MAX_IFNAME {
        return Err(bad("is longer than 15 characters"));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    match text.split_once(':') {
        None => Ok((text, None)),
        Some(("", _)) => Err(bad("has an empty name before `:`")),
        Some((_, "")) => Err(bad("has an empty label after `:`")),
        Some((iface, _)) => Ok((iface, Some(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn spec(addr: &str, prefix: Option<u8>, iface: Option<&str>) -> IpSpec {
        IpSpec {
            addr: addr.parse().unwrap(),
            prefix,
            device: iface.map(Word::from),
            broadcast: None,
        }
    }

    #[test]
    fn bare_ip() {
        assert_eq!(
            IpSpec::parse("10.0.0.1").unwrap(),
            spec("10.0.0.1", None, None)
        );
    }

    #[test]
    fn ip_cidr() {
        assert_eq!(
            IpSpec::parse("10.0.0.1/24").unwrap(),
            spec("10.0.0.1", Some(24), None)
        );
    }

    #[test]
    fn ip_dotted_mask() {
        assert_eq!(
            IpSpec::parse("10.0.0.1/255.255.255.0").unwrap().prefix,
            Some(24)
        );
        assert_eq!(
            IpSpec::parse("10.0.0.1/255.255.255.255").unwrap().prefix,
            Some(32)
        );
        assert_eq!(
            IpSpec::parse("10.0.0.1/255.255.240.0").unwrap().prefix,
            Some(20)
        );
        assert!(IpSpec::parse("10.0.0.1/255.0.255.0").is_err());
        assert!(IpSpec::parse("10.0.0.1/0.0.0.0").is_err());
    }

    #[test]
    fn ip_cidr_iface() {
        assert_eq!(
            IpSpec::parse("10.0.0.1/24/eth0").unwrap(),
            spec("10.0.0.1", Some(24), Some("eth0"))
        );
    }

    #[test]
    fn ip_cidr_iface_label() {
        let s = IpSpec::parse("10.0.0.10/24/eth0:1").unwrap();
        assert_eq!(s.iface(), Some("eth0"));
        assert_eq!(s.label(), Some("eth0:1"));
        assert!(IpSpec::parse("10.0.0.10/24/eth0:").is_err());
        assert!(IpSpec::parse("10.0.0.10/24/:1").is_err());
    }

    #[test]
    fn ip_cidr_iface_broadcast() {
        let s = IpSpec::parse("135.9.8.7/24/eth0/135.9.8.210").unwrap();
        assert_eq!(s.addr, v4("135.9.8.7"));
        assert_eq!(s.prefix, Some(24));
        assert_eq!(s.iface(), Some("eth0"));
        assert_eq!(s.broadcast, Some("135.9.8.210".parse().unwrap()));
    }

    #[test]
    fn third_field_with_digit_is_broadcast() {
        let s = IpSpec::parse("192.0.2.10/24/192.0.2.255").unwrap();
        assert_eq!(s.iface(), None);
        assert_eq!(s.broadcast, Some("192.0.2.255".parse().unwrap()));
        assert!(IpSpec::parse("192.0.2.10/24/192.0.2.255/eth0").is_err());
        assert!(IpSpec::parse("192.0.2.10/24/1bad").is_err());
    }

    #[test]
    fn empty_fields_mean_default() {
        assert_eq!(
            IpSpec::parse("10.0.0.1//eth0").unwrap(),
            spec("10.0.0.1", None, Some("eth0"))
        );
        assert_eq!(
            IpSpec::parse("10.0.0.1/").unwrap(),
            spec("10.0.0.1", None, None)
        );
        assert_eq!(
            IpSpec::parse("10.0.0.1/24/").unwrap(),
            spec("10.0.0.1", Some(24), None)
        );
        assert_eq!(
            IpSpec::parse("10.0.0.1/24/eth0/").unwrap(),
            spec("10.0.0.1", Some(24), Some("eth0"))
        );
        assert_eq!(
            IpSpec::parse(" 10.0.0.1/24 ").unwrap(),
            spec("10.0.0.1", Some(24), None)
        );
    }

    #[test]
    fn double_slash_before_prefix_gets_a_hint() {
        let e = IpSpec::parse("10.0.0.1//24/eth0").unwrap_err();
        assert!(e.reason.contains("did you mean 10.0.0.1/24/eth0"), "{e}");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "/24",
            "10.0.0",
            "10.0.0.1/33",
            "10.0.0.1/0",
            "10.0.0.1/x",
            "10.0.0.1/24/eth0/x",
            "10.0.0.1/24/eth0/10.0.0.255/extra",
            "10.0.0.1/24/averyveryverylongname",
            "host.example",
        ] {
            assert!(IpSpec::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn ipv6_forms() {
        assert_eq!(
            IpSpec::parse("2001:db8::10/64/eth0").unwrap(),
            spec("2001:db8::10", Some(64), Some("eth0"))
        );
        assert_eq!(
            IpSpec::parse("2001:db8::10").unwrap(),
            spec("2001:db8::10", None, None)
        );
        assert!(IpSpec::parse("2001:db8::10/129").is_err());
        assert!(IpSpec::parse("2001:db8::10/64/eth0:1").is_err());
        assert!(IpSpec::parse("2001:db8::10/64/eth0/2001:db8::ff").is_err());
    }

    #[test]
    fn error_names_the_argument() {
        let e = IpSpec::parse("10.0.0.1/99").unwrap_err();
        assert_eq!(e.arg, "10.0.0.1/99");
        assert!(e.to_string().contains("`99` is not a netmask"), "{e}");
    }
}
