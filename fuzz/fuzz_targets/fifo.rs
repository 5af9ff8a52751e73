//! Feeds arbitrary bytes to the FIFO reader, in two chunks split at the first byte's value
//! (a script's write may arrive in pieces), and every message to the command mapping.
#![no_main]

use ha_daemon::fifo::{Parser, command_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut p = Parser::default();
    let mut msgs = p.feed(&data[..cut]);
    msgs.extend(p.feed(&data[cut..]));
    for m in &msgs {
        let _ = command_of(m);
    }
});
