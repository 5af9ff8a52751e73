//! Feeds arbitrary text to the ha.cf parser (as `had` and `hactl check` read it).
#![no_main]

use std::path::Path;

use ha_config::{Diagnostics, HaCf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut diags = Diagnostics::default();
    let _ = HaCf::parse(Path::new("/etc/ha.d/ha.cf"), &text, 694, &mut diags);
    // Every diagnostic renders (file, line, caret) without panicking on odd spans.
    let _ = diags.to_string();
});
