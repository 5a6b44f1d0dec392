//! The switch-over of a live migration with a disk mirror, repeated many times while the guest
//! writes to its disk: the VM hops from QEMU to QEMU, and every hop must succeed, leave both
//! overlays identical as of the stop, and keep the guest running.
//!
//! It guards the window between `migrate-continue` and QEMU leaving `pre-switchover`, where a
//! second `migrate-continue` failed the migration with "Migration not in expected state:
//! device". The race is rare per hop, so the test hops many times.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use novacron_migrate::{
    CancellationToken, Decision, DestinationParams, DiskMirror, MigrationProgress, MirrorSync,
    SourceParams,
};
use novacron_qemu::{DiskFormat, DiskSpec};

/// Hops per run; `NOVACRON_SWITCHOVER_HOPS` overrides.
const DEFAULT_HOPS: usize = 40;

fn hops() -> usize {
    std::env::var("NOVACRON_SWITCHOVER_HOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_HOPS)
}

fn qemu_img_compare(a: &std::path::Path, b: &std::path::Path) -> (bool, String) {
    // -U: the destination QEMU still holds its overlay (paused, not resumed).
    let out = std::process::Command::new("qemu-img")
        .args(["compare", "-U", "-f", "qcow2", "-F", "qcow2"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.contains("identical"), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_over_with_disk_mirror_and_guest_writes_succeeds_every_time() {
    init_tracing();
    let reaper = Reaper::default();
    let root = short_dir("hop");
    let tiny = novacron_qemu::build_tiny(&root.join("img"), &Default::default())
        .await
        .unwrap();
    let base = root.join("base.raw");
    let mut data = vec![0u8; 16 << 20];
    novacron_migrate::util::fill_pseudo_random(&mut data[..8 << 20], 5);
    std::fs::write(&base, &data).unwrap();
    drop(data);
    let overlay = |i: usize| root.join(format!("d{i}.qcow2"));
    let disk = |p: std::path::PathBuf| DiskSpec {
        path: p,
        format: DiskFormat::Qcow2,
        read_only: false,
        backing: Vec::new(),
    };
    novacron_qemu::create_overlay(&base, DiskFormat::Raw, &overlay(0), None)
        .await
        .unwrap();
    let mut spec = spec("mig-hop", &tiny, 128, vec![disk(overlay(0))]);
    // Not a multiple of 256 KiB: see novacron_migrate::compat.
    spec.memory_bytes = novacron_migrate::compat::tcg_safe_ram_bytes(128);
    let mut src = reaper.launch(&spec, &root.join("vm0")).await;
    wait_ready(&src).await;
    // A writer that never stops: every switch-over happens under guest disk writes.
    console_roundtrip(
        &src,
        "(i=0; while true; do i=$((i+1)); echo $i | dd of=/dev/vda bs=512 seek=$((i % 500 + 20000)) conv=fsync 2>/dev/null; done) & echo WRITER-$((2+2))",
        "WRITER-4",
    )
    .await;
    let started = Instant::now();
    for hop in 1..=hops() {
        let t = Instant::now();
        novacron_qemu::create_overlay(&base, DiskFormat::Raw, &overlay(hop), None)
            .await
            .unwrap();
        let dst = reaper
            .launch(
                &incoming(&spec, vec![disk(overlay(hop))]),
                &root.join(format!("vm{hop}")),
            )
            .await;
        let (s_src, s_dst) = session_pair().await;
        let cancel = CancellationToken::new();
        let (ptx, _prx) = tokio::sync::watch::channel(MigrationProgress::default());
        let dparams = DestinationParams {
            work_dir: root.join(format!("wd{hop}b")),
            disks: vec!["disk0".into()],
            base_images: vec![base.clone()],
            ..Default::default()
        };
        let dtask = spawn_destination(&dst, s_dst, dparams, &cancel);
        let sparams = SourceParams {
            work_dir: root.join(format!("wd{hop}a")),
            disks: vec![DiskMirror {
                node: "disk0".into(),
                sync: MirrorSync::Top,
            }],
            deadline: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let handover = novacron_migrate::source(src.qmp(), &s_src, &sparams, &ptx, &cancel)
            .await
            .unwrap_or_else(|e| panic!("hop {hop}: source: {e}"));
        let ready = dtask
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("hop {hop}: destination: {e}"));
        let released = handover.release_destination().await.unwrap();
        assert_eq!(
            ready.wait_decision(Duration::from_secs(10)).await,
            Decision::Go,
            "hop {hop}"
        );
        // The source is stopped and the destination not resumed yet: both overlays must hold
        // the same disk, as of the stop, although the guest was writing.
        src.shutdown(Duration::from_secs(1)).await.unwrap();
        let (same, text) = qemu_img_compare(&overlay(hop - 1), &overlay(hop));
        assert!(same, "hop {hop}: qemu-img compare: {text}");
        ready.resume().await.unwrap();
        let summary = released.wait_resumed(Duration::from_secs(10)).await;
        assert!(summary.downtime_ms.is_some(), "hop {hop}: {summary:?}");
        assert!(dst.qmp().query_status().await.unwrap().running, "hop {hop}");
        console_roundtrip(
            &dst,
            &format!("echo HOP-$(({hop}*1000+7))"),
            &format!("HOP-{}", hop * 1000 + 7),
        )
        .await;
        eprintln!("hop {hop} done in {:?}", t.elapsed());
        let _ = std::fs::remove_file(overlay(hop - 1));
        src = dst;
    }
    eprintln!("{} hops in {:?}", hops(), started.elapsed());
    src.shutdown(Duration::from_secs(1)).await.unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
