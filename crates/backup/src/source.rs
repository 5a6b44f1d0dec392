//! What a backup reads: a disk as a random-access byte source (a raw file, a point-in-time
//! NBD export of a running VM, …) and the map of regions written since the parent backup.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{BackupError, Result};

/// A disk's bytes at one point in time. Called from blocking worker threads.
pub trait DiskSource: Send + Sync {
    /// Virtual size of the disk.
    fn size_bytes(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (the range is within the disk).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

/// A raw image file or block device.
pub struct FileSource {
    path: PathBuf,
    file: std::fs::File,
    size_bytes: u64,
}

impl FileSource {
    /// Opens a raw image read-only.
    pub fn open(path: &Path) -> Result<FileSource> {
        let file = std::fs::File::open(path).map_err(|e| BackupError::io(path, e))?;
        let size_bytes = {
            use std::io::Seek;
            let mut f = &file;
            f.seek(std::io::SeekFrom::End(0))
                .map_err(|e| BackupError::io(path, e))?
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            file,
            size_bytes,
        })
    }
    /// The path it reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DiskSource for FileSource {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

/// Regions of a disk written since a point in time, at `granularity_bytes` (QEMU's dirty
/// bitmaps default to 64 KiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyMap {
    granularity_bytes: u64,
    size_bytes: u64,
    bits: Vec<u64>,
}

impl DirtyMap {
    /// An all-clean map.
    pub fn new(size_bytes: u64, granularity_bytes: u64) -> Result<DirtyMap> {
        if granularity_bytes == 0 || !granularity_bytes.is_power_of_two() {
            return Err(BackupError::InvalidArgument(format!(
                "dirty map granularity {granularity_bytes} is not a power of two"
            )));
        }
        let n = size_bytes.div_ceil(granularity_bytes);
        Ok(DirtyMap {
            granularity_bytes,
            size_bytes,
            bits: vec![0; n.div_ceil(64) as usize],
        })
    }

    pub fn granularity_bytes(&self) -> u64 {
        self.granularity_bytes
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Marks `[offset, offset + len)` dirty (clipped to the disk).
    pub fn mark(&mut self, offset: u64, len: u64) {
        if len == 0 || offset >= self.size_bytes {
            return;
        }
        let end = (offset.saturating_add(len)).min(self.size_bytes);
        let first = offset / self.granularity_bytes;
        let last = (end - 1) / self.granularity_bytes;
        for b in first..=last {
            self.bits[(b / 64) as usize] |= 1 << (b % 64);
        }
    }

    /// Whether any byte of `[offset, offset + len)` is dirty.
    pub fn is_dirty(&self, offset: u64, len: u64) -> bool {
        if len == 0 || offset >= self.size_bytes {
            return false;
        }
        let end = (offset.saturating_add(len)).min(self.size_bytes);
        let first = offset / self.granularity_bytes;
        let last = (end - 1) / self.granularity_bytes;
        (first..=last).any(|b| self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0)
    }

    /// Bytes covered by dirty bits.
    pub fn dirty_bytes(&self) -> u64 {
        let n: u64 = self.bits.iter().map(|w| w.count_ones() as u64).sum();
        (n * self.granularity_bytes).min(self.size_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_map() {
        let mut m = DirtyMap::new(1 << 20, 65536).unwrap();
        assert!(!m.is_dirty(0, 1 << 20));
        m.mark(70_000, 10);
        assert!(m.is_dirty(65536, 65536));
        assert!(!m.is_dirty(0, 65536));
        assert!(m.is_dirty(0, 65537));
        assert!(!m.is_dirty(131072, 1 << 20));
        assert_eq!(m.dirty_bytes(), 65536);
        m.mark(1 << 30, 5);
        assert_eq!(m.dirty_bytes(), 65536);
        assert!(DirtyMap::new(10, 3).is_err());
    }
}
