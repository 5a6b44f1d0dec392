//! Fuzzes the repository blob format (crates/backup/src/blob.rs; chunks and indexes read
//! from disk or S3), plain and encrypted with a fixed test key. Two modes, chosen by the first
//! byte:
//! - raw: arbitrary bytes opened as chunk and index blobs, with and without keys; no panic,
//!   and nothing over the size limit is returned;
//! - shaped: data from the input is encoded (chunk or index, plain or encrypted, zstd or not)
//!   and must decode to itself; then one bit is flipped or the blob truncated: opening it
//!   (`decode_chunk` for chunks, which checks the id; `decode` for indexes) must fail or
//!   return exactly the original data.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use novacron_backup::blob::{self, BlobKind};
use novacron_backup::crypto::DataKeys;

const MAX: usize = 1 << 20;

fn keys() -> &'static DataKeys {
    static K: OnceLock<DataKeys> = OnceLock::new();
    K.get_or_init(|| {
        let mut raw = [0u8; 64];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = i as u8 ^ 0x5c;
        }
        DataKeys::from_raw_for_fuzzing(raw).expect("fixed test key")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let k = (mode & 2 != 0).then(keys);
    if mode & 1 == 0 {
        for kind in [BlobKind::Chunk, BlobKind::Index] {
            if let Ok(out) = blob::decode(kind, k, b"binding", rest.to_vec(), MAX) {
                assert!(out.len() <= MAX);
            }
        }
        return;
    }
    if rest.len() < 5 {
        return;
    }
    let (ctl, payload) = rest.split_at(5);
    let at = u32::from_le_bytes([ctl[0], ctl[1], ctl[2], ctl[3]]) as usize;
    let bit = ctl[4];
    // Repeat the payload now and then so zstd is chosen.
    let data: Vec<u8> = if mode & 4 != 0 {
        payload
            .iter()
            .cycle()
            .take(payload.len() * 16)
            .copied()
            .collect()
    } else {
        payload.to_vec()
    };
    let level = if mode & 8 != 0 { 3 } else { 1 };
    let (kind, binding) = if mode & 16 != 0 {
        (BlobKind::Index, b"20261123T000000Z-ab".to_vec())
    } else {
        (BlobKind::Chunk, blob::chunk_id(k, &data).0.to_vec())
    };
    let open = |b: Vec<u8>| match kind {
        BlobKind::Chunk => {
            let mut id = [0u8; 32];
            id.copy_from_slice(&binding);
            blob::decode_chunk(k, &novacron_backup::ChunkId(id), b, MAX)
        }
        _ => blob::decode(kind, k, &binding, b, MAX),
    };
    let enc = blob::encode(kind, k, &binding, &data, level).expect("encodes");
    let back = open(enc.clone()).expect("valid blob refused");
    assert!(back == data, "round trip changed the data");
    let mut bad = enc.clone();
    if bit & 0x80 != 0 {
        bad.truncate(at % enc.len());
    } else {
        let i = at % enc.len();
        bad[i] ^= 1 << (bit % 8);
    }
    if let Ok(out) = open(bad) {
        assert!(
            out == data,
            "corrupted blob accepted with different content"
        );
    }
});
