//! A guest that dirties memory faster than the link carries it: pre-copy alone does not
//! converge (the deadline ends it, the VM keeps running on the source); with throttling the
//! policy escalates, QEMU's auto-converge slows the guest by the model's amount, and the same
//! guest lands, intact, within the limit on its pause. TCG guests on a shared 2-core host: the
//! test asserts the outcome (lands or not, throttle applied, pause bound), not timings.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use novacron_migrate::testing::{self, Heartbeat, WorkloadConfig};
use novacron_migrate::{
    CancellationToken, Decision, DestinationParams, MigrateError, MigrationProgress, SourceParams,
};
use novacron_qemu::{DiskFormat, DiskSpec, RunningVm};

fn workload_target_dir() -> std::path::PathBuf {
    option_env!("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("novacron-target"))
        .join("guest-workload")
}

/// Link cap of both attempts, bits/s: 25 MB/s, far below what the unthrottled guest rewrites.
const LINK_BPS: u64 = 200_000_000;
const MAX_DOWNTIME: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_outrunning_the_link_lands_only_thanks_to_the_throttle() {
    init_tracing();
    let reaper = Reaper::default();
    let root = short_dir("conv");
    let bin =
        tokio::task::spawn_blocking(|| testing::build_workload_binary(&workload_target_dir()))
            .await
            .unwrap()
            .unwrap();
    // Random pages of a 64 MiB region rewritten whole (incompressible) as fast as the vCPU
    // goes (a rate it cannot reach): unthrottled, every pass finds the whole region dirty
    // again, far more than the pause can carry. A TCG vCPU throttled to 99 % still rewrites
    // about 2000 pages (8 MB) a second: the link must carry more than that, so the cap is set
    // above it, and the first attempt is what shows that it is not enough without throttling.
    let mut cfg = WorkloadConfig::scaled(256, 64, "dirty:2000000");
    cfg.dirty_mib = 64;
    let tiny = testing::build_guest(&root.join("img"), &bin, &cfg)
        .await
        .unwrap();
    let base = root.join("base.raw");
    std::fs::write(&base, vec![0u8; 64 << 20]).unwrap();
    // Shared storage: both QEMUs open the same overlay (no disk crosses the link).
    let overlay = root.join("disk.qcow2");
    novacron_qemu::create_overlay(&base, DiskFormat::Raw, &overlay, None)
        .await
        .unwrap();
    let disk = DiskSpec {
        path: overlay.clone(),
        format: DiskFormat::Qcow2,
        read_only: false,
        backing: Vec::new(),
    };
    let mut src_spec = spec("mig-conv", &tiny, 256, vec![disk.clone()]);
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
    let dst_spec = |n: u32| {
        let mut s = incoming(&src_spec, vec![disk.clone()]);
        s.extra_args = base_args.clone();
        s.extra_args
            .extend(testing::heartbeat_args(&root.join(format!("b{n}/hb.sock"))));
        s
    };

    // 1. Pre-copy without throttling: never converges; the deadline rolls it back.
    let dst1 = reaper.launch(&dst_spec(1), &root.join("b1")).await;
    let r = attempt(&src, &dst1, &root, 1, false, Duration::from_secs(45)).await;
    let (e, progress) = match r {
        Err(e) => e,
        Ok(_) => panic!("pre-copy without throttling converged: the test's guest is too slow"),
    };
    eprintln!("without throttle: {e}; last progress {progress:?}");
    assert!(matches!(e, MigrateError::DeadlineExceeded { .. }), "{e}");
    assert_eq!(progress.throttle_percent, 0);
    assert!(src.qmp().query_status().await.unwrap().running);
    let _ = dst1.kill().await;

    // 2. The same guest with the policy's throttle: it lands.
    let dst2 = reaper.launch(&dst_spec(2), &root.join("b2")).await;
    hb.attach("b2", &root.join("b2/hb.sock")).unwrap();
    let started = Instant::now();
    let (summary, resumed) =
        match attempt(&src, &dst2, &root, 2, true, Duration::from_secs(240)).await {
            Ok(x) => x,
            Err((e, p)) => panic!("with throttling: {e}; last progress {p:?}"),
        };
    eprintln!("with throttle: {summary:?} in {:?}", resumed - started);
    assert!(summary.max_throttle_percent > 0, "{summary:?}");
    let pause = summary.downtime_ms.unwrap();
    assert!(
        pause <= MAX_DOWNTIME.as_millis() as u64 + 200,
        "real pause {pause} ms against a {MAX_DOWNTIME:?} limit: {summary:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        hb.last_beat("b2").is_some_and(|t| t > resumed),
        "the guest beats at the destination"
    );
    let t1 = Instant::now();
    hb.send("b2", b"V").unwrap();
    let hb3 = hb.clone();
    let after =
        tokio::task::spawn_blocking(move || hb3.wait_line("#AFTER", t1, Duration::from_secs(300)))
            .await
            .unwrap()
            .unwrap();
    eprintln!("guest: {after}");
    testing::integrity(&ready, &after).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

/// One migration attempt from `src` to `dst`; on failure, the error and the last progress.
async fn attempt(
    src: &RunningVm,
    dst: &RunningVm,
    root: &std::path::Path,
    n: u32,
    throttle: bool,
    deadline: Duration,
) -> Result<(novacron_migrate::MigrationSummary, Instant), (MigrateError, MigrationProgress)> {
    let (s_src, s_dst) = session_pair().await;
    let cancel = CancellationToken::new();
    let (ptx, prx) = tokio::sync::watch::channel(MigrationProgress::default());
    let dparams = DestinationParams {
        work_dir: root.join(format!("wd{n}b")),
        ..Default::default()
    };
    let dtask = spawn_destination(dst, s_dst, dparams, &cancel);
    let sparams = SourceParams {
        work_dir: root.join(format!("wd{n}a")),
        max_downtime: MAX_DOWNTIME,
        bandwidth_limit_bps: Some(LINK_BPS),
        deadline: Some(deadline),
        auto_converge: throttle,
        ..Default::default()
    };
    let handover = match novacron_migrate::source(src.qmp(), &s_src, &sparams, &ptx, &cancel).await
    {
        Ok(h) => h,
        Err(e) => {
            let _ = dtask.await;
            let p = prx.borrow().clone();
            return Err((e, p));
        }
    };
    let ready = dtask.await.unwrap().unwrap();
    let released = handover.release_destination().await.unwrap();
    assert_eq!(
        ready.wait_decision(Duration::from_secs(10)).await,
        Decision::Go
    );
    ready.resume().await.unwrap();
    let resumed = Instant::now();
    Ok((
        released.wait_resumed(Duration::from_secs(10)).await,
        resumed,
    ))
}
