//! A tiny end-to-end run of the migration benchmark: a 128 MiB TCG guest running the hot-set
//! workload moves over a 200 Mbit/s, 10 ms link with NovaCron and with QEMU's default migration.
//! Needs root (namespaces, TUN) and QEMU.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use novacron_bench::matrix;
use novacron_bench::migration::{self, MigrationBenchConfig};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

#[test]
fn tiny_migration_bench_moves_intact_guests() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, TUN devices)");
        return;
    }
    init_tracing();
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
    // The information floor: every page of RAM seen, the hot set among the rewritten pages,
    // and at least the guest's incompressible data, at most its whole RAM.
    let floor = report.floor.as_ref().expect("floor computed");
    assert_eq!(report.floor_bytes, Some(floor.bytes));
    assert_eq!(floor.ram_pages, report.guest.ram_bytes / 4096);
    assert!(floor.distinct_pages < floor.ram_pages, "{floor:?}");
    let hot_pages = report.guest.contents.hotset_mib * 256;
    assert!(floor.rewritten_pages >= hot_pages, "{floor:?}");
    let incompressible = report.guest.contents.incompressible_mib << 20;
    assert!(
        floor.bytes > incompressible && floor.bytes < report.guest.ram_bytes,
        "{floor:?}"
    );
    assert!(json["floor_bytes"].as_u64().is_some());
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

/// A one-link, two-workload grid with NovaCron alone: the new guest contents (repeats at
/// unaligned offsets, copies of incompressible data, bursts of rewrites) survive the move, and
/// the JSON has the contract's shape.
#[test]
fn a_small_matrix_reports_each_cell_with_its_floor() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, TUN devices)");
        return;
    }
    init_tracing();
    let work_dir = std::env::temp_dir().join(format!("nbm-matrix-{}", std::process::id()));
    let base = MigrationBenchConfig {
        memory_mib: 160,
        systems: vec!["novacron".into()],
        limit: Duration::from_secs(90),
        warm_up: Duration::from_secs(1),
        work_dir: work_dir.clone(),
        netns_prefix: "nbmx-".into(),
        ..MigrationBenchConfig::default()
    };
    let links = [matrix::parse_link("200mbit/10ms/0%").unwrap()];
    let workloads = ["mixed".to_string(), "bursty".to_string()];
    let mut seen = Vec::new();
    let report = matrix::run(&base, &links, &workloads, &mut |i, n, c| {
        seen.push((i, n, c.workload.clone()))
    })
    .unwrap();
    eprintln!("{}", matrix::render_table(&report));
    assert_eq!(
        seen,
        vec![(1, 2, "mixed".to_string()), (2, 2, "bursty".to_string())]
    );
    let json = serde_json::to_value(&report).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2);
    for c in cells {
        assert_eq!(c["link"]["rate_bps"], 200_000_000);
        assert_eq!(c["link"]["rtt_ms"], 10.0);
        assert_eq!(c["link"]["loss_percent"], 0.0);
        assert!(c.get("error").is_none(), "{c}");
        assert!(c["floor_bytes"].as_u64().unwrap() > 0, "{c}");
        let r = &c["results"][0];
        assert_eq!(r["system"], "novacron");
        assert_eq!(r["completed"], true, "{c}");
        assert_eq!(r["integrity"], "ok", "{c}");
        for k in [
            "total_seconds",
            "downtime_ms",
            "guest_pause_ms",
            "wire_bytes",
        ] {
            assert!(r[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {c}");
        }
        assert_eq!(c["targets"]["novacron_completed"], true);
    }
    // The mixed guest's repeats do not line up with pages: most of its pages are distinct.
    let mixed = report.cells[0].floor.as_ref().unwrap();
    assert!(mixed.distinct_pages > mixed.ram_pages / 2, "{mixed:?}");
    assert!(!work_dir.exists(), "scratch files removed");
}
