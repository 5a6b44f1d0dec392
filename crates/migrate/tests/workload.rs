//! A guest running the benchmark workload (heartbeat, realistic memory, hot set, disk data)
//! migrates with its disk; its memory, page cache and disk checksums match before and after,
//! and its heartbeat goes on at the destination.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use novacron_migrate::testing::{self, Heartbeat, WorkloadConfig};
use novacron_migrate::{
    CancellationToken, Decision, DestinationParams, DiskMirror, MigrationProgress, MirrorSync,
    SourceParams,
};
use novacron_qemu::{DiskFormat, DiskSpec};

/// Where the guest workload program is built (kept between runs: cargo rebuilds only on change).
fn workload_target_dir() -> std::path::PathBuf {
    option_env!("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("novacron-target"))
        .join("guest-workload")
}

/// A raw base image of `mib` MiB, three quarters filled with pseudo-random data.
fn base_image(path: &std::path::Path, mib: usize) {
    let mut data = vec![0u8; mib << 20];
    novacron_migrate::util::fill_pseudo_random(&mut data[..(mib << 20) * 3 / 4], 77);
    std::fs::write(path, &data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotset_guest_with_disk_migrates_intact_and_keeps_beating() {
    init_tracing();
    let reaper = Reaper::default();
    let root = short_dir("wl");
    let bin =
        tokio::task::spawn_blocking(|| testing::build_workload_binary(&workload_target_dir()))
            .await
            .unwrap()
            .unwrap();
    let cfg = WorkloadConfig::scaled(256, 64, "hotset");
    let tiny = testing::build_guest(&root.join("img"), &bin, &cfg)
        .await
        .unwrap();
    let base = root.join("base.raw");
    base_image(&base, 64);
    let (a_disk, b_disk) = (root.join("a.qcow2"), root.join("b.qcow2"));
    novacron_qemu::create_overlay(&base, DiskFormat::Raw, &a_disk, None)
        .await
        .unwrap();
    novacron_qemu::create_overlay(&base, DiskFormat::Raw, &b_disk, None)
        .await
        .unwrap();
    let disk = |p: &std::path::Path| DiskSpec {
        path: p.to_path_buf(),
        format: DiskFormat::Qcow2,
        read_only: false,
        backing: Vec::new(),
    };
    let mut src_spec = spec("mig-wl", &tiny, 256, vec![disk(&a_disk)]);
    // Not a multiple of 256 KiB: see novacron_migrate::compat.
    src_spec.memory_bytes = novacron_migrate::compat::tcg_safe_ram_bytes(256);
    let base_args = src_spec.extra_args.clone();
    src_spec
        .extra_args
        .extend(testing::heartbeat_args(&root.join("a/hb.sock")));
    let src = reaper.launch(&src_spec, &root.join("a")).await;
    let hb = Heartbeat::new();
    hb.attach("a", &root.join("a/hb.sock")).unwrap();
    let t0 = Instant::now();
    let hb2 = hb.clone();
    let ready =
        tokio::task::spawn_blocking(move || hb2.wait_line("#READY", t0, Duration::from_secs(300)))
            .await
            .unwrap()
            .unwrap();
    eprintln!("guest: {ready}");
    let mut dst_spec = incoming(&src_spec, vec![disk(&b_disk)]);
    dst_spec.extra_args = base_args;
    dst_spec
        .extra_args
        .extend(testing::heartbeat_args(&root.join("b/hb.sock")));
    let dst = reaper.launch(&dst_spec, &root.join("b")).await;
    hb.attach("b", &root.join("b/hb.sock")).unwrap();
    // Let the workload run a little before moving.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (s_src, s_dst) = session_pair().await;
    let cancel = CancellationToken::new();
    let (ptx, _prx) = tokio::sync::watch::channel(MigrationProgress::default());
    let dparams = DestinationParams {
        work_dir: root.join("wd-b"),
        disks: vec!["disk0".into()],
        base_images: vec![base.clone()],
        ..Default::default()
    };
    let dtask = spawn_destination(&dst, s_dst, dparams, &cancel);
    let sparams = SourceParams {
        work_dir: root.join("wd-a"),
        disks: vec![DiskMirror {
            node: "disk0".into(),
            sync: MirrorSync::Top,
        }],
        deadline: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    let started = Instant::now();
    let handover = novacron_migrate::source(src.qmp(), &s_src, &sparams, &ptx, &cancel)
        .await
        .unwrap();
    let ready_dst = dtask.await.unwrap().unwrap();
    let released = handover.release_destination().await.unwrap();
    assert_eq!(
        ready_dst.wait_decision(Duration::from_secs(10)).await,
        Decision::Go
    );
    ready_dst.resume().await.unwrap();
    let resumed = Instant::now();
    let summary = released.wait_resumed(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (gap, beats) = hb.max_gap(started, Instant::now());
    eprintln!(
        "summary {summary:?}\nmigration {:?}, guest gap {gap:?}, {beats} beats, base pages {}, delta pages {}",
        resumed - started,
        summary.wire.base_pages,
        summary.wire.hde_delta_pages
    );
    assert!(
        hb.last_beat("b").is_some_and(|t| t > resumed),
        "the guest beats at the destination"
    );
    assert!(gap < Duration::from_secs(3), "guest paused for {gap:?}");
    // The guest's heartbeat cannot stop for less than the real pause (STOP to RESUME).
    let pause = summary.downtime_ms.expect("pause measured");
    assert!(
        pause as f64 <= gap.as_secs_f64() * 1000.0 + summary.downtime_bound_ms.unwrap_or(0.0) + 5.0,
        "pause {pause} ms, guest gap {gap:?}"
    );
    assert!(
        summary.wire.base_pages > 1000,
        "page cache travelled as base references"
    );
    let t1 = Instant::now();
    hb.send("b", b"V").unwrap();
    let hb3 = hb.clone();
    let after =
        tokio::task::spawn_blocking(move || hb3.wait_line("#AFTER", t1, Duration::from_secs(180)))
            .await
            .unwrap()
            .unwrap();
    eprintln!("guest: {after}");
    testing::integrity(&ready, &after).unwrap();
    src.shutdown(Duration::from_secs(1)).await.unwrap();
    dst.shutdown(Duration::from_secs(1)).await.unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
