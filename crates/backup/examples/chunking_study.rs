//! Chunking study behind the repository's chunk size: fixed 64 KiB … 4 MiB versus
//! content-defined chunking (gear hash, 256 KiB / 1 MiB / 4 MiB), on the benchmark's Debian
//! image, after the benchmark's 1 % file-system change and after 1 % uniformly random 4 KiB
//! writes. Run as root: `cargo run --release -p novacron-backup --example chunking_study -- 2G /work/scratch/study`.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use novacron_backup::bench::image::{
    Rng, apply_change, block_hashes, build_image, dirty_map_from_hashes,
};

enum Scheme {
    Fixed(usize),
    Cdc {
        min: usize,
        avg_bits: u32,
        max: usize,
    },
}

fn name(s: &Scheme) -> String {
    match s {
        Scheme::Fixed(n) => format!("fixed {} KiB", n >> 10),
        Scheme::Cdc { avg_bits, .. } => format!("CDC avg {} KiB", (1usize << avg_bits) >> 10),
    }
}

fn gear() -> [u64; 256] {
    let mut r = Rng::new(0x6765_6172);
    let mut g = [0u64; 256];
    g.iter_mut().for_each(|x| *x = r.next_u64());
    g
}

/// Chunk boundaries of `data` (lengths), streaming over the whole image.
fn cut(data: &[u8], s: &Scheme, g: &[u64; 256]) -> Vec<usize> {
    match *s {
        Scheme::Fixed(n) => data.chunks(n).map(|c| c.len()).collect(),
        Scheme::Cdc { min, avg_bits, max } => {
            let mask = ((1u64 << avg_bits) - 1) << (64 - avg_bits);
            let mut out = Vec::new();
            let mut start = 0;
            while start < data.len() {
                let end = (start + max).min(data.len());
                let mut i = (start + min).min(end);
                let mut h = 0u64;
                let mut cutp = end;
                while i < end {
                    h = (h << 1).wrapping_add(g[data[i] as usize]);
                    if h & mask == 0 {
                        cutp = i + 1;
                        break;
                    }
                    i += 1;
                }
                out.push(cutp - start);
                start = cutp;
            }
            out
        }
    }
}

struct Pass {
    ids: Vec<[u8; 32]>,
    lens: Vec<usize>,
    secs: f64,
}

fn pass(data: &[u8], s: &Scheme, g: &[u64; 256]) -> Pass {
    let t = Instant::now();
    let lens = cut(data, s, g);
    let mut ids = Vec::with_capacity(lens.len());
    let mut off = 0;
    for l in &lens {
        ids.push(*blake3::hash(&data[off..off + l]).as_bytes());
        off += l;
    }
    Pass {
        ids,
        lens,
        secs: t.elapsed().as_secs_f64(),
    }
}

/// zstd-1 size of the chunks of `p` whose id is not in `have` (deduplicated); adds them.
fn stored(data: &[u8], p: &Pass, have: &mut HashSet<[u8; 32]>) -> (u64, u64) {
    let mut off = 0;
    let mut bytes = 0u64;
    let mut n = 0;
    for (id, l) in p.ids.iter().zip(&p.lens) {
        let c = &data[off..off + l];
        off += l;
        if c.iter().all(|&b| b == 0) || !have.insert(*id) {
            continue;
        }
        let z = zstd::bulk::compress(c, 1).unwrap().len().min(c.len());
        bytes += z as u64;
        n += 1;
    }
    (bytes, n)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size: u64 = args.get(1).map(|s| parse_size(s)).unwrap_or(2 << 30);
    let dir = Path::new(
        args.get(2)
            .map(String::as_str)
            .unwrap_or("/work/scratch/backup/study"),
    )
    .to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base.img");
    let fsc = dir.join("fs-change.img");
    let rnd = dir.join("random4k.img");
    let content = build_image(&base, size, &dir, 1).unwrap();
    eprintln!("image built: {content:?}");
    let hb = block_hashes(&base).unwrap();
    std::fs::copy(&base, &fsc).unwrap();
    let change = apply_change(&fsc, &dir.join("mnt"), 0.01, 2).unwrap();
    eprintln!("change: {change:?}");
    std::fs::copy(&base, &rnd).unwrap();
    {
        let f = std::fs::OpenOptions::new().write(true).open(&rnd).unwrap();
        let mut r = Rng::new(3);
        let blocks = size / 4096;
        let mut b = vec![0u8; 4096];
        for _ in 0..blocks / 100 {
            r.fill(&mut b);
            f.write_all_at(&b, r.below(blocks) * 4096).unwrap();
        }
    }
    let base_d = std::fs::read(&base).unwrap();
    let g = gear();
    let schemes = [
        Scheme::Fixed(64 << 10),
        Scheme::Fixed(256 << 10),
        Scheme::Fixed(1 << 20),
        Scheme::Fixed(4 << 20),
        Scheme::Cdc {
            min: 64 << 10,
            avg_bits: 18,
            max: 1 << 20,
        },
        Scheme::Cdc {
            min: 256 << 10,
            avg_bits: 20,
            max: 4 << 20,
        },
        Scheme::Cdc {
            min: 1 << 20,
            avg_bits: 22,
            max: 8 << 20,
        },
    ];
    println!("image {} GiB: {content:?}", size >> 30);
    println!(
        "| chunking | chunk+hash MB/s (1 core) | chunks | first backup stored MiB | change | changed 4K blocks | incremental read MiB | new chunks | new stored MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut first_rows = Vec::new();
    for s in &schemes {
        let p0 = pass(&base_d, s, &g);
        let mut have = HashSet::new();
        let (b0, _) = stored(&base_d, &p0, &mut have);
        first_rows.push((p0, b0, have));
    }
    drop(base_d);
    for (label, img) in [("fs 1 %", &fsc), ("random 4K 1 %", &rnd)] {
        let ha = block_hashes(img).unwrap();
        let (map, changed) = dirty_map_from_hashes(&hb, &ha, size, 65536).unwrap();
        let d = std::fs::read(img).unwrap();
        for (s, (p0, b0, have)) in schemes.iter().zip(first_rows.iter()) {
            let mut have = have.clone();
            let p1 = pass(&d, s, &g);
            let (b1, n1) = stored(&d, &p1, &mut have);
            let read = match s {
                Scheme::Fixed(n) => {
                    (0..size.div_ceil(*n as u64))
                        .filter(|i| map.is_dirty(i * *n as u64, *n as u64))
                        .count() as u64
                        * *n as u64
                }
                Scheme::Cdc { .. } => size,
            };
            println!(
                "| {} | {:.0} | {} | {:.0} | {label} | {changed} | {:.0} | {n1} | {:.1} |",
                name(s),
                size as f64 / p0.secs / 1e6,
                p0.ids.len(),
                *b0 as f64 / 1048576.0,
                read as f64 / 1048576.0,
                b1 as f64 / 1048576.0
            );
        }
    }
    for p in [&base, &fsc, &rnd] {
        let _ = std::fs::remove_file(p);
    }
}

fn parse_size(s: &str) -> u64 {
    let (n, m) = match s.chars().last() {
        Some('G') => (&s[..s.len() - 1], 1u64 << 30),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    n.parse::<u64>().unwrap() * m
}
