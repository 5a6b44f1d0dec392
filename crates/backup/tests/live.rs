//! Live backup of a real TCG VM (the tiny image) with a qcow2 data disk: fleecing + persistent
//! dirty bitmap + NBD, incremental reads only the chunks the guest wrote, bitmaps survive a
//! clean VM restart, an unclean QEMU exit makes the bitmap inconsistent and the next backup
//! a (deduplicated) full read; every restore equals `qemu-img convert` of the point in time.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use novacron_backup::live::{
    LiveBackupOptions, LiveDisk, backup_running_vm, backup_stopped_disk, node_state,
};
use novacron_backup::*;
use novacron_qemu::console::{console_log_len, send_console_line, wait_for_text};
use novacron_qemu::{
    Accel, Boot, DiskFormat, DiskSpec, GUEST_READY_MARKER, RunDir, RunningVm, TinyOptions, VmSpec,
    build_tiny, launch,
};

const MIB: u64 = 1 << 20;
const DISK_BYTES: u64 = 16 * MIB;

async fn spec(dir: &Path, disk: &Path) -> VmSpec {
    let image = build_tiny(&dir.join("image"), &TinyOptions::default())
        .await
        .unwrap();
    VmSpec {
        name: "backup-live".into(),
        uuid: "6f0c1f1e-8a8e-4f0e-9c55-2d2b8f3f0b01".into(),
        cpus: 1,
        memory_bytes: 128 << 20,
        accel: Accel::Tcg,
        boot: Boot::Kernel {
            kernel: image.kernel,
            initrd: Some(image.initrd),
            cmdline: image.cmdline,
        },
        disks: vec![DiskSpec {
            path: disk.to_path_buf(),
            format: DiskFormat::Qcow2,
            read_only: false,
            backing: Vec::new(),
        }],
        ..Default::default()
    }
}

async fn boot(spec: &VmSpec, run: &RunDir) -> RunningVm {
    let from = console_log_len(run);
    let vm = launch(spec, run).await.unwrap();
    wait_for_text(
        &run.console_log(),
        GUEST_READY_MARKER,
        from,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let from = console_log_len(run);
    send_console_line(
        run,
        "w() { dd if=/dev/urandom of=/dev/vda bs=4096 count=$2 seek=$1; }; echo def-$((1+1))",
    )
    .await
    .unwrap();
    wait_for_text(&run.console_log(), "def-2", from, Duration::from_secs(60))
        .await
        .unwrap();
    vm
}

/// Runs a shell line in the guest and waits for it to finish.
async fn guest(vm: &RunningVm, line: &str, n: u32) {
    let from = console_log_len(vm.run_dir());
    let marker = format!("done-{n}");
    send_console_line(vm.run_dir(), &format!("{line}; sync; echo done-$(({n}+0))"))
        .await
        .unwrap();
    wait_for_text(
        &vm.run_dir().console_log(),
        &marker,
        from,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

/// Writes `count` 4 KiB blocks of fresh random data at 4 KiB block `block` of the data disk
/// (through the shell function `w` that `boot` defines: the serial console drops characters of
/// long lines under TCG, so lines stay short).
fn dd(block: u64, count: u64) -> String {
    format!("w {block} {count}")
}

/// The disk as QEMU has it now (VM paused, guest data flushed): the reference point in time.
fn reference(disk: &Path, out: &Path) -> Vec<u8> {
    let st = std::process::Command::new("qemu-img")
        .args(["convert", "-U", "-f", "qcow2", "-O", "raw"])
        .arg(disk)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(out).unwrap()
}

async fn restored(repo: &Repository, id: &BackupId, dir: &Path) -> Vec<u8> {
    let t = dir.join(format!("restored-{id}.raw"));
    repo.restore_disk(id, "vdb", &t, &RestoreOptions::default())
        .await
        .unwrap();
    let b = std::fs::read(&t).unwrap();
    std::fs::remove_file(&t).unwrap();
    b
}

fn disks() -> Vec<LiveDisk> {
    vec![LiveDisk {
        name: "vdb".into(),
        node: "disk0".into(),
        format: DiskFormat::Qcow2,
    }]
}

fn meta() -> BackupMeta {
    BackupMeta {
        vm: "web1".into(),
        vm_spec: serde_json::json!({"memory_mib": 128}),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_incremental_backups_with_persistent_bitmaps() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("data.qcow2");
    novacron_qemu::create_blank(&disk, DiskFormat::Qcow2, DISK_BYTES)
        .await
        .unwrap();
    let spec = spec(dir.path(), &disk).await;
    let run = RunDir::new(dir.path().join("run"));
    let repo = Repository::create(
        Arc::new(LocalBackend::new(dir.path().join("repo")).unwrap()),
        CreateOptions {
            key: Some(KeyFile::from_bytes([5; 32])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let opts = LiveBackupOptions::new(dir.path().join("work"));
    let refp = dir.path().join("ref.raw");

    let vm = boot(&spec, &run).await;
    guest(&vm, &dd(0, 1024), 1).await; // 4 MiB at the start
    // Backup 1: full (first backup). VM paused so that the reference is the same instant.
    vm.qmp().stop().await.unwrap();
    let ref1 = reference(&disk, &refp);
    let b1 = backup_running_vm(vm.qmp(), &disks(), &repo, meta(), &opts, &|_| {})
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    match &b1.disks[0].read_mode {
        ReadMode::Full { reason } => assert!(reason.contains("first backup"), "{reason}"),
        m => panic!("{m:?}"),
    }
    assert_eq!(b1.stats.bytes_read, DISK_BYTES);
    let (_, bitmaps) = node_state(vm.qmp(), "disk0").await.unwrap();
    assert_eq!(bitmaps.len(), 1, "{bitmaps:?}");
    assert!(bitmaps[0].persistent && bitmaps[0].recording);

    // Guest writes two 4 KiB blocks in two different 1 MiB chunks.
    guest(&vm, &dd(2048, 1), 2).await; // 8 MiB
    guest(&vm, &dd(3077, 1), 22).await; // 12 MiB + 20 KiB
    vm.qmp().stop().await.unwrap();
    let ref2 = reference(&disk, &refp);
    let b2 = backup_running_vm(vm.qmp(), &disks(), &repo, meta(), &opts, &|_| {})
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    assert!(
        matches!(b2.disks[0].read_mode, ReadMode::Incremental { .. }),
        "{:?}",
        b2.disks[0].read_mode
    );
    assert_eq!(
        b2.stats.bytes_read,
        2 * MIB,
        "only the two dirty chunks are read"
    );
    assert_eq!(b2.stats.chunks_clean, 14);
    let (_, bitmaps) = node_state(vm.qmp(), "disk0").await.unwrap();
    assert_eq!(
        bitmaps.len(),
        1,
        "the previous bitmap is removed: {bitmaps:?}"
    );
    assert_eq!(bitmaps[0].name, b2.disks[0].bitmap.as_ref().unwrap().name);

    // Writes after the backup do not leak into it.
    guest(&vm, &dd(1280, 4), 3).await; // 5 MiB
    assert_eq!(restored(&repo, &b1.id, dir.path()).await, ref1);
    assert_eq!(restored(&repo, &b2.id, dir.path()).await, ref2);

    // Clean restart: the persistent bitmap survives in the qcow2.
    let info = vm.shutdown(Duration::from_secs(30)).await.unwrap();
    assert!(info.clean, "{info:?}");
    let vm = boot(&spec, &run).await;
    vm.qmp().stop().await.unwrap();
    let ref3 = reference(&disk, &refp);
    let b3 = backup_running_vm(vm.qmp(), &disks(), &repo, meta(), &opts, &|_| {})
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    assert!(
        matches!(b3.disks[0].read_mode, ReadMode::Incremental { .. }),
        "{:?}",
        b3.disks[0].read_mode
    );
    assert_eq!(
        b3.stats.bytes_read, MIB,
        "the write made before the restart is found"
    );
    assert_eq!(restored(&repo, &b3.id, dir.path()).await, ref3);

    // Unclean exit of a QEMU that loaded the bitmap from the qcow2 (which marks it in-use
    // there): the next QEMU finds it inconsistent → full read.
    vm.shutdown(Duration::from_secs(30)).await.unwrap();
    let vm = boot(&spec, &run).await;
    guest(&vm, &dd(100, 1), 4).await;
    vm.kill().await.unwrap();
    let vm = boot(&spec, &run).await;
    let (_, bitmaps) = node_state(vm.qmp(), "disk0").await.unwrap();
    assert!(bitmaps.iter().all(|b| b.inconsistent), "{bitmaps:?}");
    vm.qmp().stop().await.unwrap();
    let ref4 = reference(&disk, &refp);
    let b4 = backup_running_vm(vm.qmp(), &disks(), &repo, meta(), &opts, &|_| {})
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    match &b4.disks[0].read_mode {
        ReadMode::Full { reason } => assert!(reason.contains("inconsistent"), "{reason}"),
        m => panic!("expected a full read, got {m:?}"),
    }
    assert_eq!(b4.stats.bytes_read, DISK_BYTES);
    assert!(
        b4.stats.chunks_new <= 2,
        "the full read deduplicates: {:?}",
        b4.stats
    );
    assert_eq!(restored(&repo, &b4.id, dir.path()).await, ref4);
    let (_, bitmaps) = node_state(vm.qmp(), "disk0").await.unwrap();
    assert_eq!(
        bitmaps.len(),
        1,
        "the inconsistent bitmap is cleaned up: {bitmaps:?}"
    );
    assert!(!bitmaps[0].inconsistent);

    // Unclean exit before the new bitmap was ever saved: it is missing → full read.
    guest(&vm, &dd(200, 1), 5).await;
    vm.kill().await.unwrap();
    let vm = boot(&spec, &run).await;
    vm.qmp().stop().await.unwrap();
    let ref5 = reference(&disk, &refp);
    let b5 = backup_running_vm(vm.qmp(), &disks(), &repo, meta(), &opts, &|_| {})
        .await
        .unwrap();
    vm.qmp().cont().await.unwrap();
    match &b5.disks[0].read_mode {
        ReadMode::Full { reason } => assert!(reason.contains("missing"), "{reason}"),
        m => panic!("expected a full read, got {m:?}"),
    }
    assert_eq!(restored(&repo, &b5.id, dir.path()).await, ref5);

    // Stopped VM: backup of the qcow2 file itself, incremental through qemu-nbd.
    guest(&vm, &dd(3500, 2), 6).await;
    vm.shutdown(Duration::from_secs(30)).await.unwrap();
    let ref6 = reference(&disk, &refp);
    let b6 = backup_stopped_disk(
        &repo,
        "vdb",
        &disk,
        DiskFormat::Qcow2,
        meta(),
        &opts,
        &|_| {},
    )
    .await
    .unwrap();
    assert!(
        matches!(b6.disks[0].read_mode, ReadMode::Incremental { .. }),
        "{:?}",
        b6.disks[0].read_mode
    );
    assert_eq!(b6.stats.bytes_read, MIB);
    assert_eq!(restored(&repo, &b6.id, dir.path()).await, ref6);
    // And back to live: the bitmap added by the stopped-disk backup drives the next one.
    let vm = boot(&spec, &run).await;
    guest(&vm, &dd(10, 1), 7).await;
    vm.qmp().stop().await.unwrap();
    let ref7 = reference(&disk, &refp);
    let b7 = backup_running_vm(vm.qmp(), &disks(), &repo, meta(), &opts, &|_| {})
        .await
        .unwrap();
    assert!(
        matches!(b7.disks[0].read_mode, ReadMode::Incremental { .. }),
        "{:?}",
        b7.disks[0].read_mode
    );
    assert_eq!(b7.stats.bytes_read, MIB);
    assert_eq!(restored(&repo, &b7.id, dir.path()).await, ref7);
    vm.shutdown(Duration::from_secs(30)).await.unwrap();
    assert!(repo.verify(&VerifyOptions::default()).await.unwrap().ok);
    // No leftovers of the fleecing.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("work"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
