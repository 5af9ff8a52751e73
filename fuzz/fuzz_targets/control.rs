//! Feeds arbitrary lines to the control socket's request parser, as the daemon reads them.
#![no_main]

use ha_daemon::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads UTF-8 lines; anything else ends the connection before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Ok(req) = serde_json::from_str::<Request>(line) {
            // What parses must mean the same after a round trip (hactl writes these).
            let again = serde_json::to_string(&req).expect("a request serializes");
            let back: Request = serde_json::from_str(&again).expect("a request re-parses");
            assert_eq!(back, req);
        }
    }
});
