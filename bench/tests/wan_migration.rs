//! A tiny end-to-end run of the migration benchmark: a 128 MiB TCG guest running the hot-set
//! workload moves over a 200 Mbit/s, 10 ms link with NovaCron and with QEMU's default migration.
//! Needs root (namespaces, TUN) and QEMU.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use novacron_bench::migration::{self, MigrationBenchConfig};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn tiny_migration_bench_moves_intact_guests() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, TUN devices)");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
    let work_dir = std::env::temp_dir().join(format!("nbm-test-{}", std::process::id()));
    let cfg = MigrationBenchConfig {
        rate_bps: 200_000_000,
        rtt: Duration::from_millis(10),
        loss: 0.0,
        memory_mib: 128,
        workload: "hotset".into(),
        systems: vec!["novacron".into(), "qemu-default".into()],
        limit: Duration::from_secs(60),
        warm_up: Duration::from_secs(1),
        work_dir: work_dir.clone(),
        netns_prefix: "nbmt-".into(),
        ..MigrationBenchConfig::default()
    };
    let report = migration::run(&cfg).unwrap();
    eprintln!("{}", migration::render_table(&report));
    assert_eq!(report.results.len(), 2);
    for r in &report.results {
        assert!(r.completed, "{r:?}");
        assert_eq!(r.integrity, "ok", "{r:?}");
        assert!(r.wire_bytes > 0, "{r:?}");
        assert!(
            r.guest_gap_ms > 0.0 && r.guest_gap_ms < 10_000.0,
            "heartbeat measured: {r:?}"
        );
        assert!(r.downtime_ms.is_some(), "{r:?}");
        // STOP to RESUME holds QEMU's source-side figure, and the guest saw a pause.
        assert!(r.downtime_ms >= r.source_downtime_ms, "{r:?}");
        assert!(
            r.guest_pause_ms > 0.0 && r.guest_pause_ms <= r.guest_gap_ms + 5.0,
            "{r:?}"
        );
    }
    assert!(!work_dir.exists(), "scratch files removed");
    let json = serde_json::to_value(&report).unwrap();
    for k in [
        "system",
        "total_seconds",
        "downtime_ms",
        "source_downtime_ms",
        "guest_pause_ms",
        "guest_gap_ms",
        "wire_bytes",
        "cpu_seconds",
        "integrity",
    ] {
        assert!(json["results"][0].get(k).is_some(), "{k}");
    }
}
