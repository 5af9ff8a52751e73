//! `cl_status hbparameter`: an ha.cf value the way Heartbeat's API returns it: the text as
//! written in ha.cf, else Heartbeat's built-in default text, else nothing.

use ha_config::HaCf;

/// Heartbeat 3.0.6's default text for parameters a script is likely to ask about.
const DEFAULTS: &[(&str, &str)] = &[
    ("keepalive", "1000ms"),
    ("deadtime", "30000ms"),
    ("udpport", "694"),
    ("auto_failback", "legacy"),
    ("baud", "19200"),
    ("hopfudge", "1"),
    ("realtime", "true"),
    ("debug", "0"),
    ("msgfmt", "classic"),
    ("max_rexmit_delay", "250"),
    ("hbgenmethod", "file"),
    ("uuidfrom", "file"),
    ("cluster", "linux-ha"),
    ("autojoin", "none"),
    ("pacemaker", "false"),
    ("crm", "false"),
];

/// The value of `name`, or `None` when it is neither set nor has a default (exit 1 in
/// `cl_status`). `hbversion` gives had's version.
pub fn hb_parameter(cf: &HaCf, name: &str) -> Option<String> {
    if name == "hbversion" {
        return Some(env!("CARGO_PKG_VERSION").to_string());
    }
    // The last line wins, as a later directive overrides an earlier one in Heartbeat.
    if let Some((_, v)) = cf.raw.iter().rev().find(|(d, _)| d == name) {
        return Some(v.clone());
    }
    match name {
        // Derived defaults (ha.cf(5)): warntime is half the deadtime, initdead follows
        // deadtime; shown in ms as Heartbeat prints computed times.
        "warntime" => Some(format!("{}ms", cf.deadtime.as_millis() / 2)),
        "initdead" => Some(format!("{}ms", cf.initdead.as_millis())),
        _ => DEFAULTS
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_value_then_default_then_none() {
        let mut cf = HaCf::default();
        cf.raw.push(("deadtime".into(), "30".into()));
        assert_eq!(hb_parameter(&cf, "deadtime").as_deref(), Some("30"));
        assert_eq!(hb_parameter(&cf, "keepalive").as_deref(), Some("1000ms"));
        assert_eq!(hb_parameter(&cf, "no_such_thing"), None);
        assert!(hb_parameter(&cf, "hbversion").is_some());
    }
}
