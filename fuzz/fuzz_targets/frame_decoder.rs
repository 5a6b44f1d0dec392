//! Fuzzes the DWCP frame decoder: any input yields a frame, "need more bytes" or an error,
//! never a panic; a decoded frame re-encodes to exactly the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use novacron_dwcp::frame;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((f, used))) = frame::decode(rest) {
        let again = frame::encode(
            f.header.kind,
            f.header.flags,
            f.header.channel,
            f.header.seq,
            &f.payload,
        );
        assert_eq!(
            &again[..],
            &rest[..used],
            "decoded frame does not re-encode to its bytes"
        );
        rest = &rest[used..];
    }
});
