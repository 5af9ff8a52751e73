//! Feeds arbitrary text to the had.toml parser, checked against seed 000's haresources.
#![no_main]

use std::path::Path;

use ha_config::{Diagnostics, HadToml, Haresources, NodeName};
use libfuzzer_sys::fuzz_target;

const HARESOURCES: &str = include_str!("../../etc/seed-000/haresources");

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut diags = Diagnostics::default();
    let nodes = [NodeName::new("node1"), NodeName::new("node2")];
    let hr = Haresources::parse(Path::new("haresources"), HARESOURCES, &nodes, &mut diags);
    let mut diags = Diagnostics::default();
    let _ = HadToml::parse(Path::new("/etc/ha.d/had.toml"), &text, &hr, &mut diags);
    // Every diagnostic renders (file, line, caret) without panicking on odd spans.
    let _ = diags.to_string();
});
