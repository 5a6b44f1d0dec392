//! Content the destination already holds (blocks of base images both sites store), so guest
//! pages equal to such a block travel as a short reference instead of 4 KiB.
//!
//! The destination fingerprints every non-zero 4 KiB block of its base image files
//! ([`index_files`]) and announces the fingerprints; the source looks each page up
//! ([`BaseIndex::lookup`]); the destination reads referenced blocks back from the files
//! ([`BaseFiles::read_block`]). Only the index (24 bytes per block) stays in memory, never
//! the image. A guest's page cache of its disk is made of exactly such blocks.
//!
//! Files must hold the bytes the guest sees (raw images). A file that changes during the
//! migration makes the rebuilt stream differ from QEMU's, which the end-of-stream hash
//! catches: the migration fails and the VM stays on the source.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use novacron_dwcp::hde::{FINGERPRINT_BYTES, Fingerprint};

use crate::error::WireError;
use crate::qevm::PAGE_BYTES;
use crate::wire::{get_varint, put_varint};

const ANNOUNCE_VERSION: u8 = 1;
/// Fingerprints per announcement message.
const ENTRIES_PER_MESSAGE: usize = 1 << 20;

/// Where a block lives: (file index, block number).
type Location = (u32, u64);

/// The source's view: fingerprints the destination announced.
#[derive(Debug, Default)]
pub struct BaseIndex {
    map: HashMap<Fingerprint, Location>,
}

impl BaseIndex {
    /// An empty index.
    pub fn new() -> BaseIndex {
        BaseIndex::default()
    }

    /// Builds an index from one announcement message.
    pub fn from_announcement(msgs: &[Vec<u8>]) -> Result<BaseIndex, WireError> {
        let mut i = BaseIndex::new();
        for m in msgs {
            i.add_announcement(m)?;
        }
        Ok(i)
    }

    /// Adds the fingerprints of one announcement message.
    pub fn add_announcement(&mut self, msg: &[u8]) -> Result<(), WireError> {
        let mut pos = 0;
        if msg.first() != Some(&ANNOUNCE_VERSION) {
            return Err(WireError::Corrupt("base announcement version"));
        }
        pos += 1;
        let file = u32::try_from(get_varint(msg, &mut pos)?)
            .map_err(|_| WireError::Corrupt("base file index"))?;
        let count = get_varint(msg, &mut pos)?;
        // Each entry takes at least 17 bytes: refuse counts that cannot be true.
        if count > (msg.len() / (FINGERPRINT_BYTES + 1)) as u64 {
            return Err(WireError::Corrupt("base announcement count"));
        }
        self.map.reserve(count as usize);
        let mut block = 0u64;
        for _ in 0..count {
            let delta = get_varint(msg, &mut pos)?;
            block = block
                .checked_add(delta)
                .ok_or(WireError::Corrupt("base block number"))?;
            let end = pos + FINGERPRINT_BYTES;
            let fp = msg.get(pos..end).ok_or(WireError::Truncated)?;
            pos = end;
            let mut a = [0u8; FINGERPRINT_BYTES];
            a.copy_from_slice(fp);
            self.map.entry(Fingerprint(a)).or_insert((file, block));
        }
        if pos != msg.len() {
            return Err(WireError::Corrupt("trailing bytes in base announcement"));
        }
        Ok(())
    }

    /// Where the destination holds content with this fingerprint.
    pub fn lookup(&self, fp: &Fingerprint) -> Option<Location> {
        self.map.get(fp).copied()
    }

    /// Distinct blocks known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing was announced.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The destination's view: fingerprints of its files, to announce.
#[derive(Debug, Default)]
pub struct BaseImageIndex {
    files: Vec<(PathBuf, Vec<(u64, Fingerprint)>)>,
}

impl BaseImageIndex {
    /// Non-zero blocks indexed, over all files.
    pub fn blocks(&self) -> usize {
        self.files.iter().map(|f| f.1.len()).sum()
    }

    /// The announcement messages (to [`BaseIndex::add_announcement`] on the source).
    pub fn announcement(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (i, (_, blocks)) in self.files.iter().enumerate() {
            for chunk in blocks.chunks(ENTRIES_PER_MESSAGE) {
                let mut m = Vec::with_capacity(16 + chunk.len() * (FINGERPRINT_BYTES + 3));
                m.push(ANNOUNCE_VERSION);
                put_varint(&mut m, i as u64);
                put_varint(&mut m, chunk.len() as u64);
                let mut prev = 0u64;
                for (block, fp) in chunk {
                    put_varint(&mut m, block - prev);
                    prev = *block;
                    m.extend_from_slice(&fp.0);
                }
                out.push(m);
            }
        }
        out
    }
}

/// Open base files on the destination, to read referenced blocks.
#[derive(Debug)]
pub struct BaseFiles {
    files: Vec<File>,
}

impl BaseFiles {
    /// Reads block `block` of file `file` into `out` (4096 bytes).
    pub fn read_block(&self, file: u64, block: u64, out: &mut [u8]) -> Result<(), WireError> {
        let f = usize::try_from(file)
            .ok()
            .and_then(|i| self.files.get(i))
            .ok_or(WireError::Corrupt("reference to an unknown base file"))?;
        let at = block
            .checked_mul(PAGE_BYTES as u64)
            .ok_or(WireError::Corrupt("base block number"))?;
        f.read_exact_at(out, at).map_err(WireError::BaseRead)
    }
}

/// Fingerprints every non-zero 4 KiB block of `paths` (raw images) and opens them for reading.
/// Blocking: run it on a blocking thread. Costs one read of each file (BLAKE3 ≈ 2.5 GB/s).
pub fn index_files(paths: &[PathBuf]) -> Result<(BaseImageIndex, BaseFiles), std::io::Error> {
    let mut index = BaseImageIndex::default();
    let mut files = Vec::new();
    for p in paths {
        let (blocks, f) = index_file(p)?;
        index.files.push((p.clone(), blocks));
        files.push(f);
    }
    Ok((index, BaseFiles { files }))
}

fn index_file(path: &Path) -> Result<(Vec<(u64, Fingerprint)>, File), std::io::Error> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut blocks = Vec::with_capacity((len / PAGE_BYTES as u64) as usize / 2);
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0u64;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        // Only whole blocks: a guest page is never a partial block.
        let whole = n / PAGE_BYTES * PAGE_BYTES;
        if whole == 0 {
            break;
        }
        f.read_exact_at(&mut buf[..whole], at)?;
        for (i, b) in buf[..whole].chunks_exact(PAGE_BYTES).enumerate() {
            if b.iter().any(|x| *x != 0) {
                blocks.push((at / PAGE_BYTES as u64 + i as u64, Fingerprint::of(b)));
            }
        }
        at += whole as u64;
    }
    Ok((blocks, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_round_trip_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.raw");
        let mut data = vec![0u8; 10 * PAGE_BYTES + 100];
        crate::util::fill_pseudo_random(&mut data[3 * PAGE_BYTES..8 * PAGE_BYTES], 9);
        std::fs::write(&a, &data).unwrap();
        let (idx, files) = index_files(&[a]).unwrap();
        assert_eq!(
            idx.blocks(),
            5,
            "zero blocks and the partial tail are not indexed"
        );
        let src = BaseIndex::from_announcement(&idx.announcement()).unwrap();
        let page = &data[5 * PAGE_BYTES..6 * PAGE_BYTES];
        let (file, block) = src.lookup(&Fingerprint::of(page)).unwrap();
        assert_eq!((file, block), (0, 5));
        let mut back = vec![0u8; PAGE_BYTES];
        files.read_block(0, block, &mut back).unwrap();
        assert_eq!(back, page);
        assert!(files.read_block(3, 0, &mut back).is_err());
        assert!(files.read_block(0, 1 << 60, &mut back).is_err());
    }

    proptest::proptest! {
        #[test]
        fn garbage_announcements_never_panic(m in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..500)) {
            let mut i = BaseIndex::new();
            let _ = i.add_announcement(&m);
        }
    }
}
