//! Fuzzes the backup index payload decoder (crates/backup/src/index.rs; read from the
//! repository, i.e. from disk or S3). Two modes, chosen by the first byte:
//! - raw: arbitrary bytes; no panic, and an index that decodes re-encodes to a payload that
//!   decodes to the same index;
//! - shaped: an index built from the input is encoded (round trip must be exact), then one
//!   bit is flipped or the payload truncated: the decoder must refuse it, or return an index
//!   (a flip inside a JSON string may still be valid JSON) that survives its own round trip.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use common::Input;
use libfuzzer_sys::fuzz_target;
use novacron_backup::{
    BackupId, BackupIndex, BackupStats, BitmapRef, ChunkId, ChunkRef, DiskIndex, ReadMode,
};

fn same(a: &BackupIndex, b: &BackupIndex) -> bool {
    let (Ok(x), Ok(y)) = (serde_json::to_value(a), serde_json::to_value(b)) else {
        return false;
    };
    common::json_close(&x, &y)
        && a.disks.len() == b.disks.len()
        && a.disks
            .iter()
            .zip(&b.disks)
            .all(|(p, q)| p.chunks == q.chunks)
}

fn shaped(inp: &mut Input<'_>) -> BackupIndex {
    let mut disks = Vec::new();
    for d in 0..inp.u8() % 3 {
        let chunk_size_bytes = 1 + inp.u16() as u64;
        let size_bytes = inp.u16() as u64 * (1 + inp.u8() as u64 % 4);
        let n = DiskIndex::chunk_count(size_bytes, chunk_size_bytes);
        let chunks = (0..n)
            .map(|_| match inp.u8() {
                0 => ChunkRef::Zero,
                b => ChunkRef::Data(ChunkId([b; 32])),
            })
            .collect();
        disks.push(DiskIndex {
            name: format!("vd{d}"),
            size_bytes,
            chunk_size_bytes,
            format: "raw".into(),
            read_mode: if inp.u8() & 1 == 0 {
                ReadMode::Full {
                    reason: String::from_utf8_lossy(inp.bytes(8)).into_owned(),
                }
            } else {
                ReadMode::Incremental {
                    parent: BackupId("20261123T000000Z-ab".into()),
                }
            },
            bitmap: (inp.u8() & 1 == 1).then(|| BitmapRef {
                node: "disk0".into(),
                name: "novacron-x".into(),
                granularity_bytes: 65536,
            }),
            chunks,
        });
    }
    let mut labels = BTreeMap::new();
    labels.insert(
        "k".to_string(),
        String::from_utf8_lossy(inp.bytes(6)).into_owned(),
    );
    BackupIndex {
        id: BackupId("20261123T000000Z-0011223344556677".into()),
        vm: String::from_utf8_lossy(inp.bytes(8)).into_owned(),
        project: (inp.u8() & 1 == 1).then(|| String::from_utf8_lossy(inp.bytes(6)).into_owned()),
        created_unix_ms: inp.u64(),
        finished_unix_ms: inp.u64(),
        vm_spec: serde_json::json!({"memory_mib": inp.u16(), "name": "x"}),
        labels,
        disks,
        stats: BackupStats::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    if mode & 1 == 0 {
        if let Ok(idx) = BackupIndex::decode(inp.rest()) {
            let enc = idx.encode().expect("a decoded index encodes");
            let back = BackupIndex::decode(&enc).expect("own encoding decodes");
            assert!(same(&back, &idx), "round trip changed the index");
        }
        return;
    }
    let at = inp.u32() as usize;
    let bit = inp.u8();
    let idx = shaped(&mut inp);
    let enc = idx.encode().expect("encodes");
    let back = BackupIndex::decode(&enc).expect("valid index refused");
    assert_eq!(back, idx, "round trip changed the index");
    let mut bad = enc.clone();
    if bit & 0x80 != 0 {
        bad.truncate(at % enc.len());
    } else {
        let i = at % enc.len();
        bad[i] ^= 1 << (bit % 8);
    }
    if let Ok(other) = BackupIndex::decode(&bad) {
        // Accepted: it must be a faithful reading of the corrupted bytes.
        let again = other.encode().expect("encodes");
        let reread = BackupIndex::decode(&again).expect("own encoding decodes");
        assert!(same(&reread, &other), "corrupted index read inconsistently");
    }
});
