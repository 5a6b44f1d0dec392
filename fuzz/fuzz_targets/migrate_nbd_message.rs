//! Fuzzes the NBD-over-DWCP proxy's message format (crates/migrate/src/nbd.rs): one tag byte
//! (stored or zstd) and the bytes of the NBD conversation, from the peer agent. Property: no
//! panic and no output over the proxy's message limit for arbitrary messages; any bytes
//! encoded at any level decode to themselves.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use novacron_migrate::nbd::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let _ = decode(&Bytes::copy_from_slice(data));
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let level = match ctl % 4 {
        0 => None,
        n => Some(n as i32),
    };
    // Repeat the input so compression is actually chosen for some of them.
    let payload: Vec<u8> = if ctl & 0x80 != 0 {
        rest.iter().cycle().take(rest.len() * 64).copied().collect()
    } else {
        rest.to_vec()
    };
    let msg = encode(&payload, level);
    let back = decode(&Bytes::from(msg)).expect("own message decodes");
    assert!(back[..] == payload[..], "round trip changed the bytes");
});
