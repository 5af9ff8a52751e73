//! Feeds arbitrary bytes to the packet decoder and to authentication.
#![no_main]

use ha_transport::auth::{Auth, AuthMethod};
use ha_transport::codec::{Framing, decode, encode_classic, encode_netstring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = decode(data) {
        // Whatever decodes must re-encode to something that decodes to the same message.
        let again = match d.framing {
            Framing::Netstring => encode_netstring(&d.msg),
            Framing::Classic => encode_classic(&d.msg),
        };
        let back = decode(&again).map(|d| d.msg);
        assert_eq!(back.as_ref(), Ok(&d.msg));
    }
    let auth = Auth::from_keys(
        1,
        [
            (1, AuthMethod::Sha1, b"secret".to_vec()),
            (2, AuthMethod::Crc, Vec::new()),
        ],
    );
    let _ = auth.verify(data);
});
