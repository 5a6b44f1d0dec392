//! `novacron bench backup`: NovaCron vs restic vs borg on the same VM disk image in the same
//! run — first backup, incremental after a 1 % change, restore — plus the image builder.
//!
//! Each run: copy the pristine image, back it up with every system (caches dropped before
//! each timed step), apply the 1 % change through the mounted file system, back up again,
//! restore the second backup and compare its BLAKE3 with the image's. NovaCron's incremental
//! gets the dirty map QEMU's persistent bitmap would hold (64 KiB granularity), derived here
//! by comparing block hashes before and after the change (outside the timed region); restic
//! and borg re-read the whole image file, which is what they do.

pub mod image;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::info;

use crate::backend::local::LocalBackend;
use crate::crypto::KeyFile;
use crate::error::{BackupError, Result};
use crate::repo::{
    BackupMeta, BackupOptions, Changes, CreateOptions, DiskInput, Repository, RestoreOptions,
};
use crate::source::FileSource;
use image::{ChangeSummary, ImageContent};

/// One system measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Novacron,
    Restic,
    Borg,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Novacron => "novacron",
            System::Restic => "restic",
            System::Borg => "borg",
        }
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BackupBenchConfig {
    /// Size of the VM disk image (e.g. 4 GiB).
    pub size_bytes: u64,
    /// Scratch directory (emptied of everything the bench made when it ends).
    pub work_dir: PathBuf,
    /// Runs; figures are medians, with min/max.
    pub runs: u32,
    /// Share of the disk changed between the two backups.
    pub change_fraction: f64,
    pub systems: Vec<System>,
    /// NovaCron repository chunk size.
    pub chunk_size_bytes: u64,
    /// NovaCron zstd level.
    pub zstd_level: i32,
    /// Drop the page cache before each timed step (needs root; recorded in the report).
    pub drop_caches: bool,
    /// Limit for any single external command (restic, borg, mkfs).
    pub command_timeout: Duration,
}

impl BackupBenchConfig {
    /// Defaults: 1 run, 1 % change, all three systems, default chunk size, caches dropped.
    pub fn new(size_bytes: u64, work_dir: PathBuf) -> BackupBenchConfig {
        BackupBenchConfig {
            size_bytes,
            work_dir,
            runs: 1,
            change_fraction: 0.01,
            systems: vec![System::Novacron, System::Restic, System::Borg],
            chunk_size_bytes: crate::config::DEFAULT_CHUNK_SIZE_BYTES,
            zstd_level: crate::config::DEFAULT_ZSTD_LEVEL,
            drop_caches: true,
            command_timeout: Duration::from_secs(1800),
        }
    }
}

/// Figures of one system in one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunFigures {
    pub first_seconds: f64,
    pub incremental_seconds: f64,
    pub restore_seconds: f64,
    pub repo_bytes: u64,
    /// Repository size after the first backup.
    pub first_repo_bytes: u64,
    pub restore_matches: bool,
    /// Bytes read from the disk by the incremental backup (NovaCron only; the others read
    /// the whole image).
    pub incremental_bytes_read: Option<u64>,
}

/// min / median / max of one figure over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Medians (the issue's JSON shape) plus throughput, spread and every run.
#[derive(Clone, Debug, Serialize)]
pub struct SystemResult {
    pub system: &'static str,
    pub first_seconds: f64,
    pub incremental_seconds: f64,
    pub restore_seconds: f64,
    pub repo_bytes: u64,
    /// True only if every run's restored image matched the source byte for byte.
    pub restore_matches: bool,
    pub first_mb_per_s: f64,
    pub restore_mb_per_s: f64,
    pub first_seconds_spread: Spread,
    pub incremental_seconds_spread: Spread,
    pub restore_seconds_spread: Spread,
    /// Settings used, for like-for-like reading.
    pub settings: String,
    pub runs: Vec<RunFigures>,
}

/// The whole report: `{"results": [...], ...}`.
#[derive(Clone, Debug, Serialize)]
pub struct BackupBenchReport {
    pub results: Vec<SystemResult>,
    pub size_bytes: u64,
    pub runs: u32,
    pub image: ImageContent,
    pub change: ChangeSummary,
    /// 4 KiB blocks that differ after the change.
    pub changed_blocks: u64,
    /// Bytes covered by the 64 KiB dirty map given to NovaCron.
    pub dirty_map_bytes: u64,
    /// Buffered write of 1 GiB + fsync into the work directory, bytes/s: the disk's limit
    /// for restores (which write through the page cache and fsync).
    pub disk_write_bytes_per_s: f64,
    /// `dd bs=4M count=256 oflag=direct` into the work directory, bytes/s.
    pub disk_write_direct_bytes_per_s: f64,
    pub caches_dropped: bool,
    pub cores: usize,
    pub restic_version: String,
    pub borg_version: String,
}

const PASSWORD: &str = "novacron-bench-password";

async fn command(cmd: &mut tokio::process::Command, timeout: Duration) -> Result<String> {
    let name = format!("{:?}", cmd.as_std());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| BackupError::Command {
        command: name.clone(),
        message: e.to_string(),
    })?;
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| BackupError::Timeout(format!("{name} (limit {} s)", timeout.as_secs())))?
        .map_err(|e| BackupError::Command {
            command: name.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BackupError::Command {
            command: name,
            message: String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(2000)
                .collect(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn drop_caches(enabled: bool) -> bool {
    if !enabled {
        return false;
    }
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn tree_bytes(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

fn file_blake3(p: &Path) -> Result<[u8; 32]> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(|e| BackupError::io(p, e))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| BackupError::io(p, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(*h.finalize().as_bytes())
}

fn fsync_file(p: &Path) -> Result<()> {
    std::fs::File::open(p)
        .and_then(|f| f.sync_all())
        .map_err(|e| BackupError::io(p, e))
}

fn disk_write_rate(dir: &Path) -> Result<f64> {
    use std::io::Write;
    let p = dir.join("write-ceiling.tmp");
    let mut buf = vec![0u8; 4 << 20];
    image::Rng::new(11).fill(&mut buf);
    let t = Instant::now();
    let mut f = std::fs::File::create(&p).map_err(|e| BackupError::io(&p, e))?;
    for _ in 0..256 {
        f.write_all(&buf).map_err(|e| BackupError::io(&p, e))?;
    }
    f.sync_all().map_err(|e| BackupError::io(&p, e))?;
    let rate = (1u64 << 30) as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&p);
    Ok(rate)
}

async fn dd_direct_rate(dir: &Path, t: Duration) -> Result<f64> {
    let p = dir.join("dd-direct.tmp");
    let start = Instant::now();
    let r = command(
        tokio::process::Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", p.display()))
            .args(["bs=4M", "count=256", "oflag=direct"]),
        t,
    )
    .await;
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&p);
    r?;
    Ok((1u64 << 30) as f64 / secs)
}

fn cp_sparse(from: &Path, to: &Path) -> Result<()> {
    let out = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| BackupError::Command {
            command: "cp".into(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BackupError::Command {
            command: "cp".into(),
            message: String::from_utf8_lossy(&out.stderr).into(),
        });
    }
    Ok(())
}

fn spread(v: &[f64]) -> Spread {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Spread {
        min: s.first().copied().unwrap_or(0.0),
        median: if s.is_empty() { 0.0 } else { s[s.len() / 2] },
        max: s.last().copied().unwrap_or(0.0),
    }
}

/// Runs the benchmark (async: call from a tokio runtime). Needs root, `mkfs.ext4`, `mount`,
/// `restic` and `borg` on PATH. Deletes everything it created under `work_dir`.
pub async fn run(cfg: &BackupBenchConfig) -> Result<BackupBenchReport> {
    let root = cfg.work_dir.join(format!(
        "novacron-bench-backup-{}",
        crate::util::random_hex8()?
    ));
    std::fs::create_dir_all(&root).map_err(|e| BackupError::io(&root, e))?;
    let r = run_in(cfg, &root).await;
    let _ = std::fs::remove_dir_all(&root);
    r
}

async fn run_in(cfg: &BackupBenchConfig, root: &Path) -> Result<BackupBenchReport> {
    let t = cfg.command_timeout;
    let restic_version = command(tokio::process::Command::new("restic").arg("version"), t)
        .await?
        .trim()
        .to_string();
    let borg_version = command(tokio::process::Command::new("borg").arg("--version"), t)
        .await?
        .trim()
        .to_string();
    let disk_write_bytes_per_s = disk_write_rate(root)?;
    let disk_write_direct_bytes_per_s = dd_direct_rate(root, t).await?;
    let base = root.join("base.img");
    let (content, hb) = {
        let (b, r) = (base.clone(), root.to_path_buf());
        let size = cfg.size_bytes;
        tokio::task::spawn_blocking(move || -> Result<_> {
            let c = image::build_image(&b, size, &r, 1)?;
            Ok((c, image::block_hashes(&b)?))
        })
        .await??
    };
    info!(size_bytes = cfg.size_bytes, "benchmark image built");
    let mut per_system: Vec<Vec<RunFigures>> = vec![Vec::new(); cfg.systems.len()];
    let mut change = ChangeSummary::default();
    let mut changed_blocks = 0;
    let mut dirty_map_bytes = 0;
    let mut caches_dropped = true;
    for run_no in 0..cfg.runs.max(1) {
        let dir = root.join(format!("run{run_no}"));
        std::fs::create_dir_all(&dir).map_err(|e| BackupError::io(&dir, e))?;
        let disk = dir.join("disk.img");
        cp_sparse(&base, &disk)?;
        let key_path = dir.join("novacron.key");
        let key = KeyFile::generate(&key_path)?;
        let nc_repo_dir = dir.join("repo-novacron");
        let nc = Repository::create(
            Arc::new(LocalBackend::new(&nc_repo_dir)?),
            CreateOptions {
                chunk_size_bytes: cfg.chunk_size_bytes,
                zstd_level: cfg.zstd_level,
                key: Some(key),
            },
        )
        .await?;
        let restic_repo = dir.join("repo-restic");
        let borg_repo = dir.join("repo-borg");
        let env = |c: &mut tokio::process::Command| {
            c.env("RESTIC_PASSWORD", PASSWORD)
                .env("RESTIC_CACHE_DIR", dir.join("cache-restic"))
                .env("BORG_PASSPHRASE", PASSWORD)
                .env("BORG_BASE_DIR", dir.join("borg-base"))
                .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes");
        };
        let restic = |args: &[&str]| {
            let mut c = tokio::process::Command::new("restic");
            c.arg("-r").arg(&restic_repo).arg("--quiet").args(args);
            env(&mut c);
            c
        };
        let borg = |args: &[&str]| {
            let mut c = tokio::process::Command::new("borg");
            c.args(args);
            env(&mut c);
            c
        };
        if cfg.systems.contains(&System::Restic) {
            command(&mut restic(&["init", "--repository-version", "2"]), t).await?;
        }
        if cfg.systems.contains(&System::Borg) {
            let mut c = borg(&["init", "--encryption=repokey-blake2"]);
            c.arg(&borg_repo);
            command(&mut c, t).await?;
        }
        let borg_archive = |name: &str| format!("{}::{name}", borg_repo.display());
        let disk_s = disk.to_string_lossy().into_owned();

        // First backup.
        let mut first = vec![0f64; cfg.systems.len()];
        let mut first_repo = vec![0u64; cfg.systems.len()];
        let mut first_id = None;
        for (i, s) in cfg.systems.iter().enumerate() {
            caches_dropped &= drop_caches(cfg.drop_caches);
            let start = Instant::now();
            match s {
                System::Novacron => {
                    let src = Arc::new(FileSource::open(&disk)?);
                    let idx = nc
                        .backup(
                            BackupMeta {
                                vm: "bench".into(),
                                ..Default::default()
                            },
                            vec![DiskInput {
                                name: "vda".into(),
                                format: "raw".into(),
                                source: src,
                                changes: Changes::Full {
                                    reason: "first backup".into(),
                                },
                                bitmap: None,
                            }],
                            &BackupOptions::default(),
                            &|_| {},
                        )
                        .await?;
                    first_id = Some(idx.id);
                }
                System::Restic => {
                    command(&mut restic(&["backup", &disk_s]), t).await?;
                }
                System::Borg => {
                    command(
                        &mut borg(&[
                            "create",
                            "--compression",
                            "zstd,1",
                            &borg_archive("first"),
                            &disk_s,
                        ]),
                        t,
                    )
                    .await?;
                }
            }
            first[i] = start.elapsed().as_secs_f64();
            first_repo[i] = tree_bytes(match s {
                System::Novacron => &nc_repo_dir,
                System::Restic => &restic_repo,
                System::Borg => &borg_repo,
            });
            info!(
                system = s.name(),
                run = run_no,
                seconds = first[i],
                "first backup"
            );
        }

        // The 1 % change, and the dirty map a QEMU bitmap would hold.
        let (d2, mnt) = (disk.clone(), dir.join("mnt"));
        let frac = cfg.change_fraction;
        let seed = 100 + run_no as u64;
        let (ch, ha) = tokio::task::spawn_blocking(move || -> Result<_> {
            let ch = image::apply_change(&d2, &mnt, frac, seed)?;
            Ok((ch, image::block_hashes(&d2)?))
        })
        .await??;
        let (map, changed) = image::dirty_map_from_hashes(&hb, &ha, cfg.size_bytes, 65536)?;
        change = ch;
        changed_blocks = changed;
        dirty_map_bytes = map.dirty_bytes();
        let want = file_blake3(&disk)?;

        // Incremental backup.
        let mut incr = vec![0f64; cfg.systems.len()];
        let mut incr_read = None;
        let mut map = Some(map);
        for (i, s) in cfg.systems.iter().enumerate() {
            caches_dropped &= drop_caches(cfg.drop_caches);
            let start = Instant::now();
            match s {
                System::Novacron => {
                    let src = Arc::new(FileSource::open(&disk)?);
                    let parent = first_id
                        .clone()
                        .ok_or_else(|| BackupError::Task("no first backup".into()))?;
                    let m = map
                        .take()
                        .ok_or_else(|| BackupError::Task("dirty map used twice".into()))?;
                    let idx = nc
                        .backup(
                            BackupMeta {
                                vm: "bench".into(),
                                ..Default::default()
                            },
                            vec![DiskInput {
                                name: "vda".into(),
                                format: "raw".into(),
                                source: src,
                                changes: Changes::Dirty { parent, map: m },
                                bitmap: None,
                            }],
                            &BackupOptions::default(),
                            &|_| {},
                        )
                        .await?;
                    incr_read = Some(idx.stats.bytes_read);
                    first_id = Some(idx.id);
                }
                System::Restic => {
                    command(&mut restic(&["backup", &disk_s]), t).await?;
                }
                System::Borg => {
                    command(
                        &mut borg(&[
                            "create",
                            "--compression",
                            "zstd,1",
                            &borg_archive("second"),
                            &disk_s,
                        ]),
                        t,
                    )
                    .await?;
                }
            }
            incr[i] = start.elapsed().as_secs_f64();
            info!(
                system = s.name(),
                run = run_no,
                seconds = incr[i],
                "incremental backup"
            );
        }

        // Restore of the second backup.
        for (i, s) in cfg.systems.iter().enumerate() {
            let out_dir = dir.join(format!("restore-{}", s.name()));
            std::fs::create_dir_all(&out_dir).map_err(|e| BackupError::io(&out_dir, e))?;
            caches_dropped &= drop_caches(cfg.drop_caches);
            let start = Instant::now();
            let restored = match s {
                System::Novacron => {
                    let target = out_dir.join("disk.img");
                    let id = first_id
                        .clone()
                        .ok_or_else(|| BackupError::Task("no backup".into()))?;
                    nc.restore_disk(&id, "vda", &target, &RestoreOptions::default())
                        .await?;
                    target
                }
                System::Restic => {
                    let mut c = restic(&["restore", "latest", "--target"]);
                    c.arg(&out_dir);
                    command(&mut c, t).await?;
                    out_dir.join(disk.strip_prefix("/").unwrap_or(&disk))
                }
                System::Borg => {
                    let mut c = borg(&["extract", "--sparse", &borg_archive("second")]);
                    c.current_dir(&out_dir);
                    command(&mut c, t).await?;
                    out_dir.join(disk.strip_prefix("/").unwrap_or(&disk))
                }
            };
            fsync_file(&restored)?;
            let restore_seconds = start.elapsed().as_secs_f64();
            let matches = file_blake3(&restored)? == want;
            let repo_bytes = tree_bytes(match s {
                System::Novacron => &nc_repo_dir,
                System::Restic => &restic_repo,
                System::Borg => &borg_repo,
            });
            let _ = std::fs::remove_dir_all(&out_dir);
            info!(
                system = s.name(),
                run = run_no,
                restore_seconds,
                matches,
                repo_bytes,
                "restore"
            );
            per_system[i].push(RunFigures {
                first_seconds: first[i],
                incremental_seconds: incr[i],
                restore_seconds,
                repo_bytes,
                first_repo_bytes: first_repo[i],
                restore_matches: matches,
                incremental_bytes_read: if *s == System::Novacron {
                    incr_read
                } else {
                    None
                },
            });
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let size = cfg.size_bytes as f64;
    let results = cfg
        .systems
        .iter()
        .zip(per_system)
        .map(|(s, runs)| {
            let f = spread(&runs.iter().map(|r| r.first_seconds).collect::<Vec<_>>());
            let inc = spread(&runs.iter().map(|r| r.incremental_seconds).collect::<Vec<_>>());
            let rs = spread(&runs.iter().map(|r| r.restore_seconds).collect::<Vec<_>>());
            let repo = spread(&runs.iter().map(|r| r.repo_bytes as f64).collect::<Vec<_>>());
            SystemResult {
                system: s.name(),
                first_seconds: f.median,
                incremental_seconds: inc.median,
                restore_seconds: rs.median,
                repo_bytes: repo.median as u64,
                restore_matches: runs.iter().all(|r| r.restore_matches),
                first_mb_per_s: size / f.median.max(1e-9) / 1e6,
                restore_mb_per_s: size / rs.median.max(1e-9) / 1e6,
                first_seconds_spread: f,
                incremental_seconds_spread: inc,
                restore_seconds_spread: rs,
                settings: match s {
                    System::Novacron => format!(
                        "fixed {} KiB chunks, BLAKE3-keyed ids, zstd {}, AES-256-GCM, dirty map 64 KiB",
                        cfg.chunk_size_bytes >> 10,
                        cfg.zstd_level
                    ),
                    System::Restic => "repository v2, compression auto (zstd), AES-256-CTR+Poly1305, CDC 512 KiB-8 MiB avg 1 MiB".into(),
                    System::Borg => "repokey-blake2 (AES-256-CTR+BLAKE2b), zstd 1, CDC 512 KiB-8 MiB avg 2 MiB, extract --sparse".into(),
                },
                runs,
            }
        })
        .collect();
    Ok(BackupBenchReport {
        results,
        size_bytes: cfg.size_bytes,
        runs: cfg.runs.max(1),
        image: content,
        change,
        changed_blocks,
        dirty_map_bytes,
        disk_write_bytes_per_s,
        disk_write_direct_bytes_per_s,
        caches_dropped: caches_dropped && cfg.drop_caches,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        restic_version,
        borg_version,
    })
}
