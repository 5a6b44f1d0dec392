//! The information floor of a migration: an estimate of the bytes any encoder must send to
//! move a guest, from two images of its RAM (QMP `pmemsave`): one taken before the migration
//! starts and one at its end.
//!
//! floor = the end image's distinct 4 KiB pages, compressed with zstd level 19 and a 128 MiB
//! long-range window (what `zstd -19 --long=27` does), plus the pages that changed between the
//! two images, compressed the same way. The second term counts every page the guest rewrote
//! during the migration once; the definition asks for the rewrites after the first pass, so
//! this is an upper bound of it (rewrites during the first pass count too).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

const PAGE: usize = 4096;

/// zstd level and window of the floor's compression (`zstd -19 --long=27`).
pub const LEVEL: i32 = 19;
pub const WINDOW_LOG: u32 = 27;

/// The floor and its parts.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Floor {
    /// `ram_compressed_bytes + rewritten_compressed_bytes`.
    pub bytes: u64,
    /// Pages in the end image.
    pub ram_pages: u64,
    /// Distinct pages among them.
    pub distinct_pages: u64,
    /// The distinct pages, compressed.
    pub ram_compressed_bytes: u64,
    /// Pages whose contents differ between the two images.
    pub rewritten_pages: u64,
    /// Those pages' contents at the end, compressed.
    pub rewritten_compressed_bytes: u64,
    /// How long computing the floor took.
    pub seconds: f64,
}

/// Counts what the encoder writes and keeps none of it.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn encoder() -> io::Result<zstd::stream::write::Encoder<'static, Count>> {
    let mut e = zstd::stream::write::Encoder::new(Count(0), LEVEL)?;
    e.long_distance_matching(true)?;
    e.window_log(WINDOW_LOG)?;
    // Both cores: level 19 compresses a few MB/s per core.
    e.multithread(2)?;
    Ok(e)
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Computes the floor from the RAM image before the migration (`start`) and at its end
/// (`end`). The images must be the same size. Setting `stop` ends it within a MiB of input,
/// with an error of kind [`io::ErrorKind::Interrupted`].
pub fn compute(start: &Path, end: &Path, stop: &AtomicBool) -> io::Result<Floor> {
    let t = Instant::now();
    let (mut s, mut e) = (File::open(start)?, File::open(end)?);
    let (s_len, e_len) = (s.metadata()?.len(), e.metadata()?.len());
    if s_len != e_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "RAM images differ in size: {} has {s_len} bytes, {} has {e_len}",
                start.display(),
                end.display()
            ),
        ));
    }
    let (mut ram, mut rewritten) = (encoder()?, encoder()?);
    let mut seen: HashSet<[u8; 16]> = HashSet::new();
    let (mut pages, mut rewritten_pages) = (0u64, 0u64);
    let (mut sb, mut eb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped before the floor was computed",
            ));
        }
        let n = read_full(&mut e, &mut eb)?;
        let m = read_full(&mut s, &mut sb[..n])?;
        if n == 0 {
            break;
        }
        if m != n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} ended early", start.display()),
            ));
        }
        for (old, new) in sb[..n].chunks(PAGE).zip(eb[..n].chunks(PAGE)) {
            pages += 1;
            let mut key = [0u8; 16];
            key.copy_from_slice(&blake3::hash(new).as_bytes()[..16]);
            if seen.insert(key) {
                ram.write_all(new)?;
            }
            if old != new {
                rewritten_pages += 1;
                rewritten.write_all(new)?;
            }
        }
    }
    let ram_bytes = ram.finish()?.0;
    let rewritten_bytes = rewritten.finish()?.0;
    Ok(Floor {
        bytes: ram_bytes + rewritten_bytes,
        ram_pages: pages,
        distinct_pages: seen.len() as u64,
        ram_compressed_bytes: ram_bytes,
        rewritten_pages,
        rewritten_compressed_bytes: rewritten_bytes,
        seconds: t.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_page(seed: u64) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        novacron_migrate::util::fill_pseudo_random(&mut p, seed);
        p
    }

    #[test]
    fn the_floor_counts_distinct_pages_once_and_rewritten_pages_again() {
        let dir = std::env::temp_dir().join(format!("nc-floor-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 256 pages: 64 zero pages, 64 copies of one random page, 128 distinct random pages.
        let mut start = Vec::new();
        start.extend(std::iter::repeat_n(0u8, 64 * PAGE));
        for _ in 0..64 {
            start.extend(random_page(1));
        }
        for i in 0..128 {
            start.extend(random_page(100 + i));
        }
        // At the end, 16 of the distinct pages were rewritten with new random contents.
        let mut end = start.clone();
        for i in 0..16 {
            let at = (128 + i * 8) * PAGE;
            end[at..at + PAGE].copy_from_slice(&random_page(5000 + i as u64));
        }
        let (s, e) = (dir.join("start"), dir.join("end"));
        std::fs::write(&s, &start).unwrap();
        std::fs::write(&e, &end).unwrap();
        let f = compute(&s, &e, &AtomicBool::new(false)).unwrap();
        assert_eq!(f.ram_pages, 256);
        assert_eq!(f.distinct_pages, 1 + 1 + 128);
        assert_eq!(f.rewritten_pages, 16);
        // Random pages do not compress: the distinct ones cost about their size, the zero and
        // repeated pages nearly nothing; the rewritten ones cost their size again.
        let distinct = 129 * PAGE as u64;
        assert!(
            f.ram_compressed_bytes > distinct * 95 / 100
                && f.ram_compressed_bytes < distinct * 105 / 100,
            "{f:?}"
        );
        let rewritten = 16 * PAGE as u64;
        assert!(
            f.rewritten_compressed_bytes > rewritten * 95 / 100
                && f.rewritten_compressed_bytes < rewritten * 105 / 100,
            "{f:?}"
        );
        assert_eq!(
            f.bytes,
            f.ram_compressed_bytes + f.rewritten_compressed_bytes
        );
        // Images of different sizes are refused.
        std::fs::write(&s, &start[..PAGE]).unwrap();
        assert!(compute(&s, &e, &AtomicBool::new(false)).is_err());
        // Ctrl-C ends it at once.
        let stopped = compute(&e, &e, &AtomicBool::new(true)).unwrap_err();
        assert_eq!(stopped.kind(), io::ErrorKind::Interrupted);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_range_matching_finds_content_repeated_off_the_page_grid() {
        // 4 MiB of random data, then the same data again starting 100 bytes in: no page
        // repeats, but the long window sees the copy.
        let dir = std::env::temp_dir().join(format!("nc-floor-lr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut a = vec![0u8; 4 << 20];
        novacron_migrate::util::fill_pseudo_random(&mut a, 9);
        let mut img = a.clone();
        img.extend_from_slice(&a[100..]);
        img.resize(8 << 20, 7);
        let p = dir.join("img");
        std::fs::write(&p, &img).unwrap();
        let f = compute(&p, &p, &AtomicBool::new(false)).unwrap();
        assert_eq!(f.distinct_pages, f.ram_pages);
        assert_eq!(f.rewritten_pages, 0);
        assert!(f.ram_compressed_bytes < (4 << 20) * 105 / 100, "{f:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
