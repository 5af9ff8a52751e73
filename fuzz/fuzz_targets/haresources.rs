//! Feeds arbitrary text to the haresources parser, with and without the node list.
#![no_main]

use std::path::Path;

use ha_config::{Diagnostics, Haresources, NodeName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let nodes = [NodeName::new("node1"), NodeName::new("node2")];
    for known in [&nodes[..], &[]] {
        let mut diags = Diagnostics::default();
        let _ = Haresources::parse(Path::new("/etc/ha.d/haresources"), &text, known, &mut diags);
        // Every diagnostic renders (file, line, caret) without panicking on odd spans.
        let _ = diags.to_string();
    }
});
