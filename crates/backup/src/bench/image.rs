//! Builds the benchmark's VM disk: a raw image holding a real ext4 file system with an
//! installed Debian root file system (hard-linked from this host's own /usr, /etc and
//! /var/lib/dpkg, which is an installed Debian 12) plus data — text logs, a database-like
//! file of 8 KiB pages, and incompressible media — and applies the "1 % change" to it through
//! the mounted file system. Needs root (mkfs.ext4 -d, mount -o loop).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{BackupError, Result};
use crate::source::DirtyMap;

/// Share of the disk filled by each part of the content.
const ROOTFS_SHARE: f64 = 0.45;
const LOGS_SHARE: f64 = 0.08;
const DB_SHARE: f64 = 0.10;
const MEDIA_SHARE: f64 = 0.10;

/// Host directories copied (hard-linked) into the image's root file system, in order.
const ROOT_SOURCES: &[&str] = &[
    "/etc",
    "/var/lib/dpkg",
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/share",
    "/usr/lib/python3",
    "/usr/lib/python3.11",
    "/usr/lib/gcc",
    "/usr/include",
    "/usr/libexec",
    "/usr/lib/modules",
    "/usr/lib/llvm-14",
    "/usr/lib/jvm",
];

/// Deterministic xorshift generator (content must be the same for every system and run).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let name = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| BackupError::Command {
        command: name.clone(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(BackupError::Command {
            command: name,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.map_err(|e| BackupError::io(path, e))
}

/// Hard-links regular files (and recreates symlinks) from `src` into `dst` until `budget`
/// bytes are used; returns the bytes linked.
fn link_tree(src: &Path, dst: &Path, budget: &mut u64) -> Result<u64> {
    let mut used = 0;
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        // A directory occupies at least one block.
        if *budget < 8192 {
            break;
        }
        *budget -= 4096;
        io(&d, std::fs::create_dir_all(&d))?;
        let Ok(rd) = std::fs::read_dir(&s) else {
            continue;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let sp = e.path();
            let dp = d.join(e.file_name());
            let Ok(md) = std::fs::symlink_metadata(&sp) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                stack.push((sp, dp));
            } else if ft.is_symlink() {
                if let Ok(t) = std::fs::read_link(&sp) {
                    let _ = std::os::unix::fs::symlink(t, &dp);
                }
            } else if ft.is_file() {
                // Budget what the file occupies: whole 4 KiB blocks plus its inode.
                let cost = md.len().div_ceil(4096) * 4096 + 256;
                if cost > *budget {
                    continue;
                }
                if std::fs::hard_link(&sp, &dp).is_ok() {
                    *budget -= cost;
                    used += md.len();
                }
            }
        }
    }
    Ok(used)
}

const WORDS: &[&str] = &[
    "GET",
    "POST",
    "PUT",
    "api",
    "v1",
    "items",
    "users",
    "orders",
    "login",
    "static",
    "img",
    "Mozilla/5.0",
    "curl/7.88",
    "python-requests/2.31",
    "ok",
    "error",
    "timeout",
    "retry",
    "cache",
    "hit",
    "miss",
    "db",
    "query",
    "select",
    "update",
    "commit",
    "session",
    "token",
];

fn log_line(rng: &mut Rng, t: u64) -> String {
    let w = |rng: &mut Rng| WORDS[rng.below(WORDS.len() as u64) as usize];
    format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z web{} app[{}]: 198.18.{}.{} \"{} /{}/{}/{} HTTP/1.1\" {} {} \"{}\" {} {}ms\n",
        1 + (t / 86_400_000) % 28,
        (t / 3_600_000) % 24,
        (t / 60_000) % 60,
        (t / 1000) % 60,
        t % 1000,
        rng.below(4),
        1000 + rng.below(30000),
        rng.below(256),
        rng.below(256),
        w(rng),
        w(rng),
        w(rng),
        rng.below(100_000),
        [200, 200, 200, 304, 404, 500][rng.below(6) as usize],
        rng.below(50_000),
        w(rng),
        w(rng),
        rng.below(2000)
    )
}

fn write_logs(dir: &Path, bytes: u64, rng: &mut Rng) -> Result<()> {
    io(dir, std::fs::create_dir_all(dir))?;
    let per_file = 16u64 << 20;
    let mut t = 1_795_000_000_000u64;
    for n in 0..bytes.div_ceil(per_file) {
        let p = dir.join(format!("app-{n:03}.log"));
        let mut f = std::io::BufWriter::new(io(&p, std::fs::File::create(&p))?);
        let mut written = 0;
        while written < per_file.min(bytes - n * per_file) {
            t += rng.below(50);
            let l = log_line(rng, t);
            written += l.len() as u64;
            io(&p, f.write_all(l.as_bytes()))?;
        }
        io(&p, f.flush())?;
    }
    Ok(())
}

/// One 8 KiB database page: header, then fixed-width records of ids, counters and names.
pub fn db_page(rng: &mut Rng, page_no: u64, buf: &mut [u8]) {
    buf.fill(0);
    buf[..8].copy_from_slice(&page_no.to_le_bytes());
    buf[8..16].copy_from_slice(&rng.next_u64().to_le_bytes());
    let mut off = 64;
    // Pages are 60-95 % full, like a B-tree's leaves.
    let fill = buf.len() * (60 + rng.below(36) as usize) / 100;
    while off + 64 <= fill {
        let id = page_no * 100 + (off as u64 / 64);
        buf[off..off + 8].copy_from_slice(&id.to_le_bytes());
        buf[off + 8..off + 12].copy_from_slice(&(rng.below(1_000_000) as u32).to_le_bytes());
        buf[off + 12..off + 16].copy_from_slice(&(rng.below(100) as u32).to_le_bytes());
        let name = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
        let n = name.len().min(40);
        buf[off + 16..off + 16 + n].copy_from_slice(&name[..n]);
        off += 64;
    }
}

fn write_db(dir: &Path, bytes: u64, rng: &mut Rng) -> Result<()> {
    io(dir, std::fs::create_dir_all(dir))?;
    let per_file = 64u64 << 20;
    let mut page = vec![0u8; 8192];
    let mut page_no = 0;
    for n in 0..bytes.div_ceil(per_file) {
        let p = dir.join(format!("table-{n:02}.db"));
        let mut f = std::io::BufWriter::new(io(&p, std::fs::File::create(&p))?);
        for _ in 0..(per_file.min(bytes - n * per_file) / 8192) {
            db_page(rng, page_no, &mut page);
            page_no += 1;
            io(&p, f.write_all(&page))?;
        }
        io(&p, f.flush())?;
    }
    Ok(())
}

fn write_random_files(dir: &Path, bytes: u64, rng: &mut Rng, name: &str) -> Result<()> {
    io(dir, std::fs::create_dir_all(dir))?;
    let mut left = bytes;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    while left > 0 {
        let size = (((4 + rng.below(60)) << 20).min(left)).max(4096);
        let p = dir.join(format!("{name}-{n:04}.bin"));
        let mut f = io(&p, std::fs::File::create(&p))?;
        let mut w = 0;
        while w < size {
            let k = (size - w).min(buf.len() as u64) as usize;
            rng.fill(&mut buf[..k]);
            io(&p, f.write_all(&buf[..k]))?;
            w += k as u64;
        }
        left = left.saturating_sub(size);
        n += 1;
    }
    Ok(())
}

/// What went into the image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageContent {
    pub size_bytes: u64,
    pub rootfs_bytes: u64,
    pub logs_bytes: u64,
    pub db_bytes: u64,
    pub media_bytes: u64,
}

/// Creates `image` (raw, `size_bytes`) with an ext4 file system holding a Debian root file
/// system and data. `scratch` is used for staging and emptied afterwards.
pub fn build_image(
    image: &Path,
    size_bytes: u64,
    scratch: &Path,
    seed: u64,
) -> Result<ImageContent> {
    let stage = scratch.join("stage");
    let _ = std::fs::remove_dir_all(&stage);
    io(&stage, std::fs::create_dir_all(&stage))?;
    let result = (|| {
        let mut budget = (size_bytes as f64 * ROOTFS_SHARE) as u64;
        let mut rootfs_bytes = 0;
        for src in ROOT_SOURCES {
            let s = Path::new(src);
            if s.exists() {
                let rel = s.strip_prefix("/").unwrap_or(s);
                rootfs_bytes += link_tree(s, &stage.join(rel), &mut budget)?;
            }
        }
        let mut rng = Rng::new(seed);
        let logs = (size_bytes as f64 * LOGS_SHARE) as u64;
        let db = (size_bytes as f64 * DB_SHARE) as u64 / 8192 * 8192;
        let media = (size_bytes as f64 * MEDIA_SHARE) as u64;
        write_logs(&stage.join("var/log/app"), logs, &mut rng)?;
        write_db(&stage.join("srv/db"), db, &mut rng)?;
        write_random_files(&stage.join("srv/media"), media, &mut rng, "upload")?;
        let _ = std::fs::remove_file(image);
        let f = io(image, std::fs::File::create(image))?;
        io(image, f.set_len(size_bytes))?;
        drop(f);
        run(Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-b",
                "4096",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                "-d",
            ])
            .arg(&stage)
            .arg(image))?;
        Ok(ImageContent {
            size_bytes,
            rootfs_bytes,
            logs_bytes: logs,
            db_bytes: db,
            media_bytes: media,
        })
    })();
    let _ = std::fs::remove_dir_all(&stage);
    result
}

/// A mounted loop device, unmounted on drop.
struct Mount {
    dir: PathBuf,
    mounted: bool,
}

impl Mount {
    fn new(image: &Path, dir: &Path) -> Result<Mount> {
        io(dir, std::fs::create_dir_all(dir))?;
        run(Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(image)
            .arg(dir))?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            mounted: true,
        })
    }
    fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        run(Command::new("umount").arg(&self.dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// What the change did, in file-system terms.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ChangeSummary {
    pub db_pages_rewritten: u64,
    pub log_bytes_appended: u64,
    pub new_file_bytes: u64,
    pub rootfs_files_replaced: u64,
    pub files_deleted: u64,
}

/// Applies a realistic "1 % of the disk changed" workload through the mounted file system:
/// 40 % of the budget as random 8 KiB page rewrites inside the database files, 30 % log
/// appends, 20 % new files (half text, half incompressible), 10 % rewritten binaries (a
/// package upgrade: new file written, renamed over the old one), and two deleted uploads.
pub fn apply_change(
    image: &Path,
    mount_dir: &Path,
    fraction: f64,
    seed: u64,
) -> Result<ChangeSummary> {
    let size = io(image, std::fs::metadata(image))?.len();
    let budget = (size as f64 * fraction) as u64;
    let m = Mount::new(image, mount_dir)?;
    let root = m.dir.clone();
    let mut rng = Rng::new(seed);
    let mut s = ChangeSummary::default();
    let r = (|| -> Result<()> {
        // Database page rewrites, in place.
        let mut dbs: Vec<PathBuf> = io(&root, std::fs::read_dir(root.join("srv/db")))?
            .flatten()
            .map(|e| e.path())
            .collect();
        dbs.sort();
        let mut page = vec![0u8; 8192];
        if !dbs.is_empty() {
            use std::os::unix::fs::FileExt;
            let files: Vec<(std::fs::File, u64)> = dbs
                .iter()
                .map(|p| {
                    let f = io(p, std::fs::OpenOptions::new().write(true).open(p))?;
                    let len = io(p, f.metadata())?.len();
                    Ok((f, len))
                })
                .collect::<Result<_>>()?;
            for _ in 0..(budget * 4 / 10 / 8192) {
                let (f, len) = &files[rng.below(files.len() as u64) as usize];
                let pno = rng.below(len / 8192);
                db_page(&mut rng, pno, &mut page);
                io(&root, f.write_all_at(&page, pno * 8192))?;
                s.db_pages_rewritten += 1;
            }
        }
        // Log appends.
        let mut logs: Vec<PathBuf> = io(&root, std::fs::read_dir(root.join("var/log/app")))?
            .flatten()
            .map(|e| e.path())
            .collect();
        logs.sort();
        let mut t = 1_795_100_000_000u64;
        let per = budget * 3 / 10 / logs.len().max(1) as u64;
        for p in &logs {
            let mut f =
                std::io::BufWriter::new(io(p, std::fs::OpenOptions::new().append(true).open(p))?);
            let mut w = 0;
            while w < per {
                t += rng.below(40);
                let l = log_line(&mut rng, t);
                w += l.len() as u64;
                io(p, f.write_all(l.as_bytes()))?;
            }
            io(p, f.flush())?;
            s.log_bytes_appended += w;
        }
        // New files.
        let new = budget * 2 / 10;
        write_logs(&root.join("var/log/new"), new / 2, &mut rng)?;
        write_random_files(&root.join("srv/media/new"), new / 2, &mut rng, "new")?;
        s.new_file_bytes = new;
        // Replace binaries: same size, new content (a package upgrade).
        let mut left = budget / 10;
        let bindir = root.join("usr/bin");
        if let Ok(rd) = std::fs::read_dir(&bindir) {
            let mut bins: Vec<(PathBuf, u64)> = rd
                .flatten()
                .filter_map(|e| {
                    let md = std::fs::symlink_metadata(e.path()).ok()?;
                    (md.is_file() && md.len() > 16384).then(|| (e.path(), md.len()))
                })
                .collect();
            bins.sort();
            while left > 0 && !bins.is_empty() {
                let (p, len) = bins.swap_remove(rng.below(bins.len() as u64) as usize);
                let mut data = io(&p, std::fs::read(&p))?;
                // An upgrade changes code throughout: perturb one byte in every 512.
                for i in (0..data.len()).step_by(512) {
                    data[i] = data[i].wrapping_add(1 + rng.below(255) as u8);
                }
                let tmp = p.with_extension("dpkg-new");
                io(&tmp, std::fs::write(&tmp, &data))?;
                io(&p, std::fs::rename(&tmp, &p))?;
                left = left.saturating_sub(len);
                s.rootfs_files_replaced += 1;
            }
        }
        // Deletions.
        let mut media: Vec<PathBuf> = io(&root, std::fs::read_dir(root.join("srv/media")))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        media.sort();
        for p in media.iter().take(2) {
            io(p, std::fs::remove_file(p))?;
            s.files_deleted += 1;
        }
        run(&mut Command::new("sync"))?;
        Ok(())
    })();
    let u = m.unmount();
    r?;
    u?;
    Ok(s)
}

/// BLAKE3 (16 bytes) of every 4 KiB block of a file, to find changed blocks.
pub fn block_hashes(path: &Path) -> Result<Vec<[u8; 16]>> {
    use std::io::Read;
    let mut f = io(path, std::fs::File::open(path))?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let mut n = 0;
        while n < buf.len() {
            let k = io(path, f.read(&mut buf[n..]))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        if n == 0 {
            break;
        }
        for b in buf[..n].chunks(4096) {
            let mut h = [0u8; 16];
            h.copy_from_slice(&blake3::hash(b).as_bytes()[..16]);
            out.push(h);
        }
        if n < buf.len() {
            break;
        }
    }
    Ok(out)
}

/// The dirty map QEMU's bitmap (granularity `granularity_bytes`) would hold for the blocks
/// that differ between two hash lists; also returns the number of changed 4 KiB blocks.
pub fn dirty_map_from_hashes(
    before: &[[u8; 16]],
    after: &[[u8; 16]],
    size_bytes: u64,
    granularity_bytes: u64,
) -> Result<(DirtyMap, u64)> {
    let mut map = DirtyMap::new(size_bytes, granularity_bytes)?;
    let mut changed = 0;
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        if a != b {
            map.mark(i as u64 * 4096, 4096);
            changed += 1;
        }
    }
    Ok((map, changed))
}
