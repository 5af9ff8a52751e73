//! Feeds arbitrary text to the drill scenario parser.
#![no_main]

use std::path::Path;

use ha_drill::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(diags) = Scenario::parse(Path::new("drill.toml"), &text) {
        // Every diagnostic renders (file, line, caret) without panicking on odd spans.
        let _ = diags.to_string();
    }
});
