//! Crash safety: a child process doing backups, prunes or garbage collection is killed with
//! SIGKILL at varied moments, over and over; after each kill `verify` passes and every listed
//! backup restores byte-identical to the image it was taken from.
//!
//! The child is this test binary re-executed with NOVACRON_CRASH_CHILD set (role:repo dir).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use novacron_backup::*;

const CS: u64 = 64 << 10;
const IMG_BYTES: usize = 48 * CS as usize;
const ENV: &str = "NOVACRON_CRASH_CHILD";

/// The image a backup with label `seed` was taken from: mostly stable content (so backups
/// share chunks) plus seed-specific blocks.
fn image(seed: u64) -> Vec<u8> {
    let mut d = vec![0u8; IMG_BYTES];
    for (i, c) in d.chunks_mut(CS as usize).enumerate() {
        let salt = if i % 4 == (seed % 4) as usize {
            seed
        } else {
            0
        };
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ salt.wrapping_mul(0xD6E8_FEB8_6659_FD93)
            | 1;
        if i % 7 == 3 {
            continue; // zero chunk
        }
        for w in c.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 { x % 16 } else { x }; // half compressible
            w.copy_from_slice(&v.to_le_bytes()[..w.len()]);
        }
    }
    d
}

async fn open(dir: &Path) -> Repository {
    Repository::open(
        Arc::new(LocalBackend::new(dir.join("repo")).unwrap()),
        Some(&KeyFile::from_bytes([3; 32])),
    )
    .await
    .unwrap()
}

async fn backup(repo: &Repository, work: &Path, seed: u64, created_ms: u64) -> BackupIndex {
    let img = work.join(format!("img-{}-{seed}.raw", std::process::id()));
    std::fs::write(&img, image(seed)).unwrap();
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("seed".to_string(), seed.to_string());
    let meta = BackupMeta {
        vm: "vm".into(),
        labels,
        created_unix_ms: Some(created_ms),
        ..Default::default()
    };
    let disk = DiskInput {
        name: "vda".into(),
        format: "raw".into(),
        source: Arc::new(FileSource::open(&img).unwrap()),
        changes: Changes::Full {
            reason: "test".into(),
        },
        bitmap: None,
    };
    let r = repo
        .backup(
            meta,
            vec![disk],
            &BackupOptions {
                concurrency: 2,
                ..Default::default()
            },
            &|_| {},
        )
        .await
        .unwrap();
    let _ = std::fs::remove_file(&img);
    r
}

/// Child side: loop the role until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_entry() {
    let Ok(spec) = std::env::var(ENV) else { return };
    let (role, dir) = spec.split_once(':').unwrap();
    let dir = PathBuf::from(dir);
    let repo = open(&dir).await;
    let mut n = 1000 + std::process::id() as u64 * 100;
    loop {
        match role {
            "backup" => {
                n += 1;
                backup(&repo, &dir, n, 1_795_000_000_000 + n * 3_600_000).await;
            }
            "prune" => {
                let _ = repo
                    .prune(
                        &RetentionPolicy {
                            keep_last: 2,
                            ..Default::default()
                        },
                        None,
                        None,
                        false,
                    )
                    .await;
            }
            "gc" => {
                let _ = repo
                    .gc(&GcOptions {
                        grace: Duration::ZERO,
                        writer_wait: Duration::from_millis(100),
                    })
                    .await;
            }
            r => panic!("unknown role {r}"),
        }
    }
}

async fn check(repo: &Repository, dir: &Path, round: usize) {
    let v = repo.verify(&VerifyOptions::default()).await.unwrap();
    assert!(
        v.affected_backups.is_empty() && v.bad_chunks.is_empty(),
        "round {round}: {v:?}"
    );
    for b in repo.list_backups(None, None).await.unwrap() {
        assert!(b.error.is_none(), "round {round}: {b:?}");
        let idx = repo.load_index(&b.id).await.unwrap();
        let seed: u64 = idx.labels["seed"].parse().unwrap();
        let t = dir.join("restored.raw");
        repo.restore_disk(&b.id, "vda", &t, &RestoreOptions::default())
            .await
            .unwrap();
        assert!(
            std::fs::read(&t).unwrap() == image(seed),
            "round {round}: backup {} differs from its image",
            b.id
        );
        std::fs::remove_file(&t).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_backup_prune_and_gc_keeps_the_repository_consistent() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    Repository::create(
        Arc::new(LocalBackend::new(dir.path().join("repo")).unwrap()),
        CreateOptions {
            chunk_size_bytes: CS,
            key: Some(KeyFile::from_bytes([3; 32])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let repo = open(dir.path()).await;
    let exe = std::env::current_exe().unwrap();
    let roles = ["backup", "prune", "gc"];
    let delays_ms = [15u64, 40, 80, 130, 200, 320, 500];
    let mut seed = 1u64;
    let mut killed_mid_work = 0;
    for round in 0..15 {
        let role = roles[round % 3];
        // Give prune and gc something to do.
        for _ in 0..3 {
            seed += 1;
            backup(
                &repo,
                dir.path(),
                seed,
                1_795_000_000_000 + seed * 3_600_000,
            )
            .await;
        }
        if role == "gc" {
            repo.prune(
                &RetentionPolicy {
                    keep_last: 2,
                    ..Default::default()
                },
                None,
                None,
                false,
            )
            .await
            .unwrap();
        }
        let before = repo.backup_ids().await.unwrap().len();
        let mut child = Command::new(&exe)
            .args(["crash_child_entry", "--exact", "--nocapture"])
            .env(ENV, format!("{role}:{}", dir.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = delays_ms[(round * 5) % delays_ms.len()];
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if child.try_wait().unwrap().is_none() {
            killed_mid_work += 1;
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the {role} child was not killed"
        );
        let after = repo.backup_ids().await.unwrap().len();
        println!("round {round}: killed {role} after {delay} ms; backups {before} -> {after}");
        check(&repo, dir.path(), round).await;
    }
    assert!(
        killed_mid_work >= 12,
        "children must be killed while working"
    );
    // After all that, gc cleans every leftover (stale leases, temporaries, orphans) and
    // everything still restores.
    let g = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            writer_wait: Duration::from_secs(5),
        })
        .await
        .unwrap();
    println!("final gc: {g:?}");
    let v = repo
        .verify(&VerifyOptions {
            include_unreferenced: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.unreferenced_chunks, 0);
    check(&repo, dir.path(), 99).await;
    let leftovers: Vec<_> = walk(&dir.path().join("repo"))
        .into_iter()
        .filter(|p| p.contains(".tmp-") || p.contains("locks/"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().to_string_lossy().into_owned());
            }
        }
    }
    out
}
