//! End-to-end tests of the repository on a local directory: backup, incremental backup,
//! restore byte-for-byte, verify with corruption, prune, gc and the gc/writer handshake.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use novacron_backup::locks::{Lease, LockKind};
use novacron_backup::repo::chunk_key;
use novacron_backup::*;

const CS: u64 = 64 << 10;

/// A test disk: zero runs, text, incompressible bytes, and a repeated block.
fn make_disk(path: &Path, size: usize, seed: u64) -> Vec<u8> {
    let mut d = vec![0u8; size];
    let mut x = seed | 1;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (i, blk) in d.chunks_mut(CS as usize).enumerate() {
        match i % 5 {
            0 => {} // zeros
            1 | 3 => {
                let text = format!("line {i} of a compressible text block, seed {seed}\n");
                for (j, b) in blk.iter_mut().enumerate() {
                    *b = text.as_bytes()[j % text.len()];
                }
            }
            2 => blk.iter_mut().for_each(|b| *b = rnd() as u8),
            _ => blk
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (j % 7) as u8),
        }
    }
    std::fs::write(path, &d).unwrap();
    d
}

async fn new_repo(dir: &Path, encrypted: bool) -> Repository {
    let backend = Arc::new(LocalBackend::new(dir.join("repo")).unwrap());
    let key = encrypted.then(|| KeyFile::from_bytes([42; 32]));
    Repository::create(
        backend,
        CreateOptions {
            chunk_size_bytes: CS,
            zstd_level: 1,
            key,
        },
    )
    .await
    .unwrap()
}

fn disk(path: &Path, changes: Changes) -> DiskInput {
    DiskInput {
        name: "vda".into(),
        format: "raw".into(),
        source: Arc::new(FileSource::open(path).unwrap()),
        changes,
        bitmap: None,
    }
}

fn meta(vm: &str) -> BackupMeta {
    BackupMeta {
        vm: vm.into(),
        vm_spec: serde_json::json!({"memory_mib": 256}),
        ..Default::default()
    }
}

async fn restore_bytes(repo: &Repository, id: &BackupId, dir: &Path) -> Vec<u8> {
    let t: PathBuf = dir.join(format!("restored-{id}"));
    repo.restore_disk(id, "vda", &t, &RestoreOptions::default())
        .await
        .unwrap();
    let b = std::fs::read(&t).unwrap();
    std::fs::remove_file(&t).unwrap();
    b
}

fn full() -> Changes {
    Changes::Full {
        reason: "first backup".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_incremental_restore_roundtrip() {
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.raw");
        let size = 40 * CS as usize + 1234; // not a multiple of the chunk size
        let mut data = make_disk(&img, size, 1);
        let repo = new_repo(dir.path(), encrypted).await;
        let b1 = repo
            .backup(
                meta("web1"),
                vec![disk(&img, full())],
                &BackupOptions::default(),
                &|_| {},
            )
            .await
            .unwrap();
        let s = &b1.stats;
        assert_eq!(s.chunks_total, 41);
        assert_eq!(s.bytes_read, size as u64);
        assert!(s.chunks_zero >= 8, "zero chunks are recognised: {s:?}");
        assert!(s.chunks_dedup > 0, "repeated blocks dedup: {s:?}");
        assert!(s.bytes_stored < size as u64 / 2, "compression works: {s:?}");
        assert_eq!(restore_bytes(&repo, &b1.id, dir.path()).await, data);

        // Change two 4 KiB blocks and the tail; pass the dirty map like QEMU's bitmap would.
        let mut map = DirtyMap::new(size as u64, 65536).unwrap();
        for off in [5 * CS as usize + 100, 17 * CS as usize + 9000, size - 10] {
            for b in &mut data[off..(off + 4096).min(size)] {
                *b = b.wrapping_add(1);
            }
            map.mark(off as u64, 4096);
        }
        std::fs::write(&img, &data).unwrap();
        let changes = Changes::Dirty {
            parent: b1.id.clone(),
            map,
        };
        let b2 = repo
            .backup(
                meta("web1"),
                vec![disk(&img, changes)],
                &BackupOptions::default(),
                &|_| {},
            )
            .await
            .unwrap();
        assert_eq!(
            b2.stats.bytes_read,
            2 * CS + 1234,
            "only dirty chunks are read"
        );
        assert_eq!(b2.stats.chunks_clean, 38);
        assert!(matches!(
            b2.disks[0].read_mode,
            ReadMode::Incremental { .. }
        ));
        assert_eq!(restore_bytes(&repo, &b2.id, dir.path()).await, data);
        // The first backup still restores its own point in time.
        assert_ne!(restore_bytes(&repo, &b1.id, dir.path()).await, data);

        // A dirty map against a parent without that disk falls back to a full read, and says so.
        let map = DirtyMap::new(size as u64, 65536).unwrap();
        let mut d = disk(
            &img,
            Changes::Dirty {
                parent: b1.id.clone(),
                map,
            },
        );
        d.name = "vdb".into();
        let b3 = repo
            .backup(meta("web1"), vec![d], &BackupOptions::default(), &|_| {})
            .await
            .unwrap();
        match &b3.disks[0].read_mode {
            ReadMode::Full { reason } => assert!(reason.contains("has no disk vdb"), "{reason}"),
            m => panic!("expected a full read, got {m:?}"),
        }
        assert_eq!(b3.stats.bytes_read, size as u64);
        assert_eq!(b3.stats.chunks_new, 0, "a full re-read still deduplicates");

        let report = repo.verify(&VerifyOptions::default()).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(report.backups_checked, 3);

        // Disaster recovery: reopen from the directory alone.
        let backend = Arc::new(LocalBackend::new(dir.path().join("repo")).unwrap());
        if encrypted {
            assert!(matches!(
                Repository::open(backend.clone(), None).await,
                Err(BackupError::KeyRequired)
            ));
            assert!(matches!(
                Repository::open(backend.clone(), Some(&KeyFile::from_bytes([1; 32]))).await,
                Err(BackupError::WrongKey)
            ));
        }
        let reopened = Repository::open(backend, Some(&KeyFile::from_bytes([42; 32])))
            .await
            .unwrap();
        let list = reopened.list_backups(None, Some("web1")).await.unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(restore_bytes(&reopened, &b2.id, dir.path()).await, data);
        let shown = reopened.load_index(&b2.id).await.unwrap();
        assert_eq!(shown.vm_spec["memory_mib"], 256);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_is_reported_and_restore_refuses() {
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.raw");
        let size = 20 * CS as usize;
        let mut data = make_disk(&img, size, 7);
        let repo = new_repo(dir.path(), encrypted).await;
        let b1 = repo
            .backup(
                meta("a"),
                vec![disk(&img, full())],
                &BackupOptions::default(),
                &|_| {},
            )
            .await
            .unwrap();
        // b2 (same VM) shares most chunks with b1; b3 is another VM with different data.
        data[2 * CS as usize + 5] ^= 0xff;
        std::fs::write(&img, &data).unwrap();
        let b2 = repo
            .backup(
                meta("a"),
                vec![disk(&img, full())],
                &BackupOptions::default(),
                &|_| {},
            )
            .await
            .unwrap();
        let img3 = dir.path().join("other.raw");
        make_disk(&img3, size, 99);
        let b3 = repo
            .backup(
                meta("b"),
                vec![disk(&img3, full())],
                &BackupOptions::default(),
                &|_| {},
            )
            .await
            .unwrap();

        // Flip one byte in a chunk only b2 references (the changed one).
        let ChunkRef::Data(only_b2) = b2.disks[0].chunks[2] else {
            panic!()
        };
        assert_ne!(b1.disks[0].chunks[2], b2.disks[0].chunks[2]);
        let path = dir.path().join("repo").join(chunk_key(&only_b2));
        let mut blob = std::fs::read(&path).unwrap();
        let mid = blob.len() / 2;
        blob[mid] ^= 0x01;
        std::fs::write(&path, &blob).unwrap();

        let report = repo.verify(&VerifyOptions::default()).await.unwrap();
        assert!(!report.ok);
        let affected: Vec<&BackupId> = report.affected_backups.iter().map(|a| &a.id).collect();
        assert_eq!(affected, vec![&b2.id], "exactly b2 is affected: {report:?}");
        assert_eq!(report.bad_chunks.len(), 1);
        assert_eq!(report.bad_chunks[0].id, only_b2.to_hex());

        // Restore refuses and leaves the existing target untouched.
        let target = dir.path().join("target.raw");
        std::fs::write(&target, b"original content").unwrap();
        let err = repo
            .restore_disk(
                &b2.id,
                "vda",
                &target,
                &RestoreOptions {
                    overwrite: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::RestoreRefused { .. }), "{err}");
        assert!(err.to_string().contains(&only_b2.to_hex()), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"original content");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty(), "no partial output left behind");
        // Unaffected backups still restore.
        assert_eq!(
            restore_bytes(&repo, &b3.id, dir.path()).await,
            std::fs::read(&img3).unwrap()
        );

        // Flip a byte in b1's index: verify names b1 (and still b2 for its chunk).
        let ipath = dir.path().join("repo").join(b1.id.key());
        let mut ib = std::fs::read(&ipath).unwrap();
        let last = ib.len() - 40;
        ib[last] ^= 0x80;
        std::fs::write(&ipath, &ib).unwrap();
        let report = repo.verify(&VerifyOptions::default()).await.unwrap();
        let mut affected: Vec<BackupId> = report
            .affected_backups
            .iter()
            .map(|a| a.id.clone())
            .collect();
        affected.sort();
        let mut expect = vec![b1.id.clone(), b2.id.clone()];
        expect.sort();
        assert_eq!(affected, expect, "{report:?}");
        let err = repo
            .restore_disk(
                &b1.id,
                "vda",
                &dir.path().join("t1"),
                &RestoreOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::RestoreRefused { .. }), "{err}");
        assert!(!dir.path().join("t1").exists());
        // gc refuses to sweep while an index is unreadable (it cannot know what it references).
        let err = repo
            .gc(&GcOptions {
                grace: Duration::ZERO,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::CorruptIndex { .. }), "{err}");
        let _ = b3;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let size = 8 * CS as usize;
    let repo = new_repo(dir.path(), true).await;
    let day_ms = 86_400_000u64;
    let base = 1_795_000_000_000u64; // 2026-11-18
    let mut ids = Vec::new();
    for d in 0..10u64 {
        make_disk(&img, size, 100 + d); // every backup has distinct content
        let mut m = meta("web1");
        m.created_unix_ms = Some(base + d * day_ms);
        ids.push(
            repo.backup(
                m,
                vec![disk(&img, full())],
                &BackupOptions::default(),
                &|_| {},
            )
            .await
            .unwrap(),
        );
    }
    let policy = RetentionPolicy {
        keep_daily: 3,
        ..Default::default()
    };
    let dry = repo.prune(&policy, None, None, true).await.unwrap();
    assert_eq!(dry.kept.len(), 3);
    assert_eq!(dry.removed.len(), 7);
    assert_eq!(
        repo.backup_ids().await.unwrap().len(),
        10,
        "dry run changes nothing"
    );
    assert!(
        repo.prune(&RetentionPolicy::default(), None, None, false)
            .await
            .is_err()
    );
    let real = repo.prune(&policy, None, None, false).await.unwrap();
    assert_eq!(real.removed.len(), 7);
    let left = repo.backup_ids().await.unwrap();
    assert_eq!(
        left,
        ids[7..].iter().map(|b| b.id.clone()).collect::<Vec<_>>()
    );

    let chunks_before = repo.backend().list("chunks/").await.unwrap().len();
    // Within the grace period nothing is deleted.
    let g = repo.gc(&GcOptions::default()).await.unwrap();
    assert_eq!(g.chunks_deleted, 0);
    assert!(g.chunks_in_grace > 0);
    let g = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(g.chunks_deleted > 0);
    let chunks_after = repo.backend().list("chunks/").await.unwrap().len();
    assert_eq!(chunks_after as u64, chunks_before as u64 - g.chunks_deleted);
    assert!(
        repo.verify(&VerifyOptions {
            include_unreferenced: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .ok
    );
    for b in &ids[7..] {
        let bytes = restore_bytes(&repo, &b.id, dir.path()).await;
        assert_eq!(bytes.len(), size);
    }
    // Every remaining chunk is referenced.
    let v = repo.verify(&VerifyOptions::default()).await.unwrap();
    assert_eq!(v.unreferenced_chunks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_defers_while_a_backup_runs_and_backup_waits_for_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let repo = new_repo(dir.path(), false).await;
    let img = dir.path().join("disk.raw");
    make_disk(&img, 4 * CS as usize, 5);
    // A writer lease is held (a backup is in progress): gc marks, but must not sweep.
    let lease = Lease::acquire(repo.backend().clone(), LockKind::Writer, "test writer")
        .await
        .unwrap();
    // An orphan chunk (as if left by the running backup before its index is published).
    let b = repo
        .backup(
            meta("x"),
            vec![disk(&img, full())],
            &BackupOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    repo.forget(&b.id).await.unwrap();
    let opts = GcOptions {
        grace: Duration::ZERO,
        writer_wait: Duration::from_millis(300),
    };
    let err = repo.gc(&opts).await.unwrap_err();
    assert!(matches!(err, BackupError::SweepDeferred(_)), "{err}");
    assert!(
        !repo.backend().list("chunks/").await.unwrap().is_empty(),
        "nothing deleted"
    );
    assert!(
        repo.backend()
            .list("locks/sweep-")
            .await
            .unwrap()
            .is_empty(),
        "marker withdrawn"
    );
    lease.release().await.unwrap();
    let g = repo.gc(&opts).await.unwrap();
    assert!(g.chunks_deleted > 0);

    // A sweep marker is present: a backup waits for it, then times out cleanly.
    let sweep = Lease::acquire(repo.backend().clone(), LockKind::Sweep, "test sweep")
        .await
        .unwrap();
    let o = BackupOptions {
        sweep_wait: Duration::from_millis(300),
        ..Default::default()
    };
    let err = repo
        .backup(meta("x"), vec![disk(&img, full())], &o, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Timeout(_)), "{err}");
    assert!(repo.backup_ids().await.unwrap().is_empty());
    assert!(
        repo.backend()
            .list("locks/writer-")
            .await
            .unwrap()
            .is_empty(),
        "lease released"
    );
    sweep.release().await.unwrap();
    repo.backup(meta("x"), vec![disk(&img, full())], &o, &|_| {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_to_a_second_site_and_restore_there() {
    use novacron_backup::replicate::sync_repository;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let data = make_disk(&img, 12 * CS as usize, 11);
    let repo = new_repo(dir.path(), true).await;
    let b1 = repo
        .backup(
            meta("web1"),
            vec![disk(&img, full())],
            &BackupOptions::default(),
            &|_| {},
        )
        .await
        .unwrap();
    let site_b: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.path().join("site-b")).unwrap());
    let r = sync_repository(repo.backend().clone(), site_b.clone(), false, 4)
        .await
        .unwrap();
    assert!(r.chunks_copied > 0 && r.indexes_copied == 1);
    // Second sync copies nothing new.
    let r2 = sync_repository(repo.backend().clone(), site_b.clone(), false, 4)
        .await
        .unwrap();
    assert_eq!((r2.chunks_copied, r2.indexes_copied), (0, 0));
    // The copy opens with the same key file alone, verifies and restores.
    let remote = Repository::open(site_b.clone(), Some(&KeyFile::from_bytes([42; 32])))
        .await
        .unwrap();
    assert!(remote.verify(&VerifyOptions::default()).await.unwrap().ok);
    assert_eq!(restore_bytes(&remote, &b1.id, dir.path()).await, data);
    // Pruning propagates with prune_target; a foreign repository is refused.
    repo.forget(&b1.id).await.unwrap();
    let r3 = sync_repository(repo.backend().clone(), site_b.clone(), true, 4)
        .await
        .unwrap();
    assert_eq!(r3.indexes_removed, 1);
    let other = new_repo(&dir.path().join("other"), true).await;
    assert!(
        sync_repository(other.backend().clone(), site_b, false, 4)
            .await
            .is_err()
    );
}

fn meta_in(project: &str, vm: &str) -> BackupMeta {
    BackupMeta {
        project: Some(project.into()),
        ..meta(vm)
    }
}

/// Two projects each have a VM named web1 in one repository: each project's backups are its
/// own group for listing, the parent of the next backup and retention, and each project's
/// data is counted on its own against a limit, which refuses a backup before publishing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_keep_their_own_backups_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let size = 10 * CS as usize;
    let repo = new_repo(dir.path(), false).await;
    let opts = BackupOptions::default();
    let mut a = Vec::new();
    for seed in [1, 2, 3] {
        make_disk(&img, size, seed);
        let b = repo
            .backup(
                meta_in("team-a", "web1"),
                vec![disk(&img, full())],
                &opts,
                &|_| {},
            )
            .await
            .unwrap();
        a.push(b);
    }
    // team-b's web1 holds the same bytes as team-a's last backup: deduplicated in the
    // repository, counted in full for each project.
    let b1 = repo
        .backup(
            meta_in("team-b", "web1"),
            vec![disk(&img, full())],
            &opts,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(b1.stats.chunks_new, 0, "{:?}", b1.stats);
    let listed = repo.list_backups(Some("team-b"), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].project.as_deref(), Some("team-b"));
    assert_eq!(
        repo.list_backups(None, Some("web1")).await.unwrap().len(),
        4
    );
    let latest_a = repo.latest_backup("team-a", "web1").await.unwrap().unwrap();
    assert_eq!(latest_a.id, a[2].id);
    let latest_b = repo.latest_backup("team-b", "web1").await.unwrap().unwrap();
    assert_eq!(latest_b.id, b1.id);
    let held_b = repo.project_data_bytes("team-b").await.unwrap();
    assert_eq!(held_b, distinct_data_bytes([&b1]));
    assert!(held_b > 0 && held_b <= size as u64);
    let held_a = repo.project_data_bytes("team-a").await.unwrap();
    assert_eq!(held_a, distinct_data_bytes(&a));
    assert!(held_a > held_b, "three different disks hold more than one");

    // A limit below what a new backup would bring: refused, nothing published.
    make_disk(&img, size, 4);
    let mut over = meta_in("team-b", "web1");
    over.storage_limit = Some(held_b + 1);
    let err = repo
        .backup(over, vec![disk(&img, full())], &opts, &|_| {})
        .await
        .unwrap_err();
    match &err {
        BackupError::StorageLimit {
            project,
            before,
            after,
            limit,
        } => {
            assert_eq!(
                (project.as_str(), *before, *limit),
                ("team-b", held_b, held_b + 1)
            );
            assert!(after > limit, "{err}");
        }
        other => panic!("expected a storage limit refusal, got {other}"),
    }
    assert_eq!(
        repo.list_backups(Some("team-b"), None).await.unwrap().len(),
        1
    );
    // team-a's data does not count against team-b: a limit that fits team-b's own data passes.
    let mut fits = meta_in("team-b", "web1");
    fits.storage_limit = Some(held_b + size as u64);
    repo.backup(fits, vec![disk(&img, full())], &opts, &|_| {})
        .await
        .unwrap();

    // Keeping the last backup of web1 keeps one per project.
    let keep_last = RetentionPolicy {
        keep_last: 1,
        ..Default::default()
    };
    let pruned = repo
        .prune(&keep_last, Some("team-a"), Some("web1"), false)
        .await
        .unwrap();
    assert_eq!(pruned.removed.len(), 2);
    assert!(pruned.removed.iter().all(|i| i.project == "team-a"));
    assert_eq!(
        repo.list_backups(Some("team-b"), None).await.unwrap().len(),
        2
    );
    let everywhere = repo
        .prune(&keep_last, None, Some("web1"), false)
        .await
        .unwrap();
    assert_eq!(everywhere.kept.len(), 2, "one per project: {everywhere:?}");
    assert_eq!(everywhere.removed.len(), 1);
    assert_eq!(everywhere.removed[0].project, "team-b");
}

/// Two backups of one project finishing together under a limit that holds one of them: one
/// is kept, the other refused; without the count lock each would pass without the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_finishing_together_never_pass_the_limit_together() {
    let dir = tempfile::tempdir().unwrap();
    let size = 10 * CS as usize;
    let repo = new_repo(dir.path(), false).await;
    let opts = BackupOptions::default();
    let imgs: Vec<PathBuf> = (0..2)
        .map(|i| dir.path().join(format!("d{i}.raw")))
        .collect();
    for (i, img) in imgs.iter().enumerate() {
        make_disk(img, size, 10 + i as u64);
    }
    // What one disk alone holds, measured in a repository of its own.
    let alone = {
        let other = tempfile::tempdir().unwrap();
        let r = new_repo(other.path(), false).await;
        let b = r
            .backup(
                meta_in("p", "vm0"),
                vec![disk(&imgs[0], full())],
                &opts,
                &|_| {},
            )
            .await
            .unwrap();
        distinct_data_bytes([&b])
    };
    for round in 0..3 {
        let limited = |vm: &str| BackupMeta {
            storage_limit: Some(alone + alone / 2),
            ..meta_in(&format!("team-{round}"), vm)
        };
        let (a, b) = tokio::join!(
            repo.backup(limited("vm0"), vec![disk(&imgs[0], full())], &opts, &|_| {}),
            repo.backup(limited("vm1"), vec![disk(&imgs[1], full())], &opts, &|_| {}),
        );
        let refused = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(BackupError::StorageLimit { .. })))
            .count();
        assert_eq!(
            (a.is_ok() as usize + b.is_ok() as usize, refused),
            (1, 1),
            "round {round}: {:?} / {:?}",
            a.as_ref().map(|i| &i.id),
            b.as_ref().map(|i| &i.id)
        );
        let project = format!("team-{round}");
        assert_eq!(
            repo.list_backups(Some(&project), None).await.unwrap().len(),
            1
        );
        assert!(repo.project_data_bytes(&project).await.unwrap() <= alone + alone / 2);
    }
    // No lock is left behind.
    assert!(repo.backend().list("locks/").await.unwrap().is_empty());
}
