//! Feeds arbitrary argument lists (NUL-separated) to `cl_status`, answering from the daemon
//! snapshot its unit tests use.
#![no_main]
#![allow(dead_code)]

#[path = "../../crates/hactl/src/client.rs"]
mod client;
#[path = "../../crates/hactl/src/cl_status.rs"]
mod cl_status;
#[path = "../../crates/hactl/src/cl_status/fixture.rs"]
mod fixture;

use cl_status::run;
use fixture::{Fixed, snap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut daemon = Fixed {
        snap: Some(snap(true, "up")),
    };
    let _ = run(&args, &mut daemon);
});
