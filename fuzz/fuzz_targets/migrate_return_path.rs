//! Fuzzes the post-copy return-path decoder (crates/migrate/src/postcopy.rs) with arbitrary
//! bytes in arbitrary chunkings. Property: no panic; the messages decoded and the error (if
//! any) do not depend on how the bytes were chunked; after an error nothing more is decoded;
//! page requests always name a block.
#![no_main]

use libfuzzer_sys::fuzz_target;
use novacron_migrate::postcopy::{ReturnPathDecoder, ReturnPathMessage};

fn decode(data: &[u8], chunk: usize) -> (Vec<ReturnPathMessage>, bool) {
    let mut d = ReturnPathDecoder::new();
    let mut out = Vec::new();
    let mut failed = false;
    for c in data.chunks(chunk.max(1)) {
        if d.feed(c, &mut out).is_err() {
            failed = true;
            // Once broken, later input is refused and decodes nothing.
            let n = out.len();
            assert!(d.feed(c, &mut out).is_err());
            assert_eq!(out.len(), n, "decoded after an error");
            break;
        }
    }
    for m in &out {
        if let ReturnPathMessage::RequestPages { block, .. } = m {
            assert!(!block.is_empty(), "page request without a block");
        }
    }
    (out, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, data)) = data.split_first() else {
        return;
    };
    let (whole, whole_failed) = decode(data, data.len());
    let (chunked, chunked_failed) = decode(data, 1 + seed as usize % 13);
    assert_eq!(whole_failed, chunked_failed, "error depends on chunking");
    if !whole_failed {
        assert_eq!(whole, chunked, "messages depend on chunking");
    }
});
