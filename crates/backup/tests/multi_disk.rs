//! Backups of VMs with several disks: one backup holds every disk, each disk decides full vs
//! incremental on its own bitmap (a disk that did not change reads nothing, a disk new since
//! the previous backup or restored over its image reads in full), and every restored disk
//! equals its image at the backup's point in time. Stopped VMs go through `qemu-nbd`, running
//! ones (a real TCG VM with two qcow2 disks) through fleecing; neither leaves a process or a
//! temporary file behind, also when a disk fails half-way.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use novacron_backup::live::{
    LiveBackupOptions, LiveDisk, StoppedDisk, backup_running_vm, backup_stopped_disk,
    backup_stopped_disks, node_state, restore_over_original, restore_vm_disks,
};
use novacron_backup::*;
use novacron_qemu::console::{console_log_len, send_console_line, wait_for_text};
use novacron_qemu::{
    Accel, Boot, DiskFormat, DiskSpec, GUEST_READY_MARKER, RunDir, RunningVm, TinyOptions, VmSpec,
    build_tiny, launch,
};

const MIB: u64 = 1 << 20;

async fn repository(dir: &Path) -> Repository {
    Repository::create(
        Arc::new(LocalBackend::new(dir.join("repo")).unwrap()),
        CreateOptions {
            key: Some(KeyFile::from_bytes([7; 32])),
            chunk_size_bytes: MIB,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn meta() -> BackupMeta {
    BackupMeta {
        vm: "db1".into(),
        vm_spec: serde_json::json!({"memory_mib": 128}),
        ..Default::default()
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A qcow2 image of `mib` MiB of random bytes (every chunk distinct, so a chunk put in the
/// wrong place or taken from the wrong disk shows in the byte comparisons).
fn random_qcow2(path: &Path, mib: u64) {
    let raw = path.with_extension("src.raw");
    let mut bytes = vec![0u8; (mib * MIB) as usize];
    // xorshift64 seeded with an FNV-1a hash of the path: every image its own bytes.
    let mut x = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    for b in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    std::fs::write(&raw, &bytes).unwrap();
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&raw).unwrap();
}

/// Writes `len` bytes of `pattern` at `offset` of a qcow2 image, through the block layer
/// (so that the image's persistent bitmaps record the write, as QEMU would).
fn qemu_io_write(image: &Path, pattern: u8, offset: u64, len: u64) {
    run(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            "-c",
            &format!("write -P {pattern} {offset} {len}"),
            image.to_str().unwrap(),
        ],
    );
}

/// The image's guest-visible bytes now.
fn reference(image: &Path) -> Vec<u8> {
    let out = image.with_extension("ref.raw");
    run(
        "qemu-img",
        &[
            "convert",
            "-U",
            "-f",
            "qcow2",
            "-O",
            "raw",
            image.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    let b = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    b
}

/// NovaCron bitmaps stored in a qcow2 image.
fn image_bitmaps(image: &Path) -> Vec<String> {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", "qcow2"])
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["format-specific"]["data"]["bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["name"].as_str())
                .filter(|n| n.starts_with("novacron-"))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Restores every disk of `id` (as raw) and returns their bytes by disk name.
async fn restore_all(repo: &Repository, id: &BackupId, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = dir.join(format!("restore-{id}"));
    let reports = restore_vm_disks(repo, id, &out, RestoreFormat::Raw)
        .await
        .unwrap();
    let idx = repo.load_index(id).await.unwrap();
    assert_eq!(reports.len(), idx.disks.len());
    let bytes = idx
        .disks
        .iter()
        .map(|d| {
            let b = std::fs::read(out.join(format!("{}.raw", d.name))).unwrap();
            (d.name.clone(), b)
        })
        .collect();
    std::fs::remove_dir_all(&out).unwrap();
    bytes
}

/// Bytes read per disk during one backup, from its progress reports (a disk that reads
/// nothing reports nothing).
#[derive(Default)]
struct ReadPerDisk(Mutex<BTreeMap<String, u64>>);

impl ReadPerDisk {
    fn record(&self, p: Progress) {
        self.0.lock().unwrap().insert(p.disk, p.bytes_done);
    }
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn read_mode<'a>(idx: &'a BackupIndex, disk: &str) -> &'a ReadMode {
    &idx.disks.iter().find(|d| d.name == disk).unwrap().read_mode
}

fn assert_full(idx: &BackupIndex, disk: &str, reason_has: &str) {
    match read_mode(idx, disk) {
        ReadMode::Full { reason } => assert!(reason.contains(reason_has), "{disk}: {reason}"),
        m => panic!("{disk}: expected a full read ({reason_has}), got {m:?}"),
    }
}

fn assert_incremental(idx: &BackupIndex, disk: &str, parent: &BackupId) {
    assert_eq!(
        read_mode(idx, disk),
        &ReadMode::Incremental {
            parent: parent.clone()
        },
        "{disk}"
    );
}

/// Processes whose command line mentions `dir` (our qemu-nbd exports use sockets there).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

fn leftovers(work: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(work) {
        Ok(d) => d.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn stopped(name: &str, path: &Path) -> StoppedDisk {
    StoppedDisk {
        name: name.into(),
        path: path.to_path_buf(),
        format: DiskFormat::Qcow2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_vm_with_several_disks_backs_up_each_disk_on_its_own_bitmap() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path()).await;
    let work = dir.path().join("work");
    let opts = LiveBackupOptions::new(&work);
    let img0 = dir.path().join("disk0.qcow2");
    let img1 = dir.path().join("disk1.qcow2");
    random_qcow2(&img0, 6);
    random_qcow2(&img1, 10);
    let mut disks = vec![stopped("disk0", &img0), stopped("disk1", &img1)];
    let read = ReadPerDisk::default();

    // Backup 1: first backup, both disks read in full, into one backup.
    let ref1 = [reference(&img0), reference(&img1)];
    let b1 = backup_stopped_disks(&repo, &disks, meta(), &opts, &|p| read.record(p))
        .await
        .unwrap();
    let names: Vec<&str> = b1.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["disk0", "disk1"]);
    assert_full(&b1, "disk0", "first backup");
    assert_full(&b1, "disk1", "first backup");
    assert_eq!(
        read.take(),
        BTreeMap::from([("disk0".into(), 6 * MIB), ("disk1".into(), 10 * MIB)])
    );
    // Each image now carries exactly the bitmap its index entry names.
    for (img, d) in [&img0, &img1].into_iter().zip(&b1.disks) {
        assert_eq!(image_bitmaps(img), [d.bitmap.clone().unwrap().name]);
    }

    // Only disk1 changes: two writes in two different 1 MiB chunks.
    qemu_io_write(&img1, 0x5a, 2 * MIB + 4096, 4096);
    qemu_io_write(&img1, 0xa5, 7 * MIB + 512 * 1024, 64 * 1024);
    let ref2 = [reference(&img0), reference(&img1)];
    assert_eq!(ref2[0], ref1[0]);
    assert_ne!(ref2[1], ref1[1]);
    let b2 = backup_stopped_disks(&repo, &disks, meta(), &opts, &|p| read.record(p))
        .await
        .unwrap();
    assert_incremental(&b2, "disk0", &b1.id);
    assert_incremental(&b2, "disk1", &b1.id);
    assert_eq!(
        read.take(),
        BTreeMap::from([("disk1".into(), 2 * MIB)]),
        "only disk1's two dirty chunks are read"
    );
    assert_eq!(b2.stats.bytes_read, 2 * MIB);
    assert_eq!(b2.stats.chunks_clean, 6 + 8);

    let r1 = restore_all(&repo, &b1.id, dir.path()).await;
    let r2 = restore_all(&repo, &b2.id, dir.path()).await;
    assert!(r1["disk0"] == ref1[0] && r1["disk1"] == ref1[1]);
    assert!(r2["disk0"] == ref2[0] && r2["disk1"] == ref2[1]);

    // A disk added since: read in full with the reason; disk0 changed, disk1 did not.
    let img2 = dir.path().join("disk2.qcow2");
    random_qcow2(&img2, 3);
    disks.push(stopped("disk2", &img2));
    qemu_io_write(&img0, 0x33, 5 * MIB, 4096);
    let ref3 = [reference(&img0), reference(&img1), reference(&img2)];
    let b3 = backup_stopped_disks(&repo, &disks, meta(), &opts, &|p| read.record(p))
        .await
        .unwrap();
    assert_incremental(&b3, "disk0", &b2.id);
    assert_incremental(&b3, "disk1", &b2.id);
    assert_full(&b3, "disk2", "has no disk disk2");
    assert_eq!(
        read.take(),
        BTreeMap::from([("disk0".into(), MIB), ("disk2".into(), 3 * MIB)])
    );
    let r3 = restore_all(&repo, &b3.id, dir.path()).await;
    assert!(r3["disk0"] == ref3[0] && r3["disk1"] == ref3[1] && r3["disk2"] == ref3[2]);

    // disk1 restored over its image to backup 1: it lost its bitmap, so the next backup
    // reads it in full (and finds backup 1's bytes); the other disks stay incremental.
    let d1 = b1.disks.iter().find(|d| d.name == "disk1").unwrap();
    restore_over_original(&repo, &b1.id, d1, &img1, DiskFormat::Qcow2)
        .await
        .unwrap();
    assert_eq!(reference(&img1), ref1[1]);
    qemu_io_write(&img2, 0x44, 0, 4096);
    let ref4 = [reference(&img0), reference(&img1), reference(&img2)];
    let b4 = backup_stopped_disks(&repo, &disks, meta(), &opts, &|p| read.record(p))
        .await
        .unwrap();
    assert_incremental(&b4, "disk0", &b3.id);
    assert_full(&b4, "disk1", "missing");
    assert_incremental(&b4, "disk2", &b3.id);
    assert_eq!(
        read.take(),
        BTreeMap::from([("disk1".into(), 10 * MIB), ("disk2".into(), MIB)])
    );
    let r4 = restore_all(&repo, &b4.id, dir.path()).await;
    assert!(r4["disk0"] == ref4[0] && r4["disk1"] == ref4[1] && r4["disk2"] == ref4[2]);
    for (img, d) in [&img0, &img1, &img2].into_iter().zip(&b4.disks) {
        assert_eq!(image_bitmaps(img), [d.bitmap.clone().unwrap().name]);
    }

    // The one-disk form still works, and takes its disk's bitmap from the multi-disk backup.
    qemu_io_write(&img0, 0x55, 0, 4096);
    let ref5 = reference(&img0);
    let b5 = backup_stopped_disk(
        &repo,
        "disk0",
        &img0,
        DiskFormat::Qcow2,
        meta(),
        &opts,
        &|p| read.record(p),
    )
    .await
    .unwrap();
    assert_eq!(b5.disks.len(), 1);
    assert_incremental(&b5, "disk0", &b4.id);
    assert_eq!(read.take(), BTreeMap::from([("disk0".into(), MIB)]));
    assert_eq!(restore_all(&repo, &b5.id, dir.path()).await["disk0"], ref5);

    assert!(repo.verify(&VerifyOptions::default()).await.unwrap().ok);
    assert!(leftovers(&work).is_empty(), "{:?}", leftovers(&work));
    assert!(processes_using(&work).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_vm_backup_failing_on_one_disk_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path()).await;
    let work = dir.path().join("work");
    let opts = LiveBackupOptions::new(&work);
    let img0 = dir.path().join("disk0.qcow2");
    let img1 = dir.path().join("disk1.qcow2");
    random_qcow2(&img0, 2);
    random_qcow2(&img1, 2);
    let disks = [stopped("disk0", &img0), stopped("disk1", &img1)];
    let b1 = backup_stopped_disks(&repo, &disks, meta(), &opts, &|_| {})
        .await
        .unwrap();
    let bitmaps0 = image_bitmaps(&img0);

    // disk0's qemu-nbd is already serving when disk1 turns out not to be a qcow2 image.
    let bad = dir.path().join("bad.qcow2");
    std::fs::write(&bad, vec![0x42u8; MIB as usize]).unwrap();
    let broken = [stopped("disk0", &img0), stopped("disk1", &bad)];
    let err = backup_stopped_disks(&repo, &broken, meta(), &opts, &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("qemu-img info"), "{err}");
    assert!(leftovers(&work).is_empty(), "{:?}", leftovers(&work));
    assert!(
        processes_using(&work).is_empty(),
        "{:?}",
        processes_using(&work)
    );
    assert_eq!(
        repo.latest_backup("default", "db1")
            .await
            .unwrap()
            .unwrap()
            .id,
        b1.id
    );
    assert_eq!(image_bitmaps(&img0), bitmaps0, "bitmaps untouched");

    // The next good backup is still incremental on both disks.
    let b2 = backup_stopped_disks(&repo, &disks, meta(), &opts, &|_| {})
        .await
        .unwrap();
    assert_incremental(&b2, "disk0", &b1.id);
    assert_incremental(&b2, "disk1", &b1.id);
    assert_eq!(b2.stats.bytes_read, 0);
    let r2 = restore_all(&repo, &b2.id, dir.path()).await;
    assert!(r2["disk0"] == reference(&img0) && r2["disk1"] == reference(&img1));
}

#[tokio::test]
async fn stopped_vm_backup_refuses_bad_disk_lists() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path()).await;
    let work = dir.path().join("work");
    let opts = LiveBackupOptions::new(&work);
    let img0 = dir.path().join("disk0.qcow2");
    let img1 = dir.path().join("disk1.qcow2");
    random_qcow2(&img0, 1);
    random_qcow2(&img1, 1);
    let cases: [(&str, Vec<StoppedDisk>, &str); 4] = [
        ("empty list", vec![], "no disks"),
        (
            "duplicate name",
            vec![stopped("disk0", &img0), stopped("disk0", &img1)],
            "disk disk0 is given twice",
        ),
        (
            "same image twice",
            vec![stopped("disk0", &img0), stopped("disk1", &img0)],
            "is given twice",
        ),
        ("empty name", vec![stopped("", &img0)], "empty name"),
    ];
    for (what, disks, message) in cases {
        let err = backup_stopped_disks(&repo, &disks, meta(), &opts, &|_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackupError::InvalidArgument(_)) && err.to_string().contains(message),
            "{what}: {err}"
        );
    }
    // Refused before anything was started or written.
    assert!(repo.backup_ids().await.unwrap().is_empty());
    assert!(image_bitmaps(&img0).is_empty() && image_bitmaps(&img1).is_empty());
    assert!(!work.exists());
}

/// A TCG VM (the tiny image) with two qcow2 disks, `disk0` and `disk1` (/dev/vda, /dev/vdb).
async fn boot_two_disks(dir: &Path, images: [&Path; 2]) -> RunningVm {
    let image = build_tiny(&dir.join("image"), &TinyOptions::default())
        .await
        .unwrap();
    let spec = VmSpec {
        name: "backup-multi".into(),
        uuid: "0b6c2f5e-3f7d-4c1a-9a43-5f1e2d7c9b02".into(),
        cpus: 1,
        memory_bytes: 128 << 20,
        accel: Accel::Tcg,
        boot: Boot::Kernel {
            kernel: image.kernel,
            initrd: Some(image.initrd),
            cmdline: image.cmdline,
        },
        disks: images
            .iter()
            .map(|p| DiskSpec {
                path: p.to_path_buf(),
                format: DiskFormat::Qcow2,
                read_only: false,
                backing: Vec::new(),
            })
            .collect(),
        ..Default::default()
    };
    let run = RunDir::new(dir.join("run"));
    let from = console_log_len(&run);
    let vm = launch(&spec, &run).await.unwrap();
    wait_for_text(
        &run.console_log(),
        GUEST_READY_MARKER,
        from,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    // Short lines: the serial console drops characters of long ones under TCG.
    guest(
        &vm,
        "w() { dd if=/dev/urandom of=/dev/$1 bs=4096 count=$3 seek=$2; }",
        1,
    )
    .await;
    vm
}

/// Runs a shell line in the guest and waits for it to finish.
async fn guest(vm: &RunningVm, line: &str, n: u32) {
    let from = console_log_len(vm.run_dir());
    send_console_line(vm.run_dir(), &format!("{line}; sync; echo done-$(({n}+0))"))
        .await
        .unwrap();
    wait_for_text(
        &vm.run_dir().console_log(),
        &format!("done-{n}"),
        from,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_vm_with_two_disks_backs_up_each_disk_on_its_own_bitmap() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path()).await;
    let work = dir.path().join("work");
    let opts = LiveBackupOptions::new(&work);
    let img0 = dir.path().join("disk0.qcow2");
    let img1 = dir.path().join("disk1.qcow2");
    random_qcow2(&img0, 6);
    random_qcow2(&img1, 10);
    let vm = boot_two_disks(dir.path(), [&img0, &img1]).await;
    let live = |name: &str, node: &str| LiveDisk {
        name: name.into(),
        node: node.into(),
        format: DiskFormat::Qcow2,
    };
    let disks = [live("disk0", "disk0"), live("disk1", "disk1")];
    let read = ReadPerDisk::default();

    // Bad lists are refused before QEMU is touched; a disk QEMU does not have fails the
    // backup without leaving the other disk's fleecing image behind.
    for (bad, message) in [
        (vec![], "no disks"),
        (
            vec![live("disk0", "disk0"), live("disk0", "disk1")],
            "disk disk0 is given twice",
        ),
        (
            vec![live("disk0", "disk0"), live("disk1", "disk0")],
            "block node disk0 is given twice",
        ),
        (
            vec![live("disk0", "disk0"), live("disk1", "disk9")],
            "block node disk9 not found",
        ),
    ] {
        let err = backup_running_vm(vm.qmp(), &bad, &repo, meta(), &opts, &|_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
    for node in ["disk0", "disk1"] {
        assert!(node_state(vm.qmp(), node).await.unwrap().1.is_empty());
    }
    assert!(leftovers(&work).is_empty(), "{:?}", leftovers(&work));

    // Backup 1 (VM paused, so that the references are the same instant): both full.
    vm.qmp().stop().await.unwrap();
    let ref1 = [reference(&img0), reference(&img1)];
    let b1 = backup_running_vm(vm.qmp(), &disks, &repo, meta(), &opts, &|p| read.record(p))
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    assert_full(&b1, "disk0", "first backup");
    assert_full(&b1, "disk1", "first backup");
    assert_eq!(
        read.take(),
        BTreeMap::from([("disk0".into(), 6 * MIB), ("disk1".into(), 10 * MIB)])
    );

    // The guest writes to its second disk only, in two different 1 MiB chunks.
    guest(&vm, "w vdb 300 1", 2).await; // 1 MiB + 176 KiB
    guest(&vm, "w vdb 2000 2", 3).await; // 7 MiB + 832 KiB
    vm.qmp().stop().await.unwrap();
    let ref2 = [reference(&img0), reference(&img1)];
    assert_eq!(ref2[0], ref1[0]);
    assert_ne!(ref2[1], ref1[1]);
    let b2 = backup_running_vm(vm.qmp(), &disks, &repo, meta(), &opts, &|p| read.record(p))
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    assert_incremental(&b2, "disk0", &b1.id);
    assert_incremental(&b2, "disk1", &b1.id);
    assert_eq!(
        read.take(),
        BTreeMap::from([("disk1".into(), 2 * MIB)]),
        "only disk1's two dirty chunks are read"
    );
    assert_eq!(b2.stats.chunks_clean, 6 + 8);
    // One bitmap per node: the one backup 2 recorded for that disk.
    for d in &b2.disks {
        let (_, bitmaps) = node_state(vm.qmp(), &d.name).await.unwrap();
        let names: Vec<&str> = bitmaps.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, [d.bitmap.as_ref().unwrap().name.as_str()]);
    }

    // Writes after the backup do not leak into it.
    guest(&vm, "w vda 10 4", 4).await;
    let r1 = restore_all(&repo, &b1.id, dir.path()).await;
    let r2 = restore_all(&repo, &b2.id, dir.path()).await;
    assert!(r1["disk0"] == ref1[0] && r1["disk1"] == ref1[1]);
    assert!(r2["disk0"] == ref2[0] && r2["disk1"] == ref2[1]);

    let info = vm.shutdown(Duration::from_secs(30)).await.unwrap();
    assert!(info.clean, "{info:?}");
    assert!(leftovers(&work).is_empty(), "{:?}", leftovers(&work));
}

/// A side file (a UEFI variable store beside the disks) is read as it is into the same
/// backup, restores byte for byte, and a side file given in another format than raw is
/// refused before anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_file_is_backed_up_and_restored_with_the_disks() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path()).await;
    let img0 = dir.path().join("disk0.qcow2");
    random_qcow2(&img0, 2);
    let vars = dir.path().join("efivars.fd");
    let mut store = vec![0xffu8; 540_672];
    store[4096..4096 + 17].copy_from_slice(b"moved-with-the-vm");
    std::fs::write(&vars, &store).unwrap();
    let mut opts = LiveBackupOptions::new(dir.path().join("work"));
    opts.side_files.push(StoppedDisk {
        name: "efivars".into(),
        path: vars.clone(),
        format: DiskFormat::Raw,
    });
    let disks = [stopped("disk0", &img0)];
    let b = backup_stopped_disks(&repo, &disks, meta(), &opts, &|_| {})
        .await
        .unwrap();
    let names: Vec<&str> = b.disks.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["disk0", "efivars"]);
    assert_full(&b, "efivars", "raw image");
    let restored = restore_all(&repo, &b.id, dir.path()).await;
    assert_eq!(restored["efivars"], store);
    assert_eq!(restored["disk0"], reference(&img0));

    opts.side_files[0].format = DiskFormat::Qcow2;
    let before = repo.backup_ids().await.unwrap().len();
    let err = backup_stopped_disks(&repo, &disks, meta(), &opts, &|_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("raw file"), "{err}");
    assert_eq!(repo.backup_ids().await.unwrap().len(), before);
}
