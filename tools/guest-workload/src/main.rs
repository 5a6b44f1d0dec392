//! Guest side of the NovaCron migration benchmark and tests. Runs inside a TCG guest:
//!
//! - a heartbeat: one `.` every `hb_interval_us` on the heartbeat serial port, so the host can
//!   time the longest gap the guest suffers during a migration;
//! - memory contents like a real server's: page cache of its disk, compressible data (text),
//!   incompressible data, duplicated pages, and new data written to its disk;
//! - text and binary-like code repeated at unaligned offsets (only long-range matching finds
//!   the repeats: no two copies share a page alignment), and page-aligned copies of the
//!   incompressible data;
//! - a workload: `idle`, `hotset` (a sparse working set whose pages get a small record rewritten
//!   continuously) or `dirty` (random full-page writes at a set rate, steady or in bursts that
//!   alternate between that rate and a fraction of it);
//! - integrity: checksums of the static memory, of the page cache and of the disk (read with
//!   O_DIRECT) before the migration and after it, plus self-checks of the hot set and the
//!   dirtied region. `V` on the heartbeat port stops the workload and prints the result.
//!
//! Output on the heartbeat port: `.` per beat, and lines starting with `#`:
//! `#READY mem=.. pc=.. disk=..`, `#AFTER mem=.. pc=.. disk=.. hot=ok dirty=ok`, `#ERR ...`.

use std::alloc::{Layout, alloc_zeroed};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;
const O_DIRECT: i32 = 0o40000;

#[derive(Clone, Debug)]
struct Config {
    hb_dev: String,
    hb_interval_us: u64,
    disk: String,
    page_cache_mib: usize,
    compressible_mib: usize,
    incompressible_mib: usize,
    duplicate_mib: usize,
    duplicate_distinct_pages: usize,
    unaligned_mib: usize,
    incompressible_copies: usize,
    disk_write_mib: usize,
    disk_write_offset_mib: usize,
    workload: String,
    hotset_mib: usize,
    hotset_spread: usize,
    hotset_bytes_per_page: usize,
    hotset_pause_us: u64,
    dirty_mib: usize,
    dirty_pages_per_sec: u64,
    burst_period_ms: u64,
    burst_low_percent: u64,
    seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hb_dev: "/dev/ttyS1".into(),
            hb_interval_us: 1000,
            disk: "/dev/vda".into(),
            page_cache_mib: 0,
            compressible_mib: 0,
            incompressible_mib: 0,
            duplicate_mib: 0,
            duplicate_distinct_pages: 64,
            unaligned_mib: 0,
            incompressible_copies: 0,
            disk_write_mib: 0,
            disk_write_offset_mib: 0,
            workload: "idle".into(),
            hotset_mib: 16,
            hotset_spread: 8,
            hotset_bytes_per_page: 64,
            hotset_pause_us: 2000,
            dirty_mib: 64,
            dirty_pages_per_sec: 0,
            burst_period_ms: 0,
            burst_low_percent: 10,
            seed: 1,
        }
    }
}

fn parse_config(text: &str) -> Result<Config, String> {
    let mut c = Config::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("bad line {line:?}"))?;
        let num = || v.trim().parse::<u64>().map_err(|e| format!("{k}: {e}"));
        match k.trim() {
            "hb_dev" => c.hb_dev = v.trim().into(),
            "hb_interval_us" => c.hb_interval_us = num()?,
            "disk" => c.disk = v.trim().into(),
            "page_cache_mib" => c.page_cache_mib = num()? as usize,
            "compressible_mib" => c.compressible_mib = num()? as usize,
            "incompressible_mib" => c.incompressible_mib = num()? as usize,
            "duplicate_mib" => c.duplicate_mib = num()? as usize,
            "duplicate_distinct_pages" => c.duplicate_distinct_pages = num()?.max(1) as usize,
            "unaligned_mib" => c.unaligned_mib = num()? as usize,
            "incompressible_copies" => c.incompressible_copies = (num()? as usize).min(8),
            "disk_write_mib" => c.disk_write_mib = num()? as usize,
            "disk_write_offset_mib" => c.disk_write_offset_mib = num()? as usize,
            "workload" => c.workload = v.trim().into(),
            "hotset_mib" => c.hotset_mib = num()? as usize,
            "hotset_spread" => c.hotset_spread = num()?.max(1) as usize,
            "hotset_bytes_per_page" => c.hotset_bytes_per_page = (num()? as usize).clamp(8, 2048),
            "hotset_pause_us" => c.hotset_pause_us = num()?,
            "dirty_mib" => c.dirty_mib = num()? as usize,
            "dirty_pages_per_sec" => c.dirty_pages_per_sec = num()?,
            "burst_period_ms" => c.burst_period_ms = num()?,
            "burst_low_percent" => c.burst_low_percent = num()?.min(100),
            "seed" => c.seed = num()?,
            other => return Err(format!("unknown key {other:?}")),
        }
    }
    Ok(c)
}

/// xorshift64*: fast enough under TCG, deterministic.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        let (chunks, tail) = buf.as_chunks_mut::<8>();
        for c in chunks {
            *c = self.next().to_le_bytes();
        }
        for b in tail {
            *b = self.next() as u8;
        }
    }
}

/// Page-aligned zeroed memory that stays mapped for the life of the program.
fn region(bytes: usize) -> &'static mut [u8] {
    if bytes == 0 {
        return &mut [];
    }
    let layout = Layout::from_size_align(bytes, PAGE).expect("valid layout");
    // SAFETY: non-zero size, valid alignment; the memory is leaked on purpose (lives until exit)
    // and handed out once as an exclusive slice.
    unsafe {
        let p = alloc_zeroed(layout);
        assert!(!p.is_null(), "out of memory allocating {bytes} bytes");
        std::slice::from_raw_parts_mut(p, bytes)
    }
}

/// A 64-bit checksum that runs fast under TCG (two multiply-rotate lanes over u64 words).
fn checksum(h: &mut (u64, u64), data: &[u8]) {
    let (chunks, tail) = data.as_chunks::<16>();
    for c in chunks {
        let a = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let b = u64::from_le_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
        h.0 = (h.0 ^ a)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
        h.1 = (h.1 ^ b)
            .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
            .rotate_left(31);
    }
    for &b in tail {
        h.0 = (h.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

fn finish(h: (u64, u64)) -> u64 {
    h.0 ^ h.1.rotate_left(17) ^ 0x5555
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "server",
    "request",
    "response",
    "timeout",
    "connection",
    "database",
    "index",
    "query",
    "cache",
    "memory",
    "thread",
    "worker",
    "error",
    "warning",
    "info",
    "debug",
    "user",
    "session",
    "token",
    "migration",
    "virtual",
    "machine",
    "network",
    "packet",
    "latency",
    "bandwidth",
    "disk",
    "block",
    "page",
    "kernel",
    "process",
    "signal",
    "event",
    "handler",
    "config",
    "value",
    "string",
    "number",
    "object",
    "array",
    "function",
    "return",
    "struct",
    "impl",
    "static",
    "GET",
    "POST",
    "/api/v1/items",
    "200",
    "404",
    "500",
    "2026-11-23T10:00:00Z",
    "{",
    "}",
];

/// Text-like data: words and punctuation from a small vocabulary (zstd ratio about 3-4).
fn fill_text(buf: &mut [u8], rng: &mut Rng) {
    let mut i = 0;
    while i < buf.len() {
        let r = rng.next();
        let w = WORDS[(r % WORDS.len() as u64) as usize].as_bytes();
        let sep: &[u8] = match (r >> 32) % 16 {
            0 => b"\n",
            1 => b", ",
            2 => b". ",
            3 => b"=",
            _ => b" ",
        };
        for &b in w.iter().chain(sep) {
            if i == buf.len() {
                break;
            }
            buf[i] = b;
            i += 1;
        }
    }
}

/// A corpus like a server's files: half text, half binary-like code (a skewed byte
/// distribution: a few opcode-like values are common, the rest random), `bytes` long.
fn corpus(bytes: usize, rng: &mut Rng) -> Vec<u8> {
    const COMMON: &[u8] = &[
        0x00, 0x48, 0x89, 0x8b, 0xe8, 0xff, 0x0f, 0x85, 0x84, 0x24, 0xc3, 0x45, 0x31, 0xc0,
    ];
    let mut c = vec![0u8; bytes];
    let half = bytes / 2;
    fill_text(&mut c[..half], rng);
    for b in &mut c[half..] {
        let r = rng.next();
        *b = if r.is_multiple_of(3) {
            (r >> 8) as u8
        } else {
            COMMON[((r >> 8) % COMMON.len() as u64) as usize]
        };
    }
    c
}

/// Fills `buf` with pieces of `src` (1-32 KiB each, from any byte offset) separated by a few
/// random bytes, so the same content recurs at offsets that never line up with a page.
fn fill_unaligned_repeats(buf: &mut [u8], src: &[u8], rng: &mut Rng) {
    let mut i = 0;
    while i < buf.len() {
        let r = rng.next();
        let len = (1024 + (r % (31 * 1024)) as usize).min(src.len());
        let from = ((r >> 20) % (src.len() - len + 1) as u64) as usize;
        let n = len.min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&src[from..from + n]);
        i += n;
        let gap = ((r >> 50) % 61 + 3) as usize;
        let end = (i + gap).min(buf.len());
        rng.fill(&mut buf[i..end]);
        i = end;
    }
}

/// Serialises writes to the heartbeat port (beats and lines).
struct Port {
    out: Mutex<File>,
}

impl Port {
    fn line(&self, s: &str) {
        let mut f = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.write_all(format!("\n{s}\n").as_bytes());
    }
    fn beat(&self) {
        let mut f = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.write_all(b".");
    }
}

struct AlignedBuf(&'static mut [u8]);

fn read_direct(path: &str, skip_from: Option<usize>) -> Result<u64, String> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(O_DIRECT)
        .open(path)
        .map_err(|e| format!("open {path}: {e}"))?;
    let buf = AlignedBuf(region(MIB));
    let mut h = (1u64, 2u64);
    let mut off = 0u64;
    loop {
        if skip_from.is_some_and(|s| off >= s as u64) {
            break;
        }
        let n = f
            .read_at(buf.0, off)
            .map_err(|e| format!("read {path} at {off}: {e}"))?;
        if n == 0 {
            break;
        }
        checksum(&mut h, &buf.0[..n]);
        off += n as u64;
    }
    Ok(finish(h))
}

fn read_buffered(path: &str, bytes: usize) -> Result<u64, String> {
    let mut f = File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let mut buf = vec![0u8; MIB];
    let mut h = (3u64, 4u64);
    let mut left = bytes;
    while left > 0 {
        let want = left.min(buf.len());
        let n = f
            .read(&mut buf[..want])
            .map_err(|e| format!("read {path}: {e}"))?;
        if n == 0 {
            break;
        }
        checksum(&mut h, &buf[..n]);
        left -= n;
    }
    Ok(finish(h))
}

struct Memory {
    statics: Vec<&'static mut [u8]>,
    hot: &'static mut [u8],
    dirty: &'static mut [u8],
}

fn hot_slot(page: usize, per_page: usize) -> usize {
    // A fixed record per page, past the 8-byte round counter, at a page-dependent offset.
    let slots = (PAGE - 64) / per_page;
    64 + (page % slots.max(1)) * per_page
}

fn hot_fill(rec: &mut [u8], page: usize, round: u64, seed: u64) {
    let mut r = Rng::new(seed ^ (page as u64).wrapping_mul(0x1000_0001) ^ round.rotate_left(40));
    r.fill(rec);
}

fn dirty_page_fill(page: &mut [u8], idx: u64, version: u64, seed: u64) {
    let mut r = Rng::new(seed ^ idx.wrapping_mul(0x2000_0003) ^ version.rotate_left(33));
    r.fill(&mut page[16..]);
    page[..8].copy_from_slice(&idx.to_le_bytes());
    page[8..16].copy_from_slice(&version.to_le_bytes());
}

/// Pages the `dirty` workload writes in one 10 ms tick, `elapsed` after it started: the set
/// rate, or in bursts, the set rate for the first half of each period and `burst_low_percent`
/// of it for the second.
fn tick_pages(cfg: &Config, elapsed: Duration) -> f64 {
    let rate = cfg.dirty_pages_per_sec as f64;
    let low = cfg.burst_period_ms > 0
        && (elapsed.as_millis() as u64 % cfg.burst_period_ms) >= cfg.burst_period_ms / 2;
    if low {
        rate * cfg.burst_low_percent as f64 / 100.0 / 100.0
    } else {
        rate / 100.0
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/etc/novacron/workload.conf".into());
    let cfg = match std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))
        .and_then(|t| parse_config(&t))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("novacron-guest-workload: {e}");
            std::process::exit(2);
        }
    };
    let out = match OpenOptions::new().write(true).open(&cfg.hb_dev) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("novacron-guest-workload: {}: {e}", cfg.hb_dev);
            std::process::exit(2);
        }
    };
    let port = Arc::new(Port {
        out: Mutex::new(out),
    });
    // Heartbeat.
    {
        let port = port.clone();
        let interval = Duration::from_micros(cfg.hb_interval_us.max(100));
        std::thread::spawn(move || {
            let mut next = Instant::now() + interval;
            loop {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > interval * 4 {
                    next = now;
                }
                port.beat();
                next += interval;
            }
        });
    }
    // Commands from the host.
    let verify = Arc::new(AtomicBool::new(false));
    {
        let verify = verify.clone();
        let dev = cfg.hb_dev.clone();
        std::thread::spawn(move || {
            let Ok(mut f) = File::open(&dev) else {
                return;
            };
            let mut b = [0u8; 64];
            while let Ok(n) = f.read(&mut b) {
                if n == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                if b[..n].contains(&b'V') {
                    verify.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    port.line("#FILLING");
    let started = Instant::now();
    let result = run(&cfg, &port, &verify, started);
    if let Err(e) = result {
        port.line(&format!("#ERR {e}"));
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn run(cfg: &Config, port: &Port, verify: &AtomicBool, started: Instant) -> Result<(), String> {
    let mut rng = Rng::new(cfg.seed);
    // Page cache of the disk.
    let pc_bytes = cfg.page_cache_mib * MIB;
    let pc_before = if pc_bytes > 0 {
        read_buffered(&cfg.disk, pc_bytes)?
    } else {
        0
    };
    // New data on the disk (the overlay the mirror must copy).
    if cfg.disk_write_mib > 0 {
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(O_DIRECT)
            .open(&cfg.disk)
            .map_err(|e| format!("open {} for writing: {e}", cfg.disk))?;
        let buf = AlignedBuf(region(MIB));
        for i in 0..cfg.disk_write_mib {
            rng.fill(buf.0);
            f.write_all_at(buf.0, ((cfg.disk_write_offset_mib + i) * MIB) as u64)
                .map_err(|e| format!("write {}: {e}", cfg.disk))?;
        }
        f.sync_all()
            .map_err(|e| format!("sync {}: {e}", cfg.disk))?;
    }
    let mut mem = Memory {
        statics: Vec::new(),
        hot: region(0),
        dirty: region(0),
    };
    let text = region(cfg.compressible_mib * MIB);
    fill_text(text, &mut rng);
    mem.statics.push(text);
    let random = region(cfg.incompressible_mib * MIB);
    rng.fill(random);
    for _ in 0..cfg.incompressible_copies {
        let copy = region(random.len());
        copy.copy_from_slice(random);
        mem.statics.push(copy);
    }
    mem.statics.push(random);
    if cfg.unaligned_mib > 0 {
        let src = corpus(MIB, &mut rng);
        let repeats = region(cfg.unaligned_mib * MIB);
        fill_unaligned_repeats(repeats, &src, &mut rng);
        mem.statics.push(repeats);
    }
    let dup = region(cfg.duplicate_mib * MIB);
    let distinct: Vec<Vec<u8>> = (0..cfg.duplicate_distinct_pages)
        .map(|_| {
            let mut p = vec![0u8; PAGE];
            rng.fill(&mut p);
            p
        })
        .collect();
    for (i, page) in dup.chunks_exact_mut(PAGE).enumerate() {
        page.copy_from_slice(&distinct[i % distinct.len()]);
    }
    mem.statics.push(dup);
    // The hot region: every `spread`-th page is hot, the others static random data.
    let hot_pages = cfg.hotset_mib * MIB / PAGE;
    if cfg.workload == "hotset" && hot_pages > 0 {
        mem.hot = region(hot_pages * cfg.hotset_spread * PAGE);
        rng.fill(mem.hot);
    }
    if cfg.workload == "dirty" {
        mem.dirty = region(cfg.dirty_mib * MIB);
        for (i, page) in mem.dirty.chunks_exact_mut(PAGE).enumerate() {
            dirty_page_fill(page, i as u64, 0, cfg.seed);
        }
    }
    let mem_sum = |mem: &Memory, cfg: &Config| {
        let mut h = (5u64, 6u64);
        for s in &mem.statics {
            checksum(&mut h, s);
        }
        // Cold pages of the hot region.
        for (i, page) in mem.hot.chunks_exact(PAGE).enumerate() {
            if i % cfg.hotset_spread != 0 {
                checksum(&mut h, page);
            }
        }
        finish(h)
    };
    let mem_before = mem_sum(&mem, cfg);
    let disk_before = read_direct(&cfg.disk, None)?;
    port.line(&format!(
        "#READY mem={mem_before:016x} pc={pc_before:016x} disk={disk_before:016x} fill_ms={}",
        started.elapsed().as_millis()
    ));
    // Workload until the host asks for verification.
    let rounds = AtomicU64::new(0);
    match cfg.workload.as_str() {
        "hotset" if hot_pages > 0 => {
            let per = cfg.hotset_bytes_per_page;
            while !verify.load(Ordering::SeqCst) {
                let round = rounds.fetch_add(1, Ordering::Relaxed) + 1;
                for hp in 0..hot_pages {
                    let page = &mut mem.hot[hp * cfg.hotset_spread * PAGE..][..PAGE];
                    let at = hot_slot(hp, per);
                    hot_fill(&mut page[at..at + per], hp, round, cfg.seed);
                    page[..8].copy_from_slice(&round.to_le_bytes());
                }
                if cfg.hotset_pause_us > 0 {
                    std::thread::sleep(Duration::from_micros(cfg.hotset_pause_us));
                }
            }
        }
        "dirty" if cfg.dirty_pages_per_sec > 0 && !mem.dirty.is_empty() => {
            let pages = (mem.dirty.len() / PAGE) as u64;
            let mut versions = vec![0u64; pages as usize];
            let tick = Duration::from_millis(10);
            let start = Instant::now();
            let mut next = start;
            let mut owed = 0.0f64;
            while !verify.load(Ordering::SeqCst) {
                owed += tick_pages(cfg, start.elapsed());
                let due = owed.floor();
                owed -= due;
                for _ in 0..due as u64 {
                    let idx = rng.next() % pages;
                    versions[idx as usize] += 1;
                    let page = &mut mem.dirty[idx as usize * PAGE..][..PAGE];
                    dirty_page_fill(page, idx, versions[idx as usize], cfg.seed);
                }
                next += tick;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        }
        _ => {
            while !verify.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // Verification.
    let mem_after = mem_sum(&mem, cfg);
    let pc_after = if pc_bytes > 0 {
        read_buffered(&cfg.disk, pc_bytes)?
    } else {
        0
    };
    let disk_after = read_direct(&cfg.disk, None)?;
    let mut hot_bad = 0u64;
    let final_round = rounds.load(Ordering::Relaxed);
    if !mem.hot.is_empty() {
        let per = cfg.hotset_bytes_per_page;
        let mut rec = vec![0u8; per];
        for hp in 0..hot_pages {
            let page = &mem.hot[hp * cfg.hotset_spread * PAGE..][..PAGE];
            let mut r = [0u8; 8];
            r.copy_from_slice(&page[..8]);
            let round = u64::from_le_bytes(r);
            hot_fill(&mut rec, hp, round, cfg.seed);
            let at = hot_slot(hp, per);
            if round == 0 || round > final_round || page[at..at + per] != rec[..] {
                hot_bad += 1;
            }
        }
    }
    let mut dirty_bad = 0u64;
    if !mem.dirty.is_empty() {
        let mut expect = vec![0u8; PAGE];
        for (i, page) in mem.dirty.chunks_exact(PAGE).enumerate() {
            let mut v = [0u8; 8];
            v.copy_from_slice(&page[8..16]);
            dirty_page_fill(&mut expect, i as u64, u64::from_le_bytes(v), cfg.seed);
            if page != &expect[..] {
                dirty_bad += 1;
            }
        }
    }
    let verdict = |bad: u64| {
        if bad == 0 {
            "ok".to_string()
        } else {
            format!("bad:{bad}")
        }
    };
    port.line(&format!(
        "#AFTER mem={mem_after:016x} pc={pc_after:016x} disk={disk_after:016x} hot={} dirty={} rounds={final_round}",
        verdict(hot_bad),
        verdict(dirty_bad)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_rejects_unknown_keys() {
        let c = parse_config("workload=hotset\nhotset_mib=4\n# comment\n").unwrap();
        assert_eq!(c.workload, "hotset");
        assert_eq!(c.hotset_mib, 4);
        assert!(parse_config("nonsense=1").is_err());
        assert!(parse_config("hotset_mib=x").is_err());
    }

    #[test]
    fn hot_records_stay_inside_the_page() {
        for per in [8, 64, 100, 2048] {
            for p in 0..1000 {
                let at = hot_slot(p, per);
                assert!(at >= 64 && at + per <= PAGE, "{p} {per}");
            }
        }
    }

    #[test]
    fn bursts_alternate_between_the_rate_and_its_low_share() {
        let mut c = parse_config("dirty_pages_per_sec=10000\nburst_period_ms=4000\n").unwrap();
        c.burst_low_percent = 10;
        let ms = Duration::from_millis;
        assert_eq!(tick_pages(&c, ms(100)), 100.0);
        assert_eq!(tick_pages(&c, ms(2500)), 10.0);
        assert_eq!(tick_pages(&c, ms(4100)), 100.0);
        c.burst_period_ms = 0;
        assert_eq!(tick_pages(&c, ms(2500)), 100.0);
    }

    #[test]
    fn unaligned_repeats_recur_off_the_page_grid() {
        let mut rng = Rng::new(3);
        let src = corpus(256 * 1024, &mut rng);
        let mut buf = vec![0u8; 2 * MIB];
        fill_unaligned_repeats(&mut buf, &src, &mut rng);
        // Nearly every byte is a copy from the corpus (the random gaps are short), yet no page
        // of the buffer equals another.
        let found = (0..16)
            .filter(|k| {
                let w = &buf[k * 131_071 + 17..][..64];
                src.windows(64).any(|s| s == w)
            })
            .count();
        assert!(
            found >= 12,
            "only {found} of 16 windows came from the corpus"
        );
        let pages: std::collections::HashSet<&[u8]> = buf.chunks(PAGE).collect();
        assert_eq!(pages.len(), buf.len() / PAGE, "no two pages are the same");
    }

    #[test]
    fn checksum_sees_a_flipped_bit() {
        let mut a = vec![7u8; 10000];
        let mut h1 = (1, 2);
        checksum(&mut h1, &a);
        a[5000] ^= 1;
        let mut h2 = (1, 2);
        checksum(&mut h2, &a);
        assert_ne!(finish(h1), finish(h2));
    }
}
