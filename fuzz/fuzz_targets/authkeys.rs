//! Feeds arbitrary text to the authkeys parser.
#![no_main]

use std::path::Path;

use ha_config::{Authkeys, Diagnostics};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut diags = Diagnostics::default();
    let _ = Authkeys::parse(Path::new("/etc/ha.d/authkeys"), &text, &mut diags);
    // Every diagnostic renders (file, line, caret) without panicking on odd spans.
    let _ = diags.to_string();
});
