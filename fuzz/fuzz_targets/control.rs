//! Feeds arbitrary lines to the control socket's request parser, as the daemon reads them.
#![no_main]

use ha_control::{decode_request, encode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon hands each newline-ended line, bytes as read, to `decode_request`.
    for line in data.split_inclusive(|b| *b == b'\n') {
        if let Ok(req) = decode_request(line) {
            // What parses must mean the same after a round trip (hactl writes these).
            let again = encode_request(&req).expect("a request serializes");
            assert_eq!(decode_request(&again), Ok(req));
        }
    }
});
