//! Feeds arbitrary text to the ha.cf parser (as `had` and `hactl check` read it).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use ha_config::{Diagnostics, HaCf};
use libfuzzer_sys::fuzz_target;

/// Two lab names resolve; nothing is ever asked of the system resolver (DNS would leave
/// the machine, and cost a lookup per input).
fn lab_resolver(host: &str, want_v4: bool) -> Option<IpAddr> {
    match (host, want_v4) {
        ("node1", true) => Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
        ("node2", true) => Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut diags = Diagnostics::default();
    let _ = HaCf::parse_with(
        Path::new("/etc/ha.d/ha.cf"),
        &text,
        694,
        &lab_resolver,
        &mut diags,
    );
    // Every diagnostic renders (file, line, caret) without panicking on odd spans.
    let _ = diags.to_string();
});
