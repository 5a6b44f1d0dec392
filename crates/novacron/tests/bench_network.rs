//! `novacron bench network` end to end with small parameters: the overlay built by the data
//! plane's reconciler carries TCP between two endpoint namespaces (iperf3), and a control
//! plane with two hollow nodes gets security-group changes into their nftables, and two sites
//! joined by an emulated WAN carry TCP through the overlay sealed by their tunnels, and a TCP
//! stream to a TCG guest lives through the guest's migration to the other site. Checks the
//! JSON a user would read, not the figures (this machine is shared).
//!
//! Needs root (network namespaces), iperf3 and nft, and for the migration part QEMU and
//! dnsmasq; skipped (or that part skipped) with a message without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Hard limit of one bench run; it ends well before on its own.
const LIMIT: Duration = Duration::from_secs(300);

fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Runs `novacron bench network ARGS -o json`: (exit success, stdout, stderr, its pid).
/// Past [`LIMIT`] it gets SIGTERM (the bench removes what it made), then SIGKILL.
fn bench(args: &[&str]) -> (bool, String, String, u32) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_novacron"))
        .args(["bench", "network"])
        .args(args)
        .args(["-o", "json"])
        .env("NOVACRON_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) of the child this test started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bench network {args:?} ran over {LIMIT:?}; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (
        status.success(),
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
        child.id(),
    )
}

fn positive(r: &Value, field: &str) -> f64 {
    let v = r[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number `{field}` in {r}"));
    assert!(v > 0.0, "`{field}` is {v}: {r}");
    v
}

#[test]
fn overlay_throughput_and_rule_propagation_are_reported() {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root for network namespaces");
        return;
    }
    for prog in ["iperf3", "nft"] {
        if !have(prog) {
            eprintln!("skipped: {prog} is not installed (apt-get install iperf3 nftables)");
            return;
        }
    }
    let mut small = vec![
        "--seconds",
        "2",
        "--runs",
        "1",
        "--nodes",
        "2",
        "--ports",
        "5",
        "--changes",
        "3",
        "--timeout-secs",
        "40",
        "--wan-seconds",
        "3",
        "--wan-rate",
        "20mbit",
        "--wan-rtt",
        "20ms",
    ];
    let migration = have("qemu-system-x86_64") && have("dnsmasq");
    if !migration {
        eprintln!("migration part skipped: QEMU or dnsmasq is not installed (scripts/deps.sh)");
        small.push("--skip-migration");
    }
    let (ok, out, err, pid) = bench(&small);
    assert!(ok, "bench network failed: {err}");
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));

    // Throughput: TCP went through the overlay, the underlay and the bridged baseline.
    for f in [
        "overlay_bps",
        "underlay_bps",
        "bridged_bps",
        "overlay_ratio",
        "overlay_bits_per_cpu_second",
        "underlay_bits_per_cpu_second",
    ] {
        positive(&r, f);
    }
    assert_eq!(r["overlay_mtu"], 1450, "{r}");
    assert_eq!(r["underlay_mtu"], 1500, "{r}");
    assert_eq!(
        r["overlay_bps_runs"].as_array().map(Vec::len),
        Some(1),
        "{r}"
    );
    assert!(r["overlay_ratio_met"].is_boolean(), "{r}");

    // Rule propagation: every node saw every change.
    assert_eq!(r["rule_propagation_samples"], 2 * 3, "{r}");
    let p50 = r["rule_propagation_p50_ms"].as_f64().unwrap();
    let p99 = r["rule_propagation_p99_ms"].as_f64().unwrap();
    assert!(p50 >= 0.0 && p99 >= p50, "{r}");
    positive(&r, "rule_propagation_from_request_p99_ms");
    positive(&r, "rule_api_p50_ms");
    positive(&r, "ports_ready_seconds");
    assert!(r["rule_propagation_met"].is_boolean(), "{r}");

    // Between sites: TCP crossed the overlay sealed by the tunnel over the emulated WAN,
    // and not one VXLAN packet crossed it in the clear.
    for f in [
        "sites_encrypted_bps",
        "sites_wan_tcp_bps",
        "sites_encrypted_ratio",
    ] {
        positive(&r, f);
    }
    assert_eq!(r["sites_link_bps"], 20_000_000.0, "{r}");
    assert_eq!(r["sites_overlay_mtu"], 1390, "{r}");
    assert_eq!(r["sites_plain_vxlan_packets"], 0, "{r}");
    assert!(r["sites_sealed_packets"].as_u64().unwrap() > 100, "{r}");
    assert!(r["sites_opened_packets"].as_u64().unwrap() > 100, "{r}");
    // Through a 20 Mbit/s link: the emulator's rate, not the host, bounds both paths.
    assert!(r["sites_encrypted_bps"].as_f64().unwrap() < 21e6, "{r}");

    // Through a cross-site migration: the stream's one connection carried every line, data
    // flowed on it after the switch-over, and its stall and the pause were measured.
    if migration {
        assert_eq!(r["migration_tcp_survived"], true, "{r}");
        positive(&r, "migration_stall_ms");
        positive(&r, "migration_downtime_ms");
        positive(&r, "migration_seconds");
        // The limit in force is the default or above it, and above the link's measured floor.
        let limit = r["migration_max_downtime_ms"].as_u64().unwrap();
        let floor = r["migration_pause_floor_ms"].as_u64().unwrap();
        assert!(limit >= 300 && floor < limit, "{r}");
        assert!(
            r["migration_stream_segments"].as_u64().unwrap() > 100,
            "{r}"
        );
        assert!(r["migration_segments_after"].as_u64().unwrap() > 10, "{r}");
        assert_eq!(r["migration_to_site"], "west", "{r}");
        assert!(r["migration_stall_met"].is_boolean(), "{r}");
    }

    // Nothing left behind: the labs' namespaces are named after the bench's pid, the guests'
    // QEMU ran from the migration lab's scratch directory.
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for ours in [
        format!("ncnb{}-", pid % 100_000),
        format!("ncnm{}-", pid % 100_000),
    ] {
        assert!(
            !left.lines().any(|l| l.starts_with(&ours)),
            "namespaces left behind:\n{left}"
        );
    }
    let scratch = format!("nc-netbench-mig-{pid}-");
    let procs = Command::new("pgrep")
        .args(["-af", &scratch])
        .output()
        .unwrap();
    let procs = String::from_utf8_lossy(&procs.stdout);
    assert!(procs.trim().is_empty(), "processes left behind:\n{procs}");
}
