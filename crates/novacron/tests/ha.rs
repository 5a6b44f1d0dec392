//! High availability end to end, through the benchmark commands that users run: a real
//! 3-member etcd, two control-plane replicas, agents in their own network namespaces, a
//! shared directory and a real TCG guest. Needs root (namespaces) and etcd-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_novacron"))
        .arg("bench")
        .args(args)
        .args(["-o", "json"])
        .env("NOVACRON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "novacron bench {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn agent_killed_vm_restarts_elsewhere_once_and_control_plane_survives_losses() {
    let r = bench(&["failover", "--store", "etcd", "--control-plane-loss"]);
    let recovery = r["recovery_seconds"].as_f64().unwrap();
    assert!(
        recovery > 0.0 && recovery <= 15.0,
        "recovery took {recovery} s: {r}"
    );
    assert_eq!(r["duplicate_runs"], 0, "{r}");
    assert_eq!(r["to_node"], "node-b");
    assert_eq!(
        r["final_node"], "node-b",
        "the VM stays where it moved: {r}"
    );
    // The old copy was fenced before the new one started.
    assert!(
        r["fenced_after_seconds"].as_f64().unwrap() < recovery,
        "{r}"
    );
    assert_eq!(r["control_plane_loss_ok"], true, "{r}");
}

/// Also: a disk added to the running HA VM comes back with it on the other node.
#[test]
fn partitioned_node_fences_itself_and_never_runs_a_second_copy() {
    let r = bench(&[
        "failover",
        "--store",
        "etcd",
        "--loss",
        "partition",
        "--added-disk",
        "16M",
    ]);
    assert_eq!(r["added_disk_restarted"], true, "{r}");
    let recovery = r["recovery_seconds"].as_f64().unwrap();
    assert!(
        recovery > 0.0 && recovery <= 15.0,
        "recovery took {recovery} s: {r}"
    );
    assert_eq!(r["duplicate_runs"], 0, "{r}");
    assert_eq!(r["final_node"], "node-b", "{r}");
}

#[test]
fn control_plane_serves_many_hollow_nodes() {
    let r = bench(&[
        "control-plane",
        "--nodes",
        "40",
        "--vms",
        "1000",
        "--store",
        "sqlite",
        "--concurrency",
        "16",
        // Every node: the scheduler bin-packs 1000 small VMs onto a few of the 40 nodes, and a
        // watcher on an empty node has nothing to see.
        "--watched",
        "40",
    ]);
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(
        r["vms_running"], 1000,
        "every VM was seen and reported by its hollow node: {r}"
    );
    assert!(r["creates_per_sec"].as_f64().unwrap() > 0.0);
    assert!(
        r["watch_p99_ms"].as_f64().unwrap().is_finite(),
        "watched nodes saw their VMs: {r}"
    );
}
